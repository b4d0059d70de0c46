# A batch job run by exec: isolated by runc (needs root and Debian's runc). The task has its own
# PID namespace and its task directory as /; it runs as nobody.
#   sudo drover agent -dev        (exec needs root)
#   drover job run examples/exec.nomad.hcl
#   drover alloc logs <alloc id>  → only the task's own processes, and the chroot's /
job "isolated" {
  datacenters = ["*"]
  type        = "batch"

  group "look" {
    task "look" {
      driver = "exec"

      config {
        command = "/bin/sh"
        args    = ["-c", "echo '== processes'; ps -e; echo '== /'; ls /; echo '== user'; id"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
