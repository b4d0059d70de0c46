//! The job specification: [`Job`] → [`TaskGroup`] → [`Task`], and every block they carry.
//!
//! One struct family serves both shapes of Nomad's job JSON (`reference/http-api.md` §2.2):
//!
//! ```text
//!   input  (register / plan / parse bodies; HCL decoded to JSON)   every field optional
//!      │   codec::from_value  — keys case-insensitive, unknown keys ignored, null = unset
//!      ▼
//!   Job with serde field defaults applied (absent key → Nomad's default when it does not
//!      │   depend on anything else, e.g. Priority 50, KillTimeout 5s)
//!      │   canonicalize::canonicalize_job — defaults that depend on the job type or on other
//!      ▼   blocks (restart/reschedule per type, update and migrate merged job → group, …)
//!   output (stored job, `GET /v1/job/:id`, `job run -output`)      every field present
//! ```
//!
//! Vocabulary: a *policy block* (restart, reschedule, update, migrate) is merged field by field
//! from a type default, then the job level, then the group, then (restart only) the task; its
//! fields are `Option` so "not written" stays distinguishable from "written as zero" until
//! canonicalisation. After canonicalisation every `Option` field of a policy block is `Some`; use
//! the accessor methods rather than unwrapping.
//!
//! Two scalar fields have defaults that depend on siblings and use [`UNSET`] between decoding and
//! canonicalisation: `TaskGroup::count` (1, or `scaling.min`) and `Resources::cpu` (100, or 0 when
//! `cores` is set).
//!
//! Durations are [`Nanos`] (integer nanoseconds), maps are `BTreeMap` (Go sorts map keys), and
//! empty lists/maps are written as `null` like Go's nil slices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::serde_util::{default_true, empty_map_as_null, empty_vec_as_null};
use crate::time::{Nanos, SECOND};

/// Marks an integer that was not written in the input and must be filled by canonicalisation.
/// Only ever seen between decoding and [`crate::canonicalize::canonicalize_job`].
pub const UNSET: i64 = i64::MIN;

/// Job types, as strings on the wire.
pub mod job_type {
    /// Long-running services (the default).
    pub const SERVICE: &str = "service";
    /// Run-to-completion work.
    pub const BATCH: &str = "batch";
    /// One allocation on every eligible node.
    pub const SYSTEM: &str = "system";
    /// Run-to-completion on every eligible node.
    pub const SYSBATCH: &str = "sysbatch";
    /// Internal garbage-collection jobs.
    pub const CORE: &str = "_core";
    /// The four user-facing job types.
    pub const ALL: [&str; 4] = [SERVICE, BATCH, SYSTEM, SYSBATCH];
}

fn default_priority() -> i64 {
    50
}
fn unset() -> i64 {
    UNSET
}
fn default_memory_mb() -> i64 {
    300
}
fn default_kill_timeout() -> Nanos {
    5 * SECOND
}
fn default_ten() -> i64 {
    10
}
fn default_disk_mb() -> i64 {
    300
}
fn default_weight() -> i64 {
    50
}
fn default_one() -> i64 {
    1
}
fn s(v: &str) -> String {
    v.to_string()
}
fn default_cron() -> String {
    s("cron")
}
fn default_utc() -> String {
    s("UTC")
}
fn default_restart_mode() -> String {
    s("restart")
}
fn default_splay() -> Nanos {
    5 * SECOND
}
fn default_perms() -> String {
    s("0644")
}
fn default_left_delim() -> String {
    s("{{")
}
fn default_right_delim() -> String {
    s("}}")
}
fn default_cluster() -> String {
    s("default")
}
fn default_optional() -> String {
    s("optional")
}
fn default_any() -> String {
    s("any")
}
fn default_auto() -> String {
    s("auto")
}
fn default_consul() -> String {
    s("consul")
}
fn default_require_healthy() -> String {
    s("require_healthy")
}
fn default_host_network() -> String {
    s("default")
}
fn default_best_score() -> String {
    s("best_score")
}
fn default_horizontal() -> String {
    s("horizontal")
}
fn default_private() -> String {
    s("private")
}
fn default_grace() -> Nanos {
    SECOND
}

/// A job: the unit users submit. See `reference/http-api.md` §2.3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Job {
    pub region: String,
    pub namespace: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ParentID")]
    pub parent_id: String,
    pub name: String,
    #[serde(rename = "Type")]
    pub job_type: String,
    #[serde(default = "default_priority")]
    pub priority: i64,
    pub all_at_once: bool,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub datacenters: Vec<String>,
    pub node_pool: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub constraints: Vec<Constraint>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub affinities: Vec<Affinity>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub spreads: Vec<Spread>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub task_groups: Vec<TaskGroup>,
    pub update: Option<UpdateStrategy>,
    pub multiregion: Option<Value>,
    pub periodic: Option<PeriodicConfig>,
    pub parameterized_job: Option<ParameterizedJobConfig>,
    pub dispatched: bool,
    pub dispatch_idempotency_token: String,
    /// Base64 in JSON, as Go encodes `[]byte`.
    pub payload: Option<String>,
    /// Input only: merged into every group's reschedule policy, then cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reschedule: Option<ReschedulePolicy>,
    /// Input only: merged into every group's migrate strategy, then cleared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrate: Option<MigrateStrategy>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub meta: BTreeMap<String, String>,
    pub consul_token: String,
    pub consul_namespace: String,
    pub vault_token: String,
    pub vault_namespace: String,
    #[serde(rename = "NomadTokenID")]
    pub nomad_token_id: String,
    #[serde(rename = "UI")]
    pub ui: Option<JobUi>,
    pub stop: bool,
    pub status: String,
    pub status_description: String,
    pub stable: bool,
    pub version: u64,
    pub submit_time: i64,
    pub create_index: u64,
    pub modify_index: u64,
    pub job_modify_index: u64,
    pub version_tag: Option<Value>,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            region: String::new(),
            namespace: String::new(),
            id: String::new(),
            parent_id: String::new(),
            name: String::new(),
            job_type: String::new(),
            priority: default_priority(),
            all_at_once: false,
            datacenters: Vec::new(),
            node_pool: String::new(),
            constraints: Vec::new(),
            affinities: Vec::new(),
            spreads: Vec::new(),
            task_groups: Vec::new(),
            update: None,
            multiregion: None,
            periodic: None,
            parameterized_job: None,
            dispatched: false,
            dispatch_idempotency_token: String::new(),
            payload: None,
            reschedule: None,
            migrate: None,
            meta: BTreeMap::new(),
            consul_token: String::new(),
            consul_namespace: String::new(),
            vault_token: String::new(),
            vault_namespace: String::new(),
            nomad_token_id: String::new(),
            ui: None,
            stop: false,
            status: String::new(),
            status_description: String::new(),
            stable: false,
            version: 0,
            submit_time: 0,
            create_index: 0,
            modify_index: 0,
            job_modify_index: 0,
            version_tag: None,
        }
    }
}

impl Job {
    /// Looks a task group up by name.
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.task_groups.iter().find(|g| g.name == name)
    }

    /// True for periodic or parameterized parents (which get no evaluation on register).
    pub fn is_periodic_or_parameterized(&self) -> bool {
        self.periodic.as_ref().is_some_and(|p| p.enabled) || self.is_parameterized()
    }

    /// True for a parameterized parent (not a dispatched child).
    pub fn is_parameterized(&self) -> bool {
        self.parameterized_job.is_some() && !self.dispatched
    }
}

/// `ui { description, link { label url } }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobUi {
    pub description: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub links: Vec<JobUiLink>,
}

/// One UI link. Nomad's server writes `Url`; its Go client spells it `URL` (decoding is
/// case-insensitive, so both are accepted).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobUiLink {
    pub label: String,
    pub url: String,
}

/// A task group: the unit of placement. Every allocation runs one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskGroup {
    pub name: String,
    /// [`UNSET`] until canonicalised (then 1 or `scaling.min`).
    #[serde(default = "unset")]
    pub count: i64,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub constraints: Vec<Constraint>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub affinities: Vec<Affinity>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub tasks: Vec<Task>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub spreads: Vec<Spread>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub volumes: BTreeMap<String, VolumeRequest>,
    pub restart_policy: Option<RestartPolicy>,
    pub reschedule_policy: Option<ReschedulePolicy>,
    pub ephemeral_disk: Option<EphemeralDisk>,
    pub update: Option<UpdateStrategy>,
    pub migrate: Option<MigrateStrategy>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub networks: Vec<NetworkResource>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub meta: BTreeMap<String, String>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub services: Vec<Service>,
    pub shutdown_delay: Option<Nanos>,
    pub stop_after_client_disconnect: Option<Nanos>,
    pub max_client_disconnect: Option<Nanos>,
    pub scaling: Option<ScalingPolicy>,
    pub consul: Option<ConsulBlock>,
    pub prevent_reschedule_on_lost: bool,
    pub disconnect: Option<DisconnectStrategy>,
    pub max_run_duration: Option<Nanos>,
}

impl Default for TaskGroup {
    fn default() -> Self {
        TaskGroup {
            name: String::new(),
            count: UNSET,
            constraints: Vec::new(),
            affinities: Vec::new(),
            tasks: Vec::new(),
            spreads: Vec::new(),
            volumes: BTreeMap::new(),
            restart_policy: None,
            reschedule_policy: None,
            ephemeral_disk: None,
            update: None,
            migrate: None,
            networks: Vec::new(),
            meta: BTreeMap::new(),
            services: Vec::new(),
            shutdown_delay: None,
            stop_after_client_disconnect: None,
            max_client_disconnect: None,
            scaling: None,
            consul: None,
            prevent_reschedule_on_lost: false,
            disconnect: None,
            max_run_duration: None,
        }
    }
}

impl TaskGroup {
    /// Looks a task up by name.
    pub fn task(&self, name: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

/// A task: one process, container or VM run by a driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Task {
    pub name: String,
    pub driver: String,
    pub user: String,
    pub lifecycle: Option<TaskLifecycle>,
    /// Driver-specific, free-form. Nested HCL blocks arrive as lists of objects.
    #[serde(serialize_with = "empty_map_as_null")]
    pub config: BTreeMap<String, Value>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub constraints: Vec<Constraint>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub affinities: Vec<Affinity>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub env: BTreeMap<String, String>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub services: Vec<Service>,
    pub resources: Option<Resources>,
    pub restart_policy: Option<RestartPolicy>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub meta: BTreeMap<String, String>,
    #[serde(default = "default_kill_timeout")]
    pub kill_timeout: Nanos,
    pub log_config: Option<LogConfig>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub artifacts: Vec<TaskArtifact>,
    pub vault: Option<Vault>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub templates: Vec<Template>,
    pub dispatch_payload: Option<DispatchPayloadConfig>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(rename = "CSIPluginConfig", skip_serializing_if = "Option::is_none")]
    pub csi_plugin_config: Option<Value>,
    pub leader: bool,
    pub shutdown_delay: Nanos,
    pub kill_signal: String,
    pub kind: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub scaling_policies: Vec<ScalingPolicy>,
    pub identity: Option<WorkloadIdentity>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub identities: Vec<WorkloadIdentity>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub actions: Vec<Action>,
    pub consul: Option<ConsulBlock>,
    pub schedule: Option<Value>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub secrets: Vec<Value>,
}

impl Default for Task {
    fn default() -> Self {
        Task {
            name: String::new(),
            driver: String::new(),
            user: String::new(),
            lifecycle: None,
            config: BTreeMap::new(),
            constraints: Vec::new(),
            affinities: Vec::new(),
            env: BTreeMap::new(),
            services: Vec::new(),
            resources: None,
            restart_policy: None,
            meta: BTreeMap::new(),
            kill_timeout: default_kill_timeout(),
            log_config: None,
            artifacts: Vec::new(),
            vault: None,
            templates: Vec::new(),
            dispatch_payload: None,
            volume_mounts: Vec::new(),
            csi_plugin_config: None,
            leader: false,
            shutdown_delay: 0,
            kill_signal: String::new(),
            kind: String::new(),
            scaling_policies: Vec::new(),
            identity: None,
            identities: Vec::new(),
            actions: Vec::new(),
            consul: None,
            schedule: None,
            secrets: Vec::new(),
        }
    }
}

/// `lifecycle { hook, sidecar }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskLifecycle {
    pub hook: String,
    pub sidecar: bool,
}

/// Resources a task asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Resources {
    /// MHz. [`UNSET`] until canonicalised (then 100, or 0 when `cores` is set).
    #[serde(rename = "CPU", default = "unset")]
    pub cpu: i64,
    pub cores: i64,
    #[serde(rename = "MemoryMB", default = "default_memory_mb")]
    pub memory_mb: i64,
    #[serde(rename = "MemoryMaxMB")]
    pub memory_max_mb: i64,
    #[serde(rename = "DiskMB")]
    pub disk_mb: i64,
    #[serde(rename = "IOPS")]
    pub iops: i64,
    #[serde(rename = "SecretsMB", skip_serializing_if = "Option::is_none")]
    pub secrets_mb: Option<i64>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub networks: Vec<NetworkResource>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub devices: Vec<RequestedDevice>,
    #[serde(rename = "NUMA")]
    pub numa: Option<Value>,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: UNSET,
            cores: 0,
            memory_mb: default_memory_mb(),
            memory_max_mb: 0,
            disk_mb: 0,
            iops: 0,
            secrets_mb: None,
            networks: Vec::new(),
            devices: Vec::new(),
            numa: None,
        }
    }
}

/// A network request (group `network {}` or legacy task `resources { network {} }`), and also
/// the offered/allocated network of a node or allocation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkResource {
    pub mode: String,
    pub device: String,
    #[serde(rename = "CIDR")]
    pub cidr: String,
    #[serde(rename = "IP")]
    pub ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(rename = "MBits")]
    pub mbits: i64,
    #[serde(rename = "DNS")]
    pub dns: Option<DnsConfig>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub reserved_ports: Vec<Port>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub dynamic_ports: Vec<Port>,
    #[serde(rename = "CNI")]
    pub cni: Option<Value>,
}

impl NetworkResource {
    /// Every port, static first.
    pub fn ports(&self) -> impl Iterator<Item = &Port> {
        self.reserved_ports.iter().chain(self.dynamic_ports.iter())
    }
}

/// A port: static (`ReservedPorts`, `Value` set) or dynamic (`DynamicPorts`, `Value` chosen by
/// the scheduler).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Port {
    pub label: String,
    pub value: i64,
    pub to: i64,
    #[serde(default = "default_host_network")]
    pub host_network: String,
    pub ignore_collision: bool,
}

impl Default for Port {
    fn default() -> Self {
        Port {
            label: String::new(),
            value: 0,
            to: 0,
            host_network: default_host_network(),
            ignore_collision: false,
        }
    }
}

/// `dns { servers searches options }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DnsConfig {
    #[serde(serialize_with = "empty_vec_as_null")]
    pub servers: Vec<String>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub searches: Vec<String>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub options: Vec<String>,
}

/// `device "<vendor>/<type>/<name>" { count constraint affinity }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RequestedDevice {
    pub name: String,
    #[serde(default = "default_one")]
    pub count: i64,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub constraints: Vec<Constraint>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub affinities: Vec<Affinity>,
}

impl Default for RequestedDevice {
    fn default() -> Self {
        RequestedDevice {
            name: String::new(),
            count: 1,
            constraints: Vec::new(),
            affinities: Vec::new(),
        }
    }
}

/// A hard placement rule: `LTarget Operand RTarget`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Constraint {
    #[serde(rename = "LTarget")]
    pub l_target: String,
    #[serde(rename = "RTarget")]
    pub r_target: String,
    #[serde(rename = "Operand")]
    pub operand: String,
}

impl std::fmt::Display for Constraint {
    /// Nomad's rendering, used as the key of `ConstraintFiltered` metrics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.l_target, self.operand, self.r_target)
    }
}

/// A soft placement preference with a weight in [-100, 100].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Affinity {
    #[serde(rename = "LTarget")]
    pub l_target: String,
    #[serde(rename = "RTarget")]
    pub r_target: String,
    #[serde(rename = "Operand")]
    pub operand: String,
    #[serde(rename = "Weight", default = "default_weight")]
    pub weight: i64,
}

impl Default for Affinity {
    fn default() -> Self {
        Affinity {
            l_target: String::new(),
            r_target: String::new(),
            operand: String::new(),
            weight: 50,
        }
    }
}

/// Spread allocations over the values of an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Spread {
    pub attribute: String,
    #[serde(default = "default_weight")]
    pub weight: i64,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub spread_target: Vec<SpreadTarget>,
}

impl Default for Spread {
    fn default() -> Self {
        Spread {
            attribute: String::new(),
            weight: 50,
            spread_target: Vec::new(),
        }
    }
}

/// `target "<value>" { percent }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SpreadTarget {
    pub value: String,
    pub percent: i64,
}

/// `update {}`: rolling updates and deployments. Fields are `None` until canonicalised.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UpdateStrategy {
    pub stagger: Option<Nanos>,
    pub max_parallel: Option<i64>,
    pub health_check: Option<String>,
    pub min_healthy_time: Option<Nanos>,
    pub healthy_deadline: Option<Nanos>,
    pub progress_deadline: Option<Nanos>,
    pub canary: Option<i64>,
    pub auto_revert: Option<bool>,
    pub auto_promote: Option<bool>,
}

impl UpdateStrategy {
    /// Nomad's default update strategy.
    pub fn nomad_default() -> Self {
        UpdateStrategy {
            stagger: Some(30 * SECOND),
            max_parallel: Some(1),
            health_check: Some("checks".into()),
            min_healthy_time: Some(10 * SECOND),
            healthy_deadline: Some(300 * SECOND),
            progress_deadline: Some(600 * SECOND),
            canary: Some(0),
            auto_revert: Some(false),
            auto_promote: Some(false),
        }
    }
    /// Copies every field that `over` sets.
    pub fn merge(&mut self, over: &UpdateStrategy) {
        macro_rules! m { ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* } }
        m!(
            stagger,
            max_parallel,
            health_check,
            min_healthy_time,
            healthy_deadline,
            progress_deadline,
            canary,
            auto_revert,
            auto_promote
        );
    }
    /// Max parallel (0 disables deployments).
    pub fn max_parallel(&self) -> i64 {
        self.max_parallel.unwrap_or(1)
    }
    /// Number of canaries.
    pub fn canary(&self) -> i64 {
        self.canary.unwrap_or(0)
    }
    /// True when the strategy requests no rolling update at all.
    pub fn is_empty(&self) -> bool {
        self.max_parallel() == 0
    }
}

/// `migrate {}`: how allocations leave a draining node (service jobs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct MigrateStrategy {
    pub max_parallel: Option<i64>,
    pub health_check: Option<String>,
    pub min_healthy_time: Option<Nanos>,
    pub healthy_deadline: Option<Nanos>,
}

impl MigrateStrategy {
    /// Nomad's default migrate strategy.
    pub fn nomad_default() -> Self {
        MigrateStrategy {
            max_parallel: Some(1),
            health_check: Some("checks".into()),
            min_healthy_time: Some(10 * SECOND),
            healthy_deadline: Some(300 * SECOND),
        }
    }
    /// Copies every field that `over` sets.
    pub fn merge(&mut self, over: &MigrateStrategy) {
        macro_rules! m { ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* } }
        m!(max_parallel, health_check, min_healthy_time, healthy_deadline);
    }
    /// Max parallel migrations.
    pub fn max_parallel(&self) -> i64 {
        self.max_parallel.unwrap_or(1)
    }
}

/// `restart {}`: what the client does when a task exits.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RestartPolicy {
    pub attempts: Option<i64>,
    pub interval: Option<Nanos>,
    pub delay: Option<Nanos>,
    pub mode: Option<String>,
    pub render_templates: Option<bool>,
}

impl RestartPolicy {
    /// Nomad's default for a job type.
    pub fn default_for(job_type: &str) -> Self {
        let (attempts, interval) = match job_type {
            job_type::BATCH | job_type::SYSBATCH => (3, 24 * 3600 * SECOND),
            _ => (2, 30 * 60 * SECOND),
        };
        RestartPolicy {
            attempts: Some(attempts),
            interval: Some(interval),
            delay: Some(15 * SECOND),
            mode: Some("fail".into()),
            render_templates: Some(false),
        }
    }
    /// Copies every field that `over` sets.
    pub fn merge(&mut self, over: &RestartPolicy) {
        macro_rules! m { ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* } }
        m!(attempts, interval, delay, mode, render_templates);
    }
    /// Attempts within the interval.
    pub fn attempts(&self) -> i64 {
        self.attempts.unwrap_or(0)
    }
    /// Interval length.
    pub fn interval(&self) -> Nanos {
        self.interval.unwrap_or(0)
    }
    /// Delay between restarts.
    pub fn delay(&self) -> Nanos {
        self.delay.unwrap_or(0)
    }
    /// `fail` or `delay`.
    pub fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or("fail")
    }
}

/// `reschedule {}`: what the server does when an allocation fails.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ReschedulePolicy {
    pub attempts: Option<i64>,
    pub interval: Option<Nanos>,
    pub delay: Option<Nanos>,
    pub delay_function: Option<String>,
    pub max_delay: Option<Nanos>,
    pub unlimited: Option<bool>,
}

impl ReschedulePolicy {
    /// Nomad's default for a job type (`None` for system and sysbatch jobs).
    pub fn default_for(job_type: &str) -> Option<Self> {
        match job_type {
            job_type::SERVICE => Some(ReschedulePolicy {
                attempts: Some(0),
                interval: Some(0),
                delay: Some(30 * SECOND),
                delay_function: Some("exponential".into()),
                max_delay: Some(3600 * SECOND),
                unlimited: Some(true),
            }),
            job_type::BATCH => Some(ReschedulePolicy {
                attempts: Some(1),
                interval: Some(24 * 3600 * SECOND),
                delay: Some(5 * SECOND),
                delay_function: Some("constant".into()),
                max_delay: Some(0),
                unlimited: Some(false),
            }),
            _ => None,
        }
    }
    /// Copies every field that `over` sets.
    pub fn merge(&mut self, over: &ReschedulePolicy) {
        macro_rules! m { ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* } }
        m!(attempts, interval, delay, delay_function, max_delay, unlimited);
    }
    /// Attempts within the interval.
    pub fn attempts(&self) -> i64 {
        self.attempts.unwrap_or(0)
    }
    /// Interval.
    pub fn interval(&self) -> Nanos {
        self.interval.unwrap_or(0)
    }
    /// Base delay.
    pub fn delay(&self) -> Nanos {
        self.delay.unwrap_or(0)
    }
    /// `constant`, `exponential` or `fibonacci`.
    pub fn delay_function(&self) -> &str {
        self.delay_function.as_deref().unwrap_or("constant")
    }
    /// Cap on the delay.
    pub fn max_delay(&self) -> Nanos {
        self.max_delay.unwrap_or(0)
    }
    /// Unlimited reschedules.
    pub fn unlimited(&self) -> bool {
        self.unlimited.unwrap_or(false)
    }
}

/// `ephemeral_disk { size sticky migrate }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EphemeralDisk {
    pub sticky: bool,
    #[serde(rename = "SizeMB", default = "default_disk_mb")]
    pub size_mb: i64,
    pub migrate: bool,
}

impl Default for EphemeralDisk {
    fn default() -> Self {
        EphemeralDisk {
            sticky: false,
            size_mb: 300,
            migrate: false,
        }
    }
}

/// `periodic { crons prohibit_overlap time_zone enabled }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PeriodicConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub spec: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub specs: Vec<String>,
    #[serde(default = "default_cron")]
    pub spec_type: String,
    pub prohibit_overlap: bool,
    #[serde(default = "default_utc")]
    pub time_zone: String,
}

impl Default for PeriodicConfig {
    fn default() -> Self {
        PeriodicConfig {
            enabled: true,
            spec: String::new(),
            specs: Vec::new(),
            spec_type: default_cron(),
            prohibit_overlap: false,
            time_zone: default_utc(),
        }
    }
}

/// `parameterized { payload meta_required meta_optional }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ParameterizedJobConfig {
    #[serde(default = "default_optional")]
    pub payload: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub meta_required: Vec<String>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub meta_optional: Vec<String>,
}

impl Default for ParameterizedJobConfig {
    fn default() -> Self {
        ParameterizedJobConfig {
            payload: default_optional(),
            meta_required: Vec::new(),
            meta_optional: Vec::new(),
        }
    }
}

/// A service registration request (group or task level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Service {
    pub name: String,
    pub task_name: String,
    pub port_label: String,
    #[serde(default = "default_auto")]
    pub address_mode: String,
    pub address: String,
    pub enable_tag_override: bool,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub tags: Vec<String>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub canary_tags: Vec<String>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub checks: Vec<ServiceCheck>,
    pub connect: Option<Value>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub meta: BTreeMap<String, String>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub canary_meta: BTreeMap<String, String>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub tagged_addresses: BTreeMap<String, String>,
    #[serde(default = "default_require_healthy")]
    pub on_update: String,
    #[serde(default = "default_consul")]
    pub provider: String,
    #[serde(default = "default_cluster")]
    pub cluster: String,
    pub namespace: String,
    pub weights: Option<Value>,
    pub identity: Option<WorkloadIdentity>,
    pub kind: String,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            name: String::new(),
            task_name: String::new(),
            port_label: String::new(),
            address_mode: default_auto(),
            address: String::new(),
            enable_tag_override: false,
            tags: Vec::new(),
            canary_tags: Vec::new(),
            checks: Vec::new(),
            connect: None,
            meta: BTreeMap::new(),
            canary_meta: BTreeMap::new(),
            tagged_addresses: BTreeMap::new(),
            on_update: default_require_healthy(),
            provider: default_consul(),
            cluster: default_cluster(),
            namespace: String::new(),
            weights: None,
            identity: None,
            kind: String::new(),
        }
    }
}

/// A health check of a service.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceCheck {
    pub name: String,
    #[serde(rename = "Type")]
    pub check_type: String,
    pub command: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub args: Vec<String>,
    pub path: String,
    pub protocol: String,
    pub port_label: String,
    pub expose: bool,
    pub address_mode: String,
    pub interval: Nanos,
    pub timeout: Nanos,
    pub initial_status: String,
    #[serde(rename = "TLSServerName")]
    pub tls_server_name: String,
    #[serde(rename = "TLSSkipVerify")]
    pub tls_skip_verify: bool,
    #[serde(serialize_with = "empty_map_as_null")]
    pub header: BTreeMap<String, Vec<String>>,
    pub method: String,
    pub check_restart: Option<CheckRestart>,
    #[serde(rename = "GRPCService")]
    pub grpc_service: String,
    #[serde(rename = "GRPCUseTLS")]
    pub grpc_use_tls: bool,
    pub task_name: String,
    pub success_before_passing: i64,
    pub failures_before_critical: i64,
    pub failures_before_warning: i64,
    pub body: String,
    pub on_update: String,
    pub notes: String,
}

/// `check_restart { limit grace ignore_warnings }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CheckRestart {
    pub limit: i64,
    #[serde(default = "default_grace")]
    pub grace: Nanos,
    pub ignore_warnings: bool,
}

impl Default for CheckRestart {
    fn default() -> Self {
        CheckRestart {
            limit: 0,
            grace: SECOND,
            ignore_warnings: false,
        }
    }
}

/// `template {}`: a file rendered into the task directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Template {
    pub source_path: String,
    pub dest_path: String,
    pub embedded_tmpl: String,
    #[serde(default = "default_restart_mode")]
    pub change_mode: String,
    pub change_signal: String,
    pub change_script: Option<ChangeScript>,
    #[serde(default = "default_splay")]
    pub splay: Nanos,
    #[serde(default = "default_perms")]
    pub perms: String,
    pub uid: Option<i64>,
    pub gid: Option<i64>,
    #[serde(default = "default_left_delim")]
    pub left_delim: String,
    #[serde(default = "default_right_delim")]
    pub right_delim: String,
    pub envvars: bool,
    pub vault_grace: Nanos,
    pub wait: Option<WaitConfig>,
    pub err_missing_key: bool,
    pub once: bool,
}

impl Default for Template {
    fn default() -> Self {
        Template {
            source_path: String::new(),
            dest_path: String::new(),
            embedded_tmpl: String::new(),
            change_mode: default_restart_mode(),
            change_signal: String::new(),
            change_script: None,
            splay: default_splay(),
            perms: default_perms(),
            uid: None,
            gid: None,
            left_delim: default_left_delim(),
            right_delim: default_right_delim(),
            envvars: false,
            vault_grace: 0,
            wait: None,
            err_missing_key: false,
            once: false,
        }
    }
}

/// `change_script { command args timeout fail_on_error }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ChangeScript {
    pub command: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub args: Vec<String>,
    #[serde(default = "default_splay")]
    pub timeout: Nanos,
    pub fail_on_error: bool,
}

impl Default for ChangeScript {
    fn default() -> Self {
        ChangeScript {
            command: String::new(),
            args: Vec::new(),
            timeout: 5 * SECOND,
            fail_on_error: false,
        }
    }
}

/// `wait { min max }` of a template.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct WaitConfig {
    pub min: Option<Nanos>,
    pub max: Option<Nanos>,
}

/// `artifact {}`: something downloaded into the task directory before start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskArtifact {
    pub getter_source: String,
    #[serde(serialize_with = "empty_map_as_null")]
    pub getter_options: BTreeMap<String, String>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub getter_headers: BTreeMap<String, String>,
    #[serde(default = "default_any")]
    pub getter_mode: String,
    pub getter_insecure: bool,
    pub relative_dest: String,
    pub chown: bool,
}

impl Default for TaskArtifact {
    fn default() -> Self {
        TaskArtifact {
            getter_source: String::new(),
            getter_options: BTreeMap::new(),
            getter_headers: BTreeMap::new(),
            getter_mode: default_any(),
            getter_insecure: false,
            relative_dest: String::new(),
            chown: false,
        }
    }
}

/// `logs { max_files max_file_size disabled }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct LogConfig {
    #[serde(default = "default_ten")]
    pub max_files: i64,
    #[serde(rename = "MaxFileSizeMB", default = "default_ten")]
    pub max_file_size_mb: i64,
    pub disabled: bool,
    /// Deprecated input alias (`enabled = false` means disabled); cleared by canonicalisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_files: 10,
            max_file_size_mb: 10,
            disabled: false,
            enabled: None,
        }
    }
}

/// `volume "<name>" {}` in a group.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeRequest {
    pub name: String,
    #[serde(rename = "Type")]
    pub volume_type: String,
    pub source: String,
    pub read_only: bool,
    pub sticky: bool,
    pub access_mode: String,
    pub attachment_mode: String,
    pub mount_options: Option<CsiMountOptions>,
    pub per_alloc: bool,
}

/// `mount_options { fs_type mount_flags }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CsiMountOptions {
    #[serde(rename = "FSType")]
    pub fs_type: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub mount_flags: Vec<String>,
}

/// `volume_mount {}` in a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeMount {
    pub volume: String,
    pub destination: String,
    pub read_only: bool,
    #[serde(default = "default_private")]
    pub propagation_mode: String,
    #[serde(rename = "SELinuxLabel")]
    pub selinux_label: String,
}

impl Default for VolumeMount {
    fn default() -> Self {
        VolumeMount {
            volume: String::new(),
            destination: String::new(),
            read_only: false,
            propagation_mode: default_private(),
            selinux_label: String::new(),
        }
    }
}

/// `vault {}`: carried, not acted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Vault {
    #[serde(serialize_with = "empty_vec_as_null")]
    pub policies: Vec<String>,
    pub role: String,
    pub namespace: String,
    #[serde(default = "default_cluster")]
    pub cluster: String,
    #[serde(default = "default_true")]
    pub env: bool,
    pub disable_file: bool,
    #[serde(default = "default_restart_mode")]
    pub change_mode: String,
    pub change_signal: String,
    pub allow_token_expiration: bool,
}

impl Default for Vault {
    fn default() -> Self {
        Vault {
            policies: Vec::new(),
            role: String::new(),
            namespace: String::new(),
            cluster: default_cluster(),
            env: true,
            disable_file: false,
            change_mode: default_restart_mode(),
            change_signal: String::new(),
            allow_token_expiration: false,
        }
    }
}

/// `identity {}`: carried, not acted on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct WorkloadIdentity {
    pub name: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub audience: Vec<String>,
    pub change_mode: String,
    pub change_signal: String,
    pub env: bool,
    pub file: bool,
    pub filepath: String,
    pub service_name: String,
    #[serde(rename = "TTL")]
    pub ttl: Nanos,
}

/// `dispatch_payload { file }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DispatchPayloadConfig {
    pub file: String,
}

/// `scaling {}` of a group (or `scaling "cpu"|"mem"` of a task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ScalingPolicy {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Type", default = "default_horizontal")]
    pub policy_type: String,
    #[serde(serialize_with = "empty_map_as_null")]
    pub target: BTreeMap<String, String>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub policy: BTreeMap<String, Value>,
    /// [`UNSET`] until canonicalised (then the group count).
    #[serde(default = "unset")]
    pub min: i64,
    pub max: Option<i64>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Default for ScalingPolicy {
    fn default() -> Self {
        ScalingPolicy {
            id: String::new(),
            policy_type: default_horizontal(),
            target: BTreeMap::new(),
            policy: BTreeMap::new(),
            min: UNSET,
            max: None,
            enabled: true,
            create_index: 0,
            modify_index: 0,
        }
    }
}

/// `consul { namespace cluster partition }` of a group or task.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ConsulBlock {
    pub namespace: String,
    pub cluster: String,
    pub partition: String,
}

/// `disconnect { lost_after stop_on_client_after replace reconcile }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DisconnectStrategy {
    pub lost_after: Nanos,
    pub stop_on_client_after: Option<Nanos>,
    #[serde(default = "default_true")]
    pub replace: bool,
    #[serde(default = "default_best_score")]
    pub reconcile: String,
}

impl Default for DisconnectStrategy {
    fn default() -> Self {
        DisconnectStrategy {
            lost_after: 0,
            stop_on_client_after: None,
            replace: true,
            reconcile: default_best_score(),
        }
    }
}

/// `action "<name>" { command args }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Action {
    pub name: String,
    pub command: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub args: Vec<String>,
}
