//! Job files → jobs: Nomad's HCL2 job specification, its JSON forms, variables and functions.
//!
//! ```text
//!  file text ─┬─ starts with `{` ─┬─ {"Job": {…}} or {"ID": …}  API JSON ─────────────────┐
//!             │                   └─ {"job": {"<id>": {…}}}     HCL-JSON ──▶ ir::Body ─┐  │
//!             └─ HCL2 ── hcl-edit parse (spans) ── variables, locals (variables.rs)     │  │
//!                         └─ job block ── eval + dynamic expansion (eval.rs, ir.rs) ──▶ ir::Body
//!                                                   │ decode.rs: schema tables          │
//!                                                   ▼                                   │
//!                                          API JSON (what was written) ◀────────────────┘
//!                                                   │ drover_types::codec (lenient)
//!                                                   ▼
//!                              Job ── canonicalize ── validate ──▶ ParsedJob
//! ```
//!
//! Every problem is reported with `file:line:col` ([`Diagnostic`]); decoding continues after
//! a problem so one run lists them all. Runtime interpolations (`${NOMAD_*}`, `${attr.*}`,
//! `${node.*}`, `${meta.*}`, `${env[…]}`) pass through verbatim for the client to resolve.
//!
//! # Where to start
//! [`parse_str`] and [`ParseOptions`]; then [`decode`] for the block schema.
//!
//! # Limitations
//! - HCL-JSON job files are decoded structurally; `${…}` expressions inside them are kept as
//!   text (not evaluated), and `variable`/`locals` are not supported there.
//! - The old HCL1 dialect is not accepted (Nomad removed it in 1.9): such files fail with the
//!   HCL2 error at the offending line.

pub mod decode;
pub mod error;
pub mod eval;
pub mod functions;
pub mod ir;
pub mod variables;

use std::path::{Path, PathBuf};

use drover_types::Job;
use hcl_edit::Span;
use hcl_edit::structure::Structure;
use serde_json::Value;

pub use error::{Diagnostic, JobspecError, SourceMap};

/// Where variable values come from and how strict to be.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// `-var name=value` flags, in order.
    pub vars: Vec<(String, String)>,
    /// `-var-file` paths, in order.
    pub var_files: Vec<PathBuf>,
    /// `NOMAD_VAR_<name>` values (name without the prefix).
    pub env_vars: Vec<(String, String)>,
    /// Assigning an undeclared variable is an error (Nomad's `-hcl2-strict`, default true).
    pub strict: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            vars: Vec::new(),
            var_files: Vec::new(),
            env_vars: Vec::new(),
            strict: true,
        }
    }
}

impl ParseOptions {
    /// Options with `NOMAD_VAR_*` read from this process's environment.
    pub fn with_process_env(mut self) -> Self {
        self.env_vars = std::env::vars()
            .filter_map(|(k, v)| k.strip_prefix("NOMAD_VAR_").map(|n| (n.to_string(), v)))
            .collect();
        self
    }
}

/// A parsed, canonical, valid job.
#[derive(Debug, Clone)]
pub struct ParsedJob {
    /// The job, with Nomad's defaults filled in.
    pub job: Job,
    /// Things that are allowed but likely mistakes.
    pub warnings: Vec<String>,
    /// `hcl2` or `json`.
    pub format: &'static str,
}

/// Reads and parses a job file (relative `file()` paths resolve against its directory).
pub fn parse_file(path: &Path, opts: &ParseOptions) -> Result<ParsedJob, JobspecError> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| JobspecError::Io {
        file: name.clone(),
        message: e.to_string(),
    })?;
    let _guard = functions::set_base_dir(
        path.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    );
    parse_str(&name, &src, opts)
}

/// Parses job-file text. `name` is used in diagnostics.
pub fn parse_str(name: &str, src: &str, opts: &ParseOptions) -> Result<ParsedJob, JobspecError> {
    let (api, format) = to_api_json(name, src, opts)?;
    let (job, warnings) = drover_types::parse_api_job(api).map_err(|e| match e {
        drover_types::ApiJobError::Decode(d) => JobspecError::Parse(vec![Diagnostic {
            file: name.to_string(),
            line: 0,
            col: 0,
            summary: "Invalid job".into(),
            detail: d.to_string(),
        }]),
        drover_types::ApiJobError::Invalid(v) => JobspecError::Invalid {
            file: name.to_string(),
            problems: v.problems,
        },
    })?;
    Ok(ParsedJob {
        job,
        warnings,
        format,
    })
}

/// Parses job-file text into the API's input JSON (only what was written, no defaults): what
/// `/v1/jobs/parse` returns without `Canonicalize`.
pub fn to_api_json(
    name: &str,
    src: &str,
    opts: &ParseOptions,
) -> Result<(Value, &'static str), JobspecError> {
    let result = (|| {
        if src.trim_start().starts_with('{') {
            return json_job(name, src).map(|v| (v, "json"));
        }
        hcl_job(name, src, opts).map(|v| (v, "hcl2"))
    })();
    // Report problems in file order (variables given on the command line first).
    result.map_err(|e| match e {
        JobspecError::Parse(mut d) => {
            d.sort_by_key(|d| (d.line, d.col));
            JobspecError::Parse(d)
        }
        other => other,
    })
}

fn read_var_files(opts: &ParseOptions) -> Result<Vec<(String, String)>, JobspecError> {
    opts.var_files
        .iter()
        .map(|p| {
            let file = p.display().to_string();
            std::fs::read_to_string(p)
                .map(|t| (file.clone(), t))
                .map_err(|e| JobspecError::Io {
                    file,
                    message: e.to_string(),
                })
        })
        .collect()
}

/// A diagnostic for an hcl-edit parse error.
pub(crate) fn parse_error_diag(file: &str, e: &hcl_edit::parser::Error) -> Diagnostic {
    let loc = e.location();
    let line_text = e.line().trim_end();
    Diagnostic {
        file: file.to_string(),
        line: loc.line(),
        col: loc.column(),
        summary: "Invalid HCL syntax".into(),
        detail: format!("{} (in `{}`)", e.message(), truncate(line_text, 80)),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Rewrites every indented heredoc (`<<-EOT`) into a plain one with the common indentation of
/// its lines removed, before parsing. HCL defines `<<-` on the raw lines, so doing it on the
/// text keeps `%{ … }` directive bodies dedented too; line numbers are unchanged.
fn dedent_heredocs(src: &str) -> std::borrow::Cow<'_, str> {
    if !src.contains("<<-") {
        return std::borrow::Cow::Borrowed(src);
    }
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let opener = line.find("<<-").and_then(|at| {
            let rest = line[at + 3..].trim_end();
            let ident_ok = !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            ident_ok.then(|| (at, rest.to_string()))
        });
        let Some((at, ident)) = opener else {
            out.push_str(line);
            i += 1;
            continue;
        };
        let close = (i + 1..lines.len()).find(|&j| lines[j].trim() == ident);
        let Some(close) = close else {
            out.push_str(line);
            i += 1;
            continue;
        };
        let body = &lines[i + 1..close];
        let indent = body
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
            .min()
            .unwrap_or(0);
        out.push_str(&line[..at]);
        out.push_str("<<");
        out.push_str(&line[at + 3..]);
        for l in body {
            let ws = l.len() - l.trim_start_matches([' ', '\t']).len();
            out.push_str(&l[ws.min(indent)..]);
        }
        let closing = lines[close];
        out.push_str(closing.trim_start());
        i = close + 1;
    }
    std::borrow::Cow::Owned(out)
}

fn hcl_job(name: &str, src: &str, opts: &ParseOptions) -> Result<Value, JobspecError> {
    let dedented = dedent_heredocs(src);
    let src = dedented.as_ref();
    let body = hcl_edit::parser::parse_body(src)
        .map_err(|e| JobspecError::Parse(vec![parse_error_diag(name, &e)]))?;
    let sm = SourceMap::new(name, src);
    let mut diags = Vec::new();
    let mut jobs = Vec::new();
    for s in body.iter() {
        match s {
            Structure::Block(b) => match b.ident.as_str() {
                "job" => jobs.push(b),
                "variable" | "variables" | "locals" => {}
                other => diags.push(sm.diag(
                    b.span().as_ref(),
                    "Unsupported block type",
                    format!(
                        "blocks of type {other:?} are not expected at the top of a job file (only job, variable and locals){}",
                        if matches!(other, "client" | "server" | "plugin" | "acl" | "telemetry" | "consul" | "vault") {
                            "; this looks like an agent configuration file"
                        } else if other == "namespace" || other == "node" || other == "agent" {
                            "; this looks like an ACL policy"
                        } else {
                            ""
                        }
                    ),
                )),
            },
            Structure::Attribute(a) => diags.push(sm.diag(
                a.span().as_ref(),
                "Unsupported argument",
                format!("an argument named {:?} is not expected at the top of a job file", a.key.as_str()),
            )),
        }
    }
    if jobs.is_empty() {
        diags.push(sm.diag(
            Some(&(0..0)),
            "Missing job block",
            "a job file needs one job \"<name>\" { … } block",
        ));
    }
    for extra in jobs.iter().skip(1) {
        diags.push(sm.diag(
            extra.span().as_ref(),
            "Duplicate job block",
            "a job file holds exactly one job block",
        ));
    }
    if !diags.is_empty() {
        return Err(JobspecError::Parse(diags));
    }

    let mut ev = eval::Evaluator::new(src);
    let inputs = variables::VarInputs {
        cli: opts.vars.clone(),
        files: read_var_files(opts)?,
        env: opts.env_vars.clone(),
        strict: opts.strict,
    };
    variables::resolve(&body, &mut ev, &sm, &inputs, &mut diags);
    if !diags.is_empty() {
        return Err(JobspecError::Parse(diags));
    }
    let job = jobs[0];
    let ir_body = ir::build_body(&job.body, job.span(), &ev, &sm, &mut diags);
    let block = ir::Block {
        ident: "job".into(),
        labels: job.labels.iter().map(|l| l.as_str().to_string()).collect(),
        body: ir_body,
        span: job.span(),
    };
    let value = decode::Decoder::new(&sm, &mut diags).job(&block);
    if diags.is_empty() {
        Ok(value)
    } else {
        Err(JobspecError::Parse(diags))
    }
}

fn json_job(name: &str, src: &str) -> Result<Value, JobspecError> {
    let v: Value = serde_json::from_str(src).map_err(|e| {
        JobspecError::Parse(vec![Diagnostic {
            file: name.to_string(),
            line: e.line(),
            col: e.column().max(1),
            summary: "Invalid JSON".into(),
            detail: e.to_string(),
        }])
    })?;
    // HCL-JSON: {"job": {"<id>": {…}}} (lower-case `job`, one label level).
    if let Some(Value::Object(jobs)) = v.get("job") {
        let sm = SourceMap::new(name, src);
        let mut diags = Vec::new();
        if jobs.len() != 1 {
            diags.push(sm.diag(
                None,
                "Invalid HCL-JSON job",
                "\"job\" must hold exactly one job, keyed by its name",
            ));
            return Err(JobspecError::Parse(diags));
        }
        let (id, body) = jobs
            .iter()
            .next()
            .map(|(k, b)| (k.clone(), b.clone()))
            .unwrap_or_default();
        let block = ir::Block {
            ident: "job".into(),
            labels: vec![id],
            body: json_body(&body),
            span: None,
        };
        let value = decode::Decoder::new(&sm, &mut diags).job(&block);
        return if diags.is_empty() {
            Ok(value)
        } else {
            Err(JobspecError::Parse(diags))
        };
    }
    Ok(v)
}

/// HCL-JSON to the evaluated-body shape: object values become blocks, arrays of objects become
/// repeated blocks, everything else is an attribute. Labelled blocks appear as an unlabelled
/// block whose body holds one block per label, which the decoder unfolds.
pub(crate) fn json_body(v: &Value) -> ir::Body {
    let mut body = ir::Body::default();
    let Value::Object(o) = v else { return body };
    for (k, val) in o {
        match val {
            Value::Object(_) => body.blocks.push(ir::Block {
                ident: k.clone(),
                labels: Vec::new(),
                body: json_body(val),
                span: None,
            }),
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                for it in items {
                    body.blocks.push(ir::Block {
                        ident: k.clone(),
                        labels: Vec::new(),
                        body: json_body(it),
                        span: None,
                    });
                }
            }
            _ => body.attrs.push(ir::Attr {
                name: k.clone(),
                value: val.clone(),
                span: None,
            }),
        }
    }
    body
}
