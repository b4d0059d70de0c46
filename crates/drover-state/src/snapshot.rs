//! [`StateSnapshot`]: one consistent, immutable view of every table at one Raft index.
//!
//! ```text
//!  primary tables (imbl::OrdMap<key, Arc<T>>)        secondary indexes (imbl::OrdSet<key>)
//!  jobs          (ns, id)                            allocs_by_node   (node, alloc)
//!  job_versions  (ns, id, version)  ≤ 6 per job      allocs_by_job    (ns, job, alloc)
//!  job_summaries (ns, id)                            allocs_by_eval   (eval, alloc)
//!  nodes         id                                  allocs_by_deploy (deployment, alloc)
//!  allocs        id                                  evals_by_job     (ns, job, eval)
//!  evals         id                                  deployments_by_job (ns, job, create, id)
//!  deployments   id
//!  scheduler_config, table_index[Table], index
//! ```
//!
//! Cloning is O(1) (structural sharing). Queries return `Arc`s of the stored objects.

use std::any::Any;
use std::sync::{Arc, Mutex};

use drover_types::summary::TaskGroupSummary;
use drover_types::{Allocation, Deployment, Evaluation, Job, JobSummary, Node, SchedulerConfiguration};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};

use crate::StateError;

/// How many versions of a job are kept.
pub const JOB_VERSIONS_KEPT: usize = 6;

/// The tables whose last-write Raft index is tracked (Nomad's `index` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Table {
    /// `jobs`.
    Jobs,
    /// `job_version`.
    JobVersions,
    /// `job_summary`.
    JobSummaries,
    /// `nodes`.
    Nodes,
    /// `allocs`.
    Allocs,
    /// `evals`.
    Evals,
    /// `deployment`.
    Deployments,
    /// `scheduler_config`.
    SchedulerConfig,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 8] = [
        Table::Jobs,
        Table::JobVersions,
        Table::JobSummaries,
        Table::Nodes,
        Table::Allocs,
        Table::Evals,
        Table::Deployments,
        Table::SchedulerConfig,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// Namespace and ID of a job.
pub type JobKey = (String, String);

/// One consistent view of the state at one Raft index. Clone is O(1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateSnapshot {
    pub(crate) index: u64,
    pub(crate) table_index: [u64; 8],
    pub(crate) jobs: OrdMap<JobKey, Arc<Job>>,
    pub(crate) job_versions: OrdMap<(String, String, u64), Arc<Job>>,
    pub(crate) job_summaries: OrdMap<JobKey, Arc<JobSummary>>,
    pub(crate) nodes: OrdMap<String, Arc<Node>>,
    pub(crate) allocs: OrdMap<String, Arc<Allocation>>,
    pub(crate) evals: OrdMap<String, Arc<Evaluation>>,
    pub(crate) deployments: OrdMap<String, Arc<Deployment>>,
    pub(crate) scheduler_config: Option<Arc<SchedulerConfiguration>>,
    pub(crate) allocs_by_node: OrdSet<(String, String)>,
    pub(crate) allocs_by_job: OrdSet<(String, String, String)>,
    pub(crate) allocs_by_eval: OrdSet<(String, String)>,
    pub(crate) allocs_by_deployment: OrdSet<(String, String)>,
    pub(crate) evals_by_job: OrdSet<(String, String, String)>,
    pub(crate) deployments_by_job: OrdSet<(String, String, u64, String)>,
    /// A reader's value derived from the node table ([`StateSnapshot::node_derived`]), shared
    /// by every snapshot cloned from this one.
    pub(crate) node_derived: NodeDerived,
}

/// The cache behind [`StateSnapshot::node_derived`]: the node-table index a value was built at
/// and the value. A cache, not state: it takes no part in equality and is not persisted.
#[derive(Clone, Default)]
pub(crate) struct NodeDerived(Arc<Mutex<Option<DerivedValue>>>);

/// A derived value and the node-table index it was built at.
type DerivedValue = (u64, Arc<dyn Any + Send + Sync>);

impl PartialEq for NodeDerived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for NodeDerived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeDerived")
    }
}

/// Second components of a `(a, b)` set whose first component is `a`.
fn with_prefix<'s>(set: &'s OrdSet<(String, String)>, a: &'s str) -> impl Iterator<Item = &'s String> + 's {
    set.range((a.to_string(), String::new())..)
        .take_while(move |(x, _)| x == a)
        .map(|(_, b)| b)
}

/// Third components of a `(a, b, c)` set whose first two components are `(a, b)`.
fn with_prefix2<'s>(
    set: &'s OrdSet<(String, String, String)>,
    a: &'s str,
    b: &'s str,
) -> impl Iterator<Item = &'s String> + 's {
    set.range((a.to_string(), b.to_string(), String::new())..)
        .take_while(move |(x, y, _)| x == a && y == b)
        .map(|(_, _, c)| c)
}

impl StateSnapshot {
    /// An empty state at index 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Raft index this view reflects (the maximum over all tables).
    pub fn latest_index(&self) -> u64 {
        self.index
    }

    /// The Raft index of the last write to `table` (what blocking queries compare against).
    pub fn table_index(&self, table: Table) -> u64 {
        self.table_index[table.slot()]
    }

    /// Every node, in ID order.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.nodes.values().cloned().collect()
    }

    /// One node.
    pub fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.nodes.get(id).cloned()
    }

    /// Every allocation of a job (all versions, terminal ones included).
    pub fn allocs_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Allocation>> {
        with_prefix2(&self.allocs_by_job, namespace, job_id)
            .filter_map(|id| self.allocs.get(id).cloned())
            .collect()
    }

    /// Every allocation on a node (terminal ones included).
    pub fn allocs_by_node(&self, node_id: &str) -> Vec<Arc<Allocation>> {
        with_prefix(&self.allocs_by_node, node_id)
            .filter_map(|id| self.allocs.get(id).cloned())
            .collect()
    }

    /// Every allocation created by an evaluation.
    pub fn allocs_by_eval(&self, eval_id: &str) -> Vec<Arc<Allocation>> {
        with_prefix(&self.allocs_by_eval, eval_id)
            .filter_map(|id| self.allocs.get(id).cloned())
            .collect()
    }

    /// Every allocation of a deployment.
    pub fn allocs_by_deployment(&self, deployment_id: &str) -> Vec<Arc<Allocation>> {
        with_prefix(&self.allocs_by_deployment, deployment_id)
            .filter_map(|id| self.allocs.get(id).cloned())
            .collect()
    }

    /// One allocation.
    pub fn alloc(&self, id: &str) -> Option<Arc<Allocation>> {
        self.allocs.get(id).cloned()
    }

    /// The current version of a job.
    pub fn job(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        self.jobs.get(&(namespace.to_string(), id.to_string())).cloned()
    }

    /// A specific (kept) version of a job.
    pub fn job_by_version(&self, namespace: &str, id: &str, version: u64) -> Option<Arc<Job>> {
        self.job_versions
            .get(&(namespace.to_string(), id.to_string(), version))
            .cloned()
    }

    /// The kept versions of a job, newest first.
    pub fn job_versions(&self, namespace: &str, id: &str) -> Vec<Arc<Job>> {
        let mut v: Vec<Arc<Job>> = self
            .job_versions
            .range(
                (namespace.to_string(), id.to_string(), 0)
                    ..=(namespace.to_string(), id.to_string(), u64::MAX),
            )
            .map(|(_, j)| j.clone())
            .collect();
        v.reverse();
        v
    }

    /// A job's summary.
    pub fn job_summary(&self, namespace: &str, id: &str) -> Option<Arc<JobSummary>> {
        self.job_summaries
            .get(&(namespace.to_string(), id.to_string()))
            .cloned()
    }

    /// The most recent (highest create index) deployment of a job.
    pub fn latest_deployment(&self, namespace: &str, job_id: &str) -> Option<Arc<Deployment>> {
        self.deployments_by_job
            .range((namespace.to_string(), job_id.to_string(), 0, String::new())..)
            .take_while(|(n, j, _, _)| n == namespace && j == job_id)
            .last()
            .and_then(|(_, _, _, id)| self.deployments.get(id).cloned())
    }

    /// Every deployment of a job, oldest first.
    pub fn deployments_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Deployment>> {
        self.deployments_by_job
            .range((namespace.to_string(), job_id.to_string(), 0, String::new())..)
            .take_while(|(n, j, _, _)| n == namespace && j == job_id)
            .filter_map(|(_, _, _, id)| self.deployments.get(id).cloned())
            .collect()
    }

    /// One deployment.
    pub fn deployment(&self, id: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(id).cloned()
    }

    /// The scheduler configuration (the default until one is set).
    pub fn scheduler_config(&self) -> SchedulerConfiguration {
        self.scheduler_config.as_deref().cloned().unwrap_or_default()
    }

    /// One evaluation.
    pub fn eval(&self, id: &str) -> Option<Arc<Evaluation>> {
        self.evals.get(id).cloned()
    }

    /// Every evaluation of a job.
    pub fn evals_by_job(&self, namespace: &str, job_id: &str) -> Vec<Arc<Evaluation>> {
        with_prefix2(&self.evals_by_job, namespace, job_id)
            .filter_map(|id| self.evals.get(id).cloned())
            .collect()
    }

    /// Every job, in (namespace, ID) order.
    pub fn jobs(&self) -> Vec<Arc<Job>> {
        self.jobs.values().cloned().collect()
    }

    /// Every evaluation, in ID order.
    pub fn evals(&self) -> Vec<Arc<Evaluation>> {
        self.evals.values().cloned().collect()
    }

    /// Every allocation, in ID order.
    pub fn allocs(&self) -> Vec<Arc<Allocation>> {
        self.allocs.values().cloned().collect()
    }

    /// Every deployment, in ID order.
    pub fn deployments(&self) -> Vec<Arc<Deployment>> {
        self.deployments.values().cloned().collect()
    }

    /// Every job summary.
    pub fn job_summaries(&self) -> Vec<Arc<JobSummary>> {
        self.job_summaries.values().cloned().collect()
    }

    /// A value computed from the node table alone — the scheduler's candidate index: ready
    /// nodes grouped by datacenter and pool, with their capacity and ports — built by `build`
    /// once per version of the node table and shared by every snapshot of this store that has
    /// that version, so evaluations do not each walk every node. One kind of value is kept: a
    /// request for another type replaces it.
    pub fn node_derived<T: Any + Send + Sync>(&self, build: impl FnOnce(&Self) -> T) -> Arc<T> {
        let version = self.table_index(Table::Nodes);
        let lock = || self.node_derived.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, value)) = lock().as_ref()
            && *at == version
            && let Ok(value) = Arc::clone(value).downcast::<T>()
        {
            return value;
        }
        // Built outside the lock (readers of the cached version are not held up); kept unless
        // a newer version is already cached, so a reader of an older snapshot does not evict
        // the index current readers use.
        let value = Arc::new(build(self));
        let mut cell = lock();
        if cell.as_ref().is_none_or(|(at, _)| *at <= version) {
            *cell = Some((version, value.clone() as Arc<dyn Any + Send + Sync>));
        }
        value
    }

    // ---- writes (used by `apply`; they keep the secondary indexes in step) ----

    pub(crate) fn touch(&mut self, table: Table, index: u64) {
        self.table_index[table.slot()] = index;
        if index > self.index {
            self.index = index;
        }
    }

    pub(crate) fn put_alloc(&mut self, alloc: Arc<Allocation>) {
        if let Some(old) = self.allocs.get(&alloc.id).cloned() {
            self.unindex_alloc(&old);
        }
        self.allocs_by_node
            .insert((alloc.node_id.clone(), alloc.id.clone()));
        self.allocs_by_job
            .insert((alloc.namespace.clone(), alloc.job_id.clone(), alloc.id.clone()));
        self.allocs_by_eval
            .insert((alloc.eval_id.clone(), alloc.id.clone()));
        if !alloc.deployment_id.is_empty() {
            self.allocs_by_deployment
                .insert((alloc.deployment_id.clone(), alloc.id.clone()));
        }
        self.allocs.insert(alloc.id.clone(), alloc);
    }

    fn unindex_alloc(&mut self, old: &Allocation) {
        self.allocs_by_node.remove(&(old.node_id.clone(), old.id.clone()));
        self.allocs_by_job
            .remove(&(old.namespace.clone(), old.job_id.clone(), old.id.clone()));
        self.allocs_by_eval.remove(&(old.eval_id.clone(), old.id.clone()));
        self.allocs_by_deployment
            .remove(&(old.deployment_id.clone(), old.id.clone()));
    }

    pub(crate) fn remove_alloc(&mut self, id: &str) -> bool {
        match self.allocs.remove(id) {
            Some(old) => {
                self.unindex_alloc(&old);
                true
            }
            None => false,
        }
    }

    pub(crate) fn put_eval(&mut self, eval: Arc<Evaluation>) {
        if let Some(old) = self.evals.get(&eval.id).cloned() {
            self.evals_by_job
                .remove(&(old.namespace.clone(), old.job_id.clone(), old.id.clone()));
        }
        self.evals_by_job
            .insert((eval.namespace.clone(), eval.job_id.clone(), eval.id.clone()));
        self.evals.insert(eval.id.clone(), eval);
    }

    pub(crate) fn remove_eval(&mut self, id: &str) -> bool {
        match self.evals.remove(id) {
            Some(old) => {
                self.evals_by_job
                    .remove(&(old.namespace.clone(), old.job_id.clone(), old.id.clone()));
                true
            }
            None => false,
        }
    }

    pub(crate) fn put_deployment(&mut self, d: Arc<Deployment>) {
        if let Some(old) = self.deployments.get(&d.id).cloned() {
            self.deployments_by_job.remove(&(
                old.namespace.clone(),
                old.job_id.clone(),
                old.create_index,
                old.id.clone(),
            ));
        }
        self.deployments_by_job.insert((
            d.namespace.clone(),
            d.job_id.clone(),
            d.create_index,
            d.id.clone(),
        ));
        self.deployments.insert(d.id.clone(), d);
    }

    pub(crate) fn remove_deployment(&mut self, id: &str) -> bool {
        match self.deployments.remove(id) {
            Some(old) => {
                self.deployments_by_job.remove(&(
                    old.namespace.clone(),
                    old.job_id.clone(),
                    old.create_index,
                    old.id.clone(),
                ));
                true
            }
            None => false,
        }
    }

    /// Stores a job version and drops the oldest beyond [`JOB_VERSIONS_KEPT`].
    pub(crate) fn put_job_version(&mut self, job: Arc<Job>) {
        let (ns, id) = (job.namespace.clone(), job.id.clone());
        self.job_versions
            .insert((ns.clone(), id.clone(), job.version), job);
        let keys: Vec<(String, String, u64)> = self
            .job_versions
            .range((ns.clone(), id.clone(), 0)..=(ns, id, u64::MAX))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.len() > JOB_VERSIONS_KEPT {
            for k in &keys[..keys.len() - JOB_VERSIONS_KEPT] {
                self.job_versions.remove(k);
            }
        }
    }

    pub(crate) fn remove_job_versions(&mut self, ns: &str, id: &str) {
        let keys: Vec<(String, String, u64)> = self
            .job_versions
            .range((ns.to_string(), id.to_string(), 0)..=(ns.to_string(), id.to_string(), u64::MAX))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.job_versions.remove(&k);
        }
    }

    /// Checks that every secondary index matches its primary table (for tests and debugging).
    pub fn check_indexes(&self) -> Result<(), String> {
        for (node, id) in self.allocs_by_node.iter() {
            match self.allocs.get(id) {
                Some(a) if &a.node_id == node => {}
                _ => return Err(format!("allocs_by_node entry ({node}, {id}) has no alloc")),
            }
        }
        for (ns, job, id) in self.allocs_by_job.iter() {
            match self.allocs.get(id) {
                Some(a) if &a.namespace == ns && &a.job_id == job => {}
                _ => return Err(format!("allocs_by_job entry ({ns}, {job}, {id}) has no alloc")),
            }
        }
        for (ns, job, id) in self.evals_by_job.iter() {
            match self.evals.get(id) {
                Some(e) if &e.namespace == ns && &e.job_id == job => {}
                _ => return Err(format!("evals_by_job entry ({ns}, {job}, {id}) has no eval")),
            }
        }
        if self.allocs_by_node.len() != self.allocs.len()
            || self.allocs_by_job.len() != self.allocs.len()
            || self.allocs_by_eval.len() != self.allocs.len()
        {
            return Err("alloc index sizes differ from the alloc table".into());
        }
        if self.evals_by_job.len() != self.evals.len() {
            return Err("eval index size differs from the eval table".into());
        }
        if self.deployments_by_job.len() != self.deployments.len() {
            return Err("deployment index size differs from the deployment table".into());
        }
        Ok(())
    }

    // ---- Raft snapshot encoding ----

    /// Encodes every table (not the secondary indexes, which are rebuilt on load) as msgpack
    /// with named fields.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        let p = Persisted {
            index: self.index,
            table_index: Table::ALL
                .iter()
                .map(|t| TableIndex {
                    table: *t,
                    index: self.table_index(*t),
                })
                .collect(),
            jobs: self.jobs.values().map(|j| (**j).clone()).collect(),
            job_versions: self.job_versions.values().map(|j| (**j).clone()).collect(),
            job_summaries: self.job_summaries.values().map(|s| (**s).clone()).collect(),
            nodes: self.nodes.values().map(|n| (**n).clone()).collect(),
            allocs: self.allocs.values().map(|a| (**a).clone()).collect(),
            evals: self.evals.values().map(|e| (**e).clone()).collect(),
            deployments: self.deployments.values().map(|d| (**d).clone()).collect(),
            scheduler_config: self.scheduler_config.as_deref().cloned(),
        };
        rmp_serde::to_vec_named(&p).map_err(|e| StateError::Encode(e.to_string()))
    }

    /// Decodes what [`StateSnapshot::to_bytes`] wrote and rebuilds the secondary indexes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let p: Persisted = decode_msgpack(bytes)?;
        let mut s = StateSnapshot {
            index: p.index,
            ..Default::default()
        };
        for t in p.table_index {
            s.table_index[t.table.slot()] = t.index;
        }
        for j in p.jobs {
            s.jobs.insert((j.namespace.clone(), j.id.clone()), Arc::new(j));
        }
        for j in p.job_versions {
            s.job_versions
                .insert((j.namespace.clone(), j.id.clone(), j.version), Arc::new(j));
        }
        for js in p.job_summaries {
            s.job_summaries
                .insert((js.namespace.clone(), js.job_id.clone()), Arc::new(js));
        }
        for n in p.nodes {
            s.nodes.insert(n.id.clone(), Arc::new(n));
        }
        for a in p.allocs {
            s.put_alloc(Arc::new(a));
        }
        for e in p.evals {
            s.put_eval(Arc::new(e));
        }
        for d in p.deployments {
            s.put_deployment(Arc::new(d));
        }
        s.scheduler_config = p.scheduler_config.map(Arc::new);
        Ok(s)
    }
}

/// Decodes msgpack written with named fields into `T`. Our model writes empty collections as
/// nil (Go's habit), which serde's derived impls reject, so the bytes go through a JSON value and
/// the lenient decoder of `drover-types`, which reads nil as "unset".
pub(crate) fn decode_msgpack<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    let value: serde_json::Value =
        rmp_serde::from_slice(bytes).map_err(|e| StateError::Decode(e.to_string()))?;
    drover_types::codec::from_value(value).map_err(|e| StateError::Decode(e.to_string()))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TableIndex {
    table: Table,
    index: u64,
}

impl Default for TableIndex {
    fn default() -> Self {
        TableIndex {
            table: Table::Jobs,
            index: 0,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Persisted {
    index: u64,
    table_index: Vec<TableIndex>,
    jobs: Vec<Job>,
    job_versions: Vec<Job>,
    job_summaries: Vec<JobSummary>,
    nodes: Vec<Node>,
    allocs: Vec<Allocation>,
    evals: Vec<Evaluation>,
    deployments: Vec<Deployment>,
    scheduler_config: Option<SchedulerConfiguration>,
}

/// The summary bucket an allocation's client status counts in.
pub(crate) fn summary_bucket<'a>(s: &'a mut TaskGroupSummary, client_status: &str) -> Option<&'a mut i64> {
    use drover_types::alloc::client_status as cs;
    match client_status {
        cs::PENDING => Some(&mut s.starting),
        cs::RUNNING => Some(&mut s.running),
        cs::COMPLETE => Some(&mut s.complete),
        cs::FAILED => Some(&mut s.failed),
        cs::LOST => Some(&mut s.lost),
        cs::UNKNOWN => Some(&mut s.unknown),
        _ => None,
    }
}
