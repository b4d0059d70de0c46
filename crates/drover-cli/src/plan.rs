//! `job plan` output (§8.3): the job diff with markers, the scheduler dry run, preemptions,
//! and the `-check-index` hint. Also used by `job history -p`.
//!
//! ```text
//!  JobPlanResponse ─▶ job_diff_text(Diff)      + Job: "example"
//!                                              +/- Task Group: "web" (1 create, 2 ignore)
//!                                                +/- Task: "server" (forces create/destroy update)
//!                                                  +/- Config {
//!                                                    +/- image: "nginx:1.24" => "nginx:1.25"
//!                                                      }
//!                  ─▶ dry_run_text             - All tasks successfully allocated.
//!                  ─▶ modify_index_text        Job Modify Index: 7 + the run hint
//!                  ─▶ plan_exit_code           0 no allocation changes, 1 changes
//! ```
//!
//! Layout rules: a marker is `+ ` (added), `- ` (deleted), `+/- ` (edited) or nothing
//! (unchanged). Within one block every name is indented by the longest marker among its
//! siblings so names line up, and field values start after the longest field name. Job and
//! group fields are shown only when the job/group is edited (or with `-verbose`); added or
//! deleted tasks are one line unless verbose.

use drover_types::diff::{DiffType, FieldDiff, JobDiff, ObjectDiff, TaskDiff, TaskGroupDiff};
use drover_types::{AllocListStub, AllocMetric};

use crate::format::{quote, table};
use crate::monitor::alloc_metric_lines;
use crate::row;

fn marker(t: DiffType) -> &'static str {
    match t {
        DiffType::Added => "+ ",
        DiffType::Deleted => "- ",
        DiffType::Edited => "+/- ",
        DiffType::None => "",
    }
}

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

/// Longest field name and longest marker among a block's fields and objects.
fn longest(fields: &[FieldDiff], objects: &[ObjectDiff]) -> (usize, usize) {
    let name = fields.iter().map(|f| f.name.chars().count()).max().unwrap_or(0);
    let mark = fields
        .iter()
        .map(|f| marker(f.diff_type).len())
        .chain(objects.iter().map(|o| marker(o.diff_type).len()))
        .max()
        .unwrap_or(0);
    (name, mark)
}

fn field_line(f: &FieldDiff, start: usize, key_pad: usize, value_pad: usize) -> String {
    let value = match f.diff_type {
        DiffType::Added => quote(&f.new),
        DiffType::Deleted => quote(&f.old),
        DiffType::Edited => format!("{} => {}", quote(&f.old), quote(&f.new)),
        DiffType::None => quote(&f.new),
    };
    let mut s = format!(
        "{}{}{}{}: {}{}",
        spaces(start),
        marker(f.diff_type),
        spaces(key_pad),
        f.name,
        spaces(value_pad),
        value
    );
    if let Some(a) = f.annotations.as_ref().filter(|a| !a.is_empty()) {
        s.push_str(&format!(" ({})", a.join(", ")));
    }
    s
}

fn object_text(o: &ObjectDiff, start: usize, key_pad: usize) -> String {
    let mut s = format!(
        "{}{}{}{} {{\n",
        spaces(start),
        marker(o.diff_type),
        spaces(key_pad),
        o.name
    );
    let fields = o.fields.as_deref().unwrap_or_default();
    let objects = o.objects.as_deref().unwrap_or_default();
    let (lf, lm) = longest(fields, objects);
    s.push_str(&fields_and_objects(fields, objects, start + key_pad + 2, lf, lm));
    s.push('\n');
    s.push_str(&spaces(start + marker(o.diff_type).len() + key_pad));
    s.push('}');
    s
}

/// A block's fields then objects, names aligned after the longest marker and values after the
/// longest field name. No trailing newline.
fn fields_and_objects(
    fields: &[FieldDiff],
    objects: &[ObjectDiff],
    start: usize,
    longest_field: usize,
    longest_marker: usize,
) -> String {
    let mut lines = Vec::new();
    for f in fields {
        let key_pad = longest_marker - marker(f.diff_type).len();
        let value_pad = longest_field - f.name.chars().count();
        lines.push(field_line(f, start, key_pad, value_pad));
    }
    for o in objects {
        let key_pad = longest_marker - marker(o.diff_type).len();
        lines.push(object_text(o, start, key_pad));
    }
    lines.join("\n")
}

fn task_text(t: &TaskDiff, start: usize, pad: usize, verbose: bool) -> String {
    let mut s = format!(
        "{}{}{}Task: {}",
        spaces(start),
        marker(t.diff_type),
        spaces(pad),
        quote(&t.name)
    );
    if let Some(a) = t.annotations.as_ref().filter(|a| !a.is_empty()) {
        s.push_str(&format!(" ({})", a.join(", ")));
    }
    let collapsed = t.diff_type == DiffType::None
        || (matches!(t.diff_type, DiffType::Added | DiffType::Deleted) && !verbose);
    if collapsed {
        return s;
    }
    let fields = t.fields.as_deref().unwrap_or_default();
    let objects = t.objects.as_deref().unwrap_or_default();
    let (lf, lm) = longest(fields, objects);
    let body = fields_and_objects(fields, objects, start + 2, lf, lm);
    if !body.is_empty() {
        s.push('\n');
        s.push_str(&body);
    }
    s
}

/// `(1 create, 2 ignore)`: non-zero update counts sorted by kind name.
pub fn updates_text(g: &TaskGroupDiff) -> String {
    let parts: Vec<String> = g
        .updates
        .iter()
        .flatten()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn group_text(g: &TaskGroupDiff, pad: usize, verbose: bool) -> String {
    let mut s = format!(
        "{}{}Task Group: {}{}",
        marker(g.diff_type),
        spaces(pad),
        quote(&g.name),
        updates_text(g)
    );
    let fields = g.fields.as_deref().unwrap_or_default();
    let objects = g.objects.as_deref().unwrap_or_default();
    let tasks = g.tasks.as_deref().unwrap_or_default();
    let (lf, mut lm) = longest(fields, objects);
    lm = lm.max(tasks.iter().map(|t| marker(t.diff_type).len()).max().unwrap_or(0));
    let start = pad + 2;
    if g.diff_type == DiffType::Edited || verbose {
        let body = fields_and_objects(fields, objects, start, lf, lm);
        if !body.is_empty() {
            s.push('\n');
            s.push_str(&body);
        }
    }
    for t in tasks {
        s.push('\n');
        s.push_str(&task_text(t, start, lm - marker(t.diff_type).len(), verbose));
    }
    s
}

/// The whole job diff, as `job plan` prints it (no trailing newline).
pub fn job_diff_text(d: &JobDiff, verbose: bool) -> String {
    let mut out = vec![format!("{}Job: {}", marker(d.diff_type), quote(&d.id))];
    let fields = d.fields.as_deref().unwrap_or_default();
    let objects = d.objects.as_deref().unwrap_or_default();
    let groups = d.task_groups.as_deref().unwrap_or_default();
    let (lf, mut lm) = longest(fields, objects);
    lm = lm.max(
        groups
            .iter()
            .map(|g| marker(g.diff_type).len())
            .max()
            .unwrap_or(0),
    );
    if d.diff_type == DiffType::Edited || verbose {
        let body = fields_and_objects(fields, objects, 0, lf, lm);
        if !body.is_empty() {
            out.push(body);
        }
    }
    for g in groups {
        out.push(group_text(g, lm - marker(g.diff_type).len(), verbose));
    }
    out.join("\n")
}

/// The `Scheduler dry-run:` body: success, or the failed groups with their metrics; plus the
/// rolling-update and periodic-launch notes.
pub fn dry_run_text(
    failed: &std::collections::BTreeMap<String, AllocMetric>,
    created_evals: &[drover_types::Evaluation],
    job_type: &str,
    next_periodic: Option<(String, String)>,
) -> String {
    let mut lines: Vec<String> = Vec::new();
    if failed.is_empty() {
        lines.push("- All tasks successfully allocated.".into());
    } else {
        lines.push(if job_type == "system" {
            "- WARNING: Failed to place allocations on all nodes.".into()
        } else {
            "- WARNING: Failed to place all allocations.".into()
        });
        for (group, m) in failed {
            lines.push(format!("  {}", crate::monitor::failed_group_header(group, m)));
            lines.extend(alloc_metric_lines(m, "    "));
            lines.push(String::new());
        }
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
    }
    if let Some(rolling) = created_evals
        .iter()
        .rev()
        .find(|e| e.triggered_by == "rolling-update")
    {
        lines.push(format!(
            "- Rolling update, next evaluation will be in {}.",
            drover_types::time::format_duration(rolling.wait)
        ));
    }
    if let Some((at, rel)) = next_periodic {
        lines.push(format!(
            "- If submitted now, next periodic launch would be at {at} ({rel})."
        ));
    }
    lines.join("\n")
}

/// The `Preemptions` table (`Alloc ID  Job ID  Task Group`).
pub fn preemptions_text(allocs: &[AllocListStub]) -> String {
    let mut rows = vec![row!["Alloc ID", "Job ID", "Task Group"]];
    for a in allocs {
        rows.push(row![a.id, a.job_id, a.task_group]);
    }
    format!("Preemptions:\n\n{}", table(&rows))
}

/// `Job Modify Index: N` and how to run the job with `-check-index N`; `run_args` are the
/// variable flags to repeat before the file name.
pub fn modify_index_text(index: u64, run_args: &[String], path: &str) -> String {
    let mut cmd = format!("drover job run -check-index {index}");
    for a in run_args {
        cmd.push(' ');
        cmd.push_str(a);
    }
    cmd.push(' ');
    cmd.push_str(path);
    format!(
        "Job Modify Index: {index}\n\
         To submit the job with version verification run:\n\
         \n\
         {cmd}\n\
         \n\
         With -check-index the job is only submitted if its modify index on the server is\n\
         still {index}; if another user changed the job since this plan, the run is refused\n\
         and the plan above should be looked at again."
    )
}

/// Nomad's plan exit code: 0 when nothing changes or only in-place updates happen, 1 when
/// allocations would be placed, stopped, migrated, destructively updated or canaried.
pub fn plan_exit_code(resp: &drover_api::JobPlanResponse) -> u8 {
    if resp.diff.as_ref().is_some_and(|d| d.diff_type == DiffType::None) {
        return 0;
    }
    let changes = resp
        .annotations
        .iter()
        .flat_map(|a| a.desired_tg_updates.values())
        .any(|u| u.stop + u.place + u.migrate + u.destructive_update + u.canary > 0);
    u8::from(changes)
}

/// Everything `job plan` prints after a successful plan call.
pub fn plan_text(
    resp: &drover_api::JobPlanResponse,
    job_type: &str,
    run_args: &[String],
    path: &str,
    verbose: bool,
) -> String {
    let mut out = String::new();
    if let Some(d) = &resp.diff {
        out.push_str(job_diff_text(d, verbose).trim());
        out.push_str("\n\n");
    }
    out.push_str("Scheduler dry-run:\n");
    out.push_str(&dry_run_text(
        &resp.failed_tg_allocs,
        &resp.created_evals,
        job_type,
        None,
    ));
    out.push_str("\n\n");
    if !resp.warnings.is_empty() {
        out.push_str(&format!("Job Warnings:\n{}\n\n", resp.warnings.trim_end()));
    }
    if let Some(a) = resp
        .annotations
        .as_ref()
        .filter(|a| !a.preempted_allocs.is_empty())
    {
        out.push_str(&preemptions_text(&a.preempted_allocs));
        out.push_str("\n\n");
    }
    out.push_str(&modify_index_text(resp.job_modify_index, run_args, path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_api::JobPlanResponse;
    use drover_types::eval::{DesiredUpdates, PlanAnnotations};

    fn field(t: DiffType, name: &str, old: &str, new: &str) -> FieldDiff {
        FieldDiff {
            diff_type: t,
            name: name.into(),
            old: old.into(),
            new: new.into(),
            annotations: None,
        }
    }

    fn new_job_response() -> JobPlanResponse {
        let json = serde_json::json!({
            "Annotations": {"DesiredTGUpdates": {"cache": {"Place": 1}}},
            "JobModifyIndex": 0,
            "Diff": {"Type": "Added", "ID": "example", "TaskGroups": [
                {"Type": "Added", "Name": "cache", "Updates": {"create": 1},
                 "Fields": [{"Type": "Added", "Name": "Count", "Old": "", "New": "1"}],
                 "Tasks": [{"Type": "Added", "Name": "redis", "Annotations": ["forces create"],
                            "Fields": [{"Type": "Added", "Name": "Driver", "Old": "", "New": "docker"}]}]}]}
        });
        drover_types::codec::from_value(json).unwrap()
    }

    #[test]
    fn new_job_plan_reads_like_nomad() {
        let resp = new_job_response();
        let text = plan_text(&resp, "service", &[], "example.nomad.hcl", false);
        let expected_head = "+ Job: \"example\"\n\
                             + Task Group: \"cache\" (1 create)\n  \
                             + Task: \"redis\" (forces create)\n\
                             \n\
                             Scheduler dry-run:\n\
                             - All tasks successfully allocated.\n\
                             \n\
                             Job Modify Index: 0\n\
                             To submit the job with version verification run:\n\
                             \n\
                             drover job run -check-index 0 example.nomad.hcl\n";
        assert!(text.starts_with(expected_head), "{text}");
        assert_eq!(plan_exit_code(&resp), 1);
    }

    #[test]
    fn edited_job_aligns_markers_fields_and_objects() {
        let d = JobDiff {
            diff_type: DiffType::Edited,
            id: "example".into(),
            fields: Some(vec![field(DiffType::Edited, "Priority", "50", "60")]),
            objects: None,
            task_groups: Some(vec![TaskGroupDiff {
                diff_type: DiffType::Edited,
                name: "cache".into(),
                fields: Some(vec![field(DiffType::Edited, "Count", "1", "3")]),
                objects: None,
                tasks: Some(vec![
                    TaskDiff {
                        diff_type: DiffType::Edited,
                        name: "redis".into(),
                        fields: None,
                        objects: Some(vec![ObjectDiff {
                            diff_type: DiffType::Edited,
                            name: "Config".into(),
                            fields: Some(vec![
                                field(DiffType::Edited, "image", "redis:3.2", "redis:4.0"),
                                field(DiffType::Added, "args[0]", "", "-v"),
                                field(DiffType::None, "port_map[0].db", "6379", "6379"),
                            ]),
                            objects: None,
                        }]),
                        annotations: Some(vec!["forces create/destroy update".into()]),
                    },
                    TaskDiff {
                        diff_type: DiffType::None,
                        name: "sidecar".into(),
                        ..Default::default()
                    },
                ]),
                updates: Some(
                    [
                        ("create/destroy update".to_string(), 1u64),
                        ("create".to_string(), 2),
                        ("ignore".to_string(), 0),
                    ]
                    .into_iter()
                    .collect(),
                ),
            }]),
        };
        assert_eq!(
            job_diff_text(&d, false),
            "+/- Job: \"example\"\n\
             +/- Priority: \"50\" => \"60\"\n\
             +/- Task Group: \"cache\" (2 create, 1 create/destroy update)\n  \
               +/- Count: \"1\" => \"3\"\n  \
               +/- Task: \"redis\" (forces create/destroy update)\n    \
                 +/- Config {\n      \
                   +/- image:          \"redis:3.2\" => \"redis:4.0\"\n      \
                   +   args[0]:        \"-v\"\n          \
                       port_map[0].db: \"6379\"\n        \
                     }\n      \
                   Task: \"sidecar\""
        );
    }

    #[test]
    fn failures_preemptions_and_exit_codes() {
        let mut resp = new_job_response();
        let mut m = AllocMetric {
            nodes_evaluated: 2,
            nodes_exhausted: 2,
            ..Default::default()
        };
        m.dimension_exhausted.insert("memory".into(), 2);
        resp.failed_tg_allocs.insert("cache".into(), m);
        if let Some(a) = resp.annotations.as_mut() {
            a.preempted_allocs.push(AllocListStub {
                id: "aaaa-bbbb".into(),
                job_id: "batchy".into(),
                task_group: "work".into(),
                ..Default::default()
            });
        }
        let text = plan_text(&resp, "service", &["-var=\"n=2\"".into()], "j.hcl", false);
        assert!(
            text.contains(
                "Scheduler dry-run:\n\
                 - WARNING: Failed to place all allocations.\n  \
                 Task Group \"cache\" (failed to place 1 allocation):\n    \
                 * Resources exhausted on 2 nodes\n    \
                 * Dimension \"memory\" exhausted on 2 nodes\n\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Preemptions:\n\nAlloc ID   Job ID  Task Group\naaaa-bbbb  batchy  work"),
            "{text}"
        );
        assert!(
            text.contains("drover job run -check-index 0 -var=\"n=2\" j.hcl"),
            "{text}"
        );

        // Only in-place updates: exit 0. No diff changes at all: exit 0.
        let mut inplace = JobPlanResponse {
            annotations: Some(PlanAnnotations::default()),
            diff: Some(JobDiff {
                diff_type: DiffType::Edited,
                ..Default::default()
            }),
            ..Default::default()
        };
        if let Some(a) = inplace.annotations.as_mut() {
            a.desired_tg_updates.insert(
                "web".into(),
                DesiredUpdates {
                    in_place_update: 2,
                    ..Default::default()
                },
            );
        }
        assert_eq!(plan_exit_code(&inplace), 0);
        if let Some(a) = inplace.annotations.as_mut()
            && let Some(u) = a.desired_tg_updates.get_mut("web")
        {
            u.destructive_update = 1;
        }
        assert_eq!(plan_exit_code(&inplace), 1);
        if let Some(d) = inplace.diff.as_mut() {
            d.diff_type = DiffType::None;
        }
        assert_eq!(plan_exit_code(&inplace), 0);
    }

    #[test]
    fn dry_run_notes() {
        let evals = vec![drover_types::Evaluation {
            triggered_by: "rolling-update".into(),
            wait: 30_000_000_000,
            ..Default::default()
        }];
        let t = dry_run_text(&Default::default(), &evals, "service", None);
        assert_eq!(
            t,
            "- All tasks successfully allocated.\n- Rolling update, next evaluation will be in 30s."
        );
        let mut failed = std::collections::BTreeMap::new();
        failed.insert("g".to_string(), AllocMetric::default());
        assert!(
            dry_run_text(&failed, &[], "system", None)
                .starts_with("- WARNING: Failed to place allocations on all nodes.")
        );
    }
}
