//! The conformance suite (`drover_drivers::conformance`) for every driver of this crate
//! (docker has its own file). Drivers whose prerequisites are missing (root, runc, java,
//! qemu) are skipped with a printed reason, or fail when `CI=true`.

use std::sync::Arc;

use drover_drivers::conformance::{Cases, Suite, config, prerequisite};
use drover_drivers::executor::ExecutorCommand;
use serde_json::json;

fn executor() -> ExecutorCommand {
    ExecutorCommand::new(env!("CARGO_BIN_EXE_drover-executor"), &[])
}

/// `sh -c <script>` for the executor-based drivers.
fn sh(script: &str) -> drover_drivers::conformance::Config {
    config(json!({"command": "/bin/sh", "args": ["-c", script]}))
}

/// The shell cases shared by raw_exec and exec.
fn shell_cases() -> Cases {
    Cases {
        print_line: sh("echo 'hello from drover'"),
        exit_3: sh("exit 3"),
        exit_3_later: sh("sleep 3; exit 3"),
        long_running: sh("echo ready; exec sleep 1000"),
        print_env: Some(sh("echo \"$DROVER_CONFORMANCE\"")),
        ignore_sigint: Some(sh("trap '' INT; echo ready; while true; do sleep 0.1; done")),
        signal: Some((
            sh("trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done"),
            "SIGUSR1".into(),
            "got-usr1".into(),
        )),
        missing_binary: Some((
            config(json!({"command": "no-such-binary-xyz"})),
            "no-such-binary-xyz".into(),
        )),
        bad_config: (config(json!({"args": ["x"]})), "command".into()),
        survives_restart: true,
        has_processes: true,
        leak_check: None,
    }
}

macro_rules! conformance_tests {
    ($setup:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn exit_zero_and_stdout() {
            if let Some((_dir, s)) = $setup() {
                s.exit_zero_and_stdout().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn exit_code() {
            if let Some((_dir, s)) = $setup() {
                s.exit_code().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn env_reaches_task() {
            if let Some((_dir, s)) = $setup() {
                s.env_reaches_task().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn stop_kills_task() {
            if let Some((_dir, s)) = $setup() {
                s.stop_kills_task().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn stop_escalates_to_sigkill() {
            if let Some((_dir, s)) = $setup() {
                s.stop_escalates_to_sigkill().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn signal_task() {
            if let Some((_dir, s)) = $setup() {
                s.signal_task().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn recover_running_task() {
            if let Some((_dir, s)) = $setup() {
                s.recover_running_task().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn exit_while_agent_away() {
            if let Some((_dir, s)) = $setup() {
                s.exit_while_agent_away().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn bad_config() {
            if let Some((_dir, s)) = $setup() {
                s.bad_config().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn missing_binary() {
            if let Some((_dir, s)) = $setup() {
                s.missing_binary().await
            }
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn destroy_cleans_up() {
            if let Some((_dir, s)) = $setup() {
                s.destroy_cleans_up().await
            }
        }
    };
}

mod mock {
    use super::*;
    use drover_drivers::mock::MockDriver;

    fn setup() -> Option<(tempfile::TempDir, Suite)> {
        let dir = tempfile::tempdir().unwrap();
        let suite = Suite {
            make: Arc::new(|| Arc::new(MockDriver::new())),
            root: dir.path().to_path_buf(),
            cases: Cases {
                print_line: config(json!({"stdout_string": "hello from drover\n"})),
                exit_3: config(json!({"exit_code": 3})),
                exit_3_later: config(json!({"run_for": "3s", "exit_code": 3})),
                long_running: config(json!({"run_for": "1h"})),
                print_env: None,
                ignore_sigint: Some(config(
                    json!({"run_for": "1h", "kill_after": "1h", "stdout_string": "ready\n"}),
                )),
                signal: None,
                missing_binary: None,
                bad_config: (config(json!({"run_for": "soon"})), "run_for".into()),
                survives_restart: false,
                has_processes: false,
                leak_check: None,
            },
        };
        Some((dir, suite))
    }

    conformance_tests!(setup);
}

mod raw_exec {
    use super::*;
    use drover_drivers::rawexec::{RawExecConfig, RawExecDriver};

    fn setup() -> Option<(tempfile::TempDir, Suite)> {
        let dir = tempfile::tempdir().unwrap();
        let suite = Suite {
            make: Arc::new(|| {
                Arc::new(RawExecDriver::new(RawExecConfig {
                    enabled: true,
                    executor: executor(),
                }))
            }),
            root: dir.path().to_path_buf(),
            cases: shell_cases(),
        };
        Some((dir, suite))
    }

    conformance_tests!(setup);

    #[tokio::test]
    async fn disabled_driver_is_undetected_and_refuses_to_start() {
        use drover_drivers::{Driver, DriverError, Health};
        let (_dir, s) = setup().unwrap();
        let d = RawExecDriver::new(RawExecConfig {
            enabled: false,
            executor: executor(),
        });
        let fp = d.fingerprint().await;
        assert_eq!(
            (fp.health, fp.description.as_str()),
            (Health::Undetected, "disabled")
        );
        let task = s.task("t", &s.cases.print_line);
        let err = d.start_task(task, Arc::new(|_| {})).await.unwrap_err();
        assert!(
            matches!(&err, DriverError::Disabled(m) if m == "raw_exec is disabled"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_binary_that_cannot_execute_is_a_fatal_start_error_from_the_executor() {
        let (_dir, s) = setup().unwrap();
        let d = (s.make)();
        let task = s.task("badinterp", &config(json!({"command": "local/run.sh"})));
        std::fs::write(task.task_dir.join("local/run.sh"), "#!/no/such/interpreter\n").unwrap();
        let err = d.start_task(task, Arc::new(|_| {})).await.unwrap_err();
        assert!(!err.recoverable(), "{err:?}");
        assert!(err.to_string().contains("run.sh"), "{err}");
    }
}
