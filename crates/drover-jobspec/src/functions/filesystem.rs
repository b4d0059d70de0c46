//! Filesystem functions: `abspath`, `basename`, `dirname`, `file`, `filebase64`, `fileexists`,
//! `fileset`, `pathexpand`.
//!
//! Relative paths resolve against the directory set with [`set_base_dir`] (normally the
//! directory of the job file), or against the process working directory when none is set.

use super::{MAX_COLLECTION_LEN, MAX_STRING_LEN, string_arg};
use base64::Engine as _;
use hcl::Value;
use std::cell::Cell;
use std::io::Read as _;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

thread_local! {
    static BASE_DIR: Cell<Option<PathBuf>> = const { Cell::new(None) };
}

/// Restores the previous base directory of the current thread when dropped.
///
/// Returned by [`set_base_dir`]; it is deliberately not `Send` because it restores a
/// thread-local value.
#[derive(Debug)]
#[must_use = "the base directory is reset as soon as the guard is dropped"]
pub struct BaseDirGuard {
    previous: Option<PathBuf>,
    _not_send: PhantomData<std::rc::Rc<()>>,
}

impl Drop for BaseDirGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // Fails only while the thread is being torn down, when there is nothing to restore.
        let _ = BASE_DIR.try_with(|cell| cell.set(previous));
    }
}

/// Sets the directory that file functions resolve relative paths against, for the current thread,
/// and returns a guard that restores the previous value on drop.
pub fn set_base_dir(dir: PathBuf) -> BaseDirGuard {
    let previous = BASE_DIR.try_with(|cell| cell.replace(Some(dir))).unwrap_or(None);
    BaseDirGuard {
        previous,
        _not_send: PhantomData,
    }
}

/// The current thread's base directory, if one is set.
fn base_dir() -> Option<PathBuf> {
    BASE_DIR
        .try_with(|cell| {
            let current = cell.take();
            let copy = current.clone();
            cell.set(current);
            copy
        })
        .ok()
        .flatten()
}

/// Lexically cleans a slash-separated path like Go's `path/filepath.Clean`.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn path_text(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

/// Expands a leading `~` to the user's home directory.
fn expand_home(f: &str, path: &str) -> Result<String, String> {
    let Some(rest) = path.strip_prefix('~') else {
        return Ok(path.to_string());
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(format!(
            "{f}: cannot expand user-specific home directory in {path:?}"
        ));
    }
    let home = std::env::var("HOME")
        .ok()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            format!("{f}: cannot expand {path:?}: the home directory is unknown (HOME is not set)")
        })?;
    Ok(format!("{home}{rest}"))
}

/// Resolves a user supplied path: `~` expansion, then relative paths against the base dir.
fn resolve(f: &str, path: &str) -> Result<PathBuf, String> {
    let expanded = expand_home(f, path)?;
    let p = PathBuf::from(&expanded);
    let joined = if p.is_absolute() {
        p
    } else {
        match base_dir() {
            Some(base) => base.join(p),
            None => p,
        }
    };
    Ok(PathBuf::from(clean(&path_text(&joined))))
}

pub(super) fn pathexpand(args: &[Value]) -> Result<Value, String> {
    let path = string_arg("pathexpand", args, 0)?;
    expand_home("pathexpand", &path).map(Value::String)
}

pub(super) fn abspath(args: &[Value]) -> Result<Value, String> {
    let path = string_arg("abspath", args, 0)?;
    let p = PathBuf::from(&path);
    let joined = if p.is_absolute() {
        p
    } else {
        let base = base_dir().unwrap_or_else(|| PathBuf::from("."));
        let base = if base.is_absolute() {
            base
        } else {
            let cwd = std::env::current_dir()
                .map_err(|e| format!("abspath: cannot determine the current directory: {e}"))?;
            cwd.join(base)
        };
        base.join(p)
    };
    Ok(Value::String(clean(&path_text(&joined))))
}

/// `basename(path)`: the last element of a path, like Go's `filepath.Base`.
pub(super) fn basename(args: &[Value]) -> Result<Value, String> {
    let path = string_arg("basename", args, 0)?;
    if path.is_empty() {
        return Ok(Value::from("."));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(Value::from("/"));
    }
    let base = trimmed.rsplit('/').next().unwrap_or(trimmed);
    Ok(Value::from(base))
}

/// `dirname(path)`: everything but the last element of a path, like Go's `filepath.Dir`.
pub(super) fn dirname(args: &[Value]) -> Result<Value, String> {
    let path = string_arg("dirname", args, 0)?;
    let dir = match path.rfind('/') {
        Some(i) => path.get(..=i).unwrap_or_default(),
        None => "",
    };
    Ok(Value::String(clean(dir)))
}

/// Reads a whole file (at most [`MAX_STRING_LEN`] bytes).
fn read_file(f: &str, path: &str) -> Result<(PathBuf, Vec<u8>), String> {
    let p = resolve(f, path)?;
    let shown = path_text(&p);
    let meta = match std::fs::metadata(&p) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{f}: no file exists at {shown:?}"));
        }
        Err(e) => return Err(format!("{f}: cannot read {shown:?}: {e}")),
    };
    if meta.is_dir() {
        return Err(format!("{f}: {shown:?} is a directory, not a file"));
    }
    let file = std::fs::File::open(&p).map_err(|e| format!("{f}: cannot open {shown:?}: {e}"))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(MAX_STRING_LEN)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{f}: cannot read {shown:?}: {e}"))?;
    if bytes.len() > MAX_STRING_LEN {
        return Err(format!("{f}: {shown:?} is larger than {MAX_STRING_LEN} bytes"));
    }
    Ok((p, bytes))
}

pub(super) fn file(args: &[Value]) -> Result<Value, String> {
    let path = string_arg("file", args, 0)?;
    let (p, bytes) = read_file("file", &path)?;
    String::from_utf8(bytes).map(Value::String).map_err(|_| {
        format!(
            "file: the contents of {:?} are not valid UTF-8; use filebase64 to read binary files",
            path_text(&p)
        )
    })
}

pub(super) fn filebase64(args: &[Value]) -> Result<Value, String> {
    let path = string_arg("filebase64", args, 0)?;
    let (_, bytes) = read_file("filebase64", &path)?;
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

pub(super) fn fileexists(args: &[Value]) -> Result<Value, String> {
    let path = string_arg("fileexists", args, 0)?;
    let p = resolve("fileexists", &path)?;
    let shown = path_text(&p);
    match std::fs::metadata(&p) {
        Ok(meta) if meta.is_file() => Ok(Value::Bool(true)),
        Ok(meta) if meta.is_dir() => Err(format!(
            "fileexists: {shown:?} exists but is a directory, not a regular file"
        )),
        Ok(_) => Err(format!("fileexists: {shown:?} exists but is not a regular file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Bool(false)),
        Err(e) => Err(format!("fileexists: cannot inspect {shown:?}: {e}")),
    }
}

// --- glob matching for fileset -----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Compiles one path segment of a glob pattern.
fn compile_segment(seg: &str) -> Result<Vec<Tok>, String> {
    let bad = || format!("fileset: invalid pattern segment {seg:?}");
    let chars: Vec<char> = seg.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::AnyChar),
            '\\' => {
                let &next = chars.get(i).ok_or_else(bad)?;
                i += 1;
                toks.push(Tok::Lit(next));
            }
            '[' => {
                let negated = matches!(chars.get(i), Some('^' | '!'));
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let mut lo = *chars.get(i).ok_or_else(bad)?;
                    i += 1;
                    if lo == ']' && !ranges.is_empty() {
                        break;
                    }
                    if lo == '\\' {
                        lo = *chars.get(i).ok_or_else(bad)?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        hi = *chars.get(i + 1).ok_or_else(bad)?;
                        i += 2;
                        if hi == '\\' {
                            hi = *chars.get(i).ok_or_else(bad)?;
                            i += 1;
                        }
                        if hi < lo {
                            return Err(bad());
                        }
                    }
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class { negated, ranges });
            }
            other => toks.push(Tok::Lit(other)),
        }
    }
    Ok(toks)
}

/// Matches a compiled segment against a name (dynamic programming, no backtracking blow-up).
fn match_segment(toks: &[Tok], name: &str) -> bool {
    let s: Vec<char> = name.chars().collect();
    // row[j]: whether toks[i..] matches s[j..]; computed from the last token backwards.
    let mut next = vec![false; s.len() + 1];
    if let Some(last) = next.last_mut() {
        *last = true;
    }
    for tok in toks.iter().rev() {
        let mut row = vec![false; s.len() + 1];
        for j in (0..=s.len()).rev() {
            let here = s.get(j);
            let step = next.get(j + 1).copied().unwrap_or(false);
            let value = match tok {
                Tok::Star => {
                    next.get(j).copied().unwrap_or(false)
                        || (here.is_some() && row.get(j + 1).copied().unwrap_or(false))
                }
                Tok::AnyChar => here.is_some() && step,
                Tok::Lit(c) => here == Some(c) && step,
                Tok::Class { negated, ranges } => match here {
                    Some(ch) => ranges.iter().any(|(lo, hi)| lo <= ch && ch <= hi) != *negated && step,
                    None => false,
                },
            };
            if let Some(cell) = row.get_mut(j) {
                *cell = value;
            }
        }
        next = row;
    }
    next.first().copied().unwrap_or(false)
}

#[derive(Debug)]
enum Seg {
    DoubleStar,
    Glob(Vec<Tok>),
}

/// Matches a compiled pattern (list of segments) against a relative path's segments.
fn match_path(pattern: &[Seg], path: &[&str]) -> bool {
    let mut next = vec![false; path.len() + 1];
    if let Some(last) = next.last_mut() {
        *last = true;
    }
    for seg in pattern.iter().rev() {
        let mut row = vec![false; path.len() + 1];
        for j in (0..=path.len()).rev() {
            let value = match seg {
                Seg::DoubleStar => {
                    next.get(j).copied().unwrap_or(false)
                        || (j < path.len() && row.get(j + 1).copied().unwrap_or(false))
                }
                Seg::Glob(toks) => {
                    path.get(j).is_some_and(|name| match_segment(toks, name))
                        && next.get(j + 1).copied().unwrap_or(false)
                }
            };
            if let Some(cell) = row.get_mut(j) {
                *cell = value;
            }
        }
        next = row;
    }
    next.first().copied().unwrap_or(false)
}

/// Expands `{a,b}` alternatives in a pattern.
fn expand_braces(pattern: &str, out: &mut Vec<String>, depth: usize) -> Result<(), String> {
    const MAX_ALTERNATIVES: usize = 1024;
    if depth > 32 || out.len() > MAX_ALTERNATIVES {
        return Err(format!(
            "fileset: pattern {pattern:?} has too many {{}} alternatives"
        ));
    }
    let chars: Vec<(usize, char)> = pattern.char_indices().collect();
    let mut k = 0;
    while let Some(&(open_at, c)) = chars.get(k) {
        if c == '\\' {
            k += 2;
            continue;
        }
        if c == '{' {
            // Find the matching close brace and the top-level commas.
            let mut level = 0usize;
            let mut commas = Vec::new();
            let mut close_at = None;
            let mut m = k + 1;
            while let Some(&(pos, d)) = chars.get(m) {
                match d {
                    '\\' => m += 1,
                    '{' => level += 1,
                    '}' if level == 0 => {
                        close_at = Some(pos);
                        break;
                    }
                    '}' => level -= 1,
                    ',' if level == 0 => commas.push(pos),
                    _ => {}
                }
                m += 1;
            }
            if let Some(close_at) = close_at {
                let prefix = pattern.get(..open_at).unwrap_or_default();
                let suffix = pattern.get(close_at + 1..).unwrap_or_default();
                let mut bounds = vec![open_at];
                bounds.extend(commas);
                bounds.push(close_at);
                for w in bounds.windows(2) {
                    let [from, to] = w else { continue };
                    let alt = pattern.get(from + 1..*to).unwrap_or_default();
                    expand_braces(&format!("{prefix}{alt}{suffix}"), out, depth + 1)?;
                }
                return Ok(());
            }
        }
        k += 1;
    }
    out.push(pattern.to_string());
    Ok(())
}

fn compile_pattern(pattern: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    for seg in pattern.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "fileset: pattern {pattern:?} must not contain \"..\"; change the path argument instead"
                ));
            }
            "**" => segs.push(Seg::DoubleStar),
            other => segs.push(Seg::Glob(compile_segment(other)?)),
        }
    }
    Ok(segs)
}

/// Collects the relative paths of all regular files below `root`.
fn walk_files(root: &Path) -> Result<Vec<String>, String> {
    const MAX_WALK_DEPTH: usize = 64;
    let mut files = Vec::new();
    let mut visited = 0usize;
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            visited += 1;
            if visited > MAX_COLLECTION_LEN {
                return Err(format!(
                    "fileset: more than {MAX_COLLECTION_LEN} entries below {:?}",
                    path_text(root)
                ));
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            if file_type.is_dir() {
                if depth < MAX_WALK_DEPTH {
                    stack.push((entry.path(), child_rel, depth + 1));
                }
            } else if file_type.is_file() {
                files.push(child_rel);
            } else if file_type.is_symlink() && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
                // Symlinks to files count as files; symlinked directories are not followed.
                files.push(child_rel);
            }
        }
    }
    Ok(files)
}

/// `fileset(path, pattern)`: the sorted relative paths of the regular files below `path` that
/// match `pattern` (`*`, `**`, `?`, `[...]`, `{a,b}`). Approximation: patterns may not contain
/// `..`, and symlinked directories are not followed.
pub(super) fn fileset(args: &[Value]) -> Result<Value, String> {
    let path = string_arg("fileset", args, 0)?;
    let pattern = string_arg("fileset", args, 1)?;
    let mut alternatives = Vec::new();
    expand_braces(&pattern, &mut alternatives, 0)?;
    let compiled = alternatives
        .iter()
        .map(|p| compile_pattern(p))
        .collect::<Result<Vec<_>, _>>()?;
    let root = resolve("fileset", &path)?;
    if !root.is_dir() {
        return Ok(Value::Array(Vec::new()));
    }
    let mut matches: Vec<String> = walk_files(&root)?
        .into_iter()
        .filter(|rel| {
            let segs: Vec<&str> = rel.split('/').collect();
            compiled.iter().any(|pat| match_path(pat, &segs))
        })
        .collect();
    matches.sort();
    matches.dedup();
    Ok(Value::Array(matches.into_iter().map(Value::String).collect()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};
    use super::{clean, set_base_dir};
    use std::path::PathBuf;

    /// A scratch directory with a few files, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("drover-fn-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
            std::fs::write(dir.join("hello.txt"), "Hello, world!\n").unwrap();
            std::fs::write(dir.join("data.json"), "{}").unwrap();
            std::fs::write(dir.join("bin.dat"), [0xffu8, 0xfe, 0x00]).unwrap();
            std::fs::write(dir.join("sub/a.txt"), "a").unwrap();
            std::fs::write(dir.join("sub/deeper/b.txt"), "b").unwrap();
            std::fs::write(dir.join("sub/deeper/c.tmpl"), "c").unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn path_cleaning() {
        assert_eq!(clean(""), ".");
        assert_eq!(clean("a/./b/../c//"), "a/c");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../../a"), "../../a");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn basename_dirname() {
        assert_eq!(ok(r#"basename("foo/bar/baz.txt")"#), v(r#""baz.txt""#));
        assert_eq!(ok(r#"basename("foo/bar/")"#), v(r#""bar""#));
        assert_eq!(ok(r#"basename("/")"#), v(r#""/""#));
        assert_eq!(ok(r#"basename("")"#), v(r#"".""#));
        assert_eq!(ok(r#"dirname("foo/bar/baz.txt")"#), v(r#""foo/bar""#));
        assert_eq!(ok(r#"dirname("baz.txt")"#), v(r#"".""#));
        assert_eq!(ok(r#"dirname("/baz.txt")"#), v(r#""/""#));
        err("basename([])", "basename: argument 1 must be a string");
    }

    #[test]
    fn pathexpand_and_abspath() {
        let home = std::env::var("HOME").unwrap_or_default();
        if !home.is_empty() {
            assert_eq!(
                ok(r#"pathexpand("~/x")"#),
                hcl::Value::String(format!("{home}/x"))
            );
        }
        assert_eq!(ok(r#"pathexpand("/etc/x")"#), v(r#""/etc/x""#));
        err(
            r#"pathexpand("~bob/x")"#,
            "pathexpand: cannot expand user-specific home directory",
        );
        let _g = set_base_dir(PathBuf::from("/srv/jobs"));
        assert_eq!(ok(r#"abspath("a/../b.hcl")"#), v(r#""/srv/jobs/b.hcl""#));
        assert_eq!(ok(r#"abspath("/x/y/")"#), v(r#""/x/y""#));
    }

    #[test]
    fn file_functions() {
        let scratch = Scratch::new("files");
        let _g = set_base_dir(scratch.0.clone());
        assert_eq!(ok(r#"file("hello.txt")"#), v(r#""Hello, world!\n""#));
        assert_eq!(ok(r#"file("./sub/../hello.txt")"#), v(r#""Hello, world!\n""#));
        assert_eq!(ok(r#"filebase64("bin.dat")"#), v(r#""//4A""#));
        assert_eq!(ok(r#"fileexists("hello.txt")"#), v("true"));
        assert_eq!(ok(r#"fileexists("nope.txt")"#), v("false"));
        err(r#"file("missing.txt")"#, "missing.txt\"");
        err(r#"file("missing.txt")"#, "file: no file exists at");
        err(r#"file("bin.dat")"#, "are not valid UTF-8");
        err(r#"file("sub")"#, "is a directory");
        err(r#"fileexists("sub")"#, "exists but is a directory");
        err(r#"filebase64("missing")"#, "filebase64: no file exists at");
    }

    #[test]
    fn base_dir_guard_restores() {
        let outer = set_base_dir(PathBuf::from("/outer"));
        {
            let _inner = set_base_dir(PathBuf::from("/inner"));
            assert_eq!(ok(r#"abspath("x")"#), v(r#""/inner/x""#));
        }
        assert_eq!(ok(r#"abspath("x")"#), v(r#""/outer/x""#));
        drop(outer);
    }

    #[test]
    fn fileset_globs() {
        let scratch = Scratch::new("fileset");
        let _g = set_base_dir(scratch.0.clone());
        assert_eq!(ok(r#"fileset(".", "*.txt")"#), v(r#"["hello.txt"]"#));
        assert_eq!(
            ok(r#"fileset(".", "**/*.txt")"#),
            v(r#"["hello.txt", "sub/a.txt", "sub/deeper/b.txt"]"#)
        );
        assert_eq!(
            ok(r#"fileset("sub", "**")"#),
            v(r#"["a.txt", "deeper/b.txt", "deeper/c.tmpl"]"#)
        );
        assert_eq!(
            ok(r#"fileset(".", "sub/*/?.t[a-m]*")"#),
            v(r#"["sub/deeper/c.tmpl"]"#)
        );
        assert_eq!(
            ok(r#"fileset(".", "{hello,data}.*")"#),
            v(r#"["data.json", "hello.txt"]"#)
        );
        assert_eq!(ok(r#"fileset(".", "sub")"#), v("[]"));
        assert_eq!(ok(r#"fileset("missing", "*")"#), v("[]"));
        err(r#"fileset(".", "[a")"#, "fileset: invalid pattern segment");
        err(r#"fileset(".", "../*")"#, "must not contain \"..\"");
    }
}
