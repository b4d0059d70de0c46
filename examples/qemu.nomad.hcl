# A virtual machine under qemu (Debian's qemu-system-x86, TCG: no KVM needed). A prestart
# raw_exec task writes a 512-byte boot sector that spins forever; the VM boots it and the
# host port of "ssh" forwards to the guest's port 22 (nothing answers in this tiny guest).
#   drover job run examples/qemu.nomad.hcl
#   drover alloc status <alloc id>
job "tiny-vm" {
  datacenters = ["*"]
  type        = "service"

  group "vm" {
    network {
      port "ssh" {}
    }

    task "make-image" {
      driver = "raw_exec"

      lifecycle {
        hook = "prestart"
      }

      config {
        command = "/bin/sh"
        args    = ["-c", "f=$NOMAD_ALLOC_DIR/data/boot.img; printf '\\353\\376' > $f; head -c 508 /dev/zero >> $f; printf '\\125\\252' >> $f"]
      }
    }

    task "vm" {
      driver = "qemu"

      config {
        image_path  = "../alloc/data/boot.img"
        accelerator = "tcg"
        port_map {
          ssh = 22
        }
      }

      resources {
        cpu    = 500
        memory = 128
      }
    }
  }
}
