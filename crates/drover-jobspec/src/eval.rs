//! Expression evaluation with Nomad's job-file semantics.
//!
//! ```text
//!  hcl-edit Expression (with source spans)
//!     │  Rewriter: every reference whose root is not bound (var, local, an iterator) becomes a
//!     │            fresh variable whose value is its own source text wrapped in `${…}`;
//!     │            try(…)/can(…) are evaluated here, argument by argument, catching errors
//!     ▼
//!  hcl-rs Expression ──evaluate(Context: var, local, functions, runtime texts)──▶ hcl::Value
//!     ▼
//!  serde_json::Value
//! ```
//!
//! Why the rewrite: a job file mixes values known when the file is parsed (`var.dc`,
//! `local.x`, functions) with values only the client knows when the task starts
//! (`${NOMAD_ALLOC_ID}`, `${attr.kernel.name}`, `${node.unique.name}`, `${meta.rack}`,
//! `${env["HOME"]}`). Nomad keeps the latter verbatim so the client can interpolate them later.
//! Replacing each such reference with a variable holding its source text makes
//! `"pre-${var.dc}-${node.unique.name}"` evaluate to `"pre-dc1-${node.unique.name}"`, inside
//! templates, heredocs, function calls and lists alike.

use std::collections::HashSet;
use std::ops::Range;

use hcl::eval::{Context, Evaluate};
use hcl_edit::Span;
use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::visit_mut::{VisitMut, visit_expr_mut};

/// Evaluates expressions of one job file.
#[derive(Debug, Clone)]
pub struct Evaluator<'src> {
    src: &'src str,
    ctx: Context<'static>,
    bound: HashSet<String>,
}

/// An evaluation failure with the span of the expression that failed.
#[derive(Debug, Clone)]
pub struct EvalError {
    /// Byte range in the source.
    pub span: Option<Range<usize>>,
    /// What went wrong.
    pub message: String,
}

impl<'src> Evaluator<'src> {
    /// An evaluator over `src` with the function library registered and nothing bound.
    pub fn new(src: &'src str) -> Self {
        let mut ctx = Context::new();
        crate::functions::register_all(&mut ctx);
        register_arithmetic(&mut ctx);
        Evaluator {
            src,
            ctx,
            bound: HashSet::new(),
        }
    }

    /// Binds a root name (`var`, `local`, an iterator) to a value.
    pub fn bind(&mut self, name: &str, value: hcl::Value) {
        self.bound.insert(name.to_string());
        self.ctx.declare_var(name.to_string(), value);
    }

    /// Is this root name bound?
    pub fn is_bound(&self, name: &str) -> bool {
        self.bound.contains(name)
    }

    /// The whole source text.
    pub fn source(&self) -> &'src str {
        self.src
    }

    /// The source text of a span (empty when out of range).
    pub fn slice(&self, span: &Range<usize>) -> &'src str {
        self.src.get(span.clone()).unwrap_or("")
    }

    /// Evaluates to an HCL value.
    pub fn eval_hcl(&self, expr: &Expression) -> Result<hcl::Value, EvalError> {
        let mut e = expr.clone();
        let mut rw = Rewriter {
            ev: self,
            scopes: Vec::new(),
            runtime: Vec::new(),
            error: None,
        };
        rw.visit_expr_mut(&mut e);
        if let Some(err) = rw.error {
            return Err(err);
        }
        let runtime = rw.runtime;
        let converted: hcl::Expression = e.into();
        let result = if runtime.is_empty() {
            converted.evaluate(&self.ctx)
        } else {
            let mut ctx = self.ctx.clone();
            for (name, text) in runtime {
                ctx.declare_var(name, hcl::Value::String(text));
            }
            converted.evaluate(&ctx)
        };
        result.map_err(|e| EvalError {
            span: expr.span(),
            message: clean_message(&e.to_string()),
        })
    }

    /// Evaluates to JSON.
    pub fn eval(&self, expr: &Expression) -> Result<serde_json::Value, EvalError> {
        let v = self.eval_hcl(expr)?;
        Ok(hcl_to_json(v))
    }
}

/// Converts an HCL value to JSON (integers stay integers).
pub fn hcl_to_json(v: hcl::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        hcl::Value::Null => J::Null,
        hcl::Value::Bool(b) => J::Bool(b),
        hcl::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                J::from(i)
            } else if let Some(u) = n.as_u64() {
                J::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(J::Number)
                    .unwrap_or(J::Null)
            }
        }
        hcl::Value::String(s) => J::String(s),
        hcl::Value::Array(a) => J::Array(a.into_iter().map(hcl_to_json).collect()),
        hcl::Value::Object(o) => J::Object(o.into_iter().map(|(k, v)| (k, hcl_to_json(v))).collect()),
    }
}

/// Converts JSON to an HCL value.
pub fn json_to_hcl(v: &serde_json::Value) -> hcl::Value {
    use serde_json::Value as J;
    match v {
        J::Null => hcl::Value::Null,
        J::Bool(b) => hcl::Value::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                hcl::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                hcl::Value::from(u)
            } else {
                n.as_f64()
                    .and_then(hcl::Number::from_f64)
                    .map(hcl::Value::Number)
                    .unwrap_or(hcl::Value::Null)
            }
        }
        J::String(s) => hcl::Value::String(s.clone()),
        J::Array(a) => hcl::Value::Array(a.iter().map(json_to_hcl).collect()),
        J::Object(o) => hcl::Value::Object(o.iter().map(|(k, v)| (k.clone(), json_to_hcl(v))).collect()),
    }
}

fn clean_message(m: &str) -> String {
    // hcl-rs appends the failing expression ("in expression `…`"); our diagnostics already point
    // at the line, so keep the first line only, and name internal runtime variables plainly.
    let first = m.lines().next().unwrap_or(m).trim();
    let first = match first.find(" in expression `") {
        Some(i) => &first[..i],
        None => first,
    };
    let first = first.strip_prefix("error calling function ").unwrap_or(first);
    // "`file`: file: no such file" → "file: no such file"
    let first = match first.strip_prefix('`').and_then(|r| r.split_once("`: ")) {
        Some((name, rest)) if rest.starts_with(&format!("{name}:")) => rest,
        _ => first,
    };
    first
        .replace("__drover_rt_", "runtime reference ")
        .replace("`__drover_", "`arithmetic ")
}

struct Rewriter<'a, 'src> {
    ev: &'a Evaluator<'src>,
    /// Names bound by enclosing `for` expressions (values unknown at rewrite time).
    scopes: Vec<Vec<String>>,
    runtime: Vec<(String, String)>,
    error: Option<EvalError>,
}

impl Rewriter<'_, '_> {
    fn bound(&self, name: &str) -> bool {
        self.ev.is_bound(name) || self.scopes.iter().any(|s| s.iter().any(|n| n == name))
    }

    fn runtime_var(&mut self, text: String) -> Expression {
        let name = format!("__drover_rt_{}", self.runtime.len());
        self.runtime.push((name.clone(), format!("${{{text}}}")));
        match hcl_edit::Ident::try_from(name) {
            Ok(id) => Expression::Variable(id.into()),
            // The name is built from ASCII letters, digits and underscores, so it is always a
            // valid identifier; fall back to a literal rather than panicking.
            Err(_) => Expression::Null(hcl_edit::expr::Null.into()),
        }
    }

    fn text_of(&self, span: Option<Range<usize>>, fallback: &str) -> String {
        match span {
            Some(s) => {
                let t = self.ev.slice(&s).trim();
                if t.is_empty() {
                    fallback.to_string()
                } else {
                    t.to_string()
                }
            }
            None => fallback.to_string(),
        }
    }

    /// try/can evaluated as special forms. Returns None when an argument depends on a `for`
    /// iterator (then the plain fallback functions run inside hcl-rs).
    fn special_form(&mut self, name: &str, args: &[Expression]) -> Option<Expression> {
        if !self.scopes.is_empty() {
            return None;
        }
        match name {
            "can" => {
                let ok = args.len() == 1 && self.ev.eval_hcl(&args[0]).is_ok();
                Some(hcl::Expression::from(hcl::Value::Bool(ok)).into())
            }
            "try" => {
                let mut last = None;
                for a in args {
                    match self.ev.eval_hcl(a) {
                        Ok(v) => return Some(hcl::Expression::from(v).into()),
                        Err(e) => last = Some(e),
                    }
                }
                self.error = Some(last.unwrap_or_else(|| EvalError {
                    span: None,
                    message: "try: needs at least one argument".into(),
                }));
                Some(Expression::Null(hcl_edit::expr::Null.into()))
            }
            _ => None,
        }
    }
}

impl VisitMut for Rewriter<'_, '_> {
    fn visit_for_template_expr_mut(&mut self, node: &mut hcl_edit::template::ForTemplateExpr) {
        // `%{ for k, v in coll }`: the iterator names are bound inside the loop body.
        self.visit_expr_mut(&mut node.collection_expr);
        let mut names = vec![node.value_var.as_str().to_string()];
        if let Some(k) = &node.key_var {
            names.push(k.as_str().to_string());
        }
        self.scopes.push(names);
        self.visit_template_mut(&mut node.template);
        self.scopes.pop();
    }

    fn visit_expr_mut(&mut self, node: &mut Expression) {
        match node {
            Expression::Variable(v) => {
                let name = v.as_str().to_string();
                if !self.bound(&name) {
                    let text = self.text_of(v.span(), &name);
                    *node = self.runtime_var(text);
                }
            }
            Expression::Traversal(t) => {
                if let Expression::Variable(root) = &t.expr
                    && !self.bound(root.as_str())
                {
                    let fallback = fallback_traversal_text(root.as_str(), &t.operators);
                    let text = self.text_of(t.span(), &fallback);
                    *node = self.runtime_var(text);
                    return;
                }
                visit_expr_mut(self, node);
            }
            Expression::BinaryOp(op) => {
                use hcl_edit::expr::BinaryOperator as B;
                let func = match op.operator.value() {
                    B::Plus => Some("__drover_add"),
                    B::Minus => Some("__drover_sub"),
                    B::Mul => Some("__drover_mul"),
                    B::Div => Some("__drover_div"),
                    B::Mod => Some("__drover_mod"),
                    _ => None,
                };
                visit_expr_mut(self, node);
                if let (Some(func), Expression::BinaryOp(op)) = (func, &*node) {
                    // Checked arithmetic: hcl-rs overflows or panics on 1 % 0, i64::MIN * -1, ….
                    let args = vec![op.lhs_expr.clone(), op.rhs_expr.clone()];
                    *node = call(func, args);
                }
            }
            Expression::UnaryOp(op) if matches!(op.operator.value(), hcl_edit::expr::UnaryOperator::Neg) => {
                visit_expr_mut(self, node);
                if let Expression::UnaryOp(op) = &*node {
                    *node = call("__drover_neg", vec![op.expr.clone()]);
                }
            }
            Expression::ForExpr(f) => {
                self.visit_expr_mut(&mut f.intro.collection_expr);
                let mut names = vec![f.intro.value_var.as_str().to_string()];
                if let Some(k) = &f.intro.key_var {
                    names.push(k.as_str().to_string());
                }
                self.scopes.push(names);
                if let Some(k) = &mut f.key_expr {
                    self.visit_expr_mut(k);
                }
                self.visit_expr_mut(&mut f.value_expr);
                if let Some(c) = &mut f.cond {
                    self.visit_expr_mut(&mut c.expr);
                }
                self.scopes.pop();
            }
            Expression::FuncCall(fc) if fc.name.namespace.is_empty() => {
                let name = fc.name.name.as_str().to_string();
                if name == "try" || name == "can" {
                    let args: Vec<Expression> = fc.args.iter().cloned().collect();
                    if let Some(replacement) = self.special_form(&name, &args) {
                        *node = replacement;
                        return;
                    }
                }
                visit_expr_mut(self, node);
            }
            _ => visit_expr_mut(self, node),
        }
    }
}

fn call(name: &str, args: Vec<Expression>) -> Expression {
    match hcl_edit::Ident::try_from(name.to_string()) {
        Ok(id) => Expression::FuncCall(Box::new(hcl_edit::expr::FuncCall::new(
            hcl_edit::expr::FuncName::new(id),
            hcl_edit::expr::FuncArgs::from(args),
        ))),
        // Our own fixed names are valid identifiers.
        Err(_) => Expression::Null(hcl_edit::expr::Null.into()),
    }
}

/// A number as an exact integer when it is one, else a float.
enum Num {
    Int(i128),
    Float(f64),
}

fn num(v: &hcl::Value, op: &str) -> Result<Num, String> {
    match v {
        hcl::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Num::Int(i as i128))
            } else if let Some(u) = n.as_u64() {
                Ok(Num::Int(u as i128))
            } else {
                Ok(Num::Float(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        hcl::Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(|i| Num::Int(i as i128))
            .or_else(|_| s.trim().parse::<f64>().map(Num::Float))
            .map_err(|_| format!("{op}: a number is required, got {s:?}")),
        other => Err(format!("{op}: a number is required, got {other}")),
    }
}

fn from_i128(v: i128, op: &str) -> Result<hcl::Value, String> {
    if let Ok(i) = i64::try_from(v) {
        Ok(hcl::Value::from(i))
    } else if let Ok(u) = u64::try_from(v) {
        Ok(hcl::Value::from(u))
    } else {
        Err(format!("{op}: the result {v} is out of range"))
    }
}

fn from_f64(v: f64, op: &str) -> Result<hcl::Value, String> {
    if !v.is_finite() {
        return Err(format!("{op}: the result is not a finite number"));
    }
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return Ok(hcl::Value::from(v as i64));
    }
    hcl::Number::from_f64(v)
        .map(hcl::Value::Number)
        .ok_or_else(|| format!("{op}: the result is not a number"))
}

fn arith(args: &[hcl::Value], op: &str) -> Result<hcl::Value, String> {
    let (a, b) = match args {
        [a, b] => (num(a, op)?, num(b, op)?),
        _ => return Err(format!("{op}: expected two operands")),
    };
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => {
            let r = match op {
                "+" => x.checked_add(y),
                "-" => x.checked_sub(y),
                "*" => x.checked_mul(y),
                "/" => {
                    if y == 0 {
                        return Err("division by zero".into());
                    }
                    if x % y != 0 {
                        return from_f64(x as f64 / y as f64, op);
                    }
                    x.checked_div(y)
                }
                _ => {
                    if y == 0 {
                        return Err("modulo by zero".into());
                    }
                    x.checked_rem(y)
                }
            };
            match r {
                Some(v) => from_i128(v, op),
                None => Err(format!("{op}: integer overflow")),
            }
        }
        (a, b) => {
            let f = |n: Num| match n {
                Num::Int(i) => i as f64,
                Num::Float(f) => f,
            };
            let (x, y) = (f(a), f(b));
            if (op == "/" || op == "%") && y == 0.0 {
                return Err(if op == "/" {
                    "division by zero".into()
                } else {
                    "modulo by zero".into()
                });
            }
            let r = match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" => x / y,
                _ => x % y,
            };
            from_f64(r, op)
        }
    }
}

macro_rules! arith_fn {
    ($name:ident, $op:literal) => {
        fn $name(args: hcl::eval::FuncArgs) -> Result<hcl::Value, String> {
            arith(&args, $op)
        }
    };
}
arith_fn!(arith_add, "+");
arith_fn!(arith_sub, "-");
arith_fn!(arith_mul, "*");
arith_fn!(arith_div, "/");
arith_fn!(arith_mod, "%");

fn arith_neg(args: hcl::eval::FuncArgs) -> Result<hcl::Value, String> {
    let zero = hcl::Value::from(0);
    match args.first() {
        Some(v) => arith(&[zero, v.clone()], "-"),
        None => Err("-: expected an operand".into()),
    }
}

fn register_arithmetic(ctx: &mut Context<'_>) {
    use hcl::eval::{FuncDef, ParamType};
    let two = |f: hcl::eval::Func| {
        FuncDef::builder()
            .param(ParamType::Any)
            .param(ParamType::Any)
            .build(f)
    };
    ctx.declare_func("__drover_add", two(arith_add));
    ctx.declare_func("__drover_sub", two(arith_sub));
    ctx.declare_func("__drover_mul", two(arith_mul));
    ctx.declare_func("__drover_div", two(arith_div));
    ctx.declare_func("__drover_mod", two(arith_mod));
    ctx.declare_func(
        "__drover_neg",
        FuncDef::builder().param(ParamType::Any).build(arith_neg),
    );
}

fn fallback_traversal_text(root: &str, ops: &[hcl_edit::Decorated<TraversalOperator>]) -> String {
    let mut s = root.to_string();
    for op in ops {
        match op.value() {
            TraversalOperator::GetAttr(id) => {
                s.push('.');
                s.push_str(id.as_str());
            }
            TraversalOperator::LegacyIndex(i) => {
                s.push('.');
                s.push_str(&i.to_string());
            }
            _ => s.push_str("[…]"),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_with(src: &str, vars: &[(&str, hcl::Value)]) -> Result<serde_json::Value, EvalError> {
        let full = format!("x = {src}\n");
        let body = hcl_edit::parser::parse_body(&full).expect("parses");
        let attr = body.get_attribute("x").expect("attribute");
        let mut ev = Evaluator::new(&full);
        for (k, v) in vars {
            ev.bind(k, v.clone());
        }
        ev.eval(&attr.value)
    }

    fn var(obj: &[(&str, &str)]) -> hcl::Value {
        hcl::Value::Object(
            obj.iter()
                .map(|(k, v)| (k.to_string(), hcl::Value::from(*v)))
                .collect(),
        )
    }

    #[test]
    fn runtime_references_pass_through() {
        let v = eval_with(
            r#""pre-${var.dc}-${node.unique.name}""#,
            &[("var", var(&[("dc", "dc1")]))],
        )
        .unwrap();
        assert_eq!(v, "pre-dc1-${node.unique.name}");
        let v = eval_with(r#""${NOMAD_TASK_DIR}/bin""#, &[]).unwrap();
        assert_eq!(v, "${NOMAD_TASK_DIR}/bin");
        let v = eval_with(r#"["${attr.kernel.name}", meta.rack]"#, &[]).unwrap();
        assert_eq!(v, serde_json::json!(["${attr.kernel.name}", "${meta.rack}"]));
        let v = eval_with(r#""${env["HOME"]}""#, &[]).unwrap();
        assert_eq!(v, "${env[\"HOME\"]}");
        let v = eval_with(r#"upper("${NOMAD_ALLOC_ID}")"#, &[]).unwrap();
        assert_eq!(v, "${NOMAD_ALLOC_ID}");
    }

    #[test]
    fn escapes_and_heredocs() {
        let v = eval_with(r#""$${literal}""#, &[]).unwrap();
        assert_eq!(v, "${literal}");
        let v = eval_with(
            "<<-EOF\n    a ${var.dc}\n    b\n    EOF",
            &[("var", var(&[("dc", "x")]))],
        )
        .unwrap();
        assert_eq!(v, "a x\nb\n");
    }

    #[test]
    fn for_expressions_bind_their_iterators() {
        let v = eval_with(r#"[for s in ["a", "b"] : upper(s)]"#, &[]).unwrap();
        assert_eq!(v, serde_json::json!(["A", "B"]));
    }

    #[test]
    fn try_and_can_catch_errors() {
        let vars = [("var", var(&[("a", "1")]))];
        assert_eq!(
            eval_with(r#"try(var.missing, "fallback")"#, &vars).unwrap(),
            "fallback"
        );
        assert_eq!(eval_with(r#"can(var.missing)"#, &vars).unwrap(), false);
        assert_eq!(eval_with(r#"can(var.a)"#, &vars).unwrap(), true);
        assert!(eval_with(r#"try(var.missing)"#, &vars).is_err());
    }

    #[test]
    fn errors_carry_spans() {
        let e = eval_with(r#"var.nope"#, &[("var", var(&[]))]).unwrap_err();
        assert_eq!(e.span, Some(4..12));
    }
}
