# Written for tests/golden.rs: job-level attributes, every constraint shorthand, affinity, spread,
# and job/group update, migrate and reschedule blocks merged over each other.

job "placement" {
  region      = "eu-west"
  namespace   = "platform"
  type        = "service"
  priority    = 70
  datacenters = ["eu-west-1a", "eu-west-1*"]
  node_pool   = "gpu"
  all_at_once = true

  meta {
    owner = "team-a"
    tier  = 1
  }

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  constraint {
    distinct_hosts = true
  }

  constraint {
    distinct_property = "${meta.rack}"
    value             = "2"
  }

  constraint {
    attribute = "${attr.nomad.version}"
    version   = ">= 1.6.0, < 2.0"
  }

  constraint {
    attribute = "${attr.os.version}"
    semver    = "~> 22.4"
  }

  constraint {
    attribute = "${node.unique.name}"
    regexp    = "^web-[0-9]+$"
  }

  constraint {
    attribute    = "${meta.features}"
    set_contains = "avx2,sse4"
  }

  constraint {
    attribute = "${meta.ssd}"
    operator  = "is_set"
  }

  affinity {
    attribute = "${node.class}"
    value     = "m5"
  }

  affinity {
    attribute = "${meta.zone}"
    operator  = "!="
    value     = "c"
    weight    = -30
  }

  spread {
    attribute = "${node.datacenter}"

    target "eu-west-1a" {
      percent = 60
    }

    target "eu-west-1b" {
      percent = 40
    }
  }

  update {
    max_parallel     = 2
    stagger          = "45s"
    min_healthy_time = "15s"
    canary           = 1
    auto_promote     = true
  }

  migrate {
    max_parallel     = 2
    min_healthy_time = "20s"
  }

  reschedule {
    attempts       = 5
    interval       = "1h"
    delay          = "10s"
    delay_function = "constant"
    unlimited      = false
  }

  group "web" {
    count                        = 3
    shutdown_delay               = "6s"
    stop_after_client_disconnect = "90s"

    meta = {
      role = "frontend"
    }

    update {
      max_parallel = 1
      health_check = "task_states"
      auto_revert  = true
    }

    migrate {
      health_check = "task_states"
    }

    reschedule {
      attempts = 2
    }

    restart {
      attempts = 5
      delay    = "20s"
      mode     = "delay"
    }

    ephemeral_disk {
      size   = 2048
      sticky = true
    }

    network {
      mode = "bridge"

      port "http" {
        static = 8080
        to     = 80
      }

      port "admin" {
        to           = 9090
        host_network = "internal"
      }

      port "metrics" {}

      dns {
        servers  = ["10.0.0.53", "10.0.0.54"]
        searches = ["service.consul"]
        options  = ["ndots:2"]
      }
    }

    service {
      name = "web"
      port = "http"
      tags = ["frontend", "alloc-${NOMAD_ALLOC_INDEX}"]

      check {
        type     = "http"
        path     = "/health"
        method   = "POST"
        interval = "10s"
        timeout  = "2s"

        header {
          Authorization = ["Bearer abc"]
          X-Env         = ["a", "b"]
        }

        check_restart {
          limit           = 3
          grace           = "30s"
          ignore_warnings = true
        }
      }

      check {
        name     = "alive"
        type     = "tcp"
        port     = "admin"
        interval = "5s"
        timeout  = "1s"
      }
    }

    task "web" {
      driver = "docker"

      config {
        image = "nginx:1.25"
        ports = ["http", "admin", "metrics"]
      }
    }
  }

  group "worker" {
    max_client_disconnect = "2h"

    task "work" {
      driver = "exec"

      config {
        command = "/usr/local/bin/worker"
      }
    }
  }
}
