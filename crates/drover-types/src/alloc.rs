//! Allocations: one task group of one job version placed on one node, plus what the client
//! reports about it (task states and events) and what the scheduler recorded about the placement
//! ([`AllocMetric`]).
//!
//! Vocabulary: *desired* status is the server's intent (`run`, `stop`, `evict`); *client* status
//! is what happened (`pending`, `running`, `complete`, `failed`, `lost`, `unknown`). An
//! allocation is *client-terminal* when complete/failed/lost and *server-terminal* when desired
//! stop/evict.
//!
//! Encoding policy: Nomad omits zero-valued fields of `Allocation` in JSON; we always write them
//! (every known client accepts both; see `docs/compatibility.md`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::{Job, NetworkResource, TaskLifecycle};
use crate::serde_util::{empty_arc_map_as_null, empty_map_as_null, empty_vec_as_null};
use crate::time::{Nanos, Timestamp, opt_time};

/// Desired statuses.
pub mod desired_status {
    /// Keep it running.
    pub const RUN: &str = "run";
    /// Stop it.
    pub const STOP: &str = "stop";
    /// Stop it because something of higher priority needs the room.
    pub const EVICT: &str = "evict";
}

/// Client statuses.
pub mod client_status {
    /// Not started yet.
    pub const PENDING: &str = "pending";
    /// Running.
    pub const RUNNING: &str = "running";
    /// Finished successfully.
    pub const COMPLETE: &str = "complete";
    /// Failed.
    pub const FAILED: &str = "failed";
    /// Its node went down.
    pub const LOST: &str = "lost";
    /// Its node is disconnected.
    pub const UNKNOWN: &str = "unknown";
}

/// An allocation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Allocation {
    #[serde(rename = "ID")]
    pub id: String,
    pub namespace: String,
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub name: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_name: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    /// The job at the allocation's version (shared, never mutated in place).
    pub job: Option<Arc<Job>>,
    pub task_group: String,
    pub allocated_resources: Option<AllocatedResources>,
    pub metrics: Option<AllocMetric>,
    pub desired_status: String,
    pub desired_description: String,
    pub desired_transition: DesiredTransition,
    pub client_status: String,
    pub client_description: String,
    #[serde(serialize_with = "empty_map_as_null")]
    pub task_states: BTreeMap<String, TaskState>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub alloc_states: Vec<AllocState>,
    pub previous_allocation: String,
    pub next_allocation: String,
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub deployment_status: Option<AllocDeploymentStatus>,
    pub reschedule_tracker: Option<RescheduleTracker>,
    pub network_status: Option<AllocNetworkStatus>,
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub preempted_allocations: Vec<String>,
    pub preempted_by_allocation: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub alloc_modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Allocation {
    /// Complete, failed or lost.
    pub fn client_terminal(&self) -> bool {
        matches!(
            self.client_status.as_str(),
            client_status::COMPLETE | client_status::FAILED | client_status::LOST
        )
    }
    /// Desired stop or evict.
    pub fn server_terminal(&self) -> bool {
        matches!(
            self.desired_status.as_str(),
            desired_status::STOP | desired_status::EVICT
        )
    }
    /// Either kind of terminal.
    pub fn terminal(&self) -> bool {
        self.client_terminal() || self.server_terminal()
    }
    /// The index parsed back out of `<job>.<group>[<index>]`.
    pub fn index(&self) -> Option<u64> {
        let open = self.name.rfind('[')?;
        let close = self.name.rfind(']')?;
        self.name.get(open + 1..close)?.parse().ok()
    }
}

/// Nomad's allocation name: `<job>.<group>[<index>]`.
pub fn alloc_name(job_id: &str, group: &str, index: u64) -> String {
    // `{job_id}.{group}[{index}]` without the formatting machinery: the scheduler names every
    // placement, and `format!` cost more than the rest of building the name.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = index;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut name = String::with_capacity(job_id.len() + group.len() + 3 + digits.len() - at);
    name.push_str(job_id);
    name.push('.');
    name.push_str(group);
    name.push('[');
    for &d in &digits[at..] {
        name.push(char::from(d));
    }
    name.push(']');
    name
}

/// Resources granted to an allocation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocatedResources {
    #[serde(serialize_with = "empty_map_as_null")]
    pub tasks: BTreeMap<String, AllocatedTaskResources>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub task_lifecycles: BTreeMap<String, Option<TaskLifecycle>>,
    pub shared: AllocatedSharedResources,
}

/// Per-task grant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocatedTaskResources {
    pub cpu: AllocatedCpuResources,
    pub memory: AllocatedMemoryResources,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub networks: Vec<NetworkResource>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub devices: Vec<AllocatedDeviceResource>,
}

/// CPU grant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocatedCpuResources {
    pub cpu_shares: i64,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub reserved_cores: Vec<i64>,
}

/// Memory grant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocatedMemoryResources {
    #[serde(rename = "MemoryMB")]
    pub memory_mb: i64,
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: i64,
}

/// Device grant.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocatedDeviceResource {
    pub vendor: String,
    #[serde(rename = "Type")]
    pub device_type: String,
    pub name: String,
    #[serde(rename = "DeviceIDs", serialize_with = "empty_vec_as_null")]
    pub device_ids: Vec<String>,
}

/// Group-level grant: disk, group networks, group ports.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocatedSharedResources {
    #[serde(serialize_with = "empty_vec_as_null")]
    pub networks: Vec<NetworkResource>,
    #[serde(rename = "DiskMB")]
    pub disk_mb: i64,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub ports: Vec<AllocatedPortMapping>,
}

/// A group port as allocated: host port `Value` at `HostIP`, mapped to `To` inside.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocatedPortMapping {
    pub label: String,
    pub value: i64,
    pub to: i64,
    #[serde(rename = "HostIP")]
    pub host_ip: String,
    pub ignore_collision: bool,
}

/// Server-requested transitions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DesiredTransition {
    pub migrate: Option<bool>,
    pub reschedule: Option<bool>,
    pub force_reschedule: Option<bool>,
    pub no_shutdown_delay: Option<bool>,
    pub migrate_disable_placement: Option<bool>,
}

/// One entry of the client-status history.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocState {
    pub field: u8,
    pub value: String,
    #[serde(with = "opt_time")]
    pub time: Option<Timestamp>,
}

/// Health of an allocation within a deployment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocDeploymentStatus {
    pub healthy: Option<bool>,
    #[serde(with = "opt_time")]
    pub timestamp: Option<Timestamp>,
    pub canary: bool,
    pub modify_index: u64,
}

/// Reschedule history of an allocation (carried over to its replacements).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RescheduleTracker {
    #[serde(serialize_with = "empty_vec_as_null")]
    pub events: Vec<RescheduleEvent>,
    pub last_reschedule: String,
}

/// One reschedule.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RescheduleEvent {
    pub reschedule_time: i64,
    #[serde(rename = "PrevAllocID")]
    pub prev_alloc_id: String,
    #[serde(rename = "PrevNodeID")]
    pub prev_node_id: String,
    pub delay: Nanos,
}

/// Network status reported by the client (bridge mode).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocNetworkStatus {
    pub interface_name: String,
    pub address: String,
    #[serde(rename = "AddressIPv6")]
    pub address_ipv6: String,
    #[serde(rename = "DNS")]
    pub dns: Option<Value>,
}

/// The state of one task inside an allocation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskState {
    pub state: String,
    pub failed: bool,
    pub restarts: u64,
    #[serde(with = "opt_time")]
    pub last_restart: Option<Timestamp>,
    #[serde(with = "opt_time")]
    pub started_at: Option<Timestamp>,
    #[serde(with = "opt_time")]
    pub finished_at: Option<Timestamp>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub events: Vec<TaskEvent>,
    pub paused: String,
}

/// Something that happened to a task (`Received`, `Started`, `Terminated`, …).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskEvent {
    #[serde(rename = "Type")]
    pub event_type: String,
    /// Unix nanoseconds.
    pub time: i64,
    pub message: String,
    pub display_message: String,
    #[serde(serialize_with = "empty_map_as_null")]
    pub details: BTreeMap<String, String>,
    pub fails_task: bool,
    pub restart_reason: String,
    pub setup_error: String,
    pub driver_error: String,
    pub exit_code: i64,
    pub signal: i64,
    pub kill_timeout: Nanos,
    pub kill_error: String,
    pub kill_reason: String,
    pub start_delay: i64,
    pub download_error: String,
    pub validation_error: String,
    pub disk_limit: i64,
    pub failed_sibling: String,
    pub vault_error: String,
    pub task_signal_reason: String,
    pub task_signal: String,
    pub driver_message: String,
    pub generic_source: String,
}

/// Why an allocation was (or could not be) placed where it was. Filled by the scheduler for
/// every placement and every failed placement (`Evaluation.FailedTGAllocs`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocMetric {
    pub nodes_evaluated: i64,
    pub nodes_filtered: i64,
    pub nodes_in_pool: i64,
    pub node_pool: String,
    /// Ready nodes per datacenter of the job: the same for every placement of an evaluation,
    /// so the placements share one map.
    #[serde(serialize_with = "empty_arc_map_as_null")]
    pub nodes_available: Arc<BTreeMap<String, i64>>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub class_filtered: BTreeMap<String, i64>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub constraint_filtered: BTreeMap<String, i64>,
    pub nodes_exhausted: i64,
    #[serde(serialize_with = "empty_map_as_null")]
    pub class_exhausted: BTreeMap<String, i64>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub dimension_exhausted: BTreeMap<String, i64>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub quota_exhausted: Vec<String>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub resources_exhausted: BTreeMap<String, Value>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub scores: BTreeMap<String, f64>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub score_meta_data: Vec<NodeScoreMeta>,
    pub allocation_time: Nanos,
    pub coalesced_failures: i64,
}

/// The scores one node got during ranking.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeScoreMeta {
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// Scorer name → its normalised score. The scheduler's names are static, so a placement
    /// records them without copying.
    #[serde(serialize_with = "empty_map_as_null")]
    pub scores: BTreeMap<Cow<'static, str>, f64>,
    pub norm_score: f64,
}

/// An item of allocation lists.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct AllocListStub {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    pub name: String,
    pub namespace: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_name: String,
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_type: String,
    pub job_version: u64,
    pub task_group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allocated_resources: Option<AllocatedResources>,
    pub desired_status: String,
    pub desired_description: String,
    pub client_status: String,
    pub client_description: String,
    pub desired_transition: DesiredTransition,
    #[serde(serialize_with = "empty_map_as_null")]
    pub task_states: BTreeMap<String, TaskState>,
    pub deployment_status: Option<AllocDeploymentStatus>,
    #[serde(rename = "FollowupEvalID")]
    pub followup_eval_id: String,
    pub next_allocation: String,
    pub reschedule_tracker: Option<RescheduleTracker>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub preempted_allocations: Vec<String>,
    pub preempted_by_allocation: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time: i64,
    pub modify_time: i64,
}

impl Allocation {
    /// The list stub; `with_resources` keeps `AllocatedResources`, `with_task_states` the states.
    pub fn stub(&self, with_resources: bool, with_task_states: bool) -> AllocListStub {
        AllocListStub {
            id: self.id.clone(),
            eval_id: self.eval_id.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            node_id: self.node_id.clone(),
            node_name: self.node_name.clone(),
            job_id: self.job_id.clone(),
            job_type: self.job.as_ref().map(|j| j.job_type.clone()).unwrap_or_default(),
            job_version: self.job.as_ref().map(|j| j.version).unwrap_or_default(),
            task_group: self.task_group.clone(),
            allocated_resources: if with_resources {
                self.allocated_resources.clone()
            } else {
                None
            },
            desired_status: self.desired_status.clone(),
            desired_description: self.desired_description.clone(),
            client_status: self.client_status.clone(),
            client_description: self.client_description.clone(),
            desired_transition: self.desired_transition.clone(),
            task_states: if with_task_states {
                self.task_states.clone()
            } else {
                BTreeMap::new()
            },
            deployment_status: self.deployment_status.clone(),
            followup_eval_id: self.followup_eval_id.clone(),
            next_allocation: self.next_allocation.clone(),
            reschedule_tracker: self.reschedule_tracker.clone(),
            preempted_allocations: self.preempted_allocations.clone(),
            preempted_by_allocation: self.preempted_by_allocation.clone(),
            create_index: self.create_index,
            modify_index: self.modify_index,
            create_time: self.create_time,
            modify_time: self.modify_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::alloc_name;

    #[test]
    fn allocation_names_read_job_group_and_index() {
        for (job, group, index) in [
            ("web", "frontend", 0u64),
            ("a.b", "g", 7),
            ("batch/dispatch-123", "work", 10),
            ("j", "g", 1_000_000),
            ("j", "g", u64::MAX),
        ] {
            assert_eq!(alloc_name(job, group, index), format!("{job}.{group}[{index}]"));
        }
    }
}
