# A job with input variables, for trying -var, -var-file and NOMAD_VAR_*:
#
#   drover job run -output -var 'count=3' examples/variables.nomad.hcl
#   drover job run -output -var-file examples/prod.vars examples/variables.nomad.hcl
#   NOMAD_VAR_datacenters='["dc2"]' drover job validate examples/variables.nomad.hcl
variable "count" {
  type    = number
  default = 1
  validation {
    condition     = var.count > 0 && var.count <= 20
    error_message = "count must be between 1 and 20"
  }
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "greeting" {
  type    = string
  default = "hello"
}

locals {
  # ${NOMAD_ALLOC_INDEX} is filled in on the client when the task starts.
  message = "${upper(var.greeting)} from allocation ${NOMAD_ALLOC_INDEX}"
}

job "greeter" {
  datacenters = var.datacenters

  group "greeter" {
    count = var.count

    task "say" {
      driver = "raw_exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "while true; do echo '${local.message}'; sleep 5; done"]
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
