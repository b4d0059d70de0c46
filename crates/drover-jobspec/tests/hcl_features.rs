//! HCL2 features of job files, one behaviour per test: variables and their precedence, types
//! and validation, locals, functions, dynamic blocks, heredocs, runtime interpolation pass-through,
//! JSON forms, and the diagnostics for bad input.

use drover_jobspec::{JobspecError, ParseOptions, parse_str};

fn parse(src: &str) -> drover_jobspec::ParsedJob {
    parse_with(src, ParseOptions::default())
}

fn parse_with(src: &str, opts: ParseOptions) -> drover_jobspec::ParsedJob {
    match parse_str("test.hcl", src, &opts) {
        Ok(p) => p,
        Err(e) => panic!("expected to parse, got:\n{e}"),
    }
}

fn error(src: &str) -> String {
    error_with(src, ParseOptions::default())
}

fn error_with(src: &str, opts: ParseOptions) -> String {
    match parse_str("test.hcl", src, &opts) {
        Ok(p) => panic!("expected an error, parsed {:?}", p.job.id),
        Err(e) => e.to_string(),
    }
}

const TASK: &str = r#"task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }"#;

fn job_with(group_body: &str) -> String {
    format!("job \"j\" {{\n  group \"g\" {{\n    {group_body}\n    {TASK}\n  }}\n}}\n")
}

#[test]
fn variable_precedence_default_env_file_cli() {
    let src = format!(
        "variable \"dc\" {{\n  default = \"from-default\"\n}}\njob \"j\" {{\n  datacenters = [var.dc]\n  group \"g\" {{\n    {TASK}\n  }}\n}}\n"
    );
    assert_eq!(parse(&src).job.datacenters, vec!["from-default"]);

    let env = ParseOptions {
        env_vars: vec![("dc".into(), "from-env".into())],
        ..Default::default()
    };
    assert_eq!(parse_with(&src, env.clone()).job.datacenters, vec!["from-env"]);

    let dir = std::env::temp_dir().join(format!("drover-varfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vf = dir.join("prod.vars");
    std::fs::write(&vf, "dc = \"from-file\"\n").unwrap();
    let file = ParseOptions {
        var_files: vec![vf.clone()],
        ..env.clone()
    };
    assert_eq!(parse_with(&src, file.clone()).job.datacenters, vec!["from-file"]);

    let cli = ParseOptions {
        vars: vec![("dc".into(), "from-cli".into())],
        ..file
    };
    assert_eq!(parse_with(&src, cli).job.datacenters, vec!["from-cli"]);

    let json = dir.join("prod.json");
    std::fs::write(&json, r#"{"dc": "from-json"}"#).unwrap();
    let jf = ParseOptions {
        var_files: vec![json],
        ..Default::default()
    };
    assert_eq!(parse_with(&src, jf).job.datacenters, vec!["from-json"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn variable_types_convert_and_complain() {
    let src = format!(
        "variable \"n\" {{\n  type = number\n}}\nvariable \"tags\" {{\n  type = list(string)\n  default = [\"a\"]\n}}\njob \"j\" {{\n  meta = {{ tags = join(\",\", var.tags) }}\n  group \"g\" {{\n    count = var.n\n    {TASK}\n  }}\n}}\n"
    );
    let ok = ParseOptions {
        vars: vec![("n".into(), "3".into()), ("tags".into(), r#"["x", "y"]"#.into())],
        ..Default::default()
    };
    let p = parse_with(&src, ok);
    assert_eq!(p.job.task_groups[0].count, 3);
    assert_eq!(p.job.meta["tags"], "x,y");

    let bad = ParseOptions {
        vars: vec![("n".into(), "three".into())],
        ..Default::default()
    };
    let e = error_with(&src, bad);
    assert!(e.contains("-var n") && e.contains("a number is required"), "{e}");

    let e = error(&src);
    assert!(e.contains("test.hcl:1:1: Unset variable \"n\""), "{e}");
}

#[test]
fn undeclared_variables_are_errors_unless_not_strict() {
    let src = job_with("");
    let opts = ParseOptions {
        vars: vec![("nope".into(), "1".into())],
        ..Default::default()
    };
    let e = error_with(&src, opts.clone());
    assert!(e.contains("Undefined variable") && e.contains("\"nope\""), "{e}");
    parse_with(
        &src,
        ParseOptions {
            strict: false,
            ..opts
        },
    );
    // NOMAD_VAR_ for an undeclared name is ignored, as in Nomad.
    parse_with(
        &src,
        ParseOptions {
            env_vars: vec![("nope".into(), "1".into())],
            ..Default::default()
        },
    );
}

#[test]
fn variable_validation_blocks() {
    let src = format!(
        "variable \"count\" {{\n  type = number\n  default = 7\n  validation {{\n    condition = var.count < 5\n    error_message = \"count must be below 5\"\n  }}\n}}\njob \"j\" {{\n  group \"g\" {{\n    count = var.count\n    {TASK}\n  }}\n}}\n"
    );
    let e = error(&src);
    assert!(
        e.contains("test.hcl:4:3: Invalid value for variable; count must be below 5"),
        "{e}"
    );
    let ok = ParseOptions {
        vars: vec![("count".into(), "2".into())],
        ..Default::default()
    };
    assert_eq!(parse_with(&src, ok).job.task_groups[0].count, 2);
}

#[test]
fn locals_in_dependency_order_and_cycles() {
    let src = format!(
        "locals {{\n  b = \"${{local.a}}-b\"\n}}\nlocals {{\n  a = upper(\"a\")\n}}\njob \"j\" {{\n  meta {{\n    x = local.b\n  }}\n  group \"g\" {{\n    {TASK}\n  }}\n}}\n"
    );
    assert_eq!(parse(&src).job.meta["x"], "A-b");
    let cyc = format!("locals {{\n  a = local.b\n  b = local.a\n}}\n{}", job_with(""));
    let e = error(&cyc);
    assert!(e.contains("Cycle in local values"), "{e}");
}

#[test]
fn runtime_interpolations_pass_through() {
    let src = r#"
variable "dc" {
  default = "dc1"
}
job "j" {
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "${NOMAD_TASK_DIR}/run"
        args    = ["pre-${var.dc}-${node.unique.name}", "${meta.rack}", "${env["HOME"]}"]
      }
      env {
        ALLOC = "${NOMAD_ALLOC_ID}"
      }
    }
  }
}
"#;
    let job = parse(src).job;
    assert_eq!(job.constraints[0].l_target, "${attr.kernel.name}");
    let t = &job.task_groups[0].tasks[0];
    assert_eq!(t.config["command"], "${NOMAD_TASK_DIR}/run");
    assert_eq!(
        t.config["args"],
        serde_json::json!(["pre-dc1-${node.unique.name}", "${meta.rack}", "${env[\"HOME\"]}"])
    );
    assert_eq!(t.env["ALLOC"], "${NOMAD_ALLOC_ID}");
}

#[test]
fn dynamic_blocks_expand() {
    let src = format!(
        r#"variable "ports" {{
  default = {{ http = 8080, admin = 9090 }}
}}
job "j" {{
  group "g" {{
    network {{
      dynamic "port" {{
        for_each = var.ports
        labels   = [port.key]
        content {{
          static = port.value
        }}
      }}
    }}
    dynamic "constraint" {{
      for_each = ["a", "b"]
      iterator = c
      content {{
        attribute = "$${{meta.${{c.value}}}}"
        value     = c.key
      }}
    }}
    {TASK}
  }}
}}
"#
    );
    let job = parse(&src).job;
    let g = &job.task_groups[0];
    let ports: Vec<(String, i64)> = g.networks[0]
        .reserved_ports
        .iter()
        .map(|p| (p.label.clone(), p.value))
        .collect();
    assert_eq!(ports, vec![("admin".into(), 9090), ("http".into(), 8080)]);
    assert_eq!(g.constraints.len(), 2);
    assert_eq!(g.constraints[1].l_target, "${meta.b}");
    assert_eq!(g.constraints[1].r_target, "1");
}

#[test]
fn heredocs_and_templates() {
    let src = "job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      driver = \"raw_exec\"\n      config { command = \"x\" }\n      template {\n        destination = \"local/a\"\n        data = <<-EOT\n          port={{ env \"NOMAD_PORT_http\" }}\n          dir=${NOMAD_TASK_DIR}\n          EOT\n      }\n    }\n  }\n}\n".to_string();
    let job = parse(&src).job;
    assert_eq!(
        job.task_groups[0].tasks[0].templates[0].embedded_tmpl,
        "port={{ env \"NOMAD_PORT_http\" }}\ndir=${NOMAD_TASK_DIR}\n"
    );
}

#[test]
fn config_nested_blocks_become_lists() {
    let src = r#"job "j" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        image = "busybox"
        port_map { db = 6379 }
        mount {
          type   = "bind"
          target = "/a"
        }
        mount {
          type   = "tmpfs"
          target = "/b"
        }
        labels = { team = "x" }
      }
    }
  }
}
"#;
    let c = &parse(src).job.task_groups[0].tasks[0].config;
    assert_eq!(c["port_map"], serde_json::json!([{"db": 6379}]));
    assert_eq!(c["mount"].as_array().map(Vec::len), Some(2));
    assert_eq!(c["labels"], serde_json::json!([{"team": "x"}]));
}

#[test]
fn task_under_job_becomes_a_group() {
    let src =
        "job \"j\" {\n  task \"solo\" {\n    driver = \"raw_exec\"\n    config { command = \"x\" }\n  }\n}\n";
    let job = parse(src).job;
    assert_eq!(job.task_groups.len(), 1);
    assert_eq!(job.task_groups[0].name, "solo");
    assert_eq!(job.task_groups[0].tasks[0].name, "solo");
}

#[test]
fn json_jobs_api_wrapped_bare_and_hcl_json() {
    let api = r#"{"Job": {"ID": "api", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec"}]}]}}"#;
    let p = parse(api);
    assert_eq!((p.job.id.as_str(), p.format), ("api", "json"));
    let bare =
        r#"{"id": "bare", "taskgroups": [{"name": "g", "tasks": [{"name": "t", "driver": "raw_exec"}]}]}"#;
    assert_eq!(parse(bare).job.id, "bare");
    let hcl_json = r#"{"job": {"hj": {"datacenters": ["dc1"], "group": {"g": {"count": 2, "task": {"t": {"driver": "raw_exec", "config": {"command": "x"}}}}}}}}"#;
    let job = parse(hcl_json).job;
    assert_eq!((job.id.as_str(), job.task_groups[0].count), ("hj", 2));
    assert_eq!(job.task_groups[0].tasks[0].config["command"], "x");
    let e = error(r#"{"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Count": "many"}]}}"#);
    assert!(e.contains("TaskGroups[0].Count"), "{e}");
}

#[test]
fn bad_input_is_reported_with_positions() {
    let e = error("job \"j\" {\n  group \"g\" {\n    count = \n  }\n}\n");
    assert!(e.starts_with("test.hcl:3:"), "{e}");

    let e = error(&job_with("cont = 3"));
    assert!(
        e.contains("test.hcl:3:5: Unsupported argument; an argument named \"cont\" is not expected in group"),
        "{e}"
    );

    let e = error(&job_with("count = \"many\""));
    assert!(e.contains("test.hcl:3:5: Inappropriate value for attribute \"count\"; a whole number is required, got \"many\""), "{e}");

    let e = error(&job_with("restart { delay = \"5 parsecs\" }"));
    assert!(e.contains("Invalid duration for \"delay\""), "{e}");

    let e = error(&job_with("network {\n port \"a\" {}\n port \"a\" {}\n}"));
    assert!(e.contains("port label \"a\" is already in use"), "{e}");

    let e = error("");
    assert!(e.contains("test.hcl:1:1: Missing job block"), "{e}");

    let e = error("job \"a\" {}\njob \"b\" {}\n");
    assert!(e.contains("test.hcl:2:1: Duplicate job block"), "{e}");

    let e = error(&job_with("count = 1000000000"));
    assert!(e.contains("larger than the limit"), "{e}");

    // Several problems are reported at once.
    let e = error(&job_with("cont = 3\n    restrt {}"));
    assert!(e.contains("\"cont\"") && e.contains("\"restrt\""), "{e}");
}

#[test]
fn typos_get_a_suggestion() {
    let e =
        error("job \"j\" {\n  group \"g\" {\n    task \"t\" {\n      drivr = \"raw_exec\"\n    }\n  }\n}\n");
    assert!(e.contains("did you mean \"driver\"?"), "{e}");
}

#[test]
fn functions_from_the_library_work_in_jobs() {
    let src = format!(
        "locals {{\n  names = [\"web\", \"api\"]\n}}\njob \"j\" {{\n  meta = {{\n    joined = join(\"-\", [for n in local.names : upper(n)])\n    enc = base64encode(\"hi\")\n    fmt = format(\"%s:%d\", \"x\", 5)\n    pick = lookup({{ a = \"1\" }}, \"b\", \"dflt\")\n    safe = try(local.nothing, \"fallback\")\n  }}\n  group \"g\" {{\n    {TASK}\n  }}\n}}\n"
    );
    let m = parse(&src).job.meta;
    assert_eq!(m["joined"], "WEB-API");
    assert_eq!(m["enc"], "aGk=");
    assert_eq!(m["fmt"], "x:5");
    assert_eq!(m["pick"], "dflt");
    assert_eq!(m["safe"], "fallback");
}

#[test]
fn io_errors_name_the_file() {
    let e = drover_jobspec::parse_file(
        std::path::Path::new("/nonexistent/job.hcl"),
        &ParseOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, JobspecError::Io { .. }));
    assert!(e.to_string().starts_with("/nonexistent/job.hcl: "), "{e}");
}

#[test]
fn arithmetic_is_exact_and_never_panics() {
    let src = format!(
        "job \"j\" {{\n  meta = {{\n    add = 2 + 3\n    div = 10 / 4\n    exact = 9 / 3\n    neg = -(4 - 10)\n    mix = \"3\" * 2\n    big = 9007199254740993 + 0\n  }}\n  group \"g\" {{\n    {TASK}\n  }}\n}}\n"
    );
    let m = parse(&src).job.meta;
    assert_eq!(
        (m["add"].as_str(), m["div"].as_str(), m["exact"].as_str()),
        ("5", "2.5", "3")
    );
    assert_eq!(
        (m["neg"].as_str(), m["mix"].as_str(), m["big"].as_str()),
        ("6", "6", "9007199254740993")
    );
    for bad in ["1 % 0", "1 / 0", "18446744073709551615 * 2", "1e308 * 10"] {
        let e = error(&format!(
            "job \"j\" {{\n  meta = {{ x = {bad} }}\n  group \"g\" {{\n    {TASK}\n  }}\n}}\n"
        ));
        assert!(e.contains("test.hcl:2:"), "{bad}: {e}");
    }
}
