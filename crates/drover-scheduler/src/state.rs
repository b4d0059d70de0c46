//! The scheduler's boundary: what it may read ([`State`]) and the only way it changes anything
//! ([`Planner`]).
//!
//! ```text
//!            ┌──────────── State (read-only snapshot at one Raft index) ───────────┐
//!  Evaluation│ nodes · allocs by job / node · job (by version) · deployment · config │
//!     ──────▶│                         Scheduler::process                          │
//!            └──────────── Planner: submit_plan · update_eval · create_eval · reblock_eval
//! ```
//!
//! In production the server's worker implements [`Planner`] (plans go to the leader's plan
//! applier); in tests and in `job plan` dry runs the recording [`crate::harness::Harness`] does.

use std::sync::Arc;

use drover_types::{Allocation, Deployment, Evaluation, Job, Node, Plan, PlanResult, SchedulerConfiguration};

/// An immutable view of the cluster at one index. Implementations must be cheap to query:
/// `allocs_by_node` is called for every candidate node of every placement.
///
/// Identity contract: within one snapshot, `node(id)`, `nodes()` and `candidates()` hand out
/// the *same* `Arc<Node>` for a node (clones of one `Arc`, not fresh copies). The stack keys
/// its per-pass caches (placements so far, feasibility memo, class strings) by that pointer;
/// fresh copies would make those caches miss or, worse, attribute usage to the wrong node.
/// `MemState` and `drover_state::StateSnapshot` both keep nodes in `Arc`s and satisfy this.
pub trait State {
    /// The Raft index this view reflects.
    fn latest_index(&self) -> u64;
    /// Every node (the scheduler filters by readiness, datacenter and pool).
    fn nodes(&self) -> Vec<Arc<Node>>;
    /// One node.
    fn node(&self, id: &str) -> Option<Arc<Node>>;
    /// Every allocation of a job (all versions, terminal ones included).
    fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>>;
    /// Every allocation on a node (terminal ones included).
    fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>>;
    /// One allocation.
    fn alloc(&self, id: &str) -> Option<Arc<Allocation>>;
    /// The current version of a job.
    fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>>;
    /// A specific version of a job.
    fn job_by_version(&self, namespace: &str, id: &str, version: u64) -> Option<Arc<Job>>;
    /// The most recent deployment of a job.
    fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>>;
    /// Scheduler configuration (algorithm, preemption).
    fn scheduler_config(&self) -> SchedulerConfiguration;
    /// Ready nodes indexed by datacenter and pool. The default builds it from `nodes()`; a
    /// state store should keep it current as nodes change, so an evaluation does not visit
    /// every node.
    fn candidates(&self) -> Arc<CandidateIndex> {
        Arc::new(CandidateIndex::build(self.nodes()))
    }
    /// Every job (for the core scheduler's garbage collection).
    fn jobs(&self) -> Vec<Arc<Job>> {
        Vec::new()
    }
    /// Every evaluation (for the core scheduler's garbage collection).
    fn evals(&self) -> Vec<Arc<Evaluation>> {
        Vec::new()
    }
    /// Every allocation (for the core scheduler's garbage collection).
    fn allocs(&self) -> Vec<Arc<Allocation>> {
        Vec::new()
    }
    /// Every deployment (for the core scheduler's garbage collection).
    fn deployments(&self) -> Vec<Arc<Deployment>> {
        Vec::new()
    }
}

/// What the planner returns for a submitted plan: the result, and a fresher state when part of
/// the plan was rejected (the scheduler then re-plans on it).
#[derive(Debug)]
pub struct Submitted {
    /// What was committed.
    pub result: PlanResult,
    /// Set when `result.refresh_index != 0`: a view at least that fresh.
    pub refreshed: Option<Arc<dyn State + Send + Sync>>,
}

impl std::fmt::Debug for dyn State + Send + Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "State@{}", self.latest_index())
    }
}

/// How a scheduler changes the world.
pub trait Planner {
    /// Submits a plan for the plan applier to verify and commit.
    fn submit_plan(&mut self, plan: Plan) -> Result<Submitted, SchedulerError>;
    /// Records the evaluation's new status.
    fn update_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError>;
    /// Creates a follow-up or blocked evaluation.
    fn create_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError>;
    /// Puts an unblocked evaluation back into the blocked set with new class eligibility.
    fn reblock_eval(&mut self, eval: Evaluation) -> Result<(), SchedulerError>;
}

/// Why a scheduler could not finish an evaluation. Expected outcomes (nothing fits, a partial
/// plan) are data in the plan and the evaluation, not errors: an error here means the worker
/// should nack the evaluation so it is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The planner (plan applier, Raft) failed; retry later.
    #[error("planner failed: {0}")]
    Planner(String),
    /// A plan was not fully committed but no refresh index came back (an applier bug).
    #[error("plan was partially committed without a refresh index")]
    PartialCommitWithoutRefresh,
    /// The evaluation names a scheduler type this crate does not have.
    #[error("unknown scheduler type {0:?}")]
    UnknownScheduler(String),
}

/// A ready node as the scheduler's hot path needs it: its ID, computed class and capacity
/// precomputed, so ranking a candidate touches one small record instead of the whole node.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The node.
    pub node: Arc<Node>,
    /// `node.id`, held in the record itself.
    pub id: NodeKey,
    /// Its computed class (`Node.ComputedClass`, or computed when empty).
    pub class: Arc<str>,
    /// `class`'s position in [`CandidateIndex::classes`]; [`Candidate::NO_CLASS_ID`] for a
    /// candidate built outside an index.
    pub class_id: u32,
    /// Its ports as ranking reads them (reserved ranges, dynamic range, addresses).
    pub ports: Arc<crate::fit::NodePorts>,
    /// Capacity minus operator reservations.
    pub capacity: crate::fit::Comparable,
    /// `Node.NodeMaxAllocs` (0 = no limit).
    pub max_allocs: i64,
}

/// A node ID stored inside its candidate record. The scan reads the ID of every candidate it
/// looks at (to find the node's allocations); reading it through the node would cost a cache
/// miss per candidate on a large cluster — measured as the largest single cost of the scan.
/// IDs up to [`NodeKey::INLINE`] bytes (UUIDs have 36) are kept inline, longer ones on the heap.
#[derive(Clone)]
pub enum NodeKey {
    /// The ID, inline (a string type that needs no re-validation to be read).
    Inline(arrayvec::ArrayString<{ NodeKey::INLINE }>),
    /// A longer ID.
    Heap(Arc<str>),
}

impl NodeKey {
    /// The longest ID kept inline.
    pub const INLINE: usize = 40;

    /// The key for `id`.
    pub fn new(id: &str) -> Self {
        match arrayvec::ArrayString::from(id) {
            Ok(inline) => NodeKey::Inline(inline),
            Err(_) => NodeKey::Heap(Arc::from(id)),
        }
    }

    /// The ID.
    pub fn as_str(&self) -> &str {
        match self {
            NodeKey::Inline(s) => s.as_str(),
            NodeKey::Heap(s) => s,
        }
    }
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl Candidate {
    /// The class ID of a candidate that is not part of a [`CandidateIndex`].
    pub const NO_CLASS_ID: u32 = u32::MAX;

    /// Builds the record for a node.
    pub fn new(node: Arc<Node>) -> Self {
        let class: Arc<str> = if node.computed_class.is_empty() {
            Arc::from(crate::feasible::computed_class(&node))
        } else {
            Arc::from(node.computed_class.as_str())
        };
        let capacity = crate::fit::node_capacity(&node);
        let max_allocs = node.node_max_allocs;
        Candidate {
            id: NodeKey::new(&node.id),
            ports: Arc::new(crate::fit::NodePorts::new(&node)),
            node,
            class,
            class_id: Self::NO_CLASS_ID,
            capacity,
            max_allocs,
        }
    }
}

/// Ready nodes grouped by (datacenter, node pool), and node counts per pool: what a scheduler
/// needs to find its candidates without visiting every node of the cluster. Built once per
/// version of the node table and shared by every evaluation that reads that version.
#[derive(Debug, Clone, Default)]
pub struct CandidateIndex {
    /// Every ready node; the nodes of one (datacenter, pool) are contiguous, in node ID order.
    pub candidates: Vec<Candidate>,
    /// (datacenter, pool) → its range of `candidates`.
    pub groups: Vec<((String, String), std::ops::Range<usize>)>,
    /// pool → number of nodes in it (any status).
    pub pool_sizes: std::collections::BTreeMap<String, i64>,
    /// The distinct computed classes; [`Candidate::class_id`] indexes this.
    pub classes: Vec<Arc<str>>,
    /// Node ID → position in `candidates`.
    pub positions: std::collections::HashMap<String, u32>,
}

impl CandidateIndex {
    /// Builds the index from every node (O(nodes); a state store keeps it between changes).
    pub fn build<I: IntoIterator<Item = Arc<Node>>>(nodes: I) -> Self {
        let mut groups: std::collections::BTreeMap<(String, String), Vec<Candidate>> = Default::default();
        let mut pool_sizes: std::collections::BTreeMap<String, i64> = Default::default();
        // Nodes of one class share one class string, which keeps it hot in the cache.
        let mut class_ids: std::collections::HashMap<Arc<str>, u32> = Default::default();
        let mut classes: Vec<Arc<str>> = Vec::new();
        for n in nodes {
            let pool = if n.node_pool.is_empty() {
                "default".to_string()
            } else {
                n.node_pool.clone()
            };
            *pool_sizes.entry(pool.clone()).or_default() += 1;
            if n.ready() {
                let mut c = Candidate::new(n);
                let next = u32::try_from(classes.len()).unwrap_or(Candidate::NO_CLASS_ID);
                let id = *class_ids.entry(c.class.clone()).or_insert_with(|| {
                    classes.push(c.class.clone());
                    next
                });
                c.class = classes.get(id as usize).cloned().unwrap_or(c.class);
                c.class_id = id;
                groups
                    .entry((c.node.datacenter.clone(), pool))
                    .or_default()
                    .push(c);
            }
        }
        let mut candidates = Vec::new();
        let groups = groups
            .into_iter()
            .map(|(key, nodes)| {
                let start = candidates.len();
                candidates.extend(nodes);
                (key, start..candidates.len())
            })
            .collect();
        let positions = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((c.node.id.clone(), u32::try_from(i).ok()?)))
            .collect();
        CandidateIndex {
            candidates,
            groups,
            pool_sizes,
            classes,
            positions,
        }
    }

    /// The candidate for `node`, if the index holds this very node record (a ready node of the
    /// snapshot the index was built from).
    pub fn candidate_for(&self, node: &Arc<Node>) -> Option<&Candidate> {
        let at = *self.positions.get(&node.id)?;
        self.candidates
            .get(at as usize)
            .filter(|c| Arc::ptr_eq(&c.node, node))
    }

    /// The class ID of `class` in this index.
    pub fn class_id(&self, class: &str) -> Option<u32> {
        self.classes
            .iter()
            .position(|c| &**c == class)
            .and_then(|i| u32::try_from(i).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::NodeKey;

    #[test]
    fn node_keys_give_back_the_id_inline_or_not() {
        let uuid = "0c2e3a4b-9f1d-4e2a-8b7c-1d2e3f405162";
        let long = "n".repeat(NodeKey::INLINE + 1);
        for id in [
            "",
            "node-1",
            uuid,
            "ünïcödé-node",
            &"x".repeat(NodeKey::INLINE),
            &long,
        ] {
            assert_eq!(NodeKey::new(id).as_str(), id);
        }
        assert!(matches!(NodeKey::new(uuid), NodeKey::Inline { .. }));
        assert!(matches!(NodeKey::new(&long), NodeKey::Heap(_)));
        assert_eq!(format!("{:?}", NodeKey::new("a")), "\"a\"");
    }
}
