//! The `drover` binary: Nomad-style CLI commands.
//!
//! Nomad's CLI uses Go-style flags (`-var`, `-output`, one dash, long names); clap wants two
//! dashes for long flags, so [`normalize_args`] rewrites `-name[=v]` to `--name[=v]` before clap
//! sees the arguments. Both spellings work.

mod job;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Drover: a workload orchestrator that speaks Nomad's API. This build has the job-file
/// commands; `drover agent` arrives with the server (issue #4).
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version.
    Version,
    /// Work with jobs: init, validate, run.
    #[command(subcommand)]
    Job(job::JobCommand),
}

/// Rewrites Go-style `-long-flag` tokens to `--long-flag` (single-letter flags stay as they are).
pub fn normalize_args<I: IntoIterator<Item = String>>(args: I) -> Vec<String> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || passthrough {
            out.push(a);
            continue;
        }
        if a == "--" {
            passthrough = true;
            out.push(a);
            continue;
        }
        let is_go_long = a.starts_with('-')
            && !a.starts_with("--")
            && a.len() > 2
            && a.as_bytes()[1].is_ascii_alphabetic()
            && {
                let name = a[1..].split('=').next().unwrap_or("");
                name.len() > 1
            };
        if is_go_long {
            out.push(format!("-{a}"))
        } else {
            out.push(a)
        }
    }
    out
}

fn main() -> ExitCode {
    let args = normalize_args(std::env::args());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Version => {
            println!(
                "Drover v{} (Nomad HTTP API v1 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        Command::Job(cmd) => job::run(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(args: &[&str]) -> Vec<String> {
        normalize_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn go_style_flags_become_long_flags() {
        assert_eq!(
            n(&[
                "drover",
                "job",
                "run",
                "-output",
                "-var",
                "a=b",
                "-var-file=x.vars",
                "-f",
                "--detach",
                "file"
            ]),
            vec![
                "drover",
                "job",
                "run",
                "--output",
                "--var",
                "a=b",
                "--var-file=x.vars",
                "-f",
                "--detach",
                "file"
            ]
        );
        assert_eq!(n(&["drover", "--", "-output"]), vec!["drover", "--", "-output"]);
    }
}
