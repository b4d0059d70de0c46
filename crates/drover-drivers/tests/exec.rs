//! exec-driver behaviour beyond the shared conformance suite: the task's view of the world
//! (user, chroot, namespaces), the root refusal, OOM kills, and that nothing is left behind.
//! Needs root and runc (skipped otherwise, failing under `CI=true`).

use std::sync::Arc;
use std::time::Duration;

use drover_drivers::conformance::{Cases, Suite, config, prerequisite};
use drover_drivers::exec::{ExecConfig, ExecDriver, find_runc};
use drover_drivers::executor::ExecutorCommand;
use drover_drivers::{Driver, Health};
use serde_json::json;

fn setup() -> Option<(tempfile::TempDir, Suite, Arc<dyn Driver>)> {
    let check = if !nix::unistd::geteuid().is_root() {
        Err("the exec driver needs root".to_string())
    } else {
        find_runc()
            .map(|_| ())
            .ok_or_else(|| "runc is not installed".to_string())
    };
    if !prerequisite("exec driver tests", check) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let make = || -> Arc<dyn Driver> {
        Arc::new(ExecDriver::new(ExecConfig::new(ExecutorCommand::new(
            env!("CARGO_BIN_EXE_drover-executor"),
            &[],
        ))))
    };
    let sh = |s: &str| config(json!({"command": "/bin/sh", "args": ["-c", s]}));
    let suite = Suite {
        make: Arc::new(make),
        root: dir.path().to_path_buf(),
        cases: Cases {
            print_line: sh("echo hello"),
            exit_3: sh("exit 3"),
            exit_3_later: sh("sleep 3; exit 3"),
            long_running: sh("sleep 1000"),
            print_env: None,
            ignore_sigint: None,
            signal: None,
            missing_binary: None,
            bad_config: (config(json!({})), "command".into()),
            survives_restart: true,
            has_processes: true,
            leak_check: None,
            prepare: None,
        },
    };
    Some((dir, suite, make()))
}

fn no_leftovers(h: &drover_drivers::TaskHandle) {
    let id = h.driver_state["runc"]["id"]
        .as_str()
        .expect("container id in the driver state");
    assert!(
        !std::path::Path::new("/run/drover/runc").join(id).exists(),
        "runc state of {id} left"
    );
    assert!(
        drover_drivers::cgroup::leftover_dirs(id).is_empty(),
        "cgroups of {id} left"
    );
    assert!(
        drover_drivers::taskdir::mounts_below(&h.config.alloc_dir).is_empty(),
        "mounts left"
    );
}

async fn run(
    d: &Arc<dyn Driver>,
    task: drover_drivers::TaskConfig,
) -> (drover_drivers::ExitResult, String, String) {
    let h = d.start_task(task, Arc::new(|_| {})).await.expect("start");
    let r = tokio::time::timeout(Duration::from_secs(60), d.wait_task(&h.config.id))
        .await
        .expect("task did not exit")
        .expect("wait");
    let read = |s: &str| {
        std::fs::read_to_string(h.config.log_dir.join(format!("{}.{s}.0", h.config.name))).unwrap_or_default()
    };
    let (out, err) = (read("stdout"), read("stderr"));
    d.destroy_task(&h.config.id, false).await.expect("destroy");
    no_leftovers(&h);
    (r, out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_is_healthy_as_root_with_runc() {
    let Some((_dir, _s, d)) = setup() else { return };
    let fp = d.fingerprint().await;
    assert_eq!(fp.health, Health::Healthy, "{fp:?}");
    assert_eq!(fp.attributes.get("driver.exec").map(String::as_str), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_runs_as_nobody_in_its_task_dir_with_host_network() {
    let Some((_dir, s, d)) = setup() else { return };
    let script = "id -u; test -d /alloc/data && echo alloc-ok; test -d /local && echo local-ok; \
                  touch /local/x && echo write-ok; touch /alloc/logs/x 2>/dev/null || echo logs-ro; \
                  readlink /proc/self/ns/net; echo pid1=$(cat /proc/1/comm)";
    let task = s.task(
        "view",
        &config(json!({"command": "/bin/sh", "args": ["-c", script]})),
    );
    let local = task.task_dir.join("local/x");
    let (r, out, err) = run(&d, task).await;
    assert!(r.successful(), "{r:?} {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "65534", "{out}");
    for want in ["alloc-ok", "local-ok", "write-ok", "logs-ro"] {
        assert!(lines.contains(&want), "missing {want}: {out} {err}");
    }
    assert!(local.exists(), "/local is the task dir's local/");
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert!(
        lines.contains(&host_net.to_str().unwrap()),
        "not the host network namespace: {out}"
    );
    assert!(!lines.contains(&"pid1=sh"), "the task should not be PID 1: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_is_refused_and_named_users_work() {
    let Some((_dir, s, d)) = setup() else { return };
    let mut task = s.task("root", &s.cases.print_line);
    task.user = "root".into();
    let err = d.start_task(task, Arc::new(|_| {})).await.unwrap_err();
    assert!(!err.recoverable());
    assert!(err.to_string().contains("root"), "{err}");

    let mut task = s.task("daemon", &config(json!({"command": "id", "args": ["-un"]})));
    task.user = "daemon".into();
    let (r, out, _) = run(&d, task).await;
    assert!(r.successful());
    assert_eq!(out.trim(), "daemon");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_memory_limit_is_reported_as_oom_killed() {
    let Some((_dir, s, d)) = setup() else { return };
    // `tail` keeps the last "line" of /dev/zero, which never ends: it grows until killed.
    let mut task = s.task("hog", &config(json!({"command": "tail", "args": ["/dev/zero"]})));
    task.resources.memory_mb = 32;
    let (r, _, err) = run(&d, task).await;
    assert!(r.oom_killed, "{r:?} {err}");
    assert_eq!(r.signal, 9, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stopped_while_the_agent_is_away_leaves_nothing() {
    let Some((_dir, s, d)) = setup() else { return };
    let h = d
        .start_task(s.task("away", &s.cases.long_running), Arc::new(|_| {}))
        .await
        .unwrap();
    drop(d);
    let fresh = (s.make)();
    fresh.recover_task(&h).await.unwrap();
    fresh
        .stop_task(&h.config.id, Duration::from_secs(5), "SIGTERM")
        .await
        .unwrap();
    let r = fresh.wait_task(&h.config.id).await.unwrap();
    assert_eq!(r.signal, 15, "{r:?}");
    fresh.destroy_task(&h.config.id, false).await.unwrap();
    no_leftovers(&h);
}
