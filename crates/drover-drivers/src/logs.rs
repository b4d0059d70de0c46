//! Rotating log files: what a task writes to stdout and stderr ends up in
//! `<alloc dir>/alloc/logs/<task>.stdout.<N>` and `<task>.stderr.<N>`, N from 0 upwards.
//!
//! ```text
//!  task stdout ──▶ RotatingWriter ──▶ web.stdout.0 (full) → web.stdout.1 (full) → web.stdout.2 …
//!                                     (more than max_files: the lowest index is deleted)
//! ```
//!
//! A file is cut when the next write would pass `max_file_size`; when the write holds a newline
//! that fits, the cut is made after it so lines stay whole. A writer opened again (agent or task
//! restart) continues in the highest existing index. Readers (`alloc logs`) list the files with
//! [`log_files`] and read them in index order.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::LogSettings;

/// Appends to `<dir>/<task>.<stream>.<N>`, rotating by size and count.
#[derive(Debug)]
pub struct RotatingWriter {
    dir: PathBuf,
    prefix: String,
    settings: LogSettings,
    index: u32,
    file: File,
    size: u64,
}

impl RotatingWriter {
    /// Opens the writer for `task`'s `stream` (`stdout` or `stderr`) in `dir`, continuing the
    /// highest existing file.
    pub fn open(dir: &Path, task: &str, stream: &str, settings: LogSettings) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let prefix = format!("{task}.{stream}.");
        let index = list(dir, &prefix).last().map(|(i, _)| *i).unwrap_or(0);
        let path = dir.join(format!("{prefix}{index}"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingWriter {
            dir: dir.to_path_buf(),
            prefix,
            settings: LogSettings {
                max_files: settings.max_files.max(1),
                max_file_size: settings.max_file_size.max(1),
            },
            index,
            file,
            size,
        })
    }

    /// Writes all of `buf`, rotating as needed.
    pub fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let room = self.settings.max_file_size.saturating_sub(self.size) as usize;
            if room == 0 {
                self.rotate()?;
                continue;
            }
            let take = if buf.len() <= room {
                buf.len()
            } else {
                // Cut after the last newline that fits, unless the file is empty (a line longer
                // than a whole file is split anyway).
                match buf[..room].iter().rposition(|b| *b == b'\n') {
                    Some(nl) => nl + 1,
                    None if self.size > 0 && buf.iter().position(|b| *b == b'\n').is_some() => 0,
                    None => room,
                }
            };
            if take == 0 {
                self.rotate()?;
                continue;
            }
            self.file.write_all(&buf[..take])?;
            self.size += take as u64;
            buf = &buf[take..];
        }
        Ok(())
    }

    /// The file being written now.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(format!("{}{}", self.prefix, self.index))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.index += 1;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.current_path())?;
        self.size = 0;
        let files = list(&self.dir, &self.prefix);
        let excess = files.len().saturating_sub(self.settings.max_files as usize);
        for (_, path) in files.into_iter().take(excess) {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }
}

/// The log files of `task`'s `stream` in `dir`, oldest (lowest index) first.
pub fn log_files(dir: &Path, task: &str, stream: &str) -> Vec<(u32, PathBuf)> {
    list(dir, &format!("{task}.{stream}."))
}

fn list(dir: &Path, prefix: &str) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let idx = name.to_str()?.strip_prefix(prefix)?.parse::<u32>().ok()?;
            Some((idx, e.path()))
        })
        .collect();
    out.sort_by_key(|(i, _)| *i);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(files: u32, size: u64) -> LogSettings {
        LogSettings {
            max_files: files,
            max_file_size: size,
        }
    }

    #[test]
    fn rotates_at_line_boundaries_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = RotatingWriter::open(dir.path(), "web", "stdout", settings(3, 10)).unwrap();
        for i in 0..10 {
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        let files = log_files(dir.path(), "web", "stdout");
        assert_eq!(files.len(), 3, "{files:?}");
        assert_eq!(files.last().unwrap().0, 9);
        for (_, p) in &files {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.len() <= 10);
            assert!(text.ends_with('\n'), "cut mid-line: {text:?}");
        }
        assert_eq!(std::fs::read_to_string(&files[2].1).unwrap(), "line 9\n");
    }

    #[test]
    fn reopening_continues_the_highest_file_and_long_lines_are_split() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut w = RotatingWriter::open(dir.path(), "t", "stderr", settings(5, 8)).unwrap();
            w.write_all(b"0123456789abcdef").unwrap();
        }
        let files = log_files(dir.path(), "t", "stderr");
        assert_eq!(files.len(), 2);
        let mut w = RotatingWriter::open(dir.path(), "t", "stderr", settings(5, 8)).unwrap();
        assert_eq!(w.current_path(), files[1].1);
        w.write_all(b"x").unwrap();
        assert_eq!(std::fs::read_to_string(&files[1].1).unwrap(), "89abcdef");
        let files = log_files(dir.path(), "t", "stderr");
        assert_eq!(std::fs::read_to_string(&files[2].1).unwrap(), "x");
    }
}
