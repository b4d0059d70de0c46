//! [`StateStore`]: the single-writer holder of the current [`StateSnapshot`].
//!
//! ```text
//!  apply(index, cmd):  next = (*current).clone()  ──mutate──▶  current.store(Arc::new(next))
//!  snapshot():         current.load_full()   (readers never block the writer, nor each other)
//! ```
//!
//! Only the Raft FSM calls [`StateStore::apply`]; it must not be called concurrently (a second
//! writer would lose the first one's changes). Blocking queries are the server's job: it wakes
//! on applies and compares [`StateSnapshot::table_index`] with the query's index.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::{ApplyOutcome, Command, StateError, StateSnapshot};

/// The replicated state of one server.
#[derive(Debug)]
pub struct StateStore {
    current: ArcSwap<StateSnapshot>,
}

impl Default for StateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl StateStore {
    /// An empty store.
    pub fn new() -> Self {
        StateStore {
            current: ArcSwap::from_pointee(StateSnapshot::new()),
        }
    }

    /// A store holding a restored snapshot (Raft snapshot install).
    pub fn from_snapshot(snapshot: StateSnapshot) -> Self {
        StateStore {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// The current state: an immutable view, valid for as long as it is held.
    pub fn snapshot(&self) -> Arc<StateSnapshot> {
        self.current.load_full()
    }

    /// The latest applied Raft index.
    pub fn latest_index(&self) -> u64 {
        self.current.load().latest_index()
    }

    /// Replaces the whole state (Raft snapshot restore).
    pub fn restore(&self, snapshot: StateSnapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// Applies one committed command at Raft `index` (the FSM). Atomic: on error nothing is
    /// published.
    pub fn apply(&self, index: u64, command: Command) -> Result<ApplyOutcome, StateError> {
        let current = self.current.load_full();
        let mut next = (*current).clone();
        let outcome = crate::apply::apply(&mut next, index, command)?;
        self.current.store(Arc::new(next));
        Ok(outcome)
    }
}
