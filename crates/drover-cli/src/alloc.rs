//! `drover alloc status|logs|restart|signal|stop` (§8.5, §8.8).
//!
//! ```text
//!  ALLOC (ID or prefix) ─▶ GET /v1/allocations?prefix= (unless a full ID)
//!                       ─▶ GET /v1/allocation/:id ─┬▶ status:  alloc_text (+ stats, tolerated)
//!                                                  ├▶ stop:    PUT /v1/allocation/:id/stop → eval monitor
//!  node's HTTPAddr first, then the agent at -address ─┤
//!                                                  ├▶ logs:    GET /v1/client/fs/logs/:id (framed)
//!                                                  ├▶ restart: PUT /v1/client/allocation/:id/restart
//!                                                  └▶ signal:  PUT /v1/client/allocation/:id/signal
//! ```
//!
//! Node-local calls (logs, stats, restart, signal) go first to the allocation's node at its
//! `HTTPAddr` (unless the node is down), then — on a connection failure only — to the agent
//! the command talks to, as Nomad's CLI does.
//!
//! `alloc logs -tail -n N` asks for the end of the log (`origin=end`) with a byte offset large
//! enough for N lines (growing it until N lines fit or the log is exhausted); when following,
//! it keeps what arrives until the agent's first heartbeat (the stream caught up), prints the
//! last N lines of it, then everything new.
//!
//! Not shown (yet): service checks, volumes and reschedule details.

use std::io::Write;

use clap::{Args, Subcommand};
use drover_api::{AllocResourceUsage, ApiError, Client, LogType, LogsOptions, QueryOptions};
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
    /// Print (or follow) a task's stdout or stderr.
    Logs(AllocLogsArgs),
    /// Restart a task, or every running task, of an allocation in place.
    Restart(AllocRestartArgs),
    /// Send a signal to a task, or every running task, of an allocation.
    Signal(AllocSignalArgs),
    /// Stop an allocation (the scheduler replaces it) and monitor the evaluation.
    Stop(AllocStopArgs),
}

/// `alloc logs` flags.
#[derive(Debug, Clone, Args)]
pub struct AllocLogsArgs {
    /// Show stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
    /// Keep printing what the task writes (Ctrl-C to stop).
    #[arg(short = 'f')]
    pub follow: bool,
    /// Show the end of the log (10 lines unless -n or -c says otherwise).
    #[arg(long)]
    pub tail: bool,
    /// With -tail: the number of lines.
    #[arg(short = 'n', value_name = "LINES")]
    pub lines: Option<u64>,
    /// With -tail: the number of bytes.
    #[arg(short = 'c', value_name = "BYTES", conflicts_with = "lines")]
    pub bytes: Option<u64>,
    /// The first argument is a job ID: use its most recent running allocation.
    #[arg(long)]
    pub job: bool,
    /// The task (instead of the second argument).
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// Full IDs in messages.
    #[arg(long)]
    pub verbose: bool,
    /// The allocation ID (or a unique prefix), or with -job a job ID.
    pub alloc: String,
    /// The task; optional when the group has one task.
    pub task_name: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `alloc restart` flags.
#[derive(Debug, Clone, Args)]
pub struct AllocRestartArgs {
    /// The task (instead of the second argument).
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// Restart every task of the allocation.
    #[arg(long = "all-tasks")]
    pub all_tasks: bool,
    /// Full IDs in messages.
    #[arg(long)]
    pub verbose: bool,
    /// The allocation ID (or a unique prefix).
    pub alloc: String,
    /// The task; every running task when not given.
    pub task_name: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `alloc signal` flags.
#[derive(Debug, Clone, Args)]
pub struct AllocSignalArgs {
    /// The signal (`SIGHUP`, `SIGUSR1`, …); the agent sends SIGKILL when not given.
    #[arg(short = 's', value_name = "SIGNAL")]
    pub signal: Option<String>,
    /// The task (instead of the second argument).
    #[arg(long, value_name = "TASK")]
    pub task: Option<String>,
    /// Full IDs in messages.
    #[arg(long)]
    pub verbose: bool,
    /// The allocation ID (or a unique prefix).
    pub alloc: String,
    /// The task; every running task when not given.
    pub task_name: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `alloc stop` flags.
#[derive(Debug, Clone, Args)]
pub struct AllocStopArgs {
    /// Print the evaluation ID and return at once.
    #[arg(long)]
    pub detach: bool,
    /// Full IDs.
    #[arg(long)]
    pub verbose: bool,
    /// Skip the group's shutdown delay.
    #[arg(long = "no-shutdown-delay")]
    pub no_shutdown_delay: bool,
    /// The allocation ID (or a unique prefix).
    pub alloc: String,
    #[command(flatten)]
    pub api: ApiArgs,
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
        AllocCommand::Logs(a) => run_with_client(&a.api, async |c, ui| alloc_logs(&a, c, ui).await),
        AllocCommand::Restart(a) => run_with_client(&a.api, async |c, ui| alloc_restart(&a, c, ui).await),
        AllocCommand::Signal(a) => run_with_client(&a.api, async |c, ui| alloc_signal(&a, c, ui).await),
        AllocCommand::Stop(a) => run_with_client(&a.api, async |c, ui| alloc_stop(&a, c, ui).await),
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
        let mut scorers: Vec<&str> = m
            .score_meta_data
            .iter()
            .flat_map(|s| s.scores.keys().map(|k| k.as_ref()))
            .collect();
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
pub fn task_text(name: &str, lifecycle: &str, state: &TaskState, resources: Option<&str>) -> String {
    let mut out = format!(
        "Task {}{lifecycle} is {}\n",
        format::quote(name),
        format::quote(&state.state)
    );
    if let Some(r) = resources {
        out.push_str("Task Resources:\n");
        out.push_str(r);
        out.push_str("\n\n");
    }
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

/// The labels of the group's dynamic ports.
fn dynamic_labels(a: &Allocation) -> Vec<String> {
    a.job
        .as_ref()
        .and_then(|j| j.group(&a.task_group))
        .map(|g| {
            g.networks
                .iter()
                .flat_map(|n| n.dynamic_ports.iter().map(|p| p.label.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `Allocation Addresses (mode = "host")` section, or `None` without group ports.
pub fn alloc_addresses_text(a: &Allocation) -> Option<String> {
    let shared = &a.allocated_resources.as_ref()?.shared;
    if shared.ports.is_empty() {
        return None;
    }
    let mode = shared
        .networks
        .first()
        .map(|n| n.mode.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "host".into());
    let dynamic = dynamic_labels(a);
    let mut rows = vec![row!["Label", "Dynamic", "Address"]];
    for p in &shared.ports {
        let is_dynamic = dynamic.contains(&p.label);
        let mut addr = format!("{}:{}", p.host_ip, p.value);
        if p.to > 0 && p.to != p.value {
            addr.push_str(&format!(" -> {}", p.to));
        }
        rows.push(row![
            if is_dynamic {
                format!("*{}", p.label)
            } else {
                p.label.clone()
            },
            if is_dynamic { "yes" } else { "no" },
            addr
        ]);
    }
    Some(format!(
        "Allocation Addresses (mode = {}):\n{}",
        format::quote(&mode),
        table(&rows)
    ))
}

/// A task's `CPU  Memory  Disk  Addresses` table: used/limit when `stats` has the task, the
/// limits alone otherwise.
pub fn task_resources_text(a: &Allocation, task: &str, stats: Option<&AllocResourceUsage>) -> Option<String> {
    let res = a.allocated_resources.as_ref()?;
    let t = res.tasks.get(task)?;
    let cpu_limit = t.cpu.cpu_shares;
    let mem_limit = format::mib(t.memory.memory_mb);
    let usage = stats.and_then(|s| s.tasks.get(task));
    let (cpu, mem) = match usage {
        Some(u) => {
            let ms = &u.resource_usage.memory_stats;
            let used = if ms.rss > 0 || ms.measured.iter().any(|m| m == "RSS") {
                ms.rss
            } else {
                ms.usage
            };
            (
                format!(
                    "{}/{cpu_limit} MHz",
                    u.resource_usage.cpu_stats.total_ticks.floor() as i64
                ),
                format!("{}/{mem_limit}", format::ibytes(used)),
            )
        }
        None => (format!("{cpu_limit} MHz"), mem_limit),
    };
    let addresses: Vec<String> = res
        .shared
        .ports
        .iter()
        .map(|p| format!("{}: {}:{}", p.label, p.host_ip, p.value))
        .collect();
    Some(table(&[
        row!["CPU", "Memory", "Disk", "Addresses"],
        row![cpu, mem, format::mib(res.shared.disk_mb), addresses.join(", ")],
    ]))
}

/// The `alloc status` view.
pub fn alloc_text(a: &Allocation, now: i64, verbose: bool) -> String {
    alloc_text_with_stats(a, None, now, verbose)
}

/// The `alloc status` view with the tasks' resource usage when known.
pub fn alloc_text_with_stats(
    a: &Allocation,
    stats: Option<&AllocResourceUsage>,
    now: i64,
    verbose: bool,
) -> String {
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
    if let Some(addrs) = alloc_addresses_text(a) {
        out.push_str("\n\n");
        out.push_str(&addrs);
    }
    for (name, label, state) in ordered_tasks(a) {
        out.push_str("\n\n");
        let resources = task_resources_text(a, name, stats);
        out.push_str(&task_text(name, &label, state, resources.as_deref()));
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
    let mut stats = None;
    if alloc.client_status == "running" {
        let clients = node_clients(client, &alloc.node_id).await;
        if clients.is_empty() {
            ui.error("Omitting resource statistics since the node is down.");
        } else {
            match on_node(&clients, async |c: &Client| c.alloc_stats(&alloc.id).await).await {
                Ok(s) => stats = Some(s),
                Err(e) => ui.error(format!("Couldn't retrieve stats: {}", e.message())),
            }
        }
    }
    ui.output(alloc_text_with_stats(&alloc, stats.as_ref(), ui.now(), a.verbose));
    0
}

/// The agents to ask about an allocation on `node_id`: the node's own `HTTPAddr` first (unless
/// the node is down), then `client`. Empty when the node is down.
pub async fn node_clients(client: &Client, node_id: &str) -> Vec<Client> {
    let mut out = Vec::new();
    if let Ok((node, _)) = client.node(node_id, &QueryOptions::new()).await {
        if node.status == "down" {
            return out;
        }
        if !node.http_addr.is_empty()
            && let Ok(direct) = client.with_address(&node.http_addr)
            && direct.address() != client.address()
        {
            out.push(direct);
        }
    }
    out.push(client.clone());
    out
}

/// Runs `f` against each client in turn, moving on only when one cannot be reached.
pub async fn on_node<T>(
    clients: &[Client],
    f: impl AsyncFn(&Client) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut last = None;
    for c in clients {
        match f(c).await {
            Err(e) if e.is_connect() => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| ApiError::Transport {
        verb: drover_api::Verb::Get,
        url: String::new(),
        reason: "the allocation's node is down".into(),
    }))
}

/// Fetches the allocation an ID or prefix names, with exit codes and Nomad's messages.
async fn fetch_alloc(client: &Client, ui: &mut Ui, id: &str, verbose: bool) -> Result<Allocation, u8> {
    let full = resolve_alloc(client, ui, id, verbose).await?;
    match client.allocation(&full, &QueryOptions::new()).await {
        Ok((al, _)) => Ok(al),
        Err(e) if e.is_not_found() => {
            ui.error(format!("No allocation(s) with prefix or id \"{id}\" found"));
            Err(1)
        }
        Err(e) => {
            ui.error(format!("Error querying allocation: {e}"));
            Err(1)
        }
    }
}

/// The task names of the allocation's group, in the job's order.
pub fn group_tasks(a: &Allocation) -> Vec<String> {
    match a.job.as_ref().and_then(|j| j.group(&a.task_group)) {
        Some(g) => g.tasks.iter().map(|t| t.name.clone()).collect(),
        None => a.task_states.keys().cloned().collect(),
    }
}

/// The task a command names (`-task` or the argument), checked against the group; with
/// `required`, a group of one task needs no name.
pub fn pick_task(
    a: &Allocation,
    flag: &Option<String>,
    arg: &Option<String>,
    required: bool,
) -> Result<Option<String>, String> {
    let tasks = group_tasks(a);
    let given = match (flag, arg) {
        (Some(f), Some(g)) if f != g => {
            return Err(format!(
                "The task is given twice, as -task {} and as the argument {}",
                format::quote(f),
                format::quote(g)
            ));
        }
        (Some(t), _) | (None, Some(t)) => Some(t.clone()),
        (None, None) => None,
    };
    match given {
        Some(t) if tasks.contains(&t) => Ok(Some(t)),
        Some(t) => Err(format!(
            "Could not find task named: {} (the allocation's tasks: {})",
            format::quote(&t),
            tasks.join(", ")
        )),
        None if !required => Ok(None),
        None if tasks.len() == 1 => Ok(Some(tasks[0].clone())),
        None => {
            let list: Vec<String> = tasks.iter().map(|t| format!("  * {t}")).collect();
            Err(format!(
                "Allocation {} is running the following tasks:\n{}\n\nPlease specify the task.",
                format::quote(&short_id(&a.id, false)),
                list.join("\n")
            ))
        }
    }
}

/// The last `n` lines of `data` (a final line without a newline counts as a line).
pub fn last_lines(data: &[u8], n: u64) -> &[u8] {
    if n == 0 {
        return &data[data.len()..];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

fn write_raw(ui: &mut Ui, stderr: bool, data: &[u8]) {
    let w: &mut Box<dyn Write + Send> = if stderr { &mut ui.err } else { &mut ui.out };
    let _ = w.write_all(data);
    let _ = w.flush();
}

/// `alloc logs [-stderr] [-f] [-tail] [-n N] [-c N] [-job] [-task T] ALLOC [TASK]`.
pub async fn alloc_logs(a: &AllocLogsArgs, client: &Client, ui: &mut Ui) -> u8 {
    let alloc_id = if a.job {
        match client
            .job_allocations(&a.alloc, false, &QueryOptions::new())
            .await
        {
            Ok((allocs, _)) => {
                match allocs
                    .iter()
                    .filter(|x| x.client_status == "running")
                    .max_by_key(|x| x.create_index)
                {
                    Some(x) => x.id.clone(),
                    None => {
                        ui.error(format!(
                            "No running allocations found for job {}",
                            format::quote(&a.alloc)
                        ));
                        return 1;
                    }
                }
            }
            Err(e) => {
                ui.error(format!("Error querying job allocations: {e}"));
                return 1;
            }
        }
    } else {
        a.alloc.clone()
    };
    let alloc = match fetch_alloc(client, ui, &alloc_id, a.verbose).await {
        Ok(al) => al,
        Err(code) => return code,
    };
    let task = match pick_task(&alloc, &a.task, &a.task_name, true) {
        Ok(Some(t)) => t,
        Ok(None) => return 1,
        Err(msg) => {
            ui.error(msg);
            return 1;
        }
    };
    let clients = node_clients(client, &alloc.node_id).await;
    if clients.is_empty() {
        ui.error(format!(
            "Error reading logs: the node of allocation {} is down",
            format::quote(&short_id(&alloc.id, a.verbose))
        ));
        return 1;
    }
    let log_type = if a.stderr {
        LogType::Stderr
    } else {
        LogType::Stdout
    };
    let tail = a.tail || a.lines.is_some() || a.bytes.is_some();
    let lines = match (tail, a.bytes, a.lines) {
        (false, _, _) | (true, Some(_), _) => None,
        (true, None, n) => Some(n.unwrap_or(10)),
    };
    let mut opts = LogsOptions {
        log_type,
        follow: a.follow,
        from_end: tail,
        offset: a.bytes.unwrap_or(0),
    };
    let fail = |ui: &mut Ui, e: ApiError| {
        ui.error(format!(
            "Error reading {} logs of task {}: {}",
            log_type.as_str(),
            format::quote(&task),
            e.message()
        ));
        1
    };
    // A tail by lines without following: grow the window until it holds the lines.
    if let (Some(n), false) = (lines, a.follow) {
        let mut window = (n * 200).max(4096);
        loop {
            opts.offset = window;
            let data = match on_node(&clients, async |c: &Client| {
                c.alloc_logs(&alloc.id, &task, &opts).await?.read_to_end().await
            })
            .await
            {
                Ok(d) => d,
                Err(e) => return fail(ui, e),
            };
            let enough = (data.len() as u64) < window || last_lines(&data, n).len() < data.len();
            if enough {
                write_raw(ui, a.stderr, last_lines(&data, n));
                return 0;
            }
            window = window.saturating_mul(4);
        }
    }
    if let Some(n) = lines {
        opts.offset = (n * 200).max(4096);
    }
    let mut stream = match on_node(&clients, async |c: &Client| {
        c.alloc_logs(&alloc.id, &task, &opts).await
    })
    .await
    {
        Ok(s) => s,
        Err(e) => return fail(ui, e),
    };
    // Following a tail by lines: hold what arrives until the stream caught up.
    let mut held: Option<Vec<u8>> = lines.map(|_| Vec::new());
    loop {
        match stream.next_frame().await {
            Ok(Some(f)) => {
                if let Some(h) = held.as_mut() {
                    if f.is_heartbeat() {
                        let n = lines.unwrap_or(10);
                        let h = held.take().unwrap_or_default();
                        write_raw(ui, a.stderr, last_lines(&h, n));
                    } else {
                        h.extend_from_slice(&f.data);
                    }
                } else if !f.data.is_empty() {
                    write_raw(ui, a.stderr, &f.data);
                }
            }
            Ok(None) => {
                if let Some(h) = held.take() {
                    write_raw(ui, a.stderr, last_lines(&h, lines.unwrap_or(10)));
                }
                return 0;
            }
            Err(e) => return fail(ui, e),
        }
    }
}

/// `alloc restart [-task T] [-all-tasks] ALLOC [TASK]`.
pub async fn alloc_restart(a: &AllocRestartArgs, client: &Client, ui: &mut Ui) -> u8 {
    if a.all_tasks && (a.task.is_some() || a.task_name.is_some()) {
        ui.error("The -all-tasks option is not allowed when restarting a specific task.");
        return 1;
    }
    let alloc = match fetch_alloc(client, ui, &a.alloc, a.verbose).await {
        Ok(al) => al,
        Err(code) => return code,
    };
    let task = match pick_task(&alloc, &a.task, &a.task_name, false) {
        Ok(t) => t,
        Err(msg) => {
            ui.error(msg);
            return 1;
        }
    };
    let clients = node_clients(client, &alloc.node_id).await;
    match on_node(&clients, async |c: &Client| {
        c.restart_allocation(&alloc.id, task.as_deref(), a.all_tasks)
            .await
    })
    .await
    {
        Ok(_) => 0,
        Err(e) => {
            ui.error(format!("Failed to restart allocation:\n\n{}", e.message()));
            1
        }
    }
}

/// `alloc signal [-s SIGNAL] [-task T] ALLOC [TASK]`.
pub async fn alloc_signal(a: &AllocSignalArgs, client: &Client, ui: &mut Ui) -> u8 {
    let alloc = match fetch_alloc(client, ui, &a.alloc, a.verbose).await {
        Ok(al) => al,
        Err(code) => return code,
    };
    let task = match pick_task(&alloc, &a.task, &a.task_name, false) {
        Ok(t) => t,
        Err(msg) => {
            ui.error(msg);
            return 1;
        }
    };
    let signal = a.signal.clone().unwrap_or_default();
    let clients = node_clients(client, &alloc.node_id).await;
    match on_node(&clients, async |c: &Client| {
        c.signal_allocation(&alloc.id, task.as_deref(), &signal).await
    })
    .await
    {
        Ok(_) => 0,
        Err(e) => {
            ui.error(format!("Error signalling allocation: {}", e.message()));
            1
        }
    }
}

/// `alloc stop [-detach] [-verbose] [-no-shutdown-delay] ALLOC`.
pub async fn alloc_stop(a: &AllocStopArgs, client: &Client, ui: &mut Ui) -> u8 {
    let id = match resolve_alloc(client, ui, &a.alloc, a.verbose).await {
        Ok(id) => id,
        Err(code) => return code,
    };
    let resp = match client.stop_allocation(&id, a.no_shutdown_delay).await {
        Ok(r) => r,
        Err(e) => {
            ui.error(format!("Error stopping allocation: {}", e.message()));
            return 1;
        }
    };
    if a.detach {
        ui.output(resp.eval_id);
        return 0;
    }
    crate::monitor::monitor_eval(client, ui, &resp.eval_id, a.verbose).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_of_a_log() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(last_lines(b"", 3), b"");
    }

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
