//! Job-file parsing benchmarks; results and machine details are in docs/benchmarks.md
//! ("Job-file parsing").
//!
//! Cases (files under ../shared/corpus, read once before timing; only `parse_str` is timed):
//! - `parse_str/typical`: brucellino-nomad-jobs/node-red.nomad, 140 lines, a real user's job
//!   file with no variables. Target: median under 1 ms.
//! - `parse_str/small`: nomad-v1.6.5/e2e/taskevents/input/simple_batch.nomad, 21 lines.
//! - `parse_str/variables`: brucellino-nomad-jobs/observability-plane/github-exporter.nomad,
//!   286 lines, `variable` blocks with defaults and `var.*` references.
//! - `parse_str/large`: brucellino-nomad-jobs/report-portal/report-portal.nomad.hcl, 657 lines,
//!   the largest corpus job file.
//! - `corpus/all`: every corpus job file (`*.hcl`, `*.nomad`, `*.job`, `*.json`) that parses
//!   with default options, each once per iteration (files that fail are skipped; the list is
//!   computed before timing). Throughput is reported in files/s.
//!
//! Run (release build; a few minutes on 2 cores):
//!     cargo bench -p drover-jobspec --bench parse_corpus
//! One case only: `cargo bench -p drover-jobspec --bench parse_corpus -- parse_str/typical`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use drover_jobspec::{ParseOptions, parse_str};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus")
}

/// The single-file cases: (benchmark id, path under the corpus).
const FILES: &[(&str, &str)] = &[
    ("typical", "brucellino-nomad-jobs/node-red.nomad"),
    ("small", "nomad-v1.6.5/e2e/taskevents/input/simple_batch.nomad"),
    (
        "variables",
        "brucellino-nomad-jobs/observability-plane/github-exporter.nomad",
    ),
    (
        "large",
        "brucellino-nomad-jobs/report-portal/report-portal.nomad.hcl",
    ),
];

fn job_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            job_files(&p, out);
        } else if let Some(name) = p.file_name().and_then(|n| n.to_str())
            && [".hcl", ".nomad", ".job", ".json"]
                .iter()
                .any(|ext| name.ends_with(ext))
        {
            out.push(p);
        }
    }
}

fn per_file(c: &mut Criterion) {
    let opts = ParseOptions::default();
    let mut group = c.benchmark_group("parse_str");
    for (id, rel) in FILES {
        let path = corpus_dir().join(rel);
        let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // A benchmark of a file that fails would measure the error path: refuse to run.
        if let Err(e) = parse_str(rel, &src, &opts) {
            panic!("{rel} must parse for this benchmark:\n{e}");
        }
        println!(
            "parse_str/{id}: {rel} ({} lines, {} bytes)",
            src.lines().count(),
            src.len()
        );
        group.throughput(Throughput::Bytes(src.len() as u64));
        group.bench_function(*id, |b| {
            b.iter(|| parse_str(black_box(rel), black_box(&src), black_box(&opts)))
        });
    }
    group.finish();
}

fn whole_corpus(c: &mut Criterion) {
    let opts = ParseOptions::default();
    let dir = corpus_dir();
    let mut paths = Vec::new();
    job_files(&dir, &mut paths);
    let total = paths.len();
    let files: Vec<(String, String)> = paths
        .iter()
        .filter_map(|p| {
            let name = p.strip_prefix(&dir).unwrap_or(p).display().to_string();
            let src = std::fs::read_to_string(p).ok()?;
            parse_str(&name, &src, &opts).ok().map(|_| (name, src))
        })
        .collect();
    let lines: usize = files.iter().map(|(_, s)| s.lines().count()).sum();
    println!(
        "corpus/all: {} of {total} job files parse with default options ({lines} lines)",
        files.len()
    );
    let mut group = c.benchmark_group("corpus");
    group.throughput(Throughput::Elements(files.len() as u64));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("all", |b| {
        b.iter(|| {
            for (name, src) in &files {
                let _ = black_box(parse_str(name, black_box(src), &opts));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, per_file, whole_corpus);
criterion_main!(benches);
