//! Nomad-style structured job diff, computed generically over JSON.
//!
//! # What
//!
//! `nomad job plan` shows what would change if a job were submitted: which fields were
//! added, deleted or edited, at job, task-group and task level. The HTTP API returns
//! this as a tree of [`JobDiff`] → [`TaskGroupDiff`] → [`TaskDiff`], each holding
//! [`FieldDiff`]s (one primitive value) and [`ObjectDiff`]s (a nested block). The
//! scheduler later annotates this tree ([`TaskGroupDiff::updates`],
//! [`FieldDiff::annotations`], [`TaskDiff::annotations`]); [`job_diff`] leaves those
//! empty.
//!
//! # Why JSON
//!
//! [`job_diff`] works on the *serialized* jobs (`serde_json::Value`), so it needs no
//! knowledge of the Rust model and keeps working as fields are added to it. The price is
//! that it cannot tell a Go struct from a Go map (both are JSON objects); the rules below
//! are chosen so that the output still has Nomad's shape.
//!
//! # Rules
//!
//! **Presence.** `null`, an absent key, an empty array and an empty object all mean
//! "nothing there". A side that is absent makes everything under it `Added` (old absent)
//! or `Deleted` (new absent); when both are present the node is `Edited` if anything
//! below it changed and `None` otherwise. So `job_diff(x, x)` is always `None`.
//!
//! **Per JSON value kind**, for a key `K` of an object:
//!
//! | value | becomes |
//! |---|---|
//! | string / number / bool | `FieldDiff { Name: K }`; values rendered as text: strings unquoted, `true`/`false`, integers in decimal, floats like Go's `%v` (`1.5`, `1e+06`), missing as `""` |
//! | list of primitives (`Datacenters`) | `ObjectDiff { Name: K }` whose fields are one `FieldDiff { Name: K }` per element, compared as a multiset: elements only in old are `Deleted`, only in new `Added` |
//! | object (`Update`, `Meta`, `Env`, `Resources`) | `ObjectDiff { Name: K }`, recursively (so `Meta` becomes `ObjectDiff { Name: "Meta", Fields: [{ Name: "<key>" }] }`) |
//! | list of objects (`Constraints`, `Affinities`, `Services`, `Templates`, ...) | elements compared by equality as a multiset; an element only in old is a `Deleted` `ObjectDiff`, only in new an `Added` one, equal elements produce nothing. The element diff is named by the singular of `K`: `Affinities` → `Affinity`, `Addresses` → `Address`, `Networks` → `Network` |
//!
//! A value whose kind differs between old and new is reported as the old one `Deleted`
//! plus the new one `Added`.
//!
//! **Levels.**
//!
//! - Job: the keys `ID` (it is [`JobDiff::id`]), `Status`, `StatusDescription`,
//!   `Version`, `Stable`, `SubmitTime` and the Raft indexes are server-managed and
//!   skipped. `TaskGroups` are matched by `Name` into [`TaskGroupDiff`]s.
//! - Task group: `Name` names the diff and is skipped; `Tasks` are matched by `Name` into
//!   [`TaskDiff`]s.
//! - Task: `Name` is skipped; the driver `Config` (free-form, any depth) becomes one
//!   `ObjectDiff { Name: "Config" }` whose fields are its flattened leaves, nested keys
//!   joined with `.` and list indices written `[i]` (`args[0]`, `auth.username`).
//! - `CreateIndex`, `ModifyIndex` and `JobModifyIndex` are skipped at every level.
//!
//! Every task group and task present on either side gets a diff, even an unchanged one
//! (type `None`), because the scheduler annotates each of them with its update counts.
//!
//! **Contextual** (`nomad job plan -verbose`): unchanged fields are included with type
//! `None` inside objects that are `Added`, `Deleted` or `Edited` (for a primitive set,
//! the unchanged elements). Unchanged objects are never listed, and nothing is listed
//! inside a `None` node.
//!
//! **Order.** Fields and objects are sorted by name (stably, so set elements keep their
//! list order); task groups and tasks by name.
//!
//! Empty lists are `None` (serialized `null`, like Go's nil slices).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a node changed between the old and the new job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum DiffType {
    /// Unchanged.
    #[default]
    None,
    /// Only in the new job.
    Added,
    /// Only in the old job.
    Deleted,
    /// In both, with differences below it.
    Edited,
}

/// A change to one primitive value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FieldDiff {
    /// How the field changed.
    #[serde(rename = "Type")]
    pub diff_type: DiffType,
    /// Field name (JSON key, flattened path inside `Config`, or list name for sets).
    pub name: String,
    /// Old value rendered as text, `""` when absent.
    pub old: String,
    /// New value rendered as text, `""` when absent.
    pub new: String,
    /// Scheduler annotations (e.g. "forces create"); `None` from [`job_diff`].
    pub annotations: Option<Vec<String>>,
}

/// A change to a nested block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ObjectDiff {
    /// How the block changed.
    #[serde(rename = "Type")]
    pub diff_type: DiffType,
    /// Block name (JSON key, or its singular for list elements).
    pub name: String,
    /// Changed primitive fields of the block.
    pub fields: Option<Vec<FieldDiff>>,
    /// Changed nested blocks.
    pub objects: Option<Vec<ObjectDiff>>,
}

/// The diff of one task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskDiff {
    /// How the task changed.
    #[serde(rename = "Type")]
    pub diff_type: DiffType,
    /// Task name.
    pub name: String,
    /// Changed primitive fields of the task.
    pub fields: Option<Vec<FieldDiff>>,
    /// Changed nested blocks (including `Config`).
    pub objects: Option<Vec<ObjectDiff>>,
    /// Scheduler annotations; `None` from [`job_diff`].
    pub annotations: Option<Vec<String>>,
}

/// The diff of one task group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskGroupDiff {
    /// How the group changed.
    #[serde(rename = "Type")]
    pub diff_type: DiffType,
    /// Group name.
    pub name: String,
    /// Changed primitive fields of the group.
    pub fields: Option<Vec<FieldDiff>>,
    /// Changed nested blocks.
    pub objects: Option<Vec<ObjectDiff>>,
    /// Per-task diffs, sorted by name.
    pub tasks: Option<Vec<TaskDiff>>,
    /// Scheduler's count of allocations per update kind; `None` from [`job_diff`].
    pub updates: Option<BTreeMap<String, u64>>,
}

/// The diff of a whole job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct JobDiff {
    /// How the job changed.
    #[serde(rename = "Type")]
    pub diff_type: DiffType,
    /// Job ID (from the new job, else the old one).
    #[serde(rename = "ID")]
    pub id: String,
    /// Changed primitive fields of the job.
    pub fields: Option<Vec<FieldDiff>>,
    /// Changed nested blocks.
    pub objects: Option<Vec<ObjectDiff>>,
    /// Per-group diffs, sorted by name.
    pub task_groups: Option<Vec<TaskGroupDiff>>,
}

/// Keys never diffed at any level: Raft bookkeeping.
const ALWAYS_SKIPPED: &[&str] = &["CreateIndex", "ModifyIndex", "JobModifyIndex"];
/// Job-level keys that are server-managed or handled separately.
const JOB_SKIPPED: &[&str] = &[
    "ID",
    "Status",
    "StatusDescription",
    "Version",
    "Stable",
    "SubmitTime",
    "TaskGroups",
];
/// Task-group keys that name the diff or are handled separately.
const GROUP_SKIPPED: &[&str] = &["Name", "Tasks"];
/// Task keys that name the diff or are handled separately.
const TASK_SKIPPED: &[&str] = &["Name", "Config"];

/// Computes the structured diff between two serialized jobs (see the module docs for the
/// rules). `contextual` includes unchanged fields of changed objects with type `None`.
pub fn job_diff(old: Option<&Value>, new: Option<&Value>, contextual: bool) -> JobDiff {
    let old = old.filter(|v| !v.is_null());
    let new = new.filter(|v| !v.is_null());
    let id = new
        .or(old)
        .and_then(|job| job.get("ID"))
        .map(render)
        .unwrap_or_default();
    let old_map = old.and_then(Value::as_object);
    let new_map = new.and_then(Value::as_object);

    let members = diff_members(old_map, new_map, JOB_SKIPPED, contextual);
    let groups: Vec<TaskGroupDiff> =
        pair_by_name(list_at(old_map, "TaskGroups"), list_at(new_map, "TaskGroups"))
            .into_iter()
            .map(|(name, o, n)| group_diff(name, o, n, contextual))
            .collect();
    let changed = members.changed() || groups.iter().any(|g| g.diff_type != DiffType::None);
    let diff_type = node_type(old.is_some(), new.is_some(), changed);
    let (fields, objects) = members.finish(diff_type);
    JobDiff {
        diff_type,
        id,
        fields,
        objects,
        task_groups: non_empty(groups),
    }
}

fn group_diff(name: String, old: Option<&Value>, new: Option<&Value>, contextual: bool) -> TaskGroupDiff {
    let old_map = old.and_then(Value::as_object);
    let new_map = new.and_then(Value::as_object);
    let members = diff_members(old_map, new_map, GROUP_SKIPPED, contextual);
    let tasks: Vec<TaskDiff> = pair_by_name(list_at(old_map, "Tasks"), list_at(new_map, "Tasks"))
        .into_iter()
        .map(|(name, o, n)| task_diff(name, o, n, contextual))
        .collect();
    let changed = members.changed() || tasks.iter().any(|t| t.diff_type != DiffType::None);
    let diff_type = node_type(old.is_some(), new.is_some(), changed);
    let (fields, objects) = members.finish(diff_type);
    TaskGroupDiff {
        diff_type,
        name,
        fields,
        objects,
        tasks: non_empty(tasks),
        updates: None,
    }
}

fn task_diff(name: String, old: Option<&Value>, new: Option<&Value>, contextual: bool) -> TaskDiff {
    let old_map = old.and_then(Value::as_object);
    let new_map = new.and_then(Value::as_object);
    let mut members = diff_members(old_map, new_map, TASK_SKIPPED, contextual);
    if let Some(config) = config_diff(
        present(old_map.and_then(|m| m.get("Config"))),
        present(new_map.and_then(|m| m.get("Config"))),
        contextual,
    ) {
        members.objects.push(config);
    }
    let diff_type = node_type(old.is_some(), new.is_some(), members.changed());
    let (fields, objects) = members.finish(diff_type);
    TaskDiff {
        diff_type,
        name,
        fields,
        objects,
        annotations: None,
    }
}

/// The driver `Config` block: its flattened leaves as fields of one `ObjectDiff`.
fn config_diff(old: Option<&Value>, new: Option<&Value>, contextual: bool) -> Option<ObjectDiff> {
    let mut old_flat = BTreeMap::new();
    let mut new_flat = BTreeMap::new();
    if let Some(v) = old {
        flatten("", v, &mut old_flat);
    }
    if let Some(v) = new {
        flatten("", v, &mut new_flat);
    }
    let mut members = Members::default();
    for key in old_flat
        .keys()
        .chain(new_flat.keys().filter(|k| !old_flat.contains_key(*k)))
    {
        let o = old_flat.get(key).cloned().unwrap_or_default();
        let n = new_flat.get(key).cloned().unwrap_or_default();
        members.push_field(key.clone(), o, n, contextual);
    }
    let diff_type = node_type(old.is_some(), new.is_some(), members.changed());
    members.into_object("Config".to_owned(), diff_type)
}

/// Flattens a free-form value into `path → rendered leaf`: object keys joined with `.`,
/// list indices as `[i]`. Nulls and empty collections contribute nothing.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Null => {}
        Value::Object(map) => {
            for (key, v) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), render(leaf));
        }
    }
}

/// The diffs found directly inside one object (or one list element).
#[derive(Debug, Default)]
struct Members {
    fields: Vec<FieldDiff>,
    objects: Vec<ObjectDiff>,
}

impl Members {
    /// Whether anything was added, deleted or edited (objects are only recorded when
    /// their type is not `None`).
    fn changed(&self) -> bool {
        !self.objects.is_empty() || self.fields.iter().any(|f| f.diff_type != DiffType::None)
    }

    fn push_field(&mut self, name: String, old: String, new: String, contextual: bool) {
        let diff_type = if old == new {
            if !contextual {
                return;
            }
            DiffType::None
        } else if old.is_empty() {
            DiffType::Added
        } else if new.is_empty() {
            DiffType::Deleted
        } else {
            DiffType::Edited
        };
        self.fields.push(FieldDiff {
            diff_type,
            name,
            old,
            new,
            annotations: None,
        });
    }

    /// Sorted fields and objects of a node of type `diff_type`; a `None` node lists
    /// nothing (its members can only be contextual `None` fields).
    fn finish(mut self, diff_type: DiffType) -> (Option<Vec<FieldDiff>>, Option<Vec<ObjectDiff>>) {
        if diff_type == DiffType::None {
            return (None, None);
        }
        self.fields.sort_by(|a, b| a.name.cmp(&b.name));
        self.objects.sort_by(|a, b| a.name.cmp(&b.name));
        (non_empty(self.fields), non_empty(self.objects))
    }

    /// Wraps the members into an `ObjectDiff`, or nothing if the object is unchanged.
    fn into_object(self, name: String, diff_type: DiffType) -> Option<ObjectDiff> {
        if diff_type == DiffType::None {
            return None;
        }
        let (fields, objects) = self.finish(diff_type);
        Some(ObjectDiff {
            diff_type,
            name,
            fields,
            objects,
        })
    }
}

/// Diffs the keys of two objects, skipping `skip` and [`ALWAYS_SKIPPED`].
fn diff_members(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    skip: &[&str],
    contextual: bool,
) -> Members {
    let mut members = Members::default();
    let old_keys = old.into_iter().flat_map(|m| m.keys());
    let new_only = new
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| !old.is_some_and(|m| m.contains_key(*k)));
    for key in old_keys.chain(new_only) {
        if skip.contains(&key.as_str()) || ALWAYS_SKIPPED.contains(&key.as_str()) {
            continue;
        }
        let o = present(old.and_then(|m| m.get(key)));
        let n = present(new.and_then(|m| m.get(key)));
        diff_entry(key, o, n, contextual, &mut members);
    }
    members
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Primitive,
    List,
    Object,
}

fn kind(value: &Value) -> Kind {
    match value {
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Object,
        _ => Kind::Primitive,
    }
}

/// Diffs one named value (both sides already filtered through [`present`]).
fn diff_entry(name: &str, old: Option<&Value>, new: Option<&Value>, contextual: bool, out: &mut Members) {
    let kind = match (old, new) {
        (None, None) => return,
        (Some(o), Some(n)) if kind(o) != kind(n) => {
            diff_entry(name, Some(o), None, contextual, out);
            diff_entry(name, None, Some(n), contextual, out);
            return;
        }
        (Some(v), _) | (None, Some(v)) => kind(v),
    };
    match kind {
        Kind::Primitive => {
            let o = old.map(render).unwrap_or_default();
            let n = new.map(render).unwrap_or_default();
            out.push_field(name.to_owned(), o, n, contextual);
        }
        Kind::Object => {
            let members = diff_members(
                old.and_then(Value::as_object),
                new.and_then(Value::as_object),
                &[],
                contextual,
            );
            let diff_type = node_type(old.is_some(), new.is_some(), members.changed());
            out.objects
                .extend(members.into_object(name.to_owned(), diff_type));
        }
        Kind::List => {
            let empty: &[Value] = &[];
            let o = old.and_then(Value::as_array).map_or(empty, Vec::as_slice);
            let n = new.and_then(Value::as_array).map_or(empty, Vec::as_slice);
            list_diff(name, o, n, contextual, out);
        }
    }
}

/// Diffs two lists as multisets (see the module docs).
fn list_diff(name: &str, old: &[Value], new: &[Value], contextual: bool, out: &mut Members) {
    let primitive = old.iter().chain(new).all(|v| kind(v) == Kind::Primitive);
    if primitive {
        let old_text: Vec<String> = old.iter().map(render).collect();
        let new_text: Vec<String> = new.iter().map(render).collect();
        let (common, deleted, added) = multiset_match(&old_text, &new_text);
        let mut members = Members::default();
        for i in common {
            members.push_field(
                name.to_owned(),
                old_text[i].clone(),
                old_text[i].clone(),
                contextual,
            );
        }
        for i in deleted {
            members.fields.push(FieldDiff {
                diff_type: DiffType::Deleted,
                name: name.to_owned(),
                old: old_text[i].clone(),
                new: String::new(),
                annotations: None,
            });
        }
        for j in added {
            members.fields.push(FieldDiff {
                diff_type: DiffType::Added,
                name: name.to_owned(),
                old: String::new(),
                new: new_text[j].clone(),
                annotations: None,
            });
        }
        let diff_type = node_type(!old.is_empty(), !new.is_empty(), members.changed());
        out.objects
            .extend(members.into_object(name.to_owned(), diff_type));
    } else {
        let element_name = singular(name);
        let (_, deleted, added) = multiset_match(old, new);
        for i in deleted {
            out.objects
                .extend(element_diff(&element_name, Some(&old[i]), None, contextual));
        }
        for j in added {
            out.objects
                .extend(element_diff(&element_name, None, Some(&new[j]), contextual));
        }
    }
}

/// One added or deleted list element as an `ObjectDiff` named `name`.
fn element_diff(
    name: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    contextual: bool,
) -> Option<ObjectDiff> {
    let members = match old.or(new) {
        Some(Value::Object(_)) => diff_members(
            old.and_then(Value::as_object),
            new.and_then(Value::as_object),
            &[],
            contextual,
        ),
        _ => {
            // A non-object element in a list that also holds objects: diff it as a
            // value named like the element.
            let mut members = Members::default();
            diff_entry(name, present(old), present(new), contextual, &mut members);
            members
        }
    };
    let diff_type = node_type(old.is_some(), new.is_some(), members.changed());
    members.into_object(name.to_owned(), diff_type)
}

/// Matches equal elements of two lists, each element used at most once. Returns the
/// indices of matched old elements, unmatched old elements and unmatched new elements.
fn multiset_match<T: PartialEq>(old: &[T], new: &[T]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let mut used = vec![false; new.len()];
    let mut common = Vec::new();
    let mut deleted = Vec::new();
    for (i, o) in old.iter().enumerate() {
        let found = new.iter().enumerate().position(|(j, n)| !used[j] && n == o);
        match found {
            Some(j) => {
                used[j] = true;
                common.push(i);
            }
            None => deleted.push(i),
        }
    }
    let added = used
        .iter()
        .enumerate()
        .filter(|(_, u)| !**u)
        .map(|(j, _)| j)
        .collect();
    (common, deleted, added)
}

/// Pairs the elements of two lists of named objects (task groups, tasks) by their
/// `Name`, in order for duplicate names, and sorts the pairs by name.
fn pair_by_name<'a>(
    old: &'a [Value],
    new: &'a [Value],
) -> Vec<(String, Option<&'a Value>, Option<&'a Value>)> {
    let name_of = |v: &Value| v.get("Name").map(render).unwrap_or_default();
    let new_names: Vec<String> = new.iter().map(name_of).collect();
    let mut used = vec![false; new.len()];
    let mut pairs = Vec::with_capacity(old.len().max(new.len()));
    for o in old {
        let name = name_of(o);
        let found = new_names
            .iter()
            .enumerate()
            .position(|(j, n)| !used[j] && *n == name);
        match found {
            Some(j) => {
                used[j] = true;
                pairs.push((name, Some(o), Some(&new[j])));
            }
            None => pairs.push((name, Some(o), None)),
        }
    }
    for ((n, name), used) in new.iter().zip(new_names).zip(used) {
        if !used {
            pairs.push((name, None, Some(n)));
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// The list under `key`, or an empty slice when absent or not a list.
fn list_at<'a>(map: Option<&'a Map<String, Value>>, key: &str) -> &'a [Value] {
    map.and_then(|m| m.get(key))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `Some` only for values that count as present: not null, not an empty list or object.
fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| match v {
        Value::Null => false,
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        _ => true,
    })
}

fn node_type(old_present: bool, new_present: bool, changed: bool) -> DiffType {
    match (old_present, new_present) {
        (false, true) => DiffType::Added,
        (true, false) => DiffType::Deleted,
        (true, true) if changed => DiffType::Edited,
        _ => DiffType::None,
    }
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    if items.is_empty() { None } else { Some(items) }
}

/// The name of one element of the list `key`: `Affinities` → `Affinity`,
/// `Addresses` → `Address`, `Constraints` → `Constraint`; other keys unchanged.
fn singular(key: &str) -> String {
    if let Some(stem) = key.strip_suffix("ies").filter(|s| !s.is_empty()) {
        return format!("{stem}y");
    }
    if let Some(stem) = key.strip_suffix("sses") {
        return format!("{stem}ss");
    }
    match key.strip_suffix('s') {
        Some(stem) if !stem.is_empty() && !stem.ends_with('s') => stem.to_owned(),
        _ => key.to_owned(),
    }
}

/// Renders a value as Nomad shows it in a diff.
fn render(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            if n.is_f64() {
                n.as_f64().map(render_float).unwrap_or_else(|| n.to_string())
            } else {
                n.to_string()
            }
        }
        // Not reached for primitives; a compact JSON rendering keeps it total.
        other => other.to_string(),
    }
}

/// Formats a float like Go's `%v`: shortest round-trip digits, exponent form
/// (`1e+06`, `1.5e-05`) when the decimal exponent is below -4 or at least 6.
fn render_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return format!("{f}");
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return format!("{f}");
    };
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn base_job() -> Value {
        json!({
            "ID": "example",
            "Name": "example",
            "Type": "service",
            "Priority": 50,
            "AllAtOnce": false,
            "Datacenters": ["dc1", "dc2"],
            "Meta": {"owner": "ops"},
            "Constraints": [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}],
            "Status": "running",
            "Version": 3,
            "Stable": true,
            "SubmitTime": 1_700_000_000_000_000_000_u64,
            "CreateIndex": 10,
            "ModifyIndex": 20,
            "JobModifyIndex": 20,
            "Update": {"MaxParallel": 1, "Stagger": 30_000_000_000_u64},
            "TaskGroups": [
                {
                    "Name": "cache",
                    "Count": 1,
                    "Tasks": [{
                        "Name": "redis",
                        "Driver": "docker",
                        "Config": {"image": "redis:7", "ports": ["db"], "auth": {"user": "u"}},
                        "Env": {"A": "1"},
                        "Resources": {"CPU": 500, "MemoryMB": 256},
                    }],
                },
                {"Name": "web", "Count": 2, "Tasks": [{"Name": "nginx", "Driver": "docker"}]},
            ],
        })
    }

    fn field(diff_type: DiffType, name: &str, old: &str, new: &str) -> FieldDiff {
        FieldDiff {
            diff_type,
            name: name.into(),
            old: old.into(),
            new: new.into(),
            annotations: None,
        }
    }

    fn edit(job: &mut Value, f: impl FnOnce(&mut Value)) -> Value {
        f(job);
        job.clone()
    }

    #[test]
    fn identical_jobs_are_none() {
        let job = base_job();
        for contextual in [false, true] {
            let d = job_diff(Some(&job), Some(&job), contextual);
            assert_eq!(d.diff_type, DiffType::None);
            assert_eq!(d.id, "example");
            assert_eq!((d.fields.as_ref(), d.objects.as_ref()), (None, None));
            let groups = d.task_groups.unwrap();
            assert_eq!(groups.len(), 2);
            for g in groups {
                assert_eq!(g.diff_type, DiffType::None);
                assert_eq!((g.fields, g.objects), (None, None));
                assert!(g.tasks.unwrap().iter().all(|t| t.diff_type == DiffType::None));
            }
        }
        assert_eq!(job_diff(None, None, false), JobDiff::default());
    }

    #[test]
    fn server_managed_fields_are_ignored() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| {
            j["Status"] = json!("dead");
            j["Version"] = json!(4);
            j["Stable"] = json!(false);
            j["SubmitTime"] = json!(1);
            j["ModifyIndex"] = json!(99);
            j["TaskGroups"][0]["CreateIndex"] = json!(5);
        });
        assert_eq!(job_diff(Some(&old), Some(&new), false).diff_type, DiffType::None);
    }

    #[test]
    fn priority_change_is_an_edited_field() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| j["Priority"] = json!(60));
        let d = job_diff(Some(&old), Some(&new), false);
        assert_eq!(d.diff_type, DiffType::Edited);
        assert_eq!(
            d.fields,
            Some(vec![field(DiffType::Edited, "Priority", "50", "60")])
        );
        assert_eq!(d.objects, None);
        assert!(
            d.task_groups
                .unwrap()
                .iter()
                .all(|g| g.diff_type == DiffType::None)
        );
    }

    #[test]
    fn contextual_includes_unchanged_fields() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| j["Priority"] = json!(60));
        let d = job_diff(Some(&old), Some(&new), true);
        let fields = d.fields.unwrap();
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["AllAtOnce", "Name", "Priority", "Type"]);
        assert_eq!(fields[0], field(DiffType::None, "AllAtOnce", "false", "false"));
        assert_eq!(fields[2], field(DiffType::Edited, "Priority", "50", "60"));
        // Unchanged objects are not listed, and unchanged groups list nothing.
        assert_eq!(d.objects, None);
        assert!(d.task_groups.unwrap().iter().all(|g| g.fields.is_none()));

        // Inside an edited object, unchanged siblings show up with type None.
        let new = edit(&mut base_job(), |j| j["Update"]["MaxParallel"] = json!(2));
        let d = job_diff(Some(&old), Some(&new), true);
        let update = &d.objects.unwrap()[0];
        assert_eq!(update.name, "Update");
        assert_eq!(
            update.fields,
            Some(vec![
                field(DiffType::Edited, "MaxParallel", "1", "2"),
                field(DiffType::None, "Stagger", "30000000000", "30000000000"),
            ])
        );
    }

    #[test]
    fn group_added_and_removed() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| {
            let groups = j["TaskGroups"].as_array_mut().unwrap();
            groups.remove(1);
            groups.push(json!({"Name": "api", "Count": 3, "Tasks": [{"Name": "srv", "Driver": "exec"}]}));
        });
        let d = job_diff(Some(&old), Some(&new), false);
        assert_eq!(d.diff_type, DiffType::Edited);
        assert_eq!((d.fields.as_ref(), d.objects.as_ref()), (None, None));
        let groups = d.task_groups.unwrap();
        let summary: Vec<(&str, DiffType)> = groups.iter().map(|g| (g.name.as_str(), g.diff_type)).collect();
        assert_eq!(
            summary,
            [
                ("api", DiffType::Added),
                ("cache", DiffType::None),
                ("web", DiffType::Deleted)
            ]
        );
        assert_eq!(
            groups[0].fields,
            Some(vec![field(DiffType::Added, "Count", "", "3")])
        );
        let task = &groups[0].tasks.as_ref().unwrap()[0];
        assert_eq!((task.name.as_str(), task.diff_type), ("srv", DiffType::Added));
        assert_eq!(
            task.fields,
            Some(vec![field(DiffType::Added, "Driver", "", "exec")])
        );
        assert_eq!(
            groups[2].fields,
            Some(vec![field(DiffType::Deleted, "Count", "2", "")])
        );
        assert_eq!(groups[2].tasks.as_ref().unwrap()[0].diff_type, DiffType::Deleted);
    }

    #[test]
    fn task_config_change_is_a_config_object() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| {
            let config = &mut j["TaskGroups"][0]["Tasks"][0]["Config"];
            config["image"] = json!("redis:8");
            config["ports"] = json!(["db", "metrics"]);
            config["auth"] = json!({"user": "v"});
        });
        let d = job_diff(Some(&old), Some(&new), false);
        assert_eq!(d.diff_type, DiffType::Edited);
        let group = &d.task_groups.unwrap()[0];
        assert_eq!(
            (group.name.as_str(), group.diff_type),
            ("cache", DiffType::Edited)
        );
        assert_eq!((group.fields.as_ref(), group.objects.as_ref()), (None, None));
        let task = &group.tasks.as_ref().unwrap()[0];
        assert_eq!((task.name.as_str(), task.diff_type), ("redis", DiffType::Edited));
        assert_eq!(
            task.objects,
            Some(vec![ObjectDiff {
                diff_type: DiffType::Edited,
                name: "Config".into(),
                fields: Some(vec![
                    field(DiffType::Edited, "auth.user", "u", "v"),
                    field(DiffType::Edited, "image", "redis:7", "redis:8"),
                    field(DiffType::Added, "ports[1]", "", "metrics"),
                ]),
                objects: None,
            }])
        );
    }

    #[test]
    fn meta_key_added() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| j["Meta"]["team"] = json!("core"));
        let d = job_diff(Some(&old), Some(&new), false);
        assert_eq!(
            d.objects,
            Some(vec![ObjectDiff {
                diff_type: DiffType::Edited,
                name: "Meta".into(),
                fields: Some(vec![field(DiffType::Added, "team", "", "core")]),
                objects: None,
            }])
        );
        // A task's Env works the same way, and a first key makes the block Added.
        let new = edit(&mut base_job(), |j| {
            j["TaskGroups"][1]["Tasks"][0]["Env"] = json!({"X": "y"})
        });
        let d = job_diff(Some(&old), Some(&new), false);
        let groups = d.task_groups.unwrap();
        let task = &groups[1].tasks.as_ref().unwrap()[0];
        let env = &task.objects.as_ref().unwrap()[0];
        assert_eq!((env.name.as_str(), env.diff_type), ("Env", DiffType::Added));
        assert_eq!(env.fields, Some(vec![field(DiffType::Added, "X", "", "y")]));
    }

    #[test]
    fn constraint_added() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| {
            j["Constraints"]
                .as_array_mut()
                .unwrap()
                .push(json!({"LTarget": "${node.class}", "RTarget": "large", "Operand": "="}));
        });
        let d = job_diff(Some(&old), Some(&new), false);
        assert_eq!(
            d.objects,
            Some(vec![ObjectDiff {
                diff_type: DiffType::Added,
                name: "Constraint".into(),
                fields: Some(vec![
                    field(DiffType::Added, "LTarget", "", "${node.class}"),
                    field(DiffType::Added, "Operand", "", "="),
                    field(DiffType::Added, "RTarget", "", "large"),
                ]),
                objects: None,
            }])
        );
        // Editing one constraint is Deleted old + Added new.
        let new = edit(&mut base_job(), |j| {
            j["Constraints"][0]["RTarget"] = json!("darwin")
        });
        let d = job_diff(Some(&old), Some(&new), false);
        let kinds: Vec<(&str, DiffType)> = d
            .objects
            .as_ref()
            .unwrap()
            .iter()
            .map(|o| (o.name.as_str(), o.diff_type))
            .collect();
        assert_eq!(
            kinds,
            [("Constraint", DiffType::Deleted), ("Constraint", DiffType::Added)]
        );
    }

    #[test]
    fn datacenter_element_changed() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| j["Datacenters"] = json!(["dc1", "dc3"]));
        for (contextual, expected) in [
            (
                false,
                vec![
                    field(DiffType::Deleted, "Datacenters", "dc2", ""),
                    field(DiffType::Added, "Datacenters", "", "dc3"),
                ],
            ),
            (
                true,
                vec![
                    field(DiffType::None, "Datacenters", "dc1", "dc1"),
                    field(DiffType::Deleted, "Datacenters", "dc2", ""),
                    field(DiffType::Added, "Datacenters", "", "dc3"),
                ],
            ),
        ] {
            let d = job_diff(Some(&old), Some(&new), contextual);
            let objects = d.objects.unwrap();
            let dcs = objects.iter().find(|o| o.name == "Datacenters").unwrap();
            assert_eq!(dcs.diff_type, DiffType::Edited);
            assert_eq!(dcs.fields.as_ref(), Some(&expected));
        }
        // Reordering is not a change.
        let new = edit(&mut base_job(), |j| j["Datacenters"] = json!(["dc2", "dc1"]));
        assert_eq!(job_diff(Some(&old), Some(&new), false).diff_type, DiffType::None);
    }

    #[test]
    fn new_job_is_added_and_removed_job_deleted() {
        let job = base_job();
        let d = job_diff(None, Some(&job), false);
        assert_eq!((d.diff_type, d.id.as_str()), (DiffType::Added, "example"));
        let fields = d.fields.unwrap();
        assert!(fields.contains(&field(DiffType::Added, "Priority", "", "50")));
        assert!(fields.contains(&field(DiffType::Added, "Type", "", "service")));
        // "false" is a value, so it is Added too; server-managed fields are absent.
        assert!(fields.contains(&field(DiffType::Added, "AllAtOnce", "", "false")));
        assert!(
            !fields
                .iter()
                .any(|f| f.name == "Status" || f.name == "ID" || f.name == "Version")
        );
        let objects = d.objects.unwrap();
        let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["Constraint", "Datacenters", "Meta", "Update"]);
        assert!(objects.iter().all(|o| o.diff_type == DiffType::Added));
        let groups = d.task_groups.unwrap();
        assert!(groups.iter().all(|g| g.diff_type == DiffType::Added));
        let redis = &groups[0].tasks.as_ref().unwrap()[0];
        let config = redis
            .objects
            .as_ref()
            .unwrap()
            .iter()
            .find(|o| o.name == "Config")
            .unwrap();
        assert_eq!(config.diff_type, DiffType::Added);
        assert!(
            config
                .fields
                .as_ref()
                .unwrap()
                .contains(&field(DiffType::Added, "ports[0]", "", "db"))
        );

        let d = job_diff(Some(&job), None, false);
        assert_eq!(d.diff_type, DiffType::Deleted);
        assert!(
            d.fields
                .unwrap()
                .contains(&field(DiffType::Deleted, "Priority", "50", ""))
        );
    }

    #[test]
    fn serializes_like_nomad() {
        let old = base_job();
        let new = edit(&mut base_job(), |j| j["Priority"] = json!(60));
        let d = job_diff(Some(&old), Some(&new), false);
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["Type"], "Edited");
        assert_eq!(v["ID"], "example");
        assert_eq!(v["Objects"], Value::Null);
        assert_eq!(
            v["Fields"][0],
            json!({"Type": "Edited", "Name": "Priority", "Old": "50", "New": "60", "Annotations": null})
        );
        let g = &v["TaskGroups"][0];
        assert_eq!(g["Type"], "None");
        assert_eq!(g["Updates"], Value::Null);
        let back: JobDiff = serde_json::from_value(v).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn kind_change_is_delete_plus_add() {
        let old = json!({"ID": "j", "X": "a"});
        let new = json!({"ID": "j", "X": {"k": "v"}});
        let d = job_diff(Some(&old), Some(&new), false);
        assert_eq!(d.fields, Some(vec![field(DiffType::Deleted, "X", "a", "")]));
        assert_eq!(d.objects.unwrap()[0].diff_type, DiffType::Added);
    }

    #[test]
    fn helpers() {
        assert_eq!(singular("Constraints"), "Constraint");
        assert_eq!(singular("Affinities"), "Affinity");
        assert_eq!(singular("Networks"), "Network");
        assert_eq!(singular("Addresses"), "Address");
        assert_eq!(singular("Spreads"), "Spread");
        assert_eq!(singular("Status"), "Statu");
        assert_eq!(singular("Class"), "Class");
        assert_eq!(singular("s"), "s");
        assert_eq!(render_float(1.5), "1.5");
        assert_eq!(render_float(3.0), "3");
        assert_eq!(render_float(100000.0), "100000");
        assert_eq!(render_float(1e6), "1e+06");
        assert_eq!(render_float(1.234567e6), "1.234567e+06");
        assert_eq!(render_float(-2.5e-5), "-2.5e-05");
        assert_eq!(render_float(0.0001), "0.0001");
        assert_eq!(render_float(1e21), "1e+21");
        assert_eq!(render(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(render(&json!(-7)), "-7");
        assert_eq!(render(&json!(true)), "true");
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("Name".to_owned()),
            Just("TaskGroups".to_owned()),
            Just("Tasks".to_owned()),
            Just("Config".to_owned()),
            Just("Meta".to_owned()),
            Just("Constraints".to_owned()),
            Just("Datacenters".to_owned()),
            Just("ID".to_owned()),
            Just("Priority".to_owned()),
            "[a-c]{1,2}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            prop_oneof![Just(1.5), Just(2.0), Just(1e7)].prop_map(Value::from),
            prop_oneof![Just("a"), Just("b"), Just(""), Just("1")].prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 48, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec((key.clone(), inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn diff_never_panics_and_self_diff_is_none(a in arb_json(), b in arb_json(), contextual: bool) {
            let ab = job_diff(Some(&a), Some(&b), contextual);
            let ba = job_diff(Some(&b), Some(&a), contextual);
            prop_assert_eq!(ab.diff_type == DiffType::None, ba.diff_type == DiffType::None);
            serde_json::to_string(&ab).unwrap();
            for x in [&a, &b] {
                let same = job_diff(Some(x), Some(x), contextual);
                prop_assert_eq!(same.diff_type, DiffType::None);
                prop_assert!(same.fields.is_none() && same.objects.is_none());
                let clone = x.clone();
                prop_assert_eq!(job_diff(Some(x), Some(&clone), contextual), same);
                if !x.is_null() {
                    prop_assert_eq!(job_diff(None, Some(x), contextual).diff_type, DiffType::Added);
                    prop_assert_eq!(job_diff(Some(x), None, contextual).diff_type, DiffType::Deleted);
                }
            }
        }
    }
}
