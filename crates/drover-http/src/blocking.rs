//! Blocking queries (`reference/http-api.md` §1.5): answer at once, or — when the client sent
//! `?index=N` — hold the request until the answer's index exceeds `N` or `wait` (plus jitter)
//! runs out, then answer with whatever is current.
//!
//! ```text
//!  run(tables, f) ── f(snapshot) ──▶ (value, index) ── index > N or N == 0 ──▶ answer
//!        ▲                                 │ otherwise
//!        └── Server::wait_for_index(tables, last seen table index, remaining) ◀─┘
//!            (wakes on the next write to one of `tables`, the deadline, or shutdown)
//! ```
//!
//! Vocabulary: the *tables* of an endpoint are the state tables its answer is read from (job
//! list: `Jobs` + `JobSummaries`); the *answer index* is what `f` reports — the object's
//! `ModifyIndex` for single objects, the tables' maximum index for lists. Because the wait is
//! keyed on the tables but the answer on the object, a write to another object of the same
//! table wakes the query, `f` runs again, and the query goes back to sleep with a higher table
//! mark: no busy loop, no missed change.
//!
//! Guarantees: the returned index is never 0 (clients sending `index=0` would never block);
//! the wait is capped at five minutes plus up to 1/16 of jitter, so many watchers of one object
//! do not all return in the same instant.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use drover_state::{StateSnapshot, Table};
use tokio::time::Instant;

use crate::AppState;
use crate::error::ApiError;
use crate::request::{QueryOptions, Req};

/// The highest index of `tables` in `snap`.
pub(crate) fn tables_index(snap: &StateSnapshot, tables: &[Table]) -> u64 {
    tables.iter().map(|t| snap.table_index(*t)).max().unwrap_or(0)
}

/// A random fraction in [0, 1) (a fresh `RandomState` is randomly keyed; no RNG crate needed).
fn rand_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// `wait` plus a random jitter of up to `wait / 16`.
pub(crate) fn with_jitter(wait: Duration) -> Duration {
    wait + (wait / 16).mul_f64(rand_fraction())
}

/// Runs `f` against the state, blocking as the query options ask. `f` returns the answer and
/// its index.
pub(crate) async fn run<T>(
    st: &AppState,
    req: &Req,
    q: &QueryOptions,
    tables: &[Table],
    f: impl Fn(&StateSnapshot) -> Result<(T, u64), ApiError>,
) -> Result<(T, u64), ApiError> {
    let snap = st.server.snapshot();
    let (mut value, mut index) = f(&snap)?;
    if q.index == 0 || index > q.index {
        return Ok((value, index.max(1)));
    }
    let deadline = Instant::now() + with_jitter(q.wait);
    let mut seen = tables_index(&snap, tables);
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let snap = tokio::select! {
            s = st.server.wait_for_index(tables, seen, deadline - now) => s,
            () = req.shutdown() => break,
        };
        let mark = tables_index(&snap, tables);
        (value, index) = f(&snap)?;
        if index > q.index || mark <= seen {
            // Changed, or the wait timed out with nothing new.
            break;
        }
        seen = mark;
    }
    Ok((value, index.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_bounded() {
        for _ in 0..100 {
            let w = with_jitter(Duration::from_secs(16));
            assert!(w >= Duration::from_secs(16) && w <= Duration::from_secs(17));
        }
    }
}
