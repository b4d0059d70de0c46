//! The `drover` binary as a user runs it: real process, real files, exit codes and output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn drover(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("drover runs")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("drover-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn init_validate_and_output_the_example() {
    let dir = scratch("init");
    let out = drover(&dir, &["job", "init"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Example job file written to example.nomad.hcl\n"
    );

    let again = drover(&dir, &["job", "init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("Job 'example.nomad.hcl' already exists"));

    let v = drover(&dir, &["job", "validate", "example.nomad.hcl"]);
    assert!(v.status.success(), "{}", text(&v.stderr));
    assert!(text(&v.stdout).contains("Job validation successful"));

    let o = drover(&dir, &["job", "run", "-output", "example.nomad.hcl"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let body: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON output");
    let job = &body["Job"];
    assert_eq!(job["ID"], "example");
    assert_eq!(job["Type"], "service");
    assert_eq!(job["Priority"], 50);
    let task = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Driver"], "raw_exec");
    assert_eq!(task["KillTimeout"], 5_000_000_000i64);
    // Go's encoder writes struct fields in declaration order: ID comes before TaskGroups.
    let raw = text(&o.stdout);
    assert!(raw.find("\"ID\"").unwrap() < raw.find("\"TaskGroups\"").unwrap());
    assert!(
        raw.starts_with("{\n    \"Job\": {\n        \"Region\""),
        "four-space indent like Nomad's CLI"
    );

    let short = scratch("init-short");
    let s = drover(&short, &["job", "init", "-short", "short.hcl"]);
    assert!(s.status.success());
    let content = std::fs::read_to_string(short.join("short.hcl")).unwrap();
    assert!(!content.contains('#'));
    assert!(drover(&short, &["job", "validate", "short.hcl"]).status.success());
}

#[test]
fn broken_input_exits_non_zero_with_file_line_col() {
    let dir = scratch("bad");
    std::fs::write(
        dir.join("bad.hcl"),
        "job \"x\" {\n  group \"g\" {\n    count = {\n  }\n}\n",
    )
    .unwrap();
    let out = drover(&dir, &["job", "validate", "bad.hcl"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bad.hcl:"), "{err}");
    let pos = err.split("bad.hcl:").nth(1).unwrap();
    let mut parts = pos.split(':');
    assert!(
        parts.next().unwrap().parse::<u32>().is_ok(),
        "line number in {err}"
    );
    assert!(
        parts.next().unwrap().parse::<u32>().is_ok(),
        "column number in {err}"
    );
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");

    std::fs::write(
        dir.join("typo.nomad"),
        "job \"x\" {\n  group \"g\" {\n    task \"t\" {\n      drivr = \"exec\"\n    }\n  }\n}\n",
    )
    .unwrap();
    let out = drover(&dir, &["job", "validate", "typo.nomad"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("typo.nomad:4:7: Unsupported argument; an argument named \"drivr\""));

    std::fs::write(dir.join("invalid.hcl"), "job \"x\" {\n  priority = 500\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n      resources { memory = 1 }\n    }\n  }\n}\n")
        .unwrap();
    let out = drover(&dir, &["job", "validate", "invalid.hcl"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("Job validation errors:"), "{err}");
    assert!(
        err.contains("job priority must be between 1 and 100, got 500"),
        "{err}"
    );
    assert!(
        err.contains("group \"g\" → task \"t\" → resources: memory must be at least 10 MB, got 1"),
        "{err}"
    );

    let missing = drover(&dir, &["job", "validate", "nope.hcl"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("nope.hcl: No such file"));
}

#[test]
fn variables_from_flags_files_and_environment() {
    let dir = scratch("vars");
    std::fs::write(
        dir.join("v.hcl"),
        "variable \"n\" {\n  type = number\n}\njob \"v\" {\n  group \"g\" {\n    count = var.n\n    task \"t\" {\n      driver = \"exec\"\n      config { command = \"x\" }\n    }\n  }\n}\n",
    )
    .unwrap();
    std::fs::write(dir.join("n.vars"), "n = 4\n").unwrap();
    let count = |out: Output| -> i64 {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["Job"]["TaskGroups"][0]["Count"].as_i64().unwrap()
    };
    assert_eq!(
        count(drover(&dir, &["job", "run", "-output", "-var", "n=2", "v.hcl"])),
        2
    );
    assert_eq!(
        count(drover(&dir, &["job", "run", "-output", "-var=n=5", "v.hcl"])),
        5
    );
    assert_eq!(
        count(drover(
            &dir,
            &["job", "run", "-output", "-var-file", "n.vars", "v.hcl"]
        )),
        4
    );
    let env = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["job", "run", "-output", "v.hcl"])
        .current_dir(&dir)
        .env("NOMAD_VAR_n", "7")
        .output()
        .unwrap();
    assert_eq!(count(env), 7);
    let unset = drover(&dir, &["job", "run", "-output", "v.hcl"]);
    assert_eq!(unset.status.code(), Some(1));
    assert!(text(&unset.stderr).contains("v.hcl:1:1: Unset variable \"n\""));
}

#[test]
fn run_without_an_agent_explains_what_is_missing() {
    let dir = scratch("run");
    assert!(drover(&dir, &["job", "init"]).status.success());
    // A port nothing listens on: bind, read the port, drop the listener.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("http://127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["job", "run", "example.nomad.hcl"])
        .current_dir(&dir)
        .env("NOMAD_ADDR", &addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("Error submitting job: Put"), "{err}");
    assert!(err.contains("connection refused"), "{err}");
    assert!(err.contains(&addr), "names the address: {err}");
    assert!(err.contains("drover agent -dev"), "says how to start one: {err}");
    assert!(err.contains("-output"), "offers the offline path: {err}");

    // -address wins over NOMAD_ADDR, and read commands say the same.
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["job", "status", "-address", &addr])
        .current_dir(&dir)
        .env("NOMAD_ADDR", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("Error querying jobs: Get \"{addr}/v1/jobs\"")),
        "{err}"
    );

    // job plan reports errors as 255.
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["job", "plan", "-address", &addr, "example.nomad.hcl"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stderr));
}

#[test]
fn version_and_api_json_input() {
    let dir = scratch("version");
    let v = drover(&dir, &["version"]);
    assert!(text(&v.stdout).starts_with("Drover v"));
    std::fs::write(
        dir.join("job.json"),
        r#"{"Job":{"ID":"j","TaskGroups":[{"Name":"g","Tasks":[{"Name":"t","Driver":"exec"}]}]}}"#,
    )
    .unwrap();
    let out = drover(&dir, &["job", "run", "-output", "-json", "job.json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["Job"]["TaskGroups"][0]["Count"], 1);
}

#[test]
fn examples_in_the_repository_validate() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for e in std::fs::read_dir(&examples).expect("examples/ exists") {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with(".nomad.hcl") {
            n += 1;
            let out = drover(&examples, &["job", "validate", p.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", p.display(), text(&out.stderr));
        }
    }
    assert!(n >= 1);
    let prod = drover(
        &examples,
        &[
            "job",
            "run",
            "-output",
            "-var-file",
            "prod.vars",
            "variables.nomad.hcl",
        ],
    );
    assert!(prod.status.success(), "{}", text(&prod.stderr));
    let v: serde_json::Value = serde_json::from_slice(&prod.stdout).unwrap();
    assert_eq!(v["Job"]["TaskGroups"][0]["Count"], 5);
    let bad = drover(
        &examples,
        &["job", "validate", "-var", "count=50", "variables.nomad.hcl"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("count must be between 1 and 20"));
}

#[test]
fn nomad_style_flags_and_version() {
    let dir = scratch("flags");
    assert!(text(&drover(&dir, &["--version"]).stdout).starts_with("drover "));
    let init = drover(&dir, &["job", "init", "-"]);
    assert!(text(&init.stdout).contains("job \"example\""));
    assert!(!dir.join("-").exists(), "`-` prints instead of writing a file");
    std::fs::write(
        dir.join("j.hcl"),
        "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"exec\"\n    }\n  }\n}\n",
    )
    .unwrap();
    let strict = drover(&dir, &["job", "validate", "-var", "x=1", "j.hcl"]);
    assert_eq!(
        strict.status.code(),
        Some(1),
        "undeclared -var is an error by default"
    );
    let lax = drover(
        &dir,
        &["job", "validate", "-hcl2-strict=false", "-var", "x=1", "j.hcl"],
    );
    assert!(lax.status.success(), "{}", text(&lax.stderr));
    let bare = drover(&dir, &["job", "validate", "-hcl2-strict", "j.hcl"]);
    assert!(
        bare.status.success(),
        "bare -hcl2-strict is a flag: {}",
        text(&bare.stderr)
    );
}
