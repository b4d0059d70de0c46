//! `yamlencode` and `yamldecode`: a small YAML emitter and reader without extra dependencies.
//!
//! The emitter writes block style like go-cty-yaml: mapping keys sorted and double-quoted,
//! strings double-quoted (multi-line strings as literal `|` blocks), sequences inside mappings
//! not indented, empty collections as `[]`/`{}`.
//!
//! The reader supports a single document made of block mappings and sequences (including the
//! compact `- key: value` form), flow collections (`[a, b]`, `{a: 1}`), plain, single- and
//! double-quoted scalars (also spanning lines), literal and folded block scalars with
//! chomping/indentation indicators, and comments. Scalars resolve with the YAML 1.2 core schema
//! (`null`/`~`, `true`/`false`, decimal/hex/octal integers, floats). Anchors, aliases, tags,
//! complex keys and multiple documents are rejected with an error.

use super::{MAX_DEPTH, MAX_STRING_LEN, arg, number_to_string, parse_number, type_name};
use hcl::{Map, Number, Value};

const F: &str = "yamldecode";

// ------------------------------------------------------------------------------------------------
// Emitter
// ------------------------------------------------------------------------------------------------

pub(super) fn yamlencode(args: &[Value]) -> Result<Value, String> {
    let v = arg("yamlencode", args, 0)?;
    let mut out = String::new();
    match v {
        Value::Array(items) if !items.is_empty() => emit_block(v, 0, &mut out, 0)?,
        Value::Object(obj) if !obj.is_empty() => emit_block(v, 0, &mut out, 0)?,
        _ => emit_scalar_after(v, 0, "", &mut out),
    }
    if out.len() > MAX_STRING_LEN {
        return Err(format!(
            "yamlencode: the result would be longer than {MAX_STRING_LEN} bytes"
        ));
    }
    Ok(Value::String(out))
}

/// Double-quoted YAML string with escapes.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{0}' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02X}", c as u32)),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            '\u{feff}' => out.push_str("\\uFEFF"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a string can be written as a literal block scalar.
fn literal_ok(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\t', '\n'])
        && !s
            .split('\n')
            .any(|line| !line.is_empty() && line.trim().is_empty())
        && s.chars()
            .all(|c| c == '\n' || c == '\t' || !(c.is_control() || c == '\u{feff}'))
        && !s.contains(['\u{2028}', '\u{2029}'])
}

/// Writes a scalar (or empty collection) that follows `prefix` on the current line, ending the
/// line. `indent` is the indentation of the node that owns the scalar.
fn emit_scalar_after(v: &Value, indent: usize, prefix: &str, out: &mut String) {
    out.push_str(prefix);
    match v {
        Value::Null => out.push_str("null\n"),
        Value::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            out.push('\n');
        }
        Value::Number(n) => {
            out.push_str(&number_to_string(n));
            out.push('\n');
        }
        Value::String(s) if literal_ok(s) => {
            let trailing = s.len() - s.trim_end_matches('\n').len();
            out.push_str(match trailing {
                0 => "|-\n",
                1 => "|\n",
                _ => "|+\n",
            });
            let pad = " ".repeat(indent + 2);
            let body = s.strip_suffix('\n').unwrap_or(s);
            for line in body.split('\n') {
                if !line.is_empty() {
                    out.push_str(&pad);
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        Value::String(s) => {
            out.push_str(&quote(s));
            out.push('\n');
        }
        Value::Array(_) => out.push_str("[]\n"),
        Value::Object(_) => out.push_str("{}\n"),
    }
}

fn is_block(v: &Value) -> bool {
    match v {
        Value::Array(items) => !items.is_empty(),
        Value::Object(obj) => !obj.is_empty(),
        _ => false,
    }
}

/// Writes a non-empty collection whose first line continues the current line and whose other
/// lines are indented by `indent` spaces.
fn emit_block(v: &Value, indent: usize, out: &mut String, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("yamlencode: value is nested too deeply".to_string());
    }
    if out.len() > MAX_STRING_LEN {
        return Err(format!(
            "yamlencode: the result would be longer than {MAX_STRING_LEN} bytes"
        ));
    }
    let pad = " ".repeat(indent);
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&pad);
                }
                if is_block(item) {
                    out.push_str("- ");
                    emit_block(item, indent + 2, out, depth + 1)?;
                } else {
                    emit_scalar_after(item, indent, "- ", out);
                }
            }
        }
        Value::Object(obj) => {
            let mut entries: Vec<(&String, &Value)> = obj.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&pad);
                }
                let key = format!("{}:", quote(k));
                match item {
                    Value::Array(items) if !items.is_empty() => {
                        out.push_str(&key);
                        out.push('\n');
                        out.push_str(&pad);
                        emit_block(item, indent, out, depth + 1)?;
                    }
                    Value::Object(inner) if !inner.is_empty() => {
                        out.push_str(&key);
                        out.push('\n');
                        out.push_str(&" ".repeat(indent + 2));
                        emit_block(item, indent + 2, out, depth + 1)?;
                    }
                    _ => emit_scalar_after(item, indent, &format!("{key} "), out),
                }
            }
        }
        other => emit_scalar_after(other, indent, "", out),
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Reader
// ------------------------------------------------------------------------------------------------

pub(super) fn yamldecode(args: &[Value]) -> Result<Value, String> {
    let v = arg(F, args, 0)?;
    let Value::String(src) = v else {
        return Err(format!("{F}: argument 1 must be a string, got {}", type_name(v)));
    };
    let mut parser = Parser::new(src);
    parser.document()
}

#[derive(Debug, Clone)]
struct Line {
    /// 1-based line number for messages.
    number: usize,
    /// Count of leading spaces (possibly adjusted for compact sequence entries).
    indent: usize,
    /// Whether the leading whitespace contains a tab.
    tab_indent: bool,
    /// Content after the indentation, comment removed, trailing whitespace trimmed.
    text: String,
    /// The original line (used for block scalars and multi-line quoted scalars).
    raw: String,
}

impl Line {
    fn blank(&self) -> bool {
        self.text.is_empty()
    }
}

/// Removes a trailing `# comment` that is outside quotes.
fn strip_comment(s: &str) -> &str {
    let mut in_single = false;
    let mut in_double = false;
    let mut prev: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_double {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_double = false;
            }
        } else if in_single {
            // `''` inside a single-quoted scalar closes and reopens, which is equivalent.
            if c == '\'' {
                in_single = false;
            }
        } else {
            let at_token_start = prev.is_none_or(|p| matches!(p, ' ' | '\t' | '[' | '{' | ',' | ':'));
            match c {
                '#' if prev.is_none_or(|p| p == ' ' || p == '\t') => return s.get(..i).unwrap_or(s),
                '"' if at_token_start => in_double = true,
                '\'' if at_token_start => in_single = true,
                _ => {}
            }
        }
        prev = Some(c);
    }
    s
}

/// Whether a line is a document marker (`---` or `...`) at the left margin.
fn is_doc_marker(line: &Line) -> bool {
    line.indent == 0 && (line.text == "..." || line.text == "---" || line.text.starts_with("--- "))
}

fn is_seq_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ") || text.starts_with("-\t")
}

struct Parser {
    lines: Vec<Line>,
    pos: usize,
}

impl Parser {
    fn new(src: &str) -> Parser {
        let src = src.strip_prefix('\u{feff}').unwrap_or(src);
        let mut raw_lines: Vec<&str> = src.split('\n').collect();
        // A final line break terminates the last line; it does not start a new one.
        if raw_lines.last().is_some_and(|l| l.is_empty()) {
            raw_lines.pop();
        }
        let lines = raw_lines
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let raw = raw.strip_suffix('\r').unwrap_or(raw);
                let indent = raw.len() - raw.trim_start_matches(' ').len();
                let after_spaces = raw.get(indent..).unwrap_or_default();
                let content = after_spaces.trim_start_matches([' ', '\t']);
                let tab_indent = content.len() != after_spaces.len();
                let text = strip_comment(content).trim_end().to_string();
                Line {
                    number: i + 1,
                    indent,
                    tab_indent,
                    text,
                    raw: raw.to_string(),
                }
            })
            .collect();
        Parser { lines, pos: 0 }
    }

    fn err<T>(&self, number: usize, msg: &str) -> Result<T, String> {
        Err(format!("{F}: line {number}: {msg}"))
    }

    /// Skips blank and comment-only lines and returns the next line.
    fn peek(&mut self) -> Option<&Line> {
        while self.lines.get(self.pos).is_some_and(Line::blank) {
            self.pos += 1;
        }
        self.lines.get(self.pos)
    }

    fn document(&mut self) -> Result<Value, String> {
        let mut saw_start = false;
        while let Some(line) = self.peek() {
            if line.indent != 0 {
                break;
            }
            if line.text.starts_with('%') && !saw_start {
                self.pos += 1;
                continue;
            }
            if line.text == "---" || line.text.starts_with("--- ") {
                if saw_start {
                    break;
                }
                saw_start = true;
                if line.text == "---" {
                    self.pos += 1;
                } else {
                    let rest = line.text.get(4..).unwrap_or_default().trim_start().to_string();
                    if let Some(l) = self.lines.get_mut(self.pos) {
                        l.indent = 4;
                        l.text = rest;
                    }
                }
                continue;
            }
            break;
        }
        let at_end = self.peek().is_none_or(is_doc_marker);
        let value = if at_end { Value::Null } else { self.node(0, 0)? };
        if let Some(line) = self.peek() {
            let number = line.number;
            if line.indent == 0 && line.text == "..." {
                self.pos += 1;
                if let Some(next) = self.peek() {
                    let number = next.number;
                    return self.err(number, "multiple documents are not supported");
                }
            } else if line.indent == 0 && (line.text == "---" || line.text.starts_with("--- ")) {
                return self.err(number, "multiple documents are not supported");
            } else {
                return self.err(number, "unexpected content (check the indentation)");
            }
        }
        Ok(value)
    }

    /// Parses the block node starting at the next line, which must be indented at least
    /// `min_indent` spaces (otherwise the node is empty, i.e. null).
    fn node(&mut self, min_indent: usize, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            let number = self.peek().map_or(0, |l| l.number);
            return self.err(number, "the document is nested too deeply");
        }
        let Some(line) = self.peek() else {
            return Ok(Value::Null);
        };
        if line.indent < min_indent {
            return Ok(Value::Null);
        }
        let (number, ind, text, tab) = (line.number, line.indent, line.text.clone(), line.tab_indent);
        if tab {
            return self.err(number, "tabs are not allowed for indentation");
        }
        if is_seq_item(&text) {
            return self.sequence(ind, depth);
        }
        if text.starts_with(['[', '{']) {
            self.pos += 1;
            return self.scalar_or_flow(text, number, min_indent, depth);
        }
        if split_key(&text)
            .map_err(|e| format!("{F}: line {number}: {e}"))?
            .is_some()
        {
            return self.mapping(ind, depth);
        }
        self.pos += 1;
        self.scalar_or_flow(text, number, min_indent, depth)
    }

    fn sequence(&mut self, ind: usize, depth: usize) -> Result<Value, String> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            let (number, indent, text) = (line.number, line.indent, line.text.clone());
            if indent < ind || is_doc_marker(line) {
                break;
            }
            if indent > ind {
                return self.err(number, "unexpected indentation in a sequence");
            }
            if !is_seq_item(&text) {
                break;
            }
            let rest = text.get(1..).unwrap_or_default();
            let trimmed = rest.trim_start_matches([' ', '\t']);
            if trimmed.is_empty() {
                self.pos += 1;
                items.push(self.node(ind + 1, depth + 1)?);
            } else {
                let offset = 1 + rest.len() - trimmed.len();
                let trimmed = trimmed.to_string();
                if let Some(l) = self.lines.get_mut(self.pos) {
                    l.indent = ind + offset;
                    l.text = trimmed;
                    l.tab_indent = false;
                }
                items.push(self.node(ind + 1, depth + 1)?);
            }
        }
        Ok(Value::Array(items))
    }

    fn mapping(&mut self, ind: usize, depth: usize) -> Result<Value, String> {
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            let (number, indent, text, tab) = (line.number, line.indent, line.text.clone(), line.tab_indent);
            if indent < ind || is_doc_marker(line) {
                break;
            }
            if indent > ind {
                return self.err(number, "unexpected indentation in a mapping");
            }
            if tab {
                return self.err(number, "tabs are not allowed for indentation");
            }
            let Some((key, rest)) = split_key(&text).map_err(|e| format!("{F}: line {number}: {e}"))? else {
                return self.err(number, "expected a \"key: value\" mapping entry");
            };
            if map.contains_key(&key) {
                return self.err(number, &format!("duplicate mapping key {key:?}"));
            }
            self.pos += 1;
            let rest = rest.trim();
            let value = if rest.is_empty() {
                match self.peek() {
                    Some(next) if next.indent > ind => self.node(ind + 1, depth + 1)?,
                    Some(next) if next.indent == ind && is_seq_item(&next.text) => {
                        self.sequence(ind, depth + 1)?
                    }
                    _ => Value::Null,
                }
            } else {
                self.scalar_or_flow(rest.to_string(), number, ind + 1, depth + 1)?
            };
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    /// Parses a scalar or flow collection whose text starts with `first` (from line `number`,
    /// already consumed). Continuation lines must be indented at least `min_indent` spaces.
    fn scalar_or_flow(
        &mut self,
        first: String,
        number: usize,
        min_indent: usize,
        depth: usize,
    ) -> Result<Value, String> {
        let wrap = |e: String| format!("{F}: line {number}: {e}");
        match first.chars().next() {
            None => Ok(Value::Null),
            Some('|' | '>') => self.block_scalar(&first, number, min_indent).map(Value::String),
            Some('[' | '{') => {
                let mut scan = FlowScan::default();
                let mut closed = scan.feed(&first);
                let mut text = first;
                while !closed {
                    let Some(line) = self.lines.get(self.pos) else {
                        return self.err(number, "unterminated flow collection");
                    };
                    let part = strip_comment(line.raw.trim());
                    text.push(' ');
                    scan.feed(" ");
                    closed = scan.feed(part);
                    text.push_str(part);
                    self.pos += 1;
                }
                parse_flow(&text, depth).map_err(wrap)
            }
            Some(q @ ('"' | '\'')) => {
                let text = self.collect_quoted(first, q, number)?;
                let (s, end) = if q == '"' {
                    double_quoted(&text)
                } else {
                    single_quoted(&text)
                }
                .map_err(wrap)?;
                let trailing = text.get(end..).unwrap_or_default().trim();
                if !trailing.is_empty() && !trailing.starts_with('#') {
                    return self.err(
                        number,
                        &format!("unexpected text {trailing:?} after a quoted scalar"),
                    );
                }
                Ok(Value::String(s))
            }
            Some('&' | '*') => self.err(number, "anchors and aliases are not supported"),
            Some('!') => self.err(number, "tags are not supported"),
            Some('@' | '`') => self.err(number, "plain scalars must not start with '@' or '`'"),
            Some(_) => {
                let mut text = first;
                let mut blanks = 0usize;
                let mut look = self.pos;
                while let Some(line) = self.lines.get(look) {
                    if line.blank() {
                        blanks += 1;
                        look += 1;
                        continue;
                    }
                    if line.indent < min_indent || is_doc_marker(line) {
                        break;
                    }
                    if split_key(&line.text).ok().flatten().is_some() || is_seq_item(&line.text) {
                        return self.err(
                            line.number,
                            "mapping values or sequence entries are not allowed in a multi-line plain scalar",
                        );
                    }
                    if blanks == 0 {
                        text.push(' ');
                    } else {
                        text.push_str(&"\n".repeat(blanks));
                    }
                    text.push_str(&line.text);
                    blanks = 0;
                    look += 1;
                    self.pos = look;
                }
                resolve_plain(&text).map_err(wrap)
            }
        }
    }

    /// Joins the lines of a quoted scalar that spans several lines, folding line breaks.
    fn collect_quoted(&mut self, first: String, q: char, number: usize) -> Result<String, String> {
        let mut closed = quote_closed(&first, q);
        let mut text = first;
        let mut empty_lines = 0usize;
        while !closed {
            let Some(line) = self.lines.get(self.pos) else {
                return self.err(number, "unterminated quoted scalar");
            };
            let part = line.raw.trim();
            self.pos += 1;
            if part.is_empty() {
                empty_lines += 1;
                continue;
            }
            // Trailing whitespace before a line break is not content.
            let trimmed_len = text.trim_end_matches([' ', '\t']).len();
            text.truncate(trimmed_len);
            let escaped_break = q == '"' && {
                let backslashes = text.len() - text.trim_end_matches('\\').len();
                backslashes % 2 == 1
            };
            if escaped_break {
                text.pop();
                text.push_str(&"\n".repeat(empty_lines));
            } else if empty_lines > 0 {
                text.push_str(&"\n".repeat(empty_lines));
            } else {
                text.push(' ');
            }
            empty_lines = 0;
            // The text so far is an unclosed quote, so only the new part needs scanning.
            closed = quote_closed(&format!("{q}{part}"), q);
            text.push_str(part);
        }
        Ok(text)
    }

    /// Parses a literal (`|`) or folded (`>`) block scalar whose header is `header`. The
    /// content lines follow the current position and are indented at least `min_indent`.
    fn block_scalar(&mut self, header: &str, number: usize, min_indent: usize) -> Result<String, String> {
        let mut chars = header.chars();
        let folded = chars.next() == Some('>');
        let mut chomp = 'c';
        let mut explicit: Option<usize> = None;
        for c in chars {
            match c {
                '-' | '+' if chomp == 'c' => chomp = c,
                '1'..='9' if explicit.is_none() => explicit = c.to_digit(10).map(|d| d as usize),
                _ => return self.err(number, &format!("invalid block scalar header {header:?}")),
            }
        }
        // Gather the raw lines of the block.
        let mut raw_lines: Vec<(usize, String)> = Vec::new();
        while let Some(line) = self.lines.get(self.pos) {
            let blank = line.raw.trim().is_empty();
            if !blank && line.indent < min_indent {
                break;
            }
            raw_lines.push((line.number, line.raw.clone()));
            self.pos += 1;
        }
        let content_indent = match explicit {
            Some(n) => min_indent.saturating_sub(1) + n,
            None => raw_lines
                .iter()
                .find(|(_, raw)| !raw.trim().is_empty())
                .map_or(min_indent, |(_, raw)| {
                    raw.len() - raw.trim_start_matches(' ').len()
                }),
        };
        let mut lines: Vec<&str> = Vec::with_capacity(raw_lines.len());
        for (n, raw) in &raw_lines {
            if raw.trim().is_empty() {
                lines.push("");
                continue;
            }
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            if indent < content_indent {
                return self.err(*n, "bad indentation inside a block scalar");
            }
            lines.push(raw.get(content_indent..).unwrap_or_default());
        }
        // Split off trailing empty lines; they only matter for chomping.
        let content_len = lines.iter().rposition(|l| !l.is_empty()).map_or(0, |i| i + 1);
        let trailing_empty = lines.len() - content_len;
        let content = lines.get(..content_len).unwrap_or_default();
        let mut body = if folded {
            fold_lines(content)
        } else {
            content.join("\n")
        };
        if content.is_empty() {
            return Ok(match chomp {
                '+' => "\n".repeat(trailing_empty),
                _ => String::new(),
            });
        }
        match chomp {
            '-' => {}
            '+' => {
                body.push('\n');
                body.push_str(&"\n".repeat(trailing_empty));
            }
            _ => body.push('\n'),
        }
        Ok(body)
    }
}

/// Folds the lines of a `>` block scalar.
fn fold_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut started = false;
    let mut prev_normal = false;
    let mut pending = 0usize;
    for line in lines {
        if line.is_empty() {
            pending += 1;
            continue;
        }
        let more = line.starts_with([' ', '\t']);
        if started {
            let joins_with_space = prev_normal && !more;
            match (pending, joins_with_space) {
                (0, true) => out.push(' '),
                (0, false) => out.push('\n'),
                (n, true) => out.push_str(&"\n".repeat(n)),
                (n, false) => out.push_str(&"\n".repeat(n + 1)),
            }
        } else {
            out.push_str(&"\n".repeat(pending));
        }
        out.push_str(line);
        started = true;
        prev_normal = !more;
        pending = 0;
    }
    out
}

/// Incremental scanner that tracks bracket nesting of a flow collection outside quotes, so
/// that multi-line flow collections are scanned in linear time.
#[derive(Debug, Default)]
struct FlowScan {
    level: i64,
    in_single: bool,
    in_double: bool,
    escaped: bool,
    prev: Option<char>,
}

impl FlowScan {
    /// Feeds more text and returns whether the outermost collection is closed.
    fn feed(&mut self, text: &str) -> bool {
        for c in text.chars() {
            if self.in_double {
                if self.escaped {
                    self.escaped = false;
                } else if c == '\\' {
                    self.escaped = true;
                } else if c == '"' {
                    self.in_double = false;
                }
            } else if self.in_single {
                // `''` closes and immediately reopens, which is equivalent to an escaped quote.
                if c == '\'' {
                    self.in_single = false;
                }
            } else {
                let at_token_start = self
                    .prev
                    .is_none_or(|p| matches!(p, ' ' | '\t' | '[' | '{' | ',' | ':'));
                match c {
                    '"' if at_token_start => self.in_double = true,
                    '\'' if at_token_start => self.in_single = true,
                    '[' | '{' => self.level += 1,
                    ']' | '}' => self.level -= 1,
                    _ => {}
                }
            }
            self.prev = Some(c);
        }
        self.level <= 0
    }
}

/// Whether a quoted scalar starting at the beginning of `text` is closed (escape validity is
/// checked later, when the scalar is parsed).
fn quote_closed(text: &str, q: char) -> bool {
    let mut chars = text.chars().skip(1).peekable();
    while let Some(c) = chars.next() {
        let escape = (q == '"' && c == '\\') || (q == '\'' && c == '\'' && chars.peek() == Some(&'\''));
        if escape {
            chars.next();
        } else if c == q {
            return true;
        }
    }
    false
}

/// Parses a double-quoted scalar at the start of `s`; returns the value and the byte index after
/// the closing quote.
fn double_quoted(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut iter = s.char_indices();
    if iter.next().map(|(_, c)| c) != Some('"') {
        return Err("expected '\"'".to_string());
    }
    while let Some((i, c)) = iter.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let Some((_, e)) = iter.next() else { break };
                match e {
                    '0' => out.push('\0'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    't' | '\t' => out.push('\t'),
                    'n' => out.push('\n'),
                    'v' => out.push('\u{b}'),
                    'f' => out.push('\u{c}'),
                    'r' => out.push('\r'),
                    'e' => out.push('\u{1b}'),
                    ' ' => out.push(' '),
                    '"' => out.push('"'),
                    '/' => out.push('/'),
                    '\\' => out.push('\\'),
                    'N' => out.push('\u{85}'),
                    '_' => out.push('\u{a0}'),
                    'L' => out.push('\u{2028}'),
                    'P' => out.push('\u{2029}'),
                    'x' | 'u' | 'U' => {
                        let len = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..len {
                            let digit = iter
                                .next()
                                .and_then(|(_, h)| h.to_digit(16))
                                .ok_or_else(|| format!("invalid \\{e} escape in a double-quoted scalar"))?;
                            code = code * 16 + digit;
                        }
                        out.push(
                            char::from_u32(code)
                                .ok_or_else(|| format!("invalid character code {code:#x} in an escape"))?,
                        );
                    }
                    other => return Err(format!("invalid escape \"\\{other}\" in a double-quoted scalar")),
                }
            }
            other => out.push(other),
        }
    }
    Err("unterminated double-quoted scalar".to_string())
}

/// Parses a single-quoted scalar at the start of `s`.
fn single_quoted(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut iter = s.char_indices().peekable();
    if iter.next().map(|(_, c)| c) != Some('\'') {
        return Err("expected \"'\"".to_string());
    }
    while let Some((i, c)) = iter.next() {
        if c == '\'' {
            if iter.peek().map(|(_, n)| *n) == Some('\'') {
                iter.next();
                out.push('\'');
            } else {
                return Ok((out, i + 1));
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated single-quoted scalar".to_string())
}

/// Splits `key: value` into the key and the rest. Returns `None` when the text is not a
/// mapping entry.
fn split_key(text: &str) -> Result<Option<(String, String)>, String> {
    if text.starts_with("? ") || text == "?" {
        return Err("complex mapping keys are not supported".to_string());
    }
    if text.starts_with(['"', '\'']) {
        let parsed = if text.starts_with('"') {
            double_quoted(text)
        } else {
            single_quoted(text)
        };
        let Ok((key, end)) = parsed else { return Ok(None) };
        let after = text.get(end..).unwrap_or_default().trim_start();
        return Ok(after.strip_prefix(':').and_then(|rest| {
            (rest.is_empty() || rest.starts_with([' ', '\t'])).then(|| (key, rest.to_string()))
        }));
    }
    if text.starts_with(['[', '{', '&', '*', '!', '|', '>']) {
        return Ok(None);
    }
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')) {
            let key = text.get(..i).unwrap_or_default().trim_end();
            let rest = text.get(i + 1..).unwrap_or_default();
            return Ok(Some((key.to_string(), rest.to_string())));
        }
    }
    Ok(None)
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(s: &str) -> Result<Value, String> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    let lower = s.to_ascii_lowercase();
    if matches!(lower.trim_start_matches(['+', '-']), ".inf" | ".nan") && lower.len() <= 5 {
        return Err(format!(
            "the number {s} is not supported (only finite numbers are)"
        ));
    }
    if let Some(n) = parse_number(s) {
        return Ok(Value::Number(n));
    }
    let radix = |digits: &str, base: u32| -> Option<Value> {
        if digits.is_empty() {
            return None;
        }
        u64::from_str_radix(digits, base)
            .ok()
            .map(|u| Value::Number(Number::from(u)))
    };
    if let Some(hex) = s.strip_prefix("0x")
        && let Some(v) = radix(hex, 16)
    {
        return Ok(v);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Some(v) = radix(oct, 8)
    {
        return Ok(v);
    }
    Ok(Value::String(s.to_string()))
}

/// Parses a complete flow collection or scalar.
fn parse_flow(text: &str, depth: usize) -> Result<Value, String> {
    let mut p = Flow { s: text, pos: 0 };
    let v = p.value(depth)?;
    p.skip_ws();
    let rest = p.rest();
    if !rest.is_empty() && !rest.starts_with('#') {
        return Err(format!("unexpected text {rest:?} after a flow collection"));
    }
    Ok(v)
}

struct Flow<'a> {
    s: &'a str,
    pos: usize,
}

impl Flow<'_> {
    fn rest(&self) -> &str {
        self.s.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("the document is nested too deeply".to_string());
        }
        self.skip_ws();
        match self.peek() {
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(']') {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some(']') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err("expected ',' or ']' in a flow sequence".to_string()),
                    }
                }
                Ok(Value::Array(items))
            }
            Some('{') => {
                self.pos += 1;
                let mut map = Map::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some('}') {
                        self.pos += 1;
                        break;
                    }
                    let key = match self.value(depth + 1)? {
                        Value::String(s) => s,
                        Value::Null => "null".to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => number_to_string(&n),
                        _ => return Err("flow mapping keys must be scalars".to_string()),
                    };
                    self.skip_ws();
                    let value = if self.peek() == Some(':') {
                        self.pos += 1;
                        self.skip_ws();
                        if matches!(self.peek(), Some(',' | '}')) {
                            Value::Null
                        } else {
                            self.value(depth + 1)?
                        }
                    } else {
                        Value::Null
                    };
                    if map.contains_key(&key) {
                        return Err(format!("duplicate mapping key {key:?}"));
                    }
                    map.insert(key, value);
                    self.skip_ws();
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some('}') => {
                            self.pos += 1;
                            break;
                        }
                        _ => return Err("expected ',' or '}' in a flow mapping".to_string()),
                    }
                }
                Ok(Value::Object(map))
            }
            Some('"') => {
                let (s, end) = double_quoted(self.rest())?;
                self.pos += end;
                Ok(Value::String(s))
            }
            Some('\'') => {
                let (s, end) = single_quoted(self.rest())?;
                self.pos += end;
                Ok(Value::String(s))
            }
            Some('&' | '*') => Err("anchors and aliases are not supported".to_string()),
            Some('!') => Err("tags are not supported".to_string()),
            None => Err("unexpected end of a flow collection".to_string()),
            Some(_) => {
                let src = self.s;
                let rest = src.get(self.pos..).unwrap_or_default();
                let bytes = rest.as_bytes();
                let mut end = bytes.len();
                for (i, b) in bytes.iter().enumerate() {
                    let stop = match b {
                        b',' | b']' | b'}' => true,
                        b':' => matches!(bytes.get(i + 1), None | Some(b' ' | b'\t' | b',' | b']' | b'}')),
                        b'#' => i > 0 && matches!(bytes.get(i - 1), Some(b' ' | b'\t')),
                        _ => false,
                    };
                    if stop {
                        end = i;
                        break;
                    }
                }
                let text = rest.get(..end).unwrap_or_default().trim();
                self.pos += end;
                resolve_plain(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, ok, v};
    use super::{Parser, strip_comment};
    use hcl::Value;

    fn decode(src: &str) -> Result<Value, String> {
        Parser::new(src).document()
    }

    #[test]
    fn encode_cases() {
        assert_eq!(
            ok(r#"yamlencode({a = "b", c = "d"})"#),
            v(r#""\"a\": \"b\"\n\"c\": \"d\"\n""#)
        );
        assert_eq!(
            ok(r#"yamlencode({foo = [1, {a = "b", c = "d"}, 3], bar = "baz"})"#),
            v(r#""\"bar\": \"baz\"\n\"foo\":\n- 1\n- \"a\": \"b\"\n  \"c\": \"d\"\n- 3\n""#)
        );
        assert_eq!(ok(r#"yamlencode("x")"#), v(r#""\"x\"\n""#));
        assert_eq!(ok("yamlencode([])"), v(r#""[]\n""#));
        assert_eq!(
            ok("yamlencode({a = {}, b = null, c = true, d = [[1, 2]]})"),
            v(r#""\"a\": {}\n\"b\": null\n\"c\": true\n\"d\":\n- - 1\n  - 2\n""#)
        );
        assert_eq!(ok(r#"yamlencode({m = {n = 1}})"#), v(r#""\"m\":\n  \"n\": 1\n""#));
        assert_eq!(
            ok(r#"yamlencode({s = "a\nb\n"})"#),
            v(r#""\"s\": |\n  a\n  b\n""#)
        );
    }

    #[test]
    fn encode_roundtrips() {
        for expr in [
            r#"{a = "b", list = [1, 2.5, "x", null, true], nested = {deep = [{k = "v"}, []]}}"#,
            r##"["a\nb", "a\n\nb\n\n", "tab\there", "quote\"s", "", "- x", "key: v", "#c"]"##,
            r#"{"weird key: x" = "y", "" = 1}"#,
            "[[[]], {}, [{}]]",
        ] {
            let value = ok(expr);
            let roundtrip = ok(&format!("yamldecode(yamlencode({expr}))"));
            assert_eq!(roundtrip, value, "{expr}");
        }
    }

    #[test]
    fn decode_block_structures() {
        let src = "\
# a comment
name: web   # trailing comment
count: 3
ratio: 0.5
enabled: true
nothing: ~
tags:
- a
- 'b c'
- \"d\\te\"
nested:
  key: value
  list:
    - x: 1
      y: 2
    - - inner
url: http://example.com/a#frag
";
        let expected = ok(r#"{
            name = "web", count = 3, ratio = 0.5, enabled = true, nothing = null,
            tags = ["a", "b c", "d\te"],
            nested = { key = "value", list = [{x = 1, y = 2}, ["inner"]] },
            url = "http://example.com/a#frag"
        }"#);
        assert_eq!(decode(src), Ok(expected));
    }

    #[test]
    fn decode_scalars_and_flow() {
        assert_eq!(decode(""), Ok(Value::Null));
        assert_eq!(decode("---\n42\n"), Ok(v("42")));
        assert_eq!(decode("0x1F"), Ok(v("31")));
        assert_eq!(decode("0o17"), Ok(v("15")));
        assert_eq!(decode("-1.5e3"), Ok(v("-1500")));
        assert_eq!(decode("yes"), Ok(v(r#""yes""#)));
        assert_eq!(
            decode("[1, two, {a: b}, [ ], \"x, y\"]"),
            Ok(v(r#"[1, "two", {a = "b"}, [], "x, y"]"#))
        );
        assert_eq!(
            decode("a: {b: 1, c: [x,\n  y]}\n"),
            Ok(v(r#"{a = {b = 1, c = ["x", "y"]}}"#))
        );
        assert_eq!(decode("a: \"multi\n  line\"\n"), Ok(v(r#"{a = "multi line"}"#)));
        assert_eq!(
            decode("a: plain\n  continued\n"),
            Ok(v(r#"{a = "plain continued"}"#))
        );
        assert_eq!(decode("'it''s'"), Ok(v(r#""it's""#)));
        assert_eq!(decode("[it's, x]"), Ok(v(r#"["it's", "x"]"#)));
        assert_eq!(
            decode("a: [1,\n  'b]', # c\n  3]"),
            Ok(v(r#"{a = [1, "b]", 3]}"#))
        );
        assert_eq!(decode("a: 'it''s\n  multi'"), Ok(v(r#"{a = "it's multi"}"#)));
        assert_eq!(decode("\"\\u00e9\\x41\""), Ok(v(r#""éA""#)));
    }

    #[test]
    fn decode_block_scalars() {
        assert_eq!(
            decode("a: |\n  line1\n  line2\nb: 1\n"),
            Ok(v(r#"{a = "line1\nline2\n", b = 1}"#))
        );
        assert_eq!(decode("a: |-\n  x\n\n"), Ok(v(r#"{a = "x"}"#)));
        assert_eq!(decode("a: |+\n  x\n\n"), Ok(v(r#"{a = "x\n\n"}"#)));
        assert_eq!(
            decode("a: >\n  folded\n  text\n\n  para\n"),
            Ok(v(r#"{a = "folded text\npara\n"}"#))
        );
        assert_eq!(
            decode("- |\n  # not a comment\n   indented\n"),
            Ok(v(r##"["# not a comment\n indented\n"]"##))
        );
        assert_eq!(decode("a: |2\n    x\n"), Ok(v(r#"{a = "  x\n"}"#)));
    }

    #[test]
    fn decode_errors() {
        err(
            r#"yamldecode("a: 1\na: 2")"#,
            "yamldecode: line 2: duplicate mapping key \"a\"",
        );
        err(
            r#"yamldecode("a: &x 1")"#,
            "anchors and aliases are not supported",
        );
        err(r#"yamldecode("a: !!str 1")"#, "tags are not supported");
        err(
            r#"yamldecode("a: 1\n---\nb: 2")"#,
            "multiple documents are not supported",
        );
        err(r#"yamldecode("a: [1, 2")"#, "unterminated flow collection");
        err(r#"yamldecode("a: \"x")"#, "unterminated quoted scalar");
        err(
            r#"yamldecode("a: 1\n  b: 2")"#,
            "mapping values or sequence entries are not allowed",
        );
        err(
            r#"yamldecode("a:\n\tb: 1")"#,
            "tabs are not allowed for indentation",
        );
        err(r#"yamldecode("- a\nb: 1")"#, "unexpected content");
        err(r#"yamldecode("a: .inf")"#, "only finite numbers");
        err(r#"yamldecode("a: \"\\q\"")"#, "invalid escape");
        err(
            "yamldecode(1)",
            "yamldecode: argument 1 must be a string, got number",
        );
        err("yamldecode()", "yamldecode: expected exactly 1 argument, got 0");
    }

    #[test]
    fn comment_stripping() {
        assert_eq!(strip_comment("a # b"), "a ");
        assert_eq!(strip_comment("a#b"), "a#b");
        assert_eq!(strip_comment("'x # y' # z"), "'x # y' ");
        assert_eq!(strip_comment("it's # z"), "it's ");
        assert_eq!(strip_comment("\"a\\\" # b\" # c"), "\"a\\\" # b\" ");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(2000), "]".repeat(2000));
        assert!(decode(&deep).is_err());
        let mut block = String::new();
        for i in 0..400 {
            block.push_str(&" ".repeat(i));
            block.push_str("- \n");
        }
        assert!(decode(&block).is_err());
    }
}
