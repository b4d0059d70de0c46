//! Device feasibility: matching requested devices (`device "nvidia/gpu" { count constraint
//! affinity }`) against a node's device groups.
//!
//! A device group (vendor/type/name, N instances) matches a request when the request name
//! matches ([`device_name_matches`]) and every request constraint holds with device targets:
//! `${device.model}` (the group name), `${device.vendor}`, `${device.type}`, `${device.ids}`
//! (comma-joined instance IDs) and `${device.attr.<k>}`. An attribute is rendered from its
//! JSON `Int` / `Float` / `String` / `Bool` field (a bare JSON scalar also works); its `Unit`
//! is kept aside so that ordering and equality operands compare quantities:
//! `${device.attr.memory} >= 2 GiB` holds for `{"Int": 4096, "Unit": "MiB"}`. A plain number on
//! one side is read in the other side's unit; quantities of different kinds (bytes vs. watts)
//! never compare. Everything else falls back to [`check_operand`] on the rendered strings.

use std::borrow::Cow;
use std::cmp::Ordering;

use drover_types::Node;
use drover_types::TaskGroup;
use drover_types::job::{Affinity, Constraint, RequestedDevice};
use drover_types::node::NodeDeviceResource;
use serde_json::Value;

use super::operand::{ConstraintChecker, affinity_operand_allowed, check_operand, order_holds};

/// Upper bound on assignment steps when several requests compete for device groups; beyond
/// it the group is declared infeasible rather than searching exponentially.
const ASSIGN_BUDGET: usize = 100_000;

/// Whether a node device group matches a request name: `"type"`, `"vendor/type"` or
/// `"vendor/type/name"` (the name part may itself contain `/`). An empty part is a wildcard
/// (`"/gpu"`); an empty request matches nothing. Case-sensitive.
pub fn device_name_matches(request: &str, vendor: &str, device_type: &str, name: &str) -> bool {
    if request.is_empty() {
        return false;
    }
    let part_ok = |want: &str, have: &str| want.is_empty() || want == have;
    let mut parts = request.splitn(3, '/');
    let first = parts.next().unwrap_or_default();
    match (parts.next(), parts.next()) {
        (None, _) => part_ok(first, device_type),
        (Some(t), None) => part_ok(first, vendor) && part_ok(t, device_type),
        (Some(t), Some(n)) => part_ok(first, vendor) && part_ok(t, device_type) && part_ok(n, name),
    }
}

/// A resolved device target: its text, plus the unit of a device attribute that has one.
#[derive(Debug, Clone)]
struct DeviceValue<'a> {
    text: Cow<'a, str>,
    unit: Option<&'a str>,
}

fn render_scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Some(i.to_string()),
            (None, Some(u), _) => Some(u.to_string()),
            // f64's Display is the shortest round-trip form without exponent ("2", "1.5").
            (None, None, Some(f)) => Some(f.to_string()),
            _ => None,
        },
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Renders a device attribute: a typed attribute object (`{"Int": 2048, "Unit": "MiB"}`,
/// keys matched case-insensitively, `null` fields skipped) or a bare scalar.
fn render_attribute(v: &Value) -> Option<(String, Option<&str>)> {
    let Value::Object(map) = v else {
        return render_scalar(v).map(|s| (s, None));
    };
    let field = |name: &str| {
        map.iter()
            .find(|(k, val)| k.eq_ignore_ascii_case(name) && !val.is_null())
            .map(|(_, val)| val)
    };
    let unit = field("Unit").and_then(Value::as_str).filter(|u| !u.is_empty());
    ["Int", "Float", "String", "Bool"]
        .iter()
        .find_map(|k| field(k).and_then(render_scalar))
        .map(|text| (text, unit))
}

fn resolve_device_value<'a>(target: &'a str, dev: &'a NodeDeviceResource) -> Option<DeviceValue<'a>> {
    let plain = |text: Cow<'a, str>| Some(DeviceValue { text, unit: None });
    if !target.starts_with("${") {
        return plain(Cow::Borrowed(target));
    }
    match target {
        "${device.model}" => plain(Cow::Borrowed(&dev.name)),
        "${device.vendor}" => plain(Cow::Borrowed(&dev.vendor)),
        "${device.type}" => plain(Cow::Borrowed(&dev.device_type)),
        "${device.ids}" => {
            let ids: Vec<&str> = dev.instances.iter().map(|i| i.id.as_str()).collect();
            plain(Cow::Owned(ids.join(",")))
        }
        _ => {
            let key = target.strip_prefix("${device.attr.")?.strip_suffix('}')?;
            let (text, unit) = render_attribute(dev.attributes.get(key)?)?;
            Some(DeviceValue {
                text: Cow::Owned(text),
                unit,
            })
        }
    }
}

/// Resolves a device constraint target against a device group (see the module docs); the
/// attribute unit is not part of the text. `None` when not found.
pub fn resolve_device_target(target: &str, dev: &NodeDeviceResource) -> Option<String> {
    resolve_device_value(target, dev).map(|v| v.text.into_owned())
}

/// Unit kinds: quantities compare only within a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnitKind {
    Bytes,
    ByteRate,
    BitRate,
    Hertz,
    Watts,
    Celsius,
}

/// A known unit: its kind and its size in the kind's base unit.
fn unit(name: &str) -> Option<(UnitKind, f64)> {
    use UnitKind::*;
    const K: f64 = 1e3;
    const KI: f64 = 1024.0;
    let dec = |p: i32| K.powi(p);
    let bin = |p: i32| KI.powi(p);
    let (prefix_part, kind) = if let Some(p) = name.strip_suffix("B/s") {
        (p, ByteRate)
    } else if let Some(p) = name.strip_suffix("b/s") {
        (p, BitRate)
    } else if let Some(p) = name.strip_suffix("Hz") {
        (p, Hertz)
    } else if let Some(p) = name.strip_suffix('B') {
        (p, Bytes)
    } else if let Some(p) = name.strip_suffix('W') {
        (p, Watts)
    } else if name == "C" {
        return Some((Celsius, 1.0));
    } else {
        return None;
    };
    let scale = match (prefix_part, kind) {
        ("", _) => 1.0,
        ("m", Watts) => 1e-3,
        ("k" | "K", _) => dec(1),
        ("M", _) => dec(2),
        ("G", _) => dec(3),
        ("T", _) => dec(4),
        ("P", _) => dec(5),
        ("E", _) => dec(6),
        ("Ki", Bytes | ByteRate | BitRate) => bin(1),
        ("Mi", Bytes | ByteRate | BitRate) => bin(2),
        ("Gi", Bytes | ByteRate | BitRate) => bin(3),
        ("Ti", Bytes | ByteRate | BitRate) => bin(4),
        ("Pi", Bytes | ByteRate | BitRate) => bin(5),
        ("Ei", Bytes | ByteRate | BitRate) => bin(6),
        _ => return None,
    };
    Some((kind, scale))
}

/// A number, optionally followed by a unit: `"2 GiB"`, `"2GiB"`, `"1.5"`. `None` when the
/// number does not parse or the unit is unknown.
fn parse_quantity(s: &str) -> Option<(f64, Option<(UnitKind, f64)>)> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(split);
    let value = num.parse::<f64>().ok()?;
    let rest = rest.trim();
    if rest.is_empty() {
        Some((value, None))
    } else {
        Some((value, Some(unit(rest)?)))
    }
}

fn quantity(v: &DeviceValue<'_>) -> Option<(f64, Option<(UnitKind, f64)>)> {
    match v.unit {
        Some(u) => Some((v.text.trim().parse::<f64>().ok()?, Some(unit(u)?))),
        None => parse_quantity(&v.text),
    }
}

/// Compares two values as quantities when at least one carries a known unit. `None` = not a
/// quantity comparison (fall back to strings); `Some(None)` = quantities of different kinds
/// (or NaN): nothing holds but `!=`.
fn compare_quantities(l: &DeviceValue<'_>, r: &DeviceValue<'_>) -> Option<Option<Ordering>> {
    let (lv, lu) = quantity(l)?;
    let (rv, ru) = quantity(r)?;
    let (ls, rs) = match (lu, ru) {
        (None, None) => return None,
        (Some((lk, ls)), Some((rk, rs))) if lk == rk => (ls, rs),
        (Some(_), Some(_)) => return Some(None),
        (Some((_, s)), None) | (None, Some((_, s))) => (s, s),
    };
    Some((lv * ls).partial_cmp(&(rv * rs)))
}

fn check_device_operand(
    op: &str,
    l: Option<DeviceValue<'_>>,
    r: Option<DeviceValue<'_>>,
    checker: &mut ConstraintChecker,
) -> bool {
    if let (Some(lv), Some(rv)) = (&l, &r)
        && matches!(op, "=" | "==" | "is" | "!=" | "not" | "<" | "<=" | ">" | ">=")
        && let Some(ord) = compare_quantities(lv, rv)
    {
        return match op {
            "=" | "==" | "is" => ord.is_some_and(Ordering::is_eq),
            "!=" | "not" => !ord.is_some_and(Ordering::is_eq),
            _ => ord.is_some_and(|o| order_holds(op, o)),
        };
    }
    check_operand(
        op,
        l.as_ref().map(|v| v.text.as_ref()),
        r.as_ref().map(|v| v.text.as_ref()),
        checker,
    )
}

impl ConstraintChecker {
    /// Does the device group satisfy a device constraint (device targets, see the module docs)?
    pub fn check_device(&mut self, dev: &NodeDeviceResource, c: &Constraint) -> bool {
        let l = resolve_device_value(&c.l_target, dev);
        let r = resolve_device_value(&c.r_target, dev);
        check_device_operand(&c.operand, l, r, self)
    }

    /// Does the device group match a device affinity? (Same operands as node affinities.)
    pub fn matches_device_affinity(&mut self, dev: &NodeDeviceResource, a: &Affinity) -> bool {
        if !affinity_operand_allowed(&a.operand) {
            return false;
        }
        let l = resolve_device_value(&a.l_target, dev);
        let r = resolve_device_value(&a.r_target, dev);
        check_device_operand(&a.operand, l, r, self)
    }
}

/// Whether a device group can serve a request, ignoring counts: the name matches and every
/// request constraint holds. Shared with the device allocator, which must pick instances only
/// from such groups.
pub fn device_request_matches(
    dev: &NodeDeviceResource,
    req: &RequestedDevice,
    checker: &mut ConstraintChecker,
) -> bool {
    device_name_matches(&req.name, &dev.vendor, &dev.device_type, &dev.name)
        && req.constraints.iter().all(|c| checker.check_device(dev, c))
}

/// Healthy instances of a device group.
pub fn healthy_instances(dev: &NodeDeviceResource) -> u64 {
    dev.instances.iter().filter(|i| i.healthy).count() as u64
}

/// Device feasibility: every requested device of every task is served by one node device group
/// that matches it ([`device_request_matches`]) and has at least `count` healthy instances
/// (and at least one), with the summed demand of all requests served by the same group within
/// its healthy count. The request-to-group assignment is searched (most constrained request
/// first, backtracking), bounded by a step budget.
pub fn devices_ok(node: &Node, tg: &TaskGroup, checker: &mut ConstraintChecker) -> bool {
    let requests: Vec<&RequestedDevice> = tg
        .tasks
        .iter()
        .filter_map(|t| t.resources.as_ref())
        .flat_map(|r| r.devices.iter())
        .collect();
    if requests.is_empty() {
        return true;
    }
    let groups: &[NodeDeviceResource] = node
        .node_resources
        .as_ref()
        .map(|r| r.devices.as_slice())
        .unwrap_or_default();
    let mut remaining: Vec<u64> = groups.iter().map(healthy_instances).collect();
    let mut wants: Vec<(u64, Vec<usize>)> = Vec::with_capacity(requests.len());
    for req in requests {
        let need = u64::try_from(req.count).unwrap_or(0);
        let candidates: Vec<usize> = groups
            .iter()
            .enumerate()
            .filter(|(i, g)| {
                remaining[*i] > 0 && remaining[*i] >= need && device_request_matches(g, req, checker)
            })
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            return false;
        }
        wants.push((need, candidates));
    }
    // Quick reject: the total demand exceeds everything the candidate groups hold.
    let mut pool: Vec<usize> = wants.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    pool.sort_unstable();
    pool.dedup();
    let supply: u64 = pool.iter().map(|&g| remaining[g]).sum();
    let demand = wants
        .iter()
        .fold(0u64, |acc, (need, _)| acc.saturating_add(*need));
    if demand > supply {
        return false;
    }
    wants.sort_by_key(|(need, c)| (c.len(), std::cmp::Reverse(*need)));
    assign(&wants, &mut remaining)
}

/// Iterative backtracking: give each request one candidate group with enough remaining
/// instances. No recursion, so a huge request list cannot overflow the stack.
fn assign(wants: &[(u64, Vec<usize>)], remaining: &mut [u64]) -> bool {
    let mut next = vec![0usize; wants.len()];
    let mut chosen: Vec<usize> = Vec::with_capacity(wants.len());
    let mut budget = ASSIGN_BUDGET;
    let mut level = 0;
    while level < wants.len() {
        let (need, candidates) = &wants[level];
        let mut placed = false;
        while next[level] < candidates.len() {
            if budget == 0 {
                return false;
            }
            budget -= 1;
            let g = candidates[next[level]];
            next[level] += 1;
            if remaining[g] >= *need {
                remaining[g] -= need;
                chosen.push(g);
                placed = true;
                break;
            }
        }
        if placed {
            level += 1;
            continue;
        }
        next[level] = 0;
        if level == 0 {
            return false;
        }
        level -= 1;
        if let Some(g) = chosen.pop() {
            remaining[g] += wants[level].0;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use drover_types::Task;
    use drover_types::job::Resources;
    use drover_types::node::{NodeDevice, NodeResources};
    use serde_json::json;

    use super::*;

    fn group(
        vendor: &str,
        ty: &str,
        name: &str,
        healthy: usize,
        unhealthy: usize,
        attrs: Value,
    ) -> NodeDeviceResource {
        let mut instances = Vec::new();
        for i in 0..healthy + unhealthy {
            instances.push(NodeDevice {
                id: format!("{name}-{i}"),
                healthy: i < healthy,
                ..Default::default()
            });
        }
        let attributes = match attrs {
            Value::Object(m) => m.into_iter().collect(),
            _ => Default::default(),
        };
        NodeDeviceResource {
            vendor: vendor.into(),
            device_type: ty.into(),
            name: name.into(),
            instances,
            attributes,
        }
    }

    fn node(groups: Vec<NodeDeviceResource>) -> Node {
        Node {
            node_resources: Some(NodeResources {
                devices: groups,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn req(name: &str, count: i64, constraints: Vec<Constraint>) -> RequestedDevice {
        RequestedDevice {
            name: name.into(),
            count,
            constraints,
            affinities: vec![],
        }
    }

    fn con(l: &str, op: &str, r: &str) -> Constraint {
        Constraint {
            l_target: l.into(),
            r_target: r.into(),
            operand: op.into(),
        }
    }

    fn tg(per_task: Vec<Vec<RequestedDevice>>) -> TaskGroup {
        TaskGroup {
            tasks: per_task
                .into_iter()
                .enumerate()
                .map(|(i, devices)| Task {
                    name: format!("t{i}"),
                    resources: Some(Resources {
                        devices,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn ok(n: &Node, g: &TaskGroup) -> bool {
        devices_ok(n, g, &mut ConstraintChecker::new())
    }

    fn nvidia_node() -> Node {
        node(vec![
            group(
                "nvidia",
                "gpu",
                "1080ti",
                2,
                1,
                json!({"memory": {"Int": 11264, "Unit": "MiB"}, "cuda_cores": {"Int": 3584, "Unit": ""}}),
            ),
            group(
                "nvidia",
                "gpu",
                "t4",
                1,
                0,
                json!({"memory": {"Int": 16, "Unit": "GiB"}, "unique.uuid": {"String": "abc"}}),
            ),
            group(
                "intel",
                "fpga",
                "f1",
                4,
                0,
                json!({"power": {"Float": 7.5, "Unit": "W"}, "ecc": {"Bool": true}}),
            ),
        ])
    }

    #[test]
    fn name_forms() {
        assert!(device_name_matches("gpu", "nvidia", "gpu", "1080ti"));
        assert!(device_name_matches("nvidia/gpu", "nvidia", "gpu", "1080ti"));
        assert!(device_name_matches(
            "nvidia/gpu/1080ti",
            "nvidia",
            "gpu",
            "1080ti"
        ));
        assert!(!device_name_matches("fpga", "nvidia", "gpu", "1080ti"));
        assert!(!device_name_matches("amd/gpu", "nvidia", "gpu", "1080ti"));
        assert!(!device_name_matches("nvidia/gpu/t4", "nvidia", "gpu", "1080ti"));
        assert!(
            !device_name_matches("nvidia", "nvidia", "gpu", "1080ti"),
            "one part is the type"
        );
        assert!(!device_name_matches("", "nvidia", "gpu", "1080ti"));
        assert!(
            device_name_matches("/gpu", "nvidia", "gpu", "x"),
            "empty part is a wildcard"
        );
        assert!(
            device_name_matches("v/t/a/b", "v", "t", "a/b"),
            "name keeps its slashes"
        );
        assert!(!device_name_matches("NVIDIA/gpu", "nvidia", "gpu", "x"));
    }

    #[test]
    fn counts_and_health() {
        let n = nvidia_node();
        assert!(ok(&n, &TaskGroup::default()));
        assert!(ok(&n, &tg(vec![vec![req("nvidia/gpu/1080ti", 2, vec![])]])));
        assert!(
            !ok(&n, &tg(vec![vec![req("nvidia/gpu/1080ti", 3, vec![])]])),
            "third instance is unhealthy"
        );
        assert!(ok(&n, &tg(vec![vec![req("fpga", 4, vec![])]])));
        assert!(!ok(&n, &tg(vec![vec![req("fpga", 5, vec![])]])));
        assert!(!ok(&n, &tg(vec![vec![req("tpu", 1, vec![])]])));
        assert!(!ok(&Node::default(), &tg(vec![vec![req("gpu", 1, vec![])]])));
        let all_sick = node(vec![group("nvidia", "gpu", "x", 0, 2, json!({}))]);
        assert!(
            !ok(&all_sick, &tg(vec![vec![req("gpu", 0, vec![])]])),
            "zero count still needs a healthy group"
        );
    }

    #[test]
    fn summed_demand_across_tasks() {
        let n = nvidia_node();
        // 2 healthy 1080ti + 1 t4: three single-GPU tasks fit, four do not.
        let one = || vec![req("nvidia/gpu", 1, vec![])];
        assert!(ok(&n, &tg(vec![one(), one(), one()])));
        assert!(!ok(&n, &tg(vec![one(), one(), one(), one()])));
        // Both 1080ti instances for one task, the other task must then take the t4.
        assert!(ok(
            &n,
            &tg(vec![vec![req("gpu", 2, vec![])], vec![req("gpu", 1, vec![])]])
        ));
        assert!(!ok(
            &n,
            &tg(vec![vec![req("gpu", 2, vec![])], vec![req("gpu", 2, vec![])]])
        ));
        // A greedy first-fit would give the 1-GPU request the 1080ti group first and then
        // fail the 2-GPU t4-incompatible one; the search finds the working assignment.
        assert!(ok(
            &n,
            &tg(vec![
                vec![req("gpu", 1, vec![])],
                vec![req("nvidia/gpu/1080ti", 2, vec![])]
            ])
        ));
    }

    #[test]
    fn device_constraints() {
        let n = nvidia_node();
        let one = |cs: Vec<Constraint>| tg(vec![vec![req("gpu", 1, cs)]]);
        assert!(
            ok(&n, &one(vec![con("${device.attr.memory}", ">=", "12 GiB")])),
            "t4 has 16 GiB"
        );
        assert!(!ok(&n, &one(vec![con("${device.attr.memory}", ">=", "32 GiB")])));
        assert!(
            ok(&n, &one(vec![con("${device.attr.memory}", ">", "11000")])),
            "plain number read in MiB"
        );
        assert!(ok(&n, &one(vec![con("${device.attr.memory}", "=", "16384 MiB")])));
        assert!(ok(&n, &one(vec![con("${device.model}", "=", "t4")])));
        assert!(!ok(&n, &one(vec![con("${device.model}", "=", "a100")])));
        assert!(ok(&n, &one(vec![con("${device.vendor}", "=", "nvidia")])));
        assert!(ok(&n, &one(vec![con("${device.type}", "=", "gpu")])));
        assert!(ok(&n, &one(vec![con("${device.ids}", "set_contains", "t4-0")])));
        assert!(ok(&n, &one(vec![con("${device.attr.cuda_cores}", ">", "3000")])));
        assert!(!ok(&n, &one(vec![con("${device.attr.nope}", "is_set", "")])));
        assert!(ok(&n, &one(vec![con("${device.attr.nope}", "is_not_set", "")])));
        // Count and constraint together: only the 1080ti has 11 GiB but t4 is the only one
        // with >= 12 GiB, and it has one instance.
        assert!(!ok(
            &n,
            &tg(vec![vec![req(
                "gpu",
                2,
                vec![con("${device.attr.memory}", ">=", "12 GiB")]
            )]])
        ));
        let fpga = |cs: Vec<Constraint>| tg(vec![vec![req("intel/fpga", 1, cs)]]);
        assert!(ok(&n, &fpga(vec![con("${device.attr.power}", "<", "8 W")])));
        assert!(ok(&n, &fpga(vec![con("${device.attr.power}", "<", "0.01 kW")])));
        assert!(
            !ok(&n, &fpga(vec![con("${device.attr.power}", "<", "8 GiB")])),
            "different kinds never order"
        );
        assert!(ok(&n, &fpga(vec![con("${device.attr.power}", "!=", "8 GiB")])));
        assert!(ok(&n, &fpga(vec![con("${device.attr.ecc}", "=", "true")])));
    }

    #[test]
    fn device_targets_and_affinities() {
        let n = nvidia_node();
        let groups = &n.node_resources.as_ref().expect("resources").devices;
        let g = &groups[0];
        assert_eq!(
            resolve_device_target("${device.model}", g).as_deref(),
            Some("1080ti")
        );
        assert_eq!(
            resolve_device_target("${device.vendor}", g).as_deref(),
            Some("nvidia")
        );
        assert_eq!(resolve_device_target("${device.type}", g).as_deref(), Some("gpu"));
        assert_eq!(
            resolve_device_target("${device.ids}", g).as_deref(),
            Some("1080ti-0,1080ti-1,1080ti-2")
        );
        assert_eq!(
            resolve_device_target("${device.attr.memory}", g).as_deref(),
            Some("11264")
        );
        assert_eq!(resolve_device_target("${device.attr.missing}", g), None);
        assert_eq!(resolve_device_target("${attr.kernel.name}", g), None);
        assert_eq!(resolve_device_target("lit", g).as_deref(), Some("lit"));
        assert_eq!(
            resolve_device_target("${device.attr.power}", &groups[2]).as_deref(),
            Some("7.5")
        );
        assert_eq!(
            resolve_device_target("${device.attr.ecc}", &groups[2]).as_deref(),
            Some("true")
        );
        let mut bare = g.clone();
        bare.attributes.insert("driver".into(), json!("535.1"));
        bare.attributes
            .insert("lower".into(), json!({"int": 3, "unit": null, "float": null}));
        assert_eq!(
            resolve_device_target("${device.attr.driver}", &bare).as_deref(),
            Some("535.1")
        );
        assert_eq!(
            resolve_device_target("${device.attr.lower}", &bare).as_deref(),
            Some("3")
        );

        let mut c = ConstraintChecker::new();
        let aff = |l: &str, op: &str, r: &str| Affinity {
            l_target: l.into(),
            r_target: r.into(),
            operand: op.into(),
            weight: 50,
        };
        assert!(c.matches_device_affinity(&groups[1], &aff("${device.attr.memory}", ">=", "4 GiB")));
        assert!(!c.matches_device_affinity(&groups[0], &aff("${device.attr.memory}", ">=", "12 GiB")));
        assert!(!c.matches_device_affinity(&groups[0], &aff("${device.attr.memory}", "is_set", "")));
        let r = req("nvidia/gpu", 1, vec![con("${device.model}", "regexp", "^10")]);
        assert!(device_request_matches(&groups[0], &r, &mut c));
        assert!(!device_request_matches(&groups[1], &r, &mut c));
        assert!(!device_request_matches(&groups[2], &r, &mut c));
    }

    #[test]
    fn quantities() {
        assert_eq!(
            parse_quantity("2 GiB").map(|(v, u)| (v, u.map(|x| x.1))),
            Some((2.0, Some(1024f64.powi(3))))
        );
        assert_eq!(
            parse_quantity("2GB").map(|(v, u)| (v, u.map(|x| x.1))),
            Some((2.0, Some(1e9)))
        );
        assert_eq!(
            parse_quantity("1.5").map(|(v, u)| (v, u.is_none())),
            Some((1.5, true))
        );
        assert!(parse_quantity("2 parsecs").is_none());
        assert!(parse_quantity("GiB").is_none());
        assert!(
            unit("MHz").is_some()
                && unit("Gib/s").is_some()
                && unit("kB/s").is_some()
                && unit("mW").is_some()
        );
        assert!(unit("mB").is_none() && unit("KiW").is_none() && unit("x").is_none());
    }

    #[test]
    fn huge_infeasible_request_lists_terminate() {
        // 40 one-GPU requests over 10 groups of 3 healthy instances: 30 < 40, infeasible
        // (caught by the supply check).
        let groups = (0..10)
            .map(|i| group("v", "gpu", &format!("g{i}"), 3, 0, json!({})))
            .collect();
        let n = node(groups);
        let many = tg((0..40).map(|_| vec![req("gpu", 1, vec![])]).collect());
        assert!(!ok(&n, &many));
        let fits = tg((0..30).map(|_| vec![req("gpu", 1, vec![])]).collect());
        assert!(ok(&n, &fits));
        // Supply suffices in total but not in shape: 11 two-GPU requests need 22 instances
        // in pairs, groups of 3 give only one pair each (10 pairs). The bounded search must
        // terminate with "no".
        let pairs = tg((0..11).map(|_| vec![req("gpu", 2, vec![])]).collect());
        assert!(!ok(&n, &pairs));
        let pairs_fit = tg((0..10).map(|_| vec![req("gpu", 2, vec![])]).collect());
        assert!(ok(&n, &pairs_fit));
    }
}
