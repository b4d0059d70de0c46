//! Fingerprinting: what this host is and offers, in Nomad's attribute names.
//!
//! ```text
//!  /proc/cpuinfo, /proc/meminfo, statvfs(alloc dir), uname, /etc/os-release,
//!  interfaces (getifaddrs), cgroup mount, drivers' own fingerprints
//!        └──▶ host_attributes() + node_resources() + drivers ──▶ the Node registered
//! ```
//!
//! Attributes produced: `cpu.arch`, `cpu.modelname`, `cpu.numcores`, `cpu.frequency`,
//! `cpu.totalcompute`, `cpu.usablecompute`, `cpu.reservablecores`, `memory.totalbytes`,
//! `kernel.name`, `kernel.version`, `kernel.arch`, `os.name`, `os.version`,
//! `os.cgroups.version`, `os.signals`, `unique.hostname`, `unique.network.ip-address`,
//! `unique.storage.volume`, `unique.storage.bytestotal`, `unique.storage.bytesfree`,
//! `nomad.version`, `nomad.revision`, `nomad.service_discovery`, `unique.advertise.address`,
//! and per driver `driver.<name>` = `1` plus the driver's own attributes.
//!
//! Limits: no cloud metadata, NUMA, CNI or consul/vault fingerprints; one network (the chosen
//! interface's first IPv4 address).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use drover_types::job::NetworkResource;
use drover_types::node::{NodeCpuResources, NodeDiskResources, NodeMemoryResources, NodeResources};

/// What the host looks like.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Attributes.
    pub attributes: BTreeMap<String, String>,
    /// Total compute in MHz (cores × frequency).
    pub cpu_mhz: i64,
    /// Cores.
    pub cores: i64,
    /// Memory in MB.
    pub memory_mb: i64,
    /// Free disk of the alloc dir's filesystem in MB.
    pub disk_mb: i64,
    /// The network interface used.
    pub interface: String,
    /// Its address.
    pub ip: String,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The interface holding the default route (`/proc/net/route`, destination 0), else `lo`.
pub fn default_interface() -> String {
    for line in read("/proc/net/route").lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 2 && f[1] == "00000000" {
            return f[0].to_string();
        }
    }
    "lo".to_string()
}

/// The first IPv4 address of `interface`.
pub fn interface_ip(interface: &str) -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    for a in addrs {
        if a.interface_name != interface {
            continue;
        }
        if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
            return Some(IpAddr::V4(sin.ip()).to_string());
        }
    }
    None
}

/// Fingerprints the host. `interface` = None picks the default-route interface.
pub fn host(alloc_dir: &Path, interface: Option<&str>, advertise_http: &str) -> HostFacts {
    let mut a = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        a.insert(k.to_string(), v);
    };
    // CPU.
    let cpuinfo = read("/proc/cpuinfo");
    let mut model = String::new();
    let mut mhz = 0.0f64;
    let mut processors = 0i64;
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "processor" => processors += 1,
            "model name" if model.is_empty() => model = v.trim().to_string(),
            "cpu MHz" if mhz == 0.0 => mhz = v.trim().parse().unwrap_or(0.0),
            _ => {}
        }
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or_else(|_| processors.max(1));
    let mhz = if mhz > 0.0 { mhz.round() as i64 } else { 1000 };
    let total = cores * mhz;
    let uts = nix::sys::utsname::uname().ok();
    let machine = uts
        .as_ref()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default();
    put(
        "cpu.arch",
        match machine.as_str() {
            "x86_64" => "amd64".into(),
            "aarch64" => "arm64".into(),
            m => m.to_string(),
        },
    );
    put("cpu.modelname", model);
    put("cpu.numcores", cores.to_string());
    put("cpu.frequency", mhz.to_string());
    put("cpu.totalcompute", total.to_string());
    put("cpu.usablecompute", total.to_string());
    put("cpu.reservablecores", cores.to_string());
    // Memory.
    let mem_kb: i64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    put("memory.totalbytes", (mem_kb * 1024).to_string());
    // Kernel and OS.
    if let Some(u) = &uts {
        put("kernel.name", u.sysname().to_string_lossy().to_ascii_lowercase());
        put("kernel.version", u.release().to_string_lossy().into_owned());
        put("kernel.arch", machine.clone());
    }
    let os = read("/etc/os-release");
    let field = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    put("os.name", field("ID="));
    put("os.version", field("VERSION_ID="));
    put(
        "os.cgroups.version",
        if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            "2".into()
        } else {
            "1".into()
        },
    );
    put(
        "os.signals",
        "SIGABRT,SIGALRM,SIGBUS,SIGCHLD,SIGCONT,SIGFPE,SIGHUP,SIGILL,SIGINT,SIGIO,SIGKILL,SIGPIPE,SIGPROF,SIGQUIT,SIGSEGV,SIGSTOP,SIGSYS,SIGTERM,SIGTRAP,SIGTSTP,SIGTTIN,SIGTTOU,SIGURG,SIGUSR1,SIGUSR2,SIGVTALRM,SIGWINCH,SIGXCPU,SIGXFSZ".into(),
    );
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    put("unique.hostname", hostname);
    // Storage.
    let (total_bytes, free_bytes) = match nix::sys::statvfs::statvfs(alloc_dir) {
        Ok(s) => (
            s.blocks() * s.fragment_size(),
            s.blocks_available() * s.fragment_size(),
        ),
        Err(_) => (0, 0),
    };
    put("unique.storage.volume", alloc_dir.display().to_string());
    put("unique.storage.bytestotal", total_bytes.to_string());
    put("unique.storage.bytesfree", free_bytes.to_string());
    // Network.
    let interface = interface.map(str::to_string).unwrap_or_else(default_interface);
    let ip = interface_ip(&interface).unwrap_or_else(|| "127.0.0.1".into());
    put("unique.network.ip-address", ip.clone());
    // Agent.
    put("nomad.version", env!("CARGO_PKG_VERSION").into());
    put("nomad.revision", "drover".into());
    put("nomad.service_discovery", "true".into());
    put("unique.advertise.address", advertise_http.to_string());
    HostFacts {
        attributes: a,
        cpu_mhz: total,
        cores,
        memory_mb: mem_kb / 1024,
        disk_mb: (free_bytes / (1024 * 1024)) as i64,
        interface,
        ip,
    }
}

impl HostFacts {
    /// The node's resources: compute, memory, disk, one host network, dynamic port range.
    pub fn node_resources(&self, min_port: i64, max_port: i64) -> NodeResources {
        let cidr = if self.ip.contains(':') {
            format!("{}/128", self.ip)
        } else {
            format!("{}/32", self.ip)
        };
        NodeResources {
            cpu: NodeCpuResources {
                cpu_shares: self.cpu_mhz,
                total_cpu_cores: self.cores,
                reservable_cpu_cores: (0..self.cores).collect(),
            },
            memory: NodeMemoryResources {
                memory_mb: self.memory_mb,
            },
            disk: NodeDiskResources {
                disk_mb: self.disk_mb,
            },
            networks: vec![NetworkResource {
                mode: "host".into(),
                device: self.interface.clone(),
                cidr,
                ip: self.ip.clone(),
                mbits: 1000,
                ..Default::default()
            }],
            min_dynamic_port: min_port,
            max_dynamic_port: max_port,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_described_with_nomads_attribute_names() {
        let dir = tempfile::tempdir().unwrap();
        let f = host(dir.path(), Some("lo"), "127.0.0.1:4646");
        for k in [
            "cpu.arch",
            "cpu.numcores",
            "cpu.totalcompute",
            "memory.totalbytes",
            "kernel.name",
            "kernel.version",
            "os.name",
            "os.cgroups.version",
            "unique.hostname",
            "unique.network.ip-address",
            "unique.storage.bytestotal",
            "nomad.version",
        ] {
            assert!(!f.attributes[k].is_empty(), "{k} empty");
        }
        assert_eq!(f.attributes["kernel.name"], "linux");
        assert_eq!(f.ip, "127.0.0.1");
        assert!(f.cpu_mhz >= f.cores * 100, "{f:?}");
        assert!(f.memory_mb > 100);
        let r = f.node_resources(20000, 32000);
        assert_eq!(r.networks[0].cidr, "127.0.0.1/32");
        assert_eq!(r.min_dynamic_port, 20000);
    }
}
