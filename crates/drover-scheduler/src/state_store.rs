//! The scheduler's [`State`] over the server's state store snapshot (`drover-state`).
//!
//! A thin adapter: every query maps to the snapshot's own. The candidate index is built once
//! per version of the node table and shared by the snapshots that have it
//! ([`StateSnapshot::node_derived`]).

use std::sync::Arc;

use drover_state::StateSnapshot;
use drover_types::{Allocation, Deployment, Evaluation, Job, Node, SchedulerConfiguration};

use crate::state::{CandidateIndex, State};

impl State for StateSnapshot {
    fn latest_index(&self) -> u64 {
        StateSnapshot::latest_index(self)
    }
    fn nodes(&self) -> Vec<Arc<Node>> {
        StateSnapshot::nodes(self)
    }
    fn candidates(&self) -> Arc<CandidateIndex> {
        self.node_derived(|s| CandidateIndex::build(StateSnapshot::nodes(s)))
    }
    fn node(&self, id: &str) -> Option<Arc<Node>> {
        StateSnapshot::node(self, id)
    }
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        StateSnapshot::allocs_by_job(self, namespace, job_id)
    }
    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        StateSnapshot::allocs_by_node(self, node_id)
    }
    fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        StateSnapshot::alloc(self, id)
    }
    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        StateSnapshot::job(self, namespace, id)
    }
    fn job_by_version(&self, namespace: &str, id: &str, version: u64) -> Option<Arc<Job>> {
        StateSnapshot::job_by_version(self, namespace, id, version)
    }
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>> {
        StateSnapshot::latest_deployment(self, namespace, job_id)
    }
    fn scheduler_config(&self) -> SchedulerConfiguration {
        StateSnapshot::scheduler_config(self)
    }
    fn jobs(&self) -> Vec<Arc<Job>> {
        StateSnapshot::jobs(self)
    }
    fn evals(&self) -> Vec<Arc<Evaluation>> {
        StateSnapshot::evals(self)
    }
    fn allocs(&self) -> Vec<Arc<Allocation>> {
        StateSnapshot::allocs(self)
    }
    fn deployments(&self) -> Vec<Arc<Deployment>> {
        StateSnapshot::deployments(self)
    }
}
