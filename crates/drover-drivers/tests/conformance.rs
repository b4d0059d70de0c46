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
        // The whole environment: the case also checks that nothing of Drover's leaks into it.
        print_env: Some(sh("env")),
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
        prepare: None,
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
        async fn dead_executor_leaves_nothing() {
            if let Some((_dir, s)) = $setup() {
                s.dead_executor_leaves_nothing().await
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
                prepare: None,
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

mod exec {
    use super::*;
    use drover_drivers::exec::{ExecConfig, ExecDriver, find_runc};

    /// Root and runc, or why not.
    pub(crate) fn runc_prerequisites() -> Result<(), String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("the exec driver needs root".into());
        }
        find_runc()
            .map(|_| ())
            .ok_or_else(|| "runc is not installed".to_string())
    }

    /// Nothing of the container is left: no runc state, no cgroup directory, no mount.
    pub(crate) fn leak_check() -> drover_drivers::conformance::LeakCheck {
        Arc::new(|h| {
            let Some(id) = h.driver_state["runc"]["id"].as_str() else {
                return;
            };
            let root = h.driver_state["runc"]["root"]
                .as_str()
                .unwrap_or("/run/drover/runc");
            assert!(
                !std::path::Path::new(root).join(id).exists(),
                "runc still knows container {id}"
            );
            let cgroups = drover_drivers::cgroup::leftover_dirs(id);
            assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
            let mounts = drover_drivers::taskdir::mounts_below(&h.config.alloc_dir);
            assert!(mounts.is_empty(), "mounts left behind: {mounts:?}");
        })
    }

    fn setup() -> Option<(tempfile::TempDir, Suite)> {
        if !prerequisite("exec conformance", runc_prerequisites()) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut cases = shell_cases();
        cases.leak_check = Some(leak_check());
        let suite = Suite {
            make: Arc::new(|| Arc::new(ExecDriver::new(ExecConfig::new(executor())))),
            root: dir.path().to_path_buf(),
            cases,
        };
        Some((dir, suite))
    }

    conformance_tests!(setup);
}

mod java {
    use super::*;
    use drover_drivers::exec::ExecConfig;
    use drover_drivers::java::JavaDriver;
    use std::path::PathBuf;
    use std::sync::OnceLock;

    const MAIN: &str = r#"
public class Main {
    public static void main(String[] a) throws Exception {
        switch (a[0]) {
            case "hello": System.out.println("hello from drover"); break;
            case "exit3": System.exit(3);
            case "exit3later": Thread.sleep(3000); System.exit(3);
            case "long": System.out.println("ready"); Thread.sleep(1000000); break;
            case "env": System.out.println(System.getenv("DROVER_CONFORMANCE")); break;
            default: System.exit(100);
        }
    }
}
"#;

    /// Compiles Main.java once per test process; returns the class file's directory.
    fn compiled() -> Result<PathBuf, String> {
        static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        DIR.get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("java-conformance-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("Main.java"), MAIN).map_err(|e| e.to_string())?;
            let out = std::process::Command::new("javac")
                .arg("-d")
                .arg(&dir)
                .arg(dir.join("Main.java"))
                .output()
                .map_err(|e| format!("javac: {e}"))?;
            if !out.status.success() {
                return Err(format!("javac failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            Ok(dir)
        })
        .clone()
    }

    fn java(mode: &str) -> drover_drivers::conformance::Config {
        config(json!({
            "class": "Main", "class_path": "/local",
            "jvm_options": ["-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"],
            "args": [mode],
        }))
    }

    fn setup() -> Option<(tempfile::TempDir, Suite)> {
        let check = super::exec::runc_prerequisites().and_then(|()| compiled().map(|_| ()));
        if !prerequisite("java conformance", check) {
            return None;
        }
        let classes = compiled().ok()?;
        let dir = tempfile::tempdir().unwrap();
        let suite = Suite {
            make: Arc::new(|| Arc::new(JavaDriver::new(ExecConfig::new(executor())))),
            root: dir.path().to_path_buf(),
            cases: Cases {
                print_line: java("hello"),
                exit_3: java("exit3"),
                exit_3_later: java("exit3later"),
                long_running: java("long"),
                print_env: Some(java("env")),
                ignore_sigint: None,
                signal: None,
                missing_binary: None,
                bad_config: (config(json!({"class_path": "/local"})), "class".into()),
                survives_restart: true,
                has_processes: true,
                leak_check: Some(super::exec::leak_check()),
                prepare: Some(Arc::new(move |task| {
                    std::fs::copy(classes.join("Main.class"), task.task_dir.join("local/Main.class"))
                        .expect("copying Main.class");
                })),
            },
        };
        Some((dir, suite))
    }

    conformance_tests!(setup);

    #[tokio::test]
    async fn fingerprint_reports_the_jvm() {
        use drover_drivers::{Driver, Health};
        if setup().is_none() {
            return;
        }
        let fp = JavaDriver::new(ExecConfig::new(executor())).fingerprint().await;
        assert_eq!(fp.health, Health::Healthy, "{fp:?}");
        assert_eq!(fp.attributes["driver.java"], "true");
        assert!(!fp.attributes["driver.java.version"].is_empty());
        assert!(fp.attributes["driver.java.vm"].contains("VM"), "{fp:?}");
    }
}
