//! `drover node status | drain | eligibility` (§8.6, §8.8).
//!
//! ```text
//!  node status            GET /v1/nodes ─▶ node_list_table ("No nodes registered")
//!  node status NODE       resolve prefix ─▶ GET /v1/node/:id + /allocations ─▶ node_detail_text
//!  node drain -enable     PUT /v1/node/:id/drain {DrainSpec} ─▶ monitor_drain (unless -detach)
//!  node drain -disable    PUT /v1/node/:id/drain {DrainSpec: null, MarkEligible}
//!  node eligibility       PUT /v1/node/:id/eligibility
//!  -self                  GET /v1/agent/self → stats.client.node_id
//! ```
//!
//! `node status NODE` also asks the node's agent (its `HTTPAddr`, else the agent at
//! `-address`) for `GET /v1/client/stats?node_id=`; when that answers, `Uptime` and `Host
//! Resource Utilization` are shown, otherwise they are left out (as Nomad tolerates the
//! failure). Per-allocation utilisation is not shown.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use drover_api::{Client, DrainSpec, HostStats, QueryOptions};
use drover_types::node::Node;
use drover_types::{Allocation, NodeListStub};

use crate::common::{ApiArgs, Ui, run_with_client};
use crate::format::{self, kv, short_id, table};
use crate::job_status::alloc_table;
use crate::row;

/// `node` subcommands.
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List client nodes, or show one.
    Status(NodeStatusArgs),
    /// Start or stop draining a node.
    Drain(DrainArgs),
    /// Allow or forbid new placements on a node.
    Eligibility(EligibilityArgs),
}

/// `node status` flags.
#[derive(Debug, Clone, Args)]
pub struct NodeStatusArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Full IDs, addresses, versions, attributes.
    #[arg(long)]
    pub verbose: bool,
    /// Show the node of the agent at -address.
    #[arg(long = "self")]
    pub self_node: bool,
    /// The node ID (or a unique prefix); without it, all nodes are listed.
    pub node: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `node drain` flags.
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// Start draining.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Stop draining.
    #[arg(long)]
    pub disable: bool,
    /// How long allocations may take to migrate before they are stopped (default 1h).
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["force", "no_deadline"])]
    pub deadline: Option<String>,
    /// Stop every allocation now.
    #[arg(long, conflicts_with = "no_deadline")]
    pub force: bool,
    /// Wait for allocations to migrate without a deadline.
    #[arg(long = "no-deadline")]
    pub no_deadline: bool,
    /// Leave system-job allocations running.
    #[arg(long = "ignore-system")]
    pub ignore_system: bool,
    /// With -disable: keep the node ineligible for placements.
    #[arg(long = "keep-ineligible")]
    pub keep_ineligible: bool,
    /// Return right after setting the drain.
    #[arg(long)]
    pub detach: bool,
    /// Only watch a drain already in progress.
    #[arg(long)]
    pub monitor: bool,
    /// Do not ask for confirmation when the ID was a prefix.
    #[arg(long)]
    pub yes: bool,
    /// The node of the agent at -address.
    #[arg(long = "self")]
    pub self_node: bool,
    /// A message recorded with the drain.
    #[arg(short = 'm', value_name = "MESSAGE")]
    pub message: Option<String>,
    /// The node ID (or a unique prefix).
    pub node: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `node eligibility` flags.
#[derive(Debug, Clone, Args)]
pub struct EligibilityArgs {
    /// Make the node eligible for placements.
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    /// Make the node ineligible for placements.
    #[arg(long)]
    pub disable: bool,
    /// The node of the agent at -address.
    #[arg(long = "self")]
    pub self_node: bool,
    /// The node ID (or a unique prefix).
    pub node: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs a node subcommand with the process's terminal.
pub fn run(cmd: NodeCommand) -> u8 {
    match cmd {
        NodeCommand::Status(a) => run_with_client(&a.api, async |c, ui| node_status(&a, c, ui).await),
        NodeCommand::Drain(a) => run_with_client(&a.api, async |c, ui| node_drain(&a, c, ui).await),
        NodeCommand::Eligibility(a) => {
            run_with_client(&a.api, async |c, ui| node_eligibility(&a, c, ui).await)
        }
    }
}

/// The node list table.
pub fn node_list_table(nodes: &[NodeListStub], verbose: bool) -> String {
    let mut header = row!["ID", "Node Pool", "DC", "Name", "Class"];
    if verbose {
        header.extend(row!["Address", "Version"]);
    }
    header.extend(row!["Drain", "Eligibility", "Status"]);
    let mut rows = vec![header];
    for n in nodes {
        let mut r = row![
            short_id(&n.id, verbose),
            n.node_pool,
            n.datacenter,
            n.name,
            n.node_class
        ];
        if verbose {
            r.extend(row![n.address, n.version]);
        }
        r.extend(row![n.drain, n.scheduling_eligibility, n.status]);
        rows.push(r);
    }
    table(&rows)
}

/// `true; 2025-01-01T11:00:00Z deadline`, `true; no deadline`, `true; force drain`
/// (+ `; ignoring system jobs`), or `false`.
pub fn drain_text(n: &Node) -> String {
    let Some(d) = &n.drain_strategy else {
        return n.drain.to_string();
    };
    let mut s = String::from("true");
    if d.deadline < 0 {
        s.push_str("; force drain");
    } else if let Some(t) = d.force_deadline {
        s.push_str(&format!("; {} deadline", format::time(t.0)));
    } else {
        s.push_str("; no deadline");
    }
    if d.ignore_system_jobs {
        s.push_str("; ignoring system jobs");
    }
    s
}

/// The `Allocated Resources` table: running allocations against the node's capacity minus
/// what is reserved.
pub fn allocated_resources_table(n: &Node, allocs: &[Allocation]) -> String {
    let (mut cpu, mut mem, mut disk, mut count) = (0i64, 0i64, 0i64, 0i64);
    for a in allocs.iter().filter(|a| a.client_status == "running") {
        count += 1;
        if let Some(r) = &a.allocated_resources {
            for t in r.tasks.values() {
                cpu += t.cpu.cpu_shares;
                mem += t.memory.memory_mb;
            }
            disk += r.shared.disk_mb;
        }
    }
    let res = n.node_resources.clone().unwrap_or_default();
    let reserved = n.reserved_resources.clone().unwrap_or_default();
    let total_cpu = res.cpu.cpu_shares - reserved.cpu.cpu_shares;
    let total_mem = res.memory.memory_mb - reserved.memory.memory_mb;
    let total_disk = res.disk.disk_mb - reserved.disk.disk_mb;
    let alloc_count = if n.node_max_allocs > 0 {
        format!("{count}/{}", n.node_max_allocs)
    } else {
        count.to_string()
    };
    table(&[
        row!["CPU", "Memory", "Disk", "Alloc Count"],
        row![
            format!("{cpu}/{total_cpu} MHz"),
            format!("{}/{}", format::mib(mem), format::mib(total_mem)),
            format!("{}/{}", format::mib(disk), format::mib(total_disk)),
            alloc_count
        ],
    ])
}

fn names_or_none<I: IntoIterator<Item = String>>(it: I) -> String {
    let v: Vec<String> = it.into_iter().collect();
    v.join(",")
}

/// The `Host Resource Utilization` table: CPU and memory in use, and the allocation
/// directory's disk (`used/size`, or the device in parentheses when its size is unknown).
pub fn host_utilization_table(n: &Node, h: &HostStats) -> String {
    let res = n.node_resources.clone().unwrap_or_default();
    let disk = match &h.alloc_dir_stats {
        Some(d) if d.size > 0 => format!("{}/{}", format::ibytes(d.used), format::ibytes(d.size)),
        Some(d) => format!("({})", d.device),
        None => String::new(),
    };
    table(&[
        row!["CPU", "Memory", "Disk"],
        row![
            format!(
                "{}/{} MHz",
                h.cpu_ticks_consumed.floor() as i64,
                res.cpu.cpu_shares
            ),
            format!(
                "{}/{}",
                format::ibytes(h.memory.used),
                format::ibytes(h.memory.total)
            ),
            disk
        ],
    ])
}

/// The `node status NODE` view (without host statistics).
pub fn node_detail_text(n: &Node, allocs: &[Allocation], now: i64, verbose: bool) -> String {
    node_detail_text_with_stats(n, allocs, None, now, verbose)
}

/// The `node status NODE` view; with the node's host statistics it shows `Uptime` and `Host
/// Resource Utilization`.
pub fn node_detail_text_with_stats(
    n: &Node,
    allocs: &[Allocation],
    host: Option<&HostStats>,
    now: i64,
    verbose: bool,
) -> String {
    let drivers = names_or_none(n.drivers.iter().filter(|(_, d)| d.detected).map(|(name, d)| {
        if d.healthy {
            name.clone()
        } else {
            format!("{name} (unhealthy)")
        }
    }));
    let mut rows = vec![
        ("ID", n.id.clone()),
        ("Name", n.name.clone()),
        ("Node Pool", n.node_pool.clone()),
        ("Class", n.node_class.clone()),
        ("DC", n.datacenter.clone()),
        ("Drain", drain_text(n)),
        ("Eligibility", n.scheduling_eligibility.clone()),
        ("Status", n.status.clone()),
        ("CSI Controllers", String::new()),
        ("CSI Drivers", String::new()),
    ];
    if let Some(h) = host {
        rows.push((
            "Uptime",
            drover_types::time::format_duration(h.uptime as i64 * drover_types::time::SECOND),
        ));
    }
    rows.extend([
        ("Host Volumes", names_or_none(n.host_volumes.keys().cloned())),
        ("Host Networks", names_or_none(n.host_networks.keys().cloned())),
        ("CSI Volumes", String::new()),
        ("Driver Status", drivers),
    ]);
    let mut out = kv(&rows);

    out.push_str("\n\nNode Events\n");
    let mut events = vec![if verbose {
        row!["Time", "Subsystem", "Message", "Details"]
    } else {
        row!["Time", "Subsystem", "Message"]
    }];
    for e in n.events.iter().rev() {
        let mut r = row![format::opt_time(e.timestamp), e.subsystem, e.message];
        if verbose {
            let details: Vec<String> = e.details.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            r.push(details.join(", "));
        }
        events.push(r);
    }
    out.push_str(&table(&events));

    out.push_str("\n\nAllocated Resources\n");
    out.push_str(&allocated_resources_table(n, allocs));
    if let Some(h) = host {
        out.push_str("\n\nHost Resource Utilization\n");
        out.push_str(&host_utilization_table(n, h));
    }

    if verbose {
        out.push_str("\n\nDrivers\n");
        let mut rows = vec![row!["Driver", "Detected", "Healthy", "Message", "Time"]];
        for (name, d) in &n.drivers {
            rows.push(row![
                name,
                d.detected,
                d.healthy,
                d.health_description,
                format::opt_time(d.update_time)
            ]);
        }
        out.push_str(&table(&rows));
        out.push_str("\n\nAttributes\n");
        out.push_str(&kv(&n.attributes.iter().collect::<Vec<_>>()));
        if !n.meta.is_empty() {
            out.push_str("\n\nMeta\n");
            out.push_str(&kv(&n.meta.iter().collect::<Vec<_>>()));
        }
    }

    out.push_str("\n\nAllocations\n");
    if allocs.is_empty() {
        out.push_str("No allocations placed");
    } else {
        let stubs: Vec<_> = allocs.iter().map(|a| a.stub(false, false)).collect();
        out.push_str(&alloc_table(&stubs, now, verbose));
    }
    out
}

/// Finds the node an ID or prefix names (exit 1 on none or several).
pub async fn resolve_node(client: &Client, ui: &mut Ui, id: &str) -> Result<NodeListStub, u8> {
    let nodes = match client.nodes(&QueryOptions::new().with_prefix(id)).await {
        Ok((n, _)) => n,
        Err(e) => {
            ui.error(format!("Error querying node info: {e}"));
            return Err(1);
        }
    };
    if let Some(exact) = nodes.iter().find(|n| n.id == id) {
        return Ok(exact.clone());
    }
    match nodes.len() {
        0 => {
            ui.error(format!("No node(s) with prefix or id \"{id}\" found"));
            Err(1)
        }
        1 => Ok(nodes[0].clone()),
        _ => {
            ui.error(format!(
                "Prefix matched multiple nodes\n\n{}",
                node_list_table(&nodes, true)
            ));
            Err(1)
        }
    }
}

/// The node ID of the agent at the client's address (`-self`).
async fn self_node_id(client: &Client, ui: &mut Ui) -> Result<String, u8> {
    match client.agent_self().await {
        Ok(s) => match s.stat("client", "node_id") {
            Some(id) if !id.is_empty() => Ok(id),
            _ => {
                ui.error(format!(
                    "The agent at {} is not running a client: -self needs a client agent",
                    client.address()
                ));
                Err(1)
            }
        },
        Err(e) => {
            ui.error(format!("Error querying agent info: {e}"));
            Err(1)
        }
    }
}

/// The node the arguments name: `-self` or a (prefix of an) ID.
async fn target_node(
    client: &Client,
    ui: &mut Ui,
    node: &Option<String>,
    self_node: bool,
) -> Result<(String, bool), u8> {
    match (node, self_node) {
        (Some(_), true) => {
            ui.error("Give either a node ID or -self, not both");
            Err(1)
        }
        (None, true) => self_node_id(client, ui).await.map(|id| (id, true)),
        (Some(id), false) => {
            let n = resolve_node(client, ui, id).await?;
            let exact = n.id == *id;
            Ok((n.id, exact))
        }
        (None, false) => {
            ui.error("This command takes one argument: <node>");
            Err(1)
        }
    }
}

/// `node status [NODE]`.
pub async fn node_status(a: &NodeStatusArgs, client: &Client, ui: &mut Ui) -> u8 {
    if a.node.is_none() && !a.self_node {
        return match client.nodes(&QueryOptions::new()).await {
            Ok((nodes, _)) if a.json => ui.json(&nodes),
            Ok((nodes, _)) if nodes.is_empty() => {
                ui.output("No nodes registered");
                0
            }
            Ok((nodes, _)) => {
                ui.output(node_list_table(&nodes, a.verbose));
                0
            }
            Err(e) => {
                ui.error(format!("Error querying node status: {e}"));
                1
            }
        };
    }
    let (id, _) = match target_node(client, ui, &a.node, a.self_node).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    let node = match client.node(&id, &QueryOptions::new()).await {
        Ok((n, _)) => n,
        Err(e) => {
            ui.error(format!("Error querying node info: {e}"));
            return 1;
        }
    };
    if a.json {
        return ui.json(&node);
    }
    let allocs = match client.node_allocations(&id, &QueryOptions::new()).await {
        Ok((a, _)) => a,
        Err(e) => {
            ui.error(format!("Error querying node allocations: {e}"));
            return 1;
        }
    };
    let host = if node.status == "down" {
        None
    } else {
        let clients = crate::alloc::node_clients(client, &id).await;
        crate::alloc::on_node(&clients, async |c: &Client| c.host_stats(Some(&id)).await)
            .await
            .ok()
    };
    ui.output(node_detail_text_with_stats(
        &node,
        &allocs,
        host.as_ref(),
        ui.now(),
        a.verbose,
    ));
    0
}

/// The drain deadline the flags ask for, in nanoseconds (`-force` → -1, `-no-deadline` → 0,
/// default 1h).
pub fn drain_deadline(a: &DrainArgs) -> Result<i64, String> {
    if a.force {
        return Ok(-1);
    }
    if a.no_deadline {
        return Ok(0);
    }
    let text = a.deadline.as_deref().unwrap_or("1h");
    let d = drover_types::time::parse_duration(text)?;
    if d <= 0 {
        return Err(format!(
            "invalid -deadline {text:?}: must be positive (use -force or -no-deadline)"
        ));
    }
    Ok(d)
}

/// `node drain`.
pub async fn node_drain(a: &DrainArgs, client: &Client, ui: &mut Ui) -> u8 {
    if !a.enable && !a.disable && !a.monitor {
        ui.error("Either the -enable or -disable flag must be set, unless using -monitor");
        return 1;
    }
    let deadline = match drain_deadline(a) {
        Ok(d) => d,
        Err(e) => {
            ui.error(e);
            return 1;
        }
    };
    let (id, exact) = match target_node(client, ui, &a.node, a.self_node).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    if a.monitor && !a.enable && !a.disable {
        return monitor_drain(client, ui, &id, a.ignore_system).await;
    }
    if !exact && !a.yes {
        let verb = if a.enable { "enable" } else { "disable" };
        if !ui.confirm(&format!(
            "Are you sure you want to {verb} drain mode for node \"{id}\"? [y/N]"
        )) {
            ui.output("Canceling drain toggle");
            return 0;
        }
    }
    let meta = a
        .message
        .as_ref()
        .map(|m| BTreeMap::from([("message".to_string(), m.clone())]));
    let spec = a.enable.then_some(DrainSpec {
        deadline,
        ignore_system_jobs: a.ignore_system,
    });
    if let Err(e) = client
        .node_drain(&id, spec, a.disable && !a.keep_ineligible, meta)
        .await
    {
        ui.error(format!("Error updating drain specification: {e}"));
        return 1;
    }
    if !a.enable {
        ui.output(format!("Node \"{id}\" drain strategy unset"));
        return 0;
    }
    if a.detach {
        ui.output(format!("Node \"{id}\" drain strategy set"));
        return 0;
    }
    let ts = format::time(ui.now());
    ui.output(format!(
        "==> {ts}: Ctrl-C to stop monitoring: will not cancel the node drain"
    ));
    ui.output(format!("==> {ts}: Node \"{id}\" drain strategy set"));
    monitor_drain(client, ui, &id, a.ignore_system).await
}

/// Progress lines for the allocations of a draining node: what changed from `before` to
/// `after` (marked for migration, draining, status changes).
pub fn drain_alloc_changes(before: &BTreeMap<String, Allocation>, after: &[Allocation]) -> Vec<String> {
    let mut out = Vec::new();
    for a in after {
        let id = short_id(&a.id, false);
        let migrating = a.desired_transition.migrate == Some(true);
        match before.get(&a.id) {
            None => {
                if migrating && !a.terminal() {
                    out.push(format!("Alloc \"{id}\" marked for migration"));
                }
            }
            Some(b) => {
                if migrating && b.desired_transition.migrate != Some(true) {
                    out.push(format!("Alloc \"{id}\" marked for migration"));
                }
                if a.server_terminal() && !b.server_terminal() {
                    out.push(format!("Alloc \"{id}\" draining"));
                }
                if a.client_status != b.client_status {
                    out.push(format!(
                        "Alloc \"{id}\" status {} -> {}",
                        b.client_status, a.client_status
                    ));
                }
            }
        }
    }
    out
}

/// Watches a draining node until the drain is done and its allocations have stopped.
pub async fn monitor_drain(client: &Client, ui: &mut Ui, id: &str, ignore_system: bool) -> u8 {
    let mut seen: BTreeMap<String, Allocation> = BTreeMap::new();
    let mut drain_done = false;
    loop {
        let node = match client.node(id, &QueryOptions::new()).await {
            Ok((n, _)) => n,
            Err(e) => {
                ui.error(format!("Error monitoring node: {e}"));
                return 1;
            }
        };
        let allocs = match client.node_allocations(id, &QueryOptions::new()).await {
            Ok((a, _)) => a,
            Err(e) => {
                ui.error(format!("Error monitoring allocations: {e}"));
                return 1;
            }
        };
        let ts = format::time(ui.now());
        for line in drain_alloc_changes(&seen, &allocs) {
            ui.output(format!("    {ts}: {line}"));
        }
        if !drain_done && node.drain_strategy.is_none() {
            drain_done = true;
            if node.last_drain.as_ref().is_some_and(|d| d.status == "canceled") {
                ui.output(format!("==> {ts}: Drain canceled for node \"{id}\""));
                return 1;
            }
            ui.output(format!("==> {ts}: Drain complete for node \"{id}\""));
        }
        let running = allocs
            .iter()
            .filter(|a| !a.client_terminal())
            .filter(|a| {
                let system = a.job.as_ref().is_some_and(|j| j.job_type == "system");
                !(ignore_system && system)
            })
            .count();
        if drain_done && running == 0 {
            ui.output(format!("==> {ts}: All allocations on node \"{id}\" have stopped"));
            return 0;
        }
        seen = allocs.into_iter().map(|a| (a.id.clone(), a)).collect();
        crate::common::sleep(ui.poll.max(std::time::Duration::from_millis(100))).await;
    }
}

/// `node eligibility`.
pub async fn node_eligibility(a: &EligibilityArgs, client: &Client, ui: &mut Ui) -> u8 {
    if a.enable == a.disable {
        ui.error("Either the -enable or -disable flag must be set");
        return 1;
    }
    let (id, _) = match target_node(client, ui, &a.node, a.self_node).await {
        Ok(t) => t,
        Err(code) => return code,
    };
    if let Err(e) = client.node_eligibility(&id, a.enable).await {
        ui.error(format!("Error updating scheduling eligibility: {e}"));
        return 1;
    }
    let what = if a.enable { "eligible" } else { "ineligible" };
    ui.output(format!(
        "Node \"{id}\" scheduling eligibility set: {what} for scheduling"
    ));
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::alloc::{AllocatedResources, AllocatedTaskResources};
    use drover_types::node::{DrainStrategy, DriverInfo, NodeEvent, NodeResources};
    use drover_types::time::Timestamp;

    fn node() -> Node {
        let mut n = Node {
            id: "9d8e7f6a-1111-2222-3333-444444444444".into(),
            name: "node-1".into(),
            node_pool: "default".into(),
            datacenter: "dc1".into(),
            scheduling_eligibility: "eligible".into(),
            status: "ready".into(),
            node_resources: Some(NodeResources::default()),
            ..Default::default()
        };
        if let Some(r) = n.node_resources.as_mut() {
            r.cpu.cpu_shares = 4000;
            r.memory.memory_mb = 8000;
            r.disk.disk_mb = 50 * 1024;
        }
        for (name, healthy) in [("docker", true), ("exec", false), ("raw_exec", true)] {
            n.drivers.insert(
                name.into(),
                DriverInfo {
                    detected: true,
                    healthy,
                    ..Default::default()
                },
            );
        }
        n.drivers.insert("qemu".into(), DriverInfo::default());
        n.events.push(NodeEvent {
            message: "Node registered".into(),
            subsystem: "Cluster".into(),
            timestamp: Timestamp::parse_rfc3339("2025-01-01T09:00:00Z").ok(),
            ..Default::default()
        });
        n
    }

    fn running_alloc() -> Allocation {
        let mut res = AllocatedResources::default();
        let mut t = AllocatedTaskResources::default();
        t.cpu.cpu_shares = 500;
        t.memory.memory_mb = 256;
        res.tasks.insert("redis".into(), t);
        res.shared.disk_mb = 300;
        Allocation {
            id: "0f3a1b2c-0000".into(),
            node_id: "9d8e7f6a-1111".into(),
            task_group: "cache".into(),
            desired_status: "run".into(),
            client_status: "running".into(),
            allocated_resources: Some(res),
            ..Default::default()
        }
    }

    #[test]
    fn list_table() {
        let stub = node().stub(false, false);
        assert_eq!(
            node_list_table(&[stub], false),
            "ID        Node Pool  DC   Name    Class   Drain  Eligibility  Status\n\
             9d8e7f6a  default    dc1  node-1  <none>  false  eligible     ready"
        );
    }

    #[test]
    fn detail_view() {
        let text = node_detail_text(&node(), &[running_alloc()], 0, false);
        assert!(
            text.starts_with(
                "ID              = 9d8e7f6a-1111-2222-3333-444444444444\n\
                 Name            = node-1\n\
                 Node Pool       = default\n\
                 Class           = <none>\n\
                 DC              = dc1\n\
                 Drain           = false\n\
                 Eligibility     = eligible\n\
                 Status          = ready\n\
                 CSI Controllers = <none>\n\
                 CSI Drivers     = <none>\n\
                 Host Volumes    = <none>\n\
                 Host Networks   = <none>\n\
                 CSI Volumes     = <none>\n\
                 Driver Status   = docker,exec (unhealthy),raw_exec\n\
                 \n\
                 Node Events\n\
                 Time                  Subsystem  Message\n\
                 2025-01-01T09:00:00Z  Cluster    Node registered\n\
                 \n\
                 Allocated Resources\n\
                 CPU           Memory           Disk            Alloc Count\n\
                 500/4000 MHz  256 MiB/7.8 GiB  300 MiB/50 GiB  1\n\
                 \n\
                 Allocations\n\
                 ID        Node ID   Task Group"
            ),
            "{text}"
        );
    }

    #[test]
    fn drain_texts_and_deadlines() {
        let mut n = node();
        assert_eq!(drain_text(&n), "false");
        n.drain_strategy = Some(DrainStrategy {
            deadline: 3_600_000_000_000,
            force_deadline: Timestamp::parse_rfc3339("2025-01-01T11:00:00Z").ok(),
            ..Default::default()
        });
        assert_eq!(drain_text(&n), "true; 2025-01-01T11:00:00Z deadline");
        n.drain_strategy = Some(DrainStrategy {
            deadline: -1,
            ignore_system_jobs: true,
            ..Default::default()
        });
        assert_eq!(drain_text(&n), "true; force drain; ignoring system jobs");
        n.drain_strategy = Some(DrainStrategy::default());
        assert_eq!(drain_text(&n), "true; no deadline");

        let mut a = DrainArgs {
            enable: true,
            disable: false,
            deadline: None,
            force: false,
            no_deadline: false,
            ignore_system: false,
            keep_ineligible: false,
            detach: false,
            monitor: false,
            yes: false,
            self_node: false,
            message: None,
            node: None,
            api: ApiArgs::default(),
        };
        assert_eq!(drain_deadline(&a), Ok(3_600_000_000_000));
        a.deadline = Some("30m".into());
        assert_eq!(drain_deadline(&a), Ok(1_800_000_000_000));
        a.deadline = Some("-5s".into());
        assert!(drain_deadline(&a).is_err());
        a.deadline = None;
        a.force = true;
        assert_eq!(drain_deadline(&a), Ok(-1));
    }

    #[test]
    fn drain_progress_lines() {
        let before_alloc = running_alloc();
        let before: BTreeMap<_, _> = [(before_alloc.id.clone(), before_alloc.clone())].into();
        let mut after = before_alloc.clone();
        after.desired_transition.migrate = Some(true);
        after.desired_status = "stop".into();
        after.client_status = "complete".into();
        assert_eq!(
            drain_alloc_changes(&before, &[after]),
            vec![
                "Alloc \"0f3a1b2c\" marked for migration",
                "Alloc \"0f3a1b2c\" draining",
                "Alloc \"0f3a1b2c\" status running -> complete",
            ]
        );
    }
}
