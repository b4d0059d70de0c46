//! Diagnostics: every problem in a job file, each with `file:line:col`.

use std::fmt;
use std::ops::Range;

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file name as given (or `<input>`).
    pub file: String,
    /// 1-based line; 0 when the problem has no position.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// Short summary (`Unsupported argument`).
    pub summary: String,
    /// Longer explanation.
    pub detail: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        if self.detail.is_empty() {
            f.write_str(&self.summary)
        } else {
            write!(f, "{}; {}", self.summary, self.detail)
        }
    }
}

/// Why a job file could not become a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobspecError {
    /// Syntax or decoding problems in the file, all of them.
    #[error("{}", join(.0))]
    Parse(Vec<Diagnostic>),
    /// The job decoded but did not validate; each problem names its path in the job.
    #[error("{file}: job is invalid:\n{}", .problems.iter().map(|p| format!("  * {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        file: String,
        /// Problems from [`drover_types::validate`].
        problems: Vec<drover_types::validate::Problem>,
    },
    /// The file could not be read.
    #[error("{file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        message: String,
    },
}

fn join(d: &[Diagnostic]) -> String {
    d.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

/// Maps byte offsets of one source text to lines and columns.
#[derive(Debug, Clone)]
pub struct SourceMap {
    file: String,
    line_starts: Vec<usize>,
    src: String,
}

impl SourceMap {
    /// Indexes `src`.
    pub fn new(file: &str, src: &str) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in src.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        SourceMap {
            file: file.to_string(),
            line_starts,
            src: src.to_string(),
        }
    }

    /// The file name.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// 1-based (line, column) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let end = offset.min(self.src.len());
        let col = self.src.get(start..end).map(|s| s.chars().count()).unwrap_or(0) + 1;
        (line + 1, col)
    }

    /// A diagnostic at a span (or without position).
    pub fn diag(
        &self,
        span: Option<&Range<usize>>,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) -> Diagnostic {
        let (line, col) = span.map(|s| self.position(s.start)).unwrap_or((0, 0));
        Diagnostic {
            file: self.file.clone(),
            line,
            col,
            summary: summary.into(),
            detail: detail.into(),
        }
    }
}
