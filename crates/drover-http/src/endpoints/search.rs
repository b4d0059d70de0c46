//! `PUT|POST /v1/search`: ID-prefix search over jobs, evaluations, allocations, nodes and
//! deployments (`{"Prefix": "ab12", "Context": "all"}`), at most 20 matches per context with
//! `Truncations[ctx] = true` beyond that. Jobs, evaluations, allocations and deployments are
//! limited to `?namespace` (`*` = all).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use drover_state::{StateSnapshot, Table};
use serde::{Deserialize, Serialize};

use super::{decode_body, only_write};
use crate::blocking::{self, tables_index};
use crate::error::ApiError;
use crate::request::{QueryOptions, Req};
use crate::{AppState, respond};

/// Matches returned per context.
pub const MAX_MATCHES: usize = 20;

/// The contexts searched, and for `all`.
const CONTEXTS: [&str; 5] = ["allocs", "deployment", "evals", "jobs", "nodes"];

/// Contexts Nomad knows that hold nothing here (answered with no matches).
const EMPTY_CONTEXTS: [&str; 9] = [
    "namespaces",
    "node_pools",
    "quotas",
    "recommendations",
    "scaling_policy",
    "plugins",
    "vars",
    "volumes",
    "host_volumes",
];

/// The search request.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct SearchRequest {
    prefix: String,
    context: String,
}

/// `SearchResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct SearchResponse {
    matches: BTreeMap<String, Vec<String>>,
    truncations: BTreeMap<String, bool>,
    index: u64,
    last_contact: u64,
    known_leader: bool,
    next_token: String,
}

fn table_of(ctx: &str) -> Option<Table> {
    Some(match ctx {
        "allocs" => Table::Allocs,
        "deployment" => Table::Deployments,
        "evals" => Table::Evals,
        "jobs" => Table::Jobs,
        "nodes" => Table::Nodes,
        _ => return None,
    })
}

fn ids(s: &StateSnapshot, ctx: &str, q: &QueryOptions, prefix: &str) -> Vec<String> {
    let ns = |n: &str| q.namespace_matches(n);
    let mut out: Vec<String> = match ctx {
        "allocs" => s
            .allocs()
            .iter()
            .filter(|a| ns(&a.namespace))
            .map(|a| a.id.clone())
            .collect(),
        "deployment" => s
            .deployments()
            .iter()
            .filter(|d| ns(&d.namespace))
            .map(|d| d.id.clone())
            .collect(),
        "evals" => s
            .evals()
            .iter()
            .filter(|e| ns(&e.namespace))
            .map(|e| e.id.clone())
            .collect(),
        "jobs" => s
            .jobs()
            .iter()
            .filter(|j| ns(&j.namespace))
            .map(|j| j.id.clone())
            .collect(),
        "nodes" => s.nodes().iter().map(|n| n.id.clone()).collect(),
        _ => Vec::new(),
    };
    out.retain(|id| id.starts_with(prefix));
    out.sort();
    out.dedup();
    out
}

/// `PUT|POST /v1/search`.
pub(crate) async fn prefix_search(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_write(&req)?;
    let body: SearchRequest = decode_body(&req)?;
    let contexts: Vec<&str> = match body.context.as_str() {
        "all" => CONTEXTS.to_vec(),
        c if table_of(c).is_some() || EMPTY_CONTEXTS.contains(&c) => vec![c],
        "" => return Err(ApiError::BadRequest("Context must be specified".into())),
        other => {
            return Err(ApiError::BadRequest(format!(
                "context must be one of {CONTEXTS:?}, \"all\"; got {other:?}"
            )));
        }
    };
    let q = req.query_options()?;
    let tables: Vec<Table> = contexts.iter().filter_map(|c| table_of(c)).collect();
    let ((matches, truncations), index) = blocking::run(&st, &req, &q, &tables, |s| {
        let mut matches = BTreeMap::new();
        let mut truncations = BTreeMap::new();
        for ctx in &contexts {
            let mut found = ids(s, ctx, &q, &body.prefix);
            let truncated = found.len() > MAX_MATCHES;
            found.truncate(MAX_MATCHES);
            matches.insert(ctx.to_string(), found);
            truncations.insert(ctx.to_string(), truncated);
        }
        Ok(((matches, truncations), tables_index(s, &tables)))
    })
    .await?;
    let body = SearchResponse {
        matches,
        truncations,
        index: index.max(1),
        last_contact: 0,
        known_leader: respond::known_leader(&st),
        next_token: String::new(),
    };
    respond::query(&st, &req, &body, index, None)
}
