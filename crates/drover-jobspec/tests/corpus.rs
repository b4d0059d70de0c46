//! Every job file in `../shared/corpus` (real job files written by other people) against the
//! expectations in `corpus-expectations.txt`: unlisted files must parse and validate; listed
//! ones must pass with the help named there, or be refused with a clear, positioned error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drover_jobspec::{JobspecError, ParseOptions};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

#[derive(Debug)]
enum Expect {
    Pass {
        vars: Vec<(String, String)>,
        var_files: Vec<String>,
        files: Vec<String>,
    },
    NotAJob,
    Invalid,
}

fn expectations() -> BTreeMap<String, (Expect, String)> {
    let text = include_str!("corpus-expectations.txt");
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.splitn(3, '|').map(str::trim).collect();
        assert_eq!(
            parts.len(),
            3,
            "corpus-expectations.txt:{}: expected `path | kind | details`",
            n + 1
        );
        let expect = match parts[1] {
            "pass" => {
                let (mut vars, mut var_files, mut files) = (Vec::new(), Vec::new(), Vec::new());
                for tok in parts[2].split_whitespace() {
                    if let Some(v) = tok.strip_prefix("var:") {
                        let (k, val) = v.split_once('=').expect("var:NAME=VALUE");
                        vars.push((k.to_string(), val.to_string()));
                    } else if let Some(f) = tok.strip_prefix("var-file:") {
                        var_files.push(f.to_string());
                    } else if let Some(f) = tok.strip_prefix("file:") {
                        files.push(f.to_string());
                    } else {
                        panic!("corpus-expectations.txt:{}: unknown token {tok}", n + 1);
                    }
                }
                Expect::Pass {
                    vars,
                    var_files,
                    files,
                }
            }
            "not-a-job" => Expect::NotAJob,
            "invalid" => Expect::Invalid,
            other => panic!("corpus-expectations.txt:{}: unknown kind {other}", n + 1),
        };
        assert!(
            out.insert(parts[0].to_string(), (expect, parts[2].to_string()))
                .is_none(),
            "{} listed twice",
            parts[0]
        );
    }
    out
}

fn job_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus readable")
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            job_files(&p, out);
        } else {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".hcl")
                || name.ends_with(".nomad")
                || name.ends_with(".job")
                || name.ends_with(".json")
            {
                out.push(p);
            }
        }
    }
}

/// Parses with the help an expectation names: the job is copied into a scratch directory
/// beside its var files and the (empty) companion files it reads.
fn parse_with_help(
    path: &Path,
    vars: &[(String, String)],
    var_files: &[String],
    files: &[String],
) -> Result<drover_jobspec::ParsedJob, JobspecError> {
    let scratch = std::env::temp_dir().join(format!(
        "drover-corpus-{}-{}",
        std::process::id(),
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&scratch).unwrap();
    let copy = scratch.join(path.file_name().unwrap());
    std::fs::copy(path, &copy).unwrap();
    for f in files {
        let target = scratch.join(f);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, "placeholder written by the corpus test\n").unwrap();
    }
    let tmp = scratch.display().to_string();
    let opts = ParseOptions {
        vars: vars
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{tmp}", &tmp)))
            .collect(),
        var_files: var_files.iter().map(|f| path.parent().unwrap().join(f)).collect(),
        ..Default::default()
    };
    let result = drover_jobspec::parse_file(&copy, &opts);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[test]
fn every_corpus_job_file_parses_or_fails_clearly() {
    let dir = corpus_dir();
    assert!(
        dir.is_dir(),
        "the corpus must sit at {} (../shared/corpus from the project root)",
        dir.display()
    );
    let expect = expectations();
    let mut files = Vec::new();
    job_files(&dir, &mut files);
    assert!(
        files.len() > 300,
        "expected the whole corpus, found {} files",
        files.len()
    );

    let mut problems = Vec::new();
    let (mut accepted_by_nomad, mut parsed_ok, mut refused_ok) = (0usize, 0usize, 0usize);
    let mut seen = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        seen.push(rel.clone());
        let no_help = (Vec::new(), Vec::new(), Vec::new());
        let (expect, reason) = match expect.get(&rel) {
            Some((e, r)) => (e, r.as_str()),
            None => (
                &Expect::Pass {
                    vars: no_help.0,
                    var_files: no_help.1,
                    files: no_help.2,
                },
                "",
            ),
        };
        match expect {
            Expect::Pass {
                vars,
                var_files,
                files,
            } => {
                accepted_by_nomad += 1;
                match parse_with_help(path, vars, var_files, files) {
                    Ok(parsed) => {
                        parsed_ok += 1;
                        assert!(
                            !parsed.job.id.is_empty() && !parsed.job.task_groups.is_empty(),
                            "{rel}: parsed to an empty job"
                        );
                    }
                    Err(e) => problems.push(format!("{rel}: expected to parse, got:\n{e}")),
                }
            }
            Expect::NotAJob | Expect::Invalid => {
                match drover_jobspec::parse_file(path, &ParseOptions::default()) {
                    Ok(_) => problems.push(format!(
                        "{rel}: listed as refused ({reason}) but it parsed; update corpus-expectations.txt"
                    )),
                    Err(e) => {
                        let text = e.to_string();
                        let file_named = text.contains(path.file_name().unwrap().to_str().unwrap());
                        let positioned = match &e {
                            JobspecError::Parse(d) => d.iter().all(|d| d.line > 0 && d.col > 0),
                            JobspecError::Invalid { problems, .. } => !problems.is_empty(),
                            JobspecError::Io { .. } => false,
                        };
                        if !file_named || !positioned || text.trim().is_empty() {
                            problems.push(format!("{rel}: refused, but the error is not clear (names file: {file_named}, positioned: {positioned}):\n{text}"));
                        } else {
                            refused_ok += 1;
                        }
                    }
                }
            }
        }
    }
    for listed in expect.keys() {
        if !seen.contains(listed) {
            problems.push(format!(
                "{listed}: listed in corpus-expectations.txt but not in the corpus"
            ));
        }
    }
    let ratio = parsed_ok as f64 / accepted_by_nomad.max(1) as f64;
    println!(
        "corpus: {} files; {parsed_ok}/{accepted_by_nomad} job files Nomad accepts parse ({:.1}%); {refused_ok} refused as expected",
        files.len(),
        ratio * 100.0
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
    assert!(
        ratio >= 0.99,
        "only {:.1}% of accepted job files parse",
        ratio * 100.0
    );
}
