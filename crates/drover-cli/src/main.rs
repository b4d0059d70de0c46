//! The `drover` binary: Nomad-style CLI commands.
//!
//! This file is the clap tree and the dispatch only; the commands live in the `drover_cli`
//! library (`src/lib.rs`). Nomad's CLI uses Go-style flags (`-var`, `-output`, one dash, long
//! names); clap wants two dashes for long flags, so [`normalize_args`] rewrites `-name[=v]` to
//! `--name[=v]` before clap sees the arguments. Both spellings work.
//!
//! Adding a command: a variant in [`Command`] and one arm in `main`'s match.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use drover_cli::{agent, alloc, deployment, eval, job, node, normalize_args, operator, server};

/// mimalloc instead of the system allocator: the scheduler builds and frees tens of small
/// records per placement (names, IDs, resource maps, metrics), and glibc's allocator spent a
/// third of the placement time on them (`docs/benchmarks.md`, scheduler section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Drover: a workload orchestrator that speaks Nomad's API.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent: `-dev` for a throwaway single-server cluster, `-server -data-dir DIR` for
    /// a durable one.
    Agent(agent::AgentArgs),
    /// Print the version.
    Version,
    /// Work with jobs: init, validate, run, plan, status, stop, history.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Inspect allocations.
    #[command(subcommand)]
    Alloc(alloc::AllocCommand),
    /// Inspect deployments.
    #[command(subcommand)]
    Deployment(deployment::DeploymentCommand),
    /// Inspect evaluations.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// Work with client nodes: status, drain, eligibility.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Inspect the servers.
    #[command(subcommand)]
    Server(server::ServerCommand),
    /// List jobs, or show the job, node or evaluation an ID names.
    Status(server::StatusArgs),
    /// Cluster operations.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
}

fn main() -> ExitCode {
    // `drover executor <spec>`: the per-task supervisor the client starts (hidden; see
    // drover_drivers::executor). Handled before clap so nothing else runs in that process.
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("executor") {
        let code = drover_drivers::executor::run_main(raw[2..].to_vec());
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    let args = normalize_args(std::env::args());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = match cli.command {
        Command::Agent(args) => agent::run(args),
        Command::Version => {
            println!(
                "Drover v{} (Nomad HTTP API v1 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            0
        }
        Command::Job(cmd) => job::run(cmd),
        Command::Alloc(cmd) => alloc::run(cmd),
        Command::Deployment(cmd) => deployment::run(cmd),
        Command::Eval(cmd) => eval::run(cmd),
        Command::Node(cmd) => node::run(cmd),
        Command::Server(cmd) => server::run(cmd),
        Command::Status(args) => server::run_status(args),
        Command::Operator(cmd) => operator::run(cmd),
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn go_style_flags_reach_the_commands() {
        let parse = |args: &[&str]| Cli::try_parse_from(normalize_args(args.iter().map(|s| s.to_string())));
        let cli = parse(&[
            "drover",
            "job",
            "run",
            "-detach",
            "-check-index",
            "3",
            "-address=http://h:1",
            "f.hcl",
        ])
        .unwrap();
        let Command::Job(job::JobCommand::Run(a)) = cli.command else {
            panic!("not job run");
        };
        assert!(a.detach);
        assert_eq!(a.check_index, Some(3));
        assert_eq!(a.api.address.as_deref(), Some("http://h:1"));
        assert_eq!(a.file.file, "f.hcl");
        let cli = parse(&[
            "drover",
            "node",
            "drain",
            "-enable",
            "-deadline",
            "30m",
            "-m",
            "why",
            "-yes",
            "abcd",
        ])
        .unwrap();
        let Command::Node(node::NodeCommand::Drain(d)) = cli.command else {
            panic!("not node drain");
        };
        assert!(d.enable && d.yes);
        assert_eq!(d.message.as_deref(), Some("why"));
        assert!(parse(&["drover", "node", "drain", "-enable", "-disable", "x"]).is_err());
        let cli = parse(&[
            "drover",
            "operator",
            "scheduler",
            "set-config",
            "-preempt-service-scheduler",
            "-memory-oversubscription=false",
        ])
        .unwrap();
        let Command::Operator(operator::OperatorCommand::Scheduler(operator::SchedulerCommand::SetConfig(s))) =
            cli.command
        else {
            panic!("not set-config");
        };
        assert_eq!(s.preempt_service_scheduler, Some(true));
        assert_eq!(s.memory_oversubscription, Some(false));
        assert_eq!(s.preempt_batch_scheduler, None);
        assert!(parse(&["drover", "job", "history", "-p", "web"]).is_ok());
        assert!(parse(&["drover", "job", "plan", "-diff=false", "f.hcl"]).is_ok());
        assert!(parse(&["drover", "status"]).is_ok());
    }
}
