//! Step 6 of the reconciler: which bucket each allocation falls into, judged by its own status
//! and the state of its node.
//!
//! ```text
//!   alloc status ─┐
//!   node state ───┼─▶ classify ─▶ untainted | migrate | lost | disconnecting | reconnecting | ignore
//!   disconnect ───┘   (first matching rule wins; the rule list is in `classify`)
//! ```
//!
//! The node reconciler (system jobs) shares the node-state, disconnect-config and timing helpers.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_types::alloc::{Allocation, client_status, desired_status};
use drover_types::job::TaskGroup;
use drover_types::node::{Node, node_status};
use drover_types::time::Nanos;

/// `AllocState.field` value that records a client-status transition.
pub(crate) const ALLOC_STATE_CLIENT_STATUS: u8 = 0;

/// What the reconciler knows about an allocation's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Not in the tainted map, or in it but ready: the node can keep running work.
    Untainted,
    /// The node no longer exists (garbage-collected).
    Missing,
    /// The node missed its heartbeat and is down.
    Down,
    /// The node missed its heartbeat but its allocations may come back (`disconnect` block).
    Disconnected,
    /// Tainted for another reason (draining, ineligible, initializing): allocations keep
    /// running unless they are marked for migration.
    OtherTainted,
}

/// Looks a node up in the tainted map.
pub(crate) fn node_state(tainted: &BTreeMap<String, Option<Arc<Node>>>, node_id: &str) -> NodeState {
    match tainted.get(node_id) {
        None => NodeState::Untainted,
        Some(None) => NodeState::Missing,
        Some(Some(n)) if n.status == node_status::DOWN => NodeState::Down,
        Some(Some(n)) if n.status == node_status::DISCONNECTED => NodeState::Disconnected,
        Some(Some(n)) if n.ready() => NodeState::Untainted,
        Some(Some(_)) => NodeState::OtherTainted,
    }
}

/// The bucket an allocation falls into (§7.2 step 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// Healthy where it is; counts toward the group's count (may still be failed and go
    /// through the reschedule filter).
    Untainted,
    /// Marked by the drainer: stop it and place a replacement elsewhere.
    Migrate,
    /// Its node is down or gone (or disconnected past `lost_after`): stop with client status
    /// `lost` and replace.
    Lost,
    /// Its node just disconnected and the group tolerates it: mark `unknown`, wait `lost_after`.
    Disconnecting,
    /// It was `unknown` and its client is back: decide between it and its replacement.
    Reconnecting,
    /// Nothing to do and does not count (already stopped, superseded).
    Ignore,
}

/// The group's `disconnect` settings, with the deprecated group fields as fallbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DisconnectConfig {
    /// How long an `unknown` allocation is waited for; `None` = disconnects are not tolerated.
    pub lost_after: Option<Nanos>,
    /// Place a replacement while the original is `unknown` (default true).
    pub replace: bool,
    /// The client stops its allocations after this long without the servers.
    pub stop_after: Option<Nanos>,
    /// Which survivor wins on reconnect: `best_score` (default), `keep_original`,
    /// `keep_replacement`, `longest_running`.
    pub reconcile: String,
}

/// Reads the disconnect settings of a group (`None` group = all defaults).
pub(crate) fn disconnect_config(tg: Option<&TaskGroup>) -> DisconnectConfig {
    let Some(tg) = tg else {
        return DisconnectConfig {
            lost_after: None,
            replace: true,
            stop_after: None,
            reconcile: "best_score".into(),
        };
    };
    let d = tg.disconnect.as_ref();
    let lost_after = d
        .map(|d| d.lost_after)
        .filter(|v| *v > 0)
        .or_else(|| tg.max_client_disconnect.filter(|v| *v > 0));
    let replace = match d {
        Some(d) => d.replace,
        None => !tg.prevent_reschedule_on_lost,
    };
    let stop_after = d
        .and_then(|d| d.stop_on_client_after)
        .or(tg.stop_after_client_disconnect)
        .filter(|v| *v > 0);
    let reconcile = d
        .map(|d| d.reconcile.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "best_score".into());
    DisconnectConfig {
        lost_after,
        replace,
        stop_after,
        reconcile,
    }
}

/// The group an allocation was placed from (its own job version), else `current`.
pub(crate) fn alloc_group<'a>(
    alloc: &'a Allocation,
    current: Option<&'a TaskGroup>,
) -> Option<&'a TaskGroup> {
    alloc
        .job
        .as_deref()
        .and_then(|j| j.group(&alloc.task_group))
        .or(current)
}

/// The last recorded client-status transition, if any.
fn last_client_state(alloc: &Allocation) -> Option<&drover_types::alloc::AllocState> {
    alloc
        .alloc_states
        .iter()
        .rev()
        .find(|s| s.field == ALLOC_STATE_CLIENT_STATUS)
}

/// When the allocation last became `unknown` (falls back to its modify time).
pub(crate) fn last_unknown_time(alloc: &Allocation) -> Option<i64> {
    alloc
        .alloc_states
        .iter()
        .rev()
        .find(|s| s.field == ALLOC_STATE_CLIENT_STATUS && s.value == client_status::UNKNOWN)
        .and_then(|s| s.time.map(|t| t.0))
        .or_else(|| (alloc.modify_time > 0).then_some(alloc.modify_time))
}

/// The client is back: the allocation was marked `unknown` (the last recorded transition) and
/// the client has since reported it running or failed.
///
/// Allocations still `unknown` are not reconnecting yet: their client has not reported.
pub(crate) fn should_reconnect(alloc: &Allocation) -> bool {
    matches!(
        alloc.client_status.as_str(),
        client_status::RUNNING | client_status::FAILED
    ) && last_client_state(alloc).is_some_and(|s| s.value == client_status::UNKNOWN)
}

/// An `unknown` allocation whose `lost_after` window has run out (or that has no window at
/// all, which only happens when the job changed under it).
pub(crate) fn expired(alloc: &Allocation, cfg: &DisconnectConfig, now: i64) -> bool {
    if alloc.client_status != client_status::UNKNOWN {
        return false;
    }
    match (cfg.lost_after, last_unknown_time(alloc)) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(window), Some(since)) => now >= since.saturating_add(window),
    }
}

/// True when the allocation is marked for migration by the drainer.
pub(crate) fn marked_migrate(alloc: &Allocation) -> bool {
    alloc.desired_transition.migrate == Some(true)
}

/// True when the allocation is marked for rescheduling (deployment watcher, `alloc stop`).
pub(crate) fn marked_reschedule(alloc: &Allocation) -> bool {
    alloc.desired_transition.reschedule == Some(true)
}

/// True when the drainer asked to stop it without a replacement (batch allocations).
pub(crate) fn migrate_disable_placement(alloc: &Allocation) -> bool {
    alloc.desired_transition.migrate_disable_placement == Some(true)
}

/// True when the allocation was placed as a canary.
pub(crate) fn is_canary(alloc: &Allocation) -> bool {
    alloc.deployment_status.as_ref().is_some_and(|s| s.canary)
}

/// Classifies one allocation. `group` is the group being reconciled (used when the
/// allocation's own job version lacks it). Rules, first match wins (§7.2 step 6):
///
/// 1. reconnecting, desired run, client failed → reconnecting
/// 2. server-terminal with `MigrateDisablePlacement` → untainted (keeps its slot)
/// 3. server-terminal → ignore
/// 4. terminal canary marked migrate → migrate
/// 5. client-terminal → untainted (the reschedule filter decides)
/// 6. `unknown` past `lost_after` → lost
/// 7. reconnecting, failed, desired stop → ignore
/// 8. node disconnected, alloc already `unknown` → untainted
/// 9. node disconnected, alloc pending → lost
/// 10. node disconnected, no `lost_after` → lost
/// 11. node disconnected → disconnecting
/// 12. marked migrate → migrate
/// 13. node untainted and reconnecting → reconnecting
/// 14. node untainted → untainted
/// 15. node missing → lost
/// 16. node down, `replace = false`, alloc `unknown` → untainted
/// 17. node down, `replace = false`, alloc running → disconnecting
/// 18. node down → lost
/// 19. anything else (draining, ineligible) → untainted
pub(crate) fn classify(alloc: &Allocation, node: NodeState, group: Option<&TaskGroup>, now: i64) -> Bucket {
    let cfg = disconnect_config(alloc_group(alloc, group));
    let reconnecting = should_reconnect(alloc);
    let failed = alloc.client_status == client_status::FAILED;
    let unknown = alloc.client_status == client_status::UNKNOWN;
    let server_terminal = alloc.server_terminal();
    let terminal = alloc.terminal();

    if reconnecting && alloc.desired_status == desired_status::RUN && failed {
        return Bucket::Reconnecting;
    }
    if server_terminal && !reconnecting {
        return if migrate_disable_placement(alloc) {
            Bucket::Untainted
        } else {
            Bucket::Ignore
        };
    }
    if terminal && is_canary(alloc) && marked_migrate(alloc) {
        return Bucket::Migrate;
    }
    if terminal && !reconnecting {
        return Bucket::Untainted;
    }
    if unknown && expired(alloc, &cfg, now) {
        return Bucket::Lost;
    }
    if reconnecting && failed && server_terminal {
        return Bucket::Ignore;
    }
    if node == NodeState::Disconnected {
        if unknown {
            return Bucket::Untainted;
        }
        if alloc.client_status == client_status::PENDING || cfg.lost_after.is_none() {
            return Bucket::Lost;
        }
        return Bucket::Disconnecting;
    }
    if marked_migrate(alloc) {
        return Bucket::Migrate;
    }
    match node {
        NodeState::Untainted if reconnecting => Bucket::Reconnecting,
        NodeState::Untainted => Bucket::Untainted,
        NodeState::Missing => Bucket::Lost,
        NodeState::Down if !cfg.replace && unknown => Bucket::Untainted,
        NodeState::Down if !cfg.replace && alloc.client_status == client_status::RUNNING => {
            Bucket::Disconnecting
        }
        NodeState::Down => Bucket::Lost,
        NodeState::Disconnected | NodeState::OtherTainted => Bucket::Untainted,
    }
}
