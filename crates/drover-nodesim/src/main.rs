//! `drover-nodesim`: run thousands of simulated client nodes against a Drover server.
//!
//! ```text
//! drover-nodesim -address 127.0.0.1:4647 -nodes 5000 [-datacenter dc1] [-class c]
//!                [-cpu 4000] [-cores 4] [-memory 8192] [-disk 100000]
//!                [-drivers raw_exec,exec,docker] [-fail-after SECONDS] [-node-prefix sim]
//!                [-duration SECONDS] [-stats-interval SECONDS] [-json]
//! ```
//!
//! Flags are Go-style (`-nodes 5000`, `-nodes=5000`); `--nodes` works too. It runs until
//! Ctrl-C (or `-duration`), printing a status line every `-stats-interval` seconds and a final
//! report (JSON with `-json`). Logs go to stderr (`RUST_LOG=drover_nodesim=debug` for every
//! failed call).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use drover_nodesim::{SimConfig, Simulator};

/// Simulated Drover client nodes over the real RPC.
#[derive(Debug, Parser)]
#[command(name = "drover-nodesim", version)]
struct Args {
    /// Server RPC address.
    #[arg(long, default_value = "127.0.0.1:4647")]
    address: String,
    /// Number of nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Datacenter of every node.
    #[arg(long, default_value = "dc1")]
    datacenter: String,
    /// Node class.
    #[arg(long, default_value = "")]
    class: String,
    /// CPU per node, MHz (total).
    #[arg(long, default_value_t = 4000)]
    cpu: i64,
    /// Cores per node.
    #[arg(long, default_value_t = 4)]
    cores: i64,
    /// Memory per node, MB.
    #[arg(long, default_value_t = 8192)]
    memory: i64,
    /// Disk per node, MB.
    #[arg(long, default_value_t = 100_000)]
    disk: i64,
    /// Drivers every node reports healthy (comma-separated).
    #[arg(long, default_value = "raw_exec,exec,docker", value_delimiter = ',')]
    drivers: Vec<String>,
    /// Report running allocations as failed after this many seconds.
    #[arg(long)]
    fail_after: Option<f64>,
    /// Node name/ID prefix (IDs are stable per prefix and index).
    #[arg(long, default_value = "sim")]
    node_prefix: String,
    /// Nodes sharing one HTTP/2 connection.
    #[arg(long, default_value_t = 500)]
    nodes_per_connection: usize,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 64)]
    register_concurrency: usize,
    /// Stop after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0.0)]
    duration: f64,
    /// Seconds between status lines (0: none).
    #[arg(long, default_value_t = 10.0)]
    stats_interval: f64,
    /// Print the final report as JSON.
    #[arg(long)]
    json: bool,
}

/// `-flag` → `--flag` (Go-style single-dash long flags); short flags, values and everything
/// after `--` are left alone.
fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut rest_verbatim = false;
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 || rest_verbatim {
                return a;
            }
            if a == "--" {
                rest_verbatim = true;
                return a;
            }
            let name = a.strip_prefix('-').unwrap_or("").split('=').next().unwrap_or("");
            let go_long = !a.starts_with("--") && name.len() > 1 && name.as_bytes()[0].is_ascii_alphabetic();
            if go_long { format!("-{a}") } else { a }
        })
        .collect()
}

fn seconds(s: f64) -> Option<Duration> {
    (s > 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::try_parse_from(normalize_args(std::env::args())) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let config = SimConfig {
        address: args.address,
        nodes: args.nodes,
        datacenter: args.datacenter,
        node_class: args.class,
        cpu_mhz: args.cpu,
        cores: args.cores,
        memory_mb: args.memory,
        disk_mb: args.disk,
        drivers: args
            .drivers
            .into_iter()
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .collect(),
        node_prefix: args.node_prefix,
        fail_after: args.fail_after.and_then(seconds),
        nodes_per_connection: args.nodes_per_connection,
        register_concurrency: args.register_concurrency,
        ..Default::default()
    };
    let sim = match Simulator::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error starting simulator: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "simulating {} nodes against {} ({} connections)",
        sim.config().nodes,
        sim.config().address,
        sim.config().nodes.div_ceil(sim.config().nodes_per_connection)
    );

    if let Some(every) = seconds(args.stats_interval) {
        let s = sim.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{}", s.report());
            }
        });
    }
    let stop = async {
        match seconds(args.duration) {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    stop.await;
    let report = sim.stop().await;
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("Error encoding report: {e}"),
        }
    } else {
        println!("{report}");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_flags_become_long_flags() {
        let v = |a: &[&str]| normalize_args(a.iter().map(|s| s.to_string()));
        assert_eq!(
            v(&["x", "-nodes", "5", "-fail-after=3", "--json", "-h", "--", "-keep"]),
            [
                "x",
                "--nodes",
                "5",
                "--fail-after=3",
                "--json",
                "-h",
                "--",
                "-keep"
            ]
        );
        let a = Args::try_parse_from(v(&["x", "-nodes", "5000", "-drivers", "exec,docker"])).expect("parse");
        assert_eq!(a.nodes, 5000);
        assert_eq!(a.drivers, ["exec", "docker"]);
    }
}
