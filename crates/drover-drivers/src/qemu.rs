//! The `qemu` driver: boots a disk image in a QEMU virtual machine, without isolation, under an
//! executor (like raw_exec).
//!
//! ```text
//!  config { image_path = "local/linux.img"  port_map { http = 80 }  args = [...] }
//!       ▼ memory from the task's resources (≥ 128 MB)
//!  qemu-system-x86_64 -machine type=pc,accel=tcg -name linux.img -m 256M
//!      -drive file=<task dir>/local/linux.img,if=ide,id=image0 -nographic
//!      -netdev user,id=user.0,hostfwd=tcp::<host port>-:80,hostfwd=udp::<host port>-:80
//!      -device virtio-net,netdev=user.0
//! ```
//!
//! `port_map` maps a port label of the allocation to a guest port; the host side is the port
//! the scheduler assigned to that label (user-mode networking forwards it). A relative
//! `image_path` is relative to the task directory.
//!
//! Limits: `graceful_shutdown` and `guest_agent` are accepted but not implemented (stop sends
//! the kill signal, SIGINT by default, to QEMU, which exits); `kvm` only adds `-enable-kvm`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::executor::{
    ExecutorCommand, ExecutorSpec, Supervisor, cfg_string, cfg_strings, check_keys, lookup_binary,
};
use crate::{
    BoxFuture, Capabilities, Driver, DriverError, EventSink, Fingerprint, FsIsolation, TaskConfig, TaskHandle,
};

const KEYS: &[&str] = &[
    "image_path",
    "emulator",
    "accelerator",
    "machine_type",
    "drive_interface",
    "graceful_shutdown",
    "guest_agent",
    "args",
    "port_map",
];

/// The smallest VM memory QEMU tasks may ask for.
pub const MIN_MEMORY_MB: i64 = 128;

/// The qemu driver.
#[derive(Debug)]
pub struct QemuDriver {
    sup: Supervisor,
}

impl QemuDriver {
    /// A qemu driver.
    pub fn new(executor: ExecutorCommand) -> Self {
        QemuDriver {
            sup: Supervisor::new("qemu", executor),
        }
    }
}

fn port_map(config: &BTreeMap<String, Value>) -> Result<BTreeMap<String, u16>, DriverError> {
    let mut out = BTreeMap::new();
    let maps: Vec<&serde_json::Map<String, Value>> = match config.get("port_map") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => vec![m],
        // HCL blocks decode as a list of maps.
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_object()
                    .ok_or_else(|| DriverError::config("port_map", "must be a map"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(DriverError::config(
                "port_map",
                "must be a map of label = guest port",
            ));
        }
    };
    for m in maps {
        for (label, v) in m {
            let port = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|p| *p > 0 && *p < 65536)
                .ok_or_else(|| DriverError::config(format!("port_map.{label}"), "must be a port number"))?;
            out.insert(label.clone(), port as u16);
        }
    }
    Ok(out)
}

/// The QEMU argument vector (without the binary) for a task; checks memory and ports.
pub fn qemu_args(task: &TaskConfig) -> Result<(String, Vec<String>), DriverError> {
    let config = &task.config;
    check_keys(config, KEYS)?;
    let image = cfg_string(config, "image_path")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DriverError::config("image_path", "required"))?;
    let emulator = cfg_string(config, "emulator")?.unwrap_or_else(|| "x86_64".into());
    let accel = cfg_string(config, "accelerator")?.unwrap_or_else(|| "tcg".into());
    let machine = cfg_string(config, "machine_type")?.unwrap_or_else(|| "pc".into());
    let iface = cfg_string(config, "drive_interface")?.unwrap_or_else(|| "ide".into());
    let ports = port_map(config)?;
    let extra = cfg_strings(config, "args")?;
    if task.resources.memory_mb < MIN_MEMORY_MB {
        return Err(DriverError::fatal(format!(
            "qemu needs at least {MIN_MEMORY_MB} MB of memory; the task has {} MB",
            task.resources.memory_mb
        )));
    }
    let path = PathBuf::from(&image);
    let path = if path.is_absolute() {
        path
    } else {
        task.task_dir.join(path)
    };
    if !path.is_file() {
        return Err(DriverError::fatal(format!("image {} not found", path.display())));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut args = vec![
        "-machine".to_string(),
        format!("type={machine},accel={accel}"),
        "-name".into(),
        name,
        "-m".into(),
        format!("{}M", task.resources.memory_mb),
        "-drive".into(),
        format!("file={},if={iface},id=image0", path.display()),
        "-nographic".into(),
    ];
    if accel == "kvm" {
        args.push("-enable-kvm".into());
    }
    if !ports.is_empty() {
        let mut fwd = Vec::new();
        for (label, guest) in &ports {
            let host = task
                .resources
                .ports
                .iter()
                .find(|p| &p.label == label)
                .ok_or_else(|| {
                    DriverError::config(
                        format!("port_map.{label}"),
                        "no port with this label in the network block",
                    )
                })?
                .value;
            fwd.push(format!("hostfwd=tcp::{host}-:{guest}"));
            fwd.push(format!("hostfwd=udp::{host}-:{guest}"));
        }
        args.extend([
            "-netdev".to_string(),
            format!("user,id=user.0,{}", fwd.join(",")),
            "-device".into(),
            "virtio-net,netdev=user.0".into(),
        ]);
    }
    args.extend(extra);
    Ok((format!("qemu-system-{emulator}"), args))
}

impl Driver for QemuDriver {
    fn name(&self) -> &'static str {
        "qemu"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: false,
            fs_isolation: FsIsolation::None,
        }
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        Box::pin(async {
            let out = match tokio::process::Command::new("qemu-system-x86_64")
                .arg("--version")
                .output()
                .await
            {
                Ok(o) if o.status.success() => o,
                Ok(o) => {
                    return Fingerprint::undetected(format!("qemu-system-x86_64 --version: {}", o.status));
                }
                Err(e) => return Fingerprint::undetected(format!("qemu-system-x86_64 not found: {e}")),
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let version = text
                .split_whitespace()
                .skip_while(|w| *w != "version")
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let mut attrs = BTreeMap::new();
            attrs.insert("driver.qemu".into(), "true".into());
            attrs.insert("driver.qemu.version".into(), version);
            Fingerprint::healthy(attrs)
        })
    }

    fn validate_config(&self, config: &BTreeMap<String, Value>) -> Result<(), DriverError> {
        check_keys(config, KEYS)?;
        cfg_string(config, "image_path")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| DriverError::config("image_path", "required"))?;
        for key in ["emulator", "accelerator", "machine_type", "drive_interface"] {
            cfg_string(config, key)?;
        }
        cfg_strings(config, "args")?;
        port_map(config).map(|_| ())
    }

    fn start_task(
        &self,
        config: TaskConfig,
        _events: EventSink,
    ) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
        Box::pin(async move {
            self.validate_config(&config.config)?;
            let (binary, args) = qemu_args(&config)?;
            let program = lookup_binary(
                &config.task_dir,
                &binary,
                config.env.get("PATH").map(String::as_str),
            )?;
            let spec = ExecutorSpec {
                task_name: config.name.clone(),
                program,
                args,
                env: config.env.clone(),
                cwd: config.task_dir.clone(),
                uid: None,
                gid: None,
                log_dir: config.log_dir.clone(),
                logs: config.logs,
                runc: None,
            };
            self.sup.launch(config, spec).await
        })
    }

    crate::executor::delegate_to_supervisor!();
}
