//! Robustness of the job-file parser. The rule: no input panics, overflows the stack, prints a
//! backtrace or hangs; input that is not a job fails with `file:LINE:COL: …` diagnostics whose
//! positions lie inside the file.
//!
//! - proptests: arbitrary bytes (as lossy UTF-8), arbitrary strings, strings starting with `{`
//!   (the JSON path), HCL token soup, and 40 real job files from ../shared/corpus with random
//!   edits (deleted / duplicated ranges, inserted tokens and bytes, values replaced by odd ones);
//! - targeted cases with exact assertions: unterminated string / brace / heredoc, deep nesting,
//!   a 5 MB job, bad `count` values, unknown attributes, duplicate or missing job blocks,
//!   comments only, binary garbage;
//! - `#[ignore]`d cases for known bugs (arithmetic that panics, JSON errors at column 0): run
//!   them with `-- --ignored`; remove the `ignore` once fixed.
//!
//! Each proptest runs 256 cases from a fixed seed, so every run tries the same inputs (debug
//! build, whole file in about 2 s). For a longer hunt with other inputs:
//! `PROPTEST_RNG_SEED=$RANDOM ROBUSTNESS_CASES=20000 cargo test -p drover-jobspec --test robustness`.
//! Failures are not persisted to disk: a failing case is printed with its minimal input.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use drover_jobspec::{Diagnostic, JobspecError, ParseOptions, parse_str};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

fn config() -> ProptestConfig {
    let cases = std::env::var("ROBUSTNESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(cases)
    };
    // The same inputs every run unless PROPTEST_RNG_SEED asks for others.
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x00d2_07e2);
    }
    config
}

// ---------------------------------------------------------------------------------------------
// Helpers

const NAME: &str = "fuzz.nomad";

/// Parses `src`; on a parse error, checks that every positioned diagnostic lies inside the file
/// and that the rendered error carries `file:LINE:COL`.
fn parse_checked(src: &str) -> Result<(), String> {
    let result = parse_str(NAME, src, &ParseOptions::default());
    if let Err(JobspecError::Parse(diags)) = &result {
        if diags.is_empty() {
            return Err("Err(Parse) with no diagnostics".into());
        }
        check_positions(src, diags)?;
        let text = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
        if !text.starts_with(NAME) {
            return Err(format!("error does not start with the file name: {text}"));
        }
    }
    Ok(())
}

fn check_positions(src: &str, diags: &[Diagnostic]) -> Result<(), String> {
    let lines = src.lines().count();
    for d in diags {
        if d.file != NAME {
            return Err(format!("diagnostic names file {:?}, not {NAME:?}: {d}", d.file));
        }
        if d.line > 0 {
            if d.line > lines + 1 {
                return Err(format!(
                    "line {} is past the end of a {lines}-line file: {d}",
                    d.line
                ));
            }
            if d.col < 1 {
                return Err(format!("column 0 on line {}: {d}", d.line));
            }
            let rendered = d.to_string();
            let prefix = format!("{NAME}:{}:{}: ", d.line, d.col);
            if !rendered.starts_with(&prefix) {
                return Err(format!("expected `{prefix}…`, got `{rendered}`"));
            }
        }
    }
    Ok(())
}

/// The parse diagnostics of a source that must fail to parse.
fn diags(src: &str) -> Vec<Diagnostic> {
    match parse_str(NAME, src, &ParseOptions::default()) {
        Ok(p) => panic!("expected a parse error, parsed job {:?}", p.job.id),
        Err(JobspecError::Parse(d)) => {
            if let Err(e) = check_positions(src, &d) {
                panic!("{e}");
            }
            d
        }
        Err(e) => panic!("expected a parse error, got:\n{e}"),
    }
}

/// The only diagnostic of a source that must fail with exactly one.
fn one_diag(src: &str) -> Diagnostic {
    let mut d = diags(src);
    assert_eq!(d.len(), 1, "expected one diagnostic, got {d:#?}");
    d.remove(0)
}

fn job_with_count(count: &str) -> String {
    format!(
        r#"job "x" {{
  group "g" {{
    count = {count}
    task "t" {{
      driver = "raw_exec"
      config {{
        command = "/bin/true"
      }}
    }}
  }}
}}
"#
    )
}

/// A job whose task meta holds `a = <expr>` on line 6.
fn job_with_meta(expr: &str) -> String {
    format!(
        "job \"x\" {{\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"raw_exec\"\n      meta {{\n        a = {expr}\n      }}\n    }}\n  }}\n}}\n"
    )
}

// ---------------------------------------------------------------------------------------------
// The corpus sample

/// ~40 job files from the corpus: every `*.nomad` / `*.hcl` whose text contains `job "`, in
/// path order, then every n-th one. Deterministic, read once.
fn corpus_sample() -> &'static [(String, String)] {
    static SAMPLE: OnceLock<Vec<(String, String)>> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .flatten()
                .map(|e| e.path())
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "nomad" || x == "hcl") {
                    out.push(p);
                }
            }
        }
        let dir = corpus_dir();
        assert!(dir.is_dir(), "the corpus must sit at {}", dir.display());
        let mut paths = Vec::new();
        walk(&dir, &mut paths);
        let jobs: Vec<(String, String)> = paths
            .iter()
            .filter_map(|p| {
                let src = std::fs::read_to_string(p).ok()?;
                let name = p.strip_prefix(&dir).unwrap_or(p).display().to_string();
                src.contains("job \"").then_some((name, src))
            })
            .collect();
        assert!(
            jobs.len() >= 40,
            "expected the whole corpus, found {} job files",
            jobs.len()
        );
        let step = jobs.len() / 40;
        jobs.into_iter().step_by(step).take(40).collect()
    })
}

#[test]
fn corpus_sample_is_forty_job_files() {
    let sample = corpus_sample();
    assert_eq!(sample.len(), 40);
    // The unmutated files themselves must not panic either (most of them parse).
    for (name, src) in sample {
        if let Err(e) = parse_checked(src) {
            panic!("{name}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// Tokens that most often break a parser's assumptions.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    "${",
    "%{",
    "%{ endif }",
    "%{ for x in [1] }",
    "<<EOF\n",
    "<<-EOF\n",
    "\nEOF\n",
    "=",
    "\n",
    "\r\n",
    ",",
    ".",
    "...",
    "=>",
    "?",
    ":",
    "#",
    "//",
    "/*",
    "*/",
    "\\",
    "dynamic \"x\" {",
    "dynamic \"group\" {\n for_each = [1]\n content {\n",
    "content {",
    "for_each = [1, 2]",
    "job \"y\" {",
    "group \"g\" {",
    "task \"t\" {",
    "count = ",
    "null",
    "true",
    "var.x",
    "local.x",
    "each.value",
    "99999999999999999999999",
    "-1",
    "1e30",
    "0x",
    "\0",
    "é",
    "🦀",
    "\u{202e}",
    "\u{feff}",
    "\u{10ffff}",
    "\t",
];

/// Values that keep the file well-formed but stress decoding and validation (durations, sizes,
/// ports, counts, types).
const VALUES: &[&str] = &[
    "-1",
    "0",
    "1e30",
    "-1e30",
    "1.5",
    "99999999999999999999999",
    "18446744073709551615",
    "-9223372036854775808",
    "4294967296",
    "65536",
    "null",
    "true",
    "\"\"",
    "\"abc\"",
    "\"-1\"",
    "\"1e30\"",
    "\"-5s\"",
    "\"0s\"",
    "\"99999999999999h\"",
    "\"9223372036854775807ns\"",
    "\"1.5.5h\"",
    "\"10GiB\"",
    "\"${NOMAD_ALLOC_ID}\"",
    "\"%{ if true }x%{ endif }\"",
    "[]",
    "[null]",
    "[1, \"a\", [2]]",
    "{}",
    "{ a = 1 }",
    "{ a = { b = [] } }",
    "upper(\"x\")",
    "jsonencode({})",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// Replaces the value of the n-th `name = value` (to the end of its line).
    ReplaceValue(prop::sample::Index, &'static str),
    Delete(prop::sample::Index, usize),
    Duplicate(prop::sample::Index, usize),
    InsertToken(prop::sample::Index, &'static str),
    InsertBytes(prop::sample::Index, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<prop::sample::Index>(), prop::sample::select(VALUES))
            .prop_map(|(i, v)| Mutation::ReplaceValue(i, v)),
        1 => (any::<prop::sample::Index>(), 1..80usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<prop::sample::Index>(), 1..80usize).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        3 => (any::<prop::sample::Index>(), prop::sample::select(TOKENS))
            .prop_map(|(i, t)| Mutation::InsertToken(i, t)),
        1 => (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
    ]
}

fn apply(src: &str, mutations: &[Mutation]) -> String {
    let mut bytes = src.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len();
        // Positions in 0..=len.
        let at = |i: &prop::sample::Index| i.index(len + 1);
        match m {
            Mutation::ReplaceValue(i, v) => {
                let equals: Vec<usize> = bytes
                    .windows(3)
                    .enumerate()
                    .filter(|(_, w)| w == b" = ")
                    .map(|(p, _)| p + 3)
                    .collect();
                if equals.is_empty() {
                    continue;
                }
                let start = equals[i.index(equals.len())];
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(len, |e| start + e);
                bytes.splice(start..end, v.bytes());
            }
            Mutation::Delete(i, n) => {
                let start = at(i);
                let end = (start + n).min(len);
                bytes.drain(start..end);
            }
            Mutation::Duplicate(i, n) => {
                let start = at(i);
                let end = (start + n).min(len);
                let copy = bytes[start..end].to_vec();
                bytes.splice(end..end, copy);
            }
            Mutation::InsertToken(i, t) => {
                let p = at(i);
                bytes.splice(p..p, t.bytes());
            }
            Mutation::InsertBytes(i, b) => {
                let p = at(i);
                bytes.splice(p..p, b.iter().copied());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Proptests

/// Pieces of HCL, so random sequences get past the first token more often than random bytes.
const SOUP: &[&str] = &[
    "job",
    "group",
    "task",
    "\"x\"",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "=",
    "\n",
    " ",
    ",",
    "\"",
    "${",
    "%{",
    "}",
    "if",
    "for",
    "in",
    "endif",
    "endfor",
    "<<EOF\n",
    "EOF\n",
    "1",
    "-1",
    "1.5",
    "99999999999999999999999",
    "true",
    "null",
    "var",
    ".",
    "x",
    ":",
    "?",
    "=>",
    "...",
    "#",
    "/*",
    "*/",
    "dynamic",
    "content",
    "for_each",
    "count",
    "driver",
    "config",
    "meta",
    "variable",
    "locals",
    "default",
    "upper(",
    "jsonencode(",
    "é",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let src = String::from_utf8_lossy(&bytes);
        if let Err(e) = parse_checked(&src) {
            prop_assert!(false, "{e}\ninput: {src:?}");
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(src in any::<String>()) {
        if let Err(e) = parse_checked(&src) {
            prop_assert!(false, "{e}\ninput: {src:?}");
        }
    }

    #[test]
    fn arbitrary_json_looking_strings_never_panic(rest in any::<String>()) {
        // A leading `{` takes the JSON path (API JSON or HCL-JSON).
        let src = format!("{{{rest}");
        if let Err(e) = parse_checked(&src) {
            prop_assert!(false, "{e}\ninput: {src:?}");
        }
    }

    #[test]
    fn hcl_token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(SOUP), 0..200)) {
        let src: String = tokens.concat();
        if let Err(e) = parse_checked(&src) {
            prop_assert!(false, "{e}\ninput: {src:?}");
        }
    }

    #[test]
    fn mutated_corpus_files_never_panic(
        file in prop::sample::select((0..40usize).collect::<Vec<_>>()),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let (name, original) = &corpus_sample()[file];
        let src = apply(original, &mutations);
        if let Err(e) = parse_checked(&src) {
            prop_assert!(false, "{name} mutated by {mutations:?}: {e}\ninput:\n{src}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Targeted cases

#[test]
fn unterminated_string_points_at_the_string() {
    let src = "job \"x\" {\n  datacenters = [\"dc1]\n}\n";
    let d = one_diag(src);
    // The opening quote is at 2:18; the error is there.
    assert_eq!((d.line, d.col), (2, 18), "{d}");
    assert_eq!(d.summary, "Invalid HCL syntax");
    assert!(
        d.to_string().starts_with("fuzz.nomad:2:18: Invalid HCL syntax"),
        "{d}"
    );
}

#[test]
fn unclosed_brace_points_at_the_open_block() {
    let src = "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n";
    let d = one_diag(src);
    // The innermost open block is on line 3; the file ends on line 4.
    assert_eq!((d.line, d.col), (3, 16), "{d}");
    assert_eq!(d.summary, "Invalid HCL syntax");
    assert!(d.detail.contains("expected `}`"), "{d}");
}

#[test]
fn unclosed_brace_after_complete_blocks() {
    let src = "job \"x\" {\n  group \"g\" {\n    count = 1\n  }\n";
    let d = one_diag(src);
    assert!(d.line >= 1 && d.line <= 5 && d.col >= 1, "{d}");
    assert_eq!(d.summary, "Invalid HCL syntax");
}

#[test]
fn unterminated_heredoc_points_into_the_heredoc() {
    let src = "job \"x\" {\n  meta {\n    a = <<EOF\nhello\n";
    let d = one_diag(src);
    assert_eq!((d.line, d.col), (4, 1), "{d}");
    assert!(d.detail.contains("heredoc"), "{d}");
}

#[test]
fn unterminated_interpolation_and_template_directive() {
    for (expr, line) in [
        ("\"${\"", 6),
        ("\"%{ if true }\"", 6),
        ("\"${ upper(\"a\" }\"", 6),
    ] {
        let d = one_diag(&job_with_meta(expr));
        assert!(d.line >= 1 && d.line <= line, "{expr}: {d}");
        assert_eq!(d.summary, "Invalid HCL syntax", "{expr}: {d}");
    }
}

#[test]
fn unterminated_block_comment() {
    let d = one_diag("job \"x\" {\n}\n/* never closed\n");
    assert!(d.line >= 1 && d.line <= 3, "{d}");
}

/// 10,000 levels of each nesting construct: refused with a positioned error, no stack overflow.
#[test]
fn deep_nesting_is_refused_without_overflow() {
    let n = 10_000;
    let cases = [
        (
            "arrays",
            job_with_meta(&format!("{}{}", "[".repeat(n), "]".repeat(n))),
        ),
        ("unclosed arrays", job_with_meta(&"[".repeat(n))),
        (
            "parentheses",
            job_with_meta(&format!("{}1{}", "(".repeat(n), ")".repeat(n))),
        ),
        (
            "objects",
            job_with_meta(&format!("{}1{}", "{a=".repeat(n), "}".repeat(n))),
        ),
        (
            "interpolations",
            job_with_meta(&format!("\"{}x{}\"", "${\"".repeat(n), "\"}".repeat(n))),
        ),
        (
            "template ifs",
            job_with_meta(&format!(
                "\"{}x{}\"",
                "%{ if true }".repeat(n),
                "%{ endif }".repeat(n)
            )),
        ),
        ("unary minus", job_with_meta(&format!("{}1", "-".repeat(n)))),
        ("negation", job_with_meta(&format!("{}true", "!".repeat(n)))),
        (
            "conditionals",
            job_with_meta(&format!("{}1{}", "true ? ".repeat(n), " : 2".repeat(n))),
        ),
        (
            "function calls",
            job_with_meta(&format!("{}\"a\"{}", "upper(".repeat(n), ")".repeat(n))),
        ),
        (
            "for expressions",
            job_with_meta(&format!("{}[1]{}", "[for x in ".repeat(n), ": x]".repeat(n))),
        ),
        (
            "blocks",
            format!("job \"x\" {{\n{}{}}}\n", "meta {\n".repeat(n), "}\n".repeat(n)),
        ),
        (
            "dynamic blocks",
            format!(
                "job \"x\" {{\n  group \"g\" {{\n{}{}  }}\n}}\n",
                "dynamic \"x\" {\nfor_each = [1]\ncontent {\n".repeat(n),
                "}\n}\n".repeat(n)
            ),
        ),
        ("binary operators", job_with_meta(&vec!["1"; n].join(" + "))),
    ];
    for (what, src) in &cases {
        let d = diags(src);
        assert!(
            d.iter().all(|d| d.line > 0 && d.col > 0),
            "{n} nested {what}: every diagnostic positioned: {d:#?}"
        );
        assert!(
            d.iter()
                .any(|d| d.detail.contains("nesting depth") || d.detail.contains("at most")),
            "{n} nested {what}: expected a nesting-limit error, got {d:#?}"
        );
    }
    // The JSON path: serde_json's recursion limit.
    let src = format!("{{\"Job\": {}{}}}", "[".repeat(n), "]".repeat(n));
    let d = one_diag(&src);
    assert_eq!(d.line, 1, "{d}");
    assert!(d.detail.contains("recursion limit"), "{d}");
}

/// Nesting just under hcl-edit's limit of 64 goes through evaluation, dynamic expansion and
/// decoding, on a test thread's 2 MiB stack.
#[test]
fn nesting_just_under_the_limit_evaluates_without_overflow() {
    let n = 60;
    let arrays = format!(
        "job \"x\" {{\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"docker\"\n      config {{\n        image = \"x\"\n        args = {}\"a\"{}\n      }}\n    }}\n  }}\n}}\n",
        "[".repeat(n),
        "]".repeat(n)
    );
    assert!(parse_str(NAME, &arrays, &ParseOptions::default()).is_ok());
    let dynamic = format!(
        "job \"x\" {{\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"docker\"\n      config {{ image = \"x\" }}\n{}{}    }}\n  }}\n}}\n",
        "dynamic \"x\" {\nfor_each = [1]\ncontent {\n".repeat(n / 3),
        "}\n}\n".repeat(n / 3)
    );
    let d = diags(&dynamic);
    assert!(d.iter().all(|d| d.line > 0), "{d:#?}");
    for expr in [
        format!("{}\"x\"{}", "(".repeat(n), ")".repeat(n)),
        format!("{}\"x\"{}", "upper(".repeat(n), ")".repeat(n)),
        format!("\"{}x{}\"", "${\"".repeat(n), "\"}".repeat(n)),
        format!("{}\"x\"{}", "true ? ".repeat(n), " : \"y\"".repeat(n)),
        format!("jsonencode({}1{})", "{a=".repeat(n - 4), "}".repeat(n - 4)),
        format!(
            "jsonencode({}[1]{})",
            "[for x in ".repeat(n / 2),
            ": x]".repeat(n / 2)
        ),
    ] {
        let src = job_with_meta(&expr);
        if let Err(e) = parse_str(NAME, &src, &ParseOptions::default()) {
            panic!("{expr}: {e}");
        }
    }
}

#[test]
fn five_megabyte_job_parses_in_bounded_time() {
    let group = |i: usize| {
        format!(
            r#"  group "g{i}" {{
    count = 1
    network {{
      port "http" {{}}
    }}
    task "t" {{
      driver = "docker"
      config {{
        image = "nginx:1.25"
        ports = ["http"]
      }}
      env {{
        NAME = "g{i}-${{NOMAD_ALLOC_ID}}"
      }}
      resources {{
        cpu    = 100
        memory = 64
      }}
    }}
  }}
"#
        )
    };
    let mut src = String::from("job \"big\" {\n  datacenters = [\"dc1\"]\n");
    let mut groups = 0;
    while src.len() < 5 * 1024 * 1024 {
        src.push_str(&group(groups));
        groups += 1;
    }
    src.push_str("}\n");
    let start = Instant::now();
    let parsed = parse_str(NAME, &src, &ParseOptions::default()).expect("the 5 MB job parses");
    let took = start.elapsed();
    assert_eq!(parsed.job.task_groups.len(), groups);
    // About 1.5 s in a debug build on a 2-core machine; 15 s means something went quadratic.
    assert!(
        took < Duration::from_secs(15),
        "{} MB took {took:?}",
        src.len() >> 20
    );
}

#[test]
fn count_of_1e30_is_refused_at_its_line() {
    let d = one_diag(&job_with_count("1e30"));
    assert_eq!((d.line, d.col), (3, 5), "{d}");
    assert!(d.summary.contains("\"count\""), "{d}");
    assert!(d.detail.contains("whole number"), "{d}");
}

#[test]
fn count_of_abc_is_refused_at_its_line() {
    let d = one_diag(&job_with_count("\"abc\""));
    assert_eq!((d.line, d.col), (3, 5), "{d}");
    assert!(d.summary.contains("\"count\""), "{d}");
    assert!(d.detail.contains("\"abc\""), "{d}");
}

#[test]
fn other_bad_counts_fail_cleanly() {
    for count in [
        "1.5",
        "-1",
        "true",
        "[1]",
        "99999999999999999999999",
        "9223372036854775808",
        "1e-30",
    ] {
        match parse_str(NAME, &job_with_count(count), &ParseOptions::default()) {
            Ok(p) => panic!("count = {count} accepted: {:?}", p.job.task_groups[0].count),
            Err(JobspecError::Parse(d)) => {
                check_positions(&job_with_count(count), &d).unwrap_or_else(|e| panic!("{count}: {e}"))
            }
            Err(JobspecError::Invalid { problems, .. }) => {
                assert!(!problems.is_empty(), "count = {count}: empty problem list")
            }
            Err(e) => panic!("count = {count}: {e}"),
        }
    }
}

#[test]
fn unknown_attribute_in_task_is_named_with_its_line() {
    let src = "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      bogus_attr = 1\n    }\n  }\n}\n";
    let d = one_diag(src);
    assert_eq!((d.line, d.col), (5, 7), "{d}");
    assert_eq!(d.summary, "Unsupported argument");
    assert!(d.detail.contains("\"bogus_attr\""), "{d}");
    assert!(d.to_string().starts_with("fuzz.nomad:5:7: "), "{d}");
}

#[test]
fn two_job_blocks_are_refused_at_the_second() {
    let d = one_diag("job \"a\" {\n}\n\njob \"b\" {\n}\n");
    assert_eq!((d.line, d.col), (4, 1), "{d}");
    assert_eq!(d.summary, "Duplicate job block");
}

#[test]
fn empty_file_has_no_job_block() {
    for src in ["", "\n", "   \n\t\n"] {
        let d = one_diag(src);
        assert_eq!((d.line, d.col), (1, 1), "{src:?}: {d}");
        assert_eq!(d.summary, "Missing job block", "{src:?}");
    }
}

#[test]
fn file_of_only_comments_has_no_job_block() {
    let d = one_diag("# a comment\n// another\n/* and a\n   block comment */\n");
    assert_eq!((d.line, d.col), (1, 1), "{d}");
    assert_eq!(d.summary, "Missing job block");
}

#[test]
fn binary_garbage_fails_with_a_positioned_error() {
    let mut bytes = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..4096 {
        // xorshift: deterministic garbage, every byte value.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push(x as u8);
    }
    for src in [
        String::from_utf8_lossy(&bytes).into_owned(),
        String::from_utf8_lossy(b"\x00\x01\xff\xfe garbage \x80").into_owned(),
        "\0".repeat(100),
        String::from_utf8_lossy(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]).into_owned(),
    ] {
        let d = diags(&src);
        assert!(d.iter().all(|d| d.line > 0 && d.col > 0), "{d:#?}");
    }
}

#[test]
fn odd_but_harmless_inputs_do_not_panic() {
    for src in [
        "{",
        "}",
        "[",
        "\"",
        "{\"Job\": null}",
        "{\"Job\": {\"ID\": [[[]]]}}",
        "{\"job\": []}",
        "{\"job\": {\"x\": {\"group\": [{\"g\": {\"count\": \"abc\"}}, 5, null]}}}",
        "{\"job\": {\"x\": {\"group\": {\"g\": {\"count\": 1e30}}}}}",
        "job",
        "job \"x\"",
        "job \"x\" {",
        "job \"x\" {}",
        "job {\n}\n",
        "job \"a\" \"b\" {\n}\n",
        "\u{feff}job \"x\" {\n}\n",
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config { command = \"\u{202e}\u{0}\" }\n    }\n  }\n}\n",
        "variable \"x\" {\n  default = var.x\n}\njob \"x\" {\n}\n",
        "locals {\n  a = local.b\n  b = local.a\n}\njob \"x\" {\n}\n",
        "job \"x\" {\n  group \"g\" {\n    dynamic \"task\" {\n      for_each = 5\n      content {}\n    }\n  }\n}\n",
        "job \"x\" {\n  group \"g\" {\n    dynamic \"task\" {\n      for_each = range(100000)\n      labels = [task.key]\n      content { driver = \"d\" }\n    }\n  }\n}\n",
    ] {
        if let Err(e) = parse_checked(src) {
            panic!("{src:?}: {e}");
        }
    }
}

#[test]
fn crlf_line_endings_parse_like_lf() {
    let name = "brucellino-nomad-jobs/node-red.nomad";
    let src = std::fs::read_to_string(corpus_dir().join(name)).expect("corpus file readable");
    let lf = parse_str(NAME, &src, &ParseOptions::default());
    let crlf = parse_str(NAME, &src.replace('\n', "\r\n"), &ParseOptions::default());
    assert_eq!(lf.is_ok(), crlf.is_ok(), "{name}: LF {lf:?}\nCRLF {crlf:?}");
}

/// serde_json reports column 0 for an error at the start of a line; diagnostics need col ≥ 1.
#[test]
fn json_syntax_error_at_line_start_has_a_column() {
    let d = one_diag("{\n\n");
    assert_eq!(d.summary, "Invalid JSON");
    assert_eq!((d.line, d.col), (3, 1), "{d}");
}

/// Arithmetic that hcl-rs 0.20 / hcl-primitives 0.1.13 evaluates with a bare `/`, `%`, `*` or `+`
/// (or `debug_assert!(is_finite)`) panics instead of failing. Each must become an error.
#[test]
fn arithmetic_edge_cases_fail_without_panic() {
    let mut panicked = Vec::new();
    for expr in [
        "1 / 0",
        "0 / 0",
        "1 % 0",
        "1.5 % 0",
        "1e308 * 10",
        "1e308 + 1e308",
        "-1e308 - 1e308",
        "1 / 1e-320",
        "18446744073709551615 + 1",
        "18446744073709551615 * 18446744073709551615",
        "-9223372036854775808 * -1",
        "-9223372036854775808 % -1",
    ] {
        let src = job_with_meta(&format!("jsonencode({expr})"));
        let result = std::panic::catch_unwind(|| parse_str(NAME, &src, &ParseOptions::default()).map(|_| ()));
        if result.is_err() {
            panicked.push(expr);
        }
    }
    assert!(panicked.is_empty(), "these expressions panic: {panicked:?}");
}
