//! Canonicalisation: fill in the defaults Nomad fills in before validating and storing a job.
//!
//! ```text
//!  decoded Job (serde field defaults applied) ──canonicalize_job──▶ canonical Job
//! ```
//!
//! The rules, in the order they run:
//! 1. Job: `Name` ← `ID`; `Namespace` ← `default`; `Region` ← `global`; `Type` ← `service`;
//!    `NodePool` ← `default`; `Datacenters` ← `["*"]`; service and system jobs without `update`
//!    get the default update strategy, and a written job-level `update` is completed from it.
//! 2. Each group: `Count` ← `scaling.min` or 1; `scaling.min` ← the count; `ephemeral_disk`
//!    default; `update` = job update merged with the group's (service/system only); `restart` =
//!    type default ⊕ group; `reschedule` = type default ⊕ job ⊕ group (service/batch); `migrate`
//!    = default ⊕ job ⊕ group (service only); network mode `host`; service names
//!    `<job>-<group>`.
//! 3. Each task: `resources` default (CPU 100 MHz unless `cores`, 300 MB); `restart` = group ⊕
//!    task; `logs` default; service names `<job>-<group>-<task>`; template signal upper-cased;
//!    artifact destination `local/`; an empty `lifecycle` dropped.
//! 4. The job-level `reschedule` and `migrate` blocks, once merged into groups, are cleared.
//! 5. Consul Connect, as Nomad's server does on register: a group service with
//!    `connect { sidecar_service {} }` gets a `connect-proxy-<service>` prestart sidecar task, and
//!    one with `connect { gateway { ingress|terminating|mesh {} } }` a `connect-<kind>-<service>`
//!    task, unless the group already has a task of that `kind`. (Drover carries Connect
//!    configuration but does not run Consul; the injected tasks keep such jobs valid.)
//!
//! Canonicalisation never fails and is idempotent: running it twice gives the same job (a
//! property test checks this). Problems are left for [`crate::validate`] to report.

use crate::job::{
    Job, LogConfig, MigrateStrategy, ReschedulePolicy, Resources, RestartPolicy, Service, Task, TaskGroup,
    UNSET, UpdateStrategy, job_type,
};

/// The default namespace.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The default region.
pub const DEFAULT_REGION: &str = "global";
/// The default node pool.
pub const DEFAULT_NODE_POOL: &str = "default";

/// Fills every default in place. See the module docs for the rules.
pub fn canonicalize_job(job: &mut Job) {
    if job.name.is_empty() {
        job.name = job.id.clone();
    }
    if job.namespace.is_empty() {
        job.namespace = DEFAULT_NAMESPACE.into();
    }
    if job.region.is_empty() {
        job.region = DEFAULT_REGION.into();
    }
    if job.job_type.is_empty() {
        job.job_type = job_type::SERVICE.into();
    }
    if job.node_pool.is_empty() {
        job.node_pool = DEFAULT_NODE_POOL.into();
    }
    if job.datacenters.is_empty() {
        job.datacenters = vec!["*".into()];
    }
    let takes_updates = matches!(job.job_type.as_str(), job_type::SERVICE | job_type::SYSTEM);
    job.update = match job.update.take() {
        Some(u) => {
            let mut full = UpdateStrategy::nomad_default();
            full.merge(&u);
            Some(full)
        }
        None if takes_updates => Some(UpdateStrategy::nomad_default()),
        None => None,
    };
    if let Some(p) = &mut job.periodic
        && p.spec.is_empty()
        && p.specs.len() == 1
    {
        p.spec = p.specs[0].clone();
    }

    let job_update = job.update.clone();
    let job_reschedule = job.reschedule.take();
    let job_migrate = job.migrate.take();
    let (job_id, jtype) = (job.id.clone(), job.job_type.clone());
    for tg in &mut job.task_groups {
        canonicalize_group(
            tg,
            &job_id,
            &jtype,
            job_update.as_ref(),
            job_reschedule.as_ref(),
            job_migrate.as_ref(),
        );
    }
}

fn canonicalize_group(
    tg: &mut TaskGroup,
    job_id: &str,
    jtype: &str,
    job_update: Option<&UpdateStrategy>,
    job_reschedule: Option<&ReschedulePolicy>,
    job_migrate: Option<&MigrateStrategy>,
) {
    if tg.count == UNSET {
        tg.count = match &tg.scaling {
            Some(s) if s.min != UNSET => s.min,
            _ => 1,
        };
    }
    if let Some(s) = &mut tg.scaling
        && s.min == UNSET
    {
        s.min = tg.count;
    }
    if tg.ephemeral_disk.is_none() {
        tg.ephemeral_disk = Some(Default::default());
    }

    tg.update = match (job_update, tg.update.take()) {
        (Some(ju), Some(gu)) => {
            let mut u = ju.clone();
            u.merge(&gu);
            Some(u)
        }
        (Some(ju), None) => Some(ju.clone()),
        (None, Some(gu)) => {
            let mut u = UpdateStrategy::nomad_default();
            u.merge(&gu);
            Some(u)
        }
        (None, None) => None,
    };

    let mut restart = RestartPolicy::default_for(jtype);
    if let Some(r) = &tg.restart_policy {
        restart.merge(r);
    }
    tg.restart_policy = Some(restart);

    tg.reschedule_policy = match ReschedulePolicy::default_for(jtype) {
        Some(mut d) => {
            if let Some(j) = job_reschedule {
                d.merge(j);
            }
            if let Some(g) = &tg.reschedule_policy {
                d.merge(g);
            }
            Some(d)
        }
        // System and sysbatch jobs have no reschedule policy; a written one is kept so that
        // validation can reject it with a message instead of silently dropping it.
        None => tg.reschedule_policy.take(),
    };

    tg.migrate = if jtype == job_type::SERVICE {
        let mut m = MigrateStrategy::nomad_default();
        if let Some(j) = job_migrate {
            m.merge(j);
        }
        if let Some(g) = &tg.migrate {
            m.merge(g);
        }
        Some(m)
    } else {
        // Only service jobs migrate; a written block is kept so validation can reject it.
        tg.migrate.take().or_else(|| job_migrate.cloned())
    };

    for n in &mut tg.networks {
        if n.mode.is_empty() {
            n.mode = "host".into();
        }
    }
    for s in &mut tg.services {
        canonicalize_service(s, &format!("{job_id}-{}", tg.name));
    }

    inject_connect_tasks(tg);

    let group_restart = tg.restart_policy.clone().unwrap_or_default();
    let group_name = tg.name.clone();
    for task in &mut tg.tasks {
        canonicalize_task(task, job_id, &group_name, &group_restart);
    }
}

fn get_ci<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn inject_connect_tasks(tg: &mut TaskGroup) {
    let mut add = Vec::new();
    for svc in &tg.services {
        let Some(connect) = &svc.connect else { continue };
        let present = |v: Option<&serde_json::Value>| v.is_some_and(|v| !v.is_null());
        let (kind, sidecar) = if present(get_ci(connect, "SidecarService")) {
            ("connect-proxy", true)
        } else if let Some(gw) = get_ci(connect, "Gateway").filter(|g| !g.is_null()) {
            let flavour = ["Ingress", "Terminating", "Mesh"]
                .into_iter()
                .find(|k| present(get_ci(gw, k)))
                .unwrap_or("Ingress")
                .to_ascii_lowercase();
            match flavour.as_str() {
                "terminating" => ("connect-terminating", false),
                "mesh" => ("connect-mesh", false),
                _ => ("connect-ingress", false),
            }
        } else {
            continue;
        };
        let task_kind = format!("{kind}:{}", svc.name);
        if tg.tasks.iter().any(|t| t.kind == task_kind) {
            continue;
        }
        let image = if sidecar {
            "${meta.connect.sidecar_image}"
        } else {
            "${meta.connect.gateway_image}"
        };
        let mut config = std::collections::BTreeMap::new();
        config.insert("image".to_string(), serde_json::Value::String(image.into()));
        add.push(Task {
            name: format!("{kind}-{}", svc.name),
            kind: task_kind,
            driver: "docker".into(),
            config,
            lifecycle: sidecar.then(|| crate::job::TaskLifecycle {
                hook: "prestart".into(),
                sidecar: true,
            }),
            resources: Some(Resources {
                cpu: 250,
                memory_mb: 128,
                ..Default::default()
            }),
            log_config: Some(LogConfig {
                max_files: 2,
                max_file_size_mb: 2,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    tg.tasks.extend(add);
}

fn canonicalize_task(task: &mut Task, job_id: &str, group: &str, group_restart: &RestartPolicy) {
    let res = task.resources.get_or_insert_with(Resources::default);
    if res.cpu == UNSET {
        res.cpu = if res.cores > 0 { 0 } else { 100 };
    }
    for n in &mut res.networks {
        if n.mode.is_empty() {
            n.mode = "host".into();
        }
    }

    let mut restart = group_restart.clone();
    if let Some(t) = &task.restart_policy {
        restart.merge(t);
    }
    task.restart_policy = Some(restart);

    let logs = task.log_config.get_or_insert_with(LogConfig::default);
    if let Some(enabled) = logs.enabled.take()
        && !enabled
    {
        logs.disabled = true;
    }

    for s in &mut task.services {
        canonicalize_service(s, &format!("{job_id}-{group}-{}", task.name));
    }
    for t in &mut task.templates {
        t.change_signal = t.change_signal.to_uppercase();
        if t.change_mode == "signal" && t.change_signal.is_empty() {
            t.change_signal = "SIGHUP".into();
        }
    }
    for a in &mut task.artifacts {
        if a.relative_dest.is_empty() {
            a.relative_dest = if a.getter_mode == "file" {
                let base = a.getter_source.split('?').next().unwrap_or_default();
                let base = base.rsplit('/').next().unwrap_or_default();
                format!("local/{base}")
            } else {
                "local/".into()
            };
        }
    }
    if task.lifecycle.as_ref().is_some_and(|l| l.hook.is_empty()) {
        task.lifecycle = None;
    }
}

fn canonicalize_service(s: &mut Service, default_name: &str) {
    if s.name.is_empty() {
        s.name = default_name.to_string();
    }
    for c in &mut s.checks {
        if c.name.is_empty() {
            c.name = format!("service: {:?} check", s.name);
        }
        if c.on_update.is_empty() {
            c.on_update = s.on_update.clone();
        }
        if c.check_type == "http" && c.method.is_empty() {
            c.method = "GET".into();
        }
        if c.check_type == "http" && c.protocol.is_empty() {
            c.protocol = "http".into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::TaskGroup;

    fn job(t: &str) -> Job {
        Job {
            id: "web".into(),
            job_type: t.into(),
            task_groups: vec![TaskGroup {
                name: "g".into(),
                tasks: vec![Task {
                    name: "t".into(),
                    driver: "raw_exec".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn service_defaults() {
        let mut j = job("");
        canonicalize_job(&mut j);
        assert_eq!(j.name, "web");
        assert_eq!(j.job_type, "service");
        assert_eq!(j.priority, 50);
        assert_eq!(j.datacenters, vec!["*"]);
        let g = &j.task_groups[0];
        assert_eq!(g.count, 1);
        assert_eq!(g.restart_policy.as_ref().unwrap().attempts, Some(2));
        assert_eq!(g.reschedule_policy.as_ref().unwrap().unlimited, Some(true));
        assert_eq!(g.update.as_ref().unwrap().max_parallel, Some(1));
        assert!(g.migrate.is_some());
        let t = &g.tasks[0];
        assert_eq!(t.resources.as_ref().unwrap().cpu, 100);
        assert_eq!(t.resources.as_ref().unwrap().memory_mb, 300);
        assert_eq!(
            t.restart_policy.as_ref().unwrap().interval,
            Some(30 * 60 * crate::time::SECOND)
        );
    }

    #[test]
    fn batch_defaults_and_merges() {
        let mut j = job("batch");
        j.task_groups[0].restart_policy = Some(RestartPolicy {
            attempts: Some(5),
            ..Default::default()
        });
        j.reschedule = Some(ReschedulePolicy {
            attempts: Some(4),
            ..Default::default()
        });
        j.task_groups[0].tasks[0].restart_policy = Some(RestartPolicy {
            delay: Some(1),
            ..Default::default()
        });
        canonicalize_job(&mut j);
        assert!(j.update.is_none() && j.reschedule.is_none());
        let g = &j.task_groups[0];
        assert!(g.update.is_none() && g.migrate.is_none());
        let r = g.restart_policy.as_ref().unwrap();
        assert_eq!(
            (r.attempts, r.interval),
            (Some(5), Some(24 * 3600 * crate::time::SECOND))
        );
        let rs = g.reschedule_policy.as_ref().unwrap();
        assert_eq!(
            (rs.attempts, rs.delay_function.as_deref()),
            (Some(4), Some("constant"))
        );
        let tr = g.tasks[0].restart_policy.as_ref().unwrap();
        assert_eq!((tr.attempts, tr.delay), (Some(5), Some(1)));
    }

    #[test]
    fn update_merges_job_into_group_and_is_idempotent() {
        let mut j = job("service");
        j.update = Some(UpdateStrategy {
            max_parallel: Some(3),
            auto_revert: Some(true),
            ..Default::default()
        });
        j.task_groups[0].update = Some(UpdateStrategy {
            canary: Some(2),
            ..Default::default()
        });
        canonicalize_job(&mut j);
        let u = j.task_groups[0].update.as_ref().unwrap();
        assert_eq!(
            (u.max_parallel, u.canary, u.auto_revert),
            (Some(3), Some(2), Some(true))
        );
        let once = j.clone();
        canonicalize_job(&mut j);
        assert_eq!(once, j);
    }

    #[test]
    fn cores_means_no_default_cpu() {
        let mut j = job("service");
        j.task_groups[0].tasks[0].resources = Some(Resources {
            cores: 2,
            ..Default::default()
        });
        canonicalize_job(&mut j);
        assert_eq!(j.task_groups[0].tasks[0].resources.as_ref().unwrap().cpu, 0);
    }
}
