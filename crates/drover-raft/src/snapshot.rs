//! Snapshot files in `<data_dir>/raft/snapshots/`.
//!
//! ```text
//!  snap-<index:020>-<term:020>-<seq:020>.snap
//!  ┌────────────┬────────────┬──────────────────┬────────────┬──────────────┬─────────────┐
//!  │ "DRVSNAP1" │ meta_len   │ meta (JSON:      │ data_len   │ data (state  │ checksum    │
//!  │  8 bytes   │ u32 LE     │  SnapshotMeta)   │ u64 LE     │  to_bytes)   │ u64 LE FNV1a│
//!  └────────────┴────────────┴──────────────────┴────────────┴──────────────┴─────────────┘
//!  write: <name>.tmp ──fsync──▶ rename ──▶ fsync(dir) ──▶ delete all but the newest KEEP
//! ```
//!
//! The checksum covers everything before it, so a torn or altered file is detected and
//! reported by name. The data part is exactly what travels to followers as snapshot data
//! (`StateSnapshot::to_bytes`); the meta travels beside it in openraft's install request.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::types::SnapshotMeta;

const MAGIC: &[u8; 8] = b"DRVSNAP1";
const SUFFIX: &str = ".snap";
/// How many snapshot files are kept.
pub(crate) const KEEP: usize = 2;

/// A snapshot file found in the directory, ordered by (index, term, seq).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SnapshotFile {
    pub index: u64,
    pub term: u64,
    pub seq: u64,
    pub path: PathBuf,
}

/// FNV-1a, 64 bit: cheap and enough to detect torn writes and bit rot (not an adversary).
fn checksum(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The file name for a snapshot.
pub(crate) fn file_name(index: u64, term: u64, seq: u64) -> String {
    format!("snap-{index:020}-{term:020}-{seq:020}{SUFFIX}")
}

fn parse_name(name: &str) -> Option<(u64, u64, u64)> {
    let rest = name.strip_prefix("snap-")?.strip_suffix(SUFFIX)?;
    let mut it = rest.split('-');
    let index = it.next()?.parse().ok()?;
    let term = it.next()?.parse().ok()?;
    let seq = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some((index, term, seq))
}

/// Snapshot files in `dir`, newest first. Leftover `.tmp` files (a crash while writing) are
/// removed.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<SnapshotFile>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        if let Some((index, term, seq)) = parse_name(name) {
            out.push(SnapshotFile {
                index,
                term,
                seq,
                path: entry.path(),
            });
        }
    }
    out.sort();
    out.reverse();
    Ok(out)
}

/// Writes a snapshot durably: tmp file, fsync, rename, fsync of the directory. Then removes all
/// but the newest [`KEEP`] files. Returns the final path.
pub(crate) fn write(dir: &Path, name: &str, meta: &SnapshotMeta, data: &[u8]) -> io::Result<PathBuf> {
    let meta_json = serde_json::to_vec(meta).map_err(io::Error::other)?;
    let meta_len = u32::try_from(meta_json.len()).map_err(io::Error::other)?;
    let meta_len = meta_len.to_le_bytes();
    let data_len = (data.len() as u64).to_le_bytes();
    let sum = checksum(&[MAGIC, &meta_len, &meta_json, &data_len, data]).to_le_bytes();

    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        for part in [&MAGIC[..], &meta_len, &meta_json, &data_len, data, &sum] {
            f.write_all(part)?;
        }
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    prune(dir)?;
    Ok(path)
}

/// Removes all but the newest [`KEEP`] snapshot files.
pub(crate) fn prune(dir: &Path) -> io::Result<()> {
    for old in list(dir)?.into_iter().skip(KEEP) {
        fs::remove_file(&old.path)?;
    }
    Ok(())
}

/// Reads and verifies a snapshot file. The error says what is wrong (the caller names the file).
pub(crate) fn read(path: &Path) -> Result<(SnapshotMeta, Vec<u8>), String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    decode(&bytes)
}

fn take<'a>(buf: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err(format!("truncated file: {what} missing"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn decode(bytes: &[u8]) -> Result<(SnapshotMeta, Vec<u8>), String> {
    let mut buf = bytes;
    if take(&mut buf, 8, "magic")? != MAGIC {
        return Err("not a drover snapshot (bad magic)".into());
    }
    let mut n4 = [0u8; 4];
    n4.copy_from_slice(take(&mut buf, 4, "meta length")?);
    let meta_len = u32::from_le_bytes(n4) as usize;
    let meta_json = take(&mut buf, meta_len, "meta")?;
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(take(&mut buf, 8, "data length")?);
    let data_len =
        usize::try_from(u64::from_le_bytes(n8)).map_err(|_| "data length too large".to_string())?;
    let data = take(&mut buf, data_len, "data")?;
    n8.copy_from_slice(take(&mut buf, 8, "checksum")?);
    if !buf.is_empty() {
        return Err(format!("{} unexpected trailing bytes", buf.len()));
    }
    let body_len = bytes.len() - 8;
    if checksum(&[&bytes[..body_len]]) != u64::from_le_bytes(n8) {
        return Err("checksum mismatch (torn write or corruption)".into());
    }
    let meta: SnapshotMeta = serde_json::from_slice(meta_json).map_err(|e| format!("bad meta: {e}"))?;
    Ok((meta, data.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_index_then_term_then_seq() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, t, s) in [(5, 1, 9), (12, 1, 1), (12, 2, 0), (7, 3, 3)] {
            fs::write(dir.path().join(file_name(i, t, s)), b"x").expect("write");
        }
        fs::write(dir.path().join("junk.txt"), b"x").expect("write");
        fs::write(dir.path().join("snap-1.snap.tmp"), b"x").expect("write");
        let l = list(dir.path()).expect("list");
        let keys: Vec<_> = l.iter().map(|f| (f.index, f.term, f.seq)).collect();
        assert_eq!(keys, vec![(12, 2, 0), (12, 1, 1), (7, 3, 3), (5, 1, 9)]);
        assert!(
            !dir.path().join("snap-1.snap.tmp").exists(),
            "tmp files are cleaned"
        );
    }

    #[test]
    fn round_trip_and_corruption_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = SnapshotMeta {
            snapshot_id: "1-10-0".into(),
            ..Default::default()
        };
        let path = write(dir.path(), &file_name(10, 1, 0), &meta, b"hello state").expect("write");
        let (m, d) = read(&path).expect("read");
        assert_eq!(m, meta);
        assert_eq!(d, b"hello state");

        let mut bytes = fs::read(&path).expect("read");
        let n = bytes.len();
        bytes[n - 12] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        let err = read(&path).expect_err("corrupt");
        assert!(err.contains("checksum"), "{err}");

        fs::write(&path, &bytes[..20]).expect("write");
        let err = read(&path).expect_err("truncated");
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn keeps_the_newest_two() {
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = SnapshotMeta::default();
        for i in 1..=4 {
            write(dir.path(), &file_name(i * 10, 1, i), &meta, b"d").expect("write");
        }
        let l = list(dir.path()).expect("list");
        assert_eq!(l.iter().map(|f| f.index).collect::<Vec<_>>(), vec![40, 30]);
    }
}
