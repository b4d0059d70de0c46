//! Preemption: which lower-priority allocations to evict from a node so that a higher-priority
//! placement fits (`reference/server-and-scheduler.md` §10).
//!
//! Three preemptors, one per kind of resource, each answering "which allocations must go so
//! that this ask can be granted?" (`Some(victims)`, possibly empty) or "no eligible set
//! suffices" (`None`):
//!
//! ```text
//!   eligible victims: other jobs, not terminal, job priority ≤ placing priority − 10
//!
//!   preempt_for_network(asks)          static ports of the asks held strictly by others
//!     │                                  └ holder not eligible (or node-reserved port) → None
//!     │                                  └ else every holder is a victim
//!     └ dynamic range short of ports ─▶ lowest priority first, by distance(missing, freed)
//!                                        + max_parallel penalty; redundant picks pruned
//!
//!   preempt_for_device(request)        per matching device group (name + constraints):
//!                                        holders lowest priority first, closest to what is
//!                                        missing, until count instances are free; redundant
//!                                        picks pruned; best group = smallest Σ distinct
//!                                        priorities
//!
//!   preempt_for_resources(ask)         remaining = capacity − Σ usage(live allocs)
//!                                        priority groups lowest first; greedy by
//!                                        distance(need, v) + max_parallel penalty until
//!                                        remaining ⊇ ask; prune: farthest first, shortest
//!                                        sufficient prefix
//! ```
//!
//! The node-selection stack (`crate::stack`, `rank`) combines them into one victim set per
//! placement: ports and devices are assigned on the node minus the victims found so far; when
//! an assignment fails, the network or device preemptor adds victims and the assignment is
//! retried; CPU, memory and disk come last, through the shared fit check, with every earlier
//! victim already counted as gone (a victim evicted for its port also frees its memory).
//!
//! # Vocabulary
//!
//! * **Distance** — how unlike the still-needed resources a victim is:
//!   `sqrt(Σ ((need_d − v_d) / need_d)²)` over memory, CPU and disk, counting only dimensions
//!   still needed (`need_d > 0`). 0 means a perfect match. For dynamic ports there is one
//!   dimension: `|missing − freed| / missing`, ports still missing versus ports the victim
//!   would free.
//! * **max_parallel penalty** — evicting many allocations of one group at once hurts it like a
//!   bad migration would: when the victim's group has `migrate.max_parallel = m > 0` and `k ≥ m`
//!   of its allocations are already being preempted (earlier in this plan, or earlier in this
//!   selection), `50 × (k + 1 − m)` is added to its distance.
//! * **Strict holder** — an allocation holding a host port without `ignore_collision`; only
//!   strict holders block a static port, but every holder keeps a port out of the dynamic pool
//!   (the rules of [`crate::fit::NetworkIndex`]).
//! * **Net priority** — `max_p + Σp / max_p` over the victims' job priorities; the preemption
//!   score is logistic in it, so evicting few, low-priority allocations scores best.
//!
//! # Guarantees
//!
//! * Never picks an allocation of the placing job, nor one whose job priority is within
//!   [`PRIORITY_DELTA`] of the placing priority (a missing job counts as priority 50), nor an
//!   allocation that is already terminal.
//! * Deterministic regardless of the input order: ties are broken by allocation ID (and by the
//!   node's device group order).
//! * The remaining capacity is computed with [`crate::fit`]'s `node_capacity` and
//!   `alloc_usage`, ports with the same holder rules as `NetworkIndex`, device instances as
//!   `DeviceAllocator` counts them, so once a set this module deems sufficient is gone, the ask
//!   it was computed for can be granted (the stack still re-runs the assignment and the shared
//!   fit check before it records anything).
//!
//! # Limitations (simplifications of Nomad)
//!
//! * Remaining capacity subtracts *every* live allocation, including the placing job's own
//!   (Nomad leaves those out, over-estimating room); the result is more often right, never
//!   more optimistic.
//! * One port space per node (as in [`crate::fit`]): victims are not restricted to the ask's
//!   network device or host-network address, and there is no bandwidth (MBits) dimension, so
//!   network preemption frees static ports and dynamic-range capacity only; "distance" for it
//!   counts ports instead of MBits.
//! * Devices: each request is served from one group; a placement with several device requests
//!   is preempted for one failing request at a time (the stack retries after each), which may
//!   evict more than a joint search would. No NUMA-aware choice.
//! * Reserved cores (`resources.cores`) are not preempted for: the stack reports "cores"
//!   exhausted when the free core ids do not suffice.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use drover_types::alloc::AllocatedDeviceResource;
use drover_types::job::{NetworkResource, RequestedDevice};
use drover_types::node::NodeDeviceResource;
use drover_types::{Allocation, Node};

use crate::fit::{
    Comparable, alloc_usage, device_name_matches, dynamic_range, for_each_alloc_port, node_capacity,
    node_reserved_ranges,
};

/// Minimum priority difference between the placing job and a victim.
pub const PRIORITY_DELTA: i64 = 10;

/// Penalty per victim beyond its group's `migrate.max_parallel`.
pub const MAX_PARALLEL_PENALTY: f64 = 50.0;

/// Distance of a network victim that frees no port by itself (it shares them with others).
const LAST_RESORT: f64 = 1e9;

/// Priority assumed for an allocation without a job.
const DEFAULT_PRIORITY: i64 = 50;

fn priority(a: &Allocation) -> i64 {
    a.job.as_ref().map(|j| j.priority).unwrap_or(DEFAULT_PRIORITY)
}

fn same_job(a: &Allocation, (namespace, job_id): (&str, &str)) -> bool {
    a.namespace == namespace && a.job_id == job_id
}

fn same_group(a: &Allocation, b: &Allocation) -> bool {
    a.namespace == b.namespace && a.job_id == b.job_id && a.task_group == b.task_group
}

/// The victim group's `migrate.max_parallel` (0 = no penalty).
fn max_parallel(a: &Allocation) -> i64 {
    a.job
        .as_ref()
        .and_then(|j| j.group(&a.task_group))
        .and_then(|g| g.migrate.as_ref())
        .map(|m| m.max_parallel())
        .unwrap_or(0)
}

/// May `a` be evicted for a placement of `placing_job` at `placing_priority`?
fn preemptible(a: &Allocation, placing_priority: i64, placing_job: (&str, &str)) -> bool {
    !a.terminal()
        && !same_job(a, placing_job)
        && priority(a) <= placing_priority.saturating_sub(PRIORITY_DELTA)
}

/// `sqrt(Σ ((need_d − v_d)/need_d)²)` over memory, CPU, disk with `need_d > 0`.
fn distance(need: &Comparable, v: &Comparable) -> f64 {
    let coord = |need: i64, have: i64| -> f64 {
        if need > 0 {
            (need as f64 - have as f64) / need as f64
        } else {
            0.0
        }
    };
    let m = coord(need.memory_mb, v.memory_mb);
    let c = coord(need.cpu, v.cpu);
    let d = coord(need.disk_mb, v.disk_mb);
    (m * m + c * c + d * d).sqrt()
}

fn penalty(max_parallel: i64, already: usize) -> f64 {
    let k = i64::try_from(already).unwrap_or(i64::MAX);
    if max_parallel > 0 && k >= max_parallel {
        k.saturating_add(1).saturating_sub(max_parallel) as f64 * MAX_PARALLEL_PENALTY
    } else {
        0.0
    }
}

struct Candidate<'a> {
    alloc: &'a Arc<Allocation>,
    usage: Comparable,
    priority: i64,
    max_parallel: i64,
}

/// Chooses allocations to evict from `node` so that `ask` fits (§10, CPU/memory/disk/cores).
///
/// `current` are the allocations on the node (client-terminal ones are ignored; those whose ID
/// is in `already_preempted` are treated as gone). Candidates are live allocations of other
/// jobs (`placing_job` = (namespace, job ID)) whose job priority is ≤ placing_priority − 10;
/// they are taken priority group by priority group, lowest first, greedily by
/// distance(need, v) + max_parallel penalty (k counts victims of the same job and group in
/// `already_preempted` plus those chosen so far in this call) until capacity ⊇ ask; then the
/// chosen set is pruned (sorted by distance to the ask, descending; the shortest sufficient
/// prefix is kept). `Some(vec![])` when the ask already fits; None if impossible.
pub fn preempt_for_resources(
    node: &Node,
    ask: &Comparable,
    current: &[Arc<Allocation>],
    placing_priority: i64,
    placing_job: (&str, &str),
    already_preempted: &[Arc<Allocation>],
) -> Option<Vec<Arc<Allocation>>> {
    let gone = |a: &Allocation| already_preempted.iter().any(|p| p.id == a.id);

    let mut remaining = node_capacity(node);
    let mut candidates: Vec<Candidate<'_>> = Vec::new();
    for a in current {
        if a.client_terminal() || gone(a) {
            continue;
        }
        let usage = alloc_usage(a);
        remaining.sub(&usage);
        if preemptible(a, placing_priority, placing_job) {
            candidates.push(Candidate {
                alloc: a,
                usage,
                priority: priority(a),
                max_parallel: max_parallel(a),
            });
        }
    }
    if remaining.superset(ask).is_none() {
        return Some(Vec::new());
    }
    // Priority groups, lowest first; IDs make the order independent of the input order.
    candidates.sort_by(|x, y| {
        x.priority
            .cmp(&y.priority)
            .then_with(|| x.alloc.id.cmp(&y.alloc.id))
    });
    // Guard against the same allocation listed twice.
    candidates.dedup_by(|x, y| x.alloc.id == y.alloc.id);

    let mut available = remaining;
    let mut need = *ask;
    let mut chosen: Vec<usize> = Vec::new();
    let mut taken = vec![false; candidates.len()];
    let mut satisfied = false;
    let mut start = 0;
    while start < candidates.len() && !satisfied {
        let prio = candidates[start].priority;
        let end = start
            + candidates[start..]
                .iter()
                .take_while(|c| c.priority == prio)
                .count();
        while !satisfied {
            let mut best: Option<(usize, f64)> = None;
            for i in start..end {
                if taken[i] {
                    continue;
                }
                let c = &candidates[i];
                let k = already_preempted
                    .iter()
                    .filter(|p| same_group(p, c.alloc))
                    .count()
                    + chosen
                        .iter()
                        .filter(|&&j| same_group(candidates[j].alloc, c.alloc))
                        .count();
                let score = distance(&need, &c.usage) + penalty(c.max_parallel, k);
                // Strictly better wins; on ties the earlier (lower ID) candidate stays.
                if best.is_none_or(|(_, b)| score.total_cmp(&b) == Ordering::Less) {
                    best = Some((i, score));
                }
            }
            let Some((i, _)) = best else { break };
            taken[i] = true;
            available.add(&candidates[i].usage);
            need.sub(&candidates[i].usage);
            chosen.push(i);
            satisfied = available.superset(ask).is_none();
        }
        start = end;
    }
    if !satisfied {
        return None;
    }

    // Prune: farthest-from-the-ask first, keep the shortest sufficient prefix.
    chosen.sort_by(|&x, &y| {
        let dx = distance(ask, &candidates[x].usage);
        let dy = distance(ask, &candidates[y].usage);
        dy.total_cmp(&dx)
            .then_with(|| candidates[x].alloc.id.cmp(&candidates[y].alloc.id))
    });
    let mut available = remaining;
    let mut kept = Vec::new();
    for i in chosen {
        kept.push(Arc::clone(candidates[i].alloc));
        available.add(&candidates[i].usage);
        if available.superset(ask).is_none() {
            break;
        }
    }
    Some(kept)
}

/// The host ports an allocation holds as (port, strict), skipping invalid values.
fn ports_of(a: &Allocation) -> Vec<(u16, bool)> {
    let mut out = Vec::new();
    for_each_alloc_port(a, |v, ignore| {
        if let Ok(p) = u16::try_from(v)
            && p >= 1
        {
            out.push((p, !ignore));
        }
    });
    out
}

fn in_port_ranges(ranges: &[(u16, u16)], p: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= p && p <= hi)
}

/// Frees host ports for the network asks of one placement (§10 "Network").
///
/// `asks` are all the placement's networks (the group network and every legacy task network);
/// they are preempted for together so that one victim set serves all of them. `current` are
/// the allocations on the node as the plan leaves it (client-terminal ones and those in
/// `already_preempted` are ignored).
///
/// 1. **Static ports.** Every static port of the asks that is not `ignore_collision` must not
///    be reserved by the node nor asked twice, and every live allocation strictly holding it
///    must be eligible (other job, not terminal, priority ≤ placing − [`PRIORITY_DELTA`]) —
///    else None. All those holders are victims.
/// 2. **Dynamic ports.** If the dynamic range then has fewer free ports than the asks'
///    dynamic ports together, eligible holders of ports in the range are added, priority group
///    by priority group (lowest first), each time the one minimising
///    `|missing − freed| / missing` + the max_parallel penalty (`k` counts victims of the same
///    job and group in `already_preempted` and among those already chosen); a port is freed
///    only when all its holders are victims, so a holder that frees nothing by itself (its
///    ports are shared) is taken only as a last resort. Too few → None. Then victims of this step that
///    are not needed are dropped again (latest pick first).
///
/// `Some(vec![])` when nothing needs evicting.
pub fn preempt_for_network(
    node: &Node,
    asks: &[&NetworkResource],
    current: &[Arc<Allocation>],
    placing_priority: i64,
    placing_job: (&str, &str),
    already_preempted: &[Arc<Allocation>],
) -> Option<Vec<Arc<Allocation>>> {
    let gone = |a: &Allocation| already_preempted.iter().any(|p| p.id == a.id);
    let reserved = node_reserved_ranges(node);
    let mut live: Vec<&Arc<Allocation>> = current
        .iter()
        .filter(|a| !a.client_terminal() && !gone(a))
        .collect();
    live.sort_by(|a, b| a.id.cmp(&b.id));
    live.dedup_by(|a, b| a.id == b.id);
    let held: Vec<Vec<(u16, bool)>> = live.iter().map(|a| ports_of(a)).collect();
    let mut victim = vec![false; live.len()];
    let mut chosen: Vec<usize> = Vec::new();

    // 1. Static ports: every strict holder goes, or the node is out.
    let mut ask_strict: Vec<u16> = Vec::new();
    let mut ask_all: Vec<u16> = Vec::new();
    for port in asks.iter().flat_map(|a| a.reserved_ports.iter()) {
        let p = u16::try_from(port.value).ok().filter(|&p| p >= 1)?;
        ask_all.push(p);
        if port.ignore_collision {
            continue;
        }
        if in_port_ranges(&reserved, p) || ask_strict.contains(&p) {
            return None;
        }
        ask_strict.push(p);
        for (i, a) in live.iter().enumerate() {
            if victim[i] || !held[i].iter().any(|&(q, strict)| q == p && strict) {
                continue;
            }
            if !preemptible(a, placing_priority, placing_job) {
                return None;
            }
            victim[i] = true;
            chosen.push(i);
        }
    }

    // 2. Dynamic capacity.
    let needed: usize = asks.iter().map(|a| a.dynamic_ports.len()).sum();
    if needed == 0 {
        return Some(chosen.into_iter().map(|i| Arc::clone(live[i])).collect());
    }
    let (lo, hi) = dynamic_range(node);
    if lo > hi {
        return None;
    }
    // Ports of the range that an allocation could give back: not node-reserved and not one of
    // the asks' own static ports.
    let poolable = |p: u16| lo <= p && p <= hi && !in_port_ranges(&reserved, p) && !ask_all.contains(&p);
    let in_range: Vec<Vec<u16>> = held
        .iter()
        .map(|ports| {
            let mut v: Vec<u16> = ports.iter().map(|&(p, _)| p).filter(|&p| poolable(p)).collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let mut pool_size = usize::from(hi - lo) + 1;
    for &(a, b) in &reserved {
        let (a, b) = (a.max(lo), b.min(hi));
        if a <= b {
            pool_size = pool_size.saturating_sub(usize::from(b - a) + 1);
        }
    }
    let mut own_static: Vec<u16> = ask_all
        .iter()
        .copied()
        .filter(|&p| lo <= p && p <= hi && !in_port_ranges(&reserved, p))
        .collect();
    own_static.sort_unstable();
    own_static.dedup();
    pool_size = pool_size.saturating_sub(own_static.len());
    // Holder counts of the pool's ports among the allocations that stay.
    let mut holders: BTreeMap<u16, usize> = BTreeMap::new();
    for (i, ports) in in_range.iter().enumerate() {
        if !victim[i] {
            for &p in ports {
                *holders.entry(p).or_default() += 1;
            }
        }
    }
    let free = |holders: &BTreeMap<u16, usize>| pool_size.saturating_sub(holders.len());
    let release = |holders: &mut BTreeMap<u16, usize>, ports: &[u16]| {
        for p in ports {
            if let Some(c) = holders.get_mut(p) {
                *c -= 1;
                if *c == 0 {
                    holders.remove(p);
                }
            }
        }
    };
    if free(&holders) >= needed {
        return Some(chosen.into_iter().map(|i| Arc::clone(live[i])).collect());
    }

    // Eligible holders of pool ports, lowest priority first (IDs already sorted).
    let mut candidates: Vec<usize> = (0..live.len())
        .filter(|&i| {
            !victim[i] && !in_range[i].is_empty() && preemptible(live[i], placing_priority, placing_job)
        })
        .collect();
    candidates.sort_by_key(|&i| priority(live[i]));
    let static_victims = chosen.len();
    let mut start = 0;
    while start < candidates.len() && free(&holders) < needed {
        let prio = priority(live[candidates[start]]);
        let end = start
            + candidates[start..]
                .iter()
                .take_while(|&&i| priority(live[i]) == prio)
                .count();
        while free(&holders) < needed {
            let missing = (needed - free(&holders)) as f64;
            let mut best: Option<(usize, f64)> = None;
            for &i in &candidates[start..end] {
                if victim[i] {
                    continue;
                }
                let freed = in_range[i].iter().filter(|p| holders.get(p) == Some(&1)).count();
                let k = already_preempted
                    .iter()
                    .filter(|p| same_group(p, live[i]))
                    .count()
                    + chosen.iter().filter(|&&j| same_group(live[j], live[i])).count();
                // One freeing nothing yet (its ports are shared with other holders) only as a
                // last resort.
                let distance = if freed == 0 {
                    LAST_RESORT
                } else {
                    (missing - freed as f64).abs() / missing
                };
                let score = distance + penalty(max_parallel(live[i]), k);
                if best.is_none_or(|(_, b)| score.total_cmp(&b) == Ordering::Less) {
                    best = Some((i, score));
                }
            }
            let Some((i, _)) = best else { break };
            victim[i] = true;
            chosen.push(i);
            release(&mut holders, &in_range[i]);
        }
        start = end;
    }
    if free(&holders) < needed {
        return None;
    }
    // Prune: give back dynamic-step victims that turned out unnecessary, latest pick first.
    for pos in (static_victims..chosen.len()).rev() {
        let i = chosen[pos];
        for &p in &in_range[i] {
            *holders.entry(p).or_default() += 1;
        }
        if free(&holders) >= needed {
            victim[i] = false;
        } else {
            release(&mut holders, &in_range[i]);
        }
    }
    Some(
        chosen
            .into_iter()
            .filter(|&i| victim[i])
            .map(|i| Arc::clone(live[i]))
            .collect(),
    )
}

/// Does the grant `d` come from device group `g` (same vendor, type and name)?
fn same_device(g: &NodeDeviceResource, d: &AllocatedDeviceResource) -> bool {
    g.vendor == d.vendor && g.device_type == d.device_type && g.name == d.name
}

/// Frees device instances for one device request (§10 "Devices").
///
/// Considered are the node's device groups whose name matches the request (the
/// [`crate::fit::DeviceAllocator`] rule) and that `accept` approves (the caller checks the
/// request's constraints, see `crate::feasible::device_request_matches`). `current` are the
/// allocations on the node as the plan leaves it minus victims already chosen; `claimed` are
/// instances already granted to this same placement (for earlier requests), which are never
/// freed.
///
/// Per group: healthy instances that nobody holds are free; eligible holders (other job, not
/// terminal, priority ≤ placing − [`PRIORITY_DELTA`]) are taken priority group by priority
/// group, lowest first, each time the one whose freed instances come closest to what is still
/// missing (ties: lower ID), until `count` (at least 1) instances are free — an instance held
/// by several allocations is freed only when all of them go; then victims not needed are
/// dropped again (latest pick first). Among the groups that can be satisfied, the one whose
/// victims have the smallest sum of *distinct* priorities wins (then fewer victims, then node
/// order). `Some(vec![])` when a group already has enough free
/// instances; None when no group can be satisfied.
pub fn preempt_for_device(
    node: &Node,
    req: &RequestedDevice,
    accept: impl Fn(&NodeDeviceResource) -> bool,
    current: &[Arc<Allocation>],
    claimed: &[AllocatedDeviceResource],
    placing_priority: i64,
    placing_job: (&str, &str),
) -> Option<Vec<Arc<Allocation>>> {
    let groups: &[NodeDeviceResource] = node
        .node_resources
        .as_ref()
        .map(|r| r.devices.as_slice())
        .unwrap_or(&[]);
    let count = usize::try_from(req.count.max(1)).unwrap_or(usize::MAX);
    let mut live: Vec<&Arc<Allocation>> = current.iter().filter(|a| !a.client_terminal()).collect();
    live.sort_by(|a, b| a.id.cmp(&b.id));
    live.dedup_by(|a, b| a.id == b.id);

    // (Σ distinct priorities, victim count, victims) of the best group so far.
    let mut best: Option<(i64, usize, Vec<usize>)> = None;
    for g in groups {
        if !device_name_matches(&req.name, &g.vendor, &g.device_type, &g.name) || !accept(g) {
            continue;
        }
        let is_claimed = |id: &str| {
            claimed
                .iter()
                .any(|d| same_device(g, d) && d.device_ids.iter().any(|x| x == id))
        };
        // Holders (indices into `live`) of each usable instance: healthy, not claimed.
        let usable: Vec<usize> = g
            .instances
            .iter()
            .enumerate()
            .filter(|(_, inst)| inst.healthy && !is_claimed(&inst.id))
            .map(|(i, _)| i)
            .collect();
        let holders: Vec<Vec<usize>> = usable
            .iter()
            .map(|&i| {
                let id = &g.instances[i].id;
                (0..live.len())
                    .filter(|&a| {
                        live[a].allocated_resources.as_ref().is_some_and(|ar| {
                            ar.tasks
                                .values()
                                .flat_map(|t| t.devices.iter())
                                .any(|d| same_device(g, d) && d.device_ids.iter().any(|x| x == id))
                        })
                    })
                    .collect()
            })
            .collect();
        let mut victim = vec![false; live.len()];
        let free = |victim: &[bool]| holders.iter().filter(|h| h.iter().all(|&a| victim[a])).count();
        if free(&victim) >= count {
            return Some(Vec::new());
        }
        let mut candidates: Vec<usize> = (0..live.len())
            .filter(|&a| {
                holders.iter().any(|h| h.contains(&a)) && preemptible(live[a], placing_priority, placing_job)
            })
            .collect();
        // `live` is sorted by ID and the sort is stable: IDs break ties.
        candidates.sort_by_key(|&a| priority(live[a]));
        let mut chosen: Vec<usize> = Vec::new();
        let mut start = 0;
        while start < candidates.len() && free(&victim) < count {
            let prio = priority(live[candidates[start]]);
            let end = start
                + candidates[start..]
                    .iter()
                    .take_while(|&&a| priority(live[a]) == prio)
                    .count();
            while free(&victim) < count {
                let have = free(&victim);
                let missing = count - have;
                // The candidate freeing closest to what is still missing; one freeing nothing
                // yet (an instance shared with another holder) only as a last resort.
                let mut best_pick: Option<(usize, usize)> = None;
                for &a in &candidates[start..end] {
                    if victim[a] {
                        continue;
                    }
                    victim[a] = true;
                    let gain = free(&victim) - have;
                    victim[a] = false;
                    let d = if gain == 0 {
                        usize::MAX
                    } else {
                        gain.abs_diff(missing)
                    };
                    if best_pick.is_none_or(|(_, b)| d < b) {
                        best_pick = Some((a, d));
                    }
                }
                let Some((a, _)) = best_pick else { break };
                victim[a] = true;
                chosen.push(a);
            }
            start = end;
        }
        if free(&victim) < count {
            continue;
        }
        for pos in (0..chosen.len()).rev() {
            victim[chosen[pos]] = false;
            if free(&victim) < count {
                victim[chosen[pos]] = true;
            }
        }
        chosen.retain(|&a| victim[a]);
        let mut prios: Vec<i64> = chosen.iter().map(|&a| priority(live[a])).collect();
        prios.sort_unstable();
        prios.dedup();
        let sum = prios.iter().fold(0i64, |s, p| s.saturating_add(*p));
        if best
            .as_ref()
            .is_none_or(|(s, n, _)| (sum, chosen.len()) < (*s, *n))
        {
            best = Some((sum, chosen.len(), chosen));
        }
    }
    best.map(|(_, _, chosen)| chosen.into_iter().map(|a| Arc::clone(live[a])).collect())
}

/// Net priority score contribution of a preemption option:
/// `1 / (1 + exp(0.0048 * (net_priority − 2048)))`, `net_priority = max_p + Σp / max_p`.
/// Fewer and lower-priority victims score higher.
pub fn preemption_score(victims: &[Arc<Allocation>]) -> f64 {
    let mut max = 0i64;
    let mut sum = 0i64;
    for v in victims {
        let p = priority(v);
        max = max.max(p);
        sum = sum.saturating_add(p);
    }
    let max_f = if max <= 0 { 1.0 } else { max as f64 };
    let net = max as f64 + sum as f64 / max_f;
    1.0 / (1.0 + (0.0048 * (net - 2048.0)).exp())
}

#[cfg(test)]
mod tests {
    use BTreeMap;

    use drover_types::alloc::{
        AllocatedCpuResources, AllocatedMemoryResources, AllocatedPortMapping, AllocatedResources,
        AllocatedSharedResources, AllocatedTaskResources, client_status,
    };
    use drover_types::job::{MigrateStrategy, Port};
    use drover_types::node::{
        NodeCpuResources, NodeDevice, NodeDiskResources, NodeMemoryResources, NodeReservedNetwork,
        NodeReservedResources, NodeResources,
    };
    use drover_types::{Job, TaskGroup};

    use super::*;
    use crate::fit::allocs_fit;

    fn node(cpu: i64, mem: i64) -> Node {
        Node {
            node_resources: Some(NodeResources {
                cpu: NodeCpuResources {
                    cpu_shares: cpu,
                    ..Default::default()
                },
                memory: NodeMemoryResources { memory_mb: mem },
                disk: NodeDiskResources { disk_mb: 100_000 },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn job(id: &str, priority: i64, max_parallel: Option<i64>) -> Arc<Job> {
        Arc::new(Job {
            id: id.into(),
            namespace: "default".into(),
            priority,
            task_groups: vec![TaskGroup {
                name: "g".into(),
                migrate: max_parallel.map(|m| MigrateStrategy {
                    max_parallel: Some(m),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn alloc(id: &str, job: &Arc<Job>, cpu: i64, mem: i64) -> Arc<Allocation> {
        let mut tasks = BTreeMap::new();
        tasks.insert(
            "t".to_string(),
            AllocatedTaskResources {
                cpu: AllocatedCpuResources {
                    cpu_shares: cpu,
                    reserved_cores: vec![],
                },
                memory: AllocatedMemoryResources {
                    memory_mb: mem,
                    memory_max_mb: 0,
                },
                ..Default::default()
            },
        );
        Arc::new(Allocation {
            id: id.into(),
            namespace: "default".into(),
            job_id: job.id.clone(),
            job: Some(Arc::clone(job)),
            task_group: "g".into(),
            client_status: client_status::RUNNING.into(),
            desired_status: "run".into(),
            allocated_resources: Some(AllocatedResources {
                tasks,
                shared: AllocatedSharedResources::default(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn with_ports(a: Arc<Allocation>, ports: &[i64]) -> Arc<Allocation> {
        let mut a = (*a).clone();
        if let Some(ar) = a.allocated_resources.as_mut() {
            ar.shared.ports = ports
                .iter()
                .map(|&value| AllocatedPortMapping {
                    label: format!("p{value}"),
                    value,
                    ..Default::default()
                })
                .collect();
        }
        Arc::new(a)
    }

    fn ask(cpu: i64, mem: i64) -> Comparable {
        Comparable {
            cpu,
            memory_mb: mem,
            ..Default::default()
        }
    }

    fn ids(v: &Option<Vec<Arc<Allocation>>>) -> Option<Vec<&str>> {
        v.as_ref().map(|v| {
            let mut ids: Vec<&str> = v.iter().map(|a| a.id.as_str()).collect();
            ids.sort_unstable();
            ids
        })
    }

    const PLACING: (&str, &str) = ("default", "placing");

    #[test]
    fn never_within_priority_delta_nor_same_job() {
        let n = node(1000, 1000);
        let low = job("low", 50, None);
        let current = vec![alloc("a", &low, 1000, 1000)];
        assert!(preempt_for_resources(&n, &ask(500, 500), &current, 59, PLACING, &[]).is_none());
        assert_eq!(
            ids(&preempt_for_resources(
                &n,
                &ask(500, 500),
                &current,
                60,
                PLACING,
                &[]
            )),
            Some(vec!["a"])
        );
        // The placing job's own allocation is never a victim.
        let own = job("placing", 10, None);
        let current = vec![alloc("o", &own, 1000, 1000)];
        assert!(preempt_for_resources(&n, &ask(500, 500), &current, 100, PLACING, &[]).is_none());
        // Already terminal allocations are not victims (and client-terminal ones free room).
        let mut stopped = (*alloc("s", &low, 1000, 1000)).clone();
        stopped.desired_status = "stop".into();
        assert!(preempt_for_resources(&n, &ask(500, 500), &[Arc::new(stopped)], 100, PLACING, &[]).is_none());
        let mut done = (*alloc("d", &low, 1000, 1000)).clone();
        done.client_status = client_status::COMPLETE.into();
        assert_eq!(
            ids(&preempt_for_resources(
                &n,
                &ask(500, 500),
                &[Arc::new(done)],
                100,
                PLACING,
                &[]
            )),
            Some(vec![])
        );
    }

    #[test]
    fn lowest_priority_first() {
        let n = node(1000, 1000);
        let (p10, p20, p30) = (job("j10", 10, None), job("j20", 20, None), job("j30", 30, None));
        // The priority-30 alloc is a perfect match, but the priority-10 one goes first.
        let current = vec![
            alloc("c30", &p30, 500, 500),
            alloc("c20", &p20, 250, 250),
            alloc("c10", &p10, 250, 250),
        ];
        let got = preempt_for_resources(&n, &ask(250, 250), &current, 100, PLACING, &[]);
        assert_eq!(ids(&got), Some(vec!["c10"]));
        let got = preempt_for_resources(&n, &ask(500, 500), &current, 100, PLACING, &[]);
        assert_eq!(ids(&got), Some(vec!["c10", "c20"]));
    }

    #[test]
    fn one_big_victim_beats_three_small_ones() {
        let n = node(2000, 2000);
        let j = job("low", 10, None);
        let current = vec![
            alloc("small1", &j, 400, 400),
            alloc("small2", &j, 400, 400),
            alloc("small3", &j, 400, 400),
            alloc("big", &j, 800, 800),
        ];
        // Free: 0. Need 800/800: the big one is at distance 0, each small one at 0.71.
        let got = preempt_for_resources(&n, &ask(800, 800), &current, 100, PLACING, &[]);
        assert_eq!(ids(&got), Some(vec!["big"]));
        // Input order does not matter.
        let rev: Vec<_> = current.iter().rev().cloned().collect();
        assert_eq!(
            ids(&preempt_for_resources(
                &n,
                &ask(800, 800),
                &rev,
                100,
                PLACING,
                &[]
            )),
            Some(vec!["big"])
        );
    }

    #[test]
    fn prune_drops_unneeded_victims() {
        let n = node(3200, 3200);
        let (p10, p20) = (job("j10", 10, None), job("j20", 20, None));
        // Greedy must take the priority-10 alloc first (too small), then the big priority-20 one;
        // the big one alone suffices, so pruning drops the small one.
        let current = vec![alloc("small", &p10, 200, 200), alloc("huge", &p20, 3000, 3000)];
        let got = preempt_for_resources(&n, &ask(1000, 1000), &current, 100, PLACING, &[]);
        assert_eq!(ids(&got), Some(vec!["huge"]));
        // The result really makes room in the shared fit check.
        let victims = got.unwrap_or_default();
        let mut placed = (*alloc("new", &job("placing", 100, None), 1000, 1000)).clone();
        placed.job_id = "placing".into();
        let mut proposed: Vec<&Allocation> = current
            .iter()
            .filter(|a| !victims.iter().any(|v| v.id == a.id))
            .map(|a| a.as_ref())
            .collect();
        proposed.push(&placed);
        assert!(allocs_fit(&n, &proposed, true).is_ok());
    }

    #[test]
    fn none_when_all_eligible_victims_are_not_enough() {
        let n = node(1000, 1000);
        let (low, high) = (job("low", 10, None), job("high", 95, None));
        let current = vec![
            alloc("l1", &low, 200, 200),
            alloc("l2", &low, 200, 200),
            alloc("h", &high, 600, 600),
        ];
        assert!(preempt_for_resources(&n, &ask(500, 500), &current, 100, PLACING, &[]).is_none());
        assert_eq!(
            ids(&preempt_for_resources(
                &n,
                &ask(400, 400),
                &current,
                100,
                PLACING,
                &[]
            )),
            Some(vec!["l1", "l2"])
        );
    }

    #[test]
    fn max_parallel_penalty_changes_the_choice() {
        let n = node(1100, 1100);
        let guarded = job("guarded", 10, Some(1));
        let other = job("other", 10, None);
        let current = vec![alloc("g1", &guarded, 500, 500), alloc("o1", &other, 400, 600)];
        // Without earlier preemptions the exact match g1 wins.
        assert_eq!(
            ids(&preempt_for_resources(
                &n,
                &ask(500, 500),
                &current,
                100,
                PLACING,
                &[]
            )),
            Some(vec!["g1"])
        );
        // One allocation of guarded/g is already being preempted in this plan: g1 is penalised.
        let earlier = alloc("g0", &guarded, 500, 500);
        let got = preempt_for_resources(&n, &ask(500, 500), &current, 100, PLACING, &[earlier]);
        assert_eq!(ids(&got), Some(vec!["o1"]));
    }

    #[test]
    fn already_preempted_allocs_count_as_gone() {
        let n = node(1000, 1000);
        let j = job("low", 10, None);
        let current = vec![alloc("a", &j, 500, 500), alloc("b", &j, 500, 500)];
        let got = preempt_for_resources(
            &n,
            &ask(500, 500),
            &current,
            100,
            PLACING,
            &[Arc::clone(&current[0])],
        );
        assert_eq!(ids(&got), Some(vec![]));
    }

    #[test]
    fn preemption_score_is_monotone() {
        let score = |ps: &[i64]| {
            let v: Vec<_> = ps
                .iter()
                .enumerate()
                .map(|(i, &p)| alloc(&format!("a{i}"), &job("j", p, None), 1, 1))
                .collect();
            preemption_score(&v)
        };
        assert!(score(&[10]) > score(&[20]));
        assert!(score(&[20]) > score(&[50]));
        assert!(score(&[50]) > score(&[90]));
        assert!(score(&[10, 10]) < score(&[10]));
        let s = score(&[50]);
        assert!(s > 0.0 && s < 1.0);
        // net priority 50 + 50/50 = 51.
        assert!((s - 1.0 / (1.0 + (0.0048f64 * (51.0 - 2048.0)).exp())).abs() < 1e-12);
        assert!(score(&[]).is_finite());
    }

    fn port_node(min: i64, max: i64, reserved: &str) -> Node {
        let mut n = node(10_000, 10_000);
        if let Some(r) = n.node_resources.as_mut() {
            r.min_dynamic_port = min;
            r.max_dynamic_port = max;
        }
        n.reserved_resources = Some(NodeReservedResources {
            networks: NodeReservedNetwork {
                reserved_host_ports: reserved.into(),
            },
            ..Default::default()
        });
        n
    }

    fn static_ask(value: i64) -> NetworkResource {
        NetworkResource {
            reserved_ports: vec![Port {
                label: "http".into(),
                value,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn dyn_ask(k: usize) -> NetworkResource {
        NetworkResource {
            dynamic_ports: (0..k)
                .map(|i| Port {
                    label: format!("d{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn net(
        n: &Node,
        asks: &[&NetworkResource],
        current: &[Arc<Allocation>],
        prio: i64,
    ) -> Option<Vec<Arc<Allocation>>> {
        preempt_for_network(n, asks, current, prio, PLACING, &[])
    }

    /// The shared port assignment succeeds on the node once `victims` are gone.
    fn assignable(
        n: &Node,
        asks: &[&NetworkResource],
        current: &[Arc<Allocation>],
        victims: &[Arc<Allocation>],
    ) -> bool {
        let rest: Vec<&Allocation> = current
            .iter()
            .filter(|a| !victims.iter().any(|v| v.id == a.id))
            .map(|a| a.as_ref())
            .collect();
        let mut index = crate::fit::NetworkIndex::new(n);
        if index.add_allocs(&rest).is_err() {
            return false;
        }
        let mut rng = crate::rng::Rng::new(7);
        asks.iter()
            .all(|a| index.assign_task_network(a, &mut rng).is_ok())
    }

    #[test]
    fn network_static_port_holders() {
        let n = port_node(0, 0, "22");
        let (low, high) = (job("low", 10, None), job("high", 95, None));
        let current = vec![
            with_ports(alloc("l", &low, 1, 1), &[8080]),
            with_ports(alloc("h", &high, 1, 1), &[9090]),
        ];
        let got = net(&n, &[&static_ask(8080)], &current, 100);
        assert_eq!(ids(&got), Some(vec!["l"]));
        assert!(!assignable(&n, &[&static_ask(8080)], &current, &[]));
        assert!(assignable(
            &n,
            &[&static_ask(8080)],
            &current,
            &got.unwrap_or_default()
        ));
        // A holder that may not be evicted blocks the node; so does a node-reserved port.
        assert!(net(&n, &[&static_ask(9090)], &current, 100).is_none());
        assert!(net(&n, &[&static_ask(22)], &current, 100).is_none());
        // Nothing to do for a free port.
        assert_eq!(ids(&net(&n, &[&static_ask(7070)], &current, 100)), Some(vec![]));
        // Within the priority delta: 60 may evict priority 50, 59 may not.
        let mid = job("mid", 50, None);
        let current = vec![with_ports(alloc("m", &mid, 1, 1), &[8080])];
        assert!(net(&n, &[&static_ask(8080)], &current, 59).is_none());
        assert_eq!(ids(&net(&n, &[&static_ask(8080)], &current, 60)), Some(vec!["m"]));
        // The placing job's own allocation never goes, whatever its priority.
        let own = job("placing", 10, None);
        let current = vec![with_ports(alloc("o", &own, 1, 1), &[8080])];
        assert!(net(&n, &[&static_ask(8080)], &current, 100).is_none());
    }

    #[test]
    fn network_ignore_collision_on_either_side() {
        let n = port_node(0, 0, "");
        let low = job("low", 10, None);
        // A loose holder does not block a strict ask ...
        let mut loose = (*with_ports(alloc("l", &low, 1, 1), &[8080])).clone();
        if let Some(ar) = loose.allocated_resources.as_mut() {
            ar.shared.ports[0].ignore_collision = true;
        }
        let current = vec![Arc::new(loose)];
        assert_eq!(ids(&net(&n, &[&static_ask(8080)], &current, 100)), Some(vec![]));
        // ... and a loose ask needs nobody evicted.
        let strict = vec![with_ports(alloc("s", &low, 1, 1), &[8080])];
        let mut ask = static_ask(8080);
        ask.reserved_ports[0].ignore_collision = true;
        assert_eq!(ids(&net(&n, &[&ask], &strict, 100)), Some(vec![]));
    }

    #[test]
    fn network_asks_are_preempted_for_together() {
        let n = port_node(30000, 30003, "");
        let (a, b) = (job("a", 10, None), job("b", 20, None));
        let current = vec![
            with_ports(alloc("a1", &a, 1, 1), &[8080, 30000]),
            with_ports(alloc("b1", &b, 1, 1), &[9090]),
            with_ports(alloc("b2", &b, 1, 1), &[30001, 30002, 30003]),
        ];
        // Group network: static 8080 + 1 dynamic; task network: static 9090 + 1 dynamic. The
        // static holders a1 and b1 go; a1 also frees 30000, so one more dynamic port is missing.
        let mut group = static_ask(8080);
        group.dynamic_ports = dyn_ask(1).dynamic_ports;
        let mut task = static_ask(9090);
        task.dynamic_ports = dyn_ask(1).dynamic_ports;
        let got = net(&n, &[&group, &task], &current, 100);
        assert_eq!(ids(&got), Some(vec!["a1", "b1", "b2"]));
        assert!(assignable(
            &n,
            &[&group, &task],
            &current,
            &got.unwrap_or_default()
        ));
        // The same static port asked twice strictly can never be granted.
        assert!(net(&n, &[&static_ask(7070), &static_ask(7070)], &[], 100).is_none());
    }

    #[test]
    fn network_dynamic_capacity() {
        let n = port_node(30000, 30003, "30003");
        let (low, mid) = (job("low", 10, None), job("mid", 20, None));
        let current = vec![
            with_ports(alloc("m", &mid, 1, 1), &[30000]),
            with_ports(alloc("l", &low, 1, 1), &[30001, 30002]),
        ];
        assert_eq!(ids(&net(&n, &[&dyn_ask(1)], &current, 100)), Some(vec!["l"]));
        assert_eq!(ids(&net(&n, &[&dyn_ask(3)], &current, 100)), Some(vec!["l", "m"]));
        assert!(net(&n, &[&dyn_ask(4)], &current, 100).is_none());
        assert!(net(&n, &[&dyn_ask(1)], &current, 19).is_none());
        let got = net(&n, &[&dyn_ask(3)], &current, 100);
        assert!(!assignable(&n, &[&dyn_ask(3)], &current, &[]));
        assert!(assignable(&n, &[&dyn_ask(3)], &current, &got.unwrap_or_default()));
    }

    #[test]
    fn network_dynamic_prefers_the_closest_victim_and_prunes() {
        // Range of 4 ports, all held. Missing 1: the one-port holder is a perfect match.
        let n = port_node(30000, 30003, "");
        let low = job("low", 10, None);
        let current = vec![
            with_ports(alloc("big", &low, 1, 1), &[30000, 30001, 30002]),
            with_ports(alloc("one", &low, 1, 1), &[30003]),
        ];
        assert_eq!(ids(&net(&n, &[&dyn_ask(1)], &current, 100)), Some(vec!["one"]));
        assert_eq!(ids(&net(&n, &[&dyn_ask(3)], &current, 100)), Some(vec!["big"]));
        // Lowest priority first even when it is too small; the later, sufficient pick makes it
        // redundant and the prune gives it back.
        let (p10, p20) = (job("p10", 10, None), job("p20", 20, None));
        let current = vec![
            with_ports(alloc("small", &p10, 1, 1), &[30000]),
            with_ports(alloc("large", &p20, 1, 1), &[30001, 30002, 30003]),
        ];
        assert_eq!(ids(&net(&n, &[&dyn_ask(3)], &current, 100)), Some(vec!["large"]));
        // A port shared by two loose holders is freed only when both go.
        let mut shared = Vec::new();
        for id in ["s1", "s2"] {
            let mut a = (*with_ports(alloc(id, &low, 1, 1), &[30000])).clone();
            if let Some(ar) = a.allocated_resources.as_mut() {
                ar.shared.ports[0].ignore_collision = true;
            }
            shared.push(Arc::new(a));
        }
        shared.push(with_ports(
            alloc("x", &job("high", 95, None), 1, 1),
            &[30001, 30002, 30003],
        ));
        assert_eq!(
            ids(&net(&n, &[&dyn_ask(1)], &shared, 100)),
            Some(vec!["s1", "s2"])
        );
    }

    #[test]
    fn network_max_parallel_penalty_changes_the_choice() {
        let n = port_node(30000, 30001, "");
        let guarded = job("guarded", 10, Some(1));
        let other = job("other", 10, None);
        // Both free one port; "g1" sorts first and wins the tie without earlier preemptions.
        let current = vec![
            with_ports(alloc("g1", &guarded, 1, 1), &[30000]),
            with_ports(alloc("o1", &other, 1, 1), &[30001]),
        ];
        assert_eq!(ids(&net(&n, &[&dyn_ask(1)], &current, 100)), Some(vec!["g1"]));
        let earlier = alloc("g0", &guarded, 1, 1);
        let got = preempt_for_network(&n, &[&dyn_ask(1)], &current, 100, PLACING, &[earlier]);
        assert_eq!(ids(&got), Some(vec!["o1"]));
    }

    fn gpu_group(name: &str, healthy: usize, unhealthy: usize) -> NodeDeviceResource {
        NodeDeviceResource {
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: name.into(),
            instances: (0..healthy + unhealthy)
                .map(|i| NodeDevice {
                    id: format!("{name}-{i}"),
                    healthy: i < healthy,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn gpu_node(groups: Vec<NodeDeviceResource>) -> Node {
        let mut n = node(10_000, 10_000);
        if let Some(r) = n.node_resources.as_mut() {
            r.devices = groups;
        }
        n
    }

    fn with_gpus(a: Arc<Allocation>, group: &str, instances: &[usize]) -> Arc<Allocation> {
        let mut a = (*a).clone();
        if let Some(ar) = a.allocated_resources.as_mut()
            && let Some(t) = ar.tasks.get_mut("t")
        {
            t.devices.push(AllocatedDeviceResource {
                vendor: "nvidia".into(),
                device_type: "gpu".into(),
                name: group.into(),
                device_ids: instances.iter().map(|i| format!("{group}-{i}")).collect(),
            });
        }
        Arc::new(a)
    }

    fn gpus(count: i64) -> RequestedDevice {
        RequestedDevice {
            name: "nvidia/gpu".into(),
            count,
            ..Default::default()
        }
    }

    fn dev(n: &Node, count: i64, current: &[Arc<Allocation>], prio: i64) -> Option<Vec<Arc<Allocation>>> {
        preempt_for_device(n, &gpus(count), |_| true, current, &[], prio, PLACING)
    }

    #[test]
    fn device_fewest_lowest_victims() {
        let n = gpu_node(vec![gpu_group("a100", 4, 1)]);
        let (p10, p30) = (job("p10", 10, None), job("p30", 30, None));
        let current = vec![
            with_gpus(alloc("one-a", &p10, 1, 1), "a100", &[0]),
            with_gpus(alloc("two", &p10, 1, 1), "a100", &[1, 2]),
            with_gpus(alloc("hi", &p30, 1, 1), "a100", &[3]),
        ];
        // Two instances: the priority-10 holder of two is enough on its own.
        assert_eq!(ids(&dev(&n, 2, &current, 100)), Some(vec!["two"]));
        // One instance: the priority-10 holder of exactly one.
        assert_eq!(ids(&dev(&n, 1, &current, 100)), Some(vec!["one-a"]));
        // Three: both priority-10 holders, never the priority-30 one.
        assert_eq!(ids(&dev(&n, 3, &current, 100)), Some(vec!["one-a", "two"]));
        // Four: everyone (the fifth instance is unhealthy and never counts).
        assert_eq!(ids(&dev(&n, 4, &current, 100)), Some(vec!["hi", "one-a", "two"]));
        assert!(dev(&n, 5, &current, 100).is_none());
        // Priority 35 may not evict priority 30: four instances are out of reach.
        assert!(dev(&n, 4, &current, 35).is_none());
        // A free instance needs no victim.
        let fewer = &current[1..];
        assert_eq!(ids(&dev(&n, 1, fewer, 100)), Some(vec![]));
    }

    #[test]
    fn device_group_with_smallest_distinct_priority_sum_wins() {
        // Group "big": one priority-20 holder of both instances. Group "small": two priority-10
        // holders. Σ distinct priorities: 20 vs 10, so two victims of "small" beat one of "big".
        let n = gpu_node(vec![gpu_group("big", 2, 0), gpu_group("small", 2, 0)]);
        let (p10, p20) = (job("p10", 10, None), job("p20", 20, None));
        let current = vec![
            with_gpus(alloc("b", &p20, 1, 1), "big", &[0, 1]),
            with_gpus(alloc("s1", &p10, 1, 1), "small", &[0]),
            with_gpus(alloc("s2", &p10, 1, 1), "small", &[1]),
        ];
        assert_eq!(ids(&dev(&n, 2, &current, 100)), Some(vec!["s1", "s2"]));
        // With the "small" group rejected by the request's constraints, "big" is the option.
        let got = preempt_for_device(&n, &gpus(2), |g| g.name == "big", &current, &[], 100, PLACING);
        assert_eq!(ids(&got), Some(vec!["b"]));
        // A request naming another model matches no group.
        let other = RequestedDevice {
            name: "nvidia/gpu/h100".into(),
            ..gpus(1)
        };
        assert!(preempt_for_device(&n, &other, |_| true, &current, &[], 100, PLACING).is_none());
    }

    #[test]
    fn device_own_job_and_claimed_instances_are_kept() {
        let n = gpu_node(vec![gpu_group("a100", 2, 0)]);
        let own = job("placing", 10, None);
        let low = job("low", 10, None);
        let current = vec![
            with_gpus(alloc("own", &own, 1, 1), "a100", &[0]),
            with_gpus(alloc("low", &low, 1, 1), "a100", &[1]),
        ];
        assert_eq!(ids(&dev(&n, 1, &current, 100)), Some(vec!["low"]));
        assert!(dev(&n, 2, &current, 100).is_none());
        // Instance 1 already granted to an earlier request of this placement: only "own" holds
        // the other one, and it never goes.
        let claimed = [AllocatedDeviceResource {
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: "a100".into(),
            device_ids: vec!["a100-1".into()],
        }];
        let without_low = &current[..1];
        assert!(preempt_for_device(&n, &gpus(1), |_| true, without_low, &claimed, 100, PLACING).is_none());
    }

    #[test]
    fn device_victims_make_room_for_the_allocator() {
        let n = gpu_node(vec![gpu_group("a100", 2, 0)]);
        let low = job("low", 10, None);
        let current = vec![with_gpus(alloc("l", &low, 1, 1), "a100", &[0, 1])];
        let refs: Vec<&Allocation> = current.iter().map(|a| a.as_ref()).collect();
        assert!(
            crate::fit::DeviceAllocator::new(&n, &refs)
                .assign(&gpus(2))
                .is_none()
        );
        let victims = dev(&n, 2, &current, 100).unwrap_or_default();
        let rest: Vec<&Allocation> = current
            .iter()
            .filter(|a| !victims.iter().any(|v| v.id == a.id))
            .map(|a| a.as_ref())
            .collect();
        assert!(
            crate::fit::DeviceAllocator::new(&n, &rest)
                .assign(&gpus(2))
                .is_some()
        );
    }
}
