//! The docker driver against a real Docker Engine.
//!
//! Needs a running `dockerd` (see `.ci/run`); the test image `drover-test/busybox:local` is
//! built from Debian's busybox-static by `scripts/build-test-images.sh` when missing. Without a
//! reachable engine every test prints why and passes, except under `CI=true`, where it fails.
//!
//! Every test uses its own allocation ID and checks at the end that no container carrying that
//! ID is left; a guard removes leftovers even when an assertion fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use drover_drivers::docker::{DockerConfig, DockerDriver, LABEL_ALLOC_ID, container_name, docker_state};
use drover_drivers::{
    Driver, DriverError, EventSink, Health, PortMapping, TaskConfig, TaskHandle, TaskResources,
};
use serde_json::{Value, json};

const IMAGE: &str = "drover-test/busybox:local";

// ---------------------------------------------------------------------------------------------
// Harness

/// A driver when the engine answers; `None` (after saying why) when it does not. Panics when it
/// does not and `CI=true`: CI must run these tests, not skip them.
async fn docker_or_skip() -> Option<DockerDriver> {
    let driver = DockerDriver::new(DockerConfig::default());
    let fp = driver.fingerprint().await;
    if fp.health != Health::Healthy {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but the docker engine is not usable: {}", fp.description);
        }
        eprintln!("skipping: docker engine not reachable: {}", fp.description);
        return None;
    }
    build_test_image();
    Some(driver)
}

fn build_test_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-images.sh");
        let out = Command::new(&script).output().expect("run build-test-images.sh");
        assert!(
            out.status.success(),
            "{} failed: {}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Runs the docker CLI and returns its stdout (panics on failure).
fn docker_cli(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Container IDs (running or not) labelled with this allocation.
fn containers_of(alloc_id: &str) -> Vec<String> {
    docker_cli(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={LABEL_ALLOC_ID}={alloc_id}"),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

/// One task's directories and config; removes any container of its allocation when dropped.
struct Fixture {
    _dir: tempfile::TempDir,
    task: TaskConfig,
}

impl Fixture {
    fn new(name: &str, config: Value) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let alloc_id = uuid::Uuid::new_v4().to_string();
        let alloc_dir = dir.path().join(&alloc_id);
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let task = TaskConfig {
            id: format!("{alloc_id}/{name}/{suffix}"),
            name: name.to_string(),
            job_id: "example".into(),
            job_name: "example".into(),
            task_group: "cache".into(),
            namespace: "default".into(),
            alloc_id: alloc_id.clone(),
            node_id: "node-1".into(),
            node_name: "n1".into(),
            env: BTreeMap::from([("NOMAD_TASK_NAME".to_string(), name.to_string())]),
            resources: TaskResources {
                cpu_shares: 100,
                memory_mb: 64,
                memory_max_mb: 0,
                ports: vec![],
            },
            user: String::new(),
            task_dir: alloc_dir.join(name),
            log_dir: alloc_dir.join("alloc").join("logs"),
            alloc_dir,
            state_dir: dir.path().join("state").join(name),
            logs: Default::default(),
            config: serde_json::from_value(config).expect("config is a map"),
        };
        Fixture { _dir: dir, task }
    }

    fn log(&self, stream: &str) -> String {
        std::fs::read_to_string(self.log_path(stream)).unwrap_or_default()
    }

    fn log_path(&self, stream: &str) -> PathBuf {
        self.task.log_dir.join(format!("{}.{stream}.0", self.task.name))
    }

    fn assert_no_containers(&self) {
        let left = containers_of(&self.task.alloc_id);
        assert!(left.is_empty(), "containers left behind: {left:?}");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for id in containers_of(&self.task.alloc_id) {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
    }
}

fn no_events() -> EventSink {
    Arc::new(|_| {})
}

fn sh(script: &str) -> Value {
    json!({"image": IMAGE, "command": "/bin/sh", "args": ["-c", script]})
}

async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {secs}s"))
}

async fn start(driver: &DockerDriver, fx: &Fixture) -> TaskHandle {
    within(60, "start_task", driver.start_task(fx.task.clone(), no_events()))
        .await
        .expect("start_task")
}

/// Polls `cond` every 100 ms for up to `secs`.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

async fn http_get(port: u16) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn fingerprint_reports_the_engine() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let fp = driver.fingerprint().await;
    assert_eq!(fp.description, "Healthy");
    let version = &fp.attributes["driver.docker.version"];
    assert!(
        version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "{version}"
    );
    assert_eq!(
        fp.attributes.get("driver.docker.os_type").map(String::as_str),
        Some("linux")
    );
    assert!(fp.attributes["driver.docker.runtimes"].contains("runc"), "{fp:?}");
    assert!(!fp.attributes.contains_key("driver.docker.privileged.enabled"));

    let nowhere = DockerDriver::new(DockerConfig {
        endpoint: Some("unix:///nonexistent/docker.sock".into()),
        ..Default::default()
    });
    let fp = nowhere.fingerprint().await;
    assert_eq!(fp.health, Health::Undetected, "{fp:?}");
    assert!(
        fp.description.contains("Failed to connect to docker daemon"),
        "{}",
        fp.description
    );
}

#[tokio::test]
async fn httpd_answers_on_the_published_host_port_with_name_and_labels() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let port = free_port();
    let mut config =
        sh("mkdir -p /www && echo hello-from-drover > /www/index.html && exec httpd -f -p 8080 -h /www");
    config["ports"] = json!(["http"]);
    config["labels"] = json!([{"team": "storage"}]);
    let mut fx = Fixture::new("web/frontend", config);
    fx.task.resources.ports = vec![PortMapping {
        label: "http".into(),
        host_ip: "127.0.0.1".into(),
        value: port,
        to: 8080,
    }];
    let handle = start(&driver, &fx).await;

    let mut body = String::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(b) = http_get(port).await {
            body = b;
            if body.contains("hello-from-drover") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        body.contains("200 OK") && body.contains("hello-from-drover"),
        "{body:?}"
    );

    let name = container_name(&fx.task);
    assert_eq!(name, format!("web_frontend-{}", fx.task.alloc_id));
    let inspect: Value = serde_json::from_str(&docker_cli(&["inspect", &name])).expect("inspect JSON");
    let c = &inspect[0];
    assert_eq!(c["Id"], docker_state(&handle).expect("driver state").container_id);
    let labels = &c["Config"]["Labels"];
    assert_eq!(labels[LABEL_ALLOC_ID], fx.task.alloc_id);
    assert_eq!(labels["team"], "storage");
    assert_eq!(labels["com.hashicorp.nomad.job_name"], "example");
    assert_eq!(labels["com.hashicorp.nomad.task_name"], "web/frontend");
    assert_eq!(labels["com.hashicorp.nomad.task_group_name"], "cache");
    assert_eq!(labels["com.hashicorp.nomad.namespace"], "default");
    assert_eq!(labels["com.hashicorp.nomad.node_id"], "node-1");
    let bindings = &c["HostConfig"]["PortBindings"];
    assert_eq!(bindings["8080/tcp"][0]["HostPort"], port.to_string());
    assert_eq!(bindings["8080/udp"][0]["HostIp"], "127.0.0.1");
    let binds: Vec<String> = serde_json::from_value(c["HostConfig"]["Binds"].clone()).expect("binds");
    assert!(
        binds.contains(&format!("{}:/local", fx.task.task_dir.join("local").display())),
        "{binds:?}"
    );
    assert!(binds.iter().any(|b| b.ends_with(":/alloc")), "{binds:?}");
    assert_eq!(c["HostConfig"]["Memory"], 64 * 1024 * 1024);
    assert_eq!(c["HostConfig"]["CpuShares"], 100);

    within(
        30,
        "stop",
        driver.stop_task(&fx.task.id, Duration::from_secs(5), ""),
    )
    .await
    .expect("stop");
    within(30, "destroy", driver.destroy_task(&fx.task.id, false))
        .await
        .expect("destroy");
    fx.assert_no_containers();
}

#[tokio::test]
async fn a_short_command_reports_its_exit_code_and_output_lands_in_the_log_files() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let fx = Fixture::new("short", sh("echo out-line; echo err-line >&2; exit 3"));
    start(&driver, &fx).await;
    let exit = within(60, "wait", driver.wait_task(&fx.task.id))
        .await
        .expect("wait");
    assert_eq!(
        (exit.exit_code, exit.oom_killed, exit.err.clone()),
        (3, false, None),
        "{exit:?}"
    );
    assert!(!exit.successful());
    assert_eq!(fx.log("stdout"), "out-line\n");
    assert_eq!(fx.log("stderr"), "err-line\n");
    // A second wait reports the same exit.
    assert_eq!(driver.wait_task(&fx.task.id).await.expect("wait again"), exit);
    driver.destroy_task(&fx.task.id, false).await.expect("destroy");
    fx.assert_no_containers();
}

#[tokio::test]
async fn the_task_env_reaches_the_container_and_nothing_else() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let mut config = sh("env | sort");
    config["port_map"] = json!([{"db": 6379}]);
    let mut fx = Fixture::new("env", config);
    fx.task.env.insert("DROVER_GREETING".into(), "hello world".into());
    fx.task.resources.ports = vec![PortMapping {
        label: "db".into(),
        host_ip: "127.0.0.1".into(),
        value: free_port(),
        to: 0,
    }];
    start(&driver, &fx).await;
    let exit = within(60, "wait", driver.wait_task(&fx.task.id))
        .await
        .expect("wait");
    assert!(exit.successful(), "{exit:?}");
    let out = fx.log("stdout");
    assert!(out.contains("DROVER_GREETING=hello world\n"), "{out}");
    assert!(out.contains("NOMAD_TASK_NAME=env\n"), "{out}");
    assert!(out.contains("NOMAD_PORT_db=6379\n"), "{out}");
    // The agent's own environment stays outside.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    assert!(!out.contains("CARGO_MANIFEST_DIR"), "{out}");
    driver.destroy_task(&fx.task.id, false).await.expect("destroy");
    fx.assert_no_containers();
}

#[tokio::test]
async fn a_missing_image_is_a_recoverable_error_carrying_dockers_message() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let missing = "drover-test/does-not-exist:1.0";
    let fx = Fixture::new("missing", json!({"image": missing}));
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink: EventSink = {
        let events = events.clone();
        Arc::new(move |m| events.lock().expect("events lock").push(m))
    };
    let err = within(120, "start", driver.start_task(fx.task.clone(), sink))
        .await
        .expect_err("a missing image must fail the start");
    assert!(err.recoverable(), "{err:?}");
    assert_eq!(
        events.lock().expect("events lock").as_slice(),
        [format!("Downloading image {missing}")]
    );
    // The engine's own words, as the CLI shows them after "Error response from daemon: ".
    let cli = Command::new("docker")
        .args(["pull", missing])
        .output()
        .expect("docker pull");
    let cli_err = String::from_utf8_lossy(&cli.stderr);
    let engine_msg = cli_err
        .lines()
        .find_map(|l| l.strip_prefix("Error response from daemon: "))
        .unwrap_or_else(|| panic!("unexpected docker pull output: {cli_err}"));
    let msg = err.to_string();
    assert!(
        msg.contains(missing) && msg.contains(engine_msg.trim()),
        "{msg:?} vs {engine_msg:?}"
    );
    fx.assert_no_containers();
}

#[tokio::test]
async fn config_errors_name_the_key_and_unknown_port_labels_are_refused() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let err = driver
        .validate_config(&serde_json::from_value(json!({"image": IMAGE, "comand": "x"})).expect("map"))
        .expect_err("unknown key");
    assert!(
        matches!(&err, DriverError::InvalidConfig { field, .. } if field == "comand"),
        "{err}"
    );
    let err = driver
        .validate_config(&serde_json::from_value(json!({"image": IMAGE, "args": "x"})).expect("map"))
        .expect_err("wrong type");
    assert!(
        matches!(&err, DriverError::InvalidConfig { field, .. } if field == "args"),
        "{err}"
    );

    let mut config = sh("true");
    config["ports"] = json!(["nope"]);
    let fx = Fixture::new("ports", config);
    let err = driver
        .start_task(fx.task.clone(), no_events())
        .await
        .expect_err("unknown label");
    assert_eq!(err.to_string(), "Port \"nope\" not found, check network block");
    fx.assert_no_containers();
}

#[tokio::test]
async fn stop_with_a_signal_the_task_handles_returns_early() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let fx = Fixture::new(
        "graceful",
        sh("trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done"),
    );
    start(&driver, &fx).await;
    eventually(15, "ready", || fx.log("stdout").contains("ready")).await;
    let began = Instant::now();
    within(
        30,
        "stop",
        driver.stop_task(&fx.task.id, Duration::from_secs(10), "SIGTERM"),
    )
    .await
    .expect("stop");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "took {:?}",
        began.elapsed()
    );
    let exit = within(30, "wait", driver.wait_task(&fx.task.id))
        .await
        .expect("wait");
    assert_eq!(exit.exit_code, 0, "{exit:?}");
    assert!(fx.log("stdout").contains("got-term"), "{}", fx.log("stdout"));
    driver.destroy_task(&fx.task.id, false).await.expect("destroy");
    fx.assert_no_containers();
}

#[tokio::test]
async fn a_task_ignoring_sigterm_is_killed_after_the_timeout() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    // One task stopped with an explicit signal, one with the engine's stop (empty signal).
    for signal in ["SIGTERM", ""] {
        let fx = Fixture::new(
            "stubborn",
            sh("trap '' TERM INT; echo ready; while true; do sleep 0.1; done"),
        );
        start(&driver, &fx).await;
        eventually(15, "ready", || fx.log("stdout").contains("ready")).await;
        let began = Instant::now();
        within(
            60,
            "stop",
            driver.stop_task(&fx.task.id, Duration::from_secs(2), signal),
        )
        .await
        .expect("stop");
        let took = began.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(20),
            "signal {signal:?}: took {took:?}"
        );
        let exit = within(30, "wait", driver.wait_task(&fx.task.id))
            .await
            .expect("wait");
        assert_eq!(exit.exit_code, 137, "signal {signal:?}: {exit:?}");
        driver.destroy_task(&fx.task.id, false).await.expect("destroy");
        fx.assert_no_containers();
    }
}

#[tokio::test]
async fn exceeding_the_memory_limit_is_reported_as_oom_killed() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let mut fx = Fixture::new(
        "hog",
        json!({"image": IMAGE, "command": "tail", "args": ["/dev/zero"]}),
    );
    fx.task.resources.memory_mb = 16;
    start(&driver, &fx).await;
    let exit = within(120, "wait", driver.wait_task(&fx.task.id))
        .await
        .expect("wait");
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!((exit.exit_code, exit.signal), (137, 9), "{exit:?}");
    driver.destroy_task(&fx.task.id, false).await.expect("destroy");
    fx.assert_no_containers();
}

#[tokio::test]
async fn a_fresh_driver_recovers_the_container_and_logs_continue_without_repeats() {
    let Some(first) = docker_or_skip().await else {
        return;
    };
    let fx = Fixture::new(
        "survivor",
        sh("echo before; sleep 2; echo during; sleep 2; echo after; exit 7"),
    );
    let handle = start(&first, &fx).await;
    eventually(10, "first line", || fx.log("stdout") == "before\n").await;
    // Let the cursor be written, then "crash" the agent: the follower stops with the driver.
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop(first);
    // "during" is printed while no driver follows the container.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fx.log("stdout"),
        "before\n",
        "nobody should copy logs while the agent is down"
    );

    // The handle survives as JSON, as the client persists it.
    let handle: TaskHandle =
        serde_json::from_str(&serde_json::to_string(&handle).expect("encode")).expect("decode");
    let second = DockerDriver::new(DockerConfig::default());
    second.recover_task(&handle).await.expect("recover");
    second.recover_task(&handle).await.expect("recover is idempotent");
    let exit = within(60, "wait", second.wait_task(&fx.task.id))
        .await
        .expect("wait");
    assert_eq!(exit.exit_code, 7, "{exit:?}");
    assert_eq!(fx.log("stdout"), "before\nduring\nafter\n");

    second.destroy_task(&fx.task.id, false).await.expect("destroy");
    fx.assert_no_containers();
    // The container is gone: a third driver cannot recover it.
    let third = DockerDriver::new(DockerConfig::default());
    let err = third.recover_task(&handle).await.expect_err("container removed");
    assert!(matches!(err, DriverError::TaskNotFound(_)), "{err:?}");
}

#[tokio::test]
async fn destroy_refuses_a_running_task_unless_forced_and_removes_the_container() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let fx = Fixture::new(
        "sleeper",
        json!({"image": IMAGE, "command": "sleep", "args": ["300"]}),
    );
    let handle = start(&driver, &fx).await;
    let id = docker_state(&handle).expect("driver state").container_id;
    let err = driver
        .destroy_task(&fx.task.id, false)
        .await
        .expect_err("running");
    assert!(err.to_string().contains("still running"), "{err}");
    assert_eq!(containers_of(&fx.task.alloc_id), vec![id.clone()]);
    within(60, "destroy", driver.destroy_task(&fx.task.id, true))
        .await
        .expect("forced destroy");
    let all = docker_cli(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"]);
    assert!(!all.contains(&id), "{all}");
    assert!(!all.contains(&container_name(&fx.task)), "{all}");
    let err = driver.wait_task(&fx.task.id).await.expect_err("destroyed");
    assert!(matches!(err, DriverError::TaskNotFound(_)), "{err:?}");
    fx.assert_no_containers();
}

#[tokio::test]
async fn signals_reach_the_task_and_stats_are_measured() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let fx = Fixture::new(
        "signals",
        sh("trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done"),
    );
    start(&driver, &fx).await;
    eventually(15, "ready", || fx.log("stdout").contains("ready")).await;
    driver.signal_task(&fx.task.id, "SIGUSR1").await.expect("signal");
    eventually(15, "the trap", || fx.log("stdout").contains("got-usr1")).await;
    assert!(driver.signal_task(&fx.task.id, "SIGNOPE").await.is_err());

    let stats = driver.task_stats(&fx.task.id).await.expect("stats");
    assert!(stats.usage > 0, "{stats:?}");
    assert!(stats.measured.iter().any(|m| m == "Usage"), "{stats:?}");
    assert_eq!(stats.pids.len(), 1, "{stats:?}");

    within(60, "destroy", driver.destroy_task(&fx.task.id, true))
        .await
        .expect("destroy");
    fx.assert_no_containers();
}

#[tokio::test]
async fn a_stale_container_with_the_same_name_is_replaced() {
    let Some(driver) = docker_or_skip().await else {
        return;
    };
    let fx = Fixture::new("stale", sh("echo fresh"));
    let name = container_name(&fx.task);
    let stale = docker_cli(&[
        "create",
        "--name",
        &name,
        "--label",
        &format!("{LABEL_ALLOC_ID}={}", fx.task.alloc_id),
        IMAGE,
        "true",
    ]);
    let handle = start(&driver, &fx).await;
    let fresh = docker_state(&handle).expect("driver state").container_id;
    assert_ne!(stale.trim(), fresh);
    assert_eq!(containers_of(&fx.task.alloc_id), vec![fresh]);
    let exit = within(60, "wait", driver.wait_task(&fx.task.id))
        .await
        .expect("wait");
    assert!(exit.successful(), "{exit:?}");
    assert_eq!(fx.log("stdout"), "fresh\n");
    driver.destroy_task(&fx.task.id, false).await.expect("destroy");
    fx.assert_no_containers();
}

// ---------------------------------------------------------------------------------------------
// The shared driver conformance suite, run for docker.

mod conformance {
    use super::*;
    use drover_drivers::conformance::{Cases, Config, LeakCheck, Suite, config};

    fn sh(script: &str) -> Config {
        config(json!({"image": IMAGE, "command": "/bin/sh", "args": ["-c", script]}))
    }

    /// Removes the containers of every allocation still under the suite's root (a check that
    /// panicked before destroying its task).
    struct Root(tempfile::TempDir);

    impl Drop for Root {
        fn drop(&mut self) {
            for entry in std::fs::read_dir(self.0.path()).into_iter().flatten().flatten() {
                let alloc_id = entry.file_name().to_string_lossy().into_owned();
                for id in containers_of(&alloc_id) {
                    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
                }
            }
        }
    }

    async fn setup() -> Option<(Root, Suite)> {
        docker_or_skip().await?;
        let root = Root(tempfile::tempdir().expect("tempdir"));
        let no_container_left: LeakCheck = Arc::new(|h: &TaskHandle| {
            let left = containers_of(&h.config.alloc_id);
            assert!(left.is_empty(), "containers left behind: {left:?}");
        });
        let suite = Suite {
            make: Arc::new(|| Arc::new(DockerDriver::new(DockerConfig::default()))),
            root: root.0.path().to_path_buf(),
            cases: Cases {
                print_line: sh("echo 'hello from drover'"),
                exit_3: sh("exit 3"),
                exit_3_later: sh("sleep 3; exit 3"),
                // A plain process as PID 1 ignores SIGTERM; with `init` the engine's tini passes
                // the stop signal on to it.
                long_running: config(
                    json!({"image": IMAGE, "command": "sleep", "args": ["1000"], "init": true}),
                ),
                print_env: Some(sh("echo \"$DROVER_CONFORMANCE\"")),
                ignore_sigint: Some(sh("trap '' INT TERM; echo ready; while true; do sleep 0.1; done")),
                signal: Some((
                    sh("trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done"),
                    "SIGUSR1".into(),
                    "got-usr1".into(),
                )),
                missing_binary: Some((
                    config(json!({"image": IMAGE, "command": "no-such-binary-xyz"})),
                    "no-such-binary-xyz".into(),
                )),
                bad_config: (config(json!({"image": IMAGE, "args": "x"})), "args".into()),
                survives_restart: true,
                has_processes: true,
                prepare: None,
                leak_check: Some(no_container_left),
            },
        };
        Some((root, suite))
    }

    macro_rules! checks {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some((_root, suite)) = setup().await {
                    suite.$name().await
                }
            }
        )*};
    }

    checks!(
        exit_zero_and_stdout,
        exit_code,
        env_reaches_task,
        stop_kills_task,
        stop_escalates_to_sigkill,
        signal_task,
        recover_running_task,
        exit_while_agent_away,
        bad_config,
        missing_binary,
        destroy_cleans_up,
    );
}
