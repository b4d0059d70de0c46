# A service run by raw_exec (no isolation): prints a line a second.
#   drover job run examples/raw_exec.nomad.hcl
#   drover alloc logs -f <alloc id>
job "hello-raw" {
  datacenters = ["*"]
  type        = "service"

  group "hello" {
    network {
      port "http" {}
    }

    task "hello" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "i=0; while true; do echo \"tick $i from $NOMAD_ALLOC_NAME (port $NOMAD_PORT_http)\"; i=$((i+1)); sleep 1; done"]
      }

      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
