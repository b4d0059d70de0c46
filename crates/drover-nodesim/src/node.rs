//! What a simulated node looks like to the servers: a [`Node`] as a real Linux client would
//! fingerprint it, and the allocation reports a real client would send.
//!
//! Everything here is a pure function of the configuration, the node's index and `now`, so a
//! node is rebuilt when needed (re-registration) instead of kept in memory, and a restarted
//! simulator presents the same nodes (same IDs) again.

use std::collections::BTreeMap;

use drover_types::alloc::{AllocDeploymentStatus, client_status};
use drover_types::job::NetworkResource;
use drover_types::node::{
    DriverInfo, NodeCpuResources, NodeDiskResources, NodeMemoryResources, NodeReservedCpu,
    NodeReservedResources, NodeResources, node_status,
};
use drover_types::time::Timestamp;
use drover_types::{Allocation, Node, TaskEvent, TaskState};
use uuid::Uuid;

use crate::SimConfig;

/// Namespace of the version-5 UUIDs of simulated nodes (a fixed random value).
const NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_0d57_9a3e_4b8e_b1d2_5f0a_c3e4_7d91);

/// The stable ID of node `index` under `prefix`: the same on every run.
pub fn node_id(prefix: &str, index: usize) -> String {
    Uuid::new_v5(&NAMESPACE, format!("{prefix}/{index}").as_bytes()).to_string()
}

fn secret_id(prefix: &str, index: usize) -> String {
    Uuid::new_v5(&NAMESPACE, format!("{prefix}/{index}/secret").as_bytes()).to_string()
}

/// The node's name: `sim-00042`.
pub fn node_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:05}")
}

/// The loopback address node `index` claims: `127.0.x.y`, x in 1..=255, y in 1..=250. Only
/// loopback addresses, so nothing can ever be dialled by mistake on a real network.
pub fn node_ip(index: usize) -> String {
    let x = 1 + (index / 250) % 255;
    let y = 1 + index % 250;
    format!("127.0.{x}.{y}")
}

/// Node `index` as it registers: status `initializing`, resources from the configuration,
/// attributes like a Linux client's fingerprint.
pub fn build_node(cfg: &SimConfig, index: usize) -> Node {
    let ip = node_ip(index);
    let name = node_name(&cfg.node_prefix, index);
    let mut attributes = BTreeMap::new();
    let total_bytes = |mb: i64| (mb.max(0) as u64 * 1024 * 1024).to_string();
    for (k, v) in [
        ("kernel.name", "linux".to_string()),
        ("kernel.arch", "x86_64".to_string()),
        ("kernel.version", "6.1.0-sim".to_string()),
        ("os.name", "debian".to_string()),
        ("os.version", "12".to_string()),
        ("os.cgroups.version", "2".to_string()),
        ("cpu.arch", "amd64".to_string()),
        ("cpu.modelname", "Drover Simulated CPU".to_string()),
        ("cpu.numcores", cfg.cores.to_string()),
        ("cpu.frequency", (cfg.cpu_mhz / cfg.cores.max(1)).to_string()),
        ("cpu.totalcompute", cfg.cpu_mhz.to_string()),
        ("cpu.usablecompute", cfg.cpu_mhz.to_string()),
        ("cpu.reservablecores", cfg.cores.to_string()),
        ("memory.totalbytes", total_bytes(cfg.memory_mb)),
        ("unique.storage.bytestotal", total_bytes(cfg.disk_mb)),
        ("unique.storage.volume", "/dev/sim".to_string()),
        ("unique.hostname", name.clone()),
        ("unique.network.ip-address", ip.clone()),
        ("unique.advertise.address", format!("{ip}:4646")),
        ("nomad.version", env!("CARGO_PKG_VERSION").to_string()),
        ("nomad.revision", "nodesim".to_string()),
        ("nomad.service_discovery", "true".to_string()),
    ] {
        attributes.insert(k.to_string(), v);
    }
    let mut drivers = BTreeMap::new();
    for d in &cfg.drivers {
        attributes.insert(format!("driver.{d}"), "1".to_string());
        drivers.insert(
            d.clone(),
            DriverInfo {
                detected: true,
                healthy: true,
                health_description: "Healthy".into(),
                ..Default::default()
            },
        );
    }
    Node {
        id: node_id(&cfg.node_prefix, index),
        secret_id: secret_id(&cfg.node_prefix, index),
        datacenter: cfg.datacenter.clone(),
        name,
        http_addr: format!("{ip}:4646"),
        attributes,
        node_resources: Some(NodeResources {
            cpu: NodeCpuResources {
                cpu_shares: cfg.cpu_mhz,
                total_cpu_cores: cfg.cores,
                reservable_cpu_cores: (0..cfg.cores).collect(),
            },
            memory: NodeMemoryResources {
                memory_mb: cfg.memory_mb,
            },
            disk: NodeDiskResources { disk_mb: cfg.disk_mb },
            networks: vec![NetworkResource {
                mode: "host".into(),
                device: "lo".into(),
                cidr: format!("{ip}/32"),
                ip,
                mbits: 1000,
                ..Default::default()
            }],
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            ..Default::default()
        }),
        reserved_resources: Some(NodeReservedResources {
            cpu: NodeReservedCpu::default(),
            ..Default::default()
        }),
        node_class: cfg.node_class.clone(),
        node_pool: "default".into(),
        scheduling_eligibility: "eligible".into(),
        status: node_status::INITIALIZING.into(),
        drivers,
        ..Default::default()
    }
}

/// The task names of an allocation's group (from the job it carries); the group's name when the
/// job is missing.
pub fn task_names(a: &Allocation) -> Vec<String> {
    let names: Vec<String> = a
        .job
        .as_ref()
        .and_then(|j| j.group(&a.task_group))
        .map(|g| g.tasks.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    if names.is_empty() {
        vec![a.task_group.clone()]
    } else {
        names
    }
}

fn event(kind: &str, message: &str, now: i64) -> TaskEvent {
    TaskEvent {
        event_type: kind.into(),
        time: now,
        message: message.into(),
        display_message: message.into(),
        ..Default::default()
    }
}

fn report(
    id: &str,
    node_id: &str,
    status: &str,
    description: &str,
    tasks: BTreeMap<String, TaskState>,
) -> Allocation {
    Allocation {
        id: id.to_string(),
        node_id: node_id.to_string(),
        client_status: status.into(),
        client_description: description.into(),
        task_states: tasks,
        ..Default::default()
    }
}

/// The report of a newly started allocation: every task `running` after `Received`,
/// `Task Setup` and `Started`; healthy at once when the allocation is part of a deployment.
pub fn running_update(a: &Allocation, now: i64) -> Allocation {
    let tasks = task_names(a)
        .into_iter()
        .map(|t| {
            let state = TaskState {
                state: "running".into(),
                started_at: Some(Timestamp(now)),
                events: vec![
                    event("Received", "Task received by client", now),
                    event("Task Setup", "Building Task Directory", now),
                    event("Started", "Task started by client", now),
                ],
                ..Default::default()
            };
            (t, state)
        })
        .collect();
    let mut r = report(
        &a.id,
        &a.node_id,
        client_status::RUNNING,
        "Tasks are running",
        tasks,
    );
    if !a.deployment_id.is_empty() {
        r.deployment_status = Some(AllocDeploymentStatus {
            healthy: Some(true),
            timestamp: Some(Timestamp(now)),
            canary: a.deployment_status.as_ref().is_some_and(|d| d.canary),
            modify_index: 0,
        });
    }
    r
}

/// The report of an allocation the server told to stop: every task `dead` after `Killing`,
/// `Killed`; client status `complete`.
pub fn complete_update(id: &str, node_id: &str, tasks: &[String], now: i64) -> Allocation {
    let tasks = tasks
        .iter()
        .map(|t| {
            let state = TaskState {
                state: "dead".into(),
                finished_at: Some(Timestamp(now)),
                events: vec![
                    event("Killing", "Sent interrupt. Waiting 5s before force killing", now),
                    event("Killed", "Task successfully killed", now),
                ],
                ..Default::default()
            };
            (t.clone(), state)
        })
        .collect();
    report(
        id,
        node_id,
        client_status::COMPLETE,
        "All tasks have completed",
        tasks,
    )
}

/// The report of an allocation whose tasks exited with code 1 (`-fail-after`): client status
/// `failed`.
pub fn failed_update(id: &str, node_id: &str, tasks: &[String], now: i64) -> Allocation {
    let tasks = tasks
        .iter()
        .map(|t| {
            let mut terminated = event("Terminated", "Exit Code: 1", now);
            terminated.exit_code = 1;
            let state = TaskState {
                state: "dead".into(),
                failed: true,
                finished_at: Some(Timestamp(now)),
                events: vec![terminated, event("Not Restarting", "Simulated failure", now)],
                ..Default::default()
            };
            (t.clone(), state)
        })
        .collect();
    report(id, node_id, client_status::FAILED, "Failed tasks", tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(node_id("sim", 42), node_id("sim", 42));
        assert_ne!(node_id("sim", 42), node_id("sim", 43));
        assert_ne!(node_id("sim", 42), node_id("other", 42));
        assert_eq!(node_name("sim", 42), "sim-00042");
    }

    #[test]
    fn addresses_stay_on_loopback() {
        for i in [0, 249, 250, 5_000, 63_749, 63_750, 1_000_000] {
            let ip: std::net::Ipv4Addr = node_ip(i).parse().expect("ip");
            assert!(ip.is_loopback(), "{ip}");
            assert_ne!(ip.octets()[3], 0);
        }
        assert_ne!(node_ip(0), node_ip(250));
    }

    #[test]
    fn a_node_looks_like_a_linux_client() {
        let cfg = SimConfig::default();
        let n = build_node(&cfg, 7);
        assert_eq!(n.status, "initializing");
        assert_eq!(n.attributes["kernel.name"], "linux");
        assert_eq!(n.attributes["driver.raw_exec"], "1");
        assert_eq!(n.attributes["unique.network.ip-address"], node_ip(7));
        assert!(n.drivers["exec"].healthy && n.drivers["exec"].detected);
        let r = n.node_resources.expect("resources");
        assert_eq!(r.cpu.cpu_shares, 4000);
        assert_eq!(r.memory.memory_mb, 8192);
    }
}
