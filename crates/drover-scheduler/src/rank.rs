//! Scoring: how good a feasible node is for one placement.
//!
//! Each scorer appends one normalised score in [-1, 1] to a node's list **only when it
//! applies**; the final score is the mean of what was appended, so an absent scorer does not
//! dilute the others (`reference/server-and-scheduler.md` §8.6–8.7).
//!
//! | scorer | applies when | value |
//! |---|---|---|
//! | `binpack` / `spread` | always | fitness / 18 (binpack: full node best; spread: empty node best) |
//! | `job-anti-affinity` | the node already runs c > 0 allocs of this job's group | −(c + 1) / count |
//! | `node-reschedule-penalty` | the node ran the failed alloc being replaced | −1 |
//! | `node-affinity` | the job, group or tasks have affinities | Σ matched weights / Σ abs(weights) |
//! | `allocation-spread` | the job or group has spreads | Σ per-spread boosts |
//! | `preemption` | the option evicts allocations | logistic of the victims' net priority |

use std::collections::BTreeMap;

use crate::fit::Comparable;

/// Maximum fitness of a node.
pub const MAX_FITNESS: f64 = 18.0;

/// 10^x via exp (cheaper than powf on the hot path; equal to within float rounding).
#[inline]
fn pow10(x: f64) -> f64 {
    (x * std::f64::consts::LN_10).exp()
}

fn free_fractions(capacity: &Comparable, used: &Comparable) -> (f64, f64) {
    let frac = |used: i64, cap: i64| {
        if cap <= 0 {
            0.0
        } else {
            1.0 - (used as f64 / cap as f64)
        }
    };
    (
        frac(used.cpu, capacity.cpu),
        frac(used.memory_mb, capacity.memory_mb),
    )
}

/// Bin-packing fitness in [0, 18]: `20 − (10^free_cpu + 10^free_mem)`. Fuller nodes score higher.
pub fn binpack_fitness(capacity: &Comparable, used: &Comparable) -> f64 {
    let (c, m) = free_fractions(capacity, used);
    (20.0 - (pow10(c) + pow10(m))).clamp(0.0, MAX_FITNESS)
}

/// Spread fitness in [0, 18]: `(10^free_cpu + 10^free_mem) − 2`. Emptier nodes score higher.
pub fn spread_fitness(capacity: &Comparable, used: &Comparable) -> f64 {
    let (c, m) = free_fractions(capacity, used);
    ((pow10(c) + pow10(m)) - 2.0).clamp(0.0, MAX_FITNESS)
}

/// Job anti-affinity: `collisions` allocations of the same job and group already on the node.
pub fn anti_affinity(collisions: usize, count: i64) -> Option<f64> {
    if collisions == 0 || count <= 0 {
        return None;
    }
    Some(-((collisions as f64 + 1.0) / count as f64))
}

/// Node affinity from (matched?, weight) pairs: Σ matched weights / Σ |weights|.
pub fn affinity_score(matches: &[(bool, i64)]) -> Option<f64> {
    let total: i64 = matches.iter().map(|(_, w)| w.abs()).sum();
    if total == 0 {
        return None;
    }
    let got: i64 = matches.iter().filter(|(m, _)| *m).map(|(_, w)| *w).sum();
    Some(got as f64 / total as f64)
}

/// Counts of a group's allocations per attribute value, for one spread.
#[derive(Debug, Clone, Default)]
pub struct SpreadCounts {
    /// value → allocations (existing + planned − stopped).
    pub counts: BTreeMap<String, i64>,
    /// (smallest, largest) of `counts` ((0, 0) when empty), once [`Self::seal`] ran: an even
    /// spread compares every candidate against them.
    extremes: Option<(i64, i64)>,
}

impl SpreadCounts {
    /// Records the extremes of the final counts, so that scoring candidates does not walk the
    /// counts each time. Counts changed afterwards make the record stale: seal again.
    pub fn seal(&mut self) {
        self.extremes = Some(self.compute_extremes());
    }

    fn compute_extremes(&self) -> (i64, i64) {
        let min = self.counts.values().copied().min().unwrap_or(0);
        let max = self.counts.values().copied().max().unwrap_or(0);
        (min, max)
    }
}

/// The boost of one spread for a node whose attribute value is `value` (None: attribute
/// missing). `targets` maps value → desired count (`*` = implicit remainder); empty = even.
pub fn spread_boost(
    value: Option<&str>,
    counts: &SpreadCounts,
    targets: &BTreeMap<String, f64>,
    weight_share: f64,
    lowest_boost: &mut f64,
) -> f64 {
    let Some(value) = value else { return -1.0 };
    if targets.is_empty() {
        return even_boost(value, counts);
    }
    let used = counts.counts.get(value).copied().unwrap_or(0) + 1;
    let desired = match targets.get(value).or_else(|| targets.get("*")) {
        Some(d) => *d,
        None => return -1.0,
    };
    if desired <= 0.0 {
        return *lowest_boost;
    }
    let b = (desired - used as f64) / desired * weight_share;
    if b < *lowest_boost {
        *lowest_boost = b;
    }
    b
}

fn even_boost(value: &str, counts: &SpreadCounts) -> f64 {
    let (lowest, highest) = counts.extremes.unwrap_or_else(|| counts.compute_extremes());
    // Every count zero (or none yet).
    if lowest == 0 && highest == 0 {
        return 0.0;
    }
    let current = counts.counts.get(value).copied().unwrap_or(0);
    let min = lowest.min(current);
    let max = highest.max(current);
    if current != min {
        return if min == 0 {
            -1.0
        } else {
            (min - current) as f64 / min as f64
        };
    }
    if min == max {
        return -1.0;
    }
    if current == 0 {
        return 1.0;
    }
    (max - min) as f64 / min as f64
}

/// Mean of the appended scores (0 when none).
pub fn final_score(scores: &[(&'static str, f64)]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().map(|(_, s)| s).sum::<f64>() / scores.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap() -> Comparable {
        Comparable {
            cpu: 1000,
            memory_mb: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn binpack_prefers_full_nodes_and_spread_empty_ones() {
        let empty = Comparable::default();
        let half = Comparable {
            cpu: 500,
            memory_mb: 500,
            ..Default::default()
        };
        let full = cap();
        assert_eq!(binpack_fitness(&cap(), &empty), 0.0);
        assert_eq!(binpack_fitness(&cap(), &full), 18.0);
        assert!(binpack_fitness(&cap(), &half) > 0.0 && binpack_fitness(&cap(), &half) < 18.0);
        assert_eq!(spread_fitness(&cap(), &empty), 18.0);
        assert_eq!(spread_fitness(&cap(), &full), 0.0);
        // 20 - 2 * 10^0.5
        assert!((binpack_fitness(&cap(), &half) - (20.0 - 2.0 * 10f64.sqrt())).abs() < 1e-9);
    }

    #[test]
    fn anti_affinity_and_affinity() {
        assert_eq!(anti_affinity(0, 10), None);
        assert_eq!(anti_affinity(1, 10), Some(-0.2));
        assert_eq!(affinity_score(&[(true, 50), (false, 50)]), Some(0.5));
        assert_eq!(affinity_score(&[(true, -100)]), Some(-1.0));
        assert_eq!(affinity_score(&[]), None);
        assert_eq!(final_score(&[("a", 1.0), ("b", 0.0)]), 0.5);
    }

    #[test]
    fn spread_targets_and_even() {
        let mut counts = SpreadCounts::default();
        counts.counts.insert("r1".into(), 3);
        counts.counts.insert("r2".into(), 0);
        let mut targets = BTreeMap::new();
        targets.insert("r1".to_string(), 5.0);
        targets.insert("r2".to_string(), 5.0);
        let mut low = -1.0;
        let b1 = spread_boost(Some("r1"), &counts, &targets, 1.0, &mut low);
        let b2 = spread_boost(Some("r2"), &counts, &targets, 1.0, &mut low);
        assert!(b2 > b1, "under-filled target wins: {b1} vs {b2}");
        assert_eq!(spread_boost(None, &counts, &targets, 1.0, &mut low), -1.0);
        // Even spread: the value with fewer allocations gets the boost.
        let e_r2 = spread_boost(Some("r2"), &counts, &BTreeMap::new(), 1.0, &mut low);
        let e_r1 = spread_boost(Some("r1"), &counts, &BTreeMap::new(), 1.0, &mut low);
        assert!(e_r2 > e_r1);
    }
}
