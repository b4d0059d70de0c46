//! `drover job …`: init, validate, run (`-output` for now).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use drover_jobspec::{JobspecError, ParseOptions, ParsedJob};

/// Job subcommands.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Write an example job file.
    Init(InitArgs),
    /// Check a job file without submitting it.
    Validate(FileArgs),
    /// Submit a job (with -output: print the API JSON instead of submitting).
    Run(RunArgs),
}

/// `job init` flags.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write the example without comments.
    #[arg(long)]
    short: bool,
    /// File to write (`-` prints the example instead).
    #[arg(default_value = "example.nomad.hcl")]
    filename: PathBuf,
}

/// Flags shared by commands that read a job file.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// Set a variable: -var 'name=value' (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Read variable values from a file (repeatable).
    #[arg(long = "var-file", value_name = "FILE")]
    var_files: Vec<PathBuf>,
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
    strict: bool,
    /// Treat the file as API JSON ({"Job": …}).
    #[arg(long)]
    json: bool,
    /// The job file, or - for standard input.
    file: String,
}

/// `job run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print the job as the JSON the HTTP API takes, without submitting it.
    #[arg(long)]
    output: bool,
    #[command(flatten)]
    file: FileArgs,
}

/// Runs a job subcommand.
pub fn run(cmd: JobCommand) -> ExitCode {
    match cmd {
        JobCommand::Init(a) => init(a),
        JobCommand::Validate(a) => validate(a),
        JobCommand::Run(a) => run_job(a),
    }
}

const EXAMPLE: &str = include_str!("../assets/example.nomad.hcl");

fn init(a: InitArgs) -> ExitCode {
    let text = if a.short {
        strip_comments(EXAMPLE)
    } else {
        EXAMPLE.to_string()
    };
    if a.filename.as_os_str() == "-" {
        return print_stdout(text.trim_end());
    }
    if a.filename.exists() {
        eprintln!("Job '{}' already exists", a.filename.display());
        return ExitCode::from(1);
    }
    let text = if a.short {
        strip_comments(EXAMPLE)
    } else {
        EXAMPLE.to_string()
    };
    if let Err(e) = std::fs::write(&a.filename, text) {
        eprintln!("Failed to write '{}': {e}", a.filename.display());
        return ExitCode::from(1);
    }
    println!("Example job file written to {}", a.filename.display());
    ExitCode::SUCCESS
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

fn load(a: &FileArgs) -> Result<ParsedJob, ExitCode> {
    let opts = parse_opts(a).map_err(|e| {
        eprintln!("Error: {e}");
        ExitCode::from(1)
    })?;
    let result = if a.file == "-" {
        let mut src = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut src) {
            eprintln!("Error reading standard input: {e}");
            return Err(ExitCode::from(1));
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
        report(&e);
        ExitCode::from(1)
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

fn report(e: &JobspecError) {
    match e {
        JobspecError::Invalid { problems, .. } => {
            eprintln!("Job validation errors:");
            for p in problems {
                eprintln!("  * {p}");
            }
        }
        JobspecError::Io { .. } => eprintln!("Error reading job file: {e}"),
        other => eprintln!("Error parsing job file:\n{other}"),
    }
}

fn print_warnings(w: &[String]) {
    if !w.is_empty() {
        eprintln!("Job Warnings:");
        for w in w {
            eprintln!("  * {w}");
        }
    }
}

fn validate(a: FileArgs) -> ExitCode {
    match load(&a) {
        Ok(parsed) => {
            print_warnings(&parsed.warnings);
            println!("Job validation successful");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run_job(a: RunArgs) -> ExitCode {
    let parsed = match load(&a.file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if a.output {
        #[derive(serde::Serialize)]
        struct RegisterRequest<'a> {
            #[serde(rename = "Job")]
            job: &'a drover_types::Job,
        }
        return match to_go_indented_json(&RegisterRequest { job: &parsed.job }) {
            Ok(s) => print_stdout(&s),
            Err(e) => {
                eprintln!("Error encoding job: {e}");
                ExitCode::from(1)
            }
        };
    }
    eprintln!(
        "Error: submitting a job needs a Drover agent, which this build does not include yet.\n\
         Use `drover job run -output {}` to print the job as API JSON.",
        a.file.file
    );
    ExitCode::from(1)
}

/// Prints to stdout; a closed pipe (`| head`) ends quietly instead of panicking.
fn print_stdout(s: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{s}").and_then(|_| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error writing output: {e}");
            ExitCode::from(1)
        }
    }
}

/// JSON indented with four spaces, as Nomad's CLI prints it.
fn to_go_indented_json<T: serde::Serialize>(v: &T) -> Result<String, serde_json::Error> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
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
}
