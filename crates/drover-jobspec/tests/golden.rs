//! Golden tests: real job files (from `../shared/corpus`) and a few written for this suite
//! (`tests/golden/*.nomad.hcl`, for blocks the corpus lacks) against hand-written expectations
//! in `tests/golden/<name>.json`.
//!
//! Each expectation is a *fragment* of the canonical job JSON (`{"Job": …}`'s inner object), written
//! by reading the job file and the reference (`http-api.md` §1–2, `client-drivers-jobspec.md` §6),
//! never by pasting the parser's output. It holds the fields the file sets and the defaults Nomad
//! fills in. Matching is by subset:
//! - objects: every expected key must be present with a matching value; extra keys are fine;
//! - arrays: same length, elements matched in order;
//! - scalars: equal (numbers compared by value);
//! - `{"$by_name": [...]}` in place of an array: each listed object is matched against the actual
//!   element with the same `Name`, and actual elements not listed are allowed (used where the
//!   reference is silent about extra elements Drover adds, e.g. an injected Connect sidecar task).
//!
//! A case whose expectation disagrees with Drover, where the reference says Drover is wrong, is
//! kept (the expectation is right) and marked `#[ignore = "drover bug: …"]`.

use std::path::PathBuf;

use drover_jobspec::{ParseOptions, parse_file};
use serde_json::Value;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Resolves a job file: `corpus:<path>` is under `../shared/corpus`, `golden:<name>` under
/// `tests/golden`.
fn job_path(spec: &str) -> PathBuf {
    if let Some(p) = spec.strip_prefix("corpus:") {
        manifest_dir().join("../../../shared/corpus").join(p)
    } else if let Some(p) = spec.strip_prefix("golden:") {
        manifest_dir().join("tests/golden").join(p)
    } else {
        panic!("job file spec must start with corpus: or golden:, got {spec}")
    }
}

/// Where the first difference between `expected` (a fragment) and `actual` is, or `None` when the
/// fragment is a subset of `actual`.
fn first_mismatch(path: &str, expected: &Value, actual: &Value) -> Option<(String, Value, Value)> {
    match (expected, actual) {
        (Value::Object(e), Value::Array(a)) if e.len() == 1 && e.contains_key("$by_name") => {
            let listed = e["$by_name"].as_array().expect("$by_name takes an array");
            for ev in listed {
                let name = ev.get("Name").expect("$by_name elements need a Name");
                let p = format!("{path}[Name={name}]");
                match a.iter().find(|av| av.get("Name") == Some(name)) {
                    Some(av) => {
                        if let Some(m) = first_mismatch(&p, ev, av) {
                            return Some(m);
                        }
                    }
                    None => return Some((format!("{p} (no element)"), ev.clone(), actual.clone())),
                }
            }
            None
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => {
                        if let Some(m) = first_mismatch(&p, ev, av) {
                            return Some(m);
                        }
                    }
                    None => return Some((format!("{p} (missing key)"), ev.clone(), Value::Null)),
                }
            }
            None
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Some((
                    format!("{path} (length {} expected, {} actual)", e.len(), a.len()),
                    expected.clone(),
                    actual.clone(),
                ));
            }
            e.iter()
                .zip(a)
                .enumerate()
                .find_map(|(i, (ev, av))| first_mismatch(&format!("{path}[{i}]"), ev, av))
        }
        (Value::Number(e), Value::Number(a)) => {
            let same = e == a || matches!((e.as_f64(), a.as_f64()), (Some(x), Some(y)) if x == y);
            (!same).then(|| (path.to_string(), expected.clone(), actual.clone()))
        }
        _ => (expected != actual).then(|| (path.to_string(), expected.clone(), actual.clone())),
    }
}

/// Parses `job` (with `-var` values `vars`) and checks that `tests/golden/<expect>` is a subset of
/// the job's JSON.
fn check(job: &str, expect: &str, vars: &[(&str, &str)]) {
    let path = job_path(job);
    let opts = ParseOptions {
        vars: vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..ParseOptions::default()
    };
    let parsed = match parse_file(&path, &opts) {
        Ok(p) => p,
        Err(e) => panic!("{} did not parse:\n{e}", path.display()),
    };
    let actual = serde_json::to_value(&parsed.job).expect("job serializes");

    let expect_path = manifest_dir().join("tests/golden").join(expect);
    let text = std::fs::read_to_string(&expect_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", expect_path.display()));
    let expected: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", expect_path.display()));
    assert!(
        expected.is_object(),
        "{} must hold a JSON object",
        expect_path.display()
    );

    if let Some((at, want, got)) = first_mismatch("$", &expected, &actual) {
        panic!(
            "{} does not match {}\n  at:       {at}\n  expected: {}\n  actual:   {}",
            path.display(),
            expect,
            serde_json::to_string_pretty(&want).unwrap_or_default(),
            serde_json::to_string_pretty(&got).unwrap_or_default(),
        );
    }
}

// --- the helper itself ---

#[test]
fn subset_helper_accepts_fragments_and_reports_the_first_difference() {
    let actual = serde_json::json!({
        "ID": "x", "Priority": 50, "Meta": null,
        "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "KillTimeout": 5000000000_u64}]}]
    });
    let ok = serde_json::json!({"Priority": 50, "Meta": null, "TaskGroups": [{"Tasks": [{"Name": "t"}]}]});
    assert_eq!(first_mismatch("$", &ok, &actual), None);

    let wrong = serde_json::json!({"TaskGroups": [{"Tasks": [{"KillTimeout": 1}]}]});
    let (at, _, got) = first_mismatch("$", &wrong, &actual).expect("mismatch");
    assert_eq!(at, "$.TaskGroups[0].Tasks[0].KillTimeout");
    assert_eq!(got, serde_json::json!(5000000000_u64));

    let missing = serde_json::json!({"Region": "global"});
    assert!(
        first_mismatch("$", &missing, &actual)
            .unwrap()
            .0
            .contains("missing key")
    );

    let short = serde_json::json!({"TaskGroups": []});
    assert!(first_mismatch("$", &short, &actual).unwrap().0.contains("length"));

    let null_vs_list = serde_json::json!({"Meta": {}});
    assert!(first_mismatch("$", &null_vs_list, &actual).is_some());

    let by_name = serde_json::json!({"TaskGroups": {"$by_name": [{"Name": "g", "Count": 1}]}});
    assert_eq!(first_mismatch("$", &by_name, &actual), None);
    let by_name_absent = serde_json::json!({"TaskGroups": {"$by_name": [{"Name": "h"}]}});
    assert!(
        first_mismatch("$", &by_name_absent, &actual)
            .unwrap()
            .0
            .contains("no element")
    );
}

// --- job files from the corpus ---

#[test]
fn rabbit_consul() {
    check(
        "corpus:brucellino-nomad-jobs/services-plane/rabbit-consul.nomad.hcl",
        "rabbit-consul.json",
        &[],
    );
}

#[test]
fn minio_simple() {
    check(
        "corpus:brucellino-nomad-jobs/minio-simple.nomad",
        "minio-simple.json",
        &[],
    );
}

#[test]
fn node_red() {
    check(
        "corpus:brucellino-nomad-jobs/node-red.nomad",
        "node-red.json",
        &[],
    );
}

#[test]
fn consul_esm() {
    check(
        "corpus:brucellino-nomad-jobs/consul-esm.nomad",
        "consul-esm.json",
        &[],
    );
}

#[test]
fn periodic() {
    check(
        "corpus:nomad-v1.6.5/e2e/periodic/input/simple.nomad",
        "periodic.json",
        &[],
    );
}

#[test]
fn parameterized() {
    check(
        "corpus:nomad-v1.6.5/e2e/parameterized/input/simple.nomad",
        "parameterized.json",
        &[],
    );
}

#[test]
fn multiple_spread() {
    check(
        "corpus:nomad-v1.6.5/e2e/spread/input/multiple_spread.nomad",
        "multiple-spread.json",
        &[],
    );
}

#[test]
fn group_scaling() {
    check(
        "corpus:nomad-v1.6.5/e2e/scalingpolicies/input/namespace_default_1.nomad",
        "group-scaling.json",
        &[],
    );
}

#[test]
fn task_scaling() {
    check(
        "corpus:nomad-v1.6.5/jobspec/test-fixtures/task-scaling-policy.hcl",
        "task-scaling.json",
        &[],
    );
}

#[test]
fn tg_network() {
    check(
        "corpus:nomad-v1.6.5/jobspec/test-fixtures/tg-network.hcl",
        "tg-network.json",
        &[],
    );
}

#[test]
fn artifacts() {
    check(
        "corpus:nomad-v1.6.5/jobspec/test-fixtures/artifacts.hcl",
        "artifacts.json",
        &[],
    );
}

#[test]
fn csi_plugin() {
    check(
        "corpus:nomad-v1.6.5/jobspec/test-fixtures/csi-plugin.hcl",
        "csi-plugin.json",
        &[],
    );
}

/// `csi_plugin { health_timeout = "1m" }` is a duration: JSON integer nanoseconds (http-api.md §1.2).
#[test]
fn csi_plugin_health_timeout_is_nanoseconds() {
    check(
        "corpus:nomad-v1.6.5/jobspec/test-fixtures/csi-plugin.hcl",
        "csi-plugin-health-timeout.json",
        &[],
    );
}

#[test]
fn lifecycle() {
    check(
        "corpus:nomad-v1.6.5/e2e/lifecycle/inputs/service.nomad",
        "lifecycle.json",
        &[],
    );
}

#[test]
fn workload_identity() {
    check(
        "corpus:nomad-v1.6.5/e2e/workload_id/input/identity.nomad",
        "identity.json",
        &[],
    );
}

#[test]
fn host_volumes() {
    check(
        "corpus:nomad-v1.6.5/e2e/volumes/input/volumes.nomad",
        "volumes.json",
        &[],
    );
}

#[test]
fn vault_secrets() {
    check(
        "corpus:nomad-v1.6.5/e2e/vaultsecrets/input/secrets.nomad",
        "vault-secrets.json",
        &[],
    );
}

#[test]
fn lost_max_disconnect() {
    check(
        "corpus:nomad-v1.6.5/e2e/disconnectedclients/input/lost_max_disconnect.nomad",
        "lost-max-disconnect.json",
        &[],
    );
}

#[test]
fn memory_oversubscription() {
    check(
        "corpus:nomad-v1.6.5/e2e/oversubscription/testdata/docker.nomad",
        "oversubscription.json",
        &[],
    );
}

#[test]
fn resources_cores() {
    check(
        "corpus:nomad-v1.6.5/jobspec/test-fixtures/resources-cores.hcl",
        "resources-cores.json",
        &[],
    );
}

#[test]
fn kill_signal_task_shortcut() {
    check(
        "corpus:nomad-v1.6.5/jobspec/test-fixtures/job-with-kill-signal.hcl",
        "kill-signal.json",
        &[],
    );
}

#[test]
fn completed_leader() {
    check(
        "corpus:nomad-v1.6.5/e2e/taskevents/input/completed_leader.nomad",
        "completed-leader.json",
        &[],
    );
}

#[test]
fn job_priority_variable_default() {
    check(
        "corpus:nomad-v1.6.5/e2e/eval_priority/inputs/thirteen_job_priority.nomad",
        "thirteen-priority.json",
        &[],
    );
}

// --- job files written for this suite (blocks no parseable corpus file has) ---

#[test]
fn placement_and_strategies() {
    check("golden:placement.nomad.hcl", "placement.json", &[]);
}

#[test]
fn task_blocks() {
    check("golden:task-blocks.nomad.hcl", "task-blocks.json", &[]);
}

#[test]
fn hcl_features() {
    check(
        "golden:hcl-features.nomad.hcl",
        "hcl-features.json",
        &[("env", "staging"), ("replicas", "3")],
    );
}

/// `%{ for }` / `%{ if }` template directives and `~` strip markers (client-drivers-jobspec.md §6.1).
#[test]
fn template_directives() {
    check(
        "golden:template-directives.nomad.hcl",
        "template-directives.json",
        &[],
    );
}

#[test]
fn dispatch_payload() {
    check("golden:dispatch.nomad.hcl", "dispatch.json", &[]);
}
