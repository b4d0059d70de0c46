//! Allocation names (`<job>.<group>[<index>]`) in use in a group, and the next free ones.

use std::collections::BTreeSet;
use std::sync::Arc;

use drover_types::alloc::{Allocation, alloc_name};

/// The indexes in use in one group (§7.2 step 12).
#[derive(Debug, Clone)]
pub(crate) struct NameIndex {
    job_id: String,
    group: String,
    used: BTreeSet<u64>,
}

impl NameIndex {
    /// An index over the names of `allocs`.
    pub(crate) fn new<'a>(
        job_id: &str,
        group: &str,
        allocs: impl IntoIterator<Item = &'a Arc<Allocation>>,
    ) -> Self {
        NameIndex {
            job_id: job_id.to_string(),
            group: group.to_string(),
            used: allocs.into_iter().filter_map(|a| a.index()).collect(),
        }
    }

    /// The name with index `i`.
    pub(crate) fn name(&self, i: u64) -> String {
        alloc_name(&self.job_id, &self.group, i)
    }

    /// `n` unused names, lowest indexes first; they are marked used.
    pub(crate) fn next(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        let mut i = 0u64;
        while out.len() < n {
            if self.used.insert(i) {
                out.push(self.name(i));
            }
            i += 1;
        }
        out
    }

    /// `n` names for canaries: first the names of allocations about to be replaced
    /// destructively (a canary previews their replacement), skipping names existing canaries
    /// hold, then unused indexes.
    pub(crate) fn next_canaries(
        &mut self,
        n: usize,
        existing_canaries: &[Arc<Allocation>],
        destructive: &[Arc<Allocation>],
    ) -> Vec<String> {
        let taken: BTreeSet<&str> = existing_canaries.iter().map(|a| a.name.as_str()).collect();
        let mut out: Vec<String> = Vec::with_capacity(n);
        let mut sorted: Vec<&Arc<Allocation>> = destructive.iter().collect();
        sorted.sort_by(|a, b| (a.index(), &a.name).cmp(&(b.index(), &b.name)));
        for a in sorted {
            if out.len() >= n {
                break;
            }
            if !taken.contains(a.name.as_str()) && !out.contains(&a.name) {
                out.push(a.name.clone());
            }
        }
        let mut i = 0u64;
        while out.len() < n {
            let name = self.name(i);
            if !self.used.contains(&i) && !taken.contains(name.as_str()) {
                self.used.insert(i);
                out.push(name);
            }
            i += 1;
        }
        out
    }
}
