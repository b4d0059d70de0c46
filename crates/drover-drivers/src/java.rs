//! The `java` driver: runs a JVM application with the exec driver's isolation (a runc
//! container rooted at the task directory, as `nobody` by default).
//!
//! ```text
//!  config { jar_path = "local/app.jar"  jvm_options = ["-Xmx64m"]  args = ["serve"] }
//!       ▼
//!  java <jvm_options> [-cp <class_path>] [-jar <jar_path>] [<class>] <args>
//!       ▼ (java found inside the container: /local, the task dir, $PATH over the host's /usr)
//!  crate::exec::launch_container ──▶ executor ──▶ runc run ──▶ drover init ──▶ java …
//! ```
//!
//! Paths in `class_path` and `jar_path` are seen from inside the container (`local/app.jar`
//! is relative to the working directory, `/` unless `work_dir` is set). The fingerprint runs
//! `java -version` (which prints on stderr) and reports `driver.java.version`,
//! `driver.java.runtime` and `driver.java.vm`.
//!
//! Limits: as for [`crate::exec`]; signals are not advertised (Nomad's java driver does not),
//! though stop signals reach the JVM through the container init.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::exec::{
    ContainerTask, ExecConfig, ISOLATION_KEYS, Isolation, launch_container, lookup_in_chroot, runc_health,
    task_user,
};
use crate::executor::{Supervisor, cfg_string, cfg_strings};
use crate::{
    BoxFuture, Capabilities, Driver, DriverError, EventSink, Fingerprint, FsIsolation, TaskConfig, TaskHandle,
};

/// The java driver; configured like exec (executor, runc).
#[derive(Debug)]
pub struct JavaDriver {
    config: ExecConfig,
    sup: Supervisor,
}

const KEYS: &[&str] = &["class", "class_path", "jar_path", "jvm_options", "args"];

/// The JVM's argument vector (without `java` itself) for a `config {}` block.
pub fn java_args(config: &BTreeMap<String, Value>) -> Result<Vec<String>, DriverError> {
    for key in config.keys() {
        if !KEYS.contains(&key.as_str()) && !ISOLATION_KEYS.contains(&key.as_str()) {
            return Err(crate::unknown_key(
                key,
                KEYS.iter().chain(ISOLATION_KEYS).copied(),
            ));
        }
    }
    let class = cfg_string(config, "class")?.filter(|s| !s.is_empty());
    let jar = cfg_string(config, "jar_path")?.filter(|s| !s.is_empty());
    if class.is_none() && jar.is_none() {
        return Err(DriverError::config(
            "class",
            "either class or jar_path is required",
        ));
    }
    let mut argv = cfg_strings(config, "jvm_options")?;
    if let Some(cp) = cfg_string(config, "class_path")?.filter(|s| !s.is_empty()) {
        argv.extend(["-cp".to_string(), cp]);
    }
    if let Some(jar) = jar {
        argv.extend(["-jar".to_string(), jar]);
    }
    argv.extend(class);
    argv.extend(cfg_strings(config, "args")?);
    Ok(argv)
}

/// Parses `java -version` output into (version, runtime, vm).
pub fn parse_java_version(text: &str) -> Option<(String, String, String)> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Picked up"));
    let first = lines.next()?;
    let version = first.split('"').nth(1)?.to_string();
    let runtime = lines.next().unwrap_or_default().to_string();
    let vm = lines.next().unwrap_or_default().to_string();
    Some((version, runtime, vm))
}

impl JavaDriver {
    /// A java driver.
    pub fn new(config: ExecConfig) -> Self {
        let sup = Supervisor::new("java", config.executor.clone());
        JavaDriver { config, sup }
    }
}

impl Driver for JavaDriver {
    fn name(&self) -> &'static str {
        "java"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            send_signals: false,
            fs_isolation: FsIsolation::Chroot,
        }
    }

    fn fingerprint(&self) -> BoxFuture<'_, Fingerprint> {
        Box::pin(async move {
            let mut attrs = match runc_health("java", &self.config.runc) {
                Ok(a) => a,
                Err(fp) => return fp,
            };
            let out = tokio::process::Command::new("java")
                .arg("-version")
                .output()
                .await;
            let out = match out {
                Ok(o) if o.status.success() => o,
                Ok(o) => {
                    return Fingerprint::undetected(format!("java -version failed: {}", o.status));
                }
                Err(e) => return Fingerprint::undetected(format!("java not found: {e}")),
            };
            let text =
                String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
            let Some((version, runtime, vm)) = parse_java_version(&text) else {
                return Fingerprint::undetected(format!("unrecognised java -version output: {text:?}"));
            };
            attrs.insert("driver.java".into(), "true".into());
            attrs.insert("driver.java.version".into(), version);
            attrs.insert("driver.java.runtime".into(), runtime);
            attrs.insert("driver.java.vm".into(), vm);
            Fingerprint::healthy(attrs)
        })
    }

    fn validate_config(&self, config: &BTreeMap<String, Value>) -> Result<(), DriverError> {
        java_args(config)?;
        Isolation::parse(config).map(|_| ())
    }

    fn start_task(
        &self,
        config: TaskConfig,
        _events: EventSink,
    ) -> BoxFuture<'_, Result<TaskHandle, DriverError>> {
        Box::pin(async move {
            let args = java_args(&config.config)?;
            let isolation = Isolation::parse(&config.config)?;
            if !nix::unistd::geteuid().is_root() {
                return Err(DriverError::fatal(
                    "the java driver requires the agent to run as root",
                ));
            }
            let (uid, gid) = task_user("java", &config.user)?;
            let program = lookup_in_chroot(
                &config.task_dir,
                "java",
                config.env.get("PATH").map(String::as_str),
            )?;
            let task = ContainerTask {
                program,
                args,
                isolation,
                uid,
                gid,
            };
            launch_container(&self.config, &self.sup, config, task).await
        })
    }

    crate::executor::delegate_to_supervisor!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn argv_follows_nomads_order() {
        let cfg: BTreeMap<String, Value> = serde_json::from_value(json!({
            "class": "Main", "class_path": "/local", "jvm_options": ["-Xmx64m"], "args": ["a", "b"]
        }))
        .unwrap();
        assert_eq!(
            java_args(&cfg).unwrap(),
            ["-Xmx64m", "-cp", "/local", "Main", "a", "b"]
        );
        let cfg: BTreeMap<String, Value> =
            serde_json::from_value(json!({"jar_path": "local/app.jar"})).unwrap();
        assert_eq!(java_args(&cfg).unwrap(), ["-jar", "local/app.jar"]);
        let err = java_args(&BTreeMap::new()).unwrap_err();
        assert!(matches!(&err, DriverError::InvalidConfig { field, .. } if field == "class"));
    }

    #[test]
    fn parses_java_version_output() {
        let text = "openjdk version \"17.0.12\" 2024-07-16\nOpenJDK Runtime Environment (build 17.0.12+7-Debian-2deb12u1)\nOpenJDK 64-Bit Server VM (build 17.0.12+7-Debian-2deb12u1, mixed mode, sharing)\n";
        let (v, rt, vm) = parse_java_version(text).unwrap();
        assert_eq!(v, "17.0.12");
        assert!(rt.starts_with("OpenJDK Runtime Environment"));
        assert!(vm.starts_with("OpenJDK 64-Bit Server VM"));
    }
}
