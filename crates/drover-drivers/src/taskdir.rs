//! The allocation directory layout every driver and the client share (Nomad's `allocdir`).
//!
//! ```text
//!  <alloc_dir>/                0755  one per allocation (`<data_dir>/alloc/<alloc id>`)
//!    alloc/                    0755  shared by the allocation's tasks (`/alloc` in a chroot)
//!      data/ logs/ tmp/        0777  logs/ holds `<task>.stdout.<N>` / `<task>.stderr.<N>`
//!    <task>/                   0777  the task dir (the root of an exec task)
//!      local/                  0777  NOMAD_TASK_DIR
//!      secrets/                0777  NOMAD_SECRETS_DIR (a plain directory here, no tmpfs)
//!      tmp/                    1777  sticky, like /tmp
//! ```
//!
//! Modes are set explicitly, so the agent's umask does not matter. [`build`] is idempotent (an
//! agent restart or a task restart builds again over what exists) and never removes files.
//! [`destroy`] removes the whole allocation directory; it refuses when something is still
//! mounted below it, so a leaked bind mount is never followed into the host filesystem.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn dir(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Creates the layout for `tasks` under `alloc_dir` (idempotent).
pub fn build(alloc_dir: &Path, tasks: &[&str]) -> io::Result<()> {
    dir(alloc_dir, 0o755)?;
    let shared = alloc_dir.join("alloc");
    dir(&shared, 0o755)?;
    for sub in ["data", "logs", "tmp"] {
        dir(&shared.join(sub), 0o777)?;
    }
    for task in tasks {
        if task.is_empty() || task.contains('/') || *task == "alloc" || *task == "." || *task == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid task name for a directory: {task:?}"),
            ));
        }
        let task_dir = alloc_dir.join(task);
        dir(&task_dir, 0o777)?;
        dir(&task_dir.join("local"), 0o777)?;
        dir(&task_dir.join("secrets"), 0o777)?;
        dir(&task_dir.join("tmp"), 0o1777)?;
    }
    Ok(())
}

/// Mount points at or below `path` (from `/proc/self/mountinfo`).
pub fn mounts_below(path: &Path) -> Vec<String> {
    let Ok(canon) = path.canonicalize() else {
        return Vec::new();
    };
    let prefix = canon.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

/// Removes the allocation directory. A missing directory is fine; a mount below it is an error.
pub fn destroy(alloc_dir: &Path) -> io::Result<()> {
    let mounts = mounts_below(alloc_dir);
    if !mounts.is_empty() {
        return Err(io::Error::other(format!(
            "refusing to remove {}: still mounted: {}",
            alloc_dir.display(),
            mounts.join(", ")
        )));
    }
    match std::fs::remove_dir_all(alloc_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn builds_the_layout_with_modes_and_destroys_it() {
        let root = tempfile::tempdir().unwrap();
        let alloc = root.path().join("a1");
        build(&alloc, &["web", "sidecar"]).unwrap();
        build(&alloc, &["web"]).unwrap(); // idempotent
        assert_eq!(mode(&alloc), 0o755);
        assert_eq!(mode(&alloc.join("alloc")), 0o755);
        for sub in ["data", "logs", "tmp"] {
            assert_eq!(mode(&alloc.join("alloc").join(sub)), 0o777, "{sub}");
        }
        for task in ["web", "sidecar"] {
            let t = alloc.join(task);
            assert_eq!(mode(&t), 0o777);
            assert_eq!(mode(&t.join("local")), 0o777);
            assert_eq!(mode(&t.join("secrets")), 0o777);
            assert_eq!(mode(&t.join("tmp")), 0o1777);
        }
        assert!(build(&alloc, &["../x"]).is_err());
        destroy(&alloc).unwrap();
        assert!(!alloc.exists());
        destroy(&alloc).unwrap();
    }
}
