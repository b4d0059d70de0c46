# A web server in a container. No registry is needed: build the local test image first with
#   scripts/build-test-images.sh          (makes drover-test/busybox:local from busybox-static)
#   drover job run examples/docker.nomad.hcl
#   drover alloc status <alloc id>        → the host port of "http"; curl 127.0.0.1:<port>
#   docker ps                             → a container named web-<alloc id>
job "web" {
  datacenters = ["*"]
  type        = "service"

  group "web" {
    network {
      port "http" {
        to = 8080
      }
    }

    task "web" {
      driver = "docker"

      config {
        image   = "drover-test/busybox:local"
        command = "/bin/sh"
        args    = ["-c", "mkdir -p /www && echo \"hello from $NOMAD_ALLOC_ID\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports   = ["http"]
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
