//! The qemu driver boots a tiny disk image (a boot sector that loops forever), forwards an
//! assigned host port to the guest, and leaves no QEMU process behind after stop. Skipped when
//! qemu-system-x86_64 is missing (failing under `CI=true`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_drivers::conformance::{Cases, Suite, config, prerequisite, process_gone};
use drover_drivers::executor::ExecutorCommand;
use drover_drivers::qemu::QemuDriver;
use drover_drivers::{Driver, DriverError, Health, PortMapping};
use serde_json::json;

/// 512 bytes: `jmp $` (EB FE), zeros, the 0x55AA boot signature.
fn boot_sector() -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[0] = 0xEB;
    s[1] = 0xFE;
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

fn setup() -> Option<(tempfile::TempDir, Suite, Arc<dyn Driver>)> {
    let found = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))
        .map(|_| ());
    if !prerequisite("qemu driver tests", found) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let make = || -> Arc<dyn Driver> {
        Arc::new(QemuDriver::new(ExecutorCommand::new(
            env!("CARGO_BIN_EXE_drover-executor"),
            &[],
        )))
    };
    let cfg = config(json!({"image_path": "local/boot.img"}));
    let suite = Suite {
        make: Arc::new(make),
        root: dir.path().to_path_buf(),
        cases: Cases {
            print_line: cfg.clone(),
            exit_3: cfg.clone(),
            exit_3_later: cfg.clone(),
            long_running: cfg,
            print_env: None,
            ignore_sigint: None,
            signal: None,
            missing_binary: None,
            bad_config: (config(json!({})), "image_path".into()),
            survives_restart: true,
            has_processes: true,
            leak_check: None,
            prepare: Some(Arc::new(|task| {
                std::fs::write(task.task_dir.join("local/boot.img"), boot_sector())
                    .expect("writing the image");
            })),
        },
    };
    Some((dir, suite, make()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boots_an_image_forwards_the_port_and_stop_leaves_nothing() {
    let Some((_dir, s, d)) = setup() else { return };
    let fp = d.fingerprint().await;
    assert_eq!(fp.health, Health::Healthy, "{fp:?}");
    assert!(!fp.attributes["driver.qemu.version"].is_empty(), "{fp:?}");

    let port = free_port();
    let mut task = s.task(
        "vm",
        &config(json!({"image_path": "local/boot.img", "port_map": {"http": 80}})),
    );
    task.resources.memory_mb = 128;
    task.resources.ports = vec![PortMapping {
        label: "http".into(),
        host_ip: "127.0.0.1".into(),
        value: port,
        to: 0,
    }];
    let h = d.start_task(task, Arc::new(|_| {})).await.expect("start");
    let pids = d.task_stats(&h.config.id).await.unwrap().pids;
    assert!(!pids.is_empty());
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "host port {port} never accepted a connection"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.stop_task(&h.config.id, Duration::from_secs(5), "")
        .await
        .expect("stop");
    // QEMU exits 0 on SIGINT ("terminating on signal 2").
    let r = d.wait_task(&h.config.id).await.unwrap();
    assert!(r.err.is_none(), "{r:?}");
    for p in &pids {
        assert!(process_gone(*p), "pid {p} survived stop");
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still forwarded"
    );
    d.destroy_task(&h.config.id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_memory_and_unknown_port_labels_are_refused() {
    let Some((_dir, s, d)) = setup() else { return };
    let mut task = s.task("small", &s.cases.long_running);
    task.resources.memory_mb = 64;
    let err = d.start_task(task, Arc::new(|_| {})).await.unwrap_err();
    assert!(err.to_string().contains("128"), "{err}");

    let task = s.task(
        "ports",
        &config(json!({"image_path": "local/boot.img", "port_map": {"nope": 22}})),
    );
    let err = d.start_task(task, Arc::new(|_| {})).await.unwrap_err();
    assert!(
        matches!(&err, DriverError::InvalidConfig { field, .. } if field == "port_map.nope"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_subset() {
    let Some((_dir, s, _d)) = setup() else { return };
    s.stop_kills_task().await;
    s.bad_config().await;
    s.dead_executor_leaves_nothing().await;
}
