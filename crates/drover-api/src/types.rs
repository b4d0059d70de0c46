//! Request and response bodies that are not part of the data model in `drover-types`.
//!
//! The shapes follow `reference/http-api.md` §2.9 (versions), §2.14 (plan), §2.15 (write
//! responses), §2.16 (agent members) and §3 (request bodies). Field names are Nomad's
//! PascalCase; every struct is `#[serde(default)]` so an agent that omits a field (or a newer
//! one that adds fields) still decodes.

use std::collections::BTreeMap;

use drover_types::alloc::AllocMetric;
use drover_types::diff::JobDiff;
use drover_types::time::{Timestamp, opt_time};
use drover_types::{Evaluation, Job, PlanAnnotations, SchedulerConfiguration};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `PUT /v1/jobs` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobRegisterRequest<'a> {
    /// The job.
    pub job: &'a Job,
    /// Only register if the stored `JobModifyIndex` equals `job_modify_index` (0: the job must
    /// not exist yet).
    pub enforce_index: bool,
    /// See `enforce_index`.
    pub job_modify_index: u64,
    /// Override soft-mandatory Sentinel policies.
    pub policy_override: bool,
    /// Keep the counts of existing groups.
    pub preserve_counts: bool,
    /// Priority of the created evaluation (0: the job's own).
    pub eval_priority: i64,
}

/// Options of a register call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    /// `Some(n)`: only register if the job's modify index is `n` (`-check-index`).
    pub enforce_index: Option<u64>,
    /// Override soft-mandatory policies.
    pub policy_override: bool,
    /// Keep existing group counts.
    pub preserve_counts: bool,
    /// Priority of the created evaluation (0: the job's own).
    pub eval_priority: i64,
}

/// What a job write (register, evaluate, revert, scale) returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobRegisterResponse {
    /// The created evaluation ("" for periodic and parameterized parents).
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// The job's `JobModifyIndex` after the write.
    pub job_modify_index: u64,
    /// Non-fatal problems with the job, one per line.
    pub warnings: String,
    /// Raft index of the write.
    pub index: u64,
    /// Query meta Nomad embeds in the body.
    pub last_contact: i64,
    /// Query meta Nomad embeds in the body.
    pub known_leader: bool,
}

/// Options of a deregister call (`DELETE /v1/job/:id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeregisterOptions {
    /// Remove the job from the state store instead of marking it stopped.
    pub purge: bool,
    /// Stop the job in every region of a multiregion job.
    pub global: bool,
    /// Priority of the created evaluation (0: the job's own).
    pub eval_priority: i64,
    /// Skip the groups' shutdown delays.
    pub no_shutdown_delay: bool,
}

/// What `DELETE /v1/job/:id` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobDeregisterResponse {
    /// The created evaluation.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// Raft index of the evaluation.
    pub eval_create_index: u64,
    /// The job's modify index after the write.
    pub job_modify_index: u64,
    /// Evaluation of volume claims, if any.
    #[serde(rename = "VolumeEvalID")]
    pub volume_eval_id: String,
    /// Raft index of that evaluation.
    pub volume_eval_index: u64,
    /// Raft index of the write.
    pub index: u64,
}

/// `PUT /v1/job/:id/plan` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobPlanRequest<'a> {
    /// The job to plan.
    pub job: &'a Job,
    /// Ask for the diff against the stored job.
    pub diff: bool,
    /// Override soft-mandatory policies.
    pub policy_override: bool,
}

/// What a plan (a scheduler dry run) returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobPlanResponse {
    /// Per-group update counts and preempted allocations.
    pub annotations: Option<PlanAnnotations>,
    /// Groups that could not be placed, with their placement metrics.
    #[serde(rename = "FailedTGAllocs")]
    pub failed_tg_allocs: BTreeMap<String, AllocMetric>,
    /// The stored job's `JobModifyIndex` (0 for a new job): the `-check-index` to run with.
    pub job_modify_index: u64,
    /// Evaluations the real run would create (blocked evals, rolling-update follow-ups).
    pub created_evals: Vec<Evaluation>,
    /// The diff against the stored job.
    pub diff: Option<JobDiff>,
    /// Next launch of a periodic job.
    #[serde(with = "opt_time")]
    pub next_periodic_launch: Option<Timestamp>,
    /// Non-fatal problems.
    pub warnings: String,
    /// State index the plan ran against.
    pub index: u64,
}

/// `GET /v1/job/:id/versions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobVersionsResponse {
    /// Every stored version, newest first.
    pub versions: Vec<Job>,
    /// With `diffs=true`: `diffs[i]` turns version `i+1` into version `i`.
    pub diffs: Vec<JobDiff>,
    /// Query meta Nomad embeds in the body.
    pub index: u64,
}

/// `PUT /v1/job/:id/evaluate` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobEvaluateRequest {
    /// The job.
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// Options.
    pub eval_options: EvalOptions,
}

/// Options of a forced evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EvalOptions {
    /// Reschedule failed allocations even past their reschedule policy.
    pub force_reschedule: bool,
}

/// `POST /v1/jobs/parse` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobsParseRequest {
    /// HCL2 job source.
    #[serde(rename = "JobHCL")]
    pub job_hcl: String,
    /// Variable file content (HCL).
    pub variables: String,
    /// Fill in defaults.
    pub canonicalize: bool,
}

/// `PUT /v1/node/:id/drain` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDrainRequest {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// `None` (`null`) cancels a drain.
    pub drain_spec: Option<DrainSpec>,
    /// When cancelling: make the node eligible for placements again.
    pub mark_eligible: bool,
    /// Free-form metadata recorded with the drain (`-m`).
    pub meta: Option<BTreeMap<String, String>>,
}

/// The drain parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DrainSpec {
    /// Nanoseconds: `< 0` force drain now, `0` no deadline, `> 0` the deadline.
    pub deadline: i64,
    /// Leave system-job allocations running.
    pub ignore_system_jobs: bool,
}

/// `PUT /v1/node/:id/eligibility` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeEligibilityRequest {
    /// The node.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// `eligible` or `ineligible`.
    pub eligibility: String,
}

/// What node drain and eligibility writes return.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeUpdateResponse {
    /// The node's modify index after the write.
    pub node_modify_index: u64,
    /// Evaluations created by the change.
    #[serde(rename = "EvalIDs")]
    pub eval_ids: Vec<String>,
    /// Raft index of the evaluations.
    pub eval_create_index: u64,
    /// Raft index of the write.
    pub index: u64,
}

/// `GET /v1/operator/scheduler/configuration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SchedulerConfigurationResponse {
    /// The configuration.
    pub scheduler_config: Option<SchedulerConfiguration>,
    /// Query meta Nomad embeds in the body.
    pub index: u64,
}

/// `PUT /v1/operator/scheduler/configuration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SchedulerSetConfigurationResponse {
    /// False when a check-and-set index did not match.
    pub updated: bool,
    /// Raft index of the write.
    pub index: u64,
}

/// One gossip member (a server) of `GET /v1/agent/members`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AgentMember {
    /// `<node name>.<region>`.
    pub name: String,
    /// IP address.
    pub addr: String,
    /// Gossip (serf) port, 4648 by default.
    pub port: u16,
    /// `role`, `region`, `dc`, `build`, `port` (RPC), `raft_vsn`, `id`, ...
    pub tags: BTreeMap<String, String>,
    /// `alive`, `leaving`, `left`, `failed`.
    pub status: String,
    /// Gossip protocol versions.
    pub protocol_min: u8,
    /// Gossip protocol versions.
    pub protocol_max: u8,
    /// Gossip protocol versions.
    pub protocol_cur: u8,
    /// Delegate protocol versions.
    pub delegate_min: u8,
    /// Delegate protocol versions.
    pub delegate_max: u8,
    /// Delegate protocol versions.
    pub delegate_cur: u8,
}

impl AgentMember {
    /// A tag, or `""`.
    pub fn tag(&self, key: &str) -> &str {
        self.tags.get(key).map(String::as_str).unwrap_or("")
    }
}

/// `GET /v1/agent/members`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServerMembersResponse {
    /// The answering server's name.
    pub server_name: String,
    /// Its region.
    pub server_region: String,
    /// Its datacenter.
    #[serde(rename = "ServerDC")]
    pub server_dc: String,
    /// Every server known through gossip.
    pub members: Vec<AgentMember>,
}

/// `GET /v1/agent/self` (note the lower-case top-level keys).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentSelf {
    /// The agent's configuration (PascalCase inside).
    pub config: Value,
    /// The agent as a gossip member (servers only).
    pub member: Option<AgentMember>,
    /// Sections (`nomad`, `client`, `raft`, ...) of string statistics.
    pub stats: BTreeMap<String, BTreeMap<String, Value>>,
}

impl AgentSelf {
    /// A statistic as text (`stats.client.node_id`), if present.
    pub fn stat(&self, section: &str, key: &str) -> Option<String> {
        match self.stats.get(section)?.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::diff::DiffType;

    #[test]
    fn plan_response_decodes_from_nomad_json() {
        let body = r#"{
          "Annotations": {"DesiredTGUpdates": {"cache": {"Place": 1, "Ignore": 0}}, "PreemptedAllocs": null},
          "FailedTGAllocs": null,
          "JobModifyIndex": 0,
          "CreatedEvals": null,
          "Diff": {"Type": "Added", "ID": "example", "Fields": null, "Objects": null,
                   "TaskGroups": [{"Type": "Added", "Name": "cache", "Updates": {"create": 1},
                     "Tasks": [{"Type": "Added", "Name": "redis", "Annotations": ["forces create"]}]}]},
          "NextPeriodicLaunch": "0001-01-01T00:00:00Z",
          "Warnings": "",
          "Index": 7
        }"#;
        let r: JobPlanResponse = crate::client::decode(body.as_bytes(), "plan").unwrap();
        let diff = r.diff.unwrap();
        assert_eq!(diff.diff_type, DiffType::Added);
        assert_eq!(
            diff.task_groups.unwrap()[0].updates.as_ref().unwrap()["create"],
            1
        );
        assert_eq!(r.annotations.unwrap().desired_tg_updates["cache"].place, 1);
        assert!(r.next_periodic_launch.is_none());
        assert!(r.failed_tg_allocs.is_empty());
        assert_eq!(r.index, 7);
    }

    #[test]
    fn requests_encode_in_pascal_case() {
        let job = Job {
            id: "j".into(),
            ..Default::default()
        };
        let r = JobRegisterRequest {
            job: &job,
            enforce_index: true,
            job_modify_index: 5,
            policy_override: false,
            preserve_counts: false,
            eval_priority: 0,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["EnforceIndex"], true);
        assert_eq!(v["JobModifyIndex"], 5);
        assert_eq!(v["Job"]["ID"], "j");
        let d = NodeDrainRequest {
            node_id: "n".into(),
            drain_spec: None,
            mark_eligible: true,
            meta: None,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["NodeID"], "n");
        assert!(v["DrainSpec"].is_null(), "null cancels the drain");
    }

    #[test]
    fn agent_self_stats() {
        let s: AgentSelf = crate::client::decode(
            br#"{"config":{"Region":"global"},"member":null,"stats":{"client":{"node_id":"abc"},"nomad":{"leader":"true"}}}"#,
            "agent self",
        )
        .unwrap();
        assert_eq!(s.stat("client", "node_id").as_deref(), Some("abc"));
        assert_eq!(s.stat("nomad", "leader").as_deref(), Some("true"));
        assert_eq!(s.stat("raft", "x"), None);
    }
}
