//! Reconciler tests: each builds a job and its allocations by hand (see `testkit`), runs one
//! pass and asserts the exact decisions — names placed, allocations stopped with their
//! descriptions and client statuses, annotation counts, deployments and follow-up evals.

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_types::alloc::{Allocation, client_status, desired_status};
use drover_types::eval::DesiredUpdates;
use drover_types::job::{Job, ReschedulePolicy, job_type};
use drover_types::node::node_status;
use drover_types::time::{HOUR, MINUTE, SECOND, Timestamp};

use super::desc::*;
use super::testkit::*;
use super::{next_delay, next_reschedule_time, tainted_nodes, trigger};

// ---------------------------------------------------------------------------------------------
// Count changes, stop, purge, removed groups

#[test]
fn count_changes_place_lowest_free_names_and_stop_highest() {
    struct Case {
        name: &'static str,
        count: i64,
        existing: &'static [u64],
        place: &'static [u64],
        stop: &'static [u64],
    }
    let cases = [
        Case {
            name: "fresh job",
            count: 3,
            existing: &[],
            place: &[0, 1, 2],
            stop: &[],
        },
        Case {
            name: "steady",
            count: 3,
            existing: &[0, 1, 2],
            place: &[],
            stop: &[],
        },
        Case {
            name: "scale up",
            count: 5,
            existing: &[0, 1, 2],
            place: &[3, 4],
            stop: &[],
        },
        Case {
            name: "fill holes first",
            count: 4,
            existing: &[0, 2],
            place: &[1, 3],
            stop: &[],
        },
        Case {
            name: "scale down",
            count: 2,
            existing: &[0, 1, 2, 3, 4],
            place: &[],
            stop: &[4, 3, 2],
        },
        Case {
            name: "scale down with gaps",
            count: 2,
            existing: &[1, 5, 7],
            place: &[],
            stop: &[7],
        },
    ];
    for c in cases {
        let job = Arc::new(service_job(c.count));
        let allocs = c.existing.iter().map(|&i| A::of(&job, i).arc()).collect();
        let r = Run::new(&job).allocs(allocs).go();
        let want_place: Vec<String> = c.place.iter().map(|&i| name(i)).collect();
        assert_eq!(placed(&r), want_place, "{}", c.name);
        let want_stop: Vec<_> = c
            .stop
            .iter()
            .map(|i| stop(&format!("cache{i}"), ALLOC_NOT_NEEDED, None))
            .collect();
        assert_eq!(stops(&r), want_stop, "{}", c.name);
        let d = du(&r);
        assert_eq!(
            (d.place, d.stop),
            (c.place.len() as u64, c.stop.len() as u64),
            "{}",
            c.name
        );
        assert!(
            r.destructive_update.is_empty() && r.inplace_update.is_empty(),
            "{}",
            c.name
        );
        assert!(
            r.place.iter().all(|p| p.previous_alloc.is_none() && !p.canary),
            "{}",
            c.name
        );
    }
}

#[test]
fn duplicate_names_are_stopped_before_higher_indexes() {
    let job = Arc::new(service_job(2));
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 0).id("cache0-dup").created(30).arc(),
        A::of(&job, 1).arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert_eq!(stops(&r), vec![stop("cache0-dup", ALLOC_NOT_NEEDED, None)]);
    assert!(r.place.is_empty());
}

#[test]
fn scale_to_zero_stops_everything_and_marks_lost_ones() {
    let job = Arc::new(service_job(0));
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).node("down").arc(),
        A::of(&job, 2).complete().arc(),
    ];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[with_status("down", node_status::DOWN)], &[]))
        .go();
    assert_eq!(
        stops(&r),
        vec![
            stop("cache0", ALLOC_NOT_NEEDED, None),
            stop("cache1", ALLOC_LOST, Some(client_status::LOST))
        ]
    );
    assert!(r.place.is_empty());
    assert_eq!(du(&r), counts(0, 2, 0));
    assert!(r.deployment.is_none());
}

#[test]
fn stopped_job_stops_all_live_allocs_and_cancels_its_deployment() {
    let mut j = service_job(3);
    j.stop = true;
    let job = Arc::new(j);
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).node("gone").arc(),
        A::of(&job, 2).complete().arc(),
        A::of(&job, 3).desired(desired_status::STOP).arc(),
    ];
    let d = deployment("d1", &job, RUNNING, dstate(3, 0, false, &[]));
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[], &["gone"]))
        .deployment(d)
        .go();
    assert_eq!(
        stops(&r),
        vec![
            stop("cache0", ALLOC_NOT_NEEDED, None),
            stop("cache1", ALLOC_LOST, Some(client_status::LOST))
        ]
    );
    assert!(r.place.is_empty() && r.deployment.is_none());
    assert_eq!(r.deployment_updates.len(), 1);
    assert_eq!(r.deployment_updates[0].deployment_id, "d1");
    assert_eq!(r.deployment_updates[0].status, CANCELLED);
    assert_eq!(
        r.deployment_updates[0].status_description,
        "Cancelled because job is stopped"
    );
    assert_eq!(du(&r).stop, 2);
}

#[test]
fn purged_job_stops_everything() {
    let job = Arc::new(service_job(2));
    let allocs = vec![A::of(&job, 0).arc(), A::of(&job, 1).arc()];
    let mut run = Run::new(&job).allocs(allocs);
    run.job = None;
    let r = run.go();
    assert_eq!(
        stops(&r),
        vec![
            stop("cache0", ALLOC_NOT_NEEDED, None),
            stop("cache1", ALLOC_NOT_NEEDED, None)
        ]
    );
    assert!(r.place.is_empty() && r.deployment_updates.is_empty());
}

#[test]
fn stopped_job_with_finished_deployment_is_not_cancelled_again() {
    let mut j = service_job(1);
    j.stop = true;
    let job = Arc::new(j);
    let d = deployment("d1", &job, SUCCESSFUL, dstate(1, 0, false, &[]));
    let r = Run::new(&job).deployment(d).go();
    assert!(r.deployment_updates.is_empty());
}

#[test]
fn removed_group_is_stopped_and_others_untouched() {
    let mut old = service_job(2);
    old.task_groups.push(group("old", 2));
    let old = Arc::new(old);
    let job = Arc::new(Job {
        task_groups: vec![old.task_groups[0].clone()],
        ..(*old).clone()
    });
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).arc(),
        A::new(&old, "old", 0).arc(),
        A::new(&old, "old", 1).arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert_eq!(
        stops(&r),
        vec![
            stop("old0", ALLOC_NOT_NEEDED, None),
            stop("old1", ALLOC_NOT_NEEDED, None)
        ]
    );
    assert!(r.place.is_empty());
    assert_eq!(r.desired_tg_updates["old"].stop, 2);
    assert_eq!(du(&r), counts(0, 0, 2));
}

// ---------------------------------------------------------------------------------------------
// Lost, disconnected, reconnected, migrating

#[test]
fn lost_allocs_are_stopped_and_replaced_with_the_same_name() {
    struct Case {
        name: &'static str,
        tainted: BTreeMap<String, Option<Arc<drover_types::Node>>>,
        disconnect_lost_after: Option<i64>,
    }
    let cases = [
        Case {
            name: "node down",
            tainted: tainted(&[with_status("n2", node_status::DOWN)], &[]),
            disconnect_lost_after: None,
        },
        Case {
            name: "node missing",
            tainted: tainted(&[], &["n2"]),
            disconnect_lost_after: None,
        },
        Case {
            name: "node disconnected, no lost_after",
            tainted: tainted(&[with_status("n2", node_status::DISCONNECTED)], &[]),
            disconnect_lost_after: None,
        },
        Case {
            name: "node down, lost_after set (down is down)",
            tainted: tainted(&[with_status("n2", node_status::DOWN)], &[]),
            disconnect_lost_after: Some(MINUTE),
        },
    ];
    for c in cases {
        let mut j = service_job(3);
        if let Some(w) = c.disconnect_lost_after {
            j = with_disconnect(j, w, true, None);
        }
        let job = Arc::new(j);
        let allocs = vec![
            A::of(&job, 0).arc(),
            A::of(&job, 1).node("n2").arc(),
            A::of(&job, 2).arc(),
        ];
        let r = Run::new(&job).allocs(allocs).tainted(c.tainted).go();
        assert_eq!(
            stops(&r),
            vec![stop("cache1", ALLOC_LOST, Some(client_status::LOST))],
            "{}",
            c.name
        );
        assert_eq!(placed(&r), vec![name(1)], "{}", c.name);
        let p = &r.place[0];
        assert!(p.lost && !p.reschedule && !p.canary, "{}", c.name);
        assert_eq!(
            p.previous_alloc.as_ref().map(|a| a.id.as_str()),
            Some("cache1"),
            "{}",
            c.name
        );
        assert_eq!(du(&r), counts(1, 1, 2), "{}", c.name);
        assert!(r.disconnect_updates.is_empty(), "{}", c.name);
        assert!(
            r.deployment.is_none(),
            "{}: a lost replacement is not a rollout",
            c.name
        );
    }
}

#[test]
fn lost_alloc_not_replaced_when_count_is_already_met() {
    let job = Arc::new(service_job(2));
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).arc(),
        A::of(&job, 2).node("n2").arc(),
    ];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[with_status("n2", node_status::DOWN)], &[]))
        .go();
    assert_eq!(
        stops(&r),
        vec![stop("cache2", ALLOC_LOST, Some(client_status::LOST))]
    );
    assert!(r.place.is_empty());
}

#[test]
fn server_stopped_alloc_on_down_node_is_left_to_the_scheduler() {
    let job = Arc::new(service_job(1));
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).node("n2").desired(desired_status::STOP).arc(),
    ];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[with_status("n2", node_status::DOWN)], &[]))
        .go();
    assert!(r.stop.is_empty() && r.place.is_empty());
}

#[test]
fn stop_on_client_after_delays_lost_replacements() {
    let job = Arc::new(with_disconnect(service_job(2), 0, true, Some(MINUTE)));
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).node("n2").modified(NOW - 10 * SECOND).arc(),
    ];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[with_status("n2", node_status::DOWN)], &[]))
        .go();
    // Last heard of 10 s ago + stop_on_client_after 60 s + kill timeout 5 s = 55 s from now.
    let evals = &r.desired_followup_evals[GROUP];
    assert_eq!(evals.len(), 1);
    assert_eq!(evals[0].triggered_by, trigger::RETRY_FAILED_ALLOC);
    assert_eq!(evals[0].wait_until, Some(Timestamp(NOW + 55 * SECOND)));
    assert_eq!(r.stop.len(), 1);
    assert_eq!(r.stop[0].client_status.as_deref(), Some(client_status::LOST));
    assert_eq!(r.stop[0].followup_eval_id.as_deref(), Some(evals[0].id.as_str()));
    assert!(
        r.place.is_empty(),
        "placements wait for the client to stop its allocs"
    );
}

#[test]
fn disconnect_marks_unknown_schedules_timeout_and_replaces() {
    let job = Arc::new(with_disconnect(service_job(2), 5 * MINUTE, true, None));
    let allocs = vec![A::of(&job, 0).arc(), A::of(&job, 1).node("n2").arc()];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[with_status("n2", node_status::DISCONNECTED)], &[]))
        .go();
    let updated = &r.disconnect_updates["cache1"];
    assert_eq!(updated.client_status, client_status::UNKNOWN);
    assert_eq!(updated.client_description, ALLOC_UNKNOWN);
    let last = updated.alloc_states.last().expect("a client-status entry");
    assert_eq!(
        (last.value.as_str(), last.time),
        (client_status::UNKNOWN, Some(Timestamp(NOW)))
    );
    let evals = &r.desired_followup_evals[GROUP];
    assert_eq!(evals.len(), 1);
    assert_eq!(evals[0].triggered_by, trigger::MAX_DISCONNECT_TIMEOUT);
    assert_eq!(evals[0].wait_until, Some(Timestamp(NOW + 5 * MINUTE)));
    assert_eq!(evals[0].previous_eval, "eval-1");
    assert_eq!(updated.followup_eval_id, evals[0].id);
    assert!(r.stop.is_empty(), "an unknown alloc is not stopped");
    assert_eq!(placed(&r), vec![name(1)]);
    assert!(r.place[0].reschedule);
    let d = du(&r);
    assert_eq!((d.disconnect, d.place, d.stop), (1, 1, 0));
}

#[test]
fn disconnect_without_replace_keeps_the_slot() {
    let job = Arc::new(with_disconnect(service_job(2), 5 * MINUTE, false, None));
    let allocs = vec![A::of(&job, 0).arc(), A::of(&job, 1).node("n2").arc()];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[with_status("n2", node_status::DISCONNECTED)], &[]))
        .go();
    assert!(r.disconnect_updates.contains_key("cache1"));
    assert!(r.place.is_empty() && r.stop.is_empty());
}

#[test]
fn unknown_alloc_waits_for_lost_after_then_is_lost() {
    let job = Arc::new(with_disconnect(service_job(1), 5 * MINUTE, true, None));
    let orig = |since: i64| {
        A::of(&job, 0)
            .node("n2")
            .client(client_status::UNKNOWN)
            .state(client_status::UNKNOWN, since)
            .next("cache0-r")
            .arc()
    };
    let repl = A::of(&job, 0).id("cache0-r").prev("cache0").created(40).arc();
    let t = || tainted(&[with_status("n2", node_status::DISCONNECTED)], &[]);

    let waiting = Run::new(&job)
        .allocs(vec![orig(NOW - MINUTE), repl.clone()])
        .tainted(t())
        .go();
    assert!(waiting.stop.is_empty() && waiting.place.is_empty(), "{waiting:?}");

    let expired = Run::new(&job)
        .allocs(vec![orig(NOW - 6 * MINUTE), repl])
        .tainted(t())
        .go();
    assert_eq!(
        stops(&expired),
        vec![stop("cache0", ALLOC_LOST, Some(client_status::LOST))]
    );
    assert!(expired.place.is_empty(), "its replacement already runs");
}

#[test]
fn pending_alloc_on_a_disconnected_node_is_lost() {
    let job = Arc::new(with_disconnect(service_job(1), 5 * MINUTE, true, None));
    let allocs = vec![A::of(&job, 0).node("n2").client(client_status::PENDING).arc()];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[with_status("n2", node_status::DISCONNECTED)], &[]))
        .go();
    assert_eq!(
        stops(&r),
        vec![stop("cache0", ALLOC_LOST, Some(client_status::LOST))]
    );
    assert_eq!(placed(&r), vec![name(0)]);
    assert!(r.disconnect_updates.is_empty());
}

#[test]
fn unknown_alloc_on_a_ready_node_waits_for_its_client() {
    let job = Arc::new(with_disconnect(service_job(1), 5 * MINUTE, true, None));
    let allocs = vec![
        A::of(&job, 0)
            .client(client_status::UNKNOWN)
            .state(client_status::UNKNOWN, NOW - MINUTE)
            .arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert!(r.place.is_empty() && r.stop.is_empty() && r.reconnect_updates.is_empty());
}

#[test]
fn reconnect_picks_a_survivor() {
    struct Case {
        name: &'static str,
        strategy: &'static str,
        replacement_version_bump: bool,
        stopped: &'static str,
    }
    let cases = [
        Case {
            name: "best_score, equal scores",
            strategy: "best_score",
            replacement_version_bump: false,
            stopped: "r0",
        },
        Case {
            name: "keep_original",
            strategy: "keep_original",
            replacement_version_bump: false,
            stopped: "r0",
        },
        Case {
            name: "keep_replacement",
            strategy: "keep_replacement",
            replacement_version_bump: false,
            stopped: "cache0",
        },
        Case {
            name: "a newer replacement always wins",
            strategy: "keep_original",
            replacement_version_bump: true,
            stopped: "cache0",
        },
    ];
    for c in cases {
        let base = with_group(with_disconnect(service_job(1), 5 * MINUTE, true, None), |g| {
            if let Some(d) = g.disconnect.as_mut() {
                d.reconcile = c.strategy.into();
            }
        });
        let old = Arc::new(base.clone());
        let job = if c.replacement_version_bump {
            Arc::new(next_version(&base, None))
        } else {
            Arc::clone(&old)
        };
        let orig = A::of(&old, 0)
            .state(client_status::UNKNOWN, NOW - MINUTE)
            .next("r0")
            .arc();
        let repl = A::of(&job, 0)
            .id("r0")
            .prev("cache0")
            .node("n2")
            .created(40)
            .arc();
        let mut run = Run::new(&job).allocs(vec![orig, repl]);
        // The original is of an older version only when the job moved on; then it is simply
        // stopped. Keep it current otherwise.
        if c.replacement_version_bump {
            run.job = Some(Arc::clone(&job));
        }
        let r = run.go();
        assert_eq!(
            stops(&r),
            vec![stop(c.stopped, ALLOC_RECONNECTED, None)],
            "{}",
            c.name
        );
        assert!(r.place.is_empty(), "{}", c.name);
        if c.stopped == "r0" {
            let u = &r.reconnect_updates["cache0"];
            let last = u.alloc_states.last().expect("new client state");
            assert_eq!(
                (last.value.as_str(), last.time),
                (client_status::RUNNING, Some(Timestamp(NOW))),
                "{}",
                c.name
            );
            assert_eq!(du(&r).reconnect, 1, "{}", c.name);
        } else {
            assert!(r.reconnect_updates.is_empty(), "{}", c.name);
        }
    }
}

#[test]
fn reconnected_failed_alloc_is_stopped() {
    let job = Arc::new(with_disconnect(service_job(1), 5 * MINUTE, true, None));
    let orig = A::of(&job, 0)
        .failed_at(NOW - MINUTE)
        .state(client_status::UNKNOWN, NOW - 2 * MINUTE)
        .arc();
    let r = Run::new(&job).allocs(vec![orig]).go();
    assert_eq!(stops(&r), vec![stop("cache0", ALLOC_RECONNECTED, None)]);
    assert_eq!(placed(&r), vec![name(0)], "the slot is refilled");
}

#[test]
fn drain_migrates_marked_allocs_only() {
    let job = Arc::new(service_job(3));
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).node("n2").migrate().arc(),
        A::of(&job, 2).node("n2").arc(),
    ];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[draining("n2")], &[]))
        .go();
    assert_eq!(stops(&r), vec![stop("cache1", ALLOC_MIGRATING, None)]);
    assert_eq!(placed(&r), vec![name(1)]);
    assert_eq!(
        r.place[0].previous_alloc.as_ref().map(|a| a.id.as_str()),
        Some("cache1")
    );
    assert!(!r.place[0].lost && !r.place[0].reschedule);
    let d = du(&r);
    assert_eq!((d.migrate, d.place, d.stop, d.ignore), (1, 0, 0, 2));
    assert!(r.deployment.is_none());
}

#[test]
fn batch_migration_with_disabled_placement_only_stops() {
    let job = Arc::new(batch_job(1));
    let allocs = vec![A::of(&job, 0).node("n2").migrate().no_placement().arc()];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[draining("n2")], &[]))
        .go();
    assert_eq!(stops(&r), vec![stop("cache0", ALLOC_MIGRATING, None)]);
    assert!(r.place.is_empty());
}

#[test]
fn excess_migrating_allocs_are_stopped_without_replacement() {
    let job = Arc::new(service_job(1));
    let allocs = vec![A::of(&job, 0).arc(), A::of(&job, 1).node("n2").migrate().arc()];
    let r = Run::new(&job)
        .allocs(allocs)
        .tainted(tainted(&[draining("n2")], &[]))
        .go();
    assert_eq!(stops(&r), vec![stop("cache1", ALLOC_NOT_NEEDED, None)]);
    assert!(r.place.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Rescheduling

#[test]
fn next_delay_follows_the_delay_function() {
    struct Case {
        name: &'static str,
        function: &'static str,
        delay: i64,
        max: i64,
        /// Delays of previous reschedules, oldest first.
        history: Vec<i64>,
        /// How long before the failure the last reschedule happened.
        ran_for: i64,
        want: i64,
    }
    let s = SECOND;
    let cases = [
        Case {
            name: "first reschedule",
            function: "exponential",
            delay: 30 * s,
            max: HOUR,
            history: vec![],
            ran_for: 0,
            want: 30 * s,
        },
        Case {
            name: "constant",
            function: "constant",
            delay: 5 * s,
            max: 0,
            history: vec![5 * s, 5 * s],
            ran_for: s,
            want: 5 * s,
        },
        Case {
            name: "exponential doubles",
            function: "exponential",
            delay: 30 * s,
            max: HOUR,
            history: vec![30 * s],
            ran_for: s,
            want: 60 * s,
        },
        Case {
            name: "exponential x4",
            function: "exponential",
            delay: 30 * s,
            max: HOUR,
            history: vec![30 * s, 60 * s],
            ran_for: s,
            want: 120 * s,
        },
        Case {
            name: "exponential capped",
            function: "exponential",
            delay: 30 * s,
            max: HOUR,
            history: vec![1920 * s],
            ran_for: s,
            want: HOUR,
        },
        Case {
            name: "exponential stays capped",
            function: "exponential",
            delay: 30 * s,
            max: HOUR,
            history: vec![HOUR],
            ran_for: 10 * MINUTE,
            want: HOUR,
        },
        Case {
            name: "exponential resets after a long run",
            function: "exponential",
            delay: 30 * s,
            max: HOUR,
            history: vec![HOUR],
            ran_for: 2 * HOUR,
            want: 30 * s,
        },
        Case {
            name: "exponential without a cap",
            function: "exponential",
            delay: 30 * s,
            max: 0,
            history: vec![HOUR],
            ran_for: s,
            want: 2 * HOUR,
        },
        Case {
            name: "fibonacci 2nd",
            function: "fibonacci",
            delay: 10 * s,
            max: 100 * s,
            history: vec![10 * s],
            ran_for: s,
            want: 10 * s,
        },
        Case {
            name: "fibonacci 3rd",
            function: "fibonacci",
            delay: 10 * s,
            max: 100 * s,
            history: vec![10 * s, 10 * s],
            ran_for: s,
            want: 20 * s,
        },
        Case {
            name: "fibonacci 4th",
            function: "fibonacci",
            delay: 10 * s,
            max: 100 * s,
            history: vec![10 * s, 10 * s, 20 * s],
            ran_for: s,
            want: 30 * s,
        },
        Case {
            name: "fibonacci 6th",
            function: "fibonacci",
            delay: 10 * s,
            max: 100 * s,
            history: vec![20 * s, 30 * s, 50 * s],
            ran_for: s,
            want: 80 * s,
        },
        Case {
            name: "fibonacci capped",
            function: "fibonacci",
            delay: 10 * s,
            max: 100 * s,
            history: vec![50 * s, 80 * s],
            ran_for: s,
            want: 100 * s,
        },
        Case {
            name: "fibonacci reset",
            function: "fibonacci",
            delay: 10 * s,
            max: 100 * s,
            history: vec![80 * s, 100 * s],
            ran_for: HOUR,
            want: 10 * s,
        },
        Case {
            name: "fibonacci restarts after reset",
            function: "fibonacci",
            delay: 10 * s,
            max: 100 * s,
            history: vec![100 * s, 10 * s],
            ran_for: s,
            want: 10 * s,
        },
        Case {
            name: "fibonacci after restart",
            function: "fibonacci",
            delay: 10 * s,
            max: 100 * s,
            history: vec![100 * s, 10 * s, 10 * s],
            ran_for: s,
            want: 20 * s,
        },
    ];
    for c in cases {
        let job = Arc::new(service_job(1));
        let fail = NOW - MINUTE;
        let n = c.history.len() as i64;
        let events: Vec<(i64, i64)> = c
            .history
            .iter()
            .enumerate()
            .map(|(i, &d)| (fail - c.ran_for - (n - 1 - i as i64) * HOUR, d))
            .collect();
        let a = A::of(&job, 0).failed_at(fail).rescheduled(&events).0;
        let p = policy(0, 0, c.delay, c.function, c.max, true);
        assert_eq!(next_delay(&a, &p, NOW), c.want, "{}", c.name);
        assert_eq!(
            next_reschedule_time(&a, &p, NOW),
            Some(fail + c.want),
            "{}",
            c.name
        );
    }
}

#[test]
fn next_reschedule_time_eligibility() {
    let job = Arc::new(service_job(1));
    let batch = Arc::new(batch_job(1));
    let fail = NOW - MINUTE;
    let limited = policy(2, HOUR, 5 * SECOND, "constant", 0, false);
    struct Case {
        name: &'static str,
        alloc: Allocation,
        policy: ReschedulePolicy,
        want: Option<i64>,
    }
    let cases = [
        Case {
            name: "disabled policy",
            alloc: A::of(&job, 0).failed_at(fail).0,
            policy: policy(0, 0, 5 * SECOND, "constant", 0, false),
            want: None,
        },
        Case {
            name: "running alloc",
            alloc: A::of(&job, 0).0,
            policy: limited.clone(),
            want: None,
        },
        Case {
            name: "complete alloc",
            alloc: A::of(&job, 0).complete().0,
            policy: limited.clone(),
            want: None,
        },
        Case {
            name: "failed, no history",
            alloc: A::of(&job, 0).failed_at(fail).0,
            policy: limited.clone(),
            want: Some(fail + 5 * SECOND),
        },
        Case {
            name: "lost",
            alloc: A::of(&job, 0).client(client_status::LOST).modified(fail).0,
            policy: limited.clone(),
            want: Some(fail + 5 * SECOND),
        },
        Case {
            name: "fail time falls back to modify time",
            alloc: A::of(&job, 0)
                .client(client_status::FAILED)
                .modified(fail - HOUR)
                .0,
            policy: limited.clone(),
            want: Some(fail - HOUR + 5 * SECOND),
        },
        Case {
            name: "fail time falls back to now",
            alloc: A::of(&job, 0).client(client_status::FAILED).modified(0).0,
            policy: limited.clone(),
            want: Some(NOW + 5 * SECOND),
        },
        Case {
            name: "server stopped",
            alloc: A::of(&job, 0).failed_at(fail).desired(desired_status::STOP).0,
            policy: limited.clone(),
            want: None,
        },
        Case {
            name: "server stopped after a failed placement",
            alloc: {
                let mut a = A::of(&job, 0)
                    .failed_at(fail)
                    .desired(desired_status::STOP)
                    .rescheduled(&[(fail - 2 * HOUR, 5 * SECOND)])
                    .0;
                if let Some(t) = a.reschedule_tracker.as_mut() {
                    t.last_reschedule = "no placement".into();
                }
                a
            },
            policy: limited.clone(),
            want: Some(fail + 5 * SECOND),
        },
        Case {
            name: "attempts used up within the interval",
            alloc: A::of(&job, 0)
                .failed_at(fail)
                .rescheduled(&[(fail - 30 * MINUTE, 5 * SECOND), (fail - 10 * MINUTE, 5 * SECOND)])
                .0,
            policy: limited.clone(),
            want: None,
        },
        Case {
            name: "one attempt left within the interval",
            alloc: A::of(&job, 0)
                .failed_at(fail)
                .rescheduled(&[(fail - 2 * HOUR, 5 * SECOND), (fail - 10 * MINUTE, 5 * SECOND)])
                .0,
            policy: limited.clone(),
            want: Some(fail + 5 * SECOND),
        },
        Case {
            name: "attempts outside the interval do not count",
            alloc: A::of(&job, 0)
                .failed_at(fail)
                .rescheduled(&[(fail - 3 * HOUR, 5 * SECOND), (fail - 2 * HOUR, 5 * SECOND)])
                .0,
            policy: limited.clone(),
            want: Some(fail + 5 * SECOND),
        },
        Case {
            name: "delay not shorter than the interval",
            alloc: A::of(&job, 0)
                .failed_at(fail)
                .rescheduled(&[(fail - 3 * HOUR, 5 * SECOND)])
                .0,
            policy: policy(2, 5 * SECOND, 5 * SECOND, "constant", 0, false),
            want: None,
        },
        Case {
            name: "unlimited ignores attempts",
            alloc: A::of(&job, 0)
                .failed_at(fail)
                .rescheduled(&[(fail - 3 * MINUTE, 5 * SECOND); 10])
                .0,
            policy: policy(0, 0, 5 * SECOND, "constant", 0, true),
            want: Some(fail + 5 * SECOND),
        },
        Case {
            name: "batch marked for reschedule while running",
            alloc: {
                let mut a = A::of(&batch, 0).modified(fail).0;
                a.desired_transition.reschedule = Some(true);
                a
            },
            policy: limited.clone(),
            want: Some(fail + 5 * SECOND),
        },
    ];
    for c in cases {
        assert_eq!(
            next_reschedule_time(&c.alloc, &c.policy, NOW),
            c.want,
            "{}",
            c.name
        );
    }
}

#[test]
fn failed_alloc_is_rescheduled_now_when_its_delay_has_passed() {
    let job = Arc::new(service_job(3));
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).failed_at(NOW - MINUTE).arc(),
        A::of(&job, 2).arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert_eq!(stops(&r), vec![stop("cache1", ALLOC_RESCHEDULED, None)]);
    assert_eq!(placed(&r), vec![name(1)]);
    let p = &r.place[0];
    assert!(p.reschedule && !p.lost);
    assert_eq!(p.previous_alloc.as_ref().map(|a| a.id.as_str()), Some("cache1"));
    let d = du(&r);
    assert_eq!(
        (d.place, d.stop, d.reschedule_now, d.reschedule_later, d.ignore),
        (1, 1, 1, 0, 2)
    );
    assert!(r.desired_followup_evals.is_empty());
}

#[test]
fn failed_alloc_is_rescheduled_later_with_a_followup_eval() {
    let job = Arc::new(service_job(2));
    // Service default: 30 s exponential; failed 10 s ago → due in 20 s.
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1).failed_at(NOW - 10 * SECOND).arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert!(r.place.is_empty() && r.stop.is_empty());
    let evals = &r.desired_followup_evals[GROUP];
    assert_eq!(evals.len(), 1);
    let e = &evals[0];
    assert_eq!(e.triggered_by, trigger::ALLOC_RESCHEDULE);
    assert_eq!(e.wait_until, Some(Timestamp(NOW + 20 * SECOND)));
    assert_eq!(
        (e.job_id.as_str(), e.eval_type.as_str(), e.status.as_str()),
        (JOB, job_type::SERVICE, "pending")
    );
    assert_eq!((e.previous_eval.as_str(), e.priority), ("eval-1", 50));
    assert_eq!(r.attribute_updates["cache1"].followup_eval_id, e.id);
    let d = du(&r);
    assert_eq!((d.reschedule_later, d.reschedule_now, d.place), (1, 0, 0));
}

#[test]
fn followup_eval_reschedules_its_allocs_now() {
    let job = Arc::new(service_job(1));
    let allocs = vec![
        A::of(&job, 0)
            .failed_at(NOW - 10 * SECOND)
            .followup("eval-f")
            .arc(),
    ];
    let r = Run::new(&job).allocs(allocs.clone()).eval("eval-f").go();
    assert_eq!(placed(&r), vec![name(0)]);
    assert_eq!(stops(&r), vec![stop("cache0", ALLOC_RESCHEDULED, None)]);

    // Another evaluation in the meantime leaves it alone: the follow-up exists.
    let r = Run::new(&job).allocs(allocs).eval("eval-other").go();
    assert!(r.place.is_empty() && r.stop.is_empty() && r.desired_followup_evals.is_empty());
}

#[test]
fn followup_evals_are_batched_in_five_second_windows() {
    let job = Arc::new(with_policy(
        service_job(4),
        policy(0, 0, 30 * SECOND, "constant", 0, true),
    ));
    // Due at +10 s, +12 s, +16 s and +30 s.
    let allocs = vec![
        A::of(&job, 0).failed_at(NOW - 20 * SECOND).arc(),
        A::of(&job, 1).failed_at(NOW - 18 * SECOND).arc(),
        A::of(&job, 2).failed_at(NOW - 14 * SECOND).arc(),
        A::of(&job, 3).failed_at(NOW).arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    let evals = &r.desired_followup_evals[GROUP];
    let waits: Vec<_> = evals.iter().map(|e| e.wait_until).collect();
    assert_eq!(
        waits,
        vec![
            Some(Timestamp(NOW + 10 * SECOND)),
            Some(Timestamp(NOW + 16 * SECOND)),
            Some(Timestamp(NOW + 30 * SECOND))
        ]
    );
    let f = |id: &str| r.attribute_updates[id].followup_eval_id.clone();
    assert_eq!(
        (f("cache0"), f("cache1"), f("cache2"), f("cache3")),
        (
            evals[0].id.clone(),
            evals[0].id.clone(),
            evals[1].id.clone(),
            evals[2].id.clone()
        )
    );
    assert_eq!(du(&r).reschedule_later, 4);
    assert!(r.place.is_empty());
}

#[test]
fn exhausted_reschedule_attempts_leave_the_failed_alloc_in_place() {
    let job = Arc::new(with_policy(
        service_job(2),
        policy(2, HOUR, 5 * SECOND, "constant", 0, false),
    ));
    let fail = NOW - MINUTE;
    let allocs = vec![
        A::of(&job, 0).arc(),
        A::of(&job, 1)
            .failed_at(fail)
            .rescheduled(&[(fail - 30 * MINUTE, 5 * SECOND), (fail - 10 * MINUTE, 5 * SECOND)])
            .arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert!(r.place.is_empty() && r.stop.is_empty() && r.desired_followup_evals.is_empty());
    assert_eq!(du(&r), counts(0, 0, 2));
}

#[test]
fn attempts_outside_the_interval_allow_a_reschedule() {
    let job = Arc::new(with_policy(
        service_job(1),
        policy(2, HOUR, 5 * SECOND, "constant", 0, false),
    ));
    let fail = NOW - MINUTE;
    let allocs = vec![
        A::of(&job, 0)
            .failed_at(fail)
            .rescheduled(&[(fail - 3 * HOUR, 5 * SECOND), (fail - 2 * HOUR, 5 * SECOND)])
            .arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert_eq!(placed(&r), vec![name(0)]);
    assert!(r.place[0].reschedule);
}

#[test]
fn failed_alloc_of_the_active_deployment_waits_for_the_watcher() {
    let job = Arc::new(service_job(1));
    let d = deployment("d1", &job, RUNNING, dstate(1, 0, false, &[]));
    let failed = A::of(&job, 0)
        .failed_at(NOW - MINUTE)
        .in_deployment("d1", Some(false));
    let r = Run::new(&job)
        .allocs(vec![failed.clone().arc()])
        .deployment(d.clone())
        .go();
    assert!(r.place.is_empty(), "not marked for reschedule yet");

    let mut marked = failed.0;
    marked.desired_transition.reschedule = Some(true);
    let r = Run::new(&job).allocs(vec![Arc::new(marked)]).deployment(d).go();
    assert_eq!(placed(&r), vec![name(0)]);
}

#[test]
fn terminal_alloc_with_next_allocation_is_skipped() {
    let job = Arc::new(service_job(1));
    let allocs = vec![
        A::of(&job, 0).failed_at(NOW - HOUR).next("cache0-b").arc(),
        A::of(&job, 0).id("cache0-b").prev("cache0").created(40).arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert!(r.place.is_empty() && r.stop.is_empty() && r.desired_followup_evals.is_empty());
    assert_eq!(du(&r), counts(0, 0, 1));
}

#[test]
fn complete_service_alloc_is_replaced() {
    let job = Arc::new(service_job(1));
    let r = Run::new(&job).allocs(vec![A::of(&job, 0).complete().arc()]).go();
    assert_eq!(placed(&r), vec![name(0)]);
    assert!(r.stop.is_empty());
}

#[test]
fn force_reschedule_ignores_the_policy() {
    let job = Arc::new(with_policy(
        service_job(1),
        policy(1, HOUR, 5 * SECOND, "constant", 0, false),
    ));
    let fail = NOW - MINUTE;
    let mut a = A::of(&job, 0)
        .failed_at(fail)
        .rescheduled(&[(fail - MINUTE, 5 * SECOND)])
        .0;
    let r = Run::new(&job).allocs(vec![Arc::new(a.clone())]).go();
    assert!(r.place.is_empty(), "attempts used up");
    a.desired_transition.force_reschedule = Some(true);
    let r = Run::new(&job).allocs(vec![Arc::new(a)]).go();
    assert_eq!(placed(&r), vec![name(0)]);
    assert!(r.place[0].reschedule);
}

// ---------------------------------------------------------------------------------------------
// Batch

#[test]
fn batch_complete_allocs_count_and_are_never_replaced() {
    let job = Arc::new(batch_job(3));
    let allocs = vec![
        A::of(&job, 0).complete().arc(),
        A::of(&job, 1).complete().arc(),
        A::of(&job, 2).arc(),
    ];
    let r = Run::new(&job).allocs(allocs).go();
    assert!(r.place.is_empty() && r.stop.is_empty());
    assert_eq!(du(&r), counts(0, 0, 3));
    assert!(r.deployment.is_none());
}

#[test]
fn batch_complete_alloc_of_an_older_version_reruns() {
    let old = Arc::new(batch_job(1));
    let job = Arc::new(next_version(&old, Some("v2")));
    let r = Run::new(&job).allocs(vec![A::of(&old, 0).complete().arc()]).go();
    assert_eq!(placed(&r), vec![name(0)]);
    assert!(r.stop.is_empty() && r.destructive_update.is_empty());
}

#[test]
fn batch_failed_alloc_follows_the_batch_policy() {
    // Batch default: 1 attempt per 24 h, 5 s constant.
    let job = Arc::new(batch_job(1));
    let r = Run::new(&job)
        .allocs(vec![A::of(&job, 0).failed_at(NOW - 10 * SECOND).arc()])
        .go();
    assert_eq!(placed(&r), vec![name(0)]);
    assert!(r.place[0].reschedule);
    assert_eq!(stops(&r), vec![stop("cache0", ALLOC_RESCHEDULED, None)]);

    let r = Run::new(&job)
        .allocs(vec![A::of(&job, 0).failed_at(NOW).arc()])
        .go();
    assert!(r.place.is_empty());
    assert_eq!(
        r.desired_followup_evals[GROUP][0].wait_until,
        Some(Timestamp(NOW + 5 * SECOND))
    );

    let used = A::of(&job, 0)
        .failed_at(NOW - 10 * SECOND)
        .rescheduled(&[(NOW - HOUR, 5 * SECOND)])
        .arc();
    let r = Run::new(&job).allocs(vec![used]).go();
    assert!(r.place.is_empty() && r.stop.is_empty() && r.desired_followup_evals.is_empty());
}

#[test]
fn batch_never_creates_deployments() {
    let job = Arc::new(with_update(batch_job(2), 1, 0));
    let r = Run::new(&job).go();
    assert_eq!(placed(&r), vec![name(0), name(1)]);
    assert!(r.deployment.is_none());
}

// ---------------------------------------------------------------------------------------------
// Updates, budgets, deployments, canaries

#[test]
fn fresh_service_job_creates_a_deployment() {
    let job = Arc::new(service_job(3));
    let r = Run::new(&job).go();
    let d = r.deployment.as_ref().expect("a deployment");
    assert_eq!(
        (d.id.as_str(), d.job_id.as_str(), d.status.as_str()),
        ("id-1", JOB, RUNNING)
    );
    assert_eq!((d.job_version, d.job_create_index, d.eval_priority), (0, 10, 50));
    let s = &d.task_groups[GROUP];
    assert_eq!(
        (s.desired_total, s.desired_canaries, s.progress_deadline),
        (3, 0, 600 * SECOND)
    );
}

#[test]
fn inplace_updates_do_not_stop_anything() {
    let old = Arc::new(service_job(3));
    let job = Arc::new(next_version(&old, None));
    let allocs = (0..3).map(|i| A::of(&old, i).arc()).collect();
    let r = Run::new(&job).allocs(allocs).go();
    assert_eq!(r.inplace_update.len(), 3);
    assert!(
        r.inplace_update
            .iter()
            .all(|a| a.job.as_ref().is_some_and(|j| j.version == 1))
    );
    assert!(r.stop.is_empty() && r.place.is_empty() && r.destructive_update.is_empty());
    assert_eq!(du(&r).in_place_update, 3);
    assert_eq!(
        r.deployment.as_ref().map(|d| d.task_groups[GROUP].desired_total),
        Some(3)
    );
}

#[test]
fn destructive_updates_respect_max_parallel() {
    for (max_parallel, want) in [
        (1, vec![0]),
        (2, vec![0, 1]),
        (3, vec![0, 1, 2]),
        (5, vec![0, 1, 2]),
    ] {
        let old = Arc::new(with_update(service_job(3), max_parallel, 0));
        let job = Arc::new(next_version(&old, Some("v2")));
        let allocs = (0..3).map(|i| A::of(&old, i).arc()).collect();
        let r = Run::new(&job).allocs(allocs).go();
        let got: Vec<String> = r.destructive_update.iter().map(|p| p.name.clone()).collect();
        let want_names: Vec<String> = want.iter().map(|&i| name(i)).collect();
        assert_eq!(got, want_names, "max_parallel {max_parallel}");
        assert!(
            r.destructive_update
                .iter()
                .all(|p| p.previous_alloc.as_ref().is_some_and(|a| a.name == p.name))
        );
        assert!(
            r.stop.is_empty() && r.place.is_empty(),
            "destructive updates imply their stops"
        );
        let d = du(&r);
        assert_eq!(
            (d.destructive_update, d.ignore),
            (want.len() as u64, 3 - want.len() as u64)
        );
        assert_eq!(
            r.deployment.as_ref().map(|d| d.task_groups[GROUP].desired_total),
            Some(3)
        );
    }
}

#[test]
fn destructive_budget_counts_unhealthy_and_pending_allocs_of_the_deployment() {
    struct Case {
        name: &'static str,
        health: Option<bool>,
        status: &'static str,
        want: usize,
    }
    let cases = [
        Case {
            name: "new alloc not yet healthy",
            health: None,
            status: RUNNING,
            want: 1,
        },
        Case {
            name: "new alloc healthy",
            health: Some(true),
            status: RUNNING,
            want: 2,
        },
        Case {
            name: "new alloc unhealthy",
            health: Some(false),
            status: RUNNING,
            want: 0,
        },
        Case {
            name: "paused deployment",
            health: Some(true),
            status: PAUSED,
            want: 0,
        },
        Case {
            name: "failed deployment",
            health: Some(true),
            status: FAILED,
            want: 0,
        },
    ];
    for c in cases {
        let old = Arc::new(with_update(service_job(3), 2, 0));
        let job = Arc::new(next_version(&old, Some("v2")));
        let d = deployment("d1", &job, c.status, dstate(3, 0, false, &[]));
        let allocs = vec![
            A::of(&job, 0).in_deployment("d1", c.health).arc(),
            A::of(&old, 1).arc(),
            A::of(&old, 2).arc(),
        ];
        let r = Run::new(&job).allocs(allocs).deployment(d).go();
        assert_eq!(r.destructive_update.len(), c.want, "{}", c.name);
        assert!(
            r.deployment.is_none() && r.deployment_updates.is_empty(),
            "{}",
            c.name
        );
    }
}

#[test]
fn lost_replacement_in_a_paused_deployment_still_happens() {
    let old = Arc::new(service_job(2));
    let job = Arc::new(next_version(&old, Some("v2")));
    let d = deployment("d1", &job, PAUSED, dstate(2, 0, false, &[]));
    let allocs = vec![
        A::of(&old, 0).arc(),
        A::of(&job, 1).node("n2").in_deployment("d1", Some(true)).arc(),
    ];
    let r = Run::new(&job)
        .allocs(allocs)
        .deployment(d)
        .tainted(tainted(&[with_status("n2", node_status::DOWN)], &[]))
        .go();
    assert_eq!(placed(&r), vec![name(1)]);
    assert!(r.place[0].lost);
    assert!(r.destructive_update.is_empty());
}

#[test]
fn canaries_are_placed_before_any_destructive_update() {
    let old = Arc::new(with_update(service_job(3), 1, 1));
    let job = Arc::new(next_version(&old, Some("v2")));
    let allocs = (0..3).map(|i| A::of(&old, i).arc()).collect();
    let r = Run::new(&job).allocs(allocs).go();
    assert_eq!(placed(&r), vec![name(0)]);
    assert!(r.place[0].canary && r.place[0].previous_alloc.is_none());
    assert!(r.destructive_update.is_empty() && r.stop.is_empty());
    let d = du(&r);
    assert_eq!((d.canary, d.destructive_update, d.ignore), (1, 0, 3));
    let dep = r.deployment.as_ref().expect("a deployment for the canaries");
    let s = &dep.task_groups[GROUP];
    assert_eq!((s.desired_total, s.desired_canaries, s.promoted), (3, 1, false));
    assert_eq!(
        dep.status_description,
        "Deployment is running but requires manual promotion"
    );
}

#[test]
fn unpromoted_canaries_hold_back_destructive_updates() {
    let old = Arc::new(with_update(service_job(3), 1, 1));
    let job = Arc::new(next_version(&old, Some("v2")));
    let d = deployment("d1", &job, RUNNING, dstate(3, 1, false, &["c0"]));
    let mut allocs: Vec<Arc<Allocation>> = (0..3).map(|i| A::of(&old, i).arc()).collect();
    allocs.push(A::of(&job, 0).id("c0").canary("d1", Some(true)).created(40).arc());
    let r = Run::new(&job).allocs(allocs).deployment(d).go();
    assert!(
        r.place.is_empty() && r.stop.is_empty() && r.destructive_update.is_empty(),
        "{r:?}"
    );
    assert!(r.deployment_updates.is_empty(), "not complete before promotion");
    let d = du(&r);
    assert_eq!((d.canary, d.ignore), (0, 4));
}

#[test]
fn promotion_replaces_the_alloc_sharing_the_canary_name_then_rolls() {
    let old = Arc::new(with_update(service_job(3), 1, 1));
    let job = Arc::new(next_version(&old, Some("v2")));
    let d = deployment("d1", &job, RUNNING, dstate(3, 1, true, &["c0"]));
    let mut allocs: Vec<Arc<Allocation>> = (0..3).map(|i| A::of(&old, i).arc()).collect();
    allocs.push(A::of(&job, 0).id("c0").canary("d1", Some(true)).created(40).arc());
    let r = Run::new(&job).allocs(allocs).deployment(d).go();
    assert_eq!(stops(&r), vec![stop("cache0", ALLOC_NOT_NEEDED, None)]);
    let got: Vec<String> = r.destructive_update.iter().map(|p| p.name.clone()).collect();
    assert_eq!(
        got,
        vec![name(1)],
        "max_parallel 1, the healthy canary frees the budget"
    );
    assert!(r.place.is_empty());
    let d = du(&r);
    assert_eq!((d.stop, d.destructive_update, d.ignore), (1, 1, 2));
}

#[test]
fn failed_deployment_stops_its_unpromoted_canaries() {
    let old = Arc::new(with_update(service_job(2), 1, 1));
    let job = Arc::new(next_version(&old, Some("v2")));
    let d = deployment("d1", &job, FAILED, dstate(2, 1, false, &["c0"]));
    let allocs = vec![
        A::of(&old, 0).arc(),
        A::of(&old, 1).arc(),
        A::of(&job, 0)
            .id("c0")
            .canary("d1", Some(false))
            .created(40)
            .arc(),
    ];
    let r = Run::new(&job).allocs(allocs).deployment(d).go();
    assert_eq!(stops(&r), vec![stop("c0", ALLOC_NOT_NEEDED, None)]);
    assert!(r.place.is_empty() && r.destructive_update.is_empty());
}

#[test]
fn canaries_of_an_older_deployment_are_stopped() {
    let v1 = Arc::new(with_update(service_job(1), 1, 1));
    let job = Arc::new(next_version(&v1, Some("v3")));
    let d = deployment("d1", &v1, RUNNING, dstate(1, 1, false, &["c0"]));
    let allocs = vec![
        A::of(&v1, 0).arc(),
        A::of(&v1, 0).id("c0").canary("d1", None).created(40).arc(),
    ];
    let r = Run::new(&job).allocs(allocs).deployment(d).go();
    assert_eq!(stops(&r), vec![stop("c0", ALLOC_NOT_NEEDED, None)]);
    assert_eq!(r.deployment_updates.len(), 1);
    assert_eq!(r.deployment_updates[0].status, CANCELLED);
    assert_eq!(
        r.deployment_updates[0].status_description,
        "Cancelled due to newer version of job"
    );
    assert_eq!(placed(&r), vec![name(0)], "a canary of the newest version");
    assert!(r.place[0].canary);
    assert_eq!(r.deployment.as_ref().map(|d| d.job_version), Some(1));
}

#[test]
fn paused_or_initializing_deployment_starts_no_new_work() {
    for (status, works) in [
        (RUNNING, true),
        (PAUSED, false),
        ("initializing", false),
        ("pending", false),
    ] {
        let old = Arc::new(with_update(service_job(2), 1, 0));
        let job = Arc::new(next_version(&with_update(service_job(3), 1, 0), Some("v2")));
        let d = deployment("d1", &job, status, dstate(3, 0, false, &[]));
        let allocs = vec![A::of(&old, 0).arc(), A::of(&old, 1).arc()];
        let r = Run::new(&job).allocs(allocs).deployment(d).go();
        assert_eq!(placed(&r), if works { vec![name(2)] } else { vec![] }, "{status}");
        // The placement uses up max_parallel 1, so no destructive update either way.
        assert!(r.destructive_update.is_empty(), "{status}");
        assert!(r.deployment_updates.is_empty(), "{status}");
    }
}

#[test]
fn paused_deployment_places_no_canaries() {
    let old = Arc::new(with_update(service_job(2), 1, 1));
    let job = Arc::new(next_version(&old, Some("v2")));
    let d = deployment("d1", &job, PAUSED, dstate(2, 1, false, &[]));
    let r = Run::new(&job)
        .allocs(vec![A::of(&old, 0).arc(), A::of(&old, 1).arc()])
        .deployment(d.clone())
        .go();
    assert!(r.place.is_empty());
    let mut running = d;
    running.status = RUNNING.into();
    let r = Run::new(&job)
        .allocs(vec![A::of(&old, 0).arc(), A::of(&old, 1).arc()])
        .deployment(running)
        .go();
    assert_eq!(r.place.iter().filter(|p| p.canary).count(), 1);
}

#[test]
fn lost_replacement_while_canarying_uses_the_stable_version() {
    let old = Arc::new(with_update(service_job(3), 1, 1));
    let job = Arc::new(next_version(&old, Some("v2")));
    let d = deployment("d1", &job, RUNNING, dstate(3, 1, false, &["c0"]));
    let allocs = vec![
        A::of(&old, 0).arc(),
        A::of(&old, 1).node("n2").arc(),
        A::of(&old, 2).arc(),
        A::of(&job, 0).id("c0").canary("d1", None).created(40).arc(),
    ];
    let r = Run::new(&job)
        .allocs(allocs)
        .deployment(d)
        .tainted(tainted(&[with_status("n2", node_status::DOWN)], &[]))
        .go();
    assert_eq!(
        stops(&r),
        vec![stop("cache1", ALLOC_LOST, Some(client_status::LOST))]
    );
    assert_eq!(placed(&r), vec![name(1)]);
    let p = &r.place[0];
    assert!(p.lost && p.downgrade_non_canary && !p.canary);
    assert_eq!(p.min_job_version, 0);
    assert!(r.destructive_update.is_empty());
}

#[test]
fn deployment_is_successful_once_every_alloc_is_healthy() {
    let job = Arc::new(service_job(3));
    for (healthy_count, success) in [(3, true), (2, false)] {
        let mut state = dstate(3, 0, false, &[]);
        state.healthy_allocs = healthy_count;
        let d = deployment("d1", &job, RUNNING, state);
        let allocs = (0..3)
            .map(|i| {
                A::of(&job, i)
                    .in_deployment(
                        "d1",
                        if i < healthy_count as u64 {
                            Some(true)
                        } else {
                            None
                        },
                    )
                    .arc()
            })
            .collect();
        let r = Run::new(&job).allocs(allocs).deployment(d).go();
        assert!(r.place.is_empty() && r.stop.is_empty());
        if success {
            assert_eq!(r.deployment_updates.len(), 1);
            assert_eq!(r.deployment_updates[0].status, SUCCESSFUL);
            assert_eq!(
                r.deployment_updates[0].status_description,
                "Deployment completed successfully"
            );
        } else {
            assert!(r.deployment_updates.is_empty(), "{healthy_count} healthy of 3");
        }
    }
}

#[test]
fn healthy_allocs_are_counted_even_without_deployment_bookkeeping() {
    let job = Arc::new(service_job(2));
    let d = deployment("d1", &job, RUNNING, dstate(2, 0, false, &[]));
    let allocs = (0..2)
        .map(|i| A::of(&job, i).in_deployment("d1", Some(true)).arc())
        .collect();
    let r = Run::new(&job).allocs(allocs).deployment(d).go();
    assert_eq!(
        r.deployment_updates.first().map(|u| u.status.as_str()),
        Some(SUCCESSFUL)
    );
}

#[test]
fn successful_deployment_of_this_version_is_left_alone() {
    let job = Arc::new(service_job(2));
    let d = deployment("d1", &job, SUCCESSFUL, dstate(2, 0, false, &[]));
    let allocs = vec![A::of(&job, 0).arc(), A::of(&job, 1).node("n2").arc()];
    let r = Run::new(&job)
        .allocs(allocs)
        .deployment(d)
        .tainted(tainted(&[with_status("n2", node_status::DOWN)], &[]))
        .go();
    assert_eq!(placed(&r), vec![name(1)]);
    assert!(r.deployment.is_none() && r.deployment_updates.is_empty());
}

#[test]
fn group_without_update_block_gets_no_deployment() {
    let job = Arc::new(with_group(service_job(2), |g| g.update = None));
    let r = Run::new(&job).go();
    assert_eq!(placed(&r), vec![name(0), name(1)]);
    assert!(r.deployment.is_none());
}

// ---------------------------------------------------------------------------------------------
// Helpers and properties

#[test]
fn tainted_nodes_lists_down_draining_disconnected_and_missing_nodes() {
    let job = Arc::new(service_job(5));
    let allocs: Vec<Arc<Allocation>> = ["n1", "n2", "n3", "n4", "n5", "n2"]
        .iter()
        .enumerate()
        .map(|(i, n)| A::of(&job, i as u64).node(n).arc())
        .collect();
    let nodes = [
        ready("n1"),
        with_status("n2", node_status::DOWN),
        draining("n3"),
        with_status("n4", node_status::DISCONNECTED),
    ];
    let lookup = |id: &str| nodes.iter().find(|n| n.id == id).cloned();
    let t = tainted_nodes(&allocs, &lookup);
    let got: Vec<(&str, Option<&str>)> = t
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_ref().map(|n| n.status.as_str())))
        .collect();
    assert_eq!(
        got,
        vec![
            ("n2", Some(node_status::DOWN)),
            ("n3", Some(node_status::READY)),
            ("n4", Some(node_status::DISCONNECTED)),
            ("n5", None)
        ]
    );
}

#[test]
fn same_input_same_output() {
    let old = Arc::new(with_update(service_job(4), 2, 0));
    let job = Arc::new(next_version(&old, Some("v2")));
    let allocs: Vec<Arc<Allocation>> = vec![
        A::of(&old, 0).arc(),
        A::of(&old, 1).failed_at(NOW - 5 * SECOND).arc(),
        A::of(&old, 2).node("n2").arc(),
        A::of(&old, 3).node("n3").migrate().arc(),
    ];
    let t = || tainted(&[with_status("n2", node_status::DOWN), draining("n3")], &[]);
    let a = Run::new(&job).allocs(allocs.clone()).tainted(t()).go();
    let b = Run::new(&job).allocs(allocs).tainted(t()).go();
    assert_eq!(a, b);
}

#[test]
fn annotations_exist_for_every_group() {
    let mut j = service_job(1);
    j.task_groups.push(group("other", 0));
    let job = Arc::new(j);
    let r = Run::new(&job).go();
    assert_eq!(
        r.desired_tg_updates.keys().cloned().collect::<Vec<_>>(),
        vec!["cache".to_string(), "other".to_string()]
    );
    assert_eq!(r.desired_tg_updates["other"], DesiredUpdates::default());
}

mod props {
    //! Properties over random allocation sets: no panics, consistent output, and convergence —
    //! applying a plan and reconciling again changes nothing and leaves exactly `count` live
    //! allocations.

    use proptest::prelude::*;

    use super::*;

    /// (index, client status, desired stop?, node: 0 = ready, 1 = down, 2 = missing, 3 = draining+migrate)
    type Spec = (u64, u8, bool, u8);

    fn build(job: &Arc<Job>, specs: &[Spec]) -> Vec<Arc<Allocation>> {
        specs
            .iter()
            .enumerate()
            .map(|(i, &(index, status, stopped, node))| {
                let mut a = A::of(job, index).id(&format!("a{i}")).created(i as u64);
                a = a.client(match status {
                    0 => client_status::RUNNING,
                    1 => client_status::PENDING,
                    _ => client_status::COMPLETE,
                });
                if stopped {
                    a = a.desired(desired_status::STOP);
                }
                a = match node {
                    1 => a.node("down"),
                    2 => a.node("gone"),
                    3 => a.node("drain").migrate(),
                    _ => a,
                };
                a.arc()
            })
            .collect()
    }

    fn taint() -> BTreeMap<String, Option<Arc<drover_types::Node>>> {
        tainted(
            &[with_status("down", node_status::DOWN), draining("drain")],
            &["gone"],
        )
    }

    /// Applies a result the way the plan applier would: stops become desired-stop (lost ones
    /// client-lost), placements become running allocations on a ready node.
    fn apply(
        job: &Arc<Job>,
        allocs: &[Arc<Allocation>],
        r: &super::super::ReconcileResults,
    ) -> Vec<Arc<Allocation>> {
        let mut out: Vec<Allocation> = allocs.iter().map(|a| (**a).clone()).collect();
        for s in &r.stop {
            if let Some(a) = out.iter_mut().find(|a| a.id == s.alloc.id) {
                a.desired_status = desired_status::STOP.into();
                if let Some(c) = &s.client_status {
                    a.client_status = c.clone();
                }
            }
        }
        for (i, p) in r.place.iter().enumerate() {
            let mut a = A::of(job, 0).id(&format!("new{i}")).created(1000 + i as u64).0;
            a.name = p.name.clone();
            out.push(a);
        }
        out.into_iter().map(Arc::new).collect()
    }

    fn live(allocs: &[Arc<Allocation>]) -> usize {
        allocs.iter().filter(|a| !a.terminal()).count()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn service_converges(count in 0i64..6, specs in prop::collection::vec((0u64..8, 0u8..3, any::<bool>(), 0u8..4), 0..10)) {
            let job = Arc::new(with_group(service_job(count), |g| g.update = None));
            let allocs = build(&job, &specs);
            let r = Run::new(&job).allocs(allocs.clone()).tainted(taint()).go();

            let mut stopped: Vec<&str> = r.stop.iter().map(|s| s.alloc.id.as_str()).collect();
            stopped.sort_unstable();
            let n = stopped.len();
            stopped.dedup();
            prop_assert_eq!(n, stopped.len(), "an allocation is stopped at most once");
            prop_assert!(r.stop.iter().all(|s| !s.alloc.terminal()), "only live allocations are stopped");
            prop_assert!(r.place.iter().filter(|p| !p.canary).count() <= count as usize + r.stop.len());

            let after = apply(&job, &allocs, &r);
            prop_assert_eq!(live(&after), count as usize);
            let again = Run::new(&job).allocs(after).tainted(taint()).go();
            prop_assert!(again.place.is_empty() && again.stop.is_empty(), "second pass: {:?}", again);
        }

        #[test]
        fn stopped_job_only_stops(specs in prop::collection::vec((0u64..8, 0u8..3, any::<bool>(), 0u8..4), 0..10)) {
            let mut j = service_job(3);
            j.stop = true;
            let job = Arc::new(j);
            let allocs = build(&job, &specs);
            let r = Run::new(&job).allocs(allocs.clone()).tainted(taint()).go();
            prop_assert!(r.place.is_empty() && r.destructive_update.is_empty() && r.deployment.is_none());
            prop_assert_eq!(r.stop.len(), live(&allocs));
        }

        #[test]
        fn arbitrary_statuses_never_panic(
            count in 0i64..4,
            batch in any::<bool>(),
            specs in prop::collection::vec((0u64..5, 0u8..6, 0u8..3, 0u8..5, 0u8..4, any::<bool>()), 0..8),
        ) {
            let base = if batch { batch_job(count) } else { service_job(count) };
            let old = Arc::new(with_disconnect(base, MINUTE, true, Some(MINUTE)));
            let job = Arc::new(next_version(&old, Some("v2")));
            let allocs: Vec<Arc<Allocation>> = specs.iter().enumerate().map(|(i, &(index, status, desired, node, version, flag))| {
                let j = if version % 2 == 0 { &old } else { &job };
                let mut a = A::of(j, index).id(&format!("a{i}")).created(i as u64);
                a = match status {
                    0 => a,
                    1 => a.client(client_status::PENDING),
                    2 => a.complete(),
                    3 => a.failed_at(NOW - (i as i64) * 7 * SECOND),
                    4 => a.client(client_status::LOST),
                    _ => a.client(client_status::UNKNOWN).state(client_status::UNKNOWN, NOW - (i as i64) * 20 * SECOND),
                };
                a = match desired { 0 => a, 1 => a.desired(desired_status::STOP), _ => a.desired(desired_status::EVICT) };
                a = match node { 0 => a, 1 => a.node("down"), 2 => a.node("gone"), 3 => a.node("drain"), _ => a.node("disc") };
                if flag { a = a.migrate().next(&format!("a{}", i + 1)).state(client_status::UNKNOWN, NOW - MINUTE); }
                if version == 3 { a = a.canary("d1", Some(flag)); }
                a.arc()
            }).collect();
            let t = tainted(&[with_status("down", node_status::DOWN), draining("drain"), with_status("disc", node_status::DISCONNECTED)], &["gone"]);
            let mut run = Run::new(&job).allocs(allocs).tainted(t);
            if !batch {
                run = run.deployment(deployment("d1", &job, RUNNING, dstate(count, 1, false, &["a0"])));
            }
            let r = run.go();
            let mut ids: Vec<&str> = r.stop.iter().map(|s| s.alloc.id.as_str())
                .chain(r.destructive_update.iter().filter_map(|p| p.previous_alloc.as_ref().map(|a| a.id.as_str())))
                .chain(r.inplace_update.iter().map(|a| a.id.as_str()))
                .collect();
            ids.sort_unstable();
            let n = ids.len();
            ids.dedup();
            prop_assert_eq!(n, ids.len(), "each allocation gets at most one decision: {:?}", r);
            prop_assert!(r.place.iter().filter(|p| !p.canary && p.previous_alloc.is_none()).count() <= count as usize);
        }
    }
}
