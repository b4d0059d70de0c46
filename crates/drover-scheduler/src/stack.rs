//! The node-selection stack: which node gets the next allocation of a group, and why.
//!
//! ```text
//!  candidate nodes (ready, in the job's datacenters and pool, from the state's candidate
//!    │  index; the order a seeded permutation drawn lazily as the scan reaches each slot)
//!    │  scanned from where the previous placement stopped (cheap load spreading)
//!    ▼
//!  feasibility ── job constraints ─┐ cached per computed node class, unless a constraint
//!    │            drivers, group + ├ names a unique.* property ("escapes" the class)
//!    │            task constraints,│
//!    │            devices, network ┘
//!    │            host volumes, distinct_hosts, distinct_property   (never cached)
//!    ▼
//!  ranking ── ports, devices, cores assigned; the shared fit check (crate::fit::allocs_fit);
//!    │        preemption when enabled and nothing fits; scores appended (crate::rank)
//!    ▼
//!  limit (2 for batch, max(2, ⌈log₂ N⌉) for service, max(count, 100) with spreads/affinities;
//!    │    up to 3 options scoring ≤ 0 are set aside) ──▶ max final score wins
//!    ▼
//!  RankedNode + AllocMetric (every node evaluated, filtered by what, exhausted on which
//!  dimension, the top 5 scores with each scorer's share)
//! ```
//!
//! Guarantees: the same inputs and seed give the same choice; a placement never exceeds a
//! node's capacity in any dimension as judged by the same fit check the plan applier runs;
//! per placement the work is proportional to the nodes examined (≈ the limit when most nodes
//! are feasible), not to the cluster size.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use drover_types::alloc::{
    AllocMetric, AllocatedCpuResources, AllocatedMemoryResources, AllocatedResources,
    AllocatedSharedResources, AllocatedTaskResources, NodeScoreMeta,
};
use drover_types::job::{Affinity, Constraint, Job, TaskGroup};
use drover_types::{Allocation, Node, Plan, SchedulerConfiguration};

use crate::feasible::{self, ConstraintChecker};
use crate::fit::{self, DeviceAllocator, NetworkIndex};
use crate::rank::{self, SpreadCounts};
use crate::rng::Rng;
use crate::state::{Candidate, CandidateIndex, NodeKey, State};
use crate::util::FastMap;

/// How many options scoring ≤ 0 the limit iterator sets aside before accepting them.
const MAX_SKIP: usize = 3;
/// Node limit when spreads or affinities are present (Nomad's `node_limit_for_feasibility_checks`).
const AFFINITY_SPREAD_LIMIT: usize = 100;
/// Top scores kept in the metrics.
const TOP_K: usize = 5;

/// Per-placement inputs.
#[derive(Debug, Default, Clone)]
pub struct SelectOptions {
    /// Nodes that ran the allocation being replaced (a -1 score each).
    pub penalty_nodes: HashSet<String>,
    /// Nodes to try first (sticky/migrating ephemeral disk).
    pub preferred_nodes: Vec<Arc<Node>>,
    /// The job version being placed when it is not the evaluation's job (a replacement placed
    /// with the version it replaces while canaries await promotion): its job-level constraints
    /// apply, checked node by node.
    pub job: Option<Arc<Job>>,
    /// The name the allocation will get, when its group has volumes (`per_alloc` host volumes
    /// are chosen by its index, and single-writer claims are checked by name). Empty otherwise.
    pub alloc_name: String,
    /// Allow evicting lower-priority allocations.
    pub preempt: bool,
}

/// A chosen node with the resources granted on it.
#[derive(Debug, Clone)]
pub struct RankedNode {
    /// The node.
    pub node: Arc<Node>,
    /// Each scorer that applied, with its normalised score.
    pub scores: Vec<(&'static str, f64)>,
    /// Mean of `scores`.
    pub final_score: f64,
    /// The grant.
    pub resources: AllocatedResources,
    /// Allocations to evict.
    pub preempted: Vec<Arc<Allocation>>,
    /// What the new allocation uses.
    pub usage: fit::Comparable,
}

/// Selection state for one evaluation.
#[derive(Debug)]
pub struct Stack {
    job: Arc<Job>,
    batch: bool,
    spread_algorithm: bool,
    oversubscription: bool,
    /// The candidate index this evaluation reads.
    index: Arc<CandidateIndex>,
    /// The job's candidates in scan order, materialised as the scans reach them.
    list: SlotList,

    offset: usize,
    /// This pass's placements on nodes outside the candidate list's own records (preferred
    /// nodes, system placements), by node address. Placements on a scanned candidate are kept
    /// in its [`Slot`], where the scan reads them without a lookup.
    placed: FastMap<usize, Placed>,
    /// The node the last scan of the candidate list chose and its slot, so that
    /// [`Self::record_placement`] finds the slot without searching.
    last_pick: Option<(usize, usize)>,
    base_limit: usize,
    checker: ConstraintChecker,
    /// Class ID → job constraints met ([`UNKNOWN`], [`NO`], [`YES`]).
    job_eligibility: Vec<u8>,
    /// Group ID → class ID → group checks met.
    group_eligibility: Vec<Vec<u8>>,
    /// Why a class was found infeasible, by (level: [`JOB_LEVEL`] or the group ID, class ID),
    /// so nodes skipped by the cache are reported with the constraint that ruled them out.
    ineligible_reasons: FastMap<(u32, u32), String>,
    /// IDs for classes that are not in the candidate index (candidates built for preferred
    /// nodes or for the system scheduler's one-node ranking), numbered after the index's.
    extra_classes: FastMap<Arc<str>, u32>,
    /// Group facts by the group's address: each version of a job (a downgraded placement next
    /// to an unpromoted canary) is its own group here, with its own constraints and caches.
    groups: FastMap<usize, Arc<GroupInfo>>,
    /// Group name → the number placement counts use (anti-affinity is by name, any version).
    group_names: FastMap<String, u32>,
    job_escapes: bool,
    pub(crate) rng: Rng,
    /// target → node ID → the node's value of the target (spreads, distinct_property).
    attr_cache: HashMap<String, FastMap<String, Option<String>>>,
    /// Class → eligible, for blocked evaluations (`ClassEligibility`).
    pub class_eligibility: BTreeMap<String, bool>,
    /// Some constraint escaped class caching.
    pub escaped: bool,
}

impl Stack {
    /// A stack for `job`, seeded for this evaluation.
    pub fn new(job: Arc<Job>, config: &SchedulerConfiguration, batch: bool, rng: Rng) -> Self {
        let job_escapes = feasible::escapes_class(&job.constraints);
        Stack {
            job,
            batch,
            spread_algorithm: config.scheduler_algorithm == "spread",
            oversubscription: config.memory_oversubscription_enabled,
            index: Arc::new(CandidateIndex::default()),
            list: SlotList::default(),
            offset: 0,
            base_limit: 2,
            checker: ConstraintChecker::new(),
            job_eligibility: Vec::new(),
            group_eligibility: Vec::new(),
            ineligible_reasons: FastMap::default(),
            extra_classes: FastMap::default(),
            groups: FastMap::default(),
            group_names: FastMap::default(),
            placed: FastMap::default(),
            last_pick: None,
            job_escapes,
            rng,
            attr_cache: HashMap::new(),
            class_eligibility: BTreeMap::new(),
            escaped: job_escapes,
        }
    }

    /// Sets the candidates — the nodes at `positions` in `index` — and the base limit. With
    /// `shuffle` the scan order is a permutation drawn from the evaluation's seed, one step per
    /// candidate as the scans reach it, so an evaluation that looks at a few nodes of a large
    /// cluster does not pay for ordering all of them.
    pub fn set_nodes(&mut self, index: Arc<CandidateIndex>, positions: Vec<u32>, shuffle: bool) {
        let n = positions.len().max(1);
        self.base_limit = if self.batch {
            2
        } else {
            (usize::BITS - (n - 1).leading_zeros()).max(2) as usize
        };
        let order_rng = shuffle.then(|| Rng::new(self.rng.next_u64()));
        self.list = SlotList::new(positions, order_rng);
        self.list.fast = true;
        self.index = index;
        self.offset = 0;
        self.last_pick = None;
    }

    /// Sets the candidate index without a candidate list: [`Self::select_on`] then ranks the
    /// index's record of a node instead of building one (the system schedulers).
    pub fn set_index(&mut self, index: Arc<CandidateIndex>) {
        self.index = index;
        self.list = SlotList::default();
        self.last_pick = None;
    }

    /// Tells the stack that `ranked` became a placement of `tg` in the plan, so later
    /// placements in this pass count it without looking the plan up.
    pub fn record_placement(&mut self, ranked: &RankedNode, tg: &TaskGroup) {
        let group = self.group_info(tg).name_id;
        let node = Arc::as_ptr(&ranked.node) as usize;
        let p = match self.last_pick.take() {
            Some((picked, idx))
                if picked == node
                    && self.list.slots.get(idx).is_some_and(|s| {
                        self.index
                            .candidates
                            .get(s.at as usize)
                            .is_some_and(|c| Arc::as_ptr(&c.node) as usize == node)
                    }) =>
            {
                self.list.slots[idx].placed.get_or_insert_with(Box::default)
            }
            _ => self.placed.entry(node).or_default(),
        };
        p.usage.add(&ranked.usage);
        p.count += 1;
        p.job += 1;
        match p.groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, n)) => *n += 1,
            None => p.groups.push((group, 1)),
        }
    }

    /// The candidate count.
    pub fn node_count(&self) -> usize {
        self.list.len()
    }

    /// The class ID of a candidate: its index's ID when it comes from an index (only this
    /// stack's index feeds its candidate list), else looked up by name (and numbered after the
    /// index's classes when new).
    fn class_of(&mut self, c: &Candidate) -> u32 {
        if c.class_id != Candidate::NO_CLASS_ID {
            return c.class_id;
        }
        if let Some(id) = self.index.class_id(&c.class) {
            return id;
        }
        let next = self.index.classes.len() + self.extra_classes.len();
        *self
            .extra_classes
            .entry(c.class.clone())
            .or_insert_with(|| u32::try_from(next).unwrap_or(Candidate::NO_CLASS_ID - 1))
    }

    /// Makes sure `list` has slots up to position `upto` (scans move forward one position at a
    /// time, so this adds one slot per call in steady state).
    fn materialize(&mut self, list: &mut SlotList, upto: usize, cands: &[Candidate]) {
        let first = list.slots.len();
        let end = (upto + 1).min(list.order.len());
        for k in first..end {
            if let Some(rng) = list.shuffle.as_mut() {
                let left = (list.order.len() - k) as u64;
                let j = k + rng.below(left) as usize;
                list.order.swap(k, j);
            }
            let at = list.order[k];
            let c = &cands[at as usize];
            let class = self.class_of(c);
            list.slots.push(Slot {
                at,
                class,
                id: c.id.clone(),
                capacity: c.capacity,
                max_allocs: c.max_allocs,
                usage: None,
                feasible_for: 0,
                placed: None,
                spread: None,
            });
        }
    }

    /// Facts about a group computed once per evaluation.
    fn group_info(&mut self, tg: &TaskGroup) -> Arc<GroupInfo> {
        let key = tg as *const TaskGroup as usize;
        if let Some(g) = self.groups.get(&key) {
            return g.clone();
        }
        let constraints: Vec<Constraint> = tg
            .constraints
            .iter()
            .chain(tg.tasks.iter().flat_map(|t| t.constraints.iter()))
            .filter(|c| !is_distinct(c))
            .cloned()
            .collect();
        let escapes = feasible::escapes_class(&constraints);
        let resources = tg.tasks.iter().filter_map(|t| t.resources.as_ref());
        let mut needs_full =
            tg.networks.iter().any(|n| !n.reserved_ports.is_empty()) || !tg.volumes.is_empty();
        for r in resources {
            needs_full |= r.cores > 0 || !r.devices.is_empty() || !r.networks.is_empty();
        }
        needs_full |= self
            .job
            .constraints
            .iter()
            .chain(tg.constraints.iter())
            .any(|c| c.operand == "distinct_property");
        let info = Arc::new(GroupInfo {
            id: u32::try_from(self.groups.len()).unwrap_or(u32::MAX),
            name_id: match self.group_names.get(tg.name.as_str()) {
                Some(&n) => n,
                None => {
                    let n = u32::try_from(self.group_names.len()).unwrap_or(u32::MAX);
                    self.group_names.insert(tg.name.clone(), n);
                    n
                }
            },
            constraints,
            escapes,
            needs_full,
            ask: fit::group_ask(tg, self.oversubscription),
            has_volumes: !tg.volumes.is_empty(),
        });
        self.groups.insert(key, info.clone());
        info
    }

    /// Live allocations of a node in the state snapshot, with their usage (cached per eval;
    /// the plan's changes are applied on top per placement).
    /// (An empty node — most candidates of a large cluster — costs no allocation.)
    fn compute_usage(state: &dyn State, node_id: &str) -> Box<[LiveAlloc]> {
        state
            .allocs_by_node(node_id)
            .into_iter()
            .filter(|a| !a.client_terminal())
            .map(|a| LiveAlloc {
                usage: fit::alloc_usage(&a),
                alloc: a,
            })
            .collect()
    }

    fn limit_for(&self, tg: &TaskGroup) -> usize {
        let has_aff = !self.job.affinities.is_empty()
            || !tg.affinities.is_empty()
            || tg.tasks.iter().any(|t| !t.affinities.is_empty())
            || !self.job.spreads.is_empty()
            || !tg.spreads.is_empty();
        if has_aff {
            (tg.count.max(0) as usize).max(AFFINITY_SPREAD_LIMIT)
        } else {
            self.base_limit
        }
    }

    /// Picks a node for one allocation of `tg`.
    pub fn select(
        &mut self,
        state: &dyn State,
        plan: &Plan,
        tg: &TaskGroup,
        opts: &SelectOptions,
    ) -> (Option<RankedNode>, AllocMetric) {
        let mut metrics = AllocMetric::default();
        let spreads = self.spread_context(state, plan, tg);
        if !opts.preferred_nodes.is_empty() {
            let cands: Vec<Candidate> = opts.preferred_nodes.iter().cloned().map(Candidate::new).collect();
            let mut preferred = SlotList::new(
                (0..cands.len()).filter_map(|i| u32::try_from(i).ok()).collect(),
                None,
            );
            let found = self.scan(
                state,
                plan,
                tg,
                opts,
                &cands,
                &mut preferred,
                usize::MAX,
                &spreads,
                &mut metrics,
            );
            // The pick's slot index is into `preferred`, not the candidate list.
            self.last_pick = None;
            if found.is_some() {
                return (found, metrics);
            }
        }
        let limit = self.limit_for(tg);
        let index = self.index.clone();
        let mut list = std::mem::take(&mut self.list);
        let start = self.offset;
        let mut examined = 0;
        let found = self.scan_counting(
            state,
            plan,
            tg,
            opts,
            &index.candidates,
            &mut list,
            start,
            limit,
            &spreads,
            &mut metrics,
            &mut examined,
        );
        if list.len() > 0 {
            self.offset = (start + examined) % list.len();
        }
        self.list = list;
        (found, metrics)
    }

    /// Ranks exactly one node (system scheduler): feasibility + fit + score, no limit.
    pub fn select_on(
        &mut self,
        state: &dyn State,
        plan: &Plan,
        tg: &TaskGroup,
        node: Arc<Node>,
        opts: &SelectOptions,
    ) -> (Option<RankedNode>, AllocMetric) {
        let mut metrics = AllocMetric::default();
        let spreads = self.spread_context(state, plan, tg);
        // The index's record when it has this node (the system scheduler ranks every ready
        // node of the snapshot), else one built here.
        let index = self.index.clone();
        let built;
        let cands: &[Candidate] = match index.candidate_for(&node) {
            Some(c) => std::slice::from_ref(c),
            None => {
                built = [Candidate::new(node)];
                &built
            }
        };
        let mut one = SlotList::new(vec![0], None);
        let found = self.scan(state, plan, tg, opts, cands, &mut one, 1, &spreads, &mut metrics);
        self.last_pick = None;
        (found, metrics)
    }

    #[allow(clippy::too_many_arguments)]
    fn scan(
        &mut self,
        state: &dyn State,
        plan: &Plan,
        tg: &TaskGroup,
        opts: &SelectOptions,
        cands: &[Candidate],
        nodes: &mut SlotList,
        limit: usize,
        spreads: &[SpreadCtx],
        metrics: &mut AllocMetric,
    ) -> Option<RankedNode> {
        let mut examined = 0;
        self.scan_counting(
            state,
            plan,
            tg,
            opts,
            cands,
            nodes,
            0,
            limit,
            spreads,
            metrics,
            &mut examined,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_counting(
        &mut self,
        state: &dyn State,
        plan: &Plan,
        tg: &TaskGroup,
        opts: &SelectOptions,
        cands: &[Candidate],
        nodes: &mut SlotList,
        start: usize,
        limit: usize,
        spreads: &[SpreadCtx],
        metrics: &mut AllocMetric,
        examined: &mut usize,
    ) -> Option<RankedNode> {
        let n = nodes.len();
        let info = self.group_info(tg);
        // The fast path is for the candidate list only: its slots hold this pass's placements.
        // The one-node lists (preferred nodes, system placements) rank their node for real,
        // which reads the plan itself.
        if !info.needs_full && !opts.preempt && nodes.fast {
            // Keep the counters as they were so that a fallback to the full path below does
            // not count the same nodes twice.
            let before = metrics.clone();
            match self.scan_fast(
                state, plan, tg, &info, opts, cands, nodes, start, limit, spreads, metrics, examined,
            ) {
                FastOutcome::Done(found) => return found,
                FastOutcome::Fallback => {
                    *metrics = before;
                    *examined = 0;
                    return self.scan_counting(
                        state, plan, tg, opts, cands, nodes, start, limit, spreads, metrics, examined,
                    );
                }
            }
        }
        let mut options = Options::new(limit);
        let mut i = 0;
        while i < n && !options.full() {
            let k = (start + i) % n;
            i += 1;
            metrics.nodes_evaluated += 1;
            self.materialize(nodes, k, cands);
            let slot = &nodes.slots[k];
            let cand = &cands[slot.at as usize];
            if !self.feasible(cand, slot.class, tg, &info, opts, metrics) {
                continue;
            }
            let Some(ranked) = self.rank(state, plan, tg, cand, opts, spreads, metrics) else {
                continue;
            };
            options.offer(ranked.final_score, ranked);
        }
        *examined = i;
        let options = options.finish();
        record_scores(metrics, options.len(), |i| {
            let o = &options[i];
            (o.node.id.as_str(), o.scores.as_slice(), o.final_score)
        });
        let best = best_index(&options, |o| o.final_score)?;
        options.into_iter().nth(best)
    }

    /// [`Self::scan_counting`] for groups without static ports, devices or cores: candidates
    /// are scored from their usage alone ([`Self::fast_rank`]); only the chosen node gets its
    /// ports assigned and the authoritative fit check.
    #[allow(clippy::too_many_arguments)]
    fn scan_fast(
        &mut self,
        state: &dyn State,
        plan: &Plan,
        tg: &TaskGroup,
        info: &Arc<GroupInfo>,
        opts: &SelectOptions,
        cands: &[Candidate],
        nodes: &mut SlotList,
        start: usize,
        limit: usize,
        spreads: &[SpreadCtx],
        metrics: &mut AllocMetric,
        examined: &mut usize,
    ) -> FastOutcome {
        let n = nodes.len();
        let mut options = Options::new(limit);
        let mut i = 0;
        while i < n && !options.full() {
            let idx = (start + i) % n;
            i += 1;
            metrics.nodes_evaluated += 1;
            self.materialize(nodes, idx, cands);
            let slot = &mut nodes.slots[idx];
            // A reference only: the candidate's record is read when a check needs the node.
            let cand = &cands[slot.at as usize];
            let tg_key = tg as *const TaskGroup as usize;
            if slot.feasible_for != tg_key {
                if !self.feasible(cand, slot.class, tg, info, opts, metrics) {
                    continue;
                }
                if !info.escapes && !info.has_volumes && !self.job_escapes {
                    slot.feasible_for = tg_key;
                }
            }
            let Some((scores, final_score)) =
                self.fast_rank(state, plan, tg, info, cand, slot, opts, spreads, metrics)
            else {
                continue;
            };
            let o = FastOption {
                idx,
                scores,
                final_score,
            };
            options.offer(final_score, o);
        }
        *examined = i;
        let options = options.finish();
        record_scores(metrics, options.len(), |i| {
            let o = &options[i];
            (nodes.slots[o.idx].id.as_str(), o.scores.as_slice(), o.final_score)
        });
        // Assign the chosen node's ports and run the authoritative fit check there. Dynamic
        // ports almost never run out, but if they do, rank this group the slow way.
        let Some(best) = best_index(&options, |o| o.final_score) else {
            return FastOutcome::Done(None);
        };
        let cand = &cands[nodes.slots[options[best].idx].at as usize];
        match self.rank(state, plan, tg, cand, opts, spreads, metrics) {
            Some(full) => {
                self.last_pick = Some((Arc::as_ptr(&cand.node) as usize, options[best].idx));
                FastOutcome::Done(Some(full))
            }
            None => {
                let slow = GroupInfo {
                    needs_full: true,
                    ..(**info).clone()
                };
                self.groups
                    .insert(tg as *const TaskGroup as usize, Arc::new(slow));
                FastOutcome::Fallback
            }
        }
    }

    /// The common case without static ports, devices or cores: check the node's usage (cached
    /// snapshot usage + this plan's changes + the ask) against its capacity and score it,
    /// without building the allocation. Scores equal the full path's.
    #[allow(clippy::too_many_arguments)]
    fn fast_rank(
        &mut self,
        state: &dyn State,
        plan: &Plan,
        tg: &TaskGroup,
        info: &GroupInfo,
        cand: &Candidate,
        slot: &mut Slot,
        opts: &SelectOptions,
        spreads: &[SpreadCtx],
        metrics: &mut AllocMetric,
    ) -> Option<(ScoreList, f64)> {
        if slot.usage.is_none() {
            slot.usage = Some(Self::compute_usage(state, slot.id.as_str()));
        }
        // The node's values of the group's spread attributes, read from the node once per
        // evaluation (a spread scans up to max(count, 100) candidates per placement).
        let tg_key = tg as *const TaskGroup as usize;
        if !spreads.is_empty() && slot.spread.as_ref().is_none_or(|s| s.group != tg_key) {
            slot.spread = Some(Box::new(SlotSpread {
                group: tg_key,
                values: spreads
                    .iter()
                    .map(|s| feasible::resolve_target(&s.attribute, &cand.node).map(String::into_boxed_str))
                    .collect(),
            }));
        }
        let slot = &*slot;
        // `cand` (the node) is read only on the paths that need more than the slot holds.
        let node = &cand.node;
        let job: &Job = &self.job;
        let usage: &[LiveAlloc] = slot.usage.as_deref().unwrap_or_default();
        // Stops and evictions in the plan (looked up only when the plan has any).
        let stops = if plan.node_update.is_empty() {
            None
        } else {
            plan.node_update.get(slot.id.as_str())
        };
        let preempted = if plan.node_preemptions.is_empty() {
            None
        } else {
            plan.node_preemptions.get(slot.id.as_str())
        };
        let gone = |id: &str| {
            stops.is_some_and(|v| v.iter().any(|a| a.id == id))
                || preempted.is_some_and(|v| v.iter().any(|a| a.id == id))
        };
        let mut used = info.ask;
        let mut count = 1;
        let mut collisions = 0;
        let mut same_job = false;
        for l in usage {
            if gone(&l.alloc.id) {
                continue;
            }
            used.add(&l.usage);
            count += 1;
            if l.alloc.job_id == job.id && l.alloc.namespace == job.namespace {
                same_job = true;
                if l.alloc.task_group == tg.name {
                    collisions += 1;
                }
            }
        }
        // This pass's own placements on the node (in-place updates keep their resources): in
        // the slot, and in the side map for nodes placed on outside the candidate list.
        let elsewhere = if self.placed.is_empty() {
            None
        } else {
            self.placed.get(&(Arc::as_ptr(node) as usize))
        };
        for p in slot.placed.as_deref().into_iter().chain(elsewhere) {
            used.add(&p.usage);
            count += p.count;
            if p.job > 0 {
                same_job = true;
            }
            collisions += p
                .groups
                .iter()
                .find(|(g, _)| *g == info.name_id)
                .map_or(0, |(_, n)| *n);
        }
        let job_level = job.constraints.iter().map(|c| (c, false));
        for (c, group_level) in job_level.chain(tg.constraints.iter().map(|c| (c, true))) {
            if c.operand == "distinct_hosts" && (c.r_target.is_empty() || c.r_target == "true") {
                let clash = if group_level { collisions > 0 } else { same_job };
                if clash {
                    Self::filter(&node.node_class, c.to_string(), metrics);
                    return None;
                }
            }
        }
        let exhausted = |dim: &str, metrics: &mut AllocMetric| {
            metrics.nodes_exhausted += 1;
            if !node.node_class.is_empty() {
                *metrics
                    .class_exhausted
                    .entry(node.node_class.clone())
                    .or_default() += 1;
            }
            *metrics.dimension_exhausted.entry(dim.to_string()).or_default() += 1;
        };
        if slot.max_allocs > 0 && count > slot.max_allocs {
            exhausted("max allocs", metrics);
            return None;
        }
        if let Some(dim) = slot.capacity.superset(&used) {
            exhausted(dim, metrics);
            return None;
        }
        let scores = score_node(
            &mut self.checker,
            job,
            self.spread_algorithm,
            tg,
            cand,
            opts,
            spreads,
            &slot.capacity,
            &used,
            collisions,
            &[],
            slot.spread
                .as_deref()
                .filter(|_| !spreads.is_empty())
                .map(|s| &*s.values),
        );
        let final_score = rank::final_score(scores.as_slice());
        Some((scores, final_score))
    }

    /// A node filtered by a cached class decision: reported with the reason its class was
    /// ruled out (Nomad says only "computed class ineligible").
    fn class_filtered(&self, level: u32, class: u32, node: &Node, metrics: &mut AllocMetric) {
        let reason = self
            .ineligible_reasons
            .get(&(level, class))
            .cloned()
            .unwrap_or_else(|| "computed class ineligible".into());
        Self::filter(&node.node_class, reason, metrics);
    }

    /// Records a filtered node: by constraint text, and by the node's class (`node_class`, the
    /// operator's name for it) when it has one, as Nomad's `ClassFiltered` does.
    fn filter(node_class: &str, reason: String, metrics: &mut AllocMetric) {
        metrics.nodes_filtered += 1;
        if !node_class.is_empty() {
            *metrics.class_filtered.entry(node_class.to_string()).or_default() += 1;
        }
        *metrics.constraint_filtered.entry(reason).or_default() += 1;
    }

    /// Feasibility with class caching (see the module docs). `class` is the candidate's class
    /// ID ([`Self::class_of`]); the node itself is read only when the cache cannot answer.
    fn feasible(
        &mut self,
        cand: &Candidate,
        class: u32,
        tg: &TaskGroup,
        info: &GroupInfo,
        opts: &SelectOptions,
        metrics: &mut AllocMetric,
    ) -> bool {
        let ci = class as usize;
        // Job-level constraints: another version's, node by node; the evaluation's, cached.
        if let Some(other) = opts.job.as_ref().filter(|j| !Arc::ptr_eq(j, &self.job)) {
            for c in other.constraints.iter().filter(|c| !is_distinct(c)) {
                if !self.checker.check(&cand.node, c) {
                    Self::filter(&cand.node.node_class, c.to_string(), metrics);
                    return false;
                }
            }
            return self.group_feasible(cand, class, tg, info, &opts.alloc_name, metrics);
        }
        let cached = if self.job_escapes {
            UNKNOWN
        } else {
            self.job_eligibility.get(ci).copied().unwrap_or(UNKNOWN)
        };
        match cached {
            NO => {
                self.class_filtered(JOB_LEVEL, class, &cand.node, metrics);
                return false;
            }
            YES => {}
            _ => {
                let node = &cand.node;
                let job = self.job.clone();
                for c in job.constraints.iter().filter(|c| !is_distinct(c)) {
                    if !self.checker.check(node, c) {
                        if !self.job_escapes {
                            set_flag(&mut self.job_eligibility, ci, NO);
                            self.class_eligibility.insert(cand.class.to_string(), false);
                            self.ineligible_reasons.insert((JOB_LEVEL, class), c.to_string());
                        }
                        Self::filter(&node.node_class, c.to_string(), metrics);
                        return false;
                    }
                }
                if !self.job_escapes {
                    set_flag(&mut self.job_eligibility, ci, YES);
                }
            }
        }
        self.group_feasible(cand, class, tg, info, &opts.alloc_name, metrics)
    }

    /// The group-level half of [`Self::feasible`].
    fn group_feasible(
        &mut self,
        cand: &Candidate,
        class: u32,
        tg: &TaskGroup,
        info: &GroupInfo,
        alloc_name: &str,
        metrics: &mut AllocMetric,
    ) -> bool {
        let ci = class as usize;
        // Group-level checks.
        if info.escapes {
            self.escaped = true;
        }
        let gi = info.id as usize;
        let cached = if info.escapes {
            UNKNOWN
        } else {
            self.group_eligibility
                .get(gi)
                .and_then(|m| m.get(ci))
                .copied()
                .unwrap_or(UNKNOWN)
        };
        match cached {
            NO => {
                self.class_filtered(info.id, class, &cand.node, metrics);
                return false;
            }
            YES => {}
            _ => {
                let node = &cand.node;
                let constraints: Vec<&Constraint> = info.constraints.iter().collect();
                let reason = self.group_check(node, tg, &constraints);
                let ok = reason.is_none();
                if !info.escapes {
                    if self.group_eligibility.len() <= gi {
                        self.group_eligibility.resize(gi + 1, Vec::new());
                    }
                    set_flag(&mut self.group_eligibility[gi], ci, if ok { YES } else { NO });
                    let e = self.class_eligibility.entry(cand.class.to_string()).or_insert(ok);
                    *e = *e || ok;
                }
                if let Some(reason) = reason {
                    if !info.escapes {
                        self.ineligible_reasons.insert((info.id, class), reason.clone());
                    }
                    Self::filter(&node.node_class, reason, metrics);
                    return false;
                }
            }
        }
        // Availability (never cached).
        if info.has_volumes && !feasible::host_volumes_ok(&cand.node, tg, alloc_name) {
            Self::filter(
                &cand.node.node_class,
                "missing compatible host volumes".into(),
                metrics,
            );
            return false;
        }
        true
    }

    fn group_check(&mut self, node: &Node, tg: &TaskGroup, constraints: &[&Constraint]) -> Option<String> {
        if let Err(driver) = feasible::drivers_ok(node, tg) {
            return Some(format!("missing driver \"{driver}\""));
        }
        for c in constraints {
            if !self.checker.check(node, c) {
                return Some(c.to_string());
            }
        }
        if !feasible::devices_ok(node, tg, &mut self.checker) {
            return Some("missing devices".into());
        }
        if !feasible::network_mode_ok(node, tg) {
            let mode = tg.networks.first().map(|n| n.mode.as_str()).unwrap_or("host");
            return Some(format!("missing network mode \"{mode}\""));
        }
        None
    }

    /// Counts the group's (or job's) live allocations per value of `target`, state + plan.
    /// Node values are cached per target for the evaluation (a spread recounts for every
    /// placement, so the plan's allocations are looked at many times).
    fn property_counts(
        &mut self,
        state: &dyn State,
        plan: &Plan,
        target: &str,
        group: Option<&str>,
    ) -> SpreadCounts {
        let mut counts = SpreadCounts::default();
        let job = self.job.clone();
        let existing = state.allocs_by_job(&job.namespace, &job.id);
        let (stopped, placed): (HashSet<&str>, HashSet<&str>) = if existing.is_empty() {
            Default::default()
        } else {
            (
                plan.node_update
                    .values()
                    .chain(plan.node_preemptions.values())
                    .flatten()
                    .map(|a| a.id.as_str())
                    .collect(),
                plan.node_allocation
                    .values()
                    .flatten()
                    .map(|a| a.id.as_str())
                    .collect(),
            )
        };
        if !self.attr_cache.contains_key(target) {
            self.attr_cache.insert(target.to_string(), FastMap::default());
        }
        let Some(cache) = self.attr_cache.get_mut(target) else {
            return counts;
        };
        let mut count = |node_id: &str| {
            let value = match cache.get(node_id) {
                Some(v) => v.as_deref(),
                None => {
                    let v = state
                        .node(node_id)
                        .and_then(|n| feasible::resolve_target(target, &n));
                    cache.entry(node_id.to_string()).or_insert(v).as_deref()
                }
            };
            if let Some(v) = value {
                match counts.counts.get_mut(v) {
                    Some(c) => *c += 1,
                    None => {
                        counts.counts.insert(v.to_string(), 1);
                    }
                }
            }
        };
        for a in &existing {
            if a.terminal() || stopped.contains(a.id.as_str()) || placed.contains(a.id.as_str()) {
                continue;
            }
            if group.is_some_and(|g| g != a.task_group) {
                continue;
            }
            count(&a.node_id);
        }
        for a in plan.node_allocation.values().flatten() {
            if a.terminal() || a.job_id != job.id || group.is_some_and(|g| g != a.task_group) {
                continue;
            }
            count(&a.node_id);
        }
        counts.seal();
        counts
    }

    fn spread_context(&mut self, state: &dyn State, plan: &Plan, tg: &TaskGroup) -> Vec<SpreadCtx> {
        let job = self.job.clone();
        let spreads: Vec<_> = job.spreads.iter().chain(tg.spreads.iter()).cloned().collect();
        if spreads.is_empty() {
            return Vec::new();
        }
        let total_weight: i64 = spreads.iter().map(|s| s.weight.max(0)).sum::<i64>().max(1);
        spreads
            .into_iter()
            .map(|s| {
                let counts = self.property_counts(state, plan, &s.attribute, Some(&tg.name));
                let mut targets = BTreeMap::new();
                let mut sum = 0.0;
                for t in &s.spread_target {
                    let d = t.percent as f64 / 100.0 * tg.count as f64;
                    sum += t.percent as f64;
                    targets.insert(t.value.clone(), d);
                }
                if !targets.is_empty() && sum < 100.0 {
                    targets.insert("*".into(), (100.0 - sum) / 100.0 * tg.count as f64);
                }
                SpreadCtx {
                    attribute: s.attribute.clone(),
                    share: s.weight as f64 / total_weight as f64,
                    counts,
                    targets,
                }
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn rank(
        &mut self,
        state: &dyn State,
        plan: &Plan,
        tg: &TaskGroup,
        cand: &Candidate,
        opts: &SelectOptions,
        spreads: &[SpreadCtx],
        metrics: &mut AllocMetric,
    ) -> Option<RankedNode> {
        let node = &cand.node;
        let node_id = cand.id.as_str();
        let job = self.job.clone();
        let existing = state.allocs_by_node(node_id);
        let stops: Vec<&str> = plan
            .node_update
            .get(node_id)
            .into_iter()
            .flatten()
            .chain(plan.node_preemptions.get(node_id).into_iter().flatten())
            .map(|a| a.id.as_str())
            .collect();
        let planned = plan.node_allocation.get(node_id);
        let mut proposed: Vec<&Allocation> = existing
            .iter()
            .map(|a| a.as_ref())
            .filter(|a| {
                !a.client_terminal()
                    && !stops.contains(&a.id.as_str())
                    && !planned.is_some_and(|p| p.iter().any(|x| x.id == a.id))
            })
            .collect();
        if let Some(p) = planned {
            // A terminal entry in the plan is the "no placement" marker of a failed
            // reschedule, not something running on the node.
            proposed.extend(p.iter().filter(|a| !a.client_terminal()));
        }

        // distinct_hosts / distinct_property, job and group level.
        for (c, group_level) in job
            .constraints
            .iter()
            .map(|c| (c, false))
            .chain(tg.constraints.iter().map(|c| (c, true)))
        {
            match c.operand.as_str() {
                "distinct_hosts" if c.r_target.is_empty() || c.r_target == "true" => {
                    let clash = proposed.iter().any(|a| {
                        a.job_id == job.id
                            && a.namespace == job.namespace
                            && (!group_level || a.task_group == tg.name)
                    });
                    if clash {
                        Self::filter(&node.node_class, c.to_string(), metrics);
                        return None;
                    }
                }
                "distinct_property" => {
                    let allowed: i64 = c.r_target.parse().unwrap_or(1).max(1);
                    let Some(value) = feasible::resolve_target(&c.l_target, node) else {
                        Self::filter(&node.node_class, c.to_string(), metrics);
                        return None;
                    };
                    let group = group_level.then_some(tg.name.as_str());
                    let counts = self.property_counts(state, plan, &c.l_target, group);
                    if counts.counts.get(&value).copied().unwrap_or(0) >= allowed {
                        Self::filter(&node.node_class, c.to_string(), metrics);
                        return None;
                    }
                }
                _ => {}
            }
        }

        let exhausted = |dim: String, metrics: &mut AllocMetric| {
            metrics.nodes_exhausted += 1;
            if !node.node_class.is_empty() {
                *metrics
                    .class_exhausted
                    .entry(node.node_class.clone())
                    .or_default() += 1;
            }
            *metrics.dimension_exhausted.entry(dim).or_default() += 1;
        };

        // Ports, devices and cores, then the shared fit check. With preemption, one victim set
        // grows per placement: when the node's ports or device instances cannot serve the
        // group, the network or device preemptor names victims and the assignment starts over
        // on the node without them (every round adds a victim, so this ends); CPU, memory and
        // disk come last, with those victims already gone (a victim evicted for its port also
        // frees its memory). Evictions already in the plan count for max_parallel.
        let placing = (job.namespace.as_str(), job.id.as_str());
        // Evictions already in the plan (any node) plus this placement's victims so far.
        let already = |victims: &[Arc<Allocation>]| -> Vec<Arc<Allocation>> {
            plan.node_preemptions
                .values()
                .flatten()
                .map(|a| Arc::new(a.clone()))
                .chain(victims.iter().cloned())
                .collect()
        };
        let device_groups = accepted_device_groups(node, tg, &mut self.checker);
        let mut victims: Vec<Arc<Allocation>> = Vec::new();
        let resources = loop {
            let filtered;
            let remaining: &[&Allocation] = if victims.is_empty() {
                &proposed
            } else {
                filtered = without_victims(&proposed, &victims);
                &filtered
            };
            let failure = match assign_resources(
                cand,
                tg,
                remaining,
                self.oversubscription,
                &device_groups,
                &mut self.rng,
            ) {
                Ok(resources) => break resources,
                Err(failure) => failure,
            };
            let more = if opts.preempt {
                let current: Vec<Arc<Allocation>> =
                    remaining.iter().map(|a| Arc::new((*a).clone())).collect();
                match &failure {
                    AssignFailure::Network(_) => {
                        let asks: Vec<&drover_types::job::NetworkResource> = tg
                            .networks
                            .first()
                            .into_iter()
                            .chain(
                                tg.tasks
                                    .iter()
                                    .filter_map(|t| t.resources.as_ref())
                                    .flat_map(|r| r.networks.iter()),
                            )
                            .collect();
                        crate::preempt::preempt_for_network(
                            node,
                            &asks,
                            &current,
                            job.priority,
                            placing,
                            &already(&victims),
                        )
                    }
                    AssignFailure::Device {
                        task,
                        request,
                        claimed,
                        ..
                    } => {
                        let accepted: &[DeviceKey] = device_groups
                            .get(*task)
                            .and_then(|t| t.get(*request))
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        tg.tasks
                            .get(*task)
                            .and_then(|t| t.resources.as_ref())
                            .and_then(|r| r.devices.get(*request))
                            .and_then(|req| {
                                crate::preempt::preempt_for_device(
                                    node,
                                    req,
                                    |g| accepted.iter().any(|k| device_key_is(k, g)),
                                    &current,
                                    claimed,
                                    job.priority,
                                    placing,
                                )
                            })
                    }
                    AssignFailure::Existing(_) | AssignFailure::Cores => None,
                }
            } else {
                None
            };
            let more: Vec<Arc<Allocation>> = more
                .unwrap_or_default()
                .into_iter()
                .filter(|m| !victims.iter().any(|v| v.id == m.id))
                .collect();
            if more.is_empty() {
                exhausted(failure.dimension(), metrics);
                return None;
            }
            victims.extend(more);
        };

        // The fit check reads the resources of the allocation being placed, and for groups
        // with volumes its job, group and name (single-writer volume claims).
        let mut candidate = Allocation {
            allocated_resources: Some(resources),
            ..Default::default()
        };
        if !tg.volumes.is_empty() {
            candidate.job = Some(job.clone());
            candidate.task_group.clone_from(&tg.name);
            candidate.name.clone_from(&opts.alloc_name);
        }
        let own_usage = fit::alloc_usage(&candidate);
        let mut with_candidate = without_victims(&proposed, &victims);
        with_candidate.push(&candidate);
        let used = match fit::allocs_fit(node, &with_candidate, false) {
            Ok(used) => used,
            Err(misfit) => {
                if !opts.preempt {
                    exhausted(misfit.dimension(), metrics);
                    return None;
                }
                // Everything on the node as this plan leaves it (snapshot allocs minus stops,
                // preemptions and this placement's victims, plus this pass's own placements,
                // which are never victims but take space).
                let current: Vec<Arc<Allocation>> = without_victims(&proposed, &victims)
                    .into_iter()
                    .map(|a| Arc::new(a.clone()))
                    .collect();
                let Some(more) = crate::preempt::preempt_for_resources(
                    node,
                    &own_usage,
                    &current,
                    job.priority,
                    placing,
                    &already(&victims),
                ) else {
                    exhausted(misfit.dimension(), metrics);
                    return None;
                };
                victims.extend(more);
                let mut remaining = without_victims(&proposed, &victims);
                remaining.push(&candidate);
                match fit::allocs_fit(node, &remaining, false) {
                    Ok(used) => used,
                    Err(m) => {
                        exhausted(m.dimension(), metrics);
                        return None;
                    }
                }
            }
        };
        let preempted = victims;
        // The fit check ran without the victims; the score sees the node before they leave
        // (reference §8.6: utilisation is computed before removal).
        let mut used = used;
        for v in &preempted {
            used.add(&fit::alloc_usage(v));
        }

        let resources = candidate.allocated_resources.take().unwrap_or_default();
        // Scores.
        let capacity = cand.capacity;
        let collisions = proposed
            .iter()
            .filter(|a| a.job_id == job.id && a.namespace == job.namespace && a.task_group == tg.name)
            .count();
        let scores = score_node(
            &mut self.checker,
            &job,
            self.spread_algorithm,
            tg,
            cand,
            opts,
            spreads,
            &capacity,
            &used,
            collisions,
            &preempted,
            None,
        );
        let final_score = rank::final_score(scores.as_slice());
        Some(RankedNode {
            node: node.clone(),
            scores: scores.as_slice().to_vec(),
            final_score,
            resources,
            preempted,
            usage: own_usage,
        })
    }
}

/// Facts about a task group, computed once per evaluation.
#[derive(Debug, Clone)]
struct GroupInfo {
    /// A small number for the group (this version of it), unique within the evaluation.
    id: u32,
    /// The same number for every version of a group name.
    name_id: u32,
    /// Group and task constraints other than distinct_* (those need the plan).
    constraints: Vec<Constraint>,
    /// A constraint names a unique.* property: no class caching.
    escapes: bool,
    /// Static ports, devices, cores, task networks, volumes or distinct_property: rank each
    /// candidate with the full resource assignment instead of the fast usage check.
    needs_full: bool,
    /// What one allocation of the group uses (the same formula as `fit::alloc_usage`).
    ask: fit::Comparable,
    has_volumes: bool,
}

/// (node ID, each scorer's share, final score) of one ranked option, for the metrics.
type ScoredRef<'a> = (&'a str, &'a [(&'static str, f64)], f64);

/// A candidate in scan order: what the scan reads of it, copied from its [`Candidate`] when
/// the scan first reaches it (consecutive slots are consecutive in memory; the candidates
/// themselves are in node order), and what the evaluation learned about it.
#[derive(Debug, Clone)]
struct Slot {
    /// Position of the candidate in the list being scanned.
    at: u32,
    /// Class ID ([`Stack::class_of`]).
    class: u32,
    id: NodeKey,
    capacity: fit::Comparable,
    max_allocs: i64,
    /// Its live allocations in the snapshot, once looked at.
    usage: Option<Box<[LiveAlloc]>>,
    /// The group (by address) this node was last found feasible for, when that answer cannot
    /// change within the evaluation (no unique.* constraints, no volumes).
    feasible_for: usize,
    /// This pass's placements on the node, when chosen from the candidate list.
    placed: Option<Box<Placed>>,
    /// The node's values of a group's spread attributes, once read (boxed: most groups have
    /// no spread, and slots stay small).
    spread: Option<Box<SlotSpread>>,
}

/// A node's values of one group's spread attributes.
#[derive(Debug, Clone)]
struct SlotSpread {
    /// The group (by address) the values were read for.
    group: usize,
    /// The value of each spread attribute (None: the node lacks it).
    values: Box<[Option<Box<str>>]>,
}

/// The candidates of one scan list in scan order. Slots are created as scans reach them
/// ([`Stack::materialize`]); with a shuffle, position `k`'s candidate is drawn when slot `k` is
/// created (one Fisher–Yates step), which gives the same distribution as shuffling up front.
#[derive(Debug, Default)]
struct SlotList {
    /// Candidate positions: the first `slots.len()` in scan order, the rest not drawn yet.
    order: Vec<u32>,
    slots: Vec<Slot>,
    /// Draws the order; `None` keeps `order` as given.
    shuffle: Option<Rng>,
    /// The evaluation's candidate list (its slots record placements); scanned with the fast
    /// path when the group allows.
    fast: bool,
}

impl SlotList {
    fn new(order: Vec<u32>, shuffle: Option<Rng>) -> Self {
        SlotList {
            // Reserved, not touched: growing by copying ~100-byte slots cost more.
            slots: Vec::with_capacity(order.len()),
            order,
            shuffle,
            fast: false,
        }
    }

    fn len(&self) -> usize {
        self.order.len()
    }
}

/// Eligibility cache values.
const UNKNOWN: u8 = 0;
const NO: u8 = 1;
const YES: u8 = 2;
/// The "level" of a job-level ineligibility reason (group levels use the group ID).
const JOB_LEVEL: u32 = u32::MAX;

fn set_flag(flags: &mut Vec<u8>, at: usize, value: u8) {
    if flags.len() <= at {
        flags.resize(at + 1, UNKNOWN);
    }
    flags[at] = value;
}

/// Up to six (scorer, score) pairs without a heap allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScoreList {
    items: [(&'static str, f64); 6],
    len: usize,
}

impl Default for ScoreList {
    fn default() -> Self {
        ScoreList {
            items: [("", 0.0); 6],
            len: 0,
        }
    }
}

impl ScoreList {
    fn push(&mut self, item: (&'static str, f64)) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = item;
            self.len += 1;
        }
    }
    fn as_slice(&self) -> &[(&'static str, f64)] {
        &self.items[..self.len.min(self.items.len())]
    }
}

/// The options a scan collects, Nomad's limit iterator: up to `limit` nodes, where nodes with a
/// score ≤ 0 are set aside (at most [`MAX_SKIP`]) and used only if too few better ones turn up.
/// With no limit (`usize::MAX`: preferred nodes, system jobs) nothing is set aside.
struct Options<T> {
    limit: usize,
    taken: Vec<T>,
    set_aside: Vec<T>,
}

impl<T> Options<T> {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            taken: Vec::with_capacity(limit.min(64)),
            set_aside: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.taken.len() >= self.limit
    }

    fn offer(&mut self, score: f64, option: T) {
        if score <= 0.0 && self.set_aside.len() < MAX_SKIP && self.limit != usize::MAX {
            self.set_aside.push(option);
        } else {
            self.taken.push(option);
        }
    }

    /// The options in the order they were taken, topped up from the set-aside ones.
    fn finish(self) -> Vec<T> {
        let mut taken = self.taken;
        let room = self.limit.saturating_sub(taken.len());
        taken.extend(self.set_aside.into_iter().take(room));
        taken
    }
}

/// The first option with the highest score.
fn best_index<T>(options: &[T], score: impl Fn(&T) -> f64) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, o) in options.iter().enumerate() {
        let s = score(o);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// What the fast path concluded: a choice (or none fits), or "this group needs the full path"
/// (the authoritative check rejected the fast pick, e.g. dynamic ports ran out).
#[allow(clippy::large_enum_variant)] // returned once per placement; boxing would allocate
enum FastOutcome {
    Done(Option<RankedNode>),
    Fallback,
}

/// A candidate scored by the fast path.
#[derive(Debug)]
struct FastOption {
    idx: usize,
    scores: ScoreList,
    final_score: f64,
}

/// What this pass placed on one node.
#[derive(Debug, Default, Clone)]
struct Placed {
    usage: fit::Comparable,
    count: i64,
    /// Placements of this job.
    job: i64,
    /// Placements per group of this job (by [`GroupInfo::name_id`]).
    groups: Vec<(u32, usize)>,
}

/// A live allocation in the snapshot and what it uses.
#[derive(Debug, Clone)]
struct LiveAlloc {
    alloc: Arc<Allocation>,
    usage: fit::Comparable,
}

/// One spread block prepared for a placement.
#[derive(Debug, Clone)]
pub struct SpreadCtx {
    attribute: String,
    share: f64,
    counts: SpreadCounts,
    targets: BTreeMap<String, f64>,
}

fn is_distinct(c: &Constraint) -> bool {
    matches!(c.operand.as_str(), "distinct_hosts" | "distinct_property")
}

/// The scorers (see `crate::rank`), shared by both ranking paths.
#[allow(clippy::too_many_arguments)]
fn score_node(
    checker: &mut ConstraintChecker,
    job: &Job,
    spread_algorithm: bool,
    tg: &TaskGroup,
    cand: &Candidate,
    opts: &SelectOptions,
    spreads: &[SpreadCtx],
    capacity: &fit::Comparable,
    used: &fit::Comparable,
    collisions: usize,
    preempted: &[Arc<Allocation>],
    spread_values: Option<&[Option<Box<str>>]>,
) -> ScoreList {
    let mut scores = ScoreList::default();
    if spread_algorithm {
        scores.push(("spread", rank::spread_fitness(capacity, used) / rank::MAX_FITNESS));
    } else {
        scores.push((
            "binpack",
            rank::binpack_fitness(capacity, used) / rank::MAX_FITNESS,
        ));
    }
    if let Some(s) = rank::anti_affinity(collisions, tg.count) {
        scores.push(("job-anti-affinity", s));
    }
    if !opts.penalty_nodes.is_empty() && opts.penalty_nodes.contains(cand.id.as_str()) {
        scores.push(("node-reschedule-penalty", -1.0));
    }
    let has_affinities = !job.affinities.is_empty()
        || !tg.affinities.is_empty()
        || tg.tasks.iter().any(|t| !t.affinities.is_empty());
    if has_affinities {
        let affinities: Vec<&Affinity> = job
            .affinities
            .iter()
            .chain(tg.affinities.iter())
            .chain(tg.tasks.iter().flat_map(|t| t.affinities.iter()))
            .collect();
        let matches: Vec<(bool, i64)> = affinities
            .iter()
            .map(|a| (checker.matches_affinity(&cand.node, a), a.weight))
            .collect();
        if let Some(s) = rank::affinity_score(&matches) {
            scores.push(("node-affinity", s));
        }
    }
    if !spreads.is_empty() {
        let mut total = 0.0;
        let mut lowest = -1.0;
        for (i, s) in spreads.iter().enumerate() {
            let resolved;
            let value = match spread_values.and_then(|v| v.get(i)) {
                Some(cached) => cached.as_deref(),
                None => {
                    resolved = feasible::resolve_target(&s.attribute, &cand.node);
                    resolved.as_deref()
                }
            };
            total += rank::spread_boost(value, &s.counts, &s.targets, s.share, &mut lowest);
        }
        if total != 0.0 {
            scores.push(("allocation-spread", total));
        }
    }
    if !preempted.is_empty() {
        scores.push(("preemption", crate::preempt::preemption_score(preempted)));
    }
    scores
}

/// Records the [`TOP_K`] best of `n` options (`option(i)`), best first, ties in scan order.
fn record_scores<'a>(metrics: &mut AllocMetric, n: usize, option: impl Fn(usize) -> ScoredRef<'a>) {
    // Insertion into a fixed array: a scan keeps a few dozen options at most.
    let mut top: [(usize, f64); TOP_K] = [(usize::MAX, f64::NEG_INFINITY); TOP_K];
    let mut kept = 0;
    for i in 0..n {
        let score = option(i).2;
        let mut at = kept.min(TOP_K);
        while at > 0 && top[at - 1].1 < score {
            at -= 1;
        }
        if at < TOP_K {
            top.copy_within(at..TOP_K - 1, at + 1);
            top[at] = (i, score);
            kept = (kept + 1).min(TOP_K);
        }
    }
    metrics.score_meta_data.reserve(kept);
    for &(i, _) in &top[..kept] {
        let (node_id, scores, final_score) = option(i);
        // Inserted one by one: collecting a handful of pairs into a map sorts them through a
        // temporary vector first, which cost more than the map.
        let mut by_scorer = BTreeMap::new();
        for (k, v) in scores.iter() {
            by_scorer.insert(Cow::Borrowed(*k), *v);
        }
        metrics.score_meta_data.push(NodeScoreMeta {
            node_id: node_id.to_string(),
            scores: by_scorer,
            norm_score: final_score,
        });
    }
}

/// (vendor, type, name) of a node device group.
type DeviceKey = (String, String, String);

fn device_key_is(k: &DeviceKey, g: &drover_types::node::NodeDeviceResource) -> bool {
    k.0 == g.vendor && k.1 == g.device_type && k.2 == g.name
}

/// For each task of `tg` (in order) and each of its device requests (in order): the node's
/// device groups that serve the request — name and device constraints, the feasibility rule
/// (`feasible::device_request_matches`) — so that instances are only handed out, and only
/// preempted for, in groups the request accepts.
fn accepted_device_groups(
    node: &Node,
    tg: &TaskGroup,
    checker: &mut ConstraintChecker,
) -> Vec<Vec<Vec<DeviceKey>>> {
    let no_devices = tg
        .tasks
        .iter()
        .all(|t| t.resources.as_ref().is_none_or(|r| r.devices.is_empty()));
    if no_devices {
        return Vec::new();
    }
    let groups = node
        .node_resources
        .as_ref()
        .map(|r| r.devices.as_slice())
        .unwrap_or_default();
    tg.tasks
        .iter()
        .map(|t| {
            t.resources
                .as_ref()
                .map(|r| r.devices.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|req| {
                    groups
                        .iter()
                        .filter(|g| feasible::device_request_matches(g, req, checker))
                        .map(|g| (g.vendor.clone(), g.device_type.clone(), g.name.clone()))
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// `allocs` without the ones in `victims` (by ID).
fn without_victims<'a>(allocs: &[&'a Allocation], victims: &[Arc<Allocation>]) -> Vec<&'a Allocation> {
    if victims.is_empty() {
        return allocs.to_vec();
    }
    allocs
        .iter()
        .copied()
        .filter(|a| !victims.iter().any(|v| v.id == a.id))
        .collect()
}

/// Why [`assign_resources`] could not grant a group its ports, devices or cores.
#[derive(Debug)]
enum AssignFailure {
    /// The node's allocations already collide among themselves (nothing to preempt for).
    Existing(String),
    /// A group or task network could not be granted.
    Network(String),
    /// No accepted device group has enough free instances for device request `request` of
    /// task `task` (indices into the group), named `name`.
    Device {
        task: usize,
        request: usize,
        name: String,
        /// Instances already granted to earlier requests of this placement.
        claimed: Vec<drover_types::alloc::AllocatedDeviceResource>,
    },
    /// Not enough free reserved cores.
    Cores,
}

impl AssignFailure {
    /// The `DimensionExhausted` key.
    fn dimension(&self) -> String {
        match self {
            AssignFailure::Existing(e) | AssignFailure::Network(e) => format!("network: {e}"),
            AssignFailure::Device { name, .. } => format!("devices: {name}"),
            AssignFailure::Cores => "cores".into(),
        }
    }
}

/// Grants one allocation of `tg` its ports (group network, legacy task networks), device
/// instances and reserved cores on `node`, next to `proposed` (the allocations that stay), and
/// its CPU and memory per task. Scalar capacity is not checked here (`fit::allocs_fit` does).
fn assign_resources(
    cand: &Candidate,
    tg: &TaskGroup,
    proposed: &[&Allocation],
    oversubscription: bool,
    device_groups: &[Vec<Vec<DeviceKey>>],
    rng: &mut Rng,
) -> Result<AllocatedResources, AssignFailure> {
    let node: &Node = &cand.node;
    let mut net_index = NetworkIndex::on(cand.ports.clone());
    net_index.add_allocs(proposed).map_err(AssignFailure::Existing)?;
    let mut shared = AllocatedSharedResources {
        disk_mb: tg.ephemeral_disk.as_ref().map(|d| d.size_mb).unwrap_or(0),
        ..Default::default()
    };
    if let Some(ask) = tg.networks.first() {
        let (offer, ports) = net_index
            .assign_group_network(ask, rng)
            .map_err(AssignFailure::Network)?;
        shared.networks = vec![offer];
        shared.ports = ports;
    }
    // Tasks: cpu, memory, legacy networks, devices, cores.
    let mut devices = DeviceAllocator::new(node, proposed);
    let mut claimed: Vec<drover_types::alloc::AllocatedDeviceResource> = Vec::new();
    let mut used_cores: HashSet<i64> = proposed
        .iter()
        .filter_map(|a| a.allocated_resources.as_ref())
        .flat_map(|r| {
            r.tasks
                .values()
                .flat_map(|t| t.cpu.reserved_cores.iter().copied())
        })
        .collect();
    let mut tasks = BTreeMap::new();
    let mut lifecycles = BTreeMap::new();
    for (ti, t) in tg.tasks.iter().enumerate() {
        let r = t.resources.clone().unwrap_or_default();
        let mut reserved_cores = Vec::new();
        if r.cores > 0 {
            let operator_reserved: Vec<i64> = node
                .reserved_resources
                .as_ref()
                .map(|r| r.cpu.reserved_cpu_cores.clone())
                .unwrap_or_default();
            let offered: Vec<i64> = match node.node_resources.as_ref() {
                Some(nr) if !nr.cpu.reservable_cpu_cores.is_empty() => nr.cpu.reservable_cpu_cores.clone(),
                Some(nr) => (0..nr.cpu.total_cpu_cores).collect(),
                None => Vec::new(),
            };
            let free: Vec<i64> = offered
                .into_iter()
                .filter(|c| !used_cores.contains(c) && !operator_reserved.contains(c))
                .collect();
            if (free.len() as i64) < r.cores {
                return Err(AssignFailure::Cores);
            }
            reserved_cores = free.into_iter().take(r.cores as usize).collect();
            used_cores.extend(reserved_cores.iter().copied());
        }
        let mut networks = Vec::new();
        for ask in &r.networks {
            networks.push(
                net_index
                    .assign_task_network(ask, rng)
                    .map_err(AssignFailure::Network)?,
            );
        }
        let mut granted_devices = Vec::new();
        for (ri, d) in r.devices.iter().enumerate() {
            let accepted: &[DeviceKey] = device_groups
                .get(ti)
                .and_then(|t| t.get(ri))
                .map(Vec::as_slice)
                .unwrap_or_default();
            match devices.assign_where(d, |g| accepted.iter().any(|k| device_key_is(k, g))) {
                Some(g) => {
                    claimed.push(g.clone());
                    granted_devices.push(g);
                }
                None => {
                    return Err(AssignFailure::Device {
                        task: ti,
                        request: ri,
                        name: d.name.clone(),
                        claimed,
                    });
                }
            }
        }
        let cpu_shares = if r.cores > 0 {
            let per_core = node
                .node_resources
                .as_ref()
                .map(|nr| nr.cpu.cpu_shares / nr.cpu.total_cpu_cores.max(1))
                .unwrap_or(0);
            per_core * r.cores
        } else {
            r.cpu
        };
        tasks.insert(
            t.name.clone(),
            AllocatedTaskResources {
                cpu: AllocatedCpuResources {
                    cpu_shares,
                    reserved_cores,
                },
                memory: AllocatedMemoryResources {
                    memory_mb: r.memory_mb + r.secrets_mb.unwrap_or(0),
                    memory_max_mb: if oversubscription { r.memory_max_mb } else { 0 },
                },
                networks,
                devices: granted_devices,
            },
        );
        lifecycles.insert(t.name.clone(), t.lifecycle.clone());
    }
    Ok(AllocatedResources {
        tasks,
        task_lifecycles: lifecycles,
        shared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::node::{NodeCpuResources, NodeMemoryResources, NodeResources, node_status};

    fn index(n: usize) -> Arc<CandidateIndex> {
        let nodes = (0..n).map(|i| {
            Arc::new(Node {
                id: format!("node-{i:04}"),
                datacenter: "dc1".into(),
                status: node_status::READY.into(),
                scheduling_eligibility: "eligible".into(),
                computed_class: if i % 2 == 0 { "v1:a".into() } else { "v1:b".into() },
                node_resources: Some(NodeResources {
                    cpu: NodeCpuResources {
                        cpu_shares: 1000,
                        ..Default::default()
                    },
                    memory: NodeMemoryResources { memory_mb: 1024 },
                    ..Default::default()
                }),
                ..Default::default()
            })
        });
        Arc::new(CandidateIndex::build(nodes))
    }

    fn scan_order(seed: u64, n: usize, upto: usize) -> Vec<u32> {
        let mut stack = Stack::new(
            Arc::new(Job::default()),
            &SchedulerConfiguration::default(),
            false,
            Rng::new(seed),
        );
        let index = index(n);
        stack.set_nodes(index.clone(), (0..n as u32).collect(), true);
        let mut list = std::mem::take(&mut stack.list);
        stack.materialize(&mut list, upto, &index.candidates);
        list.slots.iter().map(|s| s.at).collect()
    }

    #[test]
    fn the_lazy_shuffle_is_a_seeded_permutation() {
        let n = 100;
        // Asking for position 0 draws one slot; asking for the last draws the rest.
        assert_eq!(scan_order(7, n, 0).len(), 1);
        let all = scan_order(7, n, n - 1);
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..n as u32).collect::<Vec<_>>(),
            "every candidate exactly once"
        );
        assert_ne!(all, sorted, "shuffled");
        assert_eq!(all, scan_order(7, n, n - 1), "same seed, same order");
        assert_ne!(all, scan_order(8, n, n - 1), "another seed, another order");
        // Drawing in several steps gives the order drawn at once.
        assert_eq!(scan_order(7, n, 40)[..], all[..scan_order(7, n, 40).len()]);
    }

    #[test]
    fn score_metadata_keeps_the_five_best_in_order_ties_in_scan_order() {
        let scores = [0.1, 0.5, 0.3, 0.5, 0.9, -0.2, 0.3, 0.7];
        let names: Vec<String> = (0..scores.len()).map(|i| format!("n{i}")).collect();
        let per_scorer = [("binpack", 0.25)];
        let mut metrics = AllocMetric::default();
        record_scores(&mut metrics, scores.len(), |i| {
            (names[i].as_str(), &per_scorer[..], scores[i])
        });
        let got: Vec<(&str, f64)> = metrics
            .score_meta_data
            .iter()
            .map(|m| (m.node_id.as_str(), m.norm_score))
            .collect();
        assert_eq!(
            got,
            vec![("n4", 0.9), ("n7", 0.7), ("n1", 0.5), ("n3", 0.5), ("n2", 0.3)]
        );
        assert_eq!(metrics.score_meta_data[0].scores.get("binpack"), Some(&0.25));
        let mut few = AllocMetric::default();
        record_scores(&mut few, 2, |i| (names[i].as_str(), &per_scorer[..], scores[i]));
        assert_eq!(few.score_meta_data.len(), 2);
        assert_eq!(few.score_meta_data[0].node_id, "n1");
    }

    #[test]
    fn slots_carry_the_candidates_index_class_ids() {
        let index = index(4);
        let mut stack = Stack::new(
            Arc::new(Job::default()),
            &SchedulerConfiguration::default(),
            false,
            Rng::new(1),
        );
        stack.set_nodes(index.clone(), vec![0, 1, 2, 3], false);
        let mut list = std::mem::take(&mut stack.list);
        stack.materialize(&mut list, 3, &index.candidates);
        let classes: Vec<u32> = list.slots.iter().map(|s| s.class).collect();
        assert_eq!(classes, vec![0, 1, 0, 1]);
        // A candidate built outside the index gets the index's ID for a known class and a new
        // one after the index's for an unknown class.
        let outside = Candidate::new(index.candidates[1].node.clone());
        assert_eq!(stack.class_of(&outside), 1);
        let mut other = (*index.candidates[0].node).clone();
        other.computed_class = "v1:c".into();
        assert_eq!(stack.class_of(&Candidate::new(Arc::new(other))), 2);
    }
}
