# Written for tests/golden.rs: variables (typed, defaulted, set with -var), locals, functions,
# for expressions, conditionals, escapes, an indented heredoc, dynamic blocks, and
# runtime interpolations that must pass through untouched. Run with -var env=staging -var replicas=3.

variable "image" {
  type    = string
  default = "redis:7"
}

variable "replicas" {
  type    = number
  default = 2
}

variable "env" {
  type = string
}

variable "ports" {
  type = map(number)
  default = {
    db      = 6379
    metrics = 9121
  }
}

variable "tags" {
  type    = list(string)
  default = ["cache", "redis"]
}

locals {
  name     = "cache-${var.env}"
  tag_list = concat(var.tags, [upper(var.env)])
  memory   = max(128, var.replicas * 100)
}

job "hcl-features" {
  name        = local.name
  datacenters = [for dc in ["a", "b"] : "dc-${dc}"]

  meta {
    joined    = join(",", var.tags)
    image     = var.image
    formatted = format("%s-%03d", "node", 7)
    mode      = var.replicas > 1 ? "ha" : "single"
    db_port   = lookup(var.ports, "db", 0)
    title     = title("hello world")
    replaced  = replace("a-b-c", "-", "_")
    digest    = sha256("x")
    escaped   = "$${NOMAD_ALLOC_ID}"
    runtime   = "${NOMAD_ALLOC_ID}"
  }

  group "cache" {
    count = var.replicas

    network {
      dynamic "port" {
        for_each = var.ports
        labels   = [port.key]

        content {
          to = port.value
        }
      }
    }

    task "redis" {
      driver = "docker"

      config {
        image = var.image
        args  = ["--port", "${NOMAD_PORT_db}", "--kernel", "${attr.kernel.name}"]

        dynamic "mount" {
          for_each = ["/data", "/logs"]

          content {
            type   = "volume"
            target = mount.value
          }
        }
      }

      env {
        ENV_UPPER = upper(var.env)
        NODE      = "${node.unique.name}"
        DC        = "${node.datacenter}"
        RACK      = "${meta.rack}"
        ALLOC     = "${NOMAD_ALLOC_ID}"
      }

      template {
        data        = <<-EOT
          name=${local.name}
          alloc={{ env "NOMAD_ALLOC_ID" }}
            tags=${join(",", local.tag_list)}
          EOT
        destination = "local/app.conf"
      }

      resources {
        memory = local.memory
      }

      service {
        name = "${local.name}-svc"
        tags = local.tag_list
        port = "db"
      }
    }
  }
}
