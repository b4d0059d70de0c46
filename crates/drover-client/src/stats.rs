//! Host statistics for `GET /v1/client/stats` (`nomad node status` shows them as "Host Resource
//! Utilization"), read from `/proc` and `statvfs`, in Nomad's `HostStats` shape.
//!
//! ```text
//!  /proc/meminfo ─────────────▶ Memory {Total, Available, Used, Free}
//!  /proc/stat ─ 100 ms ─ /proc/stat ─▶ CPU [{CPU, User, System, Idle, TotalPercent, TotalTicks}]
//!                                      CPUTicksConsumed (MHz in use, all cores)
//!  /proc/mounts + statvfs ────▶ DiskStats [{Device, Mountpoint, Size, Used, Available, …}]
//!  statvfs(alloc dir) ────────▶ AllocDirStats
//!  /proc/uptime ──────────────▶ Uptime (seconds)
//! ```
//!
//! CPU percentages need two samples of the kernel's tick counters; [`host_stats`] takes them
//! 100 ms apart, so a call costs that long. Percentages are of one core (Nomad's convention:
//! `TotalPercent` of each CPU line is 0–100; `CPUTicksConsumed` is MHz across all cores).
//!
//! Limits: Linux only (elsewhere the fields stay zero); disks are the mounted block devices
//! (`/dev/…`), pseudo file systems are skipped; no device statistics.

use std::path::Path;
use std::time::Duration;

pub use drover_types::stats::{HostCpuStats, HostDiskStats, HostMemoryStats, HostStats};

/// One line of `/proc/stat` (`cpu0 user nice system idle iowait irq softirq steal …`), ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct CpuTimes {
    user: u64,
    system: u64,
    idle: u64,
    total: u64,
}

/// Per-CPU tick counters (`cpu0`, `cpu1`, …; the aggregate `cpu` line is skipped).
fn parse_proc_stat(text: &str) -> Vec<(String, CpuTimes)> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?.to_string();
            let v: Vec<u64> = it.map(|x| x.parse().unwrap_or(0)).collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            let user = at(0) + at(1);
            let system = at(2) + at(5) + at(6);
            let idle = at(3) + at(4);
            let total = user + system + idle + at(7);
            Some((
                name,
                CpuTimes {
                    user,
                    system,
                    idle,
                    total,
                },
            ))
        })
        .collect()
}

/// Percentages between two samples; `mhz_per_core` turns the busy share into MHz.
fn cpu_percentages(
    before: &[(String, CpuTimes)],
    after: &[(String, CpuTimes)],
    mhz_per_core: f64,
) -> Vec<HostCpuStats> {
    after
        .iter()
        .map(|(name, b)| {
            let a = before
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .unwrap_or_default();
            let total = b.total.saturating_sub(a.total) as f64;
            let pct = |x: u64, y: u64| {
                if total > 0.0 {
                    x.saturating_sub(y) as f64 * 100.0 / total
                } else {
                    0.0
                }
            };
            let user = pct(b.user, a.user);
            let system = pct(b.system, a.system);
            let idle = pct(b.idle, a.idle);
            let busy = (100.0 - idle).clamp(0.0, 100.0);
            let busy = if total > 0.0 { busy } else { 0.0 };
            HostCpuStats {
                cpu: name.clone(),
                user,
                system,
                idle,
                total_percent: busy,
                total_ticks: busy / 100.0 * mhz_per_core,
            }
        })
        .collect()
}

/// `/proc/meminfo` (kB lines) → bytes.
fn parse_meminfo(text: &str) -> HostMemoryStats {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    let total = get("MemTotal").unwrap_or(0);
    let free = get("MemFree").unwrap_or(0);
    let available = get("MemAvailable").unwrap_or(free);
    HostMemoryStats {
        total,
        available,
        used: total.saturating_sub(available),
        free,
    }
}

/// Mounted block devices from `/proc/mounts` (first mount of each device wins).
fn parse_mounts(text: &str) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let (Some(dev), Some(mnt)) = (it.next(), it.next()) else {
            continue;
        };
        if !dev.starts_with("/dev/") || seen.iter().any(|d: &String| d == dev) {
            continue;
        }
        seen.push(dev.to_string());
        // /proc/mounts escapes spaces and tabs as octal.
        let mnt = mnt.replace("\\040", " ").replace("\\011", "\t");
        out.push((dev.to_string(), mnt));
    }
    out
}

/// Usage of the file system at `path`.
pub fn disk_stats(device: &str, path: &Path) -> Option<HostDiskStats> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = s.fragment_size() as u64;
    let size = s.blocks() as u64 * frag;
    let free = s.blocks_free() as u64 * frag;
    let available = s.blocks_available() as u64 * frag;
    let used = size.saturating_sub(free);
    let inodes = s.files() as u64;
    let inodes_used = inodes.saturating_sub(s.files_free() as u64);
    let pct = |x: u64, of: u64| if of > 0 { x as f64 * 100.0 / of as f64 } else { 0.0 };
    Some(HostDiskStats {
        device: device.to_string(),
        mountpoint: path.display().to_string(),
        size,
        used,
        available,
        used_percent: pct(used, used + available),
        inodes_used_percent: pct(inodes_used, inodes),
    })
}

/// Samples the host: memory, CPU (two samples 100 ms apart), disks, the allocation directory's
/// file system, uptime. `cpu_total_mhz` is the node's CPU capacity (all cores), used to turn
/// percentages into MHz.
pub async fn host_stats(alloc_dir: &Path, cpu_total_mhz: f64) -> HostStats {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let before = parse_proc_stat(&read("/proc/stat"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = parse_proc_stat(&read("/proc/stat"));
    let cores = after.len().max(1) as f64;
    let cpu = cpu_percentages(&before, &after, cpu_total_mhz / cores);
    let cpu_ticks_consumed = cpu.iter().map(|c| c.total_ticks).sum();
    let disks = parse_mounts(&read("/proc/mounts"))
        .into_iter()
        .filter_map(|(dev, mnt)| disk_stats(&dev, Path::new(&mnt)))
        .collect();
    let uptime = read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|s| s as u64)
        .unwrap_or(0);
    HostStats {
        memory: parse_meminfo(&read("/proc/meminfo")),
        cpu,
        disk_stats: disks,
        alloc_dir_stats: disk_stats("", alloc_dir),
        device_stats: Vec::new(),
        uptime,
        timestamp: drover_drivers::now_nanos(),
        cpu_ticks_consumed,
    }
}

impl crate::Client {
    /// [`host_stats`] for this client's node (its allocation directory and CPU capacity).
    pub async fn host_stats(&self) -> HostStats {
        let mhz = self
            .node()
            .node_resources
            .map(|r| r.cpu.cpu_shares as f64)
            .unwrap_or(0.0);
        host_stats(&self.config().alloc_dir, mhz).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_percentages() {
        let a = parse_proc_stat("cpu  10 0 10 80 0 0 0 0\ncpu0 10 0 10 80 0 0 0 0 0 0\nintr 5\n");
        let b = parse_proc_stat("cpu  0\ncpu0 40 10 20 130 0 0 0 0 0 0\n");
        assert_eq!(a.len(), 1, "the aggregate line is skipped");
        let c = cpu_percentages(&a, &b, 2000.0);
        assert_eq!(c[0].cpu, "cpu0");
        // 100 ticks passed: user 40, system 10, idle 50.
        assert!((c[0].user - 40.0).abs() < 1e-9);
        assert!((c[0].system - 10.0).abs() < 1e-9);
        assert!((c[0].idle - 50.0).abs() < 1e-9);
        assert!((c[0].total_percent - 50.0).abs() < 1e-9);
        assert!((c[0].total_ticks - 1000.0).abs() < 1e-9);
        let idle = cpu_percentages(&a, &a, 2000.0);
        assert_eq!(idle[0].total_percent, 0.0, "no ticks passed: nothing is busy");
    }

    #[test]
    fn meminfo_and_mounts() {
        let m = parse_meminfo("MemTotal:  1000 kB\nMemFree:  200 kB\nMemAvailable:  600 kB\n");
        assert_eq!(
            m,
            HostMemoryStats {
                total: 1_024_000,
                available: 614_400,
                used: 409_600,
                free: 204_800
            }
        );
        let mounts = parse_mounts(
            "proc /proc proc rw 0 0\n/dev/sda1 / ext4 rw 0 0\n/dev/sda1 /var/lib/docker ext4 rw 0 0\n/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n",
        );
        assert_eq!(
            mounts,
            vec![
                ("/dev/sda1".to_string(), "/".to_string()),
                ("/dev/sdb1".to_string(), "/mnt/my disk".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn host_stats_from_this_machine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = host_stats(dir.path(), 4000.0).await;
        let v = serde_json::to_value(&s).expect("encode");
        for key in [
            "Memory",
            "CPU",
            "DiskStats",
            "AllocDirStats",
            "Uptime",
            "Timestamp",
            "CPUTicksConsumed",
        ] {
            assert!(v.get(key).is_some(), "{key} missing from {v}");
        }
        if cfg!(target_os = "linux") {
            assert!(s.memory.total > 0 && s.memory.used <= s.memory.total);
            assert!(!s.cpu.is_empty());
            assert!(s.uptime > 0);
            assert!(s.alloc_dir_stats.is_some_and(|d| d.size > 0));
        }
    }
}
