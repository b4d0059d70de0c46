# Written for tests/golden.rs: group volume/consul/disconnect blocks and every task-level block:
# driver config with nested blocks, env, meta, resources with devices, logs, artifacts, templates
# with change_script and wait, vault, identities, volume mounts, actions.

job "task-blocks" {
  datacenters = ["dc1"]

  group "app" {
    volume "certs" {
      type            = "csi"
      source          = "certs-vol"
      read_only       = true
      access_mode     = "multi-node-reader-only"
      attachment_mode = "file-system"
      per_alloc       = true

      mount_options {
        fs_type     = "ext4"
        mount_flags = ["noatime", "nodev"]
      }
    }

    volume "scratch" {
      type   = "host"
      source = "scratch"
    }

    consul {
      namespace = "apps"
    }

    disconnect {
      lost_after = "1h"
      replace    = false
      reconcile  = "keep_original"
    }

    task "app" {
      driver         = "docker"
      user           = "nobody"
      leader         = true
      kind           = "connect-native:app"
      kill_timeout   = "22s"
      kill_signal    = "SIGUSR1"
      shutdown_delay = "3s"

      config {
        image  = "registry.example/app:1.2.3"
        args   = ["--node", "${node.unique.name}", "--kernel", "${attr.kernel.name}"]
        labels = { team = "core" }

        mount {
          type   = "bind"
          source = "local/conf"
          target = "/etc/app"
        }

        mount {
          type   = "tmpfs"
          target = "/scratch"

          tmpfs_options {
            size = 100000
          }
        }

        logging {
          type = "fluentd"

          config {
            fluentd-address = "localhost:24224"
          }
        }
      }

      env {
        APP_ENV = "prod"
        ALLOC   = "${NOMAD_ALLOC_ID}"
        PORT    = 8080
      }

      meta {
        version = "1.2.3"
      }

      resources {
        cpu        = 750
        memory     = 512
        memory_max = 1024

        device "nvidia/gpu" {
          count = 2

          constraint {
            attribute = "${device.attr.memory}"
            operator  = ">="
            value     = "2 GiB"
          }

          affinity {
            attribute = "${device.model}"
            value     = "Tesla V100"
            weight    = 75
          }
        }
      }

      logs {
        max_files     = 3
        max_file_size = 20
      }

      artifact {
        source      = "https://example.com/app.tar.gz"
        destination = "local/app"

        options {
          checksum = "sha256:abcd"
        }

        headers {
          X-Token = "t0k"
        }
      }

      artifact {
        source = "https://example.com/config.json"
        mode   = "file"
      }

      template {
        data                 = "KEY={{ key \"app/key\" }}\n"
        destination          = "secrets/app.env"
        env                  = true
        perms                = "0600"
        error_on_missing_key = true
        change_mode          = "script"

        change_script {
          command       = "/bin/reload"
          args          = ["-f", "${NOMAD_TASK_DIR}/app.env"]
          fail_on_error = true
        }

        wait {
          min = "2s"
          max = "10s"
        }
      }

      template {
        source          = "local/conf.tpl"
        destination     = "local/conf"
        change_mode     = "signal"
        change_signal   = "sighup"
        left_delimiter  = "[["
        right_delimiter = "]]"
      }

      vault {
        role          = "app-role"
        namespace     = "ns1"
        env           = false
        change_mode   = "signal"
        change_signal = "SIGUSR1"
      }

      identity {
        env  = true
        file = true
      }

      identity {
        name = "aws"
        aud  = ["sts.amazonaws.com"]
        ttl  = "1h"
        file = true
      }

      volume_mount {
        volume      = "certs"
        destination = "/etc/certs"
        read_only   = true
      }

      volume_mount {
        volume           = "scratch"
        destination      = "/scratch"
        propagation_mode = "host-to-task"
      }

      action "flush" {
        command = "/bin/app"
        args    = ["flush", "--all"]
      }

      action "status" {
        command = "/bin/status"
      }
    }
  }
}
