//! The commands of the `drover` binary, as a library so tests can call them directly.
//!
//! `main.rs` holds only the clap tree and the dispatch; every command lives here as
//! `pub async fn command(args, &drover_api::Client, &mut Ui) -> u8` (exit code) plus pure
//! formatting functions (decoded API structs in, text out) that the unit tests pin down.
//!
//! # Layout
//! - [`common`]: connection flags ([`common::ApiArgs`]), the terminal ([`common::Ui`]), running
//!   an async command ([`common::run_with_client`]).
//! - [`format`]: tables, `Key = value` blocks, times, sizes (Nomad's §8.1 primitives).
//! - [`job`]: `job init|validate|run|plan|stop` and job-file loading; [`job_status`]:
//!   `job status|history`; [`plan`]: the plan/diff text; [`monitor`]: the evaluation and
//!   deployment monitor used by `job run` and `job stop`.
//! - [`agent`]: `drover agent` (server, HTTP API, client RPC).
//! - [`alloc`]: `alloc status`; [`deployment`]: `deployment status|list`.
//! - [`eval`], [`node`], [`server`] (`server members`, `status`), [`operator`].
//!
//! # Conventions
//! Output follows Nomad's CLI (`reference/client-drivers-jobspec.md` §8); every read command
//! takes `-json` (the API's JSON, four-space indented) and every command that talks to an
//! agent takes `-address`, `-region`, `-namespace`, `-token`. Exit codes: 0 ok, 1 error,
//! 2 placement failures (`job run`/`job stop`), 255 `job plan` errors.
//! Go-style single-dash long flags work through [`normalize_args`].

pub mod agent;
pub mod agent_client;
pub mod alloc;
pub mod common;
pub mod deployment;
pub mod eval;
pub mod format;
pub mod job;
pub mod job_status;
pub mod monitor;
pub mod node;
pub mod operator;
pub mod plan;
pub mod server;

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
        assert_eq!(
            n(&["drover", "node", "drain", "-deadline", "-1h", "-m", "x"]),
            vec!["drover", "node", "drain", "--deadline", "-1h", "-m", "x"]
        );
    }
}
