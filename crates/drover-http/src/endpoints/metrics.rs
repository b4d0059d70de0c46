//! `GET /v1/metrics`: the server's counters and gauges, as go-metrics JSON (default) or
//! Prometheus text (`?format=prometheus`), `reference/http-api.md` §3.12.
//!
//! ```text
//!  Server::{broker_stats, blocked_stats, stats, raft_stats} + snapshot counts
//!      └─▶ [Metric { name: "nomad.nomad.broker.total_ready", kind, value }]
//!             ├─ JSON:       {"Timestamp", "Gauges": [...], "Counters": [...], "Points": [], "Samples": []}
//!             └─ Prometheus: # TYPE nomad_nomad_broker_total_ready gauge\nnomad_nomad_broker_total_ready 0
//! ```
//!
//! Names follow Nomad's (`nomad.nomad.broker.*`, `nomad.nomad.blocked_evals.*`,
//! `nomad.nomad.plan.*`, `nomad.nomad.heartbeat.*`, `nomad.raft.*`, `nomad.nomad.job_status.*`).
//! Limitation: counters are totals since the server started, not go-metrics' ten-second
//! interval aggregates (`Count` = `Sum` = the total, `Rate` = total / 10).

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::only_get;
use crate::error::ApiError;
use crate::request::Req;
use crate::{AppState, respond};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

#[derive(Debug, Clone)]
struct Metric {
    name: String,
    kind: Kind,
    value: f64,
    labels: BTreeMap<String, String>,
}

fn gauge(name: impl Into<String>, value: f64) -> Metric {
    Metric {
        name: name.into(),
        kind: Kind::Gauge,
        value,
        labels: BTreeMap::new(),
    }
}

fn counter(name: impl Into<String>, value: f64) -> Metric {
    Metric {
        name: name.into(),
        kind: Kind::Counter,
        value,
        labels: BTreeMap::new(),
    }
}

fn collect(st: &AppState) -> Vec<Metric> {
    let mut m = Vec::new();
    let b = st.server.broker_stats();
    m.push(gauge("nomad.nomad.broker.total_ready", b.total_ready as f64));
    m.push(gauge("nomad.nomad.broker.total_unacked", b.total_unacked as f64));
    m.push(gauge("nomad.nomad.broker.total_pending", b.total_pending as f64));
    m.push(gauge("nomad.nomad.broker.total_waiting", b.total_waiting as f64));
    m.push(gauge(
        "nomad.nomad.broker.total_cancelable",
        b.total_cancelable as f64,
    ));
    for (sched, n) in &b.by_scheduler {
        m.push(gauge(format!("nomad.nomad.broker.{sched}_ready"), *n as f64));
    }
    let bl = st.server.blocked_stats();
    m.push(gauge(
        "nomad.nomad.blocked_evals.total_blocked",
        bl.total_blocked as f64,
    ));
    m.push(gauge(
        "nomad.nomad.blocked_evals.total_escaped",
        bl.total_escaped as f64,
    ));
    m.push(gauge(
        "nomad.nomad.blocked_evals.total_system",
        bl.total_system as f64,
    ));
    let s = st.server.stats();
    m.push(counter("nomad.nomad.plan.apply", s.plans_applied as f64));
    m.push(counter("nomad.nomad.plan.partial", s.plans_partial as f64));
    m.push(counter(
        "nomad.nomad.worker.evals_processed",
        s.evals_processed as f64,
    ));
    m.push(counter("nomad.nomad.worker.evals_nacked", s.evals_nacked as f64));
    m.push(counter(
        "nomad.nomad.heartbeat.invalidate",
        s.heartbeats_missed as f64,
    ));
    for (k, v) in st.server.raft_stats() {
        if let Ok(x) = v.parse::<f64>() {
            m.push(gauge(format!("nomad.raft.{k}"), x));
        }
    }
    let snap = st.server.snapshot();
    let mut status: BTreeMap<&str, f64> = [("pending", 0.0), ("running", 0.0), ("dead", 0.0)].into();
    for j in snap.jobs() {
        if let Some(n) = status.get_mut(j.status.as_str()) {
            *n += 1.0;
        }
    }
    for (k, n) in status {
        m.push(gauge(format!("nomad.nomad.job_status.{k}"), n));
    }
    let nodes = snap.nodes();
    m.push(gauge(
        "nomad.nomad.heartbeat.active",
        nodes.iter().filter(|n| !n.terminal()).count() as f64,
    ));
    m.push(gauge("nomad.state.index", snap.latest_index() as f64));
    m
}

/// go-metrics' timestamp form: `2024-01-01 10:00:00 +0000 UTC`.
fn go_timestamp() -> String {
    let now = drover_types::time::Timestamp(drover_server::now_unix()).to_rfc3339();
    let (date, time) = now.split_once('T').unwrap_or((now.as_str(), "00:00:00"));
    format!("{date} {} +0000 UTC", time.get(..8).unwrap_or(time))
}

/// A Prometheus metric name: dots and other invalid characters become `_`.
fn prometheus_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn prometheus_text(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        let name = prometheus_name(&m.name);
        let kind = match m.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let labels = if m.labels.is_empty() {
            String::new()
        } else {
            let inner: Vec<String> = m
                .labels
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}=\"{}\"",
                        prometheus_name(k),
                        v.replace('\\', "\\\\").replace('"', "\\\"")
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        };
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {name} {name}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{labels} {}", m.value);
    }
    out
}

fn json_body(metrics: &[Metric]) -> Value {
    let gauges: Vec<Value> = metrics
        .iter()
        .filter(|m| m.kind == Kind::Gauge)
        .map(|m| json!({"Name": m.name, "Value": m.value, "Labels": m.labels}))
        .collect();
    let counters: Vec<Value> = metrics
        .iter()
        .filter(|m| m.kind == Kind::Counter)
        .map(|m| {
            let one = if m.value > 0.0 { 1.0 } else { 0.0 };
            json!({
                "Name": m.name,
                "Count": m.value as u64,
                "Rate": m.value / 10.0,
                "Sum": m.value,
                "Min": one,
                "Max": one,
                "Mean": one,
                "Stddev": 0.0,
                "Labels": m.labels,
            })
        })
        .collect();
    json!({
        "Timestamp": go_timestamp(),
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": [],
    })
}

/// `GET /v1/metrics[?format=prometheus]`.
pub(crate) async fn metrics(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_get(&req)?;
    let metrics = collect(&st);
    if req.get("format") == Some("prometheus") {
        if !st.agent.prometheus_metrics {
            return Err(ApiError::UnsupportedMediaType("Prometheus is not enabled".into()));
        }
        let mut resp = prometheus_text(&metrics).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return Ok(resp);
    }
    respond::json(&req, &json_body(&metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_format() {
        let text = prometheus_text(&[
            gauge("nomad.nomad.broker.total_ready", 3.0),
            counter("nomad.nomad.plan.apply", 2.0),
        ]);
        assert!(
            text.contains("# TYPE nomad_nomad_broker_total_ready gauge\nnomad_nomad_broker_total_ready 3\n")
        );
        assert!(text.contains("# TYPE nomad_nomad_plan_apply counter\nnomad_nomad_plan_apply 2\n"));
    }

    #[test]
    fn timestamp_shape() {
        let t = go_timestamp();
        assert!(t.ends_with(" +0000 UTC"), "{t}");
        assert_eq!(t.len(), "2024-01-01 10:00:00 +0000 UTC".len(), "{t}");
    }
}
