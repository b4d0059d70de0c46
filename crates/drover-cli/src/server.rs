//! `drover server members` (§8.7) and the top-level `drover status [ID]`.
//!
//! ```text
//!  server members   GET /v1/agent/members ─▶ for each region in the members' tags:
//!                   GET /v1/status/leader?region= ─▶ members_table (leader = Addr:Tags.port)
//!  status           GET /v1/jobs ─▶ the job list ("No running jobs")
//!  status ID        the first of job / node / evaluation whose ID starts with ID ─▶ its view
//! ```

use std::collections::{BTreeMap, BTreeSet};

use clap::{Args, Subcommand};
use drover_api::{AgentMember, Client, QueryOptions};

use crate::common::{ApiArgs, Ui, run_with_client};
use crate::format::table;
use crate::row;

/// `server` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// List the servers of the cluster.
    Members(MembersArgs),
}

/// `server members` flags.
#[derive(Debug, Clone, Args)]
pub struct MembersArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Add the gossip protocol and tags columns.
    #[arg(long, alias = "detailed")]
    pub verbose: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `status` flags.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Full IDs and absolute times.
    #[arg(long)]
    pub verbose: bool,
    /// A job, node or evaluation ID (or prefix); without it, all jobs are listed.
    pub id: Option<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs a server subcommand with the process's terminal.
pub fn run(cmd: ServerCommand) -> u8 {
    match cmd {
        ServerCommand::Members(a) => run_with_client(&a.api, async |c, ui| server_members(&a, c, ui).await),
    }
}

/// Runs `status` with the process's terminal.
pub fn run_status(a: StatusArgs) -> u8 {
    run_with_client(&a.api, async |c, ui| status(&a, c, ui).await)
}

/// Is `m` the leader of its region, given each region's leader address (`ip:rpc-port`)?
pub fn is_leader(m: &AgentMember, leaders: &BTreeMap<String, String>) -> bool {
    leaders
        .get(m.tag("region"))
        .is_some_and(|l| *l == format!("{}:{}", m.addr, m.tag("port")))
}

/// The members table, sorted by region then name.
pub fn members_table(members: &[AgentMember], leaders: &BTreeMap<String, String>, verbose: bool) -> String {
    let mut sorted: Vec<&AgentMember> = members.iter().collect();
    sorted.sort_by(|a, b| (a.tag("region"), &a.name).cmp(&(b.tag("region"), &b.name)));
    let mut header = row![
        "Name",
        "Address",
        "Port",
        "Status",
        "Leader",
        "Raft Version",
        "Build",
        "Datacenter",
        "Region"
    ];
    if verbose {
        header.extend(row!["Protocol", "Tags"]);
    }
    let mut rows = vec![header];
    for m in sorted {
        let mut r = row![
            m.name,
            m.addr,
            m.port,
            m.status,
            is_leader(m, leaders),
            m.tag("raft_vsn"),
            m.tag("build"),
            m.tag("dc"),
            m.tag("region")
        ];
        if verbose {
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            r.extend(row![m.protocol_cur, tags.join(",")]);
        }
        rows.push(r);
    }
    table(&rows)
}

/// `server members`.
pub async fn server_members(a: &MembersArgs, client: &Client, ui: &mut Ui) -> u8 {
    let resp = match client.agent_members().await {
        Ok(r) => r,
        Err(e) => {
            ui.error(format!("Error querying servers: {e}"));
            return 1;
        }
    };
    if a.json {
        return ui.json(&resp);
    }
    let regions: BTreeSet<String> = resp.members.iter().map(|m| m.tag("region").to_string()).collect();
    let mut leaders = BTreeMap::new();
    for r in regions.into_iter().filter(|r| !r.is_empty()) {
        // A region without a leader simply shows no leader, as Nomad does.
        if let Ok(l) = client.status_leader(Some(&r)).await {
            leaders.insert(r, l);
        }
    }
    ui.output(members_table(&resp.members, &leaders, a.verbose));
    0
}

/// `status [ID]`: the job list, or the view of whatever the ID names.
pub async fn status(a: &StatusArgs, client: &Client, ui: &mut Ui) -> u8 {
    let Some(id) = &a.id else {
        return crate::job_status::job_list(client, ui, a.json).await;
    };
    let q = QueryOptions::new().with_prefix(id.as_str());
    let jobs = client.jobs(&q).await;
    if let Err(e) = &jobs
        && e.is_connect()
    {
        ui.error(format!("Error querying jobs: {e}"));
        return 1;
    }
    if jobs.is_ok_and(|(j, _)| !j.is_empty()) {
        let args = crate::job_status::StatusArgs {
            json: a.json,
            verbose: a.verbose,
            short: false,
            evals: false,
            all_allocs: false,
            job: Some(id.clone()),
            api: a.api.clone(),
        };
        return crate::job_status::job_status(&args, client, ui).await;
    }
    if client.nodes(&q).await.is_ok_and(|(n, _)| !n.is_empty()) {
        let args = crate::node::NodeStatusArgs {
            json: a.json,
            verbose: a.verbose,
            self_node: false,
            node: Some(id.clone()),
            api: a.api.clone(),
        };
        return crate::node::node_status(&args, client, ui).await;
    }
    if client.evaluations(&q).await.is_ok_and(|(e, _)| !e.is_empty()) {
        let args = crate::eval::EvalStatusArgs {
            json: a.json,
            verbose: a.verbose,
            eval: id.clone(),
            api: a.api.clone(),
        };
        return crate::eval::eval_status(&args, client, ui).await;
    }
    ui.error(format!("No matches returned for query \"{id}\""));
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, addr: &str, region: &str) -> AgentMember {
        AgentMember {
            name: name.into(),
            addr: addr.into(),
            port: 4648,
            status: "alive".into(),
            tags: [
                ("region", region),
                ("dc", "dc1"),
                ("port", "4647"),
                ("raft_vsn", "3"),
                ("build", "0.1.0"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn members_with_leader() {
        let members = vec![
            member("s2.global", "10.0.0.9", "global"),
            member("s1.global", "10.0.0.8", "global"),
        ];
        let leaders = BTreeMap::from([("global".to_string(), "10.0.0.8:4647".to_string())]);
        assert_eq!(
            members_table(&members, &leaders, false),
            "Name       Address   Port  Status  Leader  Raft Version  Build  Datacenter  Region\n\
             s1.global  10.0.0.8  4648  alive   true    3             0.1.0  dc1         global\n\
             s2.global  10.0.0.9  4648  alive   false   3             0.1.0  dc1         global"
        );
    }
}
