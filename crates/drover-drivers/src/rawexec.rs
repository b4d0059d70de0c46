//! The `raw_exec` driver: runs a command on the host, without isolation, under an executor.
//!
//! ```text
//!  config { command = "my-app"  args = ["-port", "8080"]  work_dir = "/srv" }
//!       │ lookup: <task>/local/my-app, <task>/my-app, absolute, $PATH of the task env
//!       ▼
//!  Supervisor::launch ──▶ executor ──▶ my-app (own process group, task env, cwd = task dir)
//! ```
//!
//! Off by default (Nomad's rule): a disabled driver fingerprints as undetected and refuses to
//! start tasks. The task runs as the agent's user unless `user` is set. Stop signals go to the
//! task's whole process group; there is no cgroup, so a process that leaves the group *and*
//! escapes the executor's subreaper survives (see [`crate::executor`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::executor::{
    ExecutorCommand, ExecutorSpec, Supervisor, cfg_string, cfg_strings, check_keys, lookup_binary,
    resolve_user,
};
use crate::{
    BoxFuture, Capabilities, Driver, DriverError, EventSink, Fingerprint, FsIsolation, TaskConfig, TaskHandle,
};

/// Plugin-level settings of raw_exec (`plugin "raw_exec" { config { enabled = true } }`).
#[derive(Debug, Clone)]
pub struct RawExecConfig {
    /// Off by default; `-dev` agents turn it on.
    pub enabled: bool,
    /// How to start executors.
    pub executor: ExecutorCommand,
}

/// The raw_exec driver.
#[derive(Debug)]
pub struct RawExecDriver {
    enabled: bool,
    sup: Supervisor,
}

const KEYS: &[&str] = &["command", "args", "work_dir"];

/// A parsed raw_exec `config {}` block.
#[derive(Debug, Clone, PartialEq)]
struct TaskCfg {
    command: String,
    args: Vec<String>,
    work_dir: Option<PathBuf>,
}

fn parse(config: &BTreeMap<String, Value>) -> Result<TaskCfg, DriverError> {
    check_keys(config, KEYS)?;
    let command = cfg_string(config, "command")?
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| DriverError::config("command", "required"))?;
    let work_dir = cfg_string(config, "work_dir")?.map(PathBuf::from);
    if let Some(dir) = &work_dir
        && !dir.is_absolute()
    {
        return Err(DriverError::config("work_dir", "must be an absolute path"));
    }
    Ok(TaskCfg {
        command,
        args: cfg_strings(config, "args")?,
        work_dir,
    })
}

impl RawExecDriver {
    /// A raw_exec driver.
    pub fn new(config: RawExecConfig) -> Self {
        RawExecDriver {
            enabled: config.enabled,
            sup: Supervisor::new("raw_exec", config.executor),
        }
    }
}

impl Driver for RawExecDriver {
    fn name(&self) -> &'static str {
        "raw_exec"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: true,
            fs_isolation: FsIsolation::None,
        }
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        Box::pin(async move {
            if !self.enabled {
                return Fingerprint::undetected("disabled");
            }
            let mut attrs = BTreeMap::new();
            attrs.insert("driver.raw_exec".to_string(), "true".to_string());
            Fingerprint::healthy(attrs)
        })
    }

    fn validate_config(&self, config: &BTreeMap<String, Value>) -> Result<(), DriverError> {
        parse(config).map(|_| ())
    }

    fn start_task(
        &self,
        config: TaskConfig,
        _events: EventSink,
    ) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
        Box::pin(async move {
            if !self.enabled {
                return Err(DriverError::Disabled("raw_exec is disabled".into()));
            }
            let cfg = parse(&config.config)?;
            let program = lookup_binary(
                &config.task_dir,
                &cfg.command,
                config.env.get("PATH").map(String::as_str),
            )?;
            let (uid, gid) = if config.user.is_empty() {
                (None, None)
            } else {
                let (u, g) = resolve_user(&config.user)?;
                (Some(u), Some(g))
            };
            let spec = ExecutorSpec {
                task_name: config.name.clone(),
                program,
                args: cfg.args,
                env: config.env.clone(),
                cwd: cfg.work_dir.unwrap_or_else(|| config.task_dir.clone()),
                uid,
                gid,
                log_dir: config.log_dir.clone(),
                logs: config.logs,
                runc: None,
            };
            self.sup.launch(config, spec).await
        })
    }

    crate::executor::delegate_to_supervisor!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = parse(&cfg(json!({"args": ["x"]}))).unwrap_err();
        assert!(
            matches!(&err, DriverError::InvalidConfig { field, .. } if field == "command"),
            "{err}"
        );
        let err = parse(&cfg(json!({"command": "x", "bogus": 1}))).unwrap_err();
        assert!(
            matches!(&err, DriverError::InvalidConfig { field, .. } if field == "bogus"),
            "{err}"
        );
        let err = parse(&cfg(json!({"command": "x", "work_dir": "rel"}))).unwrap_err();
        assert!(
            matches!(&err, DriverError::InvalidConfig { field, .. } if field == "work_dir"),
            "{err}"
        );
        let ok = parse(&cfg(json!({"command": "x", "args": ["a", 1]}))).unwrap();
        assert_eq!(ok.args, vec!["a", "1"]);
    }
}
