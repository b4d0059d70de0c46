//! `drover eval status EVAL`: one evaluation — its fields, related evaluations, the plan's
//! annotations, the allocations it placed, and why placements failed.
//!
//! ```text
//!  EVAL (ID or prefix) ─▶ GET /v1/evaluations?prefix= (unless a full ID)
//!                      ─▶ GET /v1/evaluation/:id?related=true + /allocations
//!                      ─▶ eval_text
//! ```

use clap::{Args, Subcommand};
use drover_api::{Client, QueryOptions};
use drover_types::{AllocListStub, Evaluation};

use crate::common::{ApiArgs, Ui, run_with_client};
use crate::format::{self, ago, kv, short_id, table};
use crate::job_status::alloc_table;
use crate::monitor::failed_placements;
use crate::row;

/// `eval` subcommands.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Show an evaluation.
    Status(EvalStatusArgs),
}

/// `eval status` flags.
#[derive(Debug, Clone, Args)]
pub struct EvalStatusArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Full IDs and absolute times.
    #[arg(long)]
    pub verbose: bool,
    /// The evaluation ID (or a unique prefix).
    pub eval: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs an eval subcommand with the process's terminal.
pub fn run(cmd: EvalCommand) -> u8 {
    match cmd {
        EvalCommand::Status(a) => run_with_client(&a.api, async |c, ui| eval_status(&a, c, ui).await),
    }
}

/// The evaluation view.
pub fn eval_text(e: &Evaluation, allocs: &[AllocListStub], now: i64, verbose: bool) -> String {
    let time = |t: i64| if verbose { format::time(t) } else { ago(t, now) };
    let failures = if !e.terminal() {
        "N/A - In Progress".to_string()
    } else {
        (!e.failed_tg_allocs.is_empty()).to_string()
    };
    let mut rows = vec![
        ("ID", short_id(&e.id, verbose)),
        ("Create Time", time(e.create_time)),
        ("Modify Time", time(e.modify_time)),
        ("Status", e.status.clone()),
        (
            "Status Description",
            if e.status_description.is_empty() {
                e.status.clone()
            } else {
                e.status_description.clone()
            },
        ),
        ("Type", e.eval_type.clone()),
        ("TriggeredBy", e.triggered_by.clone()),
    ];
    if !e.job_id.is_empty() {
        rows.push(("Job ID", e.job_id.clone()));
    }
    if !e.node_id.is_empty() {
        rows.push(("Node ID", short_id(&e.node_id, verbose)));
    }
    if !e.deployment_id.is_empty() {
        rows.push(("Deployment ID", short_id(&e.deployment_id, verbose)));
    }
    rows.push(("Namespace", e.namespace.clone()));
    rows.push(("Priority", e.priority.to_string()));
    rows.push(("Placement Failures", failures));
    if e.wait > 0 {
        rows.push(("Wait", drover_types::time::format_duration(e.wait)));
    }
    if let Some(w) = e.wait_until {
        rows.push(("Wait Until", format::time(w.0)));
    }
    if !e.quota_limit_reached.is_empty() {
        rows.push(("Quota Limit Reached", e.quota_limit_reached.clone()));
    }
    if verbose {
        rows.push(("Previous Eval", e.previous_eval.clone()));
        rows.push(("Next Eval", e.next_eval.clone()));
        rows.push(("Blocked Eval", e.blocked_eval.clone()));
    }
    let mut out = kv(&rows);

    if !e.related_evals.is_empty() {
        out.push_str("\n\nRelated Evaluations\n");
        let mut t = vec![row![
            "ID",
            "Priority",
            "Triggered By",
            "Node ID",
            "Status",
            "Description"
        ]];
        for r in &e.related_evals {
            t.push(row![
                short_id(&r.id, verbose),
                r.priority,
                r.triggered_by,
                short_id(&r.node_id, verbose),
                r.status,
                r.status_description
            ]);
        }
        out.push_str(&table(&t));
    }
    if let Some(p) = e
        .plan_annotations
        .as_ref()
        .filter(|p| !p.desired_tg_updates.is_empty())
    {
        out.push_str("\n\nPlan Annotations\n");
        let mut t = vec![row![
            "Task Group",
            "Ignore",
            "Place",
            "Stop",
            "Migrate",
            "InPlace",
            "Destructive",
            "Canary",
            "Preemptions"
        ]];
        for (g, u) in &p.desired_tg_updates {
            t.push(row![
                g,
                u.ignore,
                u.place,
                u.stop,
                u.migrate,
                u.in_place_update,
                u.destructive_update,
                u.canary,
                u.preemptions
            ]);
        }
        out.push_str(&table(&t));
        if !p.preempted_allocs.is_empty() {
            out.push_str("\n\nPreempted Allocations\n");
            out.push_str(&alloc_table(&p.preempted_allocs, now, verbose));
        }
    }
    if !allocs.is_empty() {
        out.push_str("\n\nPlaced Allocations\n");
        out.push_str(&alloc_table(allocs, now, verbose));
    }
    if !e.failed_tg_allocs.is_empty() {
        out.push_str("\n\nFailed Placements\n");
        out.push_str(&failed_placements(&e.failed_tg_allocs, "", "  ").join("\n"));
        if !e.blocked_eval.is_empty() {
            out.push_str(&format!(
                "\n\nEvaluation \"{}\" waiting for additional capacity to place remainder",
                short_id(&e.blocked_eval, verbose)
            ));
        }
    }
    out
}

/// The evaluation list table used when a prefix is ambiguous.
pub fn eval_list_table(evals: &[Evaluation], verbose: bool) -> String {
    let mut rows = vec![row![
        "ID",
        "Priority",
        "Triggered By",
        "Job ID",
        "Status",
        "Placement Failures"
    ]];
    for e in evals {
        let failures = if e.terminal() {
            (!e.failed_tg_allocs.is_empty()).to_string()
        } else {
            "N/A - In Progress".to_string()
        };
        rows.push(row![
            short_id(&e.id, verbose),
            e.priority,
            e.triggered_by,
            e.job_id,
            e.status,
            failures
        ]);
    }
    table(&rows)
}

/// Finds the evaluation an ID or prefix names (exit 1 on none or several).
pub async fn resolve_eval(client: &Client, ui: &mut Ui, id: &str, verbose: bool) -> Result<String, u8> {
    if id.len() == 36 {
        return Ok(id.to_string());
    }
    let evals = match client.evaluations(&QueryOptions::new().with_prefix(id)).await {
        Ok((e, _)) => e,
        Err(e) => {
            ui.error(format!("Error querying evaluation: {e}"));
            return Err(1);
        }
    };
    match evals.len() {
        0 => {
            ui.error(format!("No evaluation(s) with prefix or id \"{id}\" found"));
            Err(1)
        }
        1 => Ok(evals[0].id.clone()),
        _ => {
            ui.error(format!(
                "Prefix matched multiple evaluations\n\n{}",
                eval_list_table(&evals, verbose)
            ));
            Err(1)
        }
    }
}

/// `eval status EVAL`.
pub async fn eval_status(a: &EvalStatusArgs, client: &Client, ui: &mut Ui) -> u8 {
    let id = match resolve_eval(client, ui, &a.eval, a.verbose).await {
        Ok(id) => id,
        Err(code) => return code,
    };
    let eval = match client.evaluation(&id, &QueryOptions::new()).await {
        Ok((e, _)) => e,
        Err(e) if e.is_not_found() => {
            ui.error(format!("No evaluation(s) with prefix or id \"{}\" found", a.eval));
            return 1;
        }
        Err(e) => {
            ui.error(format!("Error querying evaluation: {e}"));
            return 1;
        }
    };
    if a.json {
        return ui.json(&eval);
    }
    let allocs = match client.evaluation_allocations(&id, &QueryOptions::new()).await {
        Ok((a, _)) => a,
        Err(e) => {
            ui.error(format!("Error querying evaluation allocations: {e}"));
            return 1;
        }
    };
    ui.output(eval_text(&eval, &allocs, ui.now(), a.verbose));
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::eval::EvaluationStub;
    use drover_types::time::SECOND;

    #[test]
    fn eval_view_with_failures() {
        let now = 1_735_725_600 * SECOND;
        let mut e = Evaluation {
            id: "5a6b7c8d-0000-0000-0000-000000000000".into(),
            namespace: "default".into(),
            priority: 50,
            eval_type: "service".into(),
            triggered_by: "job-register".into(),
            job_id: "example".into(),
            status: "complete".into(),
            blocked_eval: "bbbbbbbb-0000".into(),
            create_time: now - 60 * SECOND,
            modify_time: now - 59 * SECOND,
            related_evals: vec![EvaluationStub {
                id: "bbbbbbbb-0000".into(),
                priority: 50,
                triggered_by: "queued-allocs".into(),
                status: "blocked".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        e.failed_tg_allocs.insert(
            "web".into(),
            drover_types::AllocMetric {
                nodes_evaluated: 1,
                nodes_exhausted: 1,
                ..Default::default()
            },
        );
        let text = eval_text(&e, &[], now, false);
        assert!(
            text.starts_with(
                "ID                 = 5a6b7c8d\n\
                 Create Time        = 1m ago\n\
                 Modify Time        = 59s ago\n\
                 Status             = complete\n\
                 Status Description = complete\n\
                 Type               = service\n\
                 TriggeredBy        = job-register\n\
                 Job ID             = example\n\
                 Namespace          = default\n\
                 Priority           = 50\n\
                 Placement Failures = true\n\
                 \n\
                 Related Evaluations\n\
                 ID        Priority  Triggered By   Node ID  Status   Description\n\
                 bbbbbbbb  50        queued-allocs  <none>   blocked  <none>"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "Failed Placements\n\
                 Task Group \"web\" (failed to place 1 allocation):\n  \
                 * Resources exhausted on 1 nodes\n\
                 \n\
                 Evaluation \"bbbbbbbb\" waiting for additional capacity to place remainder"
            ),
            "{text}"
        );
        e.status = "pending".into();
        assert!(eval_text(&e, &[], now, false).contains("Placement Failures = N/A - In Progress"));
    }
}
