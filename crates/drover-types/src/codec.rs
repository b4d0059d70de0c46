//! Lenient, Go-compatible JSON decoding.
//!
//! # What
//!
//! [`from_value`] and [`from_slice`] decode JSON into any `serde::de::DeserializeOwned`
//! type the way Nomad's Go server (`encoding/json`) would decode the same bytes into its
//! structs, and report failures as a [`DecodeError`] that names the JSON path of the
//! offending value (`TaskGroups[0].Count: invalid type: string "x", expected i64`).
//!
//! # Why
//!
//! Drover speaks Nomad's HTTP API, so it receives JSON written for a Go server. Clients
//! (the `nomad` CLI, Terraform, hand-written `curl` scripts) rely on three properties of
//! Go's decoder that plain `serde_json` does not have:
//!
//! 1. **Object keys match struct fields case-insensitively.** `{"jobid": "x"}` fills the
//!    Go field `JobID`. An exact match wins when several fields fold to the same name.
//! 2. **Unknown keys are ignored.** (Our model structs opt into this anyway by not using
//!    `deny_unknown_fields`; a struct that does deny them still gets its error.)
//! 3. **`null` means "leave it alone".** A `null` struct field keeps its zero value, so
//!    in Rust the key is dropped before the struct sees it and serde's field default
//!    (`#[serde(default)]` / `#[serde(default = "...")]`) applies. A `null` arriving
//!    anywhere else where a plain value is expected (a map value, a sequence element, a
//!    top-level document) decodes to that type's zero value — `""`, `0`, `false`, an
//!    empty list/map, or a struct built from an empty object — just as Go stores the
//!    zero value there. `Option<T>` still sees `null` as `None`.
//!
//! # How
//!
//! JSON is first parsed into a [`serde_json::Value`]; then [`LenientDeserializer`], a
//! [`serde::Deserializer`] over that value, drives the target type's `Deserialize` impl:
//!
//! - `deserialize_struct(name, fields, ..)` rewrites every object key to the entry of
//!   `fields` it equals case-insensitively (serde passes the serialized field names and
//!   aliases, i.e. the names after `rename`/`rename_all`, so `"id"` finds `"ID"`), keeps
//!   unknown keys unchanged, drops keys whose value is `null`, and lets a later duplicate
//!   overwrite an earlier one (Go's "last key wins").
//! - Every nested value (option payloads, sequence elements, map values, newtype and enum
//!   payloads) is deserialized through the same wrapper, so the rules apply at any depth.
//!   Map keys (`HashMap<String, _>`) are left exactly as written.
//! - Integer targets accept JSON integers that fit (an `i64` field takes a `u64` that fits;
//!   `u64::MAX` into `i64` is rejected by the target with "invalid value: integer ...").
//!   A float with an integral value (`3.0`, `-2.0`, `1e3`) is accepted as that integer;
//!   a fractional one (`1.5`) is rejected ("invalid type: floating point `1.5`, expected
//!   i64") — Go rejects both floats, we accept integral ones because some JSON producers
//!   print every number as a float. Strings are never coerced into numbers or booleans.
//! - `deserialize_any` (used by `serde_json::Value` fields, untagged enums, and so on)
//!   hands the value over unchanged — including `null`s inside maps.
//! - Enums: a string selects a unit variant (matched exactly — Go has no enums, Nomad's
//!   string constants are compared exactly); a single-key object `{"Variant": payload}`
//!   selects a newtype/tuple/struct variant.
//!
//! [`serde_path_to_error`] wraps the wrapper and records the path of the failure.
//!
//! # Known limits
//!
//! - Structs using `#[serde(flatten)]` are deserialized by serde through
//!   `deserialize_map`, and types deserialized through `deserialize_any` (untagged or
//!   internally tagged enums) are buffered by serde before the fields are matched; both
//!   therefore match keys exactly and keep `null`s.
//! - Go merges two case-variant keys that name the same *struct-valued* field (decoding
//!   both objects into the same struct); here the later object replaces the earlier one.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};
use serde_json::{Map, Number, Value};

/// A decoding failure together with the JSON path at which it happened.
///
/// `path` uses the field names of the Rust model after case-insensitive matching
/// (`TaskGroups[0].Tasks[1].Resources.CPU`); it is empty for failures that have no
/// position inside the document, such as a JSON syntax error (whose `message` then
/// starts with `line L column C:`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DecodeError {
    /// JSON path of the offending value, empty when not applicable.
    pub path: String,
    /// Human-readable description of the problem.
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Decodes `v` into `T` with Go's lenient rules (see the module documentation).
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(LenientDeserializer::new(v)).map_err(|err| {
        let path = err.path();
        // `Path`'s Display renders the empty path as "."; we report it as "".
        let path = if path.iter().next().is_none() {
            String::new()
        } else {
            path.to_string()
        };
        DecodeError {
            path,
            message: err.into_inner().to_string(),
        }
    })
}

/// Parses `bytes` as JSON and decodes it into `T` with Go's lenient rules.
///
/// A syntax error is reported with an empty path and a message of the form
/// `line L column C: <what went wrong>`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|err| {
        let full = err.to_string();
        // serde_json appends " at line L column C" to its messages; move it to the front.
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        let bare = full.strip_suffix(&suffix).unwrap_or(&full);
        DecodeError {
            path: String::new(),
            message: format!("line {} column {}: {}", err.line(), err.column(), bare),
        }
    })?;
    from_value(value)
}

/// The error type of [`LenientDeserializer`]: a plain message (the path is added by
/// [`from_value`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LenientError(String);

impl de::Error for LenientError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        LenientError(msg.to_string())
    }
}

/// A [`serde::Deserializer`] over an owned [`serde_json::Value`] implementing Go's
/// lenient decoding rules (case-insensitive struct keys, `null` = unset, integral floats
/// into integers). Prefer [`from_value`], which also reports the error path.
#[derive(Debug, Clone)]
pub struct LenientDeserializer {
    value: Value,
}

impl LenientDeserializer {
    /// Wraps `value` for lenient deserialization.
    pub fn new(value: Value) -> Self {
        LenientDeserializer { value }
    }
}

/// Case-insensitive comparison using full Unicode lower-casing (close to Go's
/// `bytes.EqualFold`, which uses simple case folding).
fn fold_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
}

/// Maps an incoming object key to the struct field it names: the exact field if there is
/// one, else the first field equal to it case-insensitively, else the key unchanged.
fn canonical_key(key: String, fields: &'static [&'static str]) -> String {
    if fields.contains(&key.as_str()) {
        return key;
    }
    match fields.iter().find(|field| fold_eq(field, &key)) {
        Some(field) => (*field).to_owned(),
        None => key,
    }
}

/// Rewrites an object for `deserialize_struct`: canonical keys, `null`s dropped, later
/// duplicates replacing earlier ones.
fn rewrite_struct_object(object: Map<String, Value>, fields: &'static [&'static str]) -> Map<String, Value> {
    let mut out = Map::with_capacity(object.len());
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        out.insert(canonical_key(key, fields), value);
    }
    out
}

/// Converts a float that has an integral value to the integer visit call a Go-style
/// integer target expects; fractional or out-of-range floats are errors.
fn visit_integral_float<'de, V: Visitor<'de>>(f: f64, visitor: V) -> Result<V::Value, LenientError> {
    // 2^64 and 2^63 are exactly representable as f64.
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() != 0.0 || !f.is_finite() {
        return Err(de::Error::invalid_type(Unexpected::Float(f), &visitor));
    }
    if (0.0..TWO_POW_64).contains(&f) {
        // Integral and in range, so the cast is exact.
        visitor.visit_u64(f as u64)
    } else if (-TWO_POW_63..0.0).contains(&f) {
        visitor.visit_i64(f as i64)
    } else {
        Err(de::Error::invalid_value(Unexpected::Float(f), &visitor))
    }
}

fn visit_number<'de, V: Visitor<'de>>(n: &Number, visitor: V) -> Result<V::Value, LenientError> {
    if let Some(u) = n.as_u64() {
        visitor.visit_u64(u)
    } else if let Some(i) = n.as_i64() {
        visitor.visit_i64(i)
    } else if let Some(f) = n.as_f64() {
        visitor.visit_f64(f)
    } else {
        Err(de::Error::custom(format_args!("unrepresentable number {n}")))
    }
}

impl LenientDeserializer {
    /// Shared body of the integer `deserialize_*` methods.
    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LenientError> {
        match self.value {
            Value::Null => visitor.visit_u64(0),
            Value::Number(n) if !n.is_u64() && !n.is_i64() => match n.as_f64() {
                Some(f) => visit_integral_float(f, visitor),
                None => visit_number(&n, visitor),
            },
            other => LenientDeserializer::new(other).deserialize_any(visitor),
        }
    }

    /// Shared body of `deserialize_seq` and the tuple variants.
    fn sequence<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, LenientError> {
        match self.value {
            Value::Null => visitor.visit_seq(SeqDeserializer::new(Vec::new())),
            other => LenientDeserializer::new(other).deserialize_any(visitor),
        }
    }
}

impl<'de> Deserializer<'de> for LenientDeserializer {
    type Error = LenientError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => visit_number(&n, visitor),
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visitor.visit_seq(SeqDeserializer::new(items)),
            Value::Object(object) => visitor.visit_map(MapDeserializer::new(object)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_bool(false),
            other => LenientDeserializer::new(other).deserialize_any(visitor),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.integer(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_f64(0.0),
            other => LenientDeserializer::new(other).deserialize_any(visitor),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_string(String::new()),
            other => LenientDeserializer::new(other).deserialize_any(visitor),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_byte_buf(Vec::new()),
            other => LenientDeserializer::new(other).deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(LenientDeserializer::new(other)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.sequence(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.sequence(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.sequence(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_map(MapDeserializer::new(Map::new())),
            other => LenientDeserializer::new(other).deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::Null => visitor.visit_map(MapDeserializer::new(Map::new())),
            Value::Object(object) => {
                visitor.visit_map(MapDeserializer::new(rewrite_struct_object(object, fields)))
            }
            other => LenientDeserializer::new(other).deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value {
            Value::String(variant) => visitor.visit_enum(EnumDeserializer {
                variant,
                payload: None,
            }),
            Value::Object(object) => {
                if object.len() != 1 {
                    return Err(de::Error::invalid_value(
                        Unexpected::Map,
                        &"a map with a single key",
                    ));
                }
                match object.into_iter().next() {
                    Some((variant, payload)) => visitor.visit_enum(EnumDeserializer {
                        variant,
                        payload: Some(payload),
                    }),
                    None => Err(de::Error::invalid_value(
                        Unexpected::Map,
                        &"a map with a single key",
                    )),
                }
            }
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a string or a single-key map",
            )),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }
}

/// Describes a value for serde's "invalid type" messages.
fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Unexpected::Unsigned(u)
            } else if let Some(i) = n.as_i64() {
                Unexpected::Signed(i)
            } else {
                Unexpected::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// Sequence access yielding each element through [`LenientDeserializer`].
struct SeqDeserializer {
    items: std::vec::IntoIter<Value>,
}

impl SeqDeserializer {
    fn new(items: Vec<Value>) -> Self {
        SeqDeserializer {
            items: items.into_iter(),
        }
    }
}

impl<'de> SeqAccess<'de> for SeqDeserializer {
    type Error = LenientError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, LenientError> {
        match self.items.next() {
            Some(item) => seed.deserialize(LenientDeserializer::new(item)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// Map access yielding keys unchanged and values through [`LenientDeserializer`].
struct MapDeserializer {
    entries: serde_json::map::IntoIter,
    pending: Option<Value>,
}

impl MapDeserializer {
    fn new(object: Map<String, Value>) -> Self {
        MapDeserializer {
            entries: object.into_iter(),
            pending: None,
        }
    }
}

impl<'de> MapAccess<'de> for MapDeserializer {
    type Error = LenientError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, LenientError> {
        match self.entries.next() {
            Some((key, value)) => {
                self.pending = Some(value);
                let key: de::value::StringDeserializer<LenientError> = key.into_deserializer();
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, LenientError> {
        match self.pending.take() {
            Some(value) => seed.deserialize(LenientDeserializer::new(value)),
            None => Err(de::Error::custom("map value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Enum access: `variant` names the variant, `payload` is its content (`None` for a
/// bare string, i.e. a unit variant).
struct EnumDeserializer {
    variant: String,
    payload: Option<Value>,
}

impl<'de> EnumAccess<'de> for EnumDeserializer {
    type Error = LenientError;
    type Variant = VariantDeserializer;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), LenientError> {
        let variant: de::value::StringDeserializer<LenientError> = self.variant.into_deserializer();
        let value = seed.deserialize(variant)?;
        Ok((
            value,
            VariantDeserializer {
                payload: self.payload,
            },
        ))
    }
}

struct VariantDeserializer {
    payload: Option<Value>,
}

impl<'de> VariantAccess<'de> for VariantDeserializer {
    type Error = LenientError;

    fn unit_variant(self) -> Result<(), LenientError> {
        match self.payload {
            None | Some(Value::Null) => Ok(()),
            Some(other) => Err(de::Error::invalid_type(unexpected(&other), &"unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, LenientError> {
        match self.payload {
            Some(value) => seed.deserialize(LenientDeserializer::new(value)),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, LenientError> {
        match self.payload {
            Some(value) => LenientDeserializer::new(value).sequence(visitor),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &"tuple variant")),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, LenientError> {
        match self.payload {
            Some(value) => LenientDeserializer::new(value).deserialize_struct("", fields, visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn default_priority() -> i64 {
        50
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    struct Job {
        #[serde(rename = "ID")]
        id: String,
        name: String,
        #[serde(default = "default_priority")]
        priority: i64,
        datacenters: Vec<String>,
        task_groups: Vec<Group>,
        meta: HashMap<String, String>,
        by_region: Option<HashMap<String, Option<Vec<Group>>>>,
        payload: Option<serde_json::Value>,
        stop: bool,
        kind: Kind,
        ratio: f64,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    struct Group {
        name: String,
        count: i64,
        #[serde(rename = "MaxParallel")]
        max_parallel: u8,
        tasks: Vec<Task>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    struct Task {
        driver: String,
        config: HashMap<String, serde_json::Value>,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        #[default]
        Service,
        Batch,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Strict {
        a: i64,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    enum Shape {
        Point,
        Circle(f64),
        Rect { w: u32, h: u32 },
    }

    #[test]
    fn keys_match_case_insensitively_at_depth() {
        let job: Job = from_value(json!({
            "id": "example",
            "NAME": "web",
            "taskgroups": [{"name": "cache", "COUNT": 3, "tasks": [{"DRIVER": "docker"}]}],
            "byRegion": {"Global": [{"nAmE": "deep", "maxparallel": 2}]},
        }))
        .unwrap();
        assert_eq!(job.id, "example");
        assert_eq!(job.name, "web");
        assert_eq!(job.task_groups[0].name, "cache");
        assert_eq!(job.task_groups[0].count, 3);
        assert_eq!(job.task_groups[0].tasks[0].driver, "docker");
        let deep = &job.by_region.as_ref().unwrap()["Global"].as_ref().unwrap()[0];
        assert_eq!(deep.name, "deep");
        assert_eq!(deep.max_parallel, 2);
        // Map keys are left exactly as written.
        assert!(job.by_region.unwrap().contains_key("Global"));
    }

    #[test]
    fn renamed_id_matches_any_case() {
        for key in ["ID", "id", "Id", "iD"] {
            let job: Job = from_value(json!({ key: "x" })).unwrap();
            assert_eq!(job.id, "x", "key {key}");
        }
    }

    #[test]
    fn exact_match_is_preferred_and_last_duplicate_wins() {
        let job: Job = from_value(json!({"Name": "first", "name": "second"})).unwrap();
        assert_eq!(job.name, "second");
        // A null duplicate is "unset" and does not clobber the earlier value (Go semantics).
        let job: Job = from_value(json!({"Name": "kept", "name": null})).unwrap();
        assert_eq!(job.name, "kept");
    }

    #[test]
    fn null_is_dropped_so_defaults_apply() {
        let job: Job = from_value(json!({
            "Priority": null, "Name": null, "TaskGroups": null, "Meta": null, "ByRegion": null,
        }))
        .unwrap();
        assert_eq!(job.priority, 50);
        assert_eq!(
            job,
            Job {
                priority: 50,
                ..Job::default()
            }
        );
        // Absent entirely: same.
        let job: Job = from_value(json!({})).unwrap();
        assert_eq!(job.priority, 50);
    }

    #[test]
    fn null_elsewhere_is_the_zero_value() {
        let job: Job = from_value(json!({
            "Datacenters": ["dc1", null],
            "Meta": {"a": null},
            "TaskGroups": [null],
        }))
        .unwrap();
        assert_eq!(job.datacenters, vec!["dc1".to_owned(), String::new()]);
        assert_eq!(job.meta["a"], "");
        assert_eq!(job.task_groups, vec![Group::default()]);
        let job: Job = from_value(serde_json::Value::Null).unwrap();
        assert_eq!(job.priority, 50);
    }

    #[test]
    fn unknown_keys_are_ignored_unless_denied() {
        let job: Job = from_value(json!({"Name": "a", "Bogus": 1, "TaskGroups": [{"Extra": {}}]})).unwrap();
        assert_eq!(job.name, "a");
        let err = from_value::<Strict>(json!({"a": 1, "b": 2})).unwrap_err();
        assert!(err.message.contains("unknown field `b`"), "{err}");
        assert_eq!(from_value::<Strict>(json!({"A": 1})).unwrap(), Strict { a: 1 });
    }

    #[test]
    fn wrong_type_reports_path_and_message() {
        let err = from_value::<Job>(json!({"TaskGroups": [{"Count": 1}, {"count": "x"}]})).unwrap_err();
        assert_eq!(err.path, "TaskGroups[1].Count");
        assert_eq!(err.message, "invalid type: string \"x\", expected i64");
        assert_eq!(
            err.to_string(),
            "TaskGroups[1].Count: invalid type: string \"x\", expected i64"
        );

        let err = from_value::<Job>(json!({"Stop": "yes"})).unwrap_err();
        assert_eq!(err.path, "Stop");
        assert!(err.message.contains("expected a boolean"), "{err}");

        let err = from_value::<Job>(json!("not an object")).unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.message.contains("expected struct Job"), "{err}");
        assert_eq!(err.to_string(), err.message);

        let err = from_value::<Job>(json!({"Name": 5})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Name: invalid type: integer `5`, expected a string"
        );
    }

    #[test]
    fn numbers_follow_go_like_rules() {
        let job: Job = from_value(json!({"Priority": 3.0, "TaskGroups": [{"Count": -2.0}]})).unwrap();
        assert_eq!(job.priority, 3);
        assert_eq!(job.task_groups[0].count, -2);
        let job: Job = from_value(json!({"Ratio": 2})).unwrap();
        assert_eq!(job.ratio, 2.0);

        let err = from_value::<Job>(json!({"Priority": 1.5})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Priority: invalid type: floating point `1.5`, expected i64"
        );

        let err = from_value::<Job>(json!({"Priority": u64::MAX})).unwrap_err();
        assert_eq!(err.path, "Priority");
        assert_eq!(
            err.message,
            "invalid value: integer `18446744073709551615`, expected i64"
        );

        let err = from_value::<Job>(json!({"TaskGroups": [{"MaxParallel": 300}]})).unwrap_err();
        assert_eq!(err.path, "TaskGroups[0].MaxParallel");
        assert!(err.message.contains("expected u8"), "{err}");

        let err = from_value::<Job>(json!({"Priority": 1e300})).unwrap_err();
        assert!(err.message.starts_with("invalid value: floating point"), "{err}");
    }

    #[test]
    fn any_based_values_pass_through_unchanged() {
        let config = json!({"image": "redis", "Args": [1, 2.5, null], "nested": {"K": null}});
        let payload = json!([null, {"a": {"B": 1}}]);
        let job: Job = from_value(json!({
            "Payload": payload,
            "TaskGroups": [{"Tasks": [{"Config": config}]}],
        }))
        .unwrap();
        assert_eq!(job.payload, Some(payload));
        let got = serde_json::to_value(&job.task_groups[0].tasks[0].config).unwrap();
        assert_eq!(got, config);
        let raw: serde_json::Value = from_value(config.clone()).unwrap();
        assert_eq!(raw, config);
    }

    #[test]
    fn enums_decode_from_strings_and_single_key_maps() {
        let job: Job = from_value(json!({"Kind": "batch"})).unwrap();
        assert_eq!(job.kind, Kind::Batch);
        let err = from_value::<Job>(json!({"Kind": "Batch"})).unwrap_err();
        assert_eq!(err.path, "Kind");
        assert!(err.message.contains("unknown variant `Batch`"), "{err}");

        assert_eq!(from_value::<Shape>(json!("Point")).unwrap(), Shape::Point);
        assert_eq!(
            from_value::<Shape>(json!({"Circle": 2})).unwrap(),
            Shape::Circle(2.0)
        );
        assert_eq!(
            from_value::<Shape>(json!({"Rect": {"W": 1, "h": 2}})).unwrap(),
            Shape::Rect { w: 1, h: 2 }
        );
        let err = from_value::<Shape>(json!({"Rect": {"w": "x"}})).unwrap_err();
        assert_eq!(err.path, "Rect.w");
        assert!(from_value::<Shape>(json!({"Rect": {}, "Point": null})).is_err());
        assert!(from_value::<Shape>(json!(7)).is_err());
    }

    #[test]
    fn from_slice_reports_syntax_errors_with_position() {
        let job: Job = from_slice(br#"{"jobid": 1, "id": "a", "priority": 70}"#).unwrap();
        assert_eq!((job.id.as_str(), job.priority), ("a", 70));

        let err = from_slice::<Job>(b"{\n  \"ID\": \"a\",\n  oops\n}").unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.message.starts_with("line 3 column 3: "), "{err}");
        assert!(!err.message.contains(" at line "), "{err}");

        let err = from_slice::<Job>(br#"{"TaskGroups": [{"Tasks": [{"Driver": 1}]}]}"#).unwrap_err();
        assert_eq!(err.path, "TaskGroups[0].Tasks[0].Driver");
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let key = prop_oneof![
            Just("ID".to_owned()),
            Just("id".to_owned()),
            Just("priority".to_owned()),
            Just("TaskGroups".to_owned()),
            Just("tasks".to_owned()),
            Just("Count".to_owned()),
            Just("MAXPARALLEL".to_owned()),
            Just("config".to_owned()),
            Just("Meta".to_owned()),
            Just("byregion".to_owned()),
            Just("Kind".to_owned()),
            Just("Ratio".to_owned()),
            Just("Datacenters".to_owned()),
            Just("Payload".to_owned()),
            "[a-zA-Z]{0,4}",
        ];
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            prop_oneof![Just(0.0), Just(-3.0), Just(1.5), Just(1e19)].prop_map(serde_json::Value::from),
            prop_oneof![Just("batch".to_owned()), Just("service".to_owned()), "\\PC{0,6}"]
                .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|entries| serde_json::Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(value in arb_json()) {
            let _ = from_value::<Job>(value.clone());
            let _ = from_value::<Shape>(value.clone());
            let _ = from_value::<Strict>(value.clone());
            let bytes = serde_json::to_vec(&value).unwrap();
            let _ = from_slice::<Job>(&bytes);
            // Anything decodes into a Value, and unchanged.
            prop_assert_eq!(from_value::<serde_json::Value>(value.clone()).unwrap(), value);
        }
    }
}
