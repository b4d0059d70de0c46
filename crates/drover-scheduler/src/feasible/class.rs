//! The computed node class: a stable fingerprint of everything a non-escaping constraint can
//! read, so feasibility can be decided once per class instead of once per node.

use serde_json::Value;

use drover_types::Node;

/// 64-bit FNV-1a. Fixed constants, no per-process seed: the same node hashes the same in
/// every process and on every platform.
struct Fnv64(u64);

impl Fnv64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv64(Self::OFFSET)
    }

    fn bytes(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// A length-prefixed field, so `("ab", "c")` and `("a", "bc")` hash differently.
    fn field(&mut self, data: &[u8]) {
        self.bytes(&(data.len() as u64).to_le_bytes());
        self.bytes(data);
    }

    fn tag(&mut self, t: u8) {
        self.bytes(&[t]);
    }
}

/// Appends a canonical encoding of a JSON value: tagged, length-prefixed, object keys sorted
/// (so the result does not depend on how the map was ordered when decoded).
fn encode_value(out: &mut Vec<u8>, v: &Value) {
    fn field(out: &mut Vec<u8>, data: &[u8]) {
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    match v {
        Value::Null => out.push(b'z'),
        Value::Bool(b) => out.extend_from_slice(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            out.push(b'n');
            field(out, n.to_string().as_bytes());
        }
        Value::String(s) => {
            out.push(b's');
            field(out, s.as_bytes());
        }
        Value::Array(items) => {
            out.push(b'a');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                encode_value(out, item);
            }
        }
        Value::Object(map) => {
            out.push(b'o');
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (k, item) in entries {
                field(out, k.as_bytes());
                encode_value(out, item);
            }
        }
    }
}

fn not_unique(key: &&String) -> bool {
    !key.starts_with("unique.")
}

/// Nomad's computed class: `"v1:"` + a stable 64-bit FNV-1a hash (decimal) of the datacenter,
/// the attributes and meta minus keys starting with `unique.`, the node class, the node pool,
/// and each device group's vendor, type, name and attributes (minus `unique.*`).
///
/// Left out: ID, name, drivers, resources amounts, device instances (IDs and health), status.
/// Device groups are hashed as a sorted set, so their order on the node does not matter.
pub fn computed_class(node: &Node) -> String {
    let mut h = Fnv64::new();
    h.tag(b'D');
    h.field(node.datacenter.as_bytes());
    for (tag, map) in [(b'A', &node.attributes), (b'M', &node.meta)] {
        h.tag(tag);
        let entries: Vec<(&String, &String)> = map.iter().filter(|(k, _)| not_unique(k)).collect();
        h.bytes(&(entries.len() as u64).to_le_bytes());
        for (k, v) in entries {
            h.field(k.as_bytes());
            h.field(v.as_bytes());
        }
    }
    h.tag(b'C');
    h.field(node.node_class.as_bytes());
    h.tag(b'P');
    h.field(node.node_pool.as_bytes());
    let mut devices: Vec<Vec<u8>> = node
        .node_resources
        .iter()
        .flat_map(|r| r.devices.iter())
        .map(|d| {
            let mut out = Vec::new();
            for s in [&d.vendor, &d.device_type, &d.name] {
                out.extend_from_slice(&(s.len() as u64).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            let attrs: Vec<(&String, &Value)> = d.attributes.iter().filter(|(k, _)| not_unique(k)).collect();
            out.extend_from_slice(&(attrs.len() as u64).to_le_bytes());
            for (k, v) in attrs {
                out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                encode_value(&mut out, v);
            }
            out
        })
        .collect();
    devices.sort();
    h.tag(b'V');
    h.bytes(&(devices.len() as u64).to_le_bytes());
    for d in &devices {
        h.field(d);
    }
    format!("v1:{}", h.0)
}

#[cfg(test)]
mod tests {
    use drover_types::node::{NodeDevice, NodeDeviceResource, NodeResources};
    use serde_json::json;

    use super::*;

    fn base() -> Node {
        let mut n = Node {
            id: "id-1".into(),
            name: "n1".into(),
            datacenter: "dc1".into(),
            node_class: "c".into(),
            node_pool: "default".into(),
            ..Default::default()
        };
        n.attributes.insert("kernel.name".into(), "linux".into());
        n.attributes.insert("unique.hostname".into(), "h1".into());
        n.meta.insert("rack".into(), "r1".into());
        n.meta.insert("unique.serial".into(), "s1".into());
        n.node_resources = Some(NodeResources {
            devices: vec![gpu("g1", 8192), gpu_named("1080ti")],
            ..Default::default()
        });
        n
    }

    fn gpu(id: &str, mem: i64) -> NodeDeviceResource {
        NodeDeviceResource {
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: "t4".into(),
            instances: vec![NodeDevice {
                id: id.into(),
                healthy: true,
                ..Default::default()
            }],
            attributes: [
                ("memory".to_string(), json!({"Int": mem, "Unit": "MiB"})),
                ("unique.uuid".to_string(), json!({"String": id})),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn gpu_named(name: &str) -> NodeDeviceResource {
        NodeDeviceResource {
            vendor: "nvidia".into(),
            device_type: "gpu".into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn format_and_stability() {
        let c = computed_class(&base());
        assert!(c.starts_with("v1:"));
        assert!(c[3..].parse::<u64>().is_ok());
        assert_eq!(c, computed_class(&base()));
        // Pinned: the hash must not drift between builds, processes or platforms.
        assert_eq!(computed_class(&base()), "v1:13125752485961047955");
        assert_eq!(computed_class(&Node::default()), "v1:13207106572493837404");
    }

    #[test]
    fn fnv_reference_vectors() {
        let mut h = Fnv64::new();
        h.bytes(b"");
        assert_eq!(h.0, 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv64::new();
        h.bytes(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv64::new();
        h.bytes(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
    }

    #[test]
    fn unique_values_do_not_matter() {
        let a = base();
        let mut b = base();
        b.id = "id-2".into();
        b.name = "n2".into();
        b.attributes.insert("unique.hostname".into(), "h2".into());
        b.attributes
            .insert("unique.network.ip-address".into(), "10.0.0.2".into());
        b.meta.insert("unique.serial".into(), "s2".into());
        b.status = "down".into();
        if let Some(r) = b.node_resources.as_mut() {
            r.devices[0] = gpu("g2", 8192);
            r.devices[0].instances[0].healthy = false;
            r.devices.swap(0, 1);
            r.memory.memory_mb = 1;
        }
        assert_eq!(computed_class(&a), computed_class(&b));
    }

    #[test]
    fn non_unique_values_matter() {
        let a = computed_class(&base());
        type Change = Box<dyn Fn(&mut Node)>;
        let changes: Vec<Change> = vec![
            Box::new(|n| {
                n.attributes.insert("kernel.name".into(), "windows".into());
            }),
            Box::new(|n| {
                n.attributes.insert("cpu.arch".into(), "amd64".into());
            }),
            Box::new(|n| {
                n.meta.insert("rack".into(), "r2".into());
            }),
            Box::new(|n| n.datacenter = "dc2".into()),
            Box::new(|n| n.node_class = "d".into()),
            Box::new(|n| n.node_pool = "batch".into()),
            Box::new(|n| {
                if let Some(r) = n.node_resources.as_mut() {
                    r.devices[0] = gpu("g1", 16384);
                }
            }),
            Box::new(|n| {
                if let Some(r) = n.node_resources.as_mut() {
                    r.devices.pop();
                }
            }),
            // Moving a value between attributes and meta must change the class.
            Box::new(|n| {
                n.meta.remove("rack");
                n.attributes.insert("rack".into(), "r1".into());
            }),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut n = base();
            change(&mut n);
            assert_ne!(computed_class(&n), a, "change #{i} should change the class");
        }
    }

    #[test]
    fn json_object_key_order_does_not_matter() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        encode_value(&mut a, &json!({"Int": 1, "Unit": "MiB"}));
        let v: Value = serde_json::from_str(r#"{"Unit":"MiB","Int":1}"#).expect("valid json");
        encode_value(&mut b, &v);
        assert_eq!(a, b);
    }
}
