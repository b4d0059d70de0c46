//! Rescheduling (§7.5): when a failed allocation gets a replacement, and how long it waits.
//!
//! ```text
//!  untainted alloc ─▶ filter ─┬─ untainted (running, complete batch work, …)
//!                             ├─ ignore    (complete/lost service allocs, stopped ones)
//!                             ├─ skip      (terminal and already replaced: NextAllocation set)
//!                             └─ candidate ─▶ eligibility ─┬─ now   (due within 1 s, or this is
//!                                                          │         its follow-up evaluation)
//!                                                          ├─ later (at fail time + delay)
//!                                                          └─ no    (attempts used up, …)
//! ```
//!
//! The delay grows with the allocation's reschedule history (`RescheduleTracker.Events`):
//!
//! | function      | next delay                                                     |
//! |---------------|----------------------------------------------------------------|
//! | `constant`    | `delay`                                                        |
//! | `exponential` | last delay × 2                                                 |
//! | `fibonacci`   | last + second-to-last (restarts after a reset, see below)      |
//!
//! Growing delays are capped at `max_delay`; once capped, an allocation that ran longer than the
//! cap since its last reschedule starts over at `delay` (it was healthy for a while, so the
//! failure is not part of the same crash loop).

use drover_types::alloc::{Allocation, client_status};
use drover_types::job::{ReschedulePolicy, job_type};
use drover_types::time::{Nanos, SECOND};

use super::buckets::{marked_reschedule, migrate_disable_placement};

/// Allocations due within this window are rescheduled now rather than later.
pub const RESCHEDULE_WINDOW: Nanos = SECOND;

/// `RescheduleTracker.LastReschedule` when the last attempt found no node.
const LAST_RESCHEDULE_FAILED: &str = "no placement";

/// The next delay for rescheduling `alloc` under `policy` (§7.5).
///
/// `now` stands in for the failure time when the allocation carries none (no task
/// `FinishedAt`, no modify time); the failure time decides whether a capped delay resets.
pub fn next_delay(alloc: &Allocation, policy: &ReschedulePolicy, now: i64) -> Nanos {
    next_delay_at(alloc, policy, fail_time(alloc).unwrap_or(now))
}

/// When `alloc` may be rescheduled under `policy`, or `None` when it may not (§7.5).
///
/// Only failed or lost allocations qualify (and batch allocations marked for rescheduling),
/// never ones the server already stopped unless their last reschedule found no node. The time
/// is the failure time (latest task `FinishedAt`, else `ModifyTime`, else `now`) plus
/// [`next_delay`]. It is `Some` when the policy is unlimited, or when fewer than `attempts`
/// reschedules happened within `interval` before the failure and the delay is shorter than
/// `interval`.
pub fn next_reschedule_time(alloc: &Allocation, policy: &ReschedulePolicy, now: i64) -> Option<i64> {
    if alloc.server_terminal() && !last_reschedule_failed(alloc) {
        return None;
    }
    let batch = alloc.job.as_ref().is_some_and(|j| j.job_type == job_type::BATCH);
    let failed_or_lost = matches!(
        alloc.client_status.as_str(),
        client_status::FAILED | client_status::LOST
    );
    if !(failed_or_lost || (batch && marked_reschedule(alloc))) {
        return None;
    }
    reschedule_time_from(alloc, policy, fail_time(alloc).unwrap_or(now))
}

/// The eligibility part of [`next_reschedule_time`] for a given failure time, without the
/// status checks (disconnecting allocations use the disconnect time).
pub(crate) fn reschedule_time_from(alloc: &Allocation, policy: &ReschedulePolicy, fail: i64) -> Option<i64> {
    if !policy.unlimited() && policy.attempts() <= 0 {
        return None;
    }
    let delay = next_delay_at(alloc, policy, fail);
    let at = fail.saturating_add(delay);
    if policy.unlimited() {
        return Some(at);
    }
    let events = alloc
        .reschedule_tracker
        .as_ref()
        .map(|t| t.events.as_slice())
        .unwrap_or_default();
    if events.is_empty() {
        return Some(at);
    }
    let interval = policy.interval();
    let recent = events
        .iter()
        .filter(|e| fail.saturating_sub(e.reschedule_time) < interval)
        .count();
    let attempts = usize::try_from(policy.attempts()).unwrap_or(0);
    (recent < attempts && delay < interval).then_some(at)
}

fn next_delay_at(alloc: &Allocation, policy: &ReschedulePolicy, fail: i64) -> Nanos {
    let base = policy.delay().max(0);
    let events = alloc
        .reschedule_tracker
        .as_ref()
        .map(|t| t.events.as_slice())
        .unwrap_or_default();
    let Some(last) = events.last() else {
        return base;
    };
    let max = policy.max_delay();
    let next = match policy.delay_function() {
        "exponential" => last.delay.saturating_mul(2),
        "fibonacci" => match events.len().checked_sub(2).and_then(|i| events.get(i)) {
            // After a reset the series restarts: delay, delay, 2×delay, 3×delay, …
            Some(prev) if prev.delay == max && last.delay == base => last.delay,
            Some(prev) => last.delay.saturating_add(prev.delay),
            None => last.delay,
        },
        _ => return base,
    };
    if max > 0 && next > max {
        if fail.saturating_sub(last.reschedule_time) > max {
            return base;
        }
        return max;
    }
    next.max(0)
}

/// The time the allocation failed: the latest task `FinishedAt`, else its modify time.
pub(crate) fn fail_time(alloc: &Allocation) -> Option<i64> {
    alloc
        .task_states
        .values()
        .filter_map(|s| s.finished_at.map(|t| t.0))
        .max()
        .or_else(|| (alloc.modify_time > 0).then_some(alloc.modify_time))
}

fn last_reschedule_failed(alloc: &Allocation) -> bool {
    alloc
        .reschedule_tracker
        .as_ref()
        .is_some_and(|t| t.last_reschedule == LAST_RESCHEDULE_FAILED)
}

/// What the reschedule filter makes of an untainted allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Keep it as it is; it counts.
    Untainted,
    /// Nothing to do; it does not count (it will be replaced if the count needs it).
    Ignore,
    /// Already replaced (terminal with `NextAllocation`): drop it entirely.
    Skip,
    /// It might need a replacement: ask [`eligibility`].
    Candidate,
}

/// The reschedule filter (`shouldFilter`, §7.5).
pub(crate) fn filter(alloc: &Allocation, batch: bool) -> Filter {
    if alloc.terminal() && !alloc.next_allocation.is_empty() {
        return Filter::Skip;
    }
    if batch {
        if migrate_disable_placement(alloc) {
            return Filter::Untainted;
        }
        if marked_reschedule(alloc) {
            return Filter::Candidate;
        }
        return match alloc.desired_status.as_str() {
            drover_types::alloc::desired_status::STOP => {
                if alloc.client_status == client_status::COMPLETE {
                    Filter::Untainted
                } else if last_reschedule_failed(alloc) {
                    Filter::Candidate
                } else {
                    Filter::Ignore
                }
            }
            drover_types::alloc::desired_status::EVICT => Filter::Ignore,
            _ if alloc.client_status == client_status::FAILED => Filter::Candidate,
            _ => Filter::Untainted,
        };
    }
    if alloc.server_terminal() {
        return if last_reschedule_failed(alloc) {
            Filter::Candidate
        } else {
            Filter::Ignore
        };
    }
    match alloc.client_status.as_str() {
        client_status::COMPLETE | client_status::LOST => Filter::Ignore,
        _ => Filter::Candidate,
    }
}

/// Whether a candidate is rescheduled now, later or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eligibility {
    /// Place its replacement in this pass.
    Now,
    /// Create a follow-up evaluation for this time (Unix ns).
    Later(i64),
    /// Keep it as it is.
    No,
}

/// Decides when a candidate is rescheduled (`updateByReschedulable`, §7.5).
///
/// `in_active_deployment`: the allocation belongs to the job's active deployment, whose
/// watcher decides about replacements (it marks them `Reschedule`).
pub(crate) fn eligibility(
    alloc: &Allocation,
    policy: Option<&ReschedulePolicy>,
    now: i64,
    eval_id: &str,
    in_active_deployment: bool,
) -> Eligibility {
    if in_active_deployment && !marked_reschedule(alloc) {
        return Eligibility::No;
    }
    if alloc.desired_transition.force_reschedule == Some(true) && alloc.client_terminal() {
        return Eligibility::Now;
    }
    let Some(at) = policy.and_then(|p| next_reschedule_time(alloc, p, now)) else {
        return Eligibility::No;
    };
    let own_followup = !eval_id.is_empty() && alloc.followup_eval_id == eval_id;
    if own_followup || at.saturating_sub(now) <= RESCHEDULE_WINDOW {
        Eligibility::Now
    } else if alloc.followup_eval_id.is_empty() {
        Eligibility::Later(at)
    } else {
        Eligibility::No
    }
}
