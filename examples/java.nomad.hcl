# Java on exec's isolation (needs root, runc and a JDK). A prestart raw_exec task writes a
# single-file program into the shared alloc dir; java runs it with the source launcher.
#   drover job run examples/java.nomad.hcl
#   drover alloc logs <alloc id> hello
job "hello-java" {
  datacenters = ["*"]
  type        = "batch"

  group "java" {
    task "write-source" {
      driver = "raw_exec"

      lifecycle {
        hook = "prestart"
      }

      config {
        command = "/bin/sh"
        args    = ["-c", "printf 'public class Hello { public static void main(String[] a) { System.out.println(\"hello from java \" + System.getProperty(\"java.version\")); } }\\n' > $NOMAD_ALLOC_DIR/data/Hello.java"]
      }
    }

    task "hello" {
      driver = "java"

      config {
        class       = "/alloc/data/Hello.java"
        jvm_options = ["-Xmx64m", "-Xss512k"]
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
