//! Constraint targets: resolving `${...}` against a node, and spotting targets that make a
//! job or group escape computed-class caching.

use std::borrow::Cow;

use drover_types::Node;
use drover_types::job::Constraint;

/// Resolves a constraint target against a node.
///
/// - a literal (not starting with `${`) resolves to itself;
/// - `${node.unique.id}`, `${node.unique.name}`, `${node.datacenter}`, `${node.class}`
///   (possibly empty), `${node.pool}` (empty reads as `"default"`);
/// - `${attr.<key>}` / `${meta.<key>}`: the attribute / meta value, not found when absent;
/// - anything else (`${node.region}`, which a node does not carry, unknown prefixes, a
///   missing closing brace) is not found.
pub fn resolve_target(target: &str, node: &Node) -> Option<String> {
    resolve_target_ref(target, node).map(Cow::into_owned)
}

/// [`resolve_target`] without copying: the hot path of every constraint check.
pub(crate) fn resolve_target_ref<'a>(target: &'a str, node: &'a Node) -> Option<Cow<'a, str>> {
    if !target.starts_with("${") {
        return Some(Cow::Borrowed(target));
    }
    let value: &str = match target {
        "${node.unique.id}" => &node.id,
        "${node.unique.name}" => &node.name,
        "${node.datacenter}" => &node.datacenter,
        "${node.class}" => &node.node_class,
        "${node.pool}" if node.node_pool.is_empty() => "default",
        "${node.pool}" => &node.node_pool,
        _ => {
            let inner = target.strip_prefix("${")?.strip_suffix('}')?;
            if let Some(key) = inner.strip_prefix("attr.") {
                node.attributes.get(key)?
            } else if let Some(key) = inner.strip_prefix("meta.") {
                node.meta.get(key)?
            } else {
                return None;
            }
        }
    };
    Some(Cow::Borrowed(value))
}

/// Target prefixes that read per-node unique values, which the computed class leaves out.
const UNIQUE_PREFIXES: [&str; 4] = ["${unique.", "${node.unique.", "${attr.unique.", "${meta.unique."];

fn target_is_unique(target: &str) -> bool {
    UNIQUE_PREFIXES.iter().any(|p| target.starts_with(p))
}

/// Does any constraint target (left or right) reference unique properties
/// (`${node.unique.*}`, `${attr.unique.*}`, `${meta.unique.*}`, `${unique.*}`)? Such
/// jobs/groups "escape" class caching: their feasibility must be checked node by node.
pub fn escapes_class(constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .any(|c| target_is_unique(&c.l_target) || target_is_unique(&c.r_target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        let mut n = Node {
            id: "f0b3-node-id".into(),
            name: "client-1".into(),
            datacenter: "dc1".into(),
            node_class: "gpu".into(),
            node_pool: "prod".into(),
            ..Default::default()
        };
        n.attributes.insert("kernel.name".into(), "linux".into());
        n.attributes.insert("unique.hostname".into(), "host-1".into());
        n.meta.insert("rack".into(), "r1".into());
        n.meta.insert("empty".into(), String::new());
        n
    }

    #[test]
    fn every_target_form() {
        let n = node();
        let r = |t: &str| resolve_target(t, &n);
        assert_eq!(r("linux").as_deref(), Some("linux"));
        assert_eq!(r("").as_deref(), Some(""));
        assert_eq!(
            r("a ${attr.kernel.name}").as_deref(),
            Some("a ${attr.kernel.name}"),
            "literal unless it starts with ${{"
        );
        assert_eq!(r("${node.unique.id}").as_deref(), Some("f0b3-node-id"));
        assert_eq!(r("${node.unique.name}").as_deref(), Some("client-1"));
        assert_eq!(r("${node.datacenter}").as_deref(), Some("dc1"));
        assert_eq!(r("${node.class}").as_deref(), Some("gpu"));
        assert_eq!(r("${node.pool}").as_deref(), Some("prod"));
        assert_eq!(r("${attr.kernel.name}").as_deref(), Some("linux"));
        assert_eq!(r("${attr.unique.hostname}").as_deref(), Some("host-1"));
        assert_eq!(r("${meta.rack}").as_deref(), Some("r1"));
        assert_eq!(
            r("${meta.empty}").as_deref(),
            Some(""),
            "present but empty is found"
        );
        assert_eq!(r("${attr.missing}"), None);
        assert_eq!(r("${meta.missing}"), None);
        assert_eq!(r("${node.region}"), None);
        assert_eq!(r("${node.unique.secret}"), None);
        assert_eq!(r("${env.HOME}"), None);
        assert_eq!(r("${attr.kernel.name"), None, "unterminated");
    }

    #[test]
    fn empty_class_and_pool() {
        let n = Node::default();
        assert_eq!(resolve_target("${node.class}", &n).as_deref(), Some(""));
        assert_eq!(resolve_target("${node.pool}", &n).as_deref(), Some("default"));
    }

    #[test]
    fn escaping_targets() {
        let c = |l: &str, r: &str| Constraint {
            l_target: l.into(),
            r_target: r.into(),
            operand: "=".into(),
        };
        assert!(!escapes_class(&[]));
        assert!(!escapes_class(&[
            c("${attr.kernel.name}", "linux"),
            c("${node.class}", "x"),
            c("${meta.rack}", "r1")
        ]));
        assert!(escapes_class(&[c("${node.unique.id}", "abc")]));
        assert!(escapes_class(&[c("${node.unique.name}", "abc")]));
        assert!(escapes_class(&[c("${attr.unique.hostname}", "h")]));
        assert!(escapes_class(&[c("${meta.unique.x}", "h")]));
        assert!(escapes_class(&[c("${unique.x}", "h")]));
        assert!(
            escapes_class(&[
                c("${attr.kernel.name}", "linux"),
                c("h", "${attr.unique.hostname}")
            ]),
            "right side counts"
        );
        assert!(!escapes_class(&[c("${attr.uniqueness}", "x")]));
    }
}
