//! The evaluated body: HCL structure with every attribute already evaluated to JSON and every
//! `dynamic` block expanded, still carrying source spans for diagnostics.
//!
//! ```text
//!  hcl-edit Body ──build_body(Evaluator)──▶ ir::Body { attrs: name → JSON, blocks }
//!                   dynamic "x" { for_each, iterator, labels, content {} }  →  n × block "x"
//! ```
//!
//! The decoder ([`crate::decode`]) reads this shape; it never sees expressions.

use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::expr::Expression;
use hcl_edit::structure::{Block as EditBlock, Body as EditBody, Structure};

use crate::error::{Diagnostic, SourceMap};
use crate::eval::Evaluator;

/// An evaluated body.
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// Attributes in source order.
    pub attrs: Vec<Attr>,
    /// Blocks in source order (dynamic blocks expanded in place).
    pub blocks: Vec<Block>,
    /// The span of the enclosing block (for "missing …" diagnostics).
    pub span: Option<Range<usize>>,
}

/// An evaluated attribute.
#[derive(Debug, Clone)]
pub struct Attr {
    /// The key.
    pub name: String,
    /// The value.
    pub value: serde_json::Value,
    /// Span of the whole attribute.
    pub span: Option<Range<usize>>,
}

/// A block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Block type.
    pub ident: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Body.
    pub body: Body,
    /// Span of the block.
    pub span: Option<Range<usize>>,
}

/// Largest number of blocks one `dynamic` block may produce.
const MAX_DYNAMIC: usize = 10_000;

/// Evaluates and expands a body. Problems are pushed to `diags`; the body keeps what worked.
pub fn build_body(
    body: &EditBody,
    span: Option<Range<usize>>,
    ev: &Evaluator<'_>,
    sm: &SourceMap,
    diags: &mut Vec<Diagnostic>,
) -> Body {
    let mut out = Body {
        span,
        ..Default::default()
    };
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => match ev.eval(&a.value) {
                Ok(value) => out.attrs.push(Attr {
                    name: a.key.as_str().to_string(),
                    value,
                    span: a.span(),
                }),
                Err(e) => diags.push(sm.diag(
                    e.span.clone().or_else(|| a.span()).as_ref(),
                    format!("Invalid value for {:?}", a.key.as_str()),
                    e.message,
                )),
            },
            Structure::Block(b) if b.ident.as_str() == "dynamic" => {
                expand_dynamic(b, ev, sm, diags, &mut out)
            }
            Structure::Block(b) => {
                let inner = build_body(&b.body, b.span(), ev, sm, diags);
                out.blocks.push(Block {
                    ident: b.ident.as_str().to_string(),
                    labels: b.labels.iter().map(|l| l.as_str().to_string()).collect(),
                    body: inner,
                    span: b.span(),
                });
            }
        }
    }
    out
}

fn expand_dynamic(
    b: &EditBlock,
    ev: &Evaluator<'_>,
    sm: &SourceMap,
    diags: &mut Vec<Diagnostic>,
    out: &mut Body,
) {
    let span = b.span();
    let Some(block_type) = b.labels.first().map(|l| l.as_str().to_string()) else {
        diags.push(sm.diag(
            span.as_ref(),
            "Missing block type for dynamic",
            "write dynamic \"<block type>\" { … }",
        ));
        return;
    };
    let Some(for_each) = b.body.get_attribute("for_each") else {
        diags.push(sm.diag(
            span.as_ref(),
            "Missing for_each in dynamic block",
            "for_each = <list or map> is required",
        ));
        return;
    };
    let iterator = match b.body.get_attribute("iterator").map(|a| &a.value) {
        Some(Expression::Variable(v)) => v.as_str().to_string(),
        Some(other) => {
            diags.push(sm.diag(
                other.span().as_ref(),
                "Invalid iterator",
                "iterator must be a plain name",
            ));
            return;
        }
        None => block_type.clone(),
    };
    let Some(content) = b.body.get_blocks("content").next() else {
        diags.push(sm.diag(
            span.as_ref(),
            "Missing content block",
            "a dynamic block needs one content { … } block",
        ));
        return;
    };
    for s in b.body.iter() {
        let name = match s {
            Structure::Attribute(a) => a.key.as_str(),
            Structure::Block(b) => b.ident.as_str(),
        };
        if !matches!(name, "for_each" | "iterator" | "labels" | "content") {
            diags.push(sm.diag(
                s.span().as_ref(),
                "Unsupported argument in dynamic block",
                format!("{name:?} is not expected here; use for_each, iterator, labels and content"),
            ));
        }
    }
    let items: Vec<(hcl::Value, hcl::Value)> = match ev.eval_hcl(&for_each.value) {
        Ok(hcl::Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(i, v)| (hcl::Value::from(i as u64), v))
            .collect(),
        Ok(hcl::Value::Object(o)) => {
            // Maps iterate in lexical key order, as in HCL's cty maps.
            let mut items: Vec<(hcl::Value, hcl::Value)> =
                o.into_iter().map(|(k, v)| (hcl::Value::String(k), v)).collect();
            items.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
            items
        }
        Ok(hcl::Value::Null) => Vec::new(),
        Ok(other) => {
            diags.push(sm.diag(
                for_each.span().as_ref(),
                "Invalid for_each",
                format!("for_each must be a list or a map, got {other}"),
            ));
            return;
        }
        Err(e) => {
            diags.push(sm.diag(
                e.span.clone().or_else(|| for_each.span()).as_ref(),
                "Invalid for_each",
                e.message,
            ));
            return;
        }
    };
    if items.len() > MAX_DYNAMIC {
        diags.push(sm.diag(
            for_each.span().as_ref(),
            "Too many dynamic blocks",
            format!(
                "for_each produced {} blocks; the limit is {MAX_DYNAMIC}",
                items.len()
            ),
        ));
        return;
    }
    for (key, value) in items {
        let mut child = ev.clone();
        let mut it = hcl::Map::new();
        it.insert("key".to_string(), key);
        it.insert("value".to_string(), value);
        child.bind(&iterator, hcl::Value::Object(it));
        let labels = match b.body.get_attribute("labels") {
            None => Vec::new(),
            Some(a) => match child.eval(&a.value) {
                Ok(serde_json::Value::Array(ls)) => ls
                    .into_iter()
                    .map(|l| match l {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    })
                    .collect(),
                Ok(other) => {
                    diags.push(sm.diag(
                        a.span().as_ref(),
                        "Invalid labels",
                        format!("labels must be a list, got {other}"),
                    ));
                    return;
                }
                Err(e) => {
                    diags.push(sm.diag(
                        e.span.clone().or_else(|| a.span()).as_ref(),
                        "Invalid labels",
                        e.message,
                    ));
                    return;
                }
            },
        };
        let body = build_body(&content.body, content.span(), &child, sm, diags);
        out.blocks.push(Block {
            ident: block_type.clone(),
            labels,
            body,
            span: span.clone(),
        });
    }
}
