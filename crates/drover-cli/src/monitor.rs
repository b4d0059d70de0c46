//! Watching an evaluation (and the deployment it starts) until it settles: what `job run` and
//! `job stop` print after submitting (§8.2).
//!
//! ```text
//!  eval id ─▶ poll GET /v1/evaluation/:id?related=true + /allocations every Ui::poll
//!               │ EvalState (status, job, node, deployment, allocs) diffed with the last one
//!               │   → "Allocation "x" created", "Evaluation status changed", ...
//!               ▼ terminal (complete / failed / canceled)
//!      FailedTGAllocs? → placement-failure block, exit 2
//!      NextEval?       → "Monitoring next evaluation" after Wait, loop on it
//!      DeploymentID?   → blocking GET /v1/deployment/:id until successful (0) / failed (1)
//! ```
//!
//! The pure parts — [`EvalState::changes`], [`alloc_metric_lines`], [`failed_placements`],
//! [`deployment_block`] — are what the tests pin down; the loops only fetch and print.
//!
//! Limitations: the deployment view is the non-TTY one (a status block per change, then a
//! `✓`/`!` result line); a failed deployment that auto-reverts is not followed into the
//! rollback deployment.

use std::collections::BTreeMap;
use std::time::Duration;

use drover_api::{Client, QueryOptions};
use drover_types::eval::{deployment_status, eval_status};
use drover_types::{AllocListStub, AllocMetric, Deployment, Evaluation};

use crate::common::{Ui, sleep};
use crate::format::{self, kv, short_id, table};
use crate::row;

/// What the monitor last saw of one allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocSeen {
    /// Allocation ID.
    pub id: String,
    /// Node ID.
    pub node: String,
    /// Task group.
    pub group: String,
    /// Desired status.
    pub desired: String,
    /// Client status.
    pub client: String,
    /// Client status description.
    pub client_desc: String,
    /// Raft index at which it was created.
    pub create_index: u64,
}

/// What the monitor last saw of an evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvalState {
    /// Evaluation status ("" before the first poll).
    pub status: String,
    /// Node that triggered it, if any.
    pub node: String,
    /// Job it evaluates.
    pub job: String,
    /// Deployment it belongs to.
    pub deployment: String,
    /// Its create index (allocations older than this were modified, not created).
    pub create_index: u64,
    /// Allocations by ID.
    pub allocs: BTreeMap<String, AllocSeen>,
}

impl EvalState {
    /// The state of a freshly created evaluation: `pending`, nothing else known. Starting from
    /// it prints `"pending" -> "complete"` even when the first poll already sees it complete.
    pub fn submitted() -> EvalState {
        EvalState {
            status: eval_status::PENDING.to_string(),
            ..Default::default()
        }
    }

    /// The state of `eval` and its allocations.
    pub fn of(eval: &Evaluation, allocs: &[AllocListStub]) -> EvalState {
        EvalState {
            status: eval.status.clone(),
            node: eval.node_id.clone(),
            job: eval.job_id.clone(),
            deployment: eval.deployment_id.clone(),
            create_index: eval.create_index,
            allocs: allocs
                .iter()
                .map(|a| {
                    (
                        a.id.clone(),
                        AllocSeen {
                            id: a.id.clone(),
                            node: a.node_id.clone(),
                            group: a.task_group.clone(),
                            desired: a.desired_status.clone(),
                            client: a.client_status.clone(),
                            client_desc: a.client_description.clone(),
                            create_index: a.create_index,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The lines (without timestamp) that describe going from `self` to `next`.
    pub fn changes(&self, next: &EvalState, verbose: bool) -> Vec<String> {
        let id = |s: &str| short_id(s, verbose);
        let mut out = Vec::new();
        if self.node.is_empty() && !next.node.is_empty() {
            out.push(format!("Evaluation triggered by node \"{}\"", id(&next.node)));
        }
        if self.job.is_empty() && !next.job.is_empty() {
            out.push(format!("Evaluation triggered by job \"{}\"", next.job));
        }
        if self.deployment.is_empty() && !next.deployment.is_empty() {
            out.push(format!(
                "Evaluation within deployment: \"{}\"",
                id(&next.deployment)
            ));
        }
        let mut allocs: Vec<&AllocSeen> = next.allocs.values().collect();
        allocs.sort_by(|a, b| (a.create_index, &a.id).cmp(&(b.create_index, &b.id)));
        for a in allocs {
            match self.allocs.get(&a.id) {
                None if a.create_index < next.create_index => out.push(format!(
                    "Allocation \"{}\" modified: node \"{}\", group \"{}\"",
                    id(&a.id),
                    id(&a.node),
                    a.group
                )),
                None if a.desired == "run" => out.push(format!(
                    "Allocation \"{}\" created: node \"{}\", group \"{}\"",
                    id(&a.id),
                    id(&a.node),
                    a.group
                )),
                None => {}
                Some(prev) if prev.client != a.client => {
                    let desc = if a.client_desc.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", a.client_desc)
                    };
                    out.push(format!(
                        "Allocation \"{}\" status changed: \"{}\" -> \"{}\"{desc}",
                        id(&a.id),
                        prev.client,
                        a.client
                    ));
                }
                Some(_) => {}
            }
        }
        if !self.status.is_empty() && next.status != eval_status::PENDING && self.status != next.status {
            out.push(format!(
                "Evaluation status changed: \"{}\" -> \"{}\"",
                self.status, next.status
            ));
        }
        out
    }
}

/// The explanation lines of one group's placement metrics, each starting with `prefix`:
/// `* Constraint "…": 2 nodes excluded by filter`, `* Resources exhausted on 1 nodes`, ...
pub fn alloc_metric_lines(m: &AllocMetric, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    if m.nodes_evaluated == 0 {
        out.push(format!("{prefix}* No nodes were eligible for evaluation"));
    }
    for (dc, n) in m.nodes_available.iter() {
        if *n == 0 {
            out.push(format!("{prefix}* No nodes are available in datacenter \"{dc}\""));
        }
    }
    for (class, n) in &m.class_filtered {
        out.push(format!(
            "{prefix}* Class \"{class}\": {n} nodes excluded by filter"
        ));
    }
    for (c, n) in &m.constraint_filtered {
        out.push(format!(
            "{prefix}* Constraint \"{c}\": {n} nodes excluded by filter"
        ));
    }
    if m.nodes_exhausted > 0 {
        out.push(format!(
            "{prefix}* Resources exhausted on {} nodes",
            m.nodes_exhausted
        ));
    }
    for (class, n) in &m.class_exhausted {
        out.push(format!("{prefix}* Class \"{class}\" exhausted on {n} nodes"));
    }
    for (dim, n) in &m.dimension_exhausted {
        out.push(format!("{prefix}* Dimension \"{dim}\" exhausted on {n} nodes"));
    }
    for q in &m.quota_exhausted {
        out.push(format!("{prefix}* Quota limit hit \"{q}\""));
    }
    out
}

/// `Task Group "web" (failed to place 3 allocations):` for one group's metrics.
pub fn failed_group_header(group: &str, m: &AllocMetric) -> String {
    let n = m.coalesced_failures + 1;
    format!(
        "Task Group \"{group}\" (failed to place {n} {}):",
        format::plural(n, "allocation")
    )
}

/// Every failed group, sorted by name: the header line (with `header_prefix`) followed by its
/// metric lines (with `metric_prefix`).
pub fn failed_placements(
    failed: &BTreeMap<String, AllocMetric>,
    header_prefix: &str,
    metric_prefix: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (group, m) in failed {
        out.push(format!("{header_prefix}{}", failed_group_header(group, m)));
        out.extend(alloc_metric_lines(m, metric_prefix));
    }
    out
}

/// Polls an evaluation until it is terminal, printing progress; follows `NextEval`, then the
/// deployment. Returns 0, 1 (error, failed eval or deployment) or 2 (placement failures).
pub async fn monitor_eval(client: &Client, ui: &mut Ui, eval_id: &str, verbose: bool) -> u8 {
    monitor_eval_with(client, ui, eval_id, verbose, true).await
}

/// Like [`monitor_eval`]; with `follow_deployment = false` (what `job stop` uses) it stops
/// after the evaluation: a stopped job's deployment is cancelled, which is no failure.
pub async fn monitor_eval_with(
    client: &Client,
    ui: &mut Ui,
    eval_id: &str,
    verbose: bool,
    follow_deployment: bool,
) -> u8 {
    let mut eval_id = eval_id.to_string();
    let mut state = EvalState::submitted();
    let mut placement_failed = false;
    let mut eval_failed = false;
    loop {
        let ts = format::time(ui.now());
        ui.output(format!(
            "==> {ts}: Monitoring evaluation \"{}\"",
            short_id(&eval_id, verbose)
        ));
        let eval = loop {
            let eval = match client.evaluation(&eval_id, &QueryOptions::new()).await {
                Ok((e, _)) => e,
                Err(e) => {
                    ui.error(format!("Error reading evaluation: {e}"));
                    return 1;
                }
            };
            let allocs = match client
                .evaluation_allocations(&eval_id, &QueryOptions::new())
                .await
            {
                Ok((a, _)) => a,
                Err(e) => {
                    ui.error(format!("Error reading allocations: {e}"));
                    return 1;
                }
            };
            let next = EvalState::of(&eval, &allocs);
            let ts = format::time(ui.now());
            for line in state.changes(&next, verbose) {
                ui.output(format!("    {ts}: {line}"));
            }
            state = next;
            if eval.terminal() {
                break eval;
            }
            sleep(ui.poll).await;
        };

        let ts = format::time(ui.now());
        let short = short_id(&eval.id, verbose);
        if eval.failed_tg_allocs.is_empty() {
            ui.output(format!(
                "==> {ts}: Evaluation \"{short}\" finished with status \"{}\"",
                eval.status
            ));
        } else {
            placement_failed = true;
            ui.output(format!(
                "==> {ts}: Evaluation \"{short}\" finished with status \"{}\" but failed to place all allocations:",
                eval.status
            ));
            for line in failed_placements(&eval.failed_tg_allocs, &format!("    {ts}: "), "      ") {
                ui.output(line);
            }
            if !eval.blocked_eval.is_empty() {
                ui.output(format!(
                    "    {ts}: Evaluation \"{}\" waiting for additional capacity to place remainder",
                    short_id(&eval.blocked_eval, verbose)
                ));
            }
        }
        if eval.status == eval_status::FAILED {
            eval_failed = true;
        }
        if eval.next_eval.is_empty() {
            break;
        }
        if eval.wait > 0 {
            ui.output(format!(
                "==> {ts}: Monitoring next evaluation \"{}\" in {}",
                short_id(&eval.next_eval, verbose),
                drover_types::time::format_duration(eval.wait)
            ));
            sleep(Duration::from_nanos(eval.wait as u64)).await;
        }
        eval_id = eval.next_eval.clone();
        state = EvalState::default();
    }

    if placement_failed {
        return 2;
    }
    if follow_deployment && !state.deployment.is_empty() {
        let code = monitor_deployment(client, ui, &state.deployment, verbose).await;
        return code.max(u8::from(eval_failed));
    }
    u8::from(eval_failed)
}

/// The `Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline` table of a
/// deployment; `Auto Revert`, `Promoted` and `Canaries` columns appear only when relevant.
pub fn deployment_groups_table(d: &Deployment) -> String {
    let auto_revert = d.task_groups.values().any(|g| g.auto_revert);
    let canaries = d.task_groups.values().any(|g| g.desired_canaries > 0);
    let mut header = row!["Task Group"];
    if auto_revert {
        header.push("Auto Revert".into());
    }
    if canaries {
        header.push("Promoted".into());
    }
    header.push("Desired".into());
    if canaries {
        header.push("Canaries".into());
    }
    header.extend(row!["Placed", "Healthy", "Unhealthy", "Progress Deadline"]);
    let mut rows = vec![header];
    for (name, g) in &d.task_groups {
        let mut r = row![name];
        if auto_revert {
            r.push(g.auto_revert.to_string());
        }
        if canaries {
            r.push(if g.desired_canaries > 0 {
                g.promoted.to_string()
            } else {
                "N/A".into()
            });
        }
        r.push(g.desired_total.to_string());
        if canaries {
            r.push(g.desired_canaries.to_string());
        }
        let deadline = match g.require_progress_by {
            Some(t) => format::time(t.0),
            None if g.progress_deadline > 0 => drover_types::time::format_duration(g.progress_deadline),
            None => "N/A".to_string(),
        };
        r.extend(row![
            g.placed_allocs,
            g.healthy_allocs,
            g.unhealthy_allocs,
            deadline
        ]);
        rows.push(r);
    }
    table(&rows)
}

/// The deployment view the monitor prints: ID, Job ID, Job Version, Status, Description and
/// the `Deployed` table.
pub fn deployment_block(d: &Deployment, verbose: bool) -> String {
    let mut s = kv(&[
        ("ID", short_id(&d.id, verbose)),
        ("Job ID", d.job_id.clone()),
        ("Job Version", d.job_version.to_string()),
        ("Status", d.status.clone()),
        ("Description", d.status_description.clone()),
    ]);
    if !d.task_groups.is_empty() {
        s.push_str("\n\nDeployed\n");
        s.push_str(&deployment_groups_table(d));
    }
    s
}

/// True once a deployment will not change any more.
pub fn deployment_done(status: &str) -> bool {
    matches!(
        status,
        deployment_status::SUCCESSFUL | deployment_status::FAILED | deployment_status::CANCELLED
    )
}

/// Watches a deployment with blocking queries until it is successful (0) or failed/cancelled
/// (1), printing its status block whenever it changes.
pub async fn monitor_deployment(client: &Client, ui: &mut Ui, id: &str, verbose: bool) -> u8 {
    let short = short_id(id, verbose);
    ui.output(format!(
        "==> {}: Monitoring deployment \"{short}\"",
        format::time(ui.now())
    ));
    let mut index = 0;
    let mut last_block = String::new();
    loop {
        let q = QueryOptions::new().blocking(index, Duration::from_secs(10));
        let (d, meta) = match client.deployment(id, &q).await {
            Ok(r) => r,
            Err(e) => {
                ui.error(format!("Error fetching deployment: {e}"));
                return 1;
            }
        };
        let mut block = deployment_block(&d, verbose);
        if verbose && let Ok((allocs, _)) = client.deployment_allocations(id, &QueryOptions::new()).await {
            block.push_str("\n\nAllocations\n");
            block.push_str(&crate::job_status::alloc_table(&allocs, ui.now(), verbose));
        }
        let ts = format::time(ui.now());
        if deployment_done(&d.status) {
            let ok = d.status == deployment_status::SUCCESSFUL;
            ui.output(if ok {
                format!("  ✓ Deployment \"{short}\" successful")
            } else {
                format!("  ! Deployment \"{short}\" {}", d.status)
            });
            ui.output("");
            ui.output(format::indent(&format!("{ts}\n{block}"), "    "));
            return if ok { 0 } else { 1 };
        }
        if block != last_block {
            ui.output("");
            ui.output(format::indent(&format!("{ts}\n{block}"), "    "));
            last_block = block;
        }
        if meta.last_index <= index {
            // The agent answered without blocking (or timed out): don't spin.
            sleep(ui.poll.max(Duration::from_millis(100))).await;
        }
        index = meta.last_index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::eval::DeploymentState;

    fn stub(id: &str, create: u64, desired: &str, client: &str) -> AllocListStub {
        AllocListStub {
            id: id.into(),
            node_id: "9d8e7f6a-0000-0000-0000-000000000000".into(),
            task_group: "web".into(),
            desired_status: desired.into(),
            client_status: client.into(),
            create_index: create,
            ..Default::default()
        }
    }

    #[test]
    fn state_changes_read_like_nomad() {
        let eval = Evaluation {
            id: "e".into(),
            job_id: "example".into(),
            status: "complete".into(),
            deployment_id: "2fb9d6b5-1111-2222-3333-444444444444".into(),
            create_index: 10,
            ..Default::default()
        };
        let allocs = vec![
            stub("0f3a1b2c-aaaa", 12, "run", "pending"),
            stub("11111111-bbbb", 5, "run", "running"),
            stub("22222222-cccc", 12, "stop", "complete"),
        ];
        let next = EvalState::of(&eval, &allocs);
        let lines = EvalState::submitted().changes(&next, false);
        assert_eq!(
            lines,
            vec![
                "Evaluation triggered by job \"example\"",
                "Evaluation within deployment: \"2fb9d6b5\"",
                "Allocation \"11111111\" modified: node \"9d8e7f6a\", group \"web\"",
                "Allocation \"0f3a1b2c\" created: node \"9d8e7f6a\", group \"web\"",
                "Evaluation status changed: \"pending\" -> \"complete\"",
            ]
        );
        let mut later = next.clone();
        if let Some(a) = later.allocs.get_mut("0f3a1b2c-aaaa") {
            a.client = "running".into();
            a.client_desc = "Tasks are running".into();
        }
        assert_eq!(
            next.changes(&later, false),
            vec!["Allocation \"0f3a1b2c\" status changed: \"pending\" -> \"running\" (Tasks are running)"]
        );
        // Transitions to pending are not reported; the first state after a reset is silent.
        let pending = EvalState {
            status: "pending".into(),
            ..Default::default()
        };
        assert!(EvalState::default().changes(&pending, false).is_empty());
    }

    #[test]
    fn placement_failure_lines() {
        let mut m = AllocMetric {
            nodes_evaluated: 3,
            nodes_exhausted: 1,
            coalesced_failures: 2,
            ..Default::default()
        };
        m.constraint_filtered
            .insert("${attr.kernel.name} = windows".into(), 2);
        m.dimension_exhausted.insert("memory".into(), 1);
        m.class_filtered.insert("gpu".into(), 1);
        std::sync::Arc::make_mut(&mut m.nodes_available).insert("dc2".into(), 0);
        let mut failed = BTreeMap::new();
        failed.insert("web".to_string(), m);
        let lines = failed_placements(&failed, "  ", "    ");
        assert_eq!(
            lines,
            vec![
                "  Task Group \"web\" (failed to place 3 allocations):",
                "    * No nodes are available in datacenter \"dc2\"",
                "    * Class \"gpu\": 1 nodes excluded by filter",
                "    * Constraint \"${attr.kernel.name} = windows\": 2 nodes excluded by filter",
                "    * Resources exhausted on 1 nodes",
                "    * Dimension \"memory\" exhausted on 1 nodes",
            ]
        );
        let none = AllocMetric::default();
        assert_eq!(
            failed_group_header("db", &none),
            "Task Group \"db\" (failed to place 1 allocation):"
        );
        assert_eq!(
            alloc_metric_lines(&none, ""),
            vec!["* No nodes were eligible for evaluation"]
        );
    }

    #[test]
    fn deployment_view() {
        let mut d = Deployment {
            id: "2fb9d6b5-1111-2222-3333-444444444444".into(),
            job_id: "example".into(),
            status: "successful".into(),
            status_description: "Deployment completed successfully".into(),
            ..Default::default()
        };
        d.task_groups.insert(
            "cache".into(),
            DeploymentState {
                desired_total: 1,
                placed_allocs: 1,
                healthy_allocs: 1,
                require_progress_by: drover_types::time::Timestamp::parse_rfc3339("2025-01-01T10:10:18Z")
                    .ok(),
                ..Default::default()
            },
        );
        assert_eq!(
            deployment_block(&d, false),
            "ID          = 2fb9d6b5\n\
             Job ID      = example\n\
             Job Version = 0\n\
             Status      = successful\n\
             Description = Deployment completed successfully\n\
             \n\
             Deployed\n\
             Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline\n\
             cache       1        1       1        0          2025-01-01T10:10:18Z"
        );
        if let Some(g) = d.task_groups.get_mut("cache") {
            g.desired_canaries = 1;
            g.auto_revert = true;
        }
        let t = deployment_groups_table(&d);
        assert!(
            t.starts_with("Task Group  Auto Revert  Promoted  Desired  Canaries  Placed"),
            "{t}"
        );
        assert!(deployment_done("failed") && !deployment_done("running"));
    }
}
