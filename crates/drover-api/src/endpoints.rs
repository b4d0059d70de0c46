//! The typed calls: one method per `/v1` endpoint the CLI and tests use.
//!
//! Reads return `(value, QueryMeta)` and take [`QueryOptions`]; writes return the decoded
//! response body. Paths are built from segments so IDs are escaped (see [`crate::client`]).
//! Grouped as in `reference/http-api.md` §3: jobs, evaluations, allocations, nodes,
//! deployments, agent/status, operator.

use std::collections::BTreeMap;

use drover_types::{
    AllocListStub, Allocation, Deployment, Evaluation, Job, JobListStub, JobSummary, Node, NodeListStub,
    SchedulerConfiguration,
};

use crate::client::{Client, QueryMeta, QueryOptions};
use crate::error::{ApiError, Verb};
use crate::types::{
    AgentSelf, DeregisterOptions, DrainSpec, EvalOptions, JobDeregisterResponse, JobEvaluateRequest,
    JobPlanRequest, JobPlanResponse, JobRegisterRequest, JobRegisterResponse, JobVersionsResponse,
    JobsParseRequest, NodeDrainRequest, NodeEligibilityRequest, NodeUpdateResponse, RegisterOptions,
    SchedulerConfigurationResponse, SchedulerSetConfigurationResponse, ServerMembersResponse,
};

type Read<T> = Result<(T, QueryMeta), ApiError>;

fn pair(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// Jobs (`/v1/jobs`, `/v1/job/:id/...`).
impl Client {
    /// `GET /v1/jobs` (use [`QueryOptions::with_prefix`] to filter by ID prefix).
    pub async fn jobs(&self, q: &QueryOptions) -> Read<Vec<JobListStub>> {
        self.get(&["jobs"], q, "job list").await
    }

    /// `PUT /v1/jobs`: registers (creates or updates) a job.
    pub async fn register_job(
        &self,
        job: &Job,
        opts: &RegisterOptions,
    ) -> Result<JobRegisterResponse, ApiError> {
        let body = JobRegisterRequest {
            job,
            enforce_index: opts.enforce_index.is_some(),
            job_modify_index: opts.enforce_index.unwrap_or(0),
            policy_override: opts.policy_override,
            preserve_counts: opts.preserve_counts,
            eval_priority: opts.eval_priority,
        };
        self.write(Verb::Put, &["jobs"], &[], Some(&body), "job register response")
            .await
    }

    /// `GET /v1/job/:id`.
    pub async fn job(&self, id: &str, q: &QueryOptions) -> Read<Job> {
        self.get(&["job", id], q, "job").await
    }

    /// `DELETE /v1/job/:id`: stops (or with `purge`, removes) a job.
    pub async fn deregister_job(
        &self,
        id: &str,
        opts: &DeregisterOptions,
    ) -> Result<JobDeregisterResponse, ApiError> {
        let mut query = vec![pair("purge", opts.purge)];
        if opts.global {
            query.push(pair("global", true));
        }
        if opts.eval_priority > 0 {
            query.push(pair("eval_priority", opts.eval_priority));
        }
        if opts.no_shutdown_delay {
            query.push(pair("no_shutdown_delay", true));
        }
        self.write::<(), _>(
            Verb::Delete,
            &["job", id],
            &query,
            None,
            "job deregister response",
        )
        .await
    }

    /// `PUT /v1/job/:id/plan`: a scheduler dry run, with the diff when `diff` is set.
    pub async fn plan_job(&self, job: &Job, diff: bool) -> Result<JobPlanResponse, ApiError> {
        let body = JobPlanRequest {
            job,
            diff,
            policy_override: false,
        };
        self.write(Verb::Put, &["job", &job.id, "plan"], &[], Some(&body), "plan")
            .await
    }

    /// `GET /v1/job/:id/summary`.
    pub async fn job_summary(&self, id: &str, q: &QueryOptions) -> Read<JobSummary> {
        self.get(&["job", id, "summary"], q, "job summary").await
    }

    /// `GET /v1/job/:id/versions` (`diffs` adds the diff between consecutive versions).
    pub async fn job_versions(&self, id: &str, diffs: bool, q: &QueryOptions) -> Read<JobVersionsResponse> {
        let q = q.clone().with_param("diffs", diffs.to_string());
        self.get(&["job", id, "versions"], &q, "job versions").await
    }

    /// `GET /v1/job/:id/allocations` (`all`: include allocations of earlier jobs with this ID).
    pub async fn job_allocations(&self, id: &str, all: bool, q: &QueryOptions) -> Read<Vec<AllocListStub>> {
        let q = q.clone().with_param("all", all.to_string());
        self.get(&["job", id, "allocations"], &q, "job allocations").await
    }

    /// `GET /v1/job/:id/evaluations`.
    pub async fn job_evaluations(&self, id: &str, q: &QueryOptions) -> Read<Vec<Evaluation>> {
        self.get(&["job", id, "evaluations"], q, "job evaluations").await
    }

    /// `GET /v1/job/:id/deployment`: the latest deployment, `None` when there is none.
    pub async fn job_latest_deployment(&self, id: &str, q: &QueryOptions) -> Read<Option<Deployment>> {
        self.get(&["job", id, "deployment"], q, "deployment").await
    }

    /// `PUT /v1/job/:id/evaluate`: creates a new evaluation of the job.
    pub async fn evaluate_job(
        &self,
        id: &str,
        force_reschedule: bool,
    ) -> Result<JobRegisterResponse, ApiError> {
        let body = JobEvaluateRequest {
            job_id: id.to_string(),
            eval_options: EvalOptions { force_reschedule },
        };
        self.write(
            Verb::Put,
            &["job", id, "evaluate"],
            &[],
            Some(&body),
            "job evaluate response",
        )
        .await
    }

    /// `POST /v1/jobs/parse`: HCL2 → the API job (server side).
    pub async fn parse_job(&self, hcl: &str, variables: &str, canonicalize: bool) -> Result<Job, ApiError> {
        let body = JobsParseRequest {
            job_hcl: hcl.to_string(),
            variables: variables.to_string(),
            canonicalize,
        };
        self.write(Verb::Post, &["jobs", "parse"], &[], Some(&body), "parsed job")
            .await
    }
}

/// Evaluations and allocations.
impl Client {
    /// `GET /v1/evaluation/:id?related=true` (the related evaluations fill `RelatedEvals`).
    pub async fn evaluation(&self, id: &str, q: &QueryOptions) -> Read<Evaluation> {
        let q = q.clone().with_param("related", "true");
        self.get(&["evaluation", id], &q, "evaluation").await
    }

    /// `GET /v1/evaluation/:id/allocations`.
    pub async fn evaluation_allocations(&self, id: &str, q: &QueryOptions) -> Read<Vec<AllocListStub>> {
        self.get(&["evaluation", id, "allocations"], q, "evaluation allocations")
            .await
    }

    /// `GET /v1/evaluations`.
    pub async fn evaluations(&self, q: &QueryOptions) -> Read<Vec<Evaluation>> {
        self.get(&["evaluations"], q, "evaluation list").await
    }

    /// `GET /v1/allocation/:id` (full ID; resolve prefixes with [`Client::allocations`]).
    pub async fn allocation(&self, id: &str, q: &QueryOptions) -> Read<Allocation> {
        self.get(&["allocation", id], q, "allocation").await
    }

    /// `GET /v1/allocations`.
    pub async fn allocations(&self, q: &QueryOptions) -> Read<Vec<AllocListStub>> {
        self.get(&["allocations"], q, "allocation list").await
    }
}

/// Nodes.
impl Client {
    /// `GET /v1/nodes`.
    pub async fn nodes(&self, q: &QueryOptions) -> Read<Vec<NodeListStub>> {
        self.get(&["nodes"], q, "node list").await
    }

    /// `GET /v1/node/:id`.
    pub async fn node(&self, id: &str, q: &QueryOptions) -> Read<Node> {
        self.get(&["node", id], q, "node").await
    }

    /// `GET /v1/node/:id/allocations` (full allocations).
    pub async fn node_allocations(&self, id: &str, q: &QueryOptions) -> Read<Vec<Allocation>> {
        self.get(&["node", id, "allocations"], q, "node allocations")
            .await
    }

    /// `PUT /v1/node/:id/drain`: `Some(spec)` starts a drain, `None` cancels one.
    pub async fn node_drain(
        &self,
        id: &str,
        spec: Option<DrainSpec>,
        mark_eligible: bool,
        meta: Option<BTreeMap<String, String>>,
    ) -> Result<NodeUpdateResponse, ApiError> {
        let body = NodeDrainRequest {
            node_id: id.to_string(),
            drain_spec: spec,
            mark_eligible,
            meta,
        };
        self.write(
            Verb::Put,
            &["node", id, "drain"],
            &[],
            Some(&body),
            "node drain response",
        )
        .await
    }

    /// `PUT /v1/node/:id/eligibility`.
    pub async fn node_eligibility(&self, id: &str, eligible: bool) -> Result<NodeUpdateResponse, ApiError> {
        let body = NodeEligibilityRequest {
            node_id: id.to_string(),
            eligibility: if eligible { "eligible" } else { "ineligible" }.to_string(),
        };
        self.write(
            Verb::Put,
            &["node", id, "eligibility"],
            &[],
            Some(&body),
            "node eligibility response",
        )
        .await
    }
}

/// Deployments.
impl Client {
    /// `GET /v1/deployments` (use [`QueryOptions::with_prefix`] to filter by ID prefix).
    pub async fn deployments(&self, q: &QueryOptions) -> Read<Vec<Deployment>> {
        self.get(&["deployments"], q, "deployment list").await
    }

    /// `GET /v1/deployment/:id` (blocking queries are how the CLI watches deployments).
    pub async fn deployment(&self, id: &str, q: &QueryOptions) -> Read<Deployment> {
        self.get(&["deployment", id], q, "deployment").await
    }

    /// `GET /v1/deployment/allocations/:id`.
    pub async fn deployment_allocations(&self, id: &str, q: &QueryOptions) -> Read<Vec<AllocListStub>> {
        self.get(&["deployment", "allocations", id], q, "deployment allocations")
            .await
    }
}

/// Agent, status, regions, operator.
impl Client {
    /// `GET /v1/status/leader`: `"ip:port"` of the leader's RPC endpoint.
    pub async fn status_leader(&self, region: Option<&str>) -> Result<String, ApiError> {
        let q = match region {
            Some(r) => QueryOptions::new().with_param("region", r),
            None => QueryOptions::new(),
        };
        Ok(self.get(&["status", "leader"], &q, "leader").await?.0)
    }

    /// `GET /v1/status/peers`: the Raft peers.
    pub async fn status_peers(&self) -> Result<Vec<String>, ApiError> {
        Ok(self
            .get(&["status", "peers"], &QueryOptions::new(), "peers")
            .await?
            .0)
    }

    /// `GET /v1/agent/self`.
    pub async fn agent_self(&self) -> Result<AgentSelf, ApiError> {
        Ok(self
            .get(&["agent", "self"], &QueryOptions::new(), "agent self")
            .await?
            .0)
    }

    /// `GET /v1/agent/members`: the servers known through gossip.
    pub async fn agent_members(&self) -> Result<ServerMembersResponse, ApiError> {
        Ok(self
            .get(&["agent", "members"], &QueryOptions::new(), "agent members")
            .await?
            .0)
    }

    /// `GET /v1/regions`.
    pub async fn regions(&self) -> Result<Vec<String>, ApiError> {
        Ok(self.get(&["regions"], &QueryOptions::new(), "regions").await?.0)
    }

    /// `GET /v1/operator/scheduler/configuration`.
    pub async fn scheduler_configuration(&self, q: &QueryOptions) -> Read<SchedulerConfigurationResponse> {
        self.get(
            &["operator", "scheduler", "configuration"],
            q,
            "scheduler configuration",
        )
        .await
    }

    /// `PUT /v1/operator/scheduler/configuration`; with `cas`, only if the stored
    /// `ModifyIndex` still equals it (then `Updated` tells whether it did).
    pub async fn set_scheduler_configuration(
        &self,
        config: &SchedulerConfiguration,
        cas: Option<u64>,
    ) -> Result<SchedulerSetConfigurationResponse, ApiError> {
        let query: Vec<(String, String)> = cas.map(|c| pair("cas", c)).into_iter().collect();
        self.write(
            Verb::Put,
            &["operator", "scheduler", "configuration"],
            &query,
            Some(config),
            "scheduler configuration response",
        )
        .await
    }
}
