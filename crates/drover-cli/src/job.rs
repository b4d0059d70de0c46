//! `drover job …`: init, validate, run, plan, status, stop, history.
//!
//! ```text
//!  job file ─▶ load() (HCL2 / API JSON, -var, -var-file, NOMAD_VAR_*) ─▶ Job
//!     run:  PUT /v1/jobs ─▶ monitor::monitor_eval (or -detach: print the eval ID)
//!     plan: PUT /v1/job/:id/plan (Diff) ─▶ plan::plan_text, exit 0/1/255
//!  job ID ─▶ resolve_job (GET /v1/jobs?prefix=) ─▶ status / stop / history
//! ```
//!
//! Files are parsed locally, as Nomad's CLI does; the agent only sees the API JSON. `init`,
//! `validate` and `run -output` need no agent.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use drover_api::{Client, DeregisterOptions, QueryOptions, RegisterOptions};
use drover_jobspec::{JobspecError, ParseOptions, ParsedJob};
use drover_types::JobListStub;

use crate::common::{ApiArgs, Ui, run_with_client, run_with_client_or};
use crate::format::quote;
use crate::job_status::{self, HistoryArgs, StatusArgs};
use crate::monitor::monitor_eval;
use crate::plan::{plan_exit_code, plan_text};

/// Job subcommands.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Write an example job file.
    Init(InitArgs),
    /// Check a job file without submitting it.
    Validate(FileArgs),
    /// Submit a job and watch its evaluation (-output: print the API JSON instead).
    Run(RunArgs),
    /// Show what submitting a job would change (a scheduler dry run).
    Plan(PlanArgs),
    /// List jobs, or show one job's status.
    Status(StatusArgs),
    /// Stop a job (and with -purge, remove it).
    Stop(StopArgs),
    /// Show a job's versions.
    History(HistoryArgs),
}

/// `job init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write the example without comments.
    #[arg(long)]
    pub short: bool,
    /// File to write (`-` prints the example instead).
    #[arg(default_value = "example.nomad.hcl")]
    pub filename: PathBuf,
}

/// Flags shared by commands that read a job file.
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// Set a variable: -var 'name=value' (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read variable values from a file (repeatable).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// Reject assignments to undeclared variables: `-hcl2-strict` or `-hcl2-strict=false`.
    #[arg(
        long = "hcl2-strict",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub strict: bool,
    /// Treat the file as API JSON ({"Job": …}).
    #[arg(long)]
    pub json: bool,
    /// The job file, or - for standard input.
    pub file: String,
}

impl FileArgs {
    /// The flags for reading `file` with no variables.
    pub fn path(file: impl Into<String>) -> FileArgs {
        FileArgs {
            vars: Vec::new(),
            var_files: Vec::new(),
            strict: true,
            json: false,
            file: file.into(),
        }
    }

    /// The variable flags as they would be typed again (`-var="n=2"`, `-var-file="x"`,
    /// `-hcl2-strict=false`), for the `-check-index` hint.
    pub fn repeatable_flags(&self) -> Vec<String> {
        let mut out: Vec<String> = self.vars.iter().map(|v| format!("-var={}", quote(v))).collect();
        out.extend(
            self.var_files
                .iter()
                .map(|f| format!("-var-file={}", quote(&f.display().to_string()))),
        );
        if !self.strict {
            out.push("-hcl2-strict=false".into());
        }
        out
    }
}

/// `job run` flags.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Print the job as the JSON the HTTP API takes, without submitting it.
    #[arg(long)]
    pub output: bool,
    /// Return right after submitting, printing the evaluation ID.
    #[arg(long)]
    pub detach: bool,
    /// Full IDs instead of 8-character prefixes.
    #[arg(long)]
    pub verbose: bool,
    /// Submit only if the job's modify index is N (0: only if the job does not exist).
    #[arg(long = "check-index", value_name = "N")]
    pub check_index: Option<u64>,
    /// Override soft-mandatory policies.
    #[arg(long = "policy-override")]
    pub policy_override: bool,
    /// Keep the counts of existing task groups.
    #[arg(long = "preserve-counts")]
    pub preserve_counts: bool,
    /// Priority of the evaluation (1..100; 0 = the job's priority).
    #[arg(long = "eval-priority", default_value_t = 0)]
    pub eval_priority: i64,
    #[command(flatten)]
    pub file: FileArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `job plan` flags.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Show the diff (`-diff=false` hides it).
    #[arg(
        long,
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub diff: bool,
    /// Show unchanged fields and collapsed tasks too.
    #[arg(long)]
    pub verbose: bool,
    /// Override soft-mandatory policies.
    #[arg(long = "policy-override")]
    pub policy_override: bool,
    #[command(flatten)]
    pub file: FileArgs,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `job stop` flags.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Remove the job instead of only stopping it.
    #[arg(long)]
    pub purge: bool,
    /// Return right after the request, printing the evaluation ID.
    #[arg(long)]
    pub detach: bool,
    /// Do not ask for confirmation when the ID was a prefix.
    #[arg(long)]
    pub yes: bool,
    /// Stop a multiregion job in every region.
    #[arg(long)]
    pub global: bool,
    /// Skip the groups' shutdown delays.
    #[arg(long = "no-shutdown-delay")]
    pub no_shutdown_delay: bool,
    /// Priority of the evaluation (0 = the job's priority).
    #[arg(long = "eval-priority", default_value_t = 0)]
    pub eval_priority: i64,
    /// Full IDs instead of 8-character prefixes.
    #[arg(long)]
    pub verbose: bool,
    /// The job ID (or a unique prefix).
    pub job: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs a job subcommand with the process's terminal; returns the exit code.
pub fn run(cmd: JobCommand) -> u8 {
    match cmd {
        JobCommand::Init(a) => init(&a, &mut Ui::stdio()),
        JobCommand::Validate(a) => validate(&a, &mut Ui::stdio()),
        JobCommand::Run(a) if a.output => output(&a.file, &mut Ui::stdio()),
        JobCommand::Run(a) => run_with_client(&a.api, async |c, ui| run_job(&a, c, ui).await),
        // `job plan` reports every error, even a bad -address, as 255.
        JobCommand::Plan(a) => run_with_client_or(&a.api, 255, async |c, ui| plan_job(&a, c, ui).await),
        JobCommand::Status(a) => {
            run_with_client(&a.api, async |c, ui| job_status::job_status(&a, c, ui).await)
        }
        JobCommand::Stop(a) => run_with_client(&a.api, async |c, ui| stop_job(&a, c, ui).await),
        JobCommand::History(a) => {
            run_with_client(&a.api, async |c, ui| job_status::job_history(&a, c, ui).await)
        }
    }
}

const EXAMPLE: &str = include_str!("../assets/example.nomad.hcl");

/// `job init`.
pub fn init(a: &InitArgs, ui: &mut Ui) -> u8 {
    let text = if a.short {
        strip_comments(EXAMPLE)
    } else {
        EXAMPLE.to_string()
    };
    if a.filename.as_os_str() == "-" {
        ui.output(text.trim_end());
        return 0;
    }
    if a.filename.exists() {
        ui.error(format!("Job '{}' already exists", a.filename.display()));
        return 1;
    }
    if let Err(e) = std::fs::write(&a.filename, text) {
        ui.error(format!("Failed to write '{}': {e}", a.filename.display()));
        return 1;
    }
    ui.output(format!("Example job file written to {}", a.filename.display()));
    0
}

/// The example without comment lines and blank runs.
fn strip_comments(s: &str) -> String {
    let mut out = String::new();
    let mut blank = false;
    for line in s.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if blank {
                continue;
            }
            blank = true;
        } else {
            blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn parse_opts(a: &FileArgs) -> Result<ParseOptions, String> {
    let mut vars = Vec::new();
    for v in &a.vars {
        match v.split_once('=') {
            Some((k, val)) if !k.is_empty() => vars.push((k.to_string(), val.to_string())),
            _ => return Err(format!("invalid -var {v:?}: expected NAME=VALUE")),
        }
    }
    Ok(ParseOptions {
        vars,
        var_files: a.var_files.clone(),
        strict: a.strict,
        ..Default::default()
    }
    .with_process_env())
}

/// Reads and parses the job file (or standard input for `-`); problems are reported on `ui`
/// and returned as exit code 1.
pub fn load(a: &FileArgs, ui: &mut Ui) -> Result<ParsedJob, u8> {
    let opts = match parse_opts(a) {
        Ok(o) => o,
        Err(e) => {
            ui.error(format!("Error: {e}"));
            return Err(1);
        }
    };
    let result = if a.file == "-" {
        let mut src = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut ui.input, &mut src) {
            ui.error(format!("Error reading standard input: {e}"));
            return Err(1);
        }
        if a.json {
            parse_api_json("<stdin>", &src)
        } else {
            drover_jobspec::parse_str("<stdin>", &src, &opts)
        }
    } else if a.json {
        match std::fs::read_to_string(&a.file) {
            Ok(src) => parse_api_json(&a.file, &src),
            Err(e) => Err(JobspecError::Io {
                file: a.file.clone(),
                message: e.to_string(),
            }),
        }
    } else {
        drover_jobspec::parse_file(Path::new(&a.file), &opts)
    };
    result.map_err(|e| {
        report(&e, ui);
        1
    })
}

fn parse_api_json(name: &str, src: &str) -> Result<ParsedJob, JobspecError> {
    let v: serde_json::Value = serde_json::from_str(src).map_err(|e| {
        JobspecError::Parse(vec![drover_jobspec::Diagnostic {
            file: name.to_string(),
            line: e.line(),
            col: e.column().max(1),
            summary: "Invalid JSON".into(),
            detail: e.to_string(),
        }])
    })?;
    drover_types::parse_api_job(v)
        .map(|(job, warnings)| ParsedJob {
            job,
            warnings,
            format: "json",
        })
        .map_err(|e| match e {
            drover_types::ApiJobError::Invalid(v) => JobspecError::Invalid {
                file: name.to_string(),
                problems: v.problems,
            },
            other => JobspecError::Parse(vec![drover_jobspec::Diagnostic {
                file: name.to_string(),
                line: 0,
                col: 0,
                summary: "Invalid job".into(),
                detail: other.to_string(),
            }]),
        })
}

fn report(e: &JobspecError, ui: &mut Ui) {
    match e {
        JobspecError::Invalid { problems, .. } => {
            ui.error("Job validation errors:");
            for p in problems {
                ui.error(format!("  * {p}"));
            }
        }
        JobspecError::Io { .. } => ui.error(format!("Error reading job file: {e}")),
        other => ui.error(format!("Error parsing job file:\n{other}")),
    }
}

fn print_warnings(w: &[String], ui: &mut Ui) {
    if !w.is_empty() {
        ui.error("Job Warnings:");
        for w in w {
            ui.error(format!("  * {w}"));
        }
    }
}

/// `job validate`.
pub fn validate(a: &FileArgs, ui: &mut Ui) -> u8 {
    match load(a, ui) {
        Ok(parsed) => {
            print_warnings(&parsed.warnings, ui);
            ui.output("Job validation successful");
            0
        }
        Err(code) => code,
    }
}

/// `job run -output`: the job as the API JSON `PUT /v1/jobs` takes.
pub fn output(a: &FileArgs, ui: &mut Ui) -> u8 {
    let parsed = match load(a, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    #[derive(serde::Serialize)]
    struct RegisterRequest<'a> {
        #[serde(rename = "Job")]
        job: &'a drover_types::Job,
    }
    ui.json(&RegisterRequest { job: &parsed.job })
}

/// `job run`: submit, then watch the evaluation (and deployment) unless `-detach`.
/// Exit codes: 0 ok, 1 error or failed deployment, 2 placement failures.
pub async fn run_job(a: &RunArgs, client: &Client, ui: &mut Ui) -> u8 {
    if a.output {
        return output(&a.file, ui);
    }
    let parsed = match load(&a.file, ui) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let opts = RegisterOptions {
        enforce_index: a.check_index,
        policy_override: a.policy_override,
        preserve_counts: a.preserve_counts,
        eval_priority: a.eval_priority,
    };
    let resp = match client.register_job(&parsed.job, &opts).await {
        Ok(r) => r,
        Err(e) => {
            let msg = e.message();
            if let Some(i) = msg.find("Enforcing job modify index") {
                ui.error(msg[i..].trim());
                ui.error("Job not updated");
                return 1;
            }
            ui.error(format!("Error submitting job: {e}"));
            if e.is_connect() {
                ui.error(format!(
                    "(`drover job run -output {}` prints the job's API JSON without an agent.)",
                    a.file.file
                ));
            }
            return 1;
        }
    };
    if !resp.warnings.trim().is_empty() {
        ui.output(format!("Job Warnings:\n{}\n", resp.warnings.trim_end()));
    }
    let periodic = parsed.job.periodic.as_ref().is_some_and(|p| p.enabled);
    let parameterized = parsed.job.is_parameterized();
    if a.detach || periodic || parameterized || resp.eval_id.is_empty() {
        ui.output("Job registration successful");
        if !parameterized && !resp.eval_id.is_empty() {
            ui.output(format!("Evaluation ID: {}", resp.eval_id));
        }
        return 0;
    }
    monitor_eval(client, ui, &resp.eval_id, a.verbose).await
}

/// `job plan`. Exit codes: 0 no allocation changes, 1 changes, 255 error.
pub async fn plan_job(a: &PlanArgs, client: &Client, ui: &mut Ui) -> u8 {
    let parsed = match load(&a.file, ui) {
        Ok(p) => p,
        Err(_) => return 255,
    };
    let resp = match client.plan_job(&parsed.job, a.diff).await {
        Ok(r) => r,
        Err(e) => {
            ui.error(format!("Error during plan: {e}"));
            return 255;
        }
    };
    let mut run_flags = a.file.repeatable_flags();
    if let Some(ns) = &a.api.namespace {
        run_flags.push(format!("-namespace={}", quote(ns)));
    }
    ui.output(plan_text(
        &resp,
        &parsed.job.job_type,
        &run_flags,
        &a.file.file,
        a.verbose,
    ));
    plan_exit_code(&resp)
}

/// Finds the job `id_or_prefix` names: an exact ID wins, a unique prefix is accepted, several
/// matches are listed (exit 1), none is an error (exit 1).
pub async fn resolve_job(client: &Client, ui: &mut Ui, id_or_prefix: &str) -> Result<JobListStub, u8> {
    let jobs = match client.jobs(&QueryOptions::new().with_prefix(id_or_prefix)).await {
        Ok((j, _)) => j,
        Err(e) => {
            ui.error(format!("Error querying job: {e}"));
            return Err(1);
        }
    };
    if let Some(exact) = jobs.iter().find(|j| j.id == id_or_prefix) {
        return Ok(exact.clone());
    }
    match jobs.len() {
        0 => {
            ui.error(format!("No job(s) with prefix or ID \"{id_or_prefix}\" found"));
            Err(1)
        }
        1 => Ok(jobs[0].clone()),
        _ => {
            ui.error(format!(
                "Prefix matched multiple jobs\n\n{}",
                job_status::job_list_table(&jobs)
            ));
            Err(1)
        }
    }
}

/// `job stop`: deregister, then watch the evaluation unless `-detach`.
pub async fn stop_job(a: &StopArgs, client: &Client, ui: &mut Ui) -> u8 {
    let job = match resolve_job(client, ui, &a.job).await {
        Ok(j) => j,
        Err(code) => return code,
    };
    if job.id != a.job && !a.yes {
        let q = format!("Are you sure you want to stop job \"{}\"? [y/N]", job.id);
        if !ui.confirm(&q) {
            ui.output("Cancelling job stop");
            return 0;
        }
    }
    let opts = DeregisterOptions {
        purge: a.purge,
        global: a.global,
        eval_priority: a.eval_priority,
        no_shutdown_delay: a.no_shutdown_delay,
    };
    let resp = match client.deregister_job(&job.id, &opts).await {
        Ok(r) => r,
        Err(e) => {
            ui.error(format!("Error deregistering job: {e}"));
            return 1;
        }
    };
    if resp.eval_id.is_empty() {
        return 0;
    }
    if a.detach {
        ui.output(&resp.eval_id);
        return 0;
    }
    crate::monitor::monitor_eval_with(client, ui, &resp.eval_id, a.verbose, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_job_parses_and_validates() {
        let parsed =
            drover_jobspec::parse_str("example.nomad.hcl", EXAMPLE, &ParseOptions::default()).unwrap();
        assert_eq!(parsed.job.id, "example");
        assert_eq!(parsed.job.task_groups[0].tasks[0].driver, "raw_exec");
        let short = strip_comments(EXAMPLE);
        assert!(!short.contains('#'));
        let parsed_short = drover_jobspec::parse_str("short.hcl", &short, &ParseOptions::default()).unwrap();
        assert_eq!(parsed.job, parsed_short.job);
    }

    #[test]
    fn repeatable_flags_for_the_run_hint() {
        let mut f = FileArgs::path("j.hcl");
        f.vars = vec!["n=2".into()];
        f.var_files = vec!["prod.vars".into()];
        f.strict = false;
        assert_eq!(
            f.repeatable_flags(),
            vec!["-var=\"n=2\"", "-var-file=\"prod.vars\"", "-hcl2-strict=false"]
        );
    }
}
