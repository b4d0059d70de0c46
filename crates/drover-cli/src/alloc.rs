//! `drover alloc status ALLOC` (§8.5): one allocation — its fields, each task's state and
//! recent events, and with `-verbose` the scheduler's placement metrics.
//!
//! ```text
//!  ALLOC (ID or prefix) ─▶ GET /v1/allocations?prefix= (unless a full ID)
//!                       ─▶ GET /v1/allocation/:id ─▶ alloc_text
//! ```
//!
//! Not shown (yet): task resource usage (needs the client stats endpoint), addresses, service
//! checks, volumes and reschedule details.

use clap::{Args, Subcommand};
use drover_api::{Client, QueryOptions};
use drover_types::alloc::{AllocMetric, TaskState};
use drover_types::{AllocListStub, Allocation};

use crate::common::{ApiArgs, Ui, run_with_client};
use crate::format::{self, ago, kv, short_id, table};
use crate::job_status::alloc_table;
use crate::monitor::alloc_metric_lines;
use crate::row;

/// `alloc` subcommands.
#[derive(Debug, Subcommand)]
pub enum AllocCommand {
    /// Show an allocation.
    Status(AllocStatusArgs),
}

/// `alloc status` flags.
#[derive(Debug, Clone, Args)]
pub struct AllocStatusArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Full IDs, absolute times and placement metrics.
    #[arg(long)]
    pub verbose: bool,
    /// The allocation ID (or a unique prefix).
    pub alloc: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs an alloc subcommand with the process's terminal.
pub fn run(cmd: AllocCommand) -> u8 {
    match cmd {
        AllocCommand::Status(a) => run_with_client(&a.api, async |c, ui| alloc_status(&a, c, ui).await),
    }
}

/// A float like Go's `%.3g`: three significant digits, trailing zeros dropped, exponent form
/// below 1e-4 or from 1e3.
pub fn go_g3(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v == 0.0 {
            "0".into()
        } else {
            format!("{v}")
        };
    }
    let sci = format!("{v:.2e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..3).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mant.to_string()), exp.abs())
    } else {
        let decimals = (2 - exp).max(0) as usize;
        trim(format!("{v:.decimals$}"))
    }
}

/// The `Placement Metrics` body: the explanation lines, then the `Node  <scorers…>  final
/// score` table (or `* Score "x" = …` lines for allocations without score metadata).
pub fn placement_metrics_text(m: &AllocMetric) -> String {
    let mut lines = alloc_metric_lines(m, "  ");
    if !m.score_meta_data.is_empty() {
        let mut scorers: Vec<&String> = m.score_meta_data.iter().flat_map(|s| s.scores.keys()).collect();
        scorers.sort();
        scorers.dedup();
        let mut header = row!["Node"];
        header.extend(scorers.iter().map(|s| s.to_string()));
        header.push("final score".into());
        let mut rows = vec![header];
        for s in &m.score_meta_data {
            let mut r = row![s.node_id];
            r.extend(
                scorers
                    .iter()
                    .map(|k| go_g3(s.scores.get(*k).copied().unwrap_or(0.0))),
            );
            r.push(go_g3(s.norm_score));
            rows.push(r);
        }
        lines.push(table(&rows));
    } else {
        for (name, score) in &m.scores {
            lines.push(format!("  * Score \"{name}\" = {score:.6}"));
        }
    }
    lines.join("\n")
}

/// `N/A` for an unset task time, else the absolute time.
fn task_time(t: Option<drover_types::time::Timestamp>) -> String {
    match t {
        Some(t) if t.0 != 0 => format::time(t.0),
        _ => "N/A".to_string(),
    }
}

/// One task's block: `Task "name" is "state"`, the `Task Events:` KV block and the
/// `Recent Events:` table (newest first).
pub fn task_text(name: &str, lifecycle: &str, state: &TaskState) -> String {
    let mut out = format!(
        "Task {}{lifecycle} is {}\n",
        format::quote(name),
        format::quote(&state.state)
    );
    out.push_str("Task Events:\n");
    out.push_str(&kv(&[
        ("Started At", task_time(state.started_at)),
        ("Finished At", task_time(state.finished_at)),
        ("Total Restarts", state.restarts.to_string()),
        ("Last Restart", task_time(state.last_restart)),
    ]));
    out.push_str("\n\nRecent Events:\n");
    let mut rows = vec![row!["Time", "Type", "Description"]];
    for e in state.events.iter().rev() {
        let msg = if e.display_message.is_empty() {
            &e.message
        } else {
            &e.display_message
        };
        rows.push(row![format::time(e.time), e.event_type, msg]);
    }
    out.push_str(&table(&rows));
    out
}

/// The allocation's tasks in display order (lifecycle tasks first, then by name) with their
/// ` (prestart sidecar)`-style labels.
fn ordered_tasks(a: &Allocation) -> Vec<(&String, String, &TaskState)> {
    let group = a.job.as_ref().and_then(|j| j.group(&a.task_group));
    let mut tasks: Vec<(&String, String, &TaskState)> = a
        .task_states
        .iter()
        .map(|(name, st)| {
            let label = group
                .and_then(|g| g.task(name))
                .and_then(|t| t.lifecycle.as_ref())
                .filter(|l| !l.hook.is_empty())
                .map(|l| {
                    if l.sidecar {
                        format!(" ({} sidecar)", l.hook)
                    } else {
                        format!(" ({})", l.hook)
                    }
                })
                .unwrap_or_default();
            (name, label, st)
        })
        .collect();
    tasks.sort_by_key(|(_, label, _)| label.is_empty());
    tasks
}

/// The `alloc status` view.
pub fn alloc_text(a: &Allocation, now: i64, verbose: bool) -> String {
    let time = |t: i64| if verbose { format::time(t) } else { ago(t, now) };
    let job_version = a.job.as_ref().map(|j| j.version).unwrap_or_default();
    let mut rows = vec![
        ("ID", a.id.clone()),
        ("Eval ID", short_id(&a.eval_id, verbose)),
        ("Name", a.name.clone()),
        ("Node ID", short_id(&a.node_id, verbose)),
        ("Node Name", a.node_name.clone()),
        ("Job ID", a.job_id.clone()),
        ("Job Version", job_version.to_string()),
        ("Client Status", a.client_status.clone()),
        ("Client Description", a.client_description.clone()),
        ("Desired Status", a.desired_status.clone()),
        ("Desired Description", a.desired_description.clone()),
        ("Created", time(a.create_time)),
        ("Modified", time(a.modify_time)),
    ];
    if !a.deployment_id.is_empty() {
        let ds = a.deployment_status.as_ref();
        let health = match ds.and_then(|d| d.healthy) {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "unset",
        };
        rows.push(("Deployment ID", short_id(&a.deployment_id, verbose)));
        rows.push(("Deployment Health", health.to_string()));
        if ds.is_some_and(|d| d.canary) {
            rows.push(("Canary", "true".to_string()));
        }
    }
    let metrics = a.metrics.clone().unwrap_or_default();
    if verbose {
        rows.push(("Evaluated Nodes", metrics.nodes_evaluated.to_string()));
        rows.push(("Filtered Nodes", metrics.nodes_filtered.to_string()));
        rows.push(("Exhausted Nodes", metrics.nodes_exhausted.to_string()));
        rows.push((
            "Allocation Time",
            drover_types::time::format_duration(metrics.allocation_time),
        ));
        rows.push(("Failures", metrics.coalesced_failures.to_string()));
    }
    let mut out = kv(&rows);
    for (name, label, state) in ordered_tasks(a) {
        out.push_str("\n\n");
        out.push_str(&task_text(name, &label, state));
    }
    if verbose {
        out.push_str("\n\nPlacement Metrics");
        let body = placement_metrics_text(&metrics);
        if !body.is_empty() {
            out.push('\n');
            out.push_str(&body);
        }
    }
    out
}

/// Finds the allocation an ID or prefix names (exit 1 on none or several).
pub async fn resolve_alloc(client: &Client, ui: &mut Ui, id: &str, verbose: bool) -> Result<String, u8> {
    if id.len() == 1 {
        ui.error("Alloc ID must contain at least two characters.");
        return Err(1);
    }
    let allocs: Vec<AllocListStub> = match client.allocations(&QueryOptions::new().with_prefix(id)).await {
        Ok((a, _)) => a,
        Err(e) => {
            ui.error(format!("Error querying allocation: {e}"));
            return Err(1);
        }
    };
    if let Some(exact) = allocs.iter().find(|a| a.id == id) {
        return Ok(exact.id.clone());
    }
    match allocs.len() {
        0 => {
            ui.error(format!("No allocation(s) with prefix or id \"{id}\" found"));
            Err(1)
        }
        1 => Ok(allocs[0].id.clone()),
        _ => {
            ui.error(format!(
                "Prefix matched multiple allocations\n\n{}",
                alloc_table(&allocs, ui.now(), verbose)
            ));
            Err(1)
        }
    }
}

/// `alloc status ALLOC`.
pub async fn alloc_status(a: &AllocStatusArgs, client: &Client, ui: &mut Ui) -> u8 {
    let id = match resolve_alloc(client, ui, &a.alloc, a.verbose).await {
        Ok(id) => id,
        Err(code) => return code,
    };
    let alloc = match client.allocation(&id, &QueryOptions::new()).await {
        Ok((al, _)) => al,
        Err(e) if e.is_not_found() => {
            ui.error(format!(
                "No allocation(s) with prefix or id \"{}\" found",
                a.alloc
            ));
            return 1;
        }
        Err(e) => {
            ui.error(format!("Error querying allocation: {e}"));
            return 1;
        }
    };
    if a.json {
        return ui.json(&alloc);
    }
    ui.output(alloc_text(&alloc, ui.now(), a.verbose));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_percent_3g() {
        assert_eq!(go_g3(0.0), "0");
        assert_eq!(go_g3(0.5), "0.5");
        assert_eq!(go_g3(1.0), "1");
        assert_eq!(go_g3(0.123456), "0.123");
        assert_eq!(go_g3(-0.98765), "-0.988");
        assert_eq!(go_g3(12.34), "12.3");
        assert_eq!(go_g3(1234.0), "1.23e+03");
        assert_eq!(go_g3(0.00001234), "1.23e-05");
    }
}
