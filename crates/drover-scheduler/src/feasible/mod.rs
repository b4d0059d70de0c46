//! Node feasibility: can this node run this job / task group at all, resources aside?
//! (reference `server-and-scheduler.md` §8.1–8.4.)
//!
//! # Pieces
//! - **Pre-filters** (before the stack): [`datacenter_matches`] (globs `*` / `?`) and
//!   [`node_pool_matches`] (`"all"`, `""` = `"default"`).
//! - **Targets**: [`resolve_target`] turns `${node.*}`, `${attr.*}`, `${meta.*}` or a literal
//!   into a value, or "not found".
//! - **Operands**: [`check_operand`] implements every constraint operand on resolved values;
//!   [`ConstraintChecker::check`] / [`ConstraintChecker::matches_affinity`] resolve and check.
//!   Version dialects (`version` lenient, `semver` strict) are described in the `version`
//!   submodule docs.
//! - **Group checks**: [`drivers_ok`], [`network_mode_ok`], [`host_networks_ok`],
//!   [`devices_ok`] (device targets and unit-aware attribute comparison: see
//!   [`resolve_device_target`]), and the availability check [`host_volumes_ok`].
//!   [`check_job`], [`check_group`] and [`check_group_available`] run them in Nomad's order
//!   and return the `ConstraintFiltered` metric key of the first failure.
//! - **Class**: [`computed_class`] fingerprints what non-escaping checks can read;
//!   [`escapes_class`] / [`group_escapes_class`] say when that fingerprint is not enough.
//!
//! # Caching rules
//! - Per evaluation, one [`ConstraintChecker`] caches compiled regexes and parsed version
//!   constraint lists by their right-hand string (parse failures included, so a bad pattern
//!   costs one compile). Cached entries never depend on a node; one checker serves all nodes.
//! - Per computed class (done by the stack, not here): the results of the job constraints and
//!   of [`check_group`] (drivers, group + task constraints, devices, network) may be reused for
//!   every node of the same class — *unless* the job / group escapes: a constraint target reads
//!   a `unique.*` value (left out of the class), or the group uses CSI volumes.
//! - Never cached: [`check_group_available`] (host volumes), because volumes are not part of
//!   the class and are claimed by other allocations.
//! - `distinct_hosts` / `distinct_property` always pass here; they depend on other allocations
//!   and are enforced by dedicated iterators.
//!
//! Everything here is pure and total: any input (invalid regex, unparsable versions, odd JSON
//! in node networks or device attributes) yields `false` / `Err`, never a panic.

mod checks;
mod class;
mod devices;
mod operand;
mod target;
mod version;

use drover_types::TaskGroup;
use drover_types::job::Constraint;
use drover_types::{Node, job::VolumeRequest};

pub use checks::{
    alloc_suffix, datacenter_matches, drivers_ok, host_networks_ok, host_volumes_ok, network_mode_ok,
    node_pool_matches,
};
pub use class::computed_class;
pub use devices::{
    device_name_matches, device_request_matches, devices_ok, healthy_instances, resolve_device_target,
};
pub use operand::{ConstraintChecker, check_operand, compare_values};
pub use target::{escapes_class, resolve_target};

/// `ConstraintFiltered` key for a node missing a task driver.
pub const FILTER_DRIVERS: &str = "missing drivers";
/// `ConstraintFiltered` key for a node without the requested devices.
pub const FILTER_DEVICES: &str = "missing devices";
/// `ConstraintFiltered` key for a node without the group's network mode.
pub const FILTER_NETWORK: &str = "missing network";
/// `ConstraintFiltered` key for a node without the requested host volumes.
pub const FILTER_HOST_VOLUMES: &str = "missing compatible host volumes";

fn is_distinct(c: &Constraint) -> bool {
    matches!(c.operand.as_str(), "distinct_hosts" | "distinct_property")
}

/// The group's constraints followed by every task's, as the group-level checks see them.
pub fn group_constraints(tg: &TaskGroup) -> impl Iterator<Item = &Constraint> {
    tg.constraints
        .iter()
        .chain(tg.tasks.iter().flat_map(|t| t.constraints.iter()))
}

/// Whether a group escapes class caching: a group or task constraint reads a `unique.*` value
/// (see [`escapes_class`]) or the group requests a CSI volume.
pub fn group_escapes_class(tg: &TaskGroup) -> bool {
    let unique = group_constraints(tg).any(|c| escapes_class(std::slice::from_ref(c)));
    unique
        || tg
            .volumes
            .values()
            .any(|v: &VolumeRequest| v.volume_type == "csi")
}

/// Job-level constraints (`distinct_*` skipped). `Err` = the failing constraint rendered as
/// Nomad prints it (`"${attr.kernel.name} = linux"`), the `ConstraintFiltered` key.
pub fn check_job(
    node: &Node,
    constraints: &[Constraint],
    checker: &mut ConstraintChecker,
) -> Result<(), String> {
    match constraints
        .iter()
        .filter(|c| !is_distinct(c))
        .find(|c| !checker.check(node, c))
    {
        Some(c) => Err(c.to_string()),
        None => Ok(()),
    }
}

/// The cacheable group checks in Nomad's order: drivers, group + task constraints, devices,
/// network mode, host networks. `Err` = the `ConstraintFiltered` key of the first failure.
pub fn check_group(node: &Node, tg: &TaskGroup, checker: &mut ConstraintChecker) -> Result<(), String> {
    drivers_ok(node, tg).map_err(|_| FILTER_DRIVERS.to_string())?;
    if let Some(c) = group_constraints(tg)
        .filter(|c| !is_distinct(c))
        .find(|c| !checker.check(node, c))
    {
        return Err(c.to_string());
    }
    if !devices_ok(node, tg, checker) {
        return Err(FILTER_DEVICES.to_string());
    }
    if !network_mode_ok(node, tg) {
        return Err(FILTER_NETWORK.to_string());
    }
    host_networks_ok(node, tg)
}

/// The never-cached availability checks (host volumes). `Err` = the `ConstraintFiltered` key.
pub fn check_group_available(node: &Node, tg: &TaskGroup) -> Result<(), String> {
    if host_volumes_ok(node, tg, "") {
        Ok(())
    } else {
        Err(FILTER_HOST_VOLUMES.to_string())
    }
}

#[cfg(test)]
mod tests {
    use drover_types::Task;
    use drover_types::job::{NetworkResource, VolumeRequest};
    use drover_types::node::DriverInfo;

    use super::*;

    fn con(l: &str, op: &str, r: &str) -> Constraint {
        Constraint {
            l_target: l.into(),
            r_target: r.into(),
            operand: op.into(),
        }
    }

    fn linux_docker_node() -> Node {
        let mut n = Node::default();
        n.attributes.insert("kernel.name".into(), "linux".into());
        n.drivers.insert(
            "docker".into(),
            DriverInfo {
                detected: true,
                healthy: true,
                ..Default::default()
            },
        );
        n
    }

    fn group(driver: &str, constraints: Vec<Constraint>) -> TaskGroup {
        TaskGroup {
            tasks: vec![Task {
                name: "t".into(),
                driver: driver.into(),
                constraints,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn job_checks_report_the_failing_constraint() {
        let n = linux_docker_node();
        let mut c = ConstraintChecker::new();
        assert_eq!(
            check_job(&n, &[con("${attr.kernel.name}", "=", "linux")], &mut c),
            Ok(())
        );
        assert_eq!(
            check_job(
                &n,
                &[
                    con("${attr.kernel.name}", "=", "linux"),
                    con("${attr.kernel.name}", "=", "windows")
                ],
                &mut c
            ),
            Err("${attr.kernel.name} = windows".into())
        );
        assert_eq!(
            check_job(&n, &[con("", "distinct_hosts", "true")], &mut c),
            Ok(())
        );
    }

    #[test]
    fn group_checks_in_order() {
        let n = linux_docker_node();
        let mut c = ConstraintChecker::new();
        assert_eq!(check_group(&n, &group("docker", vec![]), &mut c), Ok(()));
        // Drivers are reported before constraints.
        assert_eq!(
            check_group(&n, &group("exec", vec![con("${attr.x}", "is_set", "")]), &mut c),
            Err(FILTER_DRIVERS.into())
        );
        assert_eq!(
            check_group(
                &n,
                &group("docker", vec![con("${attr.kernel.name}", "!=", "linux")]),
                &mut c
            ),
            Err("${attr.kernel.name} != linux".into())
        );
        let mut bridge = group("docker", vec![]);
        bridge.networks.push(NetworkResource {
            mode: "cni/x".into(),
            ..Default::default()
        });
        assert_eq!(check_group(&n, &bridge, &mut c), Err(FILTER_NETWORK.into()));
        let mut vol = group("docker", vec![]);
        vol.volumes.insert(
            "v".into(),
            VolumeRequest {
                volume_type: "host".into(),
                source: "data".into(),
                ..Default::default()
            },
        );
        assert_eq!(
            check_group(&n, &vol, &mut c),
            Ok(()),
            "volumes are not a cacheable check"
        );
        assert_eq!(check_group_available(&n, &vol), Err(FILTER_HOST_VOLUMES.into()));
        assert_eq!(check_group_available(&n, &group("docker", vec![])), Ok(()));
    }

    #[test]
    fn group_escape_rules() {
        assert!(!group_escapes_class(&group(
            "docker",
            vec![con("${attr.kernel.name}", "=", "linux")]
        )));
        assert!(
            group_escapes_class(&group("docker", vec![con("${node.unique.id}", "=", "x")])),
            "task constraint"
        );
        let mut tg = group("docker", vec![]);
        tg.constraints.push(con("${attr.unique.hostname}", "=", "h"));
        assert!(group_escapes_class(&tg));
        let mut csi = group("docker", vec![]);
        csi.volumes.insert(
            "v".into(),
            VolumeRequest {
                volume_type: "csi".into(),
                ..Default::default()
            },
        );
        assert!(group_escapes_class(&csi));
        let mut host = group("docker", vec![]);
        host.volumes.insert(
            "v".into(),
            VolumeRequest {
                volume_type: "host".into(),
                ..Default::default()
            },
        );
        assert!(!group_escapes_class(&host));
    }
}
