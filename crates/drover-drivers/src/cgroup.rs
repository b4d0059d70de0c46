//! Where the exec driver's containers live in the cgroup tree, and what the kernel recorded
//! about them.
//!
//! ```text
//!  runc cgroupsPath "/drover/<container id>"
//!    v1 / hybrid: /sys/fs/cgroup/<controller>/drover/<id>   (memory.oom_control: oom_kill N)
//!                 /sys/fs/cgroup/unified/drover/<id>        (hybrid's v2 tree, no controllers)
//!    v2:          /sys/fs/cgroup/drover/<id>                (memory.events: oom_kill N)
//! ```
//!
//! runc creates and deletes these directories; this module only reads them (OOM status after
//! the container exited, before `runc delete` removes the directory) and lists leftovers (tests
//! assert there are none). The parent `drover` directories are left in place: removing them
//! could race with a container being created.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// Which cgroup hierarchy the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy or hybrid: one hierarchy per controller.
    V1,
    /// Unified.
    V2,
}

/// The host's cgroup version (`None`: no cgroup filesystem at all).
pub fn version() -> Option<CgroupVersion> {
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        Some(CgroupVersion::V2)
    } else if root.join("memory").is_dir() || root.join("cpu").is_dir() {
        Some(CgroupVersion::V1)
    } else {
        None
    }
}

/// The `cgroupsPath` given to runc for a container.
pub fn cgroups_path(container_id: &str) -> String {
    format!("/drover/{container_id}")
}

/// Whether the kernel OOM-killed a process of the container (`oom_kill` counter > 0). Must be
/// read before the container's cgroup is deleted.
pub fn oom_killed(container_id: &str) -> bool {
    let file = match version() {
        Some(CgroupVersion::V2) => Path::new(ROOT)
            .join("drover")
            .join(container_id)
            .join("memory.events"),
        Some(CgroupVersion::V1) => Path::new(ROOT)
            .join("memory/drover")
            .join(container_id)
            .join("memory.oom_control"),
        None => return false,
    };
    std::fs::read_to_string(file)
        .map(|text| oom_kill_count(&text) > 0)
        .unwrap_or(false)
}

/// The `oom_kill N` value of a `memory.oom_control` / `memory.events` file.
pub fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("oom_kill "))
        .filter_map(|v| v.trim().parse().ok())
        .next()
        .unwrap_or(0)
}

/// Cgroup directories of the container that still exist, under any controller.
pub fn leftover_dirs(container_id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let direct = Path::new(ROOT).join("drover").join(container_id);
    if direct.exists() {
        out.push(direct);
    }
    for entry in std::fs::read_dir(ROOT).into_iter().flatten().flatten() {
        let dir = entry.path().join("drover").join(container_id);
        if dir.exists() {
            out.push(dir);
        }
    }
    out
}

/// Kills whatever is still in the container's cgroups and removes the directories (a safety
/// net for a `runc run` that was killed before it could clean up). Returns what could not be
/// removed.
pub fn remove(container_id: &str) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for dir in leftover_dirs(container_id) {
        let mut removed = false;
        for _ in 0..50 {
            for pid in std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                removed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !removed {
            left.push(dir);
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oom_kill_from_v1_and_v2_files() {
        assert_eq!(oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), 2);
        assert_eq!(oom_kill_count("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 1);
        assert_eq!(oom_kill_count("oom_kill_disable 0\n"), 0);
    }
}
