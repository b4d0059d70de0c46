//! Node-level checks that are not constraints: datacenter and pool matching, drivers,
//! network modes and host networks, host volumes.

use drover_types::job::NetworkResource;
use drover_types::{Node, TaskGroup};
use serde_json::Value;

use super::target::resolve_target;

/// Glob match on chars: `*` any run (including empty), `?` exactly one char, everything else
/// literal. Linear-time two-pointer matching with a single backtrack point.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Glob match for datacenters: `*` any run, `?` one char; exact otherwise. True when any
/// pattern matches (an empty list matches nothing).
pub fn datacenter_matches(patterns: &[String], datacenter: &str) -> bool {
    patterns.iter().any(|p| glob(p, datacenter))
}

/// Node pool match: job pool `"all"` matches every node; else equality, `""` on either side
/// meaning `"default"`.
pub fn node_pool_matches(job_pool: &str, node_pool: &str) -> bool {
    fn norm(p: &str) -> &str {
        if p.is_empty() { "default" } else { p }
    }
    job_pool == "all" || norm(job_pool) == norm(node_pool)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Every driver used by the group's tasks is detected and healthy on the node (or, when absent
/// from `node.drivers`, attribute `driver.<name>` parses as a true bool: `"1"`, `"true"`, ...).
/// `Err` = the first missing driver name, in task order.
pub fn drivers_ok(node: &Node, tg: &TaskGroup) -> Result<(), String> {
    for task in &tg.tasks {
        let name = task.driver.as_str();
        let ok = match node.drivers.get(name) {
            Some(info) => info.detected && info.healthy,
            None => node
                .attributes
                .get(&format!("driver.{name}"))
                .and_then(|v| parse_go_bool(v))
                .unwrap_or(false),
        };
        if !ok {
            return Err(name.to_string());
        }
    }
    Ok(())
}

/// The fingerprinted node networks (`NodeResources.NodeNetworks`, JSON objects).
fn node_networks(node: &Node) -> &[Value] {
    node.node_resources
        .as_ref()
        .map(|r| r.node_networks.as_slice())
        .unwrap_or_default()
}

/// A node network's mode, `""` read as `"host"`.
fn node_network_mode(nw: &Value) -> &str {
    match nw.get("Mode").and_then(Value::as_str) {
        None | Some("") => "host",
        Some(m) => m,
    }
}

fn mode_available(node: &Node, mode: &str) -> bool {
    let networks = node_networks(node);
    match mode {
        "" | "host" | "none" => true,
        "bridge" => {
            networks.is_empty()
                || node.attributes.contains_key("nomad.bridge.hairpin_mode")
                || networks.iter().any(|n| node_network_mode(n) == "bridge")
        }
        other => {
            networks.iter().any(|n| node_network_mode(n) == other)
                || other.strip_prefix("cni/").is_some_and(|name| {
                    !name.is_empty() && node.attributes.contains_key(&format!("cni.{name}"))
                })
        }
    }
}

/// The group network mode is available on the node: `""` / `"host"` / `"none"` always;
/// `"bridge"` if a node network has mode `bridge`, attribute `nomad.bridge.hairpin_mode` is
/// set, or the node fingerprinted no networks at all (old clients); any other mode
/// (`"cni/<name>"`, ...) if a node network has exactly that mode, `"cni/<name>"` also when
/// attribute `cni.<name>` is set. Every group network is checked (Nomad allows one).
pub fn network_mode_ok(node: &Node, tg: &TaskGroup) -> bool {
    tg.networks.iter().all(|n| mode_available(node, &n.mode))
}

fn host_network_exists(node: &Node, name: &str) -> bool {
    node.host_networks.contains_key(name)
        || node_networks(node).iter().any(|nw| {
            nw.get("Addresses")
                .and_then(Value::as_array)
                .is_some_and(|addrs| {
                    addrs
                        .iter()
                        .any(|a| a.get("Alias").and_then(Value::as_str) == Some(name))
                })
        })
}

fn port_host_networks_ok(node: &Node, network: &NetworkResource) -> Result<(), String> {
    for port in network.ports() {
        let wanted = port.host_network.as_str();
        if wanted.is_empty() || wanted == "default" {
            continue;
        }
        // `host_network = "${meta.public_net}"` is interpolated against the node.
        let Some(name) = resolve_target(wanted, node) else {
            return Err(format!(
                "missing host network {wanted:?} for port {:?}",
                port.label
            ));
        };
        if name != "default" && !host_network_exists(node, &name) {
            return Err(format!("missing host network {name:?} for port {:?}", port.label));
        }
    }
    Ok(())
}

/// Every group-network port naming a host network (other than `default`) finds it on the
/// node: as a key of `node.host_networks` or as an address `Alias` of a node network. The
/// name may be interpolated (`${meta.<k>}` / `${attr.<k>}`). `Err` is the filter reason
/// (`missing host network "public" for port "http"`).
pub fn host_networks_ok(node: &Node, tg: &TaskGroup) -> Result<(), String> {
    tg.networks
        .iter()
        .try_for_each(|n| port_host_networks_ok(node, n))
}

/// Every `type = "host"` volume request's `source` is exposed by the node (a key of
/// `node.host_volumes`, or the ID of a dynamic host volume), and a read-only host volume is
/// not requested writable (`read_only = false` and an access mode other than
/// `single-node-reader-only`). A `per_alloc` request for allocation `web.db[2]` needs the
/// volume `source[2]`; when the allocation's name is not known (`alloc_name` empty) any
/// `source[<n>]` will do. An empty type reads as `host`; CSI volumes are not scheduled here
/// (true); unknown types never fit.
pub fn host_volumes_ok(node: &Node, tg: &TaskGroup, alloc_name: &str) -> bool {
    tg.volumes.values().all(|req| match req.volume_type.as_str() {
        "csi" => true,
        "host" | "" => {
            let reads_only = req.read_only || req.access_mode == "single-node-reader-only";
            let source = req.source.as_str();
            let per_alloc_name = match alloc_suffix(alloc_name) {
                Some(suffix) if req.per_alloc => Some(format!("{source}{suffix}")),
                _ => None,
            };
            let any_index = format!("{source}[");
            node.host_volumes
                .iter()
                .filter(|(name, info)| match (&per_alloc_name, req.per_alloc) {
                    (Some(exact), _) => name.as_str() == exact,
                    (None, true) => name.starts_with(&any_index),
                    (None, false) => name.as_str() == source || (!info.id.is_empty() && info.id == source),
                })
                .any(|(_, info)| reads_only || !info.read_only)
        }
        _ => false,
    })
}

/// The `[<index>]` suffix of an allocation name (`job.group[3]` → `[3]`).
pub fn alloc_suffix(alloc_name: &str) -> Option<&str> {
    alloc_name.rfind('[').map(|i| &alloc_name[i..])
}

#[cfg(test)]
mod tests {
    use drover_types::Task;
    use drover_types::job::{Port, VolumeRequest};
    use drover_types::node::{DriverInfo, HostVolumeInfo, NodeResources};
    use serde_json::json;

    use super::*;

    fn dcs(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn host_volumes_ok_any(node: &Node, tg: &TaskGroup) -> bool {
        host_volumes_ok(node, tg, "")
    }

    #[test]
    fn per_alloc_volumes_follow_the_allocation_index_and_access_modes_read_only() {
        let mut node = Node::default();
        for (name, read_only) in [("db[0]", false), ("db[1]", false), ("ro", true)] {
            node.host_volumes.insert(
                name.into(),
                HostVolumeInfo {
                    path: format!("/v/{name}"),
                    read_only,
                    id: String::new(),
                },
            );
        }
        let mut per_alloc = tg_volume("db", false);
        if let Some(v) = per_alloc.volumes.get_mut("data") {
            v.per_alloc = true;
        }
        assert!(host_volumes_ok(&node, &per_alloc, "web.g[1]"));
        assert!(
            !host_volumes_ok(&node, &per_alloc, "web.g[2]"),
            "no db[2] on this node"
        );
        assert!(host_volumes_ok(&node, &per_alloc, ""), "index unknown: any db[n]");
        let mut reader = tg_volume("ro", false);
        assert!(!host_volumes_ok(&node, &reader, "web.g[0]"));
        if let Some(v) = reader.volumes.get_mut("data") {
            v.access_mode = "single-node-reader-only".into();
        }
        assert!(
            host_volumes_ok(&node, &reader, "web.g[0]"),
            "reader-only access mode"
        );
        assert_eq!(alloc_suffix("a.b[12]"), Some("[12]"));
        assert_eq!(alloc_suffix("plain"), None);
    }

    #[test]
    fn datacenter_globs() {
        assert!(datacenter_matches(&dcs(&["dc1"]), "dc1"));
        assert!(!datacenter_matches(&dcs(&["dc1"]), "dc10"));
        assert!(datacenter_matches(&dcs(&["dc*"]), "dc10"));
        assert!(datacenter_matches(&dcs(&["dc*"]), "dc"));
        assert!(!datacenter_matches(&dcs(&["dc*"]), "xdc1"));
        assert!(datacenter_matches(&dcs(&["us-*-1"]), "us-east-1"));
        assert!(datacenter_matches(&dcs(&["us-*-1"]), "us--1"));
        assert!(!datacenter_matches(&dcs(&["us-*-1"]), "us-east-2"));
        assert!(!datacenter_matches(&dcs(&["us-*-1"]), "eu-east-1"));
        assert!(datacenter_matches(&dcs(&["*"]), "anything"));
        assert!(datacenter_matches(&dcs(&["*"]), ""));
        assert!(datacenter_matches(&dcs(&["dc?"]), "dc2"));
        assert!(!datacenter_matches(&dcs(&["dc?"]), "dc22"));
        assert!(datacenter_matches(&dcs(&["*a*b*"]), "xxaxxbxx"));
        assert!(!datacenter_matches(&dcs(&["*a*b"]), "xxbxxa"));
        assert!(datacenter_matches(&dcs(&["eu-1", "us-*"]), "us-west"));
        assert!(!datacenter_matches(&dcs(&["eu-1", "ap-*"]), "us-west"));
        assert!(!datacenter_matches(&[], "dc1"));
        assert!(
            datacenter_matches(&dcs(&["dé*"]), "défense"),
            "unicode chars, not bytes"
        );
    }

    #[test]
    fn node_pools() {
        assert!(node_pool_matches("all", "gpu"));
        assert!(node_pool_matches("all", ""));
        assert!(node_pool_matches("gpu", "gpu"));
        assert!(!node_pool_matches("gpu", "default"));
        assert!(node_pool_matches("", "default"));
        assert!(node_pool_matches("default", ""));
        assert!(!node_pool_matches("", "gpu"));
    }

    fn tg_with_drivers(drivers: &[&str]) -> TaskGroup {
        TaskGroup {
            tasks: drivers
                .iter()
                .map(|d| Task {
                    name: format!("t-{d}"),
                    driver: d.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn drivers() {
        let mut node = Node::default();
        node.drivers.insert(
            "docker".into(),
            DriverInfo {
                detected: true,
                healthy: true,
                ..Default::default()
            },
        );
        node.drivers.insert(
            "exec".into(),
            DriverInfo {
                detected: true,
                healthy: false,
                ..Default::default()
            },
        );
        node.drivers.insert(
            "java".into(),
            DriverInfo {
                detected: false,
                healthy: true,
                ..Default::default()
            },
        );
        node.attributes.insert("driver.raw_exec".into(), "1".into());
        node.attributes.insert("driver.qemu".into(), "false".into());
        node.attributes.insert("driver.rkt".into(), "yes".into());
        // Attribute fallback is only used when the driver is absent from `drivers`.
        node.attributes.insert("driver.exec".into(), "1".into());
        assert_eq!(drivers_ok(&node, &tg_with_drivers(&["docker"])), Ok(()));
        assert_eq!(
            drivers_ok(&node, &tg_with_drivers(&["docker", "raw_exec"])),
            Ok(())
        );
        assert_eq!(
            drivers_ok(&node, &tg_with_drivers(&["docker", "exec"])),
            Err("exec".into())
        );
        assert_eq!(drivers_ok(&node, &tg_with_drivers(&["java"])), Err("java".into()));
        assert_eq!(drivers_ok(&node, &tg_with_drivers(&["qemu"])), Err("qemu".into()));
        assert_eq!(
            drivers_ok(&node, &tg_with_drivers(&["rkt"])),
            Err("rkt".into()),
            "not a Go bool"
        );
        assert_eq!(
            drivers_ok(&node, &tg_with_drivers(&["podman", "exec"])),
            Err("podman".into()),
            "first missing"
        );
        assert_eq!(drivers_ok(&node, &tg_with_drivers(&[])), Ok(()));
        node.attributes.insert("driver.podman".into(), "true".into());
        assert_eq!(drivers_ok(&node, &tg_with_drivers(&["podman"])), Ok(()));
    }

    fn tg_mode(mode: &str) -> TaskGroup {
        TaskGroup {
            networks: vec![NetworkResource {
                mode: mode.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn with_networks(nets: Vec<Value>) -> Node {
        Node {
            node_resources: Some(NodeResources {
                node_networks: nets,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn network_modes() {
        let host_only = with_networks(vec![json!({"Mode": "host", "Device": "eth0"})]);
        let with_bridge = with_networks(vec![json!({"Mode": "host"}), json!({"Mode": "bridge"})]);
        let with_cni = with_networks(vec![json!({"Mode": ""}), json!({"Mode": "cni/mynet"})]);
        let old = Node::default();
        for n in [&host_only, &with_bridge, &with_cni, &old] {
            assert!(network_mode_ok(n, &TaskGroup::default()), "no network block");
            assert!(network_mode_ok(n, &tg_mode("")));
            assert!(network_mode_ok(n, &tg_mode("host")));
            assert!(network_mode_ok(n, &tg_mode("none")));
        }
        assert!(!network_mode_ok(&host_only, &tg_mode("bridge")));
        assert!(network_mode_ok(&with_bridge, &tg_mode("bridge")));
        assert!(
            network_mode_ok(&old, &tg_mode("bridge")),
            "old clients fingerprint no networks"
        );
        let mut hairpin = host_only.clone();
        hairpin
            .attributes
            .insert("nomad.bridge.hairpin_mode".into(), "false".into());
        assert!(network_mode_ok(&hairpin, &tg_mode("bridge")));
        assert!(network_mode_ok(&with_cni, &tg_mode("cni/mynet")));
        assert!(!network_mode_ok(&with_cni, &tg_mode("cni/other")));
        assert!(!network_mode_ok(&host_only, &tg_mode("cni/mynet")));
        let mut cni_attr = host_only.clone();
        cni_attr.attributes.insert("cni.other".into(), "1".into());
        assert!(network_mode_ok(&cni_attr, &tg_mode("cni/other")));
        assert!(!network_mode_ok(&cni_attr, &tg_mode("cni/")));
        assert!(!network_mode_ok(&old, &tg_mode("weird")));
    }

    #[test]
    fn host_networks() {
        let mut node = with_networks(vec![json!({
            "Mode": "host",
            "Addresses": [{"Family": "ipv4", "Alias": "public", "Address": "1.2.3.4"}]
        })]);
        node.host_networks.insert("private".into(), json!({}));
        node.meta.insert("net".into(), "public".into());
        let tg = |hn: &str| TaskGroup {
            networks: vec![NetworkResource {
                dynamic_ports: vec![Port {
                    label: "http".into(),
                    host_network: hn.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(host_networks_ok(&node, &tg("default")), Ok(()));
        assert_eq!(host_networks_ok(&node, &tg("")), Ok(()));
        assert_eq!(host_networks_ok(&node, &tg("public")), Ok(()));
        assert_eq!(host_networks_ok(&node, &tg("private")), Ok(()));
        assert_eq!(host_networks_ok(&node, &tg("${meta.net}")), Ok(()));
        assert_eq!(
            host_networks_ok(&node, &tg("dmz")),
            Err(r#"missing host network "dmz" for port "http""#.into())
        );
        assert!(host_networks_ok(&node, &tg("${meta.missing}")).is_err());
    }

    fn tg_volume(source: &str, read_only: bool) -> TaskGroup {
        let mut tg = TaskGroup::default();
        tg.volumes.insert(
            "data".into(),
            VolumeRequest {
                name: "data".into(),
                volume_type: "host".into(),
                source: source.into(),
                read_only,
                ..Default::default()
            },
        );
        tg
    }

    #[test]
    fn host_volumes() {
        let mut node = Node::default();
        node.host_volumes.insert(
            "shared".into(),
            HostVolumeInfo {
                path: "/srv".into(),
                read_only: false,
                id: String::new(),
            },
        );
        node.host_volumes.insert(
            "certs".into(),
            HostVolumeInfo {
                path: "/etc/certs".into(),
                read_only: true,
                id: String::new(),
            },
        );
        node.host_volumes.insert(
            "dyn".into(),
            HostVolumeInfo {
                path: "/v/d".into(),
                read_only: false,
                id: "vol-123".into(),
            },
        );
        node.host_volumes
            .insert("db[0]".into(), HostVolumeInfo::default());
        assert!(host_volumes_ok_any(&node, &TaskGroup::default()));
        assert!(host_volumes_ok_any(&node, &tg_volume("shared", false)));
        assert!(host_volumes_ok_any(&node, &tg_volume("shared", true)));
        assert!(host_volumes_ok_any(&node, &tg_volume("certs", true)));
        assert!(
            !host_volumes_ok_any(&node, &tg_volume("certs", false)),
            "read-only volume requested writable"
        );
        assert!(!host_volumes_ok_any(&node, &tg_volume("missing", true)));
        assert!(
            host_volumes_ok_any(&node, &tg_volume("vol-123", false)),
            "dynamic volume by ID"
        );
        assert!(!host_volumes_ok_any(&node, &tg_volume("db", false)));
        let mut per_alloc = tg_volume("db", false);
        if let Some(v) = per_alloc.volumes.get_mut("data") {
            v.per_alloc = true;
        }
        assert!(host_volumes_ok_any(&node, &per_alloc));
        let mut csi = tg_volume("missing", false);
        if let Some(v) = csi.volumes.get_mut("data") {
            v.volume_type = "csi".into();
        }
        assert!(host_volumes_ok_any(&node, &csi));
        let mut odd = tg_volume("shared", false);
        if let Some(v) = odd.volumes.get_mut("data") {
            v.volume_type = "nfs".into();
        }
        assert!(!host_volumes_ok_any(&node, &odd));
        // Two requests: both must be satisfied.
        let mut two = tg_volume("shared", false);
        two.volumes.insert(
            "b".into(),
            VolumeRequest {
                volume_type: "host".into(),
                source: "nope".into(),
                ..Default::default()
            },
        );
        assert!(!host_volumes_ok_any(&node, &two));
    }
}
