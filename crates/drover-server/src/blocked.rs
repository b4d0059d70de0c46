//! The blocked-evaluations tracker: evaluations that could not place everything wait here until
//! capacity that might help them appears.
//!
//! ```text
//!  block(eval, token) ──▶ duplicate of the job's blocked eval? → the older one is canceled
//!                     ──▶ missed an unblock while the scheduler ran? → straight back to the broker
//!                     ──▶ escaped (constraints not class-trackable) │ captured (by class eligibility)
//!  unblock(class, index)   → every escaped eval + captured evals whose class is not known-infeasible
//!  unblock_node(node, idx) → system evals blocked on that node
//!  unblock_failed()        → evals blocked by max-plan-attempts (leader timer, 1 min)
//!  untrack(job)            → a later eval placed everything
//! ```
//!
//! Vocabulary: *class eligibility* is the scheduler's verdict per computed node class
//! (`true` feasible, `false` infeasible); classes it never saw are unknown and do get woken.
//! *Escaped*: the job had constraints the class cannot capture (`${unique.*}`, distinct hosts),
//! so any capacity change may help. The *unblock index* of a class is the Raft index of the last
//! change that freed capacity there; an evaluation whose snapshot is older than that missed it.
//!
//! Pure bookkeeping: the caller hands released evaluations to the broker (with the token of a
//! delivery still in flight, see [`crate::broker`]) and writes duplicates as canceled.
//! Limitations: quota and non-node-resource keys (enterprise, CSI) are not tracked; unblock
//! indexes are pruned by age by the caller's timer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use drover_types::Evaluation;

type Key = (String, String, String);

/// What became of an evaluation handed to [`BlockedEvals::block`].
#[derive(Debug, Clone, PartialEq)]
pub enum BlockOutcome {
    /// Tracked until capacity appears.
    Tracked,
    /// Tracked; an older blocked evaluation of the job was superseded (cancel it).
    Superseded(Arc<Evaluation>),
    /// Not tracked: a newer blocked evaluation of the job exists (cancel this one).
    Duplicate,
    /// Capacity changed after its snapshot: enqueue it now (with the token).
    MissedUnblock,
    /// The tracker is disabled (not the leader).
    Disabled,
}

#[derive(Debug, Clone)]
struct Entry {
    eval: Arc<Evaluation>,
    token: String,
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockedStats {
    /// Captured by class.
    pub total_blocked: usize,
    /// Escaped.
    pub total_escaped: usize,
    /// Of which system evaluations (per node).
    pub total_system: usize,
}

/// The tracker.
#[derive(Debug, Default)]
pub struct BlockedEvals {
    enabled: bool,
    captured: HashMap<String, Entry>,
    escaped: HashMap<String, Entry>,
    by_node: HashMap<String, HashSet<String>>,
    jobs: HashMap<Key, String>,
    unblock_indexes: HashMap<String, u64>,
}

fn key(e: &Evaluation) -> Key {
    (e.namespace.clone(), e.job_id.clone(), e.node_id.clone())
}

fn freshness(e: &Evaluation) -> u64 {
    e.create_index.max(e.snapshot_index)
}

impl BlockedEvals {
    /// A disabled tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Enables (leader) or disables and flushes.
    pub fn set_enabled(&mut self, enabled: bool) {
        *self = BlockedEvals {
            enabled,
            ..Default::default()
        };
    }

    /// Whether it tracks.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.captured.remove(id).or_else(|| self.escaped.remove(id))?;
        let k = key(&e.eval);
        if self.jobs.get(&k).is_some_and(|x| x == id) {
            self.jobs.remove(&k);
        }
        if !e.eval.node_id.is_empty()
            && let Some(set) = self.by_node.get_mut(&e.eval.node_id)
        {
            set.remove(id);
            if set.is_empty() {
                self.by_node.remove(&e.eval.node_id);
            }
        }
        Some(e)
    }

    fn missed_unblock(&self, e: &Evaluation) -> bool {
        let mut max = 0;
        for (class, idx) in &self.unblock_indexes {
            max = max.max(*idx);
            let elig = e.class_eligibility.get(class).copied();
            if elig != Some(false) && e.snapshot_index < *idx {
                return true;
            }
        }
        e.escaped_computed_class && e.snapshot_index < max
    }

    /// Tracks a blocked evaluation.
    pub fn block(&mut self, eval: Arc<Evaluation>, token: &str) -> BlockOutcome {
        if !self.enabled {
            return BlockOutcome::Disabled;
        }
        let k = key(&eval);
        let mut outcome = BlockOutcome::Tracked;
        if let Some(old_id) = self.jobs.get(&k).cloned()
            && old_id != eval.id
        {
            let old_fresh = self
                .captured
                .get(&old_id)
                .or_else(|| self.escaped.get(&old_id))
                .map(|x| freshness(&x.eval))
                .unwrap_or(0);
            if old_fresh > freshness(&eval) {
                return BlockOutcome::Duplicate;
            }
            if let Some(old) = self.remove(&old_id) {
                outcome = BlockOutcome::Superseded(old.eval);
            }
        }
        // A reblock of the same evaluation replaces its entry.
        self.remove(&eval.id);
        if self.missed_unblock(&eval) {
            return BlockOutcome::MissedUnblock;
        }
        self.jobs.insert(k, eval.id.clone());
        if !eval.node_id.is_empty() {
            self.by_node
                .entry(eval.node_id.clone())
                .or_default()
                .insert(eval.id.clone());
        }
        let entry = Entry {
            eval: eval.clone(),
            token: token.to_string(),
        };
        if eval.escaped_computed_class {
            self.escaped.insert(eval.id.clone(), entry);
        } else {
            self.captured.insert(eval.id.clone(), entry);
        }
        outcome
    }

    /// Capacity appeared on nodes of `class` at Raft `index`: release what it may help.
    pub fn unblock(&mut self, class: &str, index: u64) -> Vec<(Arc<Evaluation>, String)> {
        if !self.enabled {
            return Vec::new();
        }
        let slot = self.unblock_indexes.entry(class.to_string()).or_insert(0);
        *slot = (*slot).max(index);
        let mut ids: Vec<String> = self.escaped.keys().cloned().collect();
        ids.extend(
            self.captured
                .iter()
                .filter(|(_, e)| e.eval.class_eligibility.get(class) != Some(&false))
                .map(|(id, _)| id.clone()),
        );
        self.release(ids)
    }

    /// A node became usable: release system evaluations blocked on it.
    pub fn unblock_node(&mut self, node_id: &str) -> Vec<(Arc<Evaluation>, String)> {
        if !self.enabled {
            return Vec::new();
        }
        let ids: Vec<String> = self
            .by_node
            .get(node_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        self.release(ids)
    }

    /// Releases evaluations blocked by `max-plan-attempts` (placement conflicts).
    pub fn unblock_failed(&mut self) -> Vec<(Arc<Evaluation>, String)> {
        let ids: Vec<String> = self
            .captured
            .iter()
            .chain(self.escaped.iter())
            .filter(|(_, e)| e.eval.triggered_by == "max-plan-attempts")
            .map(|(id, _)| id.clone())
            .collect();
        self.release(ids)
    }

    fn release(&mut self, mut ids: Vec<String>) -> Vec<(Arc<Evaluation>, String)> {
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| self.remove(&id))
            .map(|e| (e.eval, e.token))
            .collect()
    }

    /// A later evaluation of the job placed everything: forget its blocked evaluations.
    pub fn untrack(&mut self, namespace: &str, job_id: &str) {
        let ids: Vec<String> = self
            .jobs
            .iter()
            .filter(|((ns, j, _), _)| ns == namespace && j == job_id)
            .map(|(_, id)| id.clone())
            .collect();
        for id in ids {
            self.remove(&id);
        }
    }

    /// Forgets one evaluation (canceled by the store).
    pub fn untrack_eval(&mut self, id: &str) {
        self.remove(id);
    }

    /// The blocked evaluation tracked for a job, if any.
    pub fn job_blocked(&self, namespace: &str, job_id: &str) -> Option<String> {
        self.jobs
            .iter()
            .find(|((ns, j, _), _)| ns == namespace && j == job_id)
            .map(|(_, id)| id.clone())
    }

    /// Drops unblock indexes below `index` (the caller's prune timer).
    pub fn prune_unblock_indexes(&mut self, below: u64) {
        self.unblock_indexes.retain(|_, idx| *idx >= below);
    }

    /// Counters.
    pub fn stats(&self) -> BlockedStats {
        BlockedStats {
            total_blocked: self.captured.len(),
            total_escaped: self.escaped.len(),
            total_system: self.by_node.values().map(|s| s.len()).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(id: &str, job: &str, snapshot: u64, elig: &[(&str, bool)]) -> Arc<Evaluation> {
        Arc::new(Evaluation {
            id: id.into(),
            namespace: "default".into(),
            job_id: job.into(),
            status: "blocked".into(),
            eval_type: "service".into(),
            create_index: snapshot,
            snapshot_index: snapshot,
            class_eligibility: elig.iter().map(|(c, b)| (c.to_string(), *b)).collect(),
            ..Default::default()
        })
    }

    fn tracker() -> BlockedEvals {
        let mut b = BlockedEvals::new();
        b.set_enabled(true);
        b
    }

    #[test]
    fn unblock_skips_known_infeasible_classes_and_wakes_unknown_ones() {
        let mut b = tracker();
        assert_eq!(
            b.block(blocked("a", "j1", 10, &[("c1", false)]), ""),
            BlockOutcome::Tracked
        );
        assert_eq!(
            b.block(blocked("b", "j2", 10, &[("c1", true)]), ""),
            BlockOutcome::Tracked
        );
        assert_eq!(b.block(blocked("c", "j3", 10, &[]), ""), BlockOutcome::Tracked);
        let ids: Vec<String> = b
            .unblock("c1", 20)
            .into_iter()
            .map(|(e, _)| e.id.clone())
            .collect();
        assert_eq!(ids, vec!["b", "c"]);
        assert_eq!(b.stats().total_blocked, 1);
    }

    #[test]
    fn newer_blocked_eval_of_a_job_supersedes_the_older() {
        let mut b = tracker();
        b.block(blocked("old", "j", 10, &[]), "");
        match b.block(blocked("new", "j", 12, &[]), "") {
            BlockOutcome::Superseded(e) => assert_eq!(e.id, "old"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            b.block(blocked("older", "j", 5, &[]), ""),
            BlockOutcome::Duplicate
        );
        assert_eq!(b.job_blocked("default", "j").as_deref(), Some("new"));
    }

    #[test]
    fn missed_unblock_goes_straight_back() {
        let mut b = tracker();
        assert!(b.unblock("c1", 30).is_empty());
        // Planned at index 25, before capacity appeared at 30 on a class it had not ruled out.
        assert_eq!(
            b.block(blocked("a", "j", 25, &[("c1", true)]), "tok"),
            BlockOutcome::MissedUnblock
        );
        // Ruled out c1: nothing missed.
        assert_eq!(
            b.block(blocked("b", "j2", 25, &[("c1", false)]), ""),
            BlockOutcome::Tracked
        );
        // Planned after the change: nothing missed.
        assert_eq!(
            b.block(blocked("c", "j3", 31, &[("c1", true)]), ""),
            BlockOutcome::Tracked
        );
    }

    #[test]
    fn escaped_system_and_failed_and_untrack() {
        let mut b = tracker();
        let mut esc = (*blocked("e", "j1", 10, &[("c1", false)])).clone();
        esc.escaped_computed_class = true;
        b.block(Arc::new(esc), "");
        let mut sys = (*blocked("s", "j2", 10, &[("c1", false)])).clone();
        sys.node_id = "n1".into();
        b.block(Arc::new(sys), "");
        let mut failed = (*blocked("f", "j3", 10, &[("c1", false)])).clone();
        failed.triggered_by = "max-plan-attempts".into();
        b.block(Arc::new(failed), "");
        b.block(blocked("u", "j4", 10, &[("c1", false)]), "");
        // An escaped eval wakes on any class, even one it ruled out.
        let ids: Vec<String> = b
            .unblock("c1", 20)
            .into_iter()
            .map(|(e, _)| e.id.clone())
            .collect();
        assert_eq!(ids, vec!["e"]);
        assert_eq!(b.unblock_node("n1").len(), 1);
        assert_eq!(b.unblock_failed().len(), 1);
        b.untrack("default", "j4");
        assert_eq!(b.stats(), BlockedStats::default());
    }
}
