# Written for tests/golden.rs: a parameterized batch job whose task receives the dispatch payload.

job "dispatch" {
  type = "batch"

  parameterized {
    payload       = "required"
    meta_required = ["input"]
    meta_optional = ["priority", "owner"]
  }

  group "run" {
    task "process" {
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/process"
        args    = ["${NOMAD_META_input}", "local/payload.json"]
      }

      dispatch_payload {
        file = "payload.json"
      }
    }
  }
}
