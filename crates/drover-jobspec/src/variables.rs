//! Input variables and locals.
//!
//! ```text
//!  variable "x" { type, default, validation {…} }     (declarations in the job file)
//!  value of x = default < NOMAD_VAR_x < -var-file < -var x=…   (last wins)
//!        │ converted to the declared type, validations checked
//!        ▼
//!  var = { x = … }  ──▶  locals { … } evaluated in dependency order  ──▶  local = { … }
//! ```
//!
//! `-var` and `NOMAD_VAR_` values are strings: taken literally for `string`, `number`, `bool`
//! and untyped variables, parsed as HCL expressions for collection types. Assigning a variable
//! that is not declared is an error from `-var` and var files (Nomad's strict mode) and ignored
//! from the environment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use hcl_edit::Span;
use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::{Body, Structure};
use hcl_edit::visit::{Visit, visit_expr};

use crate::error::{Diagnostic, SourceMap};
use crate::eval::Evaluator;

/// A variable's type constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum VarType {
    /// `any` or no type.
    Any,
    /// `string`.
    String,
    /// `number`.
    Number,
    /// `bool`.
    Bool,
    /// `list(T)` or `set(T)`.
    List(Box<VarType>),
    /// `map(T)`.
    Map(Box<VarType>),
    /// `object({ k = T })`.
    Object(BTreeMap<String, (VarType, bool)>),
    /// `tuple([T, …])`.
    Tuple(Vec<VarType>),
}

impl VarType {
    fn is_primitive(&self) -> bool {
        matches!(
            self,
            VarType::Any | VarType::String | VarType::Number | VarType::Bool
        )
    }
}

/// Parses a type expression (`string`, `list(map(string))`, `object({a = number})`).
pub fn parse_type(expr: &Expression) -> Result<VarType, String> {
    match expr {
        Expression::Variable(v) => match v.as_str() {
            "any" => Ok(VarType::Any),
            "string" => Ok(VarType::String),
            "number" => Ok(VarType::Number),
            "bool" => Ok(VarType::Bool),
            other => Err(format!("unknown type {other:?}")),
        },
        Expression::FuncCall(fc) => {
            let name = fc.name.name.as_str();
            let args: Vec<&Expression> = fc.args.iter().collect();
            let one = || -> Result<VarType, String> {
                match args.as_slice() {
                    [a] => parse_type(a),
                    _ => Err(format!("{name}(…) takes exactly one type")),
                }
            };
            match name {
                "list" | "set" => Ok(VarType::List(Box::new(one()?))),
                "map" => Ok(VarType::Map(Box::new(one()?))),
                "tuple" => match args.as_slice() {
                    [Expression::Array(a)] => Ok(VarType::Tuple(
                        a.iter().map(parse_type).collect::<Result<_, _>>()?,
                    )),
                    _ => Err("tuple(…) takes a list of types".into()),
                },
                "object" => match args.as_slice() {
                    [Expression::Object(o)] => {
                        let mut fields = BTreeMap::new();
                        for (k, v) in o.iter() {
                            let key = match k {
                                hcl_edit::expr::ObjectKey::Ident(i) => i.as_str().to_string(),
                                hcl_edit::expr::ObjectKey::Expression(Expression::String(s)) => {
                                    s.as_str().to_string()
                                }
                                _ => return Err("object type keys must be names".into()),
                            };
                            let (t, optional) = match v.expr() {
                                Expression::FuncCall(f) if f.name.name.as_str() == "optional" => {
                                    match f.args.iter().next() {
                                        Some(a) => (parse_type(a)?, true),
                                        None => return Err("optional(…) takes a type".into()),
                                    }
                                }
                                other => (parse_type(other)?, false),
                            };
                            fields.insert(key, (t, optional));
                        }
                        Ok(VarType::Object(fields))
                    }
                    _ => Err("object(…) takes an object of attribute types".into()),
                },
                other => Err(format!("unknown type constructor {other:?}")),
            }
        }
        _ => Err("a type must be a name like string or a constructor like list(string)".into()),
    }
}

/// Converts a value to a type, the way HCL's automatic conversions do.
pub fn convert(v: hcl::Value, t: &VarType) -> Result<hcl::Value, String> {
    use hcl::Value as V;
    match (t, v) {
        (VarType::Any, v) => Ok(v),
        (_, V::Null) => Ok(V::Null),
        (VarType::String, V::String(s)) => Ok(V::String(s)),
        (VarType::String, V::Number(n)) => Ok(V::String(n.to_string())),
        (VarType::String, V::Bool(b)) => Ok(V::String(b.to_string())),
        (VarType::Number, V::Number(n)) => Ok(V::Number(n)),
        (VarType::Number, V::String(s)) => {
            parse_number(&s).ok_or_else(|| format!("a number is required, got {s:?}"))
        }
        (VarType::Bool, V::Bool(b)) => Ok(V::Bool(b)),
        (VarType::Bool, V::String(s)) => match s.as_str() {
            "true" => Ok(V::Bool(true)),
            "false" => Ok(V::Bool(false)),
            _ => Err(format!("a bool is required, got {s:?}")),
        },
        (VarType::List(inner), V::Array(a)) => a
            .into_iter()
            .map(|x| convert(x, inner))
            .collect::<Result<Vec<_>, _>>()
            .map(V::Array),
        (VarType::Map(inner), V::Object(o)) => o
            .into_iter()
            .map(|(k, x)| convert(x, inner).map(|x| (k, x)))
            .collect::<Result<hcl::Map<_, _>, _>>()
            .map(V::Object),
        (VarType::Tuple(ts), V::Array(a)) => {
            if ts.len() != a.len() {
                return Err(format!(
                    "a tuple of {} elements is required, got {}",
                    ts.len(),
                    a.len()
                ));
            }
            a.into_iter()
                .zip(ts)
                .map(|(x, t)| convert(x, t))
                .collect::<Result<Vec<_>, _>>()
                .map(V::Array)
        }
        (VarType::Object(fields), V::Object(mut o)) => {
            let mut out = hcl::Map::new();
            for (k, (ft, optional)) in fields {
                match o.shift_remove(k) {
                    Some(x) => {
                        out.insert(
                            k.clone(),
                            convert(x, ft).map_err(|e| format!("attribute {k:?}: {e}"))?,
                        );
                    }
                    None if *optional => {
                        out.insert(k.clone(), V::Null);
                    }
                    None => return Err(format!("attribute {k:?} is required")),
                }
            }
            Ok(V::Object(out))
        }
        (t, v) => Err(format!("{} is required, got {}", type_name(t), value_kind(&v))),
    }
}

fn parse_number(s: &str) -> Option<hcl::Value> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Some(hcl::Value::from(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(hcl::Number::from_f64)
        .map(hcl::Value::Number)
}

fn type_name(t: &VarType) -> &'static str {
    match t {
        VarType::Any => "any value",
        VarType::String => "a string",
        VarType::Number => "a number",
        VarType::Bool => "a bool",
        VarType::List(_) => "a list",
        VarType::Map(_) => "a map",
        VarType::Object(_) => "an object",
        VarType::Tuple(_) => "a tuple",
    }
}

fn value_kind(v: &hcl::Value) -> &'static str {
    match v {
        hcl::Value::Null => "null",
        hcl::Value::Bool(_) => "a bool",
        hcl::Value::Number(_) => "a number",
        hcl::Value::String(_) => "a string",
        hcl::Value::Array(_) => "a list",
        hcl::Value::Object(_) => "an object",
    }
}

/// Where variable values come from, besides defaults.
#[derive(Debug, Clone, Default)]
pub struct VarInputs {
    /// `-var name=value`, in order.
    pub cli: Vec<(String, String)>,
    /// Assignments read from `-var-file`s: (file name, source text), in order.
    pub files: Vec<(String, String)>,
    /// `NOMAD_VAR_name` values from the environment.
    pub env: Vec<(String, String)>,
    /// Error (true, Nomad's default) or ignore assignments to undeclared variables.
    pub strict: bool,
}

struct Decl {
    vtype: VarType,
    default: Option<(Expression, Option<Range<usize>>)>,
    validations: Vec<(Expression, Expression, Option<Range<usize>>)>,
    span: Option<Range<usize>>,
}

/// Resolves `variable` blocks and `locals`, binding `var` and `local` in the evaluator.
pub fn resolve(
    body: &Body,
    ev: &mut Evaluator<'_>,
    sm: &SourceMap,
    inputs: &VarInputs,
    diags: &mut Vec<Diagnostic>,
) {
    let mut decls: BTreeMap<String, Decl> = BTreeMap::new();
    for s in body.iter() {
        let Structure::Block(b) = s else { continue };
        match b.ident.as_str() {
            "variable" => {
                let Some(name) = b.labels.first().map(|l| l.as_str().to_string()) else {
                    diags.push(sm.diag(
                        b.span().as_ref(),
                        "Missing variable name",
                        "write variable \"name\" { … }",
                    ));
                    continue;
                };
                if decls.contains_key(&name) {
                    diags.push(sm.diag(
                        b.span().as_ref(),
                        "Duplicate variable declaration",
                        format!("variable {name:?} is declared twice"),
                    ));
                    continue;
                }
                let mut decl = Decl {
                    vtype: VarType::Any,
                    default: None,
                    validations: Vec::new(),
                    span: b.span(),
                };
                for item in b.body.iter() {
                    match item {
                        Structure::Attribute(a) => match a.key.as_str() {
                            "type" => match parse_type(&a.value) {
                                Ok(t) => decl.vtype = t,
                                Err(e) => {
                                    diags.push(sm.diag(a.span().as_ref(), "Invalid type specification", e))
                                }
                            },
                            "default" => decl.default = Some((a.value.clone(), a.span())),
                            "description" | "sensitive" | "nullable" => {}
                            other => diags.push(sm.diag(
                                a.span().as_ref(),
                                "Unsupported argument",
                                format!("an argument named {other:?} is not expected in a variable block"),
                            )),
                        },
                        Structure::Block(vb) if vb.ident.as_str() == "validation" => {
                            let cond = vb.body.get_attribute("condition").map(|a| a.value.clone());
                            let msg = vb.body.get_attribute("error_message").map(|a| a.value.clone());
                            match (cond, msg) {
                                (Some(c), Some(m)) => decl.validations.push((c, m, vb.span())),
                                _ => diags.push(sm.diag(
                                    vb.span().as_ref(),
                                    "Invalid validation block",
                                    "a validation block needs condition and error_message",
                                )),
                            }
                        }
                        Structure::Block(other) => diags.push(sm.diag(
                            other.span().as_ref(),
                            "Unsupported block type",
                            format!(
                                "blocks of type {:?} are not expected in a variable block",
                                other.ident.as_str()
                            ),
                        )),
                    }
                }
                decls.insert(name, decl);
            }
            "variables" => {
                for item in b.body.iter() {
                    if let Structure::Attribute(a) = item {
                        decls.insert(
                            a.key.as_str().to_string(),
                            Decl {
                                vtype: VarType::Any,
                                default: Some((a.value.clone(), a.span())),
                                validations: Vec::new(),
                                span: a.span(),
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }

    // Values, lowest precedence first.
    let mut values: HashMap<String, hcl::Value> = HashMap::new();
    // Variables given a value that did not convert: already reported, not "unset".
    let mut failed: HashSet<String> = HashSet::new();
    for (name, d) in &decls {
        if let Some((expr, span)) = &d.default {
            // Defaults cannot refer to other variables; runtime references pass through.
            let defaults_ev = Evaluator::new(ev.source());
            match defaults_ev.eval_hcl(expr) {
                Ok(v) => {
                    values.insert(name.clone(), v);
                }
                Err(e) => diags.push(sm.diag(
                    e.span.as_ref().or(span.as_ref()),
                    "Invalid default value",
                    e.message,
                )),
            }
        }
    }
    for (name, raw) in &inputs.env {
        if let Some(d) = decls.get(name) {
            match literal_or_expr(raw, &d.vtype) {
                Ok(v) => {
                    values.insert(name.clone(), v);
                }
                Err(e) => diags.push({
                    failed.insert(name.clone());
                    Diagnostic {
                        file: format!("NOMAD_VAR_{name}"),
                        line: 0,
                        col: 0,
                        summary: "Invalid value for variable".into(),
                        detail: e,
                    }
                }),
            }
        }
    }
    for (file, text) in &inputs.files {
        read_var_file(file, text, &decls, inputs.strict, &mut values, diags);
    }
    for (name, raw) in &inputs.cli {
        match decls.get(name) {
            Some(d) => match literal_or_expr(raw, &d.vtype) {
                Ok(v) => {
                    values.insert(name.clone(), v);
                }
                Err(e) => diags.push({
                    failed.insert(name.clone());
                    Diagnostic {
                        file: format!("-var {name}"),
                        line: 0,
                        col: 0,
                        summary: "Invalid value for variable".into(),
                        detail: e,
                    }
                }),
            },
            None if inputs.strict => diags.push(Diagnostic {
                file: format!("-var {name}"),
                line: 0,
                col: 0,
                summary: "Undefined variable".into(),
                detail: format!("a variable named {name:?} was assigned but is not declared in the job file"),
            }),
            None => {}
        }
    }

    let mut var_obj = hcl::Map::new();
    for (name, d) in &decls {
        match values.remove(name) {
            Some(v) => match convert(v, &d.vtype) {
                Ok(v) => {
                    var_obj.insert(name.clone(), v);
                }
                Err(e) => {
                    diags.push(sm.diag(d.span.as_ref(), format!("Invalid value for variable {name:?}"), e))
                }
            },
            None if failed.contains(name) => {}
            None => diags.push(sm.diag(
                d.span.as_ref(),
                format!("Unset variable {name:?}"),
                "a variable must have a default or be set with -var, -var-file or NOMAD_VAR_".to_string()
                    + name,
            )),
        }
    }
    let set: HashSet<String> = var_obj.keys().cloned().collect();
    ev.bind("var", hcl::Value::Object(var_obj));

    for (name, d) in decls.iter() {
        if !set.contains(name) {
            continue; // unset or invalid: already reported
        }
        for (cond, msg, span) in &d.validations {
            match ev.eval_hcl(cond) {
                Ok(hcl::Value::Bool(true)) => {}
                Ok(hcl::Value::Bool(false)) => {
                    let text = match ev.eval_hcl(msg) {
                        Ok(hcl::Value::String(s)) => s,
                        _ => "validation failed".into(),
                    };
                    diags.push(sm.diag(span.as_ref(), "Invalid value for variable", text));
                }
                Ok(other) => diags.push(sm.diag(
                    span.as_ref(),
                    "Invalid validation condition",
                    format!("the condition must be true or false, got {other}"),
                )),
                Err(e) => diags.push(sm.diag(
                    e.span.as_ref().or(span.as_ref()),
                    "Invalid validation condition",
                    e.message,
                )),
            }
        }
    }

    resolve_locals(body, ev, sm, diags);
}

fn literal_or_expr(raw: &str, t: &VarType) -> Result<hcl::Value, String> {
    if t.is_primitive() {
        return convert(hcl::Value::String(raw.to_string()), t);
    }
    let expr = hcl_edit::parser::parse_expr(raw)
        .map_err(|e| format!("{raw:?} is not a valid HCL value: {}", e.message()))?;
    let v = Evaluator::new(raw).eval_hcl(&expr).map_err(|e| e.message)?;
    convert(v, t)
}

fn read_var_file(
    file: &str,
    text: &str,
    decls: &BTreeMap<String, Decl>,
    strict: bool,
    values: &mut HashMap<String, hcl::Value>,
    diags: &mut Vec<Diagnostic>,
) {
    let sm = SourceMap::new(file, text);
    let mut assign = |name: &str, v: hcl::Value, span: Option<&Range<usize>>, diags: &mut Vec<Diagnostic>| {
        if decls.contains_key(name) {
            values.insert(name.to_string(), v);
        } else if strict {
            diags.push(sm.diag(
                span,
                "Undefined variable",
                format!("a variable named {name:?} was assigned but is not declared in the job file"),
            ));
        }
    };
    if text.trim_start().starts_with('{') {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(o)) => {
                for (k, v) in o {
                    assign(&k, crate::eval::json_to_hcl(&v), None, diags);
                }
            }
            Ok(_) => diags.push(sm.diag(
                None,
                "Invalid variables file",
                "a JSON variables file must hold one object",
            )),
            Err(e) => diags.push(Diagnostic {
                file: file.to_string(),
                line: e.line(),
                col: e.column().max(1),
                summary: "Invalid JSON".into(),
                detail: e.to_string(),
            }),
        }
        return;
    }
    let body = match hcl_edit::parser::parse_body(text) {
        Ok(b) => b,
        Err(e) => {
            diags.push(crate::parse_error_diag(file, &e));
            return;
        }
    };
    let ev = Evaluator::new(text);
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => match ev.eval_hcl(&a.value) {
                Ok(v) => assign(a.key.as_str(), v, a.span().as_ref(), diags),
                Err(e) => diags.push(sm.diag(e.span.as_ref(), "Invalid value", e.message)),
            },
            Structure::Block(b) => diags.push(sm.diag(
                b.span().as_ref(),
                "Unexpected block in variables file",
                "a variables file holds only assignments like name = \"value\"; declare variables in the job file",
            )),
        }
    }
}

/// Collects the names `local.X` an expression refers to.
struct LocalRefs(HashSet<String>);

impl Visit for LocalRefs {
    fn visit_expr(&mut self, node: &Expression) {
        if let Expression::Traversal(t) = node
            && let Expression::Variable(v) = &t.expr
            && v.as_str() == "local"
            && let Some(first) = t.operators.first()
            && let TraversalOperator::GetAttr(name) = first.value()
        {
            self.0.insert(name.as_str().to_string());
        }
        visit_expr(self, node);
    }
}

fn resolve_locals(body: &Body, ev: &mut Evaluator<'_>, sm: &SourceMap, diags: &mut Vec<Diagnostic>) {
    // (name, expression, span, names of the locals it refers to)
    type Pending = (String, Expression, Option<Range<usize>>, HashSet<String>);
    let mut pending: Vec<Pending> = Vec::new();
    let mut seen = HashSet::new();
    for s in body.iter() {
        let Structure::Block(b) = s else { continue };
        if b.ident.as_str() != "locals" {
            continue;
        }
        for item in b.body.iter() {
            match item {
                Structure::Attribute(a) => {
                    let name = a.key.as_str().to_string();
                    if !seen.insert(name.clone()) {
                        diags.push(sm.diag(
                            a.span().as_ref(),
                            "Duplicate local value",
                            format!("local.{name} is defined twice"),
                        ));
                        continue;
                    }
                    let mut refs = LocalRefs(HashSet::new());
                    refs.visit_expr(&a.value);
                    pending.push((name, a.value.clone(), a.span(), refs.0));
                }
                Structure::Block(bb) => diags.push(sm.diag(
                    bb.span().as_ref(),
                    "Unexpected block in locals",
                    "locals hold only assignments like name = expression",
                )),
            }
        }
    }
    let mut done = hcl::Map::new();
    ev.bind("local", hcl::Value::Object(done.clone()));
    // Evaluate in dependency order: each pass evaluates the locals whose references are all
    // known. A pass that makes no progress means a cycle or a reference to an undefined local.
    while !pending.is_empty() {
        let (ready, waiting): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, _, _, refs)| refs.iter().all(|r| done.contains_key(r) || !seen.contains(r)));
        if ready.is_empty() {
            for (name, _, span, refs) in &waiting {
                let missing: Vec<&String> = refs.iter().filter(|r| !done.contains_key(*r)).collect();
                diags.push(sm.diag(
                    span.as_ref(),
                    "Cycle in local values",
                    format!("local.{name} depends on {missing:?}, which depend on it in turn"),
                ));
            }
            break;
        }
        for (name, expr, span, _) in ready {
            match ev.eval_hcl(&expr) {
                Ok(v) => {
                    done.insert(name, v);
                }
                Err(e) => diags.push(sm.diag(
                    e.span.as_ref().or(span.as_ref()),
                    format!("Invalid local value {name:?}"),
                    e.message,
                )),
            }
        }
        ev.bind("local", hcl::Value::Object(done.clone()));
        pending = waiting;
    }
}
