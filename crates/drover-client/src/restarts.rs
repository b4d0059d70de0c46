//! The restart policy, decided: after every exit or failed start of a task, should the client
//! start it again, and after how long?
//!
//! ```text
//!  exit / start error ──▶ RestartTracker::decide(now) ──▶ Decision::Restart { delay, reason }
//!                                                       └▶ Decision::Stop { event, reason, fails }
//! ```
//!
//! Pure: the caller passes `now` and a jitter in `[0, 1)`; nothing here reads a clock.
//!
//! Rules (Nomad's, in this order): a killed task is not restarted; an explicit restart request
//! restarts at once; `attempts = 0` never restarts; the count resets when the interval passed
//! since the window opened; an unrecoverable start error fails the task; a successful exit of a
//! batch task (or of a non-sidecar prestart/poststart task) ends it without failure; past the
//! attempts, mode `fail` fails the task and mode `delay` waits out the rest of the interval;
//! otherwise restart after `delay + jitter × delay/4`.

use drover_types::job::RestartPolicy;
use drover_types::time::Nanos;

/// What happened to the task last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and exited.
    Exited {
        /// Exit code 0, no signal.
        success: bool,
    },
    /// It could not be started.
    StartFailed {
        /// Whether the error allows a retry.
        recoverable: bool,
    },
}

/// The decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start it again after `delay` (event `Restarting`).
    Restart {
        /// Wait this long first.
        delay: Nanos,
        /// Why (`Restart within policy`, `Exceeded allowed attempts, applying a delay`).
        reason: String,
    },
    /// Do not restart. `fails` marks the task (and so the allocation) failed.
    Stop {
        /// Event type: `Not Restarting`, `Terminated` or `Killed`.
        event: &'static str,
        /// Why.
        reason: String,
        /// Whether the task failed.
        fails: bool,
    },
}

/// Tracks restarts of one task under its policy.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: RestartPolicy,
    /// Whether a successful exit is restarted (service and system tasks; sidecars).
    restart_on_success: bool,
    window_start: Option<Nanos>,
    count: i64,
    killed: bool,
    restart_requested: bool,
}

impl RestartTracker {
    /// A tracker for a task of `job_type` with `policy`; `lifecycle` is the task's hook
    /// (`prestart`, `poststart`, `poststop`, or "" for a main task) and whether it is a sidecar.
    pub fn new(policy: RestartPolicy, job_type: &str, hook: &str, sidecar: bool) -> Self {
        let restart_on_success = match hook {
            "prestart" | "poststart" => sidecar,
            "poststop" => false,
            _ => !matches!(job_type, "batch" | "sysbatch"),
        };
        RestartTracker {
            policy,
            restart_on_success,
            window_start: None,
            count: 0,
            killed: false,
            restart_requested: false,
        }
    }

    /// The task is being killed on purpose: it will not be restarted.
    pub fn set_killed(&mut self) {
        self.killed = true;
    }

    /// A user asked for a restart (`alloc restart`): the next decision restarts at once and does
    /// not count as an attempt.
    pub fn request_restart(&mut self) {
        self.restart_requested = true;
    }

    /// Restarts counted in the current window.
    pub fn count(&self) -> i64 {
        self.count
    }

    /// Decides what follows `outcome` at `now`; `jitter` is a number in `[0, 1)`.
    pub fn decide(&mut self, outcome: &Outcome, now: Nanos, jitter: f64) -> Decision {
        if self.killed {
            return Decision::Stop {
                event: "Killed",
                reason: "Task successfully killed".into(),
                fails: false,
            };
        }
        if std::mem::take(&mut self.restart_requested) {
            return Decision::Restart {
                delay: 0,
                reason: "Restart requested".into(),
            };
        }
        let success = matches!(outcome, Outcome::Exited { success: true });
        let attempts = self.policy.attempts();
        if attempts == 0 {
            return if success && !self.restart_on_success {
                Decision::Stop {
                    event: "Terminated",
                    reason: "Restart unnecessary as task terminated successfully".into(),
                    fails: false,
                }
            } else {
                Decision::Stop {
                    event: "Not Restarting",
                    reason: "Policy allows no restarts".into(),
                    fails: true,
                }
            };
        }
        let interval = self.policy.interval();
        match self.window_start {
            Some(start) if now <= start.saturating_add(interval) => {}
            _ => {
                self.window_start = Some(now);
                self.count = 0;
            }
        }
        self.count += 1;
        if let Outcome::StartFailed { recoverable: false } = outcome {
            return Decision::Stop {
                event: "Not Restarting",
                reason: "Error was unrecoverable".into(),
                fails: true,
            };
        }
        if success && !self.restart_on_success {
            return Decision::Stop {
                event: "Terminated",
                reason: "Restart unnecessary as task terminated successfully".into(),
                fails: false,
            };
        }
        if self.count > attempts {
            if self.policy.mode() == "delay" {
                let end = self.window_start.unwrap_or(now).saturating_add(interval);
                return Decision::Restart {
                    delay: end.saturating_sub(now).max(0),
                    reason: "Exceeded allowed attempts, applying a delay".into(),
                };
            }
            return Decision::Stop {
                event: "Not Restarting",
                reason: format!(
                    "Exceeded allowed attempts {attempts} in interval {} and mode is \"fail\"",
                    drover_types::time::format_duration(interval)
                ),
                fails: true,
            };
        }
        let delay = self.policy.delay();
        let jitter = (delay as f64 / 4.0 * jitter.clamp(0.0, 0.999)) as Nanos;
        Decision::Restart {
            delay: delay + jitter,
            reason: "Restart within policy".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    fn policy(attempts: i64, interval: Nanos, delay: Nanos, mode: &str) -> RestartPolicy {
        RestartPolicy {
            attempts: Some(attempts),
            interval: Some(interval),
            delay: Some(delay),
            mode: Some(mode.into()),
            render_templates: None,
        }
    }
    const FAIL: Outcome = Outcome::Exited { success: false };
    const OK: Outcome = Outcome::Exited { success: true };

    #[test]
    fn fail_mode_restarts_attempts_times_then_fails() {
        let mut t = RestartTracker::new(policy(2, 60 * S, S, "fail"), "service", "", false);
        for i in 0..2 {
            match t.decide(&FAIL, i * S, 0.0) {
                Decision::Restart { delay, reason } => {
                    assert_eq!(delay, S);
                    assert_eq!(reason, "Restart within policy");
                }
                d => panic!("attempt {i}: {d:?}"),
            }
        }
        match t.decide(&FAIL, 3 * S, 0.0) {
            Decision::Stop { event, reason, fails } => {
                assert_eq!(event, "Not Restarting");
                assert!(fails);
                assert_eq!(
                    reason,
                    "Exceeded allowed attempts 2 in interval 1m0s and mode is \"fail\""
                );
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn the_count_resets_after_the_interval_and_jitter_stays_below_a_quarter() {
        let mut t = RestartTracker::new(policy(1, 10 * S, 4 * S, "fail"), "service", "", false);
        assert!(
            matches!(t.decide(&FAIL, 0, 0.99), Decision::Restart { delay, .. } if delay > 4 * S && delay < 5 * S)
        );
        assert!(matches!(t.decide(&FAIL, 11 * S, 0.0), Decision::Restart { .. }));
        assert!(matches!(
            t.decide(&FAIL, 12 * S, 0.0),
            Decision::Stop { fails: true, .. }
        ));
    }

    #[test]
    fn delay_mode_waits_out_the_interval() {
        let mut t = RestartTracker::new(policy(1, 10 * S, S, "delay"), "service", "", false);
        assert!(matches!(t.decide(&FAIL, 0, 0.0), Decision::Restart { delay, .. } if delay == S));
        match t.decide(&FAIL, 3 * S, 0.0) {
            Decision::Restart { delay, reason } => {
                assert_eq!(delay, 7 * S);
                assert_eq!(reason, "Exceeded allowed attempts, applying a delay");
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn batch_success_ends_service_success_restarts_and_sidecars_restart() {
        let mut batch = RestartTracker::new(policy(3, 60 * S, S, "fail"), "batch", "", false);
        assert!(matches!(
            batch.decide(&OK, 0, 0.0),
            Decision::Stop {
                event: "Terminated",
                fails: false,
                ..
            }
        ));
        let mut svc = RestartTracker::new(policy(3, 60 * S, S, "fail"), "service", "", false);
        assert!(matches!(svc.decide(&OK, 0, 0.0), Decision::Restart { .. }));
        let mut pre = RestartTracker::new(policy(3, 60 * S, S, "fail"), "service", "prestart", false);
        assert!(matches!(
            pre.decide(&OK, 0, 0.0),
            Decision::Stop {
                event: "Terminated",
                ..
            }
        ));
        let mut side = RestartTracker::new(policy(3, 60 * S, S, "fail"), "service", "prestart", true);
        assert!(matches!(side.decide(&OK, 0, 0.0), Decision::Restart { .. }));
    }

    #[test]
    fn unrecoverable_start_errors_kills_and_requests() {
        let mut t = RestartTracker::new(policy(3, 60 * S, S, "fail"), "service", "", false);
        match t.decide(&Outcome::StartFailed { recoverable: false }, 0, 0.0) {
            Decision::Stop { reason, fails, .. } => {
                assert_eq!(reason, "Error was unrecoverable");
                assert!(fails);
            }
            d => panic!("{d:?}"),
        }
        let mut t = RestartTracker::new(policy(3, 60 * S, S, "fail"), "service", "", false);
        assert!(matches!(
            t.decide(&Outcome::StartFailed { recoverable: true }, 0, 0.0),
            Decision::Restart { .. }
        ));
        t.request_restart();
        assert_eq!(
            t.decide(&FAIL, S, 0.0),
            Decision::Restart {
                delay: 0,
                reason: "Restart requested".into()
            }
        );
        t.set_killed();
        assert!(matches!(
            t.decide(&FAIL, 2 * S, 0.0),
            Decision::Stop {
                event: "Killed",
                fails: false,
                ..
            }
        ));
        let mut none = RestartTracker::new(policy(0, 60 * S, S, "fail"), "service", "", false);
        assert!(matches!(
            none.decide(&FAIL, 0, 0.0),
            Decision::Stop {
                event: "Not Restarting",
                fails: true,
                ..
            }
        ));
    }
}
