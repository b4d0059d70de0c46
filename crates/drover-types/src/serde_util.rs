//! Small serde helpers that reproduce Go's JSON encoding habits.
//!
//! Go encodes a nil slice or map as `null` and our model keeps empty collections as empty
//! `Vec`/`BTreeMap` (simpler to use than `Option<Vec<_>>`). These helpers write an empty collection
//! as `null`; on the way in, `null` becomes the empty collection (the lenient decoder in
//! [`crate::codec`] drops null keys so `#[serde(default)]` applies).

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// Writes an empty slice as `null`, otherwise as a JSON array.
pub fn empty_vec_as_null<T: Serialize, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

/// Writes an empty map as `null`, otherwise as a JSON object.
pub fn empty_map_as_null<K: Serialize, V: Serialize, S: Serializer>(
    v: &BTreeMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

/// [`empty_map_as_null`] for a shared map.
pub fn empty_arc_map_as_null<K: Serialize, V: Serialize, S: Serializer>(
    v: &std::sync::Arc<BTreeMap<K, V>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    empty_map_as_null(v, s)
}

/// Writes an empty string as `null` (used for a few optional identifiers).
pub fn is_false(b: &bool) -> bool {
    !*b
}

/// `true`, for `#[serde(default = "...")]`.
pub fn default_true() -> bool {
    true
}
