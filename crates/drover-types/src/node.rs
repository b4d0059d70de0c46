//! Client nodes: what a client registers ([`Node`]), what it offers ([`NodeResources`]), its
//! drivers ([`DriverInfo`]) and the list stub served by `GET /v1/nodes`.
//!
//! Status vocabulary: `initializing → ready`; a missed heartbeat TTL makes it `down` (or
//! `disconnected`). A node takes new work only when [`Node::ready`]: status ready, not draining,
//! eligible.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::job::NetworkResource;
use crate::serde_util::{empty_map_as_null, empty_vec_as_null};
use crate::time::{Nanos, Timestamp, opt_time};

/// Node status strings.
pub mod node_status {
    /// Registered, fingerprinting not finished.
    pub const INITIALIZING: &str = "initializing";
    /// Heartbeating and usable.
    pub const READY: &str = "ready";
    /// Missed its heartbeat TTL.
    pub const DOWN: &str = "down";
    /// Missed its heartbeat but has allocations configured to tolerate disconnects.
    pub const DISCONNECTED: &str = "disconnected";
}

/// A client node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    /// Always blanked in API output.
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    pub datacenter: String,
    pub name: String,
    #[serde(rename = "HTTPAddr")]
    pub http_addr: String,
    #[serde(rename = "TLSEnabled")]
    pub tls_enabled: bool,
    #[serde(serialize_with = "empty_map_as_null")]
    pub attributes: BTreeMap<String, String>,
    pub node_resources: Option<NodeResources>,
    pub reserved_resources: Option<NodeReservedResources>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub links: BTreeMap<String, String>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub meta: BTreeMap<String, String>,
    pub node_class: String,
    pub node_pool: String,
    pub computed_class: String,
    pub cgroup_parent: String,
    pub drain_strategy: Option<DrainStrategy>,
    /// Synthesised: `DrainStrategy != null`.
    pub drain: bool,
    pub scheduling_eligibility: String,
    pub status: String,
    pub status_description: String,
    /// Unix **seconds** (the one field Nomad encodes that way).
    pub status_updated_at: i64,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub events: Vec<NodeEvent>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub drivers: BTreeMap<String, DriverInfo>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub host_volumes: BTreeMap<String, HostVolumeInfo>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub host_networks: BTreeMap<String, Value>,
    pub last_drain: Option<DrainMetadata>,
    pub node_max_allocs: i64,
    pub last_missed_heartbeat_index: u64,
    pub last_alloc_update_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Node {
    /// Ready for new placements: status ready, no drain, eligible.
    pub fn ready(&self) -> bool {
        self.status == node_status::READY
            && self.drain_strategy.is_none()
            && self.scheduling_eligibility != "ineligible"
    }
    /// Down is the only terminal node status.
    pub fn terminal(&self) -> bool {
        self.status == node_status::DOWN
    }
}

/// What a node offers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeResources {
    pub cpu: NodeCpuResources,
    pub memory: NodeMemoryResources,
    pub disk: NodeDiskResources,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub devices: Vec<NodeDeviceResource>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub networks: Vec<NetworkResource>,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub node_networks: Vec<Value>,
    pub processors: Option<Value>,
    pub min_dynamic_port: i64,
    pub max_dynamic_port: i64,
}

/// CPU offered: shares (MHz) and cores.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeCpuResources {
    pub cpu_shares: i64,
    pub total_cpu_cores: i64,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub reservable_cpu_cores: Vec<i64>,
}

/// Memory offered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeMemoryResources {
    #[serde(rename = "MemoryMB")]
    pub memory_mb: i64,
}

/// Disk offered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeDiskResources {
    #[serde(rename = "DiskMB")]
    pub disk_mb: i64,
}

/// A group of identical devices on a node (e.g. four `nvidia/gpu/1080ti`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeDeviceResource {
    pub vendor: String,
    #[serde(rename = "Type")]
    pub device_type: String,
    pub name: String,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub instances: Vec<NodeDevice>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub attributes: BTreeMap<String, Value>,
}

/// One device instance.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeDevice {
    #[serde(rename = "ID")]
    pub id: String,
    pub healthy: bool,
    pub health_description: String,
    pub locality: Option<Value>,
}

/// What the operator reserved on a node for non-Nomad use.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeReservedResources {
    pub cpu: NodeReservedCpu,
    pub memory: NodeMemoryResources,
    pub disk: NodeDiskResources,
    pub networks: NodeReservedNetwork,
}

/// Reserved CPU.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeReservedCpu {
    pub cpu_shares: i64,
    #[serde(serialize_with = "empty_vec_as_null")]
    pub reserved_cpu_cores: Vec<i64>,
}

/// Reserved host ports, as Nomad's comma/range string (`"22,80,8500-8600"`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeReservedNetwork {
    pub reserved_host_ports: String,
}

/// A driver's fingerprint on a node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DriverInfo {
    #[serde(serialize_with = "empty_map_as_null")]
    pub attributes: BTreeMap<String, String>,
    pub detected: bool,
    pub healthy: bool,
    pub health_description: String,
    #[serde(with = "opt_time")]
    pub update_time: Option<Timestamp>,
}

/// `node drain` parameters.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DrainStrategy {
    /// `<0` force now, `0` no deadline, `>0` deadline.
    pub deadline: Nanos,
    pub ignore_system_jobs: bool,
    #[serde(with = "opt_time")]
    pub force_deadline: Option<Timestamp>,
    #[serde(with = "opt_time")]
    pub started_at: Option<Timestamp>,
}

/// The record of the last drain.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DrainMetadata {
    #[serde(with = "opt_time")]
    pub started_at: Option<Timestamp>,
    #[serde(with = "opt_time")]
    pub updated_at: Option<Timestamp>,
    pub status: String,
    #[serde(rename = "AccessorID")]
    pub accessor_id: String,
    #[serde(serialize_with = "empty_map_as_null")]
    pub meta: BTreeMap<String, String>,
}

/// An entry of a node's event history (the last 10 are kept).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeEvent {
    pub message: String,
    pub subsystem: String,
    #[serde(serialize_with = "empty_map_as_null")]
    pub details: BTreeMap<String, String>,
    #[serde(with = "opt_time")]
    pub timestamp: Option<Timestamp>,
    pub create_index: u64,
}

/// A host volume a client exposes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HostVolumeInfo {
    pub path: String,
    pub read_only: bool,
    #[serde(rename = "ID")]
    pub id: String,
}

/// An item of `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeListStub {
    pub address: String,
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    pub datacenter: String,
    pub name: String,
    pub node_pool: String,
    pub node_class: String,
    pub version: String,
    pub drain: bool,
    pub scheduling_eligibility: String,
    pub status: String,
    pub status_description: String,
    #[serde(serialize_with = "empty_map_as_null")]
    pub drivers: BTreeMap<String, DriverInfo>,
    #[serde(serialize_with = "empty_map_as_null")]
    pub host_volumes: BTreeMap<String, HostVolumeInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_resources: Option<NodeResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_resources: Option<NodeReservedResources>,
    pub last_drain: Option<DrainMetadata>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Node {
    /// The list stub. `with_os` adds `Attributes{"os.name"}`, `with_resources` the resources.
    pub fn stub(&self, with_os: bool, with_resources: bool) -> NodeListStub {
        let address = self
            .http_addr
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_default();
        let mut attributes = BTreeMap::new();
        if with_os && let Some(os) = self.attributes.get("os.name") {
            attributes.insert("os.name".to_string(), os.clone());
        }
        NodeListStub {
            address,
            id: self.id.clone(),
            attributes,
            datacenter: self.datacenter.clone(),
            name: self.name.clone(),
            node_pool: self.node_pool.clone(),
            node_class: self.node_class.clone(),
            version: self.attributes.get("nomad.version").cloned().unwrap_or_default(),
            drain: self.drain_strategy.is_some(),
            scheduling_eligibility: self.scheduling_eligibility.clone(),
            status: self.status.clone(),
            status_description: self.status_description.clone(),
            drivers: self.drivers.clone(),
            host_volumes: self.host_volumes.clone(),
            node_resources: if with_resources {
                self.node_resources.clone()
            } else {
                None
            },
            reserved_resources: if with_resources {
                self.reserved_resources.clone()
            } else {
                None
            },
            last_drain: self.last_drain.clone(),
            create_index: self.create_index,
            modify_index: self.modify_index,
        }
    }
}
