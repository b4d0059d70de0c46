//! The task environment: the `NOMAD_*` variables a task sees, and `${…}` interpolation of the
//! task's `env {}` values and driver `config {}` strings.
//!
//! ```text
//!  allocation + task + node + paths ──▶ TaskEnv::build ──▶ env map ──▶ TaskEnv::interpolate(config)
//! ```
//!
//! Build order (later wins, as in Nomad): directories and limits, allocation and job identity,
//! ports, task meta, host environment (only keys not already set; never for image drivers),
//! the task's `env {}` block with `${…}` resolved. Keys of ports and meta are sanitised: a
//! character not valid in an environment name becomes `_` (`db-1` → `NOMAD_PORT_db_1`).
//!
//! Interpolation: `${name}` is looked up in the env built so far, then `node.unique.id`,
//! `node.unique.name`, `node.datacenter`, `node.region`, `node.class`, `node.pool`,
//! `attr.<attribute>`, `meta.<node meta>`, and `env["NAME"]`. Unknown names stay verbatim.
//!
//! Limits: no HCL expressions inside `${…}` (functions, arithmetic); only names.

use std::collections::BTreeMap;
use std::path::Path;

use drover_types::alloc::AllocatedPortMapping;
use drover_types::{Allocation, Node, Task};
use serde_json::Value;

/// Paths of the task's directories as the task sees them.
#[derive(Debug, Clone)]
pub struct TaskPaths {
    /// `NOMAD_ALLOC_DIR`.
    pub alloc_dir: String,
    /// `NOMAD_TASK_DIR`.
    pub task_dir: String,
    /// `NOMAD_SECRETS_DIR`.
    pub secrets_dir: String,
}

impl TaskPaths {
    /// Host paths (drivers without filesystem isolation).
    pub fn host(alloc_root: &Path, task: &str) -> Self {
        TaskPaths {
            alloc_dir: alloc_root.join("alloc").display().to_string(),
            task_dir: alloc_root.join(task).join("local").display().to_string(),
            secrets_dir: alloc_root.join(task).join("secrets").display().to_string(),
        }
    }
    /// Paths inside a chroot or image.
    pub fn isolated() -> Self {
        TaskPaths {
            alloc_dir: "/alloc".into(),
            task_dir: "/local".into(),
            secrets_dir: "/secrets".into(),
        }
    }
}

/// A built environment plus what interpolation needs from the node.
#[derive(Debug, Clone)]
pub struct TaskEnv {
    env: BTreeMap<String, String>,
    node: BTreeMap<String, String>,
}

fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl TaskEnv {
    /// Builds the environment of `task` in `alloc` on `node`. `host_env` is the agent's own
    /// environment (pass an empty map for image drivers).
    pub fn build(
        alloc: &Allocation,
        task: &Task,
        node: &Node,
        region: &str,
        paths: &TaskPaths,
        host_env: &BTreeMap<String, String>,
    ) -> TaskEnv {
        let mut node_vars = BTreeMap::new();
        node_vars.insert("node.unique.id".to_string(), node.id.clone());
        node_vars.insert("node.unique.name".to_string(), node.name.clone());
        node_vars.insert("node.datacenter".to_string(), node.datacenter.clone());
        node_vars.insert("node.region".to_string(), region.to_string());
        node_vars.insert("node.class".to_string(), node.node_class.clone());
        node_vars.insert("node.pool".to_string(), node.node_pool.clone());
        for (k, v) in &node.attributes {
            node_vars.insert(format!("attr.{k}"), v.clone());
        }
        for (k, v) in &node.meta {
            node_vars.insert(format!("meta.{k}"), v.clone());
        }

        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_string(), v);
        };
        set("NOMAD_ALLOC_DIR", paths.alloc_dir.clone());
        set("NOMAD_TASK_DIR", paths.task_dir.clone());
        set("NOMAD_SECRETS_DIR", paths.secrets_dir.clone());
        let res = alloc
            .allocated_resources
            .as_ref()
            .and_then(|r| r.tasks.get(&task.name));
        let (cpu, mem, mem_max) = match res {
            Some(r) => (r.cpu.cpu_shares, r.memory.memory_mb, r.memory.memory_max_mb),
            None => task
                .resources
                .as_ref()
                .map(|r| (r.cpu.max(0), r.memory_mb, r.memory_max_mb))
                .unwrap_or((100, 300, 0)),
        };
        set("NOMAD_CPU_LIMIT", cpu.to_string());
        set("NOMAD_MEMORY_LIMIT", mem.to_string());
        if mem_max > 0 {
            set("NOMAD_MEMORY_MAX_LIMIT", mem_max.to_string());
        }
        if let Some(r) = res
            && !r.cpu.reserved_cores.is_empty()
        {
            let cores: Vec<String> = r.cpu.reserved_cores.iter().map(|c| c.to_string()).collect();
            set("NOMAD_CPU_CORES", cores.join(","));
        }
        set("NOMAD_ALLOC_ID", alloc.id.clone());
        set("NOMAD_SHORT_ALLOC_ID", alloc.id.chars().take(8).collect());
        set("NOMAD_ALLOC_NAME", alloc.name.clone());
        set(
            "NOMAD_ALLOC_INDEX",
            alloc.index().map(|i| i.to_string()).unwrap_or_default(),
        );
        set("NOMAD_TASK_NAME", task.name.clone());
        set("NOMAD_GROUP_NAME", alloc.task_group.clone());
        set("NOMAD_NAMESPACE", alloc.namespace.clone());
        set("NOMAD_REGION", region.to_string());
        set("NOMAD_DC", node.datacenter.clone());
        set("NOMAD_JOB_ID", alloc.job_id.clone());
        let job = alloc.job.as_deref();
        set(
            "NOMAD_JOB_NAME",
            job.map(|j| j.name.clone())
                .unwrap_or_else(|| alloc.job_id.clone()),
        );
        if let Some(j) = job
            && !j.parent_id.is_empty()
        {
            set("NOMAD_JOB_PARENT_ID", j.parent_id.clone());
        }

        // Group ports.
        let ports: &[AllocatedPortMapping] = alloc
            .allocated_resources
            .as_ref()
            .map(|r| r.shared.ports.as_slice())
            .unwrap_or_default();
        for p in ports {
            let l = sanitize(&p.label);
            let inner = if p.to > 0 { p.to } else { p.value };
            let addr = format!("{}:{}", p.host_ip, p.value);
            set(&format!("NOMAD_ADDR_{l}"), addr.clone());
            set(&format!("NOMAD_HOST_ADDR_{l}"), addr);
            set(&format!("NOMAD_IP_{l}"), p.host_ip.clone());
            set(&format!("NOMAD_HOST_IP_{l}"), p.host_ip.clone());
            set(&format!("NOMAD_PORT_{l}"), inner.to_string());
            set(&format!("NOMAD_ALLOC_PORT_{l}"), inner.to_string());
            set(&format!("NOMAD_HOST_PORT_{l}"), p.value.to_string());
        }
        // Legacy task-level network ports.
        if let Some(r) = res {
            for n in &r.networks {
                for p in n.ports() {
                    let l = sanitize(&p.label);
                    set(&format!("NOMAD_ADDR_{l}"), format!("{}:{}", n.ip, p.value));
                    set(&format!("NOMAD_IP_{l}"), n.ip.clone());
                    set(&format!("NOMAD_HOST_PORT_{l}"), p.value.to_string());
                    let inner = if p.to > 0 { p.to } else { p.value };
                    set(&format!("NOMAD_PORT_{l}"), inner.to_string());
                }
            }
        }

        // Meta: job, then group, then task; each key as written and upper-cased.
        let mut meta = BTreeMap::new();
        if let Some(j) = job {
            meta.extend(j.meta.clone());
            if let Some(g) = j.task_groups.iter().find(|g| g.name == alloc.task_group) {
                meta.extend(g.meta.clone());
            }
        }
        meta.extend(task.meta.clone());
        let mut out = TaskEnv { env, node: node_vars };
        for (k, v) in meta {
            let v = out.interpolate_str(&v);
            let k = sanitize(&k);
            out.env.insert(format!("NOMAD_META_{k}"), v.clone());
            out.env
                .insert(format!("NOMAD_META_{}", k.to_ascii_uppercase()), v);
        }
        for (k, v) in host_env {
            out.env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for (k, v) in &task.env {
            let v = out.interpolate_str(v);
            out.env.insert(k.clone(), v);
        }
        out
    }

    /// The environment.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// Adds or replaces a variable.
    pub fn set(&mut self, k: &str, v: String) {
        self.env.insert(k.to_string(), v);
    }

    fn lookup(&self, name: &str) -> Option<String> {
        let name = name.trim();
        if let Some(v) = self.env.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.node.get(name) {
            return Some(v.clone());
        }
        let inner = name.strip_prefix("env[")?.strip_suffix(']')?;
        let key = inner.trim().trim_matches('"');
        self.env.get(key).cloned()
    }

    /// Replaces every `${name}` it knows in `s`.
    pub fn interpolate_str(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    match self.lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("${");
                            out.push_str(name);
                            out.push('}');
                        }
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Interpolates every string inside a driver config.
    pub fn interpolate(&self, config: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
        config
            .iter()
            .map(|(k, v)| (k.clone(), self.interpolate_value(v)))
            .collect()
    }

    fn interpolate_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.interpolate_str(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.interpolate_value(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), self.interpolate_value(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::alloc::{AllocatedResources, AllocatedSharedResources};
    use std::sync::Arc;

    fn fixture() -> (Allocation, Task, Node) {
        let mut task = Task {
            name: "web".into(),
            ..Default::default()
        };
        task.env.insert(
            "GREETING".into(),
            "hi ${NOMAD_ALLOC_INDEX} on ${node.unique.name} ${attr.kernel.name} ${nope}".into(),
        );
        task.meta.insert("tier-x".into(), "${NOMAD_TASK_NAME}".into());
        let mut job = drover_types::Job {
            id: "example".into(),
            name: "example".into(),
            ..Default::default()
        };
        job.meta.insert("owner".into(), "ops".into());
        let alloc = Allocation {
            id: "0123456789abcdef".into(),
            name: "example.cache[2]".into(),
            job_id: "example".into(),
            task_group: "cache".into(),
            namespace: "default".into(),
            job: Some(Arc::new(job)),
            allocated_resources: Some(AllocatedResources {
                shared: AllocatedSharedResources {
                    ports: vec![AllocatedPortMapping {
                        label: "db-1".into(),
                        value: 23456,
                        to: 6379,
                        host_ip: "10.0.0.5".into(),
                        ignore_collision: false,
                    }],
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut node = Node {
            id: "node-1".into(),
            name: "host-a".into(),
            datacenter: "dc1".into(),
            ..Default::default()
        };
        node.attributes.insert("kernel.name".into(), "linux".into());
        (alloc, task, node)
    }

    #[test]
    fn nomad_variables_ports_meta_and_interpolation() {
        let (alloc, task, node) = fixture();
        let mut host = BTreeMap::new();
        host.insert("PATH".to_string(), "/usr/bin".to_string());
        host.insert("NOMAD_ALLOC_ID".to_string(), "spoofed".to_string());
        let e = TaskEnv::build(&alloc, &task, &node, "global", &TaskPaths::isolated(), &host);
        let env = e.env();
        assert_eq!(env["NOMAD_ALLOC_ID"], "0123456789abcdef");
        assert_eq!(env["NOMAD_SHORT_ALLOC_ID"], "01234567");
        assert_eq!(env["NOMAD_ALLOC_INDEX"], "2");
        assert_eq!(env["NOMAD_TASK_DIR"], "/local");
        assert_eq!(env["NOMAD_PORT_db_1"], "6379");
        assert_eq!(env["NOMAD_HOST_PORT_db_1"], "23456");
        assert_eq!(env["NOMAD_ADDR_db_1"], "10.0.0.5:23456");
        assert_eq!(env["NOMAD_META_owner"], "ops");
        assert_eq!(env["NOMAD_META_OWNER"], "ops");
        assert_eq!(env["NOMAD_META_tier_x"], "web");
        assert_eq!(env["PATH"], "/usr/bin");
        assert_eq!(env["GREETING"], "hi 2 on host-a linux ${nope}");
        assert_eq!(env["NOMAD_DC"], "dc1");
        assert_eq!(env["NOMAD_REGION"], "global");
    }

    #[test]
    fn driver_config_strings_are_interpolated_deeply() {
        let (alloc, task, node) = fixture();
        let e = TaskEnv::build(
            &alloc,
            &task,
            &node,
            "global",
            &TaskPaths::isolated(),
            &BTreeMap::new(),
        );
        let mut cfg = BTreeMap::new();
        cfg.insert(
            "command".to_string(),
            Value::String("${NOMAD_TASK_DIR}/run".into()),
        );
        cfg.insert(
            "args".to_string(),
            serde_json::json!(["-port", "${NOMAD_PORT_db_1}", 3, {"x": "${env[\"NOMAD_JOB_ID\"]}"}, "${unclosed"]),
        );
        let out = e.interpolate(&cfg);
        assert_eq!(out["command"], "/local/run");
        assert_eq!(
            out["args"],
            serde_json::json!(["-port", "6379", 3, {"x": "example"}, "${unclosed"])
        );
    }
}
