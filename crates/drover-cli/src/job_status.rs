//! `job status` (the job list, or one job's detail view) and `job history` (§8.4).
//!
//! ```text
//!  job status          GET /v1/jobs ─▶ job_list_table           (or "No running jobs")
//!  job status <id>     resolve prefix ─▶ GET job, summary, allocations, evaluations,
//!                      latest deployment ─▶ job_detail_text(JobView)
//!  job history <id>    GET /v1/job/:id/versions?diffs= ─▶ history_text
//! ```
//!
//! The detail view: the KV block (ID … Parameterized), `Summary` (per group: Queued Starting
//! Running Failed Complete Lost Unknown; `Children Job Summary` for periodic/parameterized
//! parents), `Evaluations` (`-evals`/`-verbose`), `Placement Failure` (when a blocked eval
//! waits for capacity), `Latest Deployment`, `Allocations` (newest first).
//!
//! Not shown (yet): the periodic parent's next launch and child job lists.

use clap::Args;
use drover_api::{Client, QueryOptions};
use drover_types::{AllocListStub, Deployment, Evaluation, Job, JobListStub, JobSummary};

use crate::common::{ApiArgs, Ui};
use crate::format::{self, ago, kv, short_id, table};
use crate::monitor::{alloc_metric_lines, deployment_groups_table};
use crate::plan::job_diff_text;
use crate::row;

/// `job status` flags.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print the API's JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Full IDs, absolute times, more columns.
    #[arg(long)]
    pub verbose: bool,
    /// Only the job's summary block.
    #[arg(long)]
    pub short: bool,
    /// Show the job's evaluations.
    #[arg(long)]
    pub evals: bool,
    /// Include allocations of earlier jobs with the same ID.
    #[arg(long = "all-allocs")]
    pub all_allocs: bool,
    /// The job ID (or a unique prefix); without it, all jobs are listed.
    pub job: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `job history` flags.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Show the diff between each version and the one before it.
    #[arg(short = 'p')]
    pub diff: bool,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Only this version.
    #[arg(long)]
    pub version: Option<u64>,
    /// The job ID (or a unique prefix).
    pub job: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `service`, or `batch/periodic`, `batch/parameterized` for parents.
pub fn job_type_text(stub: &JobListStub) -> String {
    if stub.periodic && !stub.parent_id.is_empty() {
        stub.job_type.clone()
    } else if stub.periodic {
        format!("{}/periodic", stub.job_type)
    } else if stub.parameterized_job {
        format!("{}/parameterized", stub.job_type)
    } else {
        stub.job_type.clone()
    }
}

/// The status, with ` (stopped)` when the job was stopped.
pub fn status_text(status: &str, stop: bool) -> String {
    if stop {
        format!("{status} (stopped)")
    } else {
        status.to_string()
    }
}

/// The job list table: `ID  Type  Priority  Status  Submit Date`.
pub fn job_list_table(jobs: &[JobListStub]) -> String {
    let mut rows = vec![row!["ID", "Type", "Priority", "Status", "Submit Date"]];
    for j in jobs {
        rows.push(row![
            j.id,
            job_type_text(j),
            j.priority,
            status_text(&j.status, j.stop),
            format::time(j.submit_time)
        ]);
    }
    table(&rows)
}

/// Allocation table: `ID  Node ID  Task Group  Version  Desired  Status  Created  Modified`,
/// newest first; verbose adds `Eval ID` and `Node Name` and prints absolute times.
pub fn alloc_table(allocs: &[AllocListStub], now: i64, verbose: bool) -> String {
    let mut sorted: Vec<&AllocListStub> = allocs.iter().collect();
    sorted.sort_by(|a, b| b.create_index.cmp(&a.create_index).then(a.id.cmp(&b.id)));
    let mut rows = if verbose {
        vec![row![
            "ID",
            "Eval ID",
            "Node ID",
            "Node Name",
            "Task Group",
            "Version",
            "Desired",
            "Status",
            "Created",
            "Modified"
        ]]
    } else {
        vec![row![
            "ID",
            "Node ID",
            "Task Group",
            "Version",
            "Desired",
            "Status",
            "Created",
            "Modified"
        ]]
    };
    for a in sorted {
        if verbose {
            rows.push(row![
                a.id,
                a.eval_id,
                a.node_id,
                a.node_name,
                a.task_group,
                a.job_version,
                a.desired_status,
                a.client_status,
                format::time(a.create_time),
                format::time(a.modify_time)
            ]);
        } else {
            rows.push(row![
                short_id(&a.id, false),
                short_id(&a.node_id, false),
                a.task_group,
                a.job_version,
                a.desired_status,
                a.client_status,
                ago(a.create_time, now),
                ago(a.modify_time, now)
            ]);
        }
    }
    table(&rows)
}

/// The per-group `Summary` table.
pub fn summary_table(s: &JobSummary) -> String {
    let mut rows = vec![row![
        "Task Group",
        "Queued",
        "Starting",
        "Running",
        "Failed",
        "Complete",
        "Lost",
        "Unknown"
    ]];
    for (g, c) in &s.summary {
        rows.push(row![
            g, c.queued, c.starting, c.running, c.failed, c.complete, c.lost, c.unknown
        ]);
    }
    table(&rows)
}

/// Everything the detail view shows about one job.
#[derive(Debug, Clone, Default)]
pub struct JobView {
    /// The job.
    pub job: Job,
    /// Its allocation counts.
    pub summary: Option<JobSummary>,
    /// Its allocations.
    pub allocs: Vec<AllocListStub>,
    /// Its evaluations.
    pub evals: Vec<Evaluation>,
    /// Its latest deployment.
    pub deployment: Option<Deployment>,
}

/// Display options of the detail view.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetailOptions {
    /// Full IDs and absolute times.
    pub verbose: bool,
    /// Only the KV block.
    pub short: bool,
    /// Show the evaluations table.
    pub evals: bool,
}

/// The `job status <id>` view.
pub fn job_detail_text(v: &JobView, now: i64, o: DetailOptions) -> String {
    let j = &v.job;
    let periodic = j.periodic.as_ref().is_some_and(|p| p.enabled);
    let parameterized = j.is_parameterized();
    let mut out = kv(&[
        ("ID", j.id.clone()),
        ("Name", j.name.clone()),
        ("Submit Date", format::time(j.submit_time)),
        ("Type", j.job_type.clone()),
        ("Priority", j.priority.to_string()),
        ("Datacenters", j.datacenters.join(",")),
        ("Namespace", j.namespace.clone()),
        ("Node Pool", j.node_pool.clone()),
        ("Status", status_text(&j.status, j.stop)),
        ("Periodic", periodic.to_string()),
        ("Parameterized", parameterized.to_string()),
    ]);
    if o.short {
        return out;
    }
    if let Some(s) = &v.summary {
        if (periodic || parameterized) && s.children.is_some() {
            let c = s.children.clone().unwrap_or_default();
            out.push_str("\n\nChildren Job Summary\n");
            out.push_str(&table(&[
                row!["Pending", "Running", "Dead"],
                row![c.pending, c.running, c.dead],
            ]));
        } else if !s.summary.is_empty() {
            out.push_str("\n\nSummary\n");
            out.push_str(&summary_table(s));
        }
    }
    if o.evals || o.verbose {
        out.push_str("\n\nEvaluations\n");
        let mut rows = vec![row![
            "ID",
            "Priority",
            "Triggered By",
            "Status",
            "Placement Failures"
        ]];
        for e in &v.evals {
            rows.push(row![
                short_id(&e.id, o.verbose),
                e.priority,
                e.triggered_by,
                e.status,
                !e.failed_tg_allocs.is_empty()
            ]);
        }
        out.push_str(&table(&rows));
    }
    let blocked = v.evals.iter().any(|e| e.status == "blocked");
    let latest_failed = v
        .evals
        .iter()
        .filter(|e| !e.failed_tg_allocs.is_empty())
        .max_by_key(|e| e.create_index);
    if let (true, Some(e)) = (blocked, latest_failed) {
        out.push_str("\n\nPlacement Failure");
        for (g, m) in &e.failed_tg_allocs {
            out.push_str(&format!("\nTask Group \"{g}\":"));
            for l in alloc_metric_lines(m, "  ") {
                out.push('\n');
                out.push_str(&l);
            }
        }
    }
    if let Some(d) = &v.deployment
        && !periodic
        && !parameterized
    {
        out.push_str("\n\nLatest Deployment\n");
        out.push_str(&kv(&[
            ("ID", short_id(&d.id, o.verbose)),
            ("Status", d.status.clone()),
            ("Description", d.status_description.clone()),
        ]));
        if !d.task_groups.is_empty() {
            out.push_str("\n\nDeployed\n");
            out.push_str(&deployment_groups_table(d));
        }
    }
    if !periodic && !parameterized {
        out.push_str("\n\nAllocations\n");
        if v.allocs.is_empty() {
            out.push_str("No allocations placed");
        } else {
            out.push_str(&alloc_table(&v.allocs, now, o.verbose));
        }
    }
    out
}

/// One version's block of `job history`: Version, Stable, Submit Date and, when given, the diff
/// from the version before it.
pub fn version_text(v: &Job, diff: Option<&drover_types::diff::JobDiff>) -> String {
    let mut rows = vec![
        ("Version", v.version.to_string()),
        ("Stable", v.stable.to_string()),
        ("Submit Date", format::time(v.submit_time)),
    ];
    if let Some(d) = diff {
        rows.push(("Diff", format!("\n{}", job_diff_text(d, false).trim())));
    }
    kv(&rows)
}

/// The versions view of `job history` (newest first); `diffs[i]` (when present) turns version
/// `i+1` into version `i` and is printed under version `i`.
pub fn history_text(versions: &[Job], diffs: &[drover_types::diff::JobDiff], show_diff: bool) -> String {
    versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let diff = diffs.get(i).filter(|_| show_diff && i + 1 < versions.len());
            version_text(v, diff)
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `job status [JOB]`.
pub async fn job_status(a: &StatusArgs, client: &Client, ui: &mut Ui) -> u8 {
    let Some(id) = &a.job else {
        return job_list(client, ui, a.json).await;
    };
    let stub = match crate::job::resolve_job(client, ui, id).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let q = QueryOptions::new();
    let job = match client.job(&stub.id, &q).await {
        Ok((j, _)) => j,
        Err(e) => {
            ui.error(format!("Error querying job: {e}"));
            return 1;
        }
    };
    if a.json {
        return ui.json(&job);
    }
    let mut view = JobView {
        job,
        ..Default::default()
    };
    if !a.short {
        match client.job_summary(&stub.id, &q).await {
            Ok((s, _)) => view.summary = Some(s),
            Err(e) => {
                ui.error(format!("Error querying job summary: {e}"));
                return 1;
            }
        }
        match client.job_allocations(&stub.id, a.all_allocs, &q).await {
            Ok((allocs, _)) => view.allocs = allocs,
            Err(e) => {
                ui.error(format!("Error querying job allocations: {e}"));
                return 1;
            }
        }
        match client.job_evaluations(&stub.id, &q).await {
            Ok((evals, _)) => view.evals = evals,
            Err(e) => {
                ui.error(format!("Error querying job evaluations: {e}"));
                return 1;
            }
        }
        match client.job_latest_deployment(&stub.id, &q).await {
            Ok((d, _)) => view.deployment = d,
            Err(e) => {
                ui.error(format!("Error querying latest job deployment: {e}"));
                return 1;
            }
        }
    }
    let opts = DetailOptions {
        verbose: a.verbose,
        short: a.short,
        evals: a.evals,
    };
    ui.output(job_detail_text(&view, ui.now(), opts));
    0
}

/// The job list (`job status`, `status`): `No running jobs` when there are none.
pub async fn job_list(client: &Client, ui: &mut Ui, json: bool) -> u8 {
    match client.jobs(&QueryOptions::new()).await {
        Ok((jobs, _)) if json => ui.json(&jobs),
        Ok((jobs, _)) if jobs.is_empty() => {
            ui.output("No running jobs");
            0
        }
        Ok((jobs, _)) => {
            ui.output(job_list_table(&jobs));
            0
        }
        Err(e) => {
            ui.error(format!("Error querying jobs: {e}"));
            1
        }
    }
}

/// `job history JOB [-p] [-version N] [-json]`.
pub async fn job_history(a: &HistoryArgs, client: &Client, ui: &mut Ui) -> u8 {
    let stub = match crate::job::resolve_job(client, ui, &a.job).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let resp = match client.job_versions(&stub.id, a.diff, &QueryOptions::new()).await {
        Ok((r, _)) => r,
        Err(e) => {
            ui.error(format!("Error reading job versions: {e}"));
            return 1;
        }
    };
    if a.json {
        return ui.json(&resp);
    }
    let versions = resp.versions;
    let mut diffs = resp.diffs;
    if a.diff && diffs.is_empty() && versions.len() > 1 {
        // The agent did not send diffs: compute them here (the same rules as the server's).
        diffs = versions
            .windows(2)
            .map(|w| {
                let new = serde_json::to_value(&w[0]).ok();
                let old = serde_json::to_value(&w[1]).ok();
                drover_types::diff::job_diff(old.as_ref(), new.as_ref(), false)
            })
            .collect();
    }
    let text = match a.version {
        None => history_text(&versions, &diffs, a.diff),
        Some(want) => match versions.iter().position(|v| v.version == want) {
            Some(i) => {
                let diff = diffs.get(i).filter(|_| a.diff && i + 1 < versions.len());
                version_text(&versions[i], diff)
            }
            None => {
                ui.error(format!("Job {:?} has no version {want}", stub.id));
                return 1;
            }
        },
    };
    ui.output(text);
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::summary::TaskGroupSummary;
    use drover_types::time::{SECOND, Timestamp};

    fn t(s: &str) -> i64 {
        Timestamp::parse_rfc3339(s).map(|t| t.0).unwrap_or_default()
    }

    #[test]
    fn list_table_types_and_statuses() {
        let jobs = vec![
            JobListStub {
                id: "example".into(),
                job_type: "service".into(),
                priority: 50,
                status: "running".into(),
                submit_time: t("2025-01-01T10:00:00Z"),
                ..Default::default()
            },
            JobListStub {
                id: "nightly".into(),
                job_type: "batch".into(),
                priority: 50,
                periodic: true,
                status: "dead".into(),
                stop: true,
                submit_time: t("2025-01-01T11:00:00Z"),
                ..Default::default()
            },
        ];
        assert_eq!(
            job_list_table(&jobs),
            "ID       Type            Priority  Status          Submit Date\n\
             example  service         50        running         2025-01-01T10:00:00Z\n\
             nightly  batch/periodic  50        dead (stopped)  2025-01-01T11:00:00Z"
        );
    }

    fn view() -> JobView {
        let job = Job {
            id: "example".into(),
            name: "example".into(),
            job_type: "service".into(),
            priority: 50,
            datacenters: vec!["*".into()],
            namespace: "default".into(),
            node_pool: "default".into(),
            status: "running".into(),
            submit_time: t("2025-01-01T10:00:00Z"),
            ..Default::default()
        };
        let mut summary = JobSummary::default();
        summary.summary.insert(
            "cache".into(),
            TaskGroupSummary {
                running: 1,
                ..Default::default()
            },
        );
        let alloc = AllocListStub {
            id: "0f3a1b2c-1111-2222-3333-444444444444".into(),
            node_id: "9d8e7f6a-1111-2222-3333-444444444444".into(),
            task_group: "cache".into(),
            desired_status: "run".into(),
            client_status: "running".into(),
            create_time: t("2025-01-01T10:00:00Z"),
            modify_time: t("2025-01-01T10:00:15Z"),
            ..Default::default()
        };
        JobView {
            job,
            summary: Some(summary),
            allocs: vec![alloc],
            evals: vec![],
            deployment: None,
        }
    }

    #[test]
    fn detail_view_reads_like_nomad() {
        let now = t("2025-01-01T10:01:00Z");
        let text = job_detail_text(&view(), now, DetailOptions::default());
        assert_eq!(
            text,
            "ID            = example\n\
             Name          = example\n\
             Submit Date   = 2025-01-01T10:00:00Z\n\
             Type          = service\n\
             Priority      = 50\n\
             Datacenters   = *\n\
             Namespace     = default\n\
             Node Pool     = default\n\
             Status        = running\n\
             Periodic      = false\n\
             Parameterized = false\n\
             \n\
             Summary\n\
             Task Group  Queued  Starting  Running  Failed  Complete  Lost  Unknown\n\
             cache       0       0         1        0       0         0     0\n\
             \n\
             Allocations\n\
             ID        Node ID   Task Group  Version  Desired  Status   Created  Modified\n\
             0f3a1b2c  9d8e7f6a  cache       0        run      running  1m ago   45s ago"
        );
        let short = job_detail_text(
            &view(),
            now,
            DetailOptions {
                short: true,
                ..Default::default()
            },
        );
        assert!(short.ends_with("Parameterized = false"));
    }

    #[test]
    fn detail_view_with_deployment_and_placement_failure() {
        let mut v = view();
        v.allocs.clear();
        let mut d = Deployment {
            id: "2fb9d6b5-0000".into(),
            status: "running".into(),
            status_description: "Deployment is running".into(),
            ..Default::default()
        };
        d.task_groups.insert(
            "cache".into(),
            drover_types::eval::DeploymentState {
                desired_total: 2,
                placed_allocs: 1,
                progress_deadline: 600 * SECOND,
                ..Default::default()
            },
        );
        v.deployment = Some(d);
        let mut failed = Evaluation {
            id: "e1".into(),
            status: "complete".into(),
            create_index: 5,
            ..Default::default()
        };
        failed.failed_tg_allocs.insert(
            "cache".into(),
            drover_types::AllocMetric {
                nodes_evaluated: 1,
                nodes_exhausted: 1,
                ..Default::default()
            },
        );
        v.evals = vec![
            failed,
            Evaluation {
                id: "e2".into(),
                status: "blocked".into(),
                create_index: 6,
                ..Default::default()
            },
        ];
        let text = job_detail_text(&v, 0, DetailOptions::default());
        assert!(
            text.contains(
                "\n\nPlacement Failure\nTask Group \"cache\":\n  * Resources exhausted on 1 nodes\n\n\
                 Latest Deployment\nID          = 2fb9d6b5\nStatus      = running\n\
                 Description = Deployment is running\n\nDeployed\n\
                 Task Group  Desired  Placed  Healthy  Unhealthy  Progress Deadline\n\
                 cache       2        1       0        0          10m0s\n\n\
                 Allocations\nNo allocations placed"
            ),
            "{text}"
        );
    }

    #[test]
    fn history_with_diffs() {
        let v1 = Job {
            id: "example".into(),
            version: 1,
            priority: 60,
            submit_time: t("2025-01-02T00:00:00Z"),
            ..Default::default()
        };
        let v0 = Job {
            id: "example".into(),
            version: 0,
            priority: 50,
            stable: true,
            submit_time: t("2025-01-01T00:00:00Z"),
            ..Default::default()
        };
        let old = serde_json::to_value(&v0).unwrap();
        let new = serde_json::to_value(&v1).unwrap();
        let d = drover_types::diff::job_diff(Some(&old), Some(&new), false);
        let text = history_text(&[v1, v0], &[d], true);
        assert_eq!(
            text,
            "Version     = 1\n\
             Stable      = false\n\
             Submit Date = 2025-01-02T00:00:00Z\n\
             Diff        = \n\
             +/- Job: \"example\"\n\
             +/- Priority: \"50\" => \"60\"\n\
             \n\
             Version     = 0\n\
             Stable      = true\n\
             Submit Date = 2025-01-01T00:00:00Z"
        );
    }
}
