# An example Drover job. Drover reads Nomad job files, so everything here is
# also a valid Nomad job. Check it and see the JSON the HTTP API takes:
#
#   drover job validate example.nomad.hcl
#   drover job run -output example.nomad.hcl
#
# Run it on a dev agent: `drover agent -dev`, then `drover job run
# example.nomad.hcl`, and watch it with `drover alloc logs -f <alloc id>`.
#
# No container image is needed: the task is a shell loop run by the raw_exec
# driver, so it works on a fresh machine without a registry.
job "example" {
  # Run in any datacenter.
  datacenters = ["*"]

  # A long-running service (the other types are batch, system and sysbatch).
  type = "service"

  # Rolling updates: replace one allocation at a time and wait until it has
  # been healthy for 10 seconds before moving on.
  update {
    max_parallel      = 1
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = false
    canary            = 0
  }

  # How allocations leave a draining node.
  migrate {
    max_parallel     = 1
    health_check     = "checks"
    min_healthy_time = "10s"
    healthy_deadline = "5m"
  }

  group "greeter" {
    # How many copies of this group to run.
    count = 1

    # A dynamic port, chosen by the scheduler from 20000-32000 and handed to
    # the task as NOMAD_PORT_http.
    network {
      port "http" {}
    }

    # Register the service in Drover's own service catalogue.
    service {
      name     = "greeter"
      port     = "http"
      provider = "nomad"
      tags     = ["example"]
    }

    # Restart a failed task twice within 30 minutes, 15 seconds apart.
    restart {
      attempts = 2
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    ephemeral_disk {
      size = 300
    }

    task "hello" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args = [
          "-c",
          "while true; do echo \"hello from $NOMAD_ALLOC_NAME on port $NOMAD_PORT_http\"; sleep 1; done",
        ]
      }

      # CPU in MHz and memory in MB reserved for the task.
      resources {
        cpu    = 100
        memory = 64
      }

      # Give the task 5 seconds to exit after SIGINT before it is killed.
      kill_timeout = "5s"
    }
  }
}
