//! Validation of a canonical job: every problem at once, each naming where it is.
//!
//! ```text
//!  canonical Job ──validate_job──▶ Ok(warnings) | Err(JobValidationError { problems })
//! ```
//!
//! A [`Problem`] has a path (`group "web" → task "server" → resources`) and a message
//! (`memory must be at least 10 MB, got 4`). [`JobValidationError`]'s `Display` follows Nomad's
//! multi-error text (`2 errors occurred:\n\t* …\n\t* …\n\n`), which the HTTP API returns as the
//! body of a 500 on register and plan, and which scripts match on.
//!
//! The rules are Nomad's (`reference/http-api.md` §2, `client-drivers-jobspec.md` §6), plus
//! Drover's limits that protect the servers: [`MAX_GROUP_COUNT`] allocations per group and
//! [`MAX_ID_LEN`] bytes per job ID.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use regex::Regex;

use crate::job::{
    Affinity, Constraint, Job, NetworkResource, ReschedulePolicy, Resources, RestartPolicy, Service, Spread,
    Task, TaskGroup, UpdateStrategy, job_type,
};
use crate::time::{SECOND, format_duration};

/// Largest `count` a group may ask for.
pub const MAX_GROUP_COUNT: i64 = 100_000;
/// Longest job ID, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Highest job priority (Nomad's default `job_max_priority`).
pub const MAX_PRIORITY: i64 = 100;

/// One thing wrong with a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `["group \"web\"", "task \"server\"", "resources"]`.
    pub path: Vec<String>,
    /// What, for a person.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path.join(" → "), self.message)
        }
    }
}

/// All problems of a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct JobValidationError {
    /// Every problem found, in job order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for JobValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(f, "{n} error{} occurred:", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            writeln!(f, "\t* {p}")?;
        }
        writeln!(f)
    }
}

struct Checker {
    path: Vec<String>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Checker {
    fn err(&mut self, msg: impl Into<String>) {
        self.problems.push(Problem {
            path: self.path.clone(),
            message: msg.into(),
        });
    }
    fn warn(&mut self, msg: impl Into<String>) {
        let p = Problem {
            path: self.path.clone(),
            message: msg.into(),
        };
        self.warnings.push(p.to_string());
    }
    fn within<F: FnOnce(&mut Checker)>(&mut self, seg: impl Into<String>, f: F) {
        self.path.push(seg.into());
        f(self);
        self.path.pop();
    }
}

/// Validates a canonical job. `Ok` carries warnings (things Nomad accepts but that are likely
/// mistakes).
pub fn validate_job(job: &Job) -> Result<Vec<String>, JobValidationError> {
    let mut c = Checker {
        path: Vec::new(),
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    check_job(&mut c, job);
    if c.problems.is_empty() {
        Ok(c.warnings)
    } else {
        Err(JobValidationError { problems: c.problems })
    }
}

fn check_job(c: &mut Checker, job: &Job) {
    if job.region.is_empty() {
        c.err("missing job region");
    }
    if job.id.is_empty() {
        c.err("missing job ID");
    } else {
        if job.id.contains(' ') {
            c.err("job ID contains a space");
        }
        if job.id.contains('\0') {
            c.err("job ID contains a null character");
        }
        if job.id.len() > MAX_ID_LEN {
            c.err(format!(
                "job ID is {} bytes long; the limit is {MAX_ID_LEN}",
                job.id.len()
            ));
        }
    }
    if job.name.is_empty() {
        c.err("missing job name");
    } else if job.name.contains('\0') {
        c.err("job name contains a null character");
    }
    if job.namespace.is_empty() {
        c.err("job must be in a namespace");
    }
    let jt = job.job_type.as_str();
    if !job_type::ALL.contains(&jt) {
        c.err(format!(
            "invalid job type {jt:?}: must be one of service, batch, system, sysbatch"
        ));
    }
    if job.priority < 1 || job.priority > MAX_PRIORITY {
        c.err(format!(
            "job priority must be between 1 and {MAX_PRIORITY}, got {}",
            job.priority
        ));
    }
    if job.datacenters.is_empty() {
        c.err("missing job datacenters");
    }
    for dc in &job.datacenters {
        if dc.is_empty() {
            c.err("job datacenter must be a non-empty string");
        }
    }
    if job.task_groups.is_empty() {
        c.err("missing job task groups: a job needs at least one group");
    }
    for (i, con) in job.constraints.iter().enumerate() {
        c.within(format!("constraint {}", i + 1), |c| check_constraint(c, con));
    }
    let system_like = matches!(jt, job_type::SYSTEM | job_type::SYSBATCH);
    if jt == job_type::SYSTEM {
        if !job.affinities.is_empty() {
            c.err("system jobs may not have an affinity block");
        }
        if !job.spreads.is_empty() {
            c.err("system jobs may not have a spread block");
        }
    }
    for (i, a) in job.affinities.iter().enumerate() {
        c.within(format!("affinity {}", i + 1), |c| check_affinity(c, a));
    }
    for (i, s) in job.spreads.iter().enumerate() {
        c.within(format!("spread {}", i + 1), |c| check_spread(c, s));
    }
    if let Some(p) = &job.periodic {
        c.within("periodic", |c| {
            if !matches!(jt, job_type::BATCH | job_type::SYSBATCH) {
                c.err("periodic can only be used with batch or sysbatch jobs");
            }
            if p.enabled {
                let specs: Vec<&String> = if p.specs.is_empty() {
                    vec![&p.spec]
                } else {
                    p.specs.iter().collect()
                };
                for spec in specs {
                    if let Err(e) = check_cron(spec) {
                        c.err(format!("invalid cron expression {spec:?}: {e}"));
                    }
                }
                if p.spec_type != "cron" {
                    c.err(format!("unknown periodic spec type {:?}", p.spec_type));
                }
            }
        });
    }
    if let Some(p) = &job.parameterized_job {
        c.within("parameterized", |c| {
            if !matches!(jt, job_type::BATCH | job_type::SYSBATCH) {
                c.err("parameterized jobs can only be used with batch or sysbatch jobs");
            }
            if !matches!(p.payload.as_str(), "optional" | "required" | "forbidden") {
                c.err(format!(
                    "payload must be optional, required or forbidden, got {:?}",
                    p.payload
                ));
            }
            let req: HashSet<&String> = p.meta_required.iter().collect();
            for k in &p.meta_optional {
                if req.contains(k) {
                    c.err(format!("meta key {k:?} is both required and optional"));
                }
            }
        });
        if job.periodic.is_some() {
            c.err("a job cannot be both periodic and parameterized");
        }
    }

    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, tg) in job.task_groups.iter().enumerate() {
        if tg.name.is_empty() {
            c.err(format!("task group {} is missing a name", i + 1));
        } else if let Some(prev) = seen.insert(&tg.name, i) {
            c.err(format!(
                "task group {} redefines {:?} from group {}",
                i + 1,
                tg.name,
                prev + 1
            ));
        }
        c.within(format!("group {:?}", tg.name), |c| {
            check_group(c, job, tg, system_like)
        });
    }
}

fn check_group(c: &mut Checker, job: &Job, tg: &TaskGroup, system_like: bool) {
    let jt = job.job_type.as_str();
    if tg.count < 0 {
        c.err(format!("count can't be negative, got {}", tg.count));
    } else if tg.count > MAX_GROUP_COUNT {
        c.err(format!(
            "count {} is larger than the limit of {MAX_GROUP_COUNT} allocations per group",
            tg.count
        ));
    }
    if jt == job_type::SYSTEM && tg.count > 1 {
        c.err(format!(
            "count is {} but system jobs run one allocation per node: count cannot exceed 1",
            tg.count
        ));
    }
    if tg.tasks.is_empty() {
        c.err("missing tasks: a group needs at least one task");
    }
    for (i, con) in tg.constraints.iter().enumerate() {
        c.within(format!("constraint {}", i + 1), |c| check_constraint(c, con));
    }
    if jt == job_type::SYSTEM {
        if !tg.affinities.is_empty() {
            c.err("system jobs may not have an affinity block");
        }
        if !tg.spreads.is_empty() {
            c.err("system jobs may not have a spread block");
        }
    }
    for (i, a) in tg.affinities.iter().enumerate() {
        c.within(format!("affinity {}", i + 1), |c| check_affinity(c, a));
    }
    for (i, s) in tg.spreads.iter().enumerate() {
        c.within(format!("spread {}", i + 1), |c| check_spread(c, s));
    }
    if let Some(r) = &tg.restart_policy {
        c.within("restart", |c| check_restart(c, r));
    }
    if let Some(r) = &tg.reschedule_policy {
        c.within("reschedule", |c| {
            if system_like {
                c.err(format!("{jt} jobs do not support a reschedule block"));
            } else {
                check_reschedule(c, r);
            }
        });
    }
    if let Some(u) = &tg.update {
        c.within("update", |c| {
            if matches!(jt, job_type::BATCH | job_type::SYSBATCH) {
                c.err(format!("job type {jt:?} does not allow an update block"));
            } else {
                check_update(c, u);
            }
        });
    }
    if let Some(m) = &tg.migrate {
        c.within("migrate", |c| {
            if matches!(jt, job_type::BATCH | job_type::SYSTEM | job_type::SYSBATCH) {
                c.err(format!("job type {jt:?} does not allow a migrate block"));
                return;
            }
            if m.max_parallel() < 0 {
                c.err("max_parallel must be zero or more");
            }
            if let Some(h) = &m.health_check
                && !matches!(h.as_str(), "checks" | "task_states")
            {
                c.err(format!(
                    "health_check must be \"checks\" or \"task_states\", got {h:?}"
                ));
            }
            if let (Some(a), Some(b)) = (m.min_healthy_time, m.healthy_deadline)
                && a > b
            {
                c.err("min_healthy_time must not be greater than healthy_deadline");
            }
        });
    }
    if let Some(d) = &tg.ephemeral_disk {
        c.within("ephemeral_disk", |c| {
            if d.size_mb < 10 {
                c.err(format!("size must be at least 10 MB, got {}", d.size_mb));
            }
        });
    }
    if tg.networks.len() > 1 {
        c.err("only one group network block is supported");
    }
    let mut port_labels = BTreeSet::new();
    for n in &tg.networks {
        c.within("network", |c| check_network(c, n, &mut port_labels));
    }
    for t in &tg.tasks {
        if let Some(r) = &t.resources {
            for n in &r.networks {
                c.within(format!("task {:?} → resources → network", t.name), |c| {
                    check_network(c, n, &mut port_labels)
                });
            }
        }
    }
    for (name, v) in &tg.volumes {
        c.within(format!("volume {name:?}"), |c| {
            if !matches!(v.volume_type.as_str(), "host" | "csi") {
                c.err(format!(
                    "type must be \"host\" or \"csi\", got {:?}",
                    v.volume_type
                ));
            }
            if v.source.is_empty() {
                c.err("source must be set");
            }
        });
    }
    if let Some(s) = &tg.scaling {
        c.within("scaling", |c| {
            if s.min < 0 {
                c.err("min must be zero or more");
            }
            match s.max {
                None => c.err("max must be set"),
                Some(max) => {
                    if max < s.min {
                        c.err(format!("max ({max}) must not be less than min ({})", s.min));
                    }
                    if tg.count > max {
                        c.err(format!(
                            "group count ({}) must not be greater than max ({max})",
                            tg.count
                        ));
                    }
                }
            }
            if tg.count < s.min {
                c.err(format!(
                    "group count ({}) must not be less than min ({})",
                    tg.count, s.min
                ));
            }
        });
    }
    if tg.max_client_disconnect.is_some() {
        c.warn("max_client_disconnect is deprecated: use disconnect { lost_after }");
    }
    if tg.stop_after_client_disconnect.is_some() {
        c.warn("stop_after_client_disconnect is deprecated: use disconnect { stop_on_client_after }");
    }
    if let Some(d) = &tg.disconnect {
        c.within("disconnect", |c| {
            if tg.max_client_disconnect.is_some() || tg.stop_after_client_disconnect.is_some() {
                c.err("disconnect cannot be combined with max_client_disconnect or stop_after_client_disconnect");
            }
            if !matches!(d.reconcile.as_str(), "best_score" | "keep_original" | "keep_replacement" | "longest_running")
            {
                c.err(format!("unknown reconcile strategy {:?}", d.reconcile));
            }
            if d.lost_after < 0 {
                c.err("lost_after must not be negative");
            }
        });
    }
    let group_ports: BTreeSet<String> = port_labels.clone();
    for (i, s) in tg.services.iter().enumerate() {
        c.within(format!("service {}", service_label(s, i)), |c| {
            check_service(c, s, &group_ports, true)
        });
    }

    let mut task_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut leaders = 0;
    for (i, t) in tg.tasks.iter().enumerate() {
        if t.name.is_empty() {
            c.err(format!("task {} is missing a name", i + 1));
        } else if let Some(prev) = task_names.insert(&t.name, i) {
            c.err(format!(
                "task {} redefines {:?} from task {}",
                i + 1,
                t.name,
                prev + 1
            ));
        }
        if t.leader {
            leaders += 1;
        }
        c.within(format!("task {:?}", t.name), |c| {
            check_task(c, job, tg, t, &group_ports)
        });
    }
    if leaders > 1 {
        c.err("only one task may be marked as leader");
    }
    if let Some(d) = &tg.ephemeral_disk {
        for t in &tg.tasks {
            let Some(l) = &t.log_config else { continue };
            let logs = l.max_files.saturating_mul(l.max_file_size_mb);
            if logs >= d.size_mb {
                c.within(format!("task {:?} → logs", t.name), |c| {
                    c.err(format!(
                        "log storage ({logs} MB = max_files × max_file_size) must be less than the ephemeral disk ({} MB)",
                        d.size_mb
                    ))
                });
            }
        }
    }
    if let Some(s) = &tg.scaling
        && s.policy_type != "horizontal"
    {
        c.err(format!(
            "scaling: a group scaling policy must be of type \"horizontal\", got {:?}",
            s.policy_type
        ));
    }
}

fn service_label(s: &Service, i: usize) -> String {
    if s.name.is_empty() {
        format!("{}", i + 1)
    } else {
        format!("{:?}", s.name)
    }
}

fn check_task(c: &mut Checker, job: &Job, tg: &TaskGroup, t: &Task, group_ports: &BTreeSet<String>) {
    if t.driver.is_empty() {
        c.err("missing driver");
    }
    if t.name.contains('/') {
        c.err("task name must not contain '/'");
    }
    if t.kill_timeout < 0 {
        c.err("kill_timeout must not be negative");
    }
    if t.shutdown_delay < 0 {
        c.err("shutdown_delay must not be negative");
    }
    match &t.resources {
        Some(r) => c.within("resources", |c| check_resources(c, r)),
        None => c.err("missing resources"),
    }
    if let Some(r) = &t.restart_policy {
        c.within("restart", |c| check_restart(c, r));
    }
    if let Some(l) = &t.log_config {
        c.within("logs", |c| {
            if l.max_files < 1 {
                c.err(format!("max_files must be at least 1, got {}", l.max_files));
            }
            if l.max_file_size_mb < 1 {
                c.err(format!(
                    "max_file_size must be at least 1 MB, got {}",
                    l.max_file_size_mb
                ));
            }
        });
    }
    if let Some(l) = &t.lifecycle {
        c.within("lifecycle", |c| {
            if !matches!(l.hook.as_str(), "prestart" | "poststart" | "poststop") {
                c.err(format!(
                    "hook must be prestart, poststart or poststop, got {:?}",
                    l.hook
                ));
            }
        });
    }
    for (i, con) in t.constraints.iter().enumerate() {
        c.within(format!("constraint {}", i + 1), |c| check_constraint(c, con));
    }
    if job.job_type == job_type::SYSTEM && !t.affinities.is_empty() {
        c.err("system jobs may not have an affinity block");
    }
    for (i, a) in t.affinities.iter().enumerate() {
        c.within(format!("affinity {}", i + 1), |c| check_affinity(c, a));
    }
    for (i, a) in t.artifacts.iter().enumerate() {
        c.within(format!("artifact {}", i + 1), |c| {
            if a.getter_source.is_empty() {
                c.err("source must be set");
            }
            if !matches!(a.getter_mode.as_str(), "any" | "file" | "dir") {
                c.err(format!("mode must be any, file or dir, got {:?}", a.getter_mode));
            }
            if escapes(&a.relative_dest) {
                c.err(format!(
                    "destination {:?} escapes the task directory",
                    a.relative_dest
                ));
            }
        });
    }
    for (i, tmpl) in t.templates.iter().enumerate() {
        c.within(format!("template {}", i + 1), |c| {
            if tmpl.source_path.is_empty() && tmpl.embedded_tmpl.is_empty() {
                c.err("must have a source or data");
            }
            if tmpl.dest_path.is_empty() {
                c.err("must have a destination");
            }
            match tmpl.change_mode.as_str() {
                "restart" | "noop" => {}
                "signal" => {
                    if tmpl.change_signal.is_empty() {
                        c.err("change_mode \"signal\" needs change_signal");
                    }
                }
                "script" => {
                    if tmpl.change_script.as_ref().is_none_or(|s| s.command.is_empty()) {
                        c.err("change_mode \"script\" needs a change_script block with a command");
                    }
                }
                other => c.err(format!(
                    "change_mode must be restart, signal, script or noop, got {other:?}"
                )),
            }
            if tmpl.splay < 0 {
                c.err("splay must not be negative");
            }
            if i64::from_str_radix(&tmpl.perms, 8).is_err() {
                c.err(format!(
                    "perms must be an octal file mode like \"0644\", got {:?}",
                    tmpl.perms
                ));
            }
        });
    }
    let mut task_ports = group_ports.clone();
    if let Some(r) = &t.resources {
        for n in &r.networks {
            task_ports.extend(n.ports().map(|p| p.label.clone()));
        }
    }
    for (i, s) in t.services.iter().enumerate() {
        c.within(format!("service {}", service_label(s, i)), |c| {
            check_service(c, s, &task_ports, false)
        });
    }
    for (i, vm) in t.volume_mounts.iter().enumerate() {
        c.within(format!("volume_mount {}", i + 1), |c| {
            if !tg.volumes.contains_key(&vm.volume) {
                c.err(format!(
                    "references volume {:?}, which the group does not define",
                    vm.volume
                ));
            }
            if vm.destination.is_empty() {
                c.err("destination must be set");
            }
            if !matches!(
                vm.propagation_mode.as_str(),
                "private" | "host-to-task" | "bidirectional"
            ) {
                c.err(format!("unknown propagation_mode {:?}", vm.propagation_mode));
            }
        });
    }
    if let Some(v) = &t.vault {
        c.within("vault", |c| match v.change_mode.as_str() {
            "restart" | "noop" => {}
            "signal" if !v.change_signal.is_empty() => {}
            "signal" => c.err("change_mode \"signal\" needs change_signal"),
            other => c.err(format!(
                "change_mode must be restart, signal or noop, got {other:?}"
            )),
        });
    }
}

/// Does a destination relative to the task directory leave the allocation directory? The task
/// directory sits one level below it, so `../alloc/x` is fine and `../../x` is not.
fn escapes(rel: &str) -> bool {
    if rel.starts_with('/') {
        return false; // absolute paths are taken inside the task's chroot
    }
    let mut depth: i64 = 1;
    for part in rel.split('/') {
        match part {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

fn check_resources(c: &mut Checker, r: &Resources) {
    if r.cores < 0 {
        c.err(format!("cores must not be negative, got {}", r.cores));
    }
    if r.cores > 0 && r.cpu > 0 {
        c.err("a task can ask for cpu or cores, not both");
    } else if r.cores == 0 && r.cpu < 1 {
        c.err(format!("cpu must be at least 1 MHz, got {}", r.cpu));
    }
    if r.memory_mb < 10 {
        c.err(format!("memory must be at least 10 MB, got {}", r.memory_mb));
    }
    if r.memory_max_mb != 0 && r.memory_max_mb < r.memory_mb {
        c.err(format!(
            "memory_max ({} MB) must not be less than memory ({} MB)",
            r.memory_max_mb, r.memory_mb
        ));
    }
    if r.disk_mb < 0 {
        c.err("disk must not be negative");
    }
    if let Some(s) = r.secrets_mb
        && (s < 0 || s > r.memory_mb)
    {
        c.err(format!(
            "secrets ({s} MB) must be between 0 and memory ({} MB)",
            r.memory_mb
        ));
    }
    for d in &r.devices {
        c.within(format!("device {:?}", d.name), |c| {
            if d.name.is_empty() {
                c.err("device name must be set");
            }
            if d.count < 1 {
                c.err(format!("count must be at least 1, got {}", d.count));
            }
        });
    }
}

fn check_network(c: &mut Checker, n: &NetworkResource, labels: &mut BTreeSet<String>) {
    let mode_ok = matches!(n.mode.as_str(), "" | "host" | "bridge" | "none") || n.mode.starts_with("cni/");
    if !mode_ok {
        c.err(format!(
            "mode must be host, bridge, none or cni/<name>, got {:?}",
            n.mode
        ));
    }
    for p in n.ports() {
        if p.label.is_empty() {
            c.err("port without a label");
        } else if !labels.insert(p.label.clone()) {
            c.err(format!("port label {:?} is already in use", p.label));
        }
        if p.value < 0 || p.value > 65535 {
            c.err(format!("port {:?} has invalid static value {}", p.label, p.value));
        }
        if p.to < -1 || p.to > 65535 {
            c.err(format!("port {:?} has invalid 'to' value {}", p.label, p.to));
        }
    }
    for p in &n.reserved_ports {
        if p.value == 0 {
            c.err(format!(
                "static port {:?} must have a value between 1 and 65535",
                p.label
            ));
        }
    }
    let mut statics = BTreeSet::new();
    for p in &n.reserved_ports {
        if p.value > 0 && !p.ignore_collision && !statics.insert((p.host_network.clone(), p.value)) {
            c.err(format!("static port {} is used by more than one port", p.value));
        }
    }
}

fn check_service(c: &mut Checker, s: &Service, ports: &BTreeSet<String>, group: bool) {
    if s.name.is_empty() {
        c.err("missing service name");
    } else if s.name.contains(' ') && !s.name.contains("${") {
        c.err(format!("service name {:?} must not contain spaces", s.name));
    }
    if !matches!(s.provider.as_str(), "consul" | "nomad") {
        c.err(format!(
            "provider must be \"consul\" or \"nomad\", got {:?}",
            s.provider
        ));
    }
    if !matches!(
        s.address_mode.as_str(),
        "auto" | "host" | "driver" | "alloc" | "alloc_ipv6"
    ) {
        c.err(format!("unknown address_mode {:?}", s.address_mode));
    }
    if !matches!(
        s.on_update.as_str(),
        "require_healthy" | "ignore_warnings" | "ignore"
    ) {
        c.err(format!(
            "on_update must be require_healthy, ignore_warnings or ignore, got {:?}",
            s.on_update
        ));
    }
    let port_known = |label: &str| {
        label.is_empty() || label.parse::<u16>().is_ok() || label.contains("${") || ports.contains(label)
    };
    // Group services in bridge/Connect setups may name ports that live in sidecars; only check
    // labels when the group declares ports at all, like Nomad's port-label validation.
    if !ports.is_empty() && !port_known(&s.port_label) && s.connect.is_none() {
        c.err(format!(
            "port {:?} is not defined in the {} network",
            s.port_label,
            if group { "group" } else { "task or group" }
        ));
    }
    for (i, chk) in s.checks.iter().enumerate() {
        c.within(
            format!(
                "check {}",
                if chk.name.is_empty() {
                    (i + 1).to_string()
                } else {
                    format!("{:?}", chk.name)
                }
            ),
            |c| {
                let t = chk.check_type.as_str();
                if !matches!(t, "http" | "tcp" | "script" | "grpc") {
                    c.err(format!("type must be http, tcp, script or grpc, got {t:?}"));
                }
                if s.provider == "nomad" && !matches!(t, "http" | "tcp") {
                    c.err(format!(
                        "the nomad provider supports only http and tcp checks, not {t:?}"
                    ));
                }
                if t == "http" && chk.path.is_empty() {
                    c.err("http checks need a path");
                }
                if t == "script" && chk.command.is_empty() {
                    c.err("script checks need a command");
                }
                if chk.interval < SECOND {
                    c.err(format!(
                        "interval ({}) must be at least 1s",
                        format_duration(chk.interval)
                    ));
                }
                if chk.timeout < SECOND {
                    c.err(format!(
                        "timeout ({}) must be at least 1s",
                        format_duration(chk.timeout)
                    ));
                }
                if !chk.port_label.is_empty()
                    && !ports.is_empty()
                    && !port_known(&chk.port_label)
                    && !chk.expose
                {
                    c.err(format!("port {:?} is not defined in the network", chk.port_label));
                }
            },
        );
    }
}

fn check_restart(c: &mut Checker, r: &RestartPolicy) {
    let mode = r.mode();
    if !matches!(mode, "delay" | "fail") {
        c.err(format!("mode must be \"delay\" or \"fail\", got {mode:?}"));
    }
    if r.attempts() < 0 {
        c.err(format!("attempts must not be negative, got {}", r.attempts()));
    }
    if r.delay() < 0 {
        c.err("delay must not be negative");
    }
    if r.interval() < 0 {
        c.err("interval must not be negative");
    }
    if r.attempts() == 0 && mode != "fail" {
        c.err(format!(
            "{} attempts with mode {mode:?} is ambiguous: use mode \"fail\"",
            r.attempts()
        ));
    }
    let needed = r.delay().saturating_mul(r.attempts());
    if r.attempts() > 0 && needed > r.interval() {
        c.err(format!(
            "{} restarts with a delay of {} cannot fit in an interval of {}",
            r.attempts(),
            format_duration(r.delay()),
            format_duration(r.interval())
        ));
    }
}

fn check_reschedule(c: &mut Checker, r: &ReschedulePolicy) {
    let f = r.delay_function();
    if !matches!(f, "constant" | "exponential" | "fibonacci") {
        c.err(format!(
            "delay_function must be constant, exponential or fibonacci, got {f:?}"
        ));
    }
    if r.attempts() < 0 {
        c.err("attempts must not be negative");
    }
    let enabled = r.unlimited() || r.attempts() > 0;
    if !enabled {
        return;
    }
    if r.delay() < 5 * SECOND {
        c.err(format!(
            "delay ({}) must be at least 5s",
            format_duration(r.delay())
        ));
    }
    if f != "constant" && r.max_delay() < r.delay() {
        c.err(format!(
            "max_delay ({}) must not be less than delay ({})",
            format_duration(r.max_delay()),
            format_duration(r.delay())
        ));
    }
    if !r.unlimited() && r.interval() <= 0 {
        c.err("interval must be set when unlimited is false");
    }
}

fn check_update(c: &mut Checker, u: &UpdateStrategy) {
    if let Some(h) = &u.health_check
        && !matches!(h.as_str(), "checks" | "task_states" | "manual")
    {
        c.err(format!(
            "health_check must be checks, task_states or manual, got {h:?}"
        ));
    }
    if u.max_parallel() < 0 {
        c.err("max_parallel must not be negative");
    }
    if u.canary() < 0 {
        c.err("canary must not be negative");
    }
    if u.auto_promote == Some(true) && u.canary() == 0 {
        c.err("auto_promote needs canary > 0");
    }
    let (mht, hd, pd) = (
        u.min_healthy_time.unwrap_or(0),
        u.healthy_deadline.unwrap_or(0),
        u.progress_deadline.unwrap_or(0),
    );
    if mht < 0 || hd <= 0 || pd < 0 {
        c.err("min_healthy_time, healthy_deadline and progress_deadline must not be negative (healthy_deadline must be positive)");
    }
    if mht >= hd {
        c.err(format!(
            "min_healthy_time ({}) must be less than healthy_deadline ({})",
            format_duration(mht),
            format_duration(hd)
        ));
    }
    if pd != 0 && hd > pd {
        c.err(format!(
            "healthy_deadline ({}) must not be greater than progress_deadline ({})",
            format_duration(hd),
            format_duration(pd)
        ));
    }
    if u.stagger.unwrap_or(0) <= 0 {
        c.err("stagger must be positive");
    }
}

const OPERANDS: [&str; 19] = [
    "=",
    "==",
    "is",
    "!=",
    "not",
    "<",
    "<=",
    ">",
    ">=",
    "distinct_hosts",
    "distinct_property",
    "regexp",
    "version",
    "semver",
    "set_contains",
    "set_contains_all",
    "set_contains_any",
    "is_set",
    "is_not_set",
];

fn check_constraint(c: &mut Checker, con: &Constraint) {
    let op = con.operand.as_str();
    if op.is_empty() {
        c.err("missing constraint operand");
        return;
    }
    if !OPERANDS.contains(&op) {
        c.err(format!("unknown constraint operand {op:?}"));
        return;
    }
    let needs_l = !matches!(op, "distinct_hosts");
    if needs_l && con.l_target.is_empty() && op != "distinct_property" {
        c.err(format!("operand {op:?} needs an attribute (LTarget)"));
    }
    match op {
        "distinct_hosts" | "is_set" | "is_not_set" => {}
        "distinct_property" => {
            if con.l_target.is_empty() {
                c.err("distinct_property needs an attribute");
            }
            if !con.r_target.is_empty() && con.r_target.parse::<u64>().map(|n| n == 0).unwrap_or(true) {
                c.err(format!(
                    "distinct_property value must be a positive count, got {:?}",
                    con.r_target
                ));
            }
        }
        "regexp" => {
            if let Err(e) = Regex::new(&con.r_target) {
                c.err(format!("invalid regular expression {:?}: {e}", con.r_target));
            }
        }
        "version" | "semver" => {
            if con.r_target.trim().is_empty() {
                c.err(format!("operand {op:?} needs a version constraint"));
            }
        }
        _ => {
            if con.r_target.is_empty() && !matches!(op, "=" | "==" | "is" | "!=" | "not") {
                c.err(format!("operand {op:?} needs a value (RTarget)"));
            }
        }
    }
}

fn check_affinity(c: &mut Checker, a: &Affinity) {
    let op = a.operand.as_str();
    if op.is_empty() {
        c.err("missing affinity operand");
    } else if !OPERANDS.contains(&op)
        || matches!(
            op,
            "distinct_hosts" | "distinct_property" | "is_set" | "is_not_set"
        )
    {
        c.err(format!("unknown affinity operand {op:?}"));
    }
    if a.l_target.is_empty() {
        c.err("affinity needs an attribute");
    }
    if a.weight == 0 {
        c.err("affinity weight cannot be zero");
    } else if !(-100..=100).contains(&a.weight) {
        c.err(format!(
            "affinity weight must be between -100 and 100, got {}",
            a.weight
        ));
    }
    if op == "regexp"
        && let Err(e) = Regex::new(&a.r_target)
    {
        c.err(format!("invalid regular expression {:?}: {e}", a.r_target));
    }
}

fn check_spread(c: &mut Checker, s: &Spread) {
    if s.attribute.is_empty() {
        c.err("spread needs an attribute");
    }
    if !(0..=100).contains(&s.weight) || s.weight == 0 {
        c.err(format!(
            "spread weight must be between 1 and 100, got {}",
            s.weight
        ));
    }
    let mut seen = BTreeSet::new();
    let mut sum = 0;
    for t in &s.spread_target {
        if !seen.insert(&t.value) {
            c.err(format!("spread target {:?} is listed twice", t.value));
        }
        if !(0..=100).contains(&t.percent) {
            c.err(format!(
                "spread target {:?} percent must be between 0 and 100, got {}",
                t.value, t.percent
            ));
        }
        sum += t.percent;
    }
    if sum > 100 {
        c.err(format!(
            "spread target percentages add up to {sum}, more than 100"
        ));
    }
}

/// A light cron check (5–7 fields of digits, `*`, `,`, `-`, `/`, names, `L`, `W`, `#`, `?`, or an
/// `@` shorthand). The periodic dispatcher parses fully; this only catches obvious typos early.
pub fn check_cron(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty cron expression".into());
    }
    if let Some(short) = spec.strip_prefix('@') {
        return match short {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
            _ => Err(format!("unknown shorthand @{short}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if !(5..=7).contains(&fields.len()) {
        return Err(format!("expected 5 to 7 fields, got {}", fields.len()));
    }
    for f in fields {
        if !f
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "*,-/?#".contains(ch))
        {
            return Err(format!("unexpected characters in field {f:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonicalize::canonicalize_job;
    use crate::job::Task;

    fn base() -> Job {
        let mut j = Job {
            id: "web".into(),
            task_groups: vec![TaskGroup {
                name: "web".into(),
                tasks: vec![Task {
                    name: "server".into(),
                    driver: "raw_exec".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        canonicalize_job(&mut j);
        j
    }

    #[test]
    fn valid_job_passes() {
        assert!(validate_job(&base()).is_ok());
    }

    #[test]
    fn reports_all_problems_with_paths() {
        let mut j = base();
        j.priority = 0;
        j.job_type = "cron".into();
        j.task_groups[0].tasks[0].resources.as_mut().unwrap().memory_mb = 4;
        j.task_groups[0].tasks[0].driver.clear();
        let e = validate_job(&j).unwrap_err();
        let texts: Vec<String> = e.problems.iter().map(|p| p.to_string()).collect();
        assert!(
            texts.contains(&"job priority must be between 1 and 100, got 0".to_string()),
            "{texts:?}"
        );
        assert!(texts.iter().any(|t| t.starts_with("invalid job type \"cron\"")));
        assert!(
            texts.contains(
                &"group \"web\" → task \"server\" → resources: memory must be at least 10 MB, got 4"
                    .to_string()
            ),
            "{texts:?}"
        );
        assert!(texts.contains(&"group \"web\" → task \"server\": missing driver".to_string()));
        assert_eq!(e.problems.len(), 4);
        assert!(e.to_string().starts_with("4 errors occurred:\n\t* "));
    }

    #[test]
    fn limits_guard_the_servers() {
        let mut j = base();
        j.task_groups[0].count = 1_000_000_000;
        j.id = "x".repeat(10 * 1024);
        let e = validate_job(&j).unwrap_err();
        assert!(e.problems.iter().any(|p| p.message.contains("limit of 100000")));
        assert!(e.problems.iter().any(|p| p.message.contains("10240 bytes long")));
    }

    #[test]
    fn restart_window_must_fit() {
        let mut j = base();
        j.task_groups[0].tasks[0].restart_policy = Some(RestartPolicy {
            attempts: Some(10),
            delay: Some(60 * SECOND),
            interval: Some(60 * SECOND),
            ..RestartPolicy::default_for("service")
        });
        let e = validate_job(&j).unwrap_err();
        assert!(
            e.problems[0]
                .message
                .contains("cannot fit in an interval of 1m0s"),
            "{:?}",
            e.problems
        );
    }

    #[test]
    fn cron_check() {
        assert!(check_cron("*/15 * * * *").is_ok());
        assert!(check_cron("0 0 * * MON-FRI").is_ok());
        assert!(check_cron("@daily").is_ok());
        assert!(check_cron("* *").is_err());
        assert!(check_cron("@sometimes").is_err());
    }
}
