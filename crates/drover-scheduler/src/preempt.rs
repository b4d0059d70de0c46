//! Preemption: which lower-priority allocations to evict from a node so that a higher-priority
//! placement fits (`reference/server-and-scheduler.md` §10).
//!
//! ```text
//!   remaining = capacity − Σ usage(current, non-client-terminal, not already preempted)
//!
//!   eligible victims: other jobs, not terminal, job priority ≤ placing priority − 10
//!        │ grouped by priority, lowest first
//!        ▼
//!   greedy: repeatedly take v minimising distance(need, v) + max_parallel penalty,
//!           need −= v, remaining += v, until remaining ⊇ ask          (none left → None)
//!        ▼
//!   prune:  sort chosen by distance(ask, v) descending; keep the shortest prefix
//!           with remaining + prefix ⊇ ask
//! ```
//!
//! # Vocabulary
//!
//! * **Distance** — how unlike the still-needed resources a victim is:
//!   `sqrt(Σ ((need_d − v_d) / need_d)²)` over memory, CPU and disk, counting only dimensions
//!   still needed (`need_d > 0`). 0 means a perfect match.
//! * **max_parallel penalty** — evicting many allocations of one group at once hurts it like a
//!   bad migration would: when the victim's group has `migrate.max_parallel = m > 0` and `k ≥ m`
//!   of its allocations are already being preempted (earlier in this plan, or earlier in this
//!   selection), `50 × (k + 1 − m)` is added to its distance.
//! * **Net priority** — `max_p + Σp / max_p` over the victims' job priorities; the preemption
//!   score is logistic in it, so evicting few, low-priority allocations scores best.
//!
//! # Guarantees
//!
//! * Never picks an allocation of the placing job, nor one whose job priority is within
//!   [`PRIORITY_DELTA`] of the placing priority (a missing job counts as priority 50).
//! * Deterministic regardless of the input order: ties are broken by allocation ID.
//! * The remaining capacity is computed with [`crate::fit`]'s `node_capacity` and
//!   `alloc_usage`, so a set that this module deems sufficient passes the shared fit check for
//!   CPU, cores, memory and disk.
//!
//! # Limitations (simplifications of Nomad)
//!
//! * Remaining capacity subtracts *every* live allocation, including the placing job's own
//!   (Nomad leaves those out, over-estimating room); the result is more often right, never
//!   more optimistic.
//! * Network preemption only frees static ports and dynamic-range capacity; no bandwidth, no
//!   per-address accounting, no max_parallel penalty.
//! * Device preemption is not implemented here.

use std::cmp::Ordering;
use std::sync::Arc;

use drover_types::Allocation;
use drover_types::Node;
use drover_types::job::NetworkResource;

use crate::fit::{
    Comparable, alloc_usage, dynamic_range, for_each_alloc_port, node_capacity, node_reserved_ranges,
};

/// Minimum priority difference between the placing job and a victim.
pub const PRIORITY_DELTA: i64 = 10;

/// Penalty per victim beyond its group's `migrate.max_parallel`.
pub const MAX_PARALLEL_PENALTY: f64 = 50.0;

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

/// Ports of the live allocations in `holders`, as (port, ignore_collision), skipping invalid values.
fn held_ports<'a>(holders: impl Iterator<Item = &'a Arc<Allocation>>) -> Vec<(u16, bool)> {
    let mut out = Vec::new();
    for a in holders {
        for_each_alloc_port(a, |v, ignore| {
            if let Ok(p) = u16::try_from(v) {
                out.push((p, ignore));
            }
        });
    }
    out
}

/// Frees static ports / dynamic capacity held by lower-priority allocs for a network ask
/// (simplified §10 network rule).
///
/// 1. Every static port of the ask (not `ignore_collision`) must not be reserved by the node,
///    and every live allocation strictly holding it must be preemptible (other job, not
///    terminal, priority ≤ placing − 10) — else None. Those holders are evicted.
/// 2. If the dynamic range then still has fewer free ports than the ask's dynamic ports,
///    preemptible holders of ports in the range are added, lowest priority first (then most
///    ports freed, then ID), until enough are free — else None.
///
/// `Some(vec![])` when nothing needs evicting.
pub fn preempt_for_network(
    node: &Node,
    ask: &NetworkResource,
    current: &[Arc<Allocation>],
    placing_priority: i64,
    placing_job: (&str, &str),
) -> Option<Vec<Arc<Allocation>>> {
    let reserved = node_reserved_ranges(node);
    let in_reserved = |p: u16| reserved.iter().any(|&(lo, hi)| lo <= p && p <= hi);
    let live: Vec<&Arc<Allocation>> = current.iter().filter(|a| !a.client_terminal()).collect();
    let mut victims: Vec<&Arc<Allocation>> = Vec::new();
    let is_victim = |victims: &[&Arc<Allocation>], a: &Allocation| victims.iter().any(|v| v.id == a.id);

    // 1. Static ports.
    let mut ask_static: Vec<u16> = Vec::new();
    for port in &ask.reserved_ports {
        let p = u16::try_from(port.value).ok().filter(|&p| p >= 1)?;
        ask_static.push(p);
        if port.ignore_collision {
            continue;
        }
        if in_reserved(p) {
            return None;
        }
        for a in &live {
            let mut holds = false;
            for_each_alloc_port(a, |v, ignore| holds |= v == i64::from(p) && !ignore);
            if !holds || is_victim(&victims, a) {
                continue;
            }
            if !preemptible(a, placing_priority, placing_job) {
                return None;
            }
            victims.push(a);
        }
    }

    // 2. Dynamic capacity.
    let needed = ask.dynamic_ports.len();
    if needed > 0 {
        let (lo, hi) = dynamic_range(node);
        let free_count = |victims: &[&Arc<Allocation>]| -> usize {
            if lo > hi {
                return 0;
            }
            let mut used: Vec<u16> = held_ports(live.iter().copied().filter(|a| !is_victim(victims, a)))
                .into_iter()
                .map(|(p, _)| p)
                .chain(ask_static.iter().copied())
                .filter(|&p| lo <= p && p <= hi && !in_reserved(p))
                .collect();
            used.sort_unstable();
            used.dedup();
            let reserved_in_range: usize = reserved
                .iter()
                .map(|&(a, b)| {
                    let (a, b) = (a.max(lo), b.min(hi));
                    if a <= b { usize::from(b - a) + 1 } else { 0 }
                })
                .sum();
            (usize::from(hi - lo) + 1).saturating_sub(reserved_in_range + used.len())
        };
        if free_count(&victims) < needed {
            let mut extra: Vec<(&Arc<Allocation>, usize)> = live
                .iter()
                .copied()
                .filter(|a| !is_victim(&victims, a) && preemptible(a, placing_priority, placing_job))
                .map(|a| {
                    let n = held_ports(std::iter::once(a))
                        .iter()
                        .filter(|&&(p, _)| lo <= p && p <= hi)
                        .count();
                    (a, n)
                })
                .filter(|&(_, n)| n > 0)
                .collect();
            extra.sort_by(|(a, na), (b, nb)| {
                priority(a)
                    .cmp(&priority(b))
                    .then_with(|| nb.cmp(na))
                    .then_with(|| a.id.cmp(&b.id))
            });
            let mut enough = false;
            for (a, _) in extra {
                victims.push(a);
                if free_count(&victims) >= needed {
                    enough = true;
                    break;
                }
            }
            if !enough {
                return None;
            }
        }
    }
    Some(victims.into_iter().map(Arc::clone).collect())
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
    use std::collections::BTreeMap;

    use drover_types::alloc::{
        AllocatedCpuResources, AllocatedMemoryResources, AllocatedPortMapping, AllocatedResources,
        AllocatedSharedResources, AllocatedTaskResources, client_status,
    };
    use drover_types::job::{MigrateStrategy, Port};
    use drover_types::node::{
        NodeCpuResources, NodeDiskResources, NodeMemoryResources, NodeReservedNetwork, NodeReservedResources,
        NodeResources,
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

    #[test]
    fn network_static_port_holders() {
        let n = port_node(0, 0, "22");
        let (low, high) = (job("low", 10, None), job("high", 95, None));
        let current = vec![
            with_ports(alloc("l", &low, 1, 1), &[8080]),
            with_ports(alloc("h", &high, 1, 1), &[9090]),
        ];
        assert_eq!(
            ids(&preempt_for_network(
                &n,
                &static_ask(8080),
                &current,
                100,
                PLACING
            )),
            Some(vec!["l"])
        );
        assert!(preempt_for_network(&n, &static_ask(9090), &current, 100, PLACING).is_none());
        assert!(preempt_for_network(&n, &static_ask(22), &current, 100, PLACING).is_none());
        assert_eq!(
            ids(&preempt_for_network(
                &n,
                &static_ask(7070),
                &current,
                100,
                PLACING
            )),
            Some(vec![])
        );
    }

    #[test]
    fn network_dynamic_capacity() {
        let n = port_node(30000, 30003, "30003");
        let (low, mid) = (job("low", 10, None), job("mid", 20, None));
        let current = vec![
            with_ports(alloc("m", &mid, 1, 1), &[30000]),
            with_ports(alloc("l", &low, 1, 1), &[30001, 30002]),
        ];
        let dyn_ask = |k: usize| NetworkResource {
            dynamic_ports: (0..k)
                .map(|i| Port {
                    label: format!("d{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            ids(&preempt_for_network(&n, &dyn_ask(1), &current, 100, PLACING)),
            Some(vec!["l"])
        );
        assert_eq!(
            ids(&preempt_for_network(&n, &dyn_ask(3), &current, 100, PLACING)),
            Some(vec!["l", "m"])
        );
        assert!(preempt_for_network(&n, &dyn_ask(4), &current, 100, PLACING).is_none());
        assert!(preempt_for_network(&n, &dyn_ask(1), &current, 19, PLACING).is_none());
    }
}
