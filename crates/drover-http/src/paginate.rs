//! List endpoints: order, `prefix` / `namespace` selection, `filter`, and `per_page` +
//! `next_token` pagination (`reference/http-api.md` §1.6), in one place.
//!
//! ```text
//!  objects ─ sort by key (reverse?) ─ skip keys before next_token ─ keep(prefix, namespace)
//!          ─ filter(full object JSON) ─ take per_page ─▶ items + next token (= key of the
//!                                                         first item of the next page)
//! ```
//!
//! Pagination resumes *inclusively*: the token names the first item of the next page. Keys are
//! compared as tuples, not as token strings, so `9.x` sorts before `10.y` and a namespace
//! sorts before its jobs whatever characters the IDs hold.

use serde::Serialize;

use crate::error::ApiError;
use crate::filter::Filter;
use crate::request::QueryOptions;

/// A sort key: (create index, namespace, ID); unused parts are zero / empty.
pub(crate) type Key = (u64, String, String);

/// How an endpoint orders its items and spells its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Jobs: namespace, then ID; token `<namespace>.<id>`.
    NamespaceId,
    /// Nodes, and prefix-filtered allocation / evaluation / deployment lists: ID; token `<id>`.
    Id,
    /// Allocations, evaluations, deployments: create index, then ID; token `<index>.<id>`.
    CreateIndex,
}

impl Order {
    /// The key of an object.
    pub fn key(self, create_index: u64, namespace: &str, id: &str) -> Key {
        match self {
            Order::NamespaceId => (0, namespace.to_string(), id.to_string()),
            Order::Id => (0, String::new(), id.to_string()),
            Order::CreateIndex => (create_index, String::new(), id.to_string()),
        }
    }

    fn token(self, k: &Key) -> String {
        match self {
            Order::NamespaceId => format!("{}.{}", k.1, k.2),
            Order::Id => k.2.clone(),
            Order::CreateIndex => format!("{}.{}", k.0, k.2),
        }
    }

    fn parse(self, token: &str) -> Key {
        match self {
            Order::NamespaceId => match token.split_once('.') {
                Some((ns, id)) => (0, ns.to_string(), id.to_string()),
                None => (0, token.to_string(), String::new()),
            },
            Order::Id => (0, String::new(), token.to_string()),
            Order::CreateIndex => match token.split_once('.').map(|(i, id)| (i.parse::<u64>(), id)) {
                Some((Ok(i), id)) => (i, String::new(), id.to_string()),
                _ => (0, String::new(), token.to_string()),
            },
        }
    }
}

/// Parses `?filter`, with the error text the `nomad` CLI recognises.
pub(crate) fn parse_filter(q: &QueryOptions) -> Result<Option<Filter>, ApiError> {
    q.filter
        .as_deref()
        .map(|f| {
            Filter::parse(f)
                .map_err(|e| ApiError::BadRequest(format!("failed to create result paginator: {e}")))
        })
        .transpose()
}

/// Selects, filters and pages `objs`; `key` orders them, `keep` applies prefix / namespace
/// selection, `map` builds the list item. Returns the items and the next page's token.
pub(crate) fn page<O: Serialize, T>(
    q: &QueryOptions,
    order: Order,
    mut objs: Vec<O>,
    key: impl Fn(&O) -> Key,
    keep: impl Fn(&O) -> bool,
    map: impl Fn(&O) -> T,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let filter = parse_filter(q)?;
    let mut keyed: Vec<(Key, O)> = objs.drain(..).map(|o| (key(&o), o)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    if q.reverse {
        keyed.reverse();
    }
    let start = (!q.next_token.is_empty()).then(|| order.parse(&q.next_token));
    let mut items = Vec::new();
    let mut next = None;
    for (k, o) in &keyed {
        if let Some(s) = &start {
            let before = if q.reverse { k > s } else { k < s };
            if before {
                continue;
            }
        }
        if !keep(o) {
            continue;
        }
        if let Some(f) = &filter {
            let v = serde_json::to_value(o).map_err(|e| ApiError::Internal(format!("encode failed: {e}")))?;
            if !f.matches(&v) {
                continue;
            }
        }
        if q.per_page.is_some_and(|n| items.len() >= n) {
            next = Some(order.token(k));
            break;
        }
        items.push(map(o));
    }
    Ok((items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(per_page: Option<usize>, next: &str, reverse: bool) -> QueryOptions {
        QueryOptions {
            index: 0,
            wait: std::time::Duration::ZERO,
            prefix: String::new(),
            namespace: "default".into(),
            filter: None,
            per_page,
            next_token: next.into(),
            reverse,
        }
    }

    #[test]
    fn pages_by_create_index_numerically() {
        let objs: Vec<(u64, String)> = vec![(10, "b".into()), (9, "a".into()), (11, "c".into())];
        let k = |o: &(u64, String)| Order::CreateIndex.key(o.0, "", &o.1);
        let (items, next) = page(
            &opts(Some(2), "", false),
            Order::CreateIndex,
            objs.clone(),
            k,
            |_| true,
            |o| o.1.clone(),
        )
        .unwrap();
        assert_eq!(items, vec!["a", "b"]);
        assert_eq!(next.as_deref(), Some("11.c"));
        let (items, next) = page(
            &opts(Some(2), "11.c", false),
            Order::CreateIndex,
            objs.clone(),
            k,
            |_| true,
            |o| o.1.clone(),
        )
        .unwrap();
        assert_eq!(items, vec!["c"]);
        assert_eq!(next, None);
        let (items, _) = page(
            &opts(None, "10.b", true),
            Order::CreateIndex,
            objs,
            k,
            |_| true,
            |o| o.1.clone(),
        )
        .unwrap();
        assert_eq!(items, vec!["b", "a"]);
    }
}
