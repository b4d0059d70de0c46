# Written for tests/golden.rs: HCL template directives (`%{ for }`, `%{ if }`, `~` strip markers)
# in quoted strings and in an indented heredoc.

variable "tags" {
  type    = list(string)
  default = ["cache", "redis"]
}

job "template-directives" {
  group "g" {
    task "t" {
      driver = "raw_exec"

      config {
        command = "/bin/true"
      }

      env {
        IF_ELSE  = "%{ if length(var.tags) > 1 }many%{ else }one%{ endif }"
        FOR_LIST = "%{ for t in var.tags }[${t}]%{ endfor }"
        FOR_MAP  = "%{ for k, v in { a = 1, b = 2 } }${k}=${v};%{ endfor }"
      }

      template {
        destination = "local/tags.conf"
        data        = <<-EOT
          first
          %{ for t in var.tags ~}
          tag=${upper(t)}
          %{ endfor ~}
          last
          EOT
      }
    }
  }
}
