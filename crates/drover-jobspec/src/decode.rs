//! The job-file schema: evaluated HCL blocks → Nomad's API JSON (`{"ID": …, "TaskGroups": […]}`).
//!
//! ```text
//!  ir::Block job "x" ──decode_job──▶ serde_json::Value (API shape, only what was written)
//!                                        │ drover_types::codec::from_value
//!                                        ▼
//!                                      Job (then canonicalize + validate)
//! ```
//!
//! Each block type is a [`Schema`]: a table of `hcl name → API key, kind`. Kinds convert values
//! the way HCL's automatic conversions do (`"8080"` is a fine number, `30` a fine string) and
//! say whether the name is an attribute or a block and how blocks nest (one, many, labelled,
//! label-keyed map). A few blocks need a `post` step for Nomad's shorthands: constraint
//! `version = "…"`, `distinct_hosts = true`, network `port` blocks split into static and dynamic
//! ports, task `identity` blocks split into the default and named identities, task `scaling`
//! labels. Anything not in a table is an error naming the file, line and column, as HCL does
//! ("Unsupported argument", "Unsupported block type").
//!
//! Driver `config {}` is free-form: attributes keep their JSON value except that object values
//! are wrapped in a one-element list, and nested blocks become lists of objects (labels nest as
//! single-key objects), which is how Nomad has always presented them to drivers.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{Diagnostic, SourceMap};
use crate::ir::{Attr, Block, Body};

type Obj = Map<String, Value>;

/// How a name is decoded.
#[derive(Debug, Clone, Copy)]
enum K {
    Str,
    Int,
    Bool,
    Dur,
    ListStr,
    /// A map of strings, written as an attribute (`meta = {…}`) or a block (`meta {…}`).
    MapStr,
    /// A map of string lists (check `header`), attribute or block.
    MapListStr,
    /// Free-form body (driver `config`, scaling `policy`).
    Free,
    /// A body decoded generically, snake_case names to PascalCase keys (Consul Connect and
    /// other blocks Drover carries without acting on them).
    Generic,
    /// One block → object.
    One(&'static Schema),
    /// Repeated blocks → array.
    Many(&'static Schema),
    /// Repeated blocks with one label stored under the given key → array.
    Labeled(&'static Schema, &'static str),
    /// Repeated blocks with one label → object keyed by label, label also stored under the key.
    LabelMap(&'static Schema, &'static str),
}

impl K {
    fn is_block(self) -> bool {
        matches!(
            self,
            K::Free | K::Generic | K::One(_) | K::Many(_) | K::Labeled(..) | K::LabelMap(..)
        )
    }
    fn accepts_block_syntax(self) -> bool {
        self.is_block() || matches!(self, K::MapStr | K::MapListStr)
    }
}

#[derive(Debug)]
struct F {
    hcl: &'static str,
    api: &'static str,
    k: K,
}

const fn f(hcl: &'static str, api: &'static str, k: K) -> F {
    F { hcl, api, k }
}

/// The decoding table of one block type.
#[derive(Debug)]
pub struct Schema {
    name: &'static str,
    fields: &'static [F],
    post: Option<fn(&mut Decoder<'_>, &Block, &mut Obj)>,
}

static CONSTRAINT: Schema = Schema {
    name: "constraint",
    fields: &[
        f("attribute", "LTarget", K::Str),
        f("operator", "Operand", K::Str),
        f("value", "RTarget", K::Str),
        f("version", "_version", K::Str),
        f("semver", "_semver", K::Str),
        f("regexp", "_regexp", K::Str),
        f("set_contains", "_set_contains", K::Str),
        f("set_contains_any", "_set_contains_any", K::Str),
        f("set_contains_all", "_set_contains_all", K::Str),
        f("distinct_hosts", "_distinct_hosts", K::Bool),
        f("distinct_property", "_distinct_property", K::Str),
    ],
    post: Some(post_constraint),
};

static AFFINITY: Schema = Schema {
    name: "affinity",
    fields: &[
        f("attribute", "LTarget", K::Str),
        f("operator", "Operand", K::Str),
        f("value", "RTarget", K::Str),
        f("weight", "Weight", K::Int),
        f("version", "_version", K::Str),
        f("semver", "_semver", K::Str),
        f("regexp", "_regexp", K::Str),
        f("set_contains", "_set_contains", K::Str),
        f("set_contains_any", "_set_contains_any", K::Str),
        f("set_contains_all", "_set_contains_all", K::Str),
    ],
    post: Some(post_constraint),
};

static SPREAD_TARGET: Schema = Schema {
    name: "target",
    fields: &[f("percent", "Percent", K::Int)],
    post: None,
};

static SPREAD: Schema = Schema {
    name: "spread",
    fields: &[
        f("attribute", "Attribute", K::Str),
        f("weight", "Weight", K::Int),
        f("target", "SpreadTarget", K::Labeled(&SPREAD_TARGET, "Value")),
    ],
    post: None,
};

static UPDATE: Schema = Schema {
    name: "update",
    fields: &[
        f("stagger", "Stagger", K::Dur),
        f("max_parallel", "MaxParallel", K::Int),
        f("health_check", "HealthCheck", K::Str),
        f("min_healthy_time", "MinHealthyTime", K::Dur),
        f("healthy_deadline", "HealthyDeadline", K::Dur),
        f("progress_deadline", "ProgressDeadline", K::Dur),
        f("auto_revert", "AutoRevert", K::Bool),
        f("auto_promote", "AutoPromote", K::Bool),
        f("canary", "Canary", K::Int),
    ],
    post: None,
};

static MIGRATE: Schema = Schema {
    name: "migrate",
    fields: &[
        f("max_parallel", "MaxParallel", K::Int),
        f("health_check", "HealthCheck", K::Str),
        f("min_healthy_time", "MinHealthyTime", K::Dur),
        f("healthy_deadline", "HealthyDeadline", K::Dur),
    ],
    post: None,
};

static RESCHEDULE: Schema = Schema {
    name: "reschedule",
    fields: &[
        f("attempts", "Attempts", K::Int),
        f("interval", "Interval", K::Dur),
        f("delay", "Delay", K::Dur),
        f("delay_function", "DelayFunction", K::Str),
        f("max_delay", "MaxDelay", K::Dur),
        f("unlimited", "Unlimited", K::Bool),
    ],
    post: None,
};

static RESTART: Schema = Schema {
    name: "restart",
    fields: &[
        f("attempts", "Attempts", K::Int),
        f("interval", "Interval", K::Dur),
        f("delay", "Delay", K::Dur),
        f("mode", "Mode", K::Str),
        f("render_templates", "RenderTemplates", K::Bool),
    ],
    post: None,
};

static PERIODIC: Schema = Schema {
    name: "periodic",
    fields: &[
        f("cron", "Spec", K::Str),
        f("crons", "Specs", K::ListStr),
        f("prohibit_overlap", "ProhibitOverlap", K::Bool),
        f("time_zone", "TimeZone", K::Str),
        f("enabled", "Enabled", K::Bool),
    ],
    post: None,
};

static PARAMETERIZED: Schema = Schema {
    name: "parameterized",
    fields: &[
        f("payload", "Payload", K::Str),
        f("meta_required", "MetaRequired", K::ListStr),
        f("meta_optional", "MetaOptional", K::ListStr),
    ],
    post: None,
};

static UI_LINK: Schema = Schema {
    name: "link",
    fields: &[f("label", "Label", K::Str), f("url", "Url", K::Str)],
    post: None,
};

static UI: Schema = Schema {
    name: "ui",
    fields: &[
        f("description", "Description", K::Str),
        f("link", "Links", K::Many(&UI_LINK)),
    ],
    post: None,
};

static VAULT: Schema = Schema {
    name: "vault",
    fields: &[
        f("policies", "Policies", K::ListStr),
        f("role", "Role", K::Str),
        f("namespace", "Namespace", K::Str),
        f("cluster", "Cluster", K::Str),
        f("env", "Env", K::Bool),
        f("disable_file", "DisableFile", K::Bool),
        f("change_mode", "ChangeMode", K::Str),
        f("change_signal", "ChangeSignal", K::Str),
        f("allow_token_expiration", "AllowTokenExpiration", K::Bool),
    ],
    post: None,
};

static SECRET: Schema = Schema {
    name: "secret",
    fields: &[
        f("provider", "Provider", K::Str),
        f("path", "Path", K::Str),
        f("config", "Config", K::MapStr),
        f("env", "Env", K::MapStr),
    ],
    post: None,
};

static PORT: Schema = Schema {
    name: "port",
    fields: &[
        f("static", "Value", K::Int),
        f("to", "To", K::Int),
        f("host_network", "HostNetwork", K::Str),
        f("ignore_collision", "IgnoreCollision", K::Bool),
    ],
    post: None,
};

static DNS: Schema = Schema {
    name: "dns",
    fields: &[
        f("servers", "Servers", K::ListStr),
        f("searches", "Searches", K::ListStr),
        f("options", "Options", K::ListStr),
    ],
    post: None,
};

static CNI: Schema = Schema {
    name: "cni",
    fields: &[f("args", "Args", K::MapStr)],
    post: None,
};

static NETWORK: Schema = Schema {
    name: "network",
    fields: &[
        f("mode", "Mode", K::Str),
        f("hostname", "Hostname", K::Str),
        f("mbits", "MBits", K::Int),
        f("device", "Device", K::Str),
        f("port", "_ports", K::Labeled(&PORT, "Label")),
        f("dns", "DNS", K::One(&DNS)),
        f("cni", "CNI", K::One(&CNI)),
    ],
    post: Some(post_network),
};

static DEVICE: Schema = Schema {
    name: "device",
    fields: &[
        f("count", "Count", K::Int),
        f("constraint", "Constraints", K::Many(&CONSTRAINT)),
        f("affinity", "Affinities", K::Many(&AFFINITY)),
    ],
    post: None,
};

static RESOURCES: Schema = Schema {
    name: "resources",
    fields: &[
        f("cpu", "CPU", K::Int),
        f("cores", "Cores", K::Int),
        f("memory", "MemoryMB", K::Int),
        f("memory_max", "MemoryMaxMB", K::Int),
        f("disk", "DiskMB", K::Int),
        f("iops", "IOPS", K::Int),
        f("secrets", "SecretsMB", K::Int),
        f("network", "Networks", K::Many(&NETWORK)),
        f("device", "Devices", K::Labeled(&DEVICE, "Name")),
        f("numa", "NUMA", K::Generic),
    ],
    post: None,
};

static EPHEMERAL_DISK: Schema = Schema {
    name: "ephemeral_disk",
    fields: &[
        f("sticky", "Sticky", K::Bool),
        f("size", "SizeMB", K::Int),
        f("migrate", "Migrate", K::Bool),
    ],
    post: None,
};

static LOGS: Schema = Schema {
    name: "logs",
    fields: &[
        f("max_files", "MaxFiles", K::Int),
        f("max_file_size", "MaxFileSizeMB", K::Int),
        f("disabled", "Disabled", K::Bool),
        f("enabled", "Enabled", K::Bool),
    ],
    post: None,
};

static LIFECYCLE: Schema = Schema {
    name: "lifecycle",
    fields: &[f("hook", "Hook", K::Str), f("sidecar", "Sidecar", K::Bool)],
    post: None,
};

static ARTIFACT: Schema = Schema {
    name: "artifact",
    fields: &[
        f("source", "GetterSource", K::Str),
        f("destination", "RelativeDest", K::Str),
        f("mode", "GetterMode", K::Str),
        f("options", "GetterOptions", K::MapStr),
        f("headers", "GetterHeaders", K::MapStr),
        f("insecure", "GetterInsecure", K::Bool),
        f("chown", "Chown", K::Bool),
    ],
    post: None,
};

static CHANGE_SCRIPT: Schema = Schema {
    name: "change_script",
    fields: &[
        f("command", "Command", K::Str),
        f("args", "Args", K::ListStr),
        f("timeout", "Timeout", K::Dur),
        f("fail_on_error", "FailOnError", K::Bool),
    ],
    post: None,
};

static WAIT: Schema = Schema {
    name: "wait",
    fields: &[f("min", "Min", K::Dur), f("max", "Max", K::Dur)],
    post: None,
};

static TEMPLATE: Schema = Schema {
    name: "template",
    fields: &[
        f("source", "SourcePath", K::Str),
        f("destination", "DestPath", K::Str),
        f("data", "EmbeddedTmpl", K::Str),
        f("change_mode", "ChangeMode", K::Str),
        f("change_signal", "ChangeSignal", K::Str),
        f("change_script", "ChangeScript", K::One(&CHANGE_SCRIPT)),
        f("splay", "Splay", K::Dur),
        f("perms", "Perms", K::Str),
        f("uid", "Uid", K::Int),
        f("gid", "Gid", K::Int),
        f("left_delimiter", "LeftDelim", K::Str),
        f("right_delimiter", "RightDelim", K::Str),
        f("env", "Envvars", K::Bool),
        f("vault_grace", "VaultGrace", K::Dur),
        f("wait", "Wait", K::One(&WAIT)),
        f("error_on_missing_key", "ErrMissingKey", K::Bool),
        f("once", "Once", K::Bool),
    ],
    post: None,
};

static CHECK_RESTART: Schema = Schema {
    name: "check_restart",
    fields: &[
        f("limit", "Limit", K::Int),
        f("grace", "Grace", K::Dur),
        f("ignore_warnings", "IgnoreWarnings", K::Bool),
    ],
    post: None,
};

static CHECK: Schema = Schema {
    name: "check",
    fields: &[
        f("name", "Name", K::Str),
        f("type", "Type", K::Str),
        f("command", "Command", K::Str),
        f("args", "Args", K::ListStr),
        f("path", "Path", K::Str),
        f("protocol", "Protocol", K::Str),
        f("port", "PortLabel", K::Str),
        f("expose", "Expose", K::Bool),
        f("address_mode", "AddressMode", K::Str),
        f("interval", "Interval", K::Dur),
        f("timeout", "Timeout", K::Dur),
        f("initial_status", "InitialStatus", K::Str),
        f("tls_server_name", "TLSServerName", K::Str),
        f("tls_skip_verify", "TLSSkipVerify", K::Bool),
        f("header", "Header", K::MapListStr),
        f("method", "Method", K::Str),
        f("check_restart", "CheckRestart", K::One(&CHECK_RESTART)),
        f("grpc_service", "GRPCService", K::Str),
        f("grpc_use_tls", "GRPCUseTLS", K::Bool),
        f("task", "TaskName", K::Str),
        f("success_before_passing", "SuccessBeforePassing", K::Int),
        f("failures_before_critical", "FailuresBeforeCritical", K::Int),
        f("failures_before_warning", "FailuresBeforeWarning", K::Int),
        f("body", "Body", K::Str),
        f("on_update", "OnUpdate", K::Str),
        f("notes", "Notes", K::Str),
    ],
    post: None,
};

static IDENTITY: Schema = Schema {
    name: "identity",
    fields: &[
        f("name", "Name", K::Str),
        f("aud", "Audience", K::ListStr),
        f("env", "Env", K::Bool),
        f("file", "File", K::Bool),
        f("filepath", "Filepath", K::Str),
        f("ttl", "TTL", K::Dur),
        f("change_mode", "ChangeMode", K::Str),
        f("change_signal", "ChangeSignal", K::Str),
        f("service_name", "ServiceName", K::Str),
    ],
    post: None,
};

static SERVICE: Schema = Schema {
    name: "service",
    fields: &[
        f("name", "Name", K::Str),
        f("port", "PortLabel", K::Str),
        f("tags", "Tags", K::ListStr),
        f("canary_tags", "CanaryTags", K::ListStr),
        f("meta", "Meta", K::MapStr),
        f("canary_meta", "CanaryMeta", K::MapStr),
        f("tagged_addresses", "TaggedAddresses", K::MapStr),
        f("address", "Address", K::Str),
        f("address_mode", "AddressMode", K::Str),
        f("provider", "Provider", K::Str),
        f("task", "TaskName", K::Str),
        f("on_update", "OnUpdate", K::Str),
        f("enable_tag_override", "EnableTagOverride", K::Bool),
        f("cluster", "Cluster", K::Str),
        f("kind", "Kind", K::Str),
        f("namespace", "Namespace", K::Str),
        f("check", "Checks", K::Many(&CHECK)),
        f("check_restart", "_check_restart", K::One(&CHECK_RESTART)),
        f("connect", "Connect", K::Generic),
        f("weights", "Weights", K::Generic),
        f("identity", "Identity", K::One(&IDENTITY)),
    ],
    post: Some(post_service),
};

static VOLUME_MOUNT_OPTIONS: Schema = Schema {
    name: "mount_options",
    fields: &[
        f("fs_type", "FSType", K::Str),
        f("mount_flags", "MountFlags", K::ListStr),
    ],
    post: None,
};

static VOLUME: Schema = Schema {
    name: "volume",
    fields: &[
        f("type", "Type", K::Str),
        f("source", "Source", K::Str),
        f("read_only", "ReadOnly", K::Bool),
        f("sticky", "Sticky", K::Bool),
        f("per_alloc", "PerAlloc", K::Bool),
        f("access_mode", "AccessMode", K::Str),
        f("attachment_mode", "AttachmentMode", K::Str),
        f("mount_options", "MountOptions", K::One(&VOLUME_MOUNT_OPTIONS)),
    ],
    post: None,
};

static VOLUME_MOUNT: Schema = Schema {
    name: "volume_mount",
    fields: &[
        f("volume", "Volume", K::Str),
        f("destination", "Destination", K::Str),
        f("read_only", "ReadOnly", K::Bool),
        f("propagation_mode", "PropagationMode", K::Str),
        f("selinux_label", "SELinuxLabel", K::Str),
    ],
    post: None,
};

static DISPATCH_PAYLOAD: Schema = Schema {
    name: "dispatch_payload",
    fields: &[f("file", "File", K::Str)],
    post: None,
};

static SCALING: Schema = Schema {
    name: "scaling",
    fields: &[
        f("min", "Min", K::Int),
        f("max", "Max", K::Int),
        f("enabled", "Enabled", K::Bool),
        f("type", "Type", K::Str),
        f("policy", "Policy", K::Free),
    ],
    post: None,
};

static CONSUL: Schema = Schema {
    name: "consul",
    fields: &[
        f("namespace", "Namespace", K::Str),
        f("cluster", "Cluster", K::Str),
        f("partition", "Partition", K::Str),
    ],
    post: None,
};

static DISCONNECT: Schema = Schema {
    name: "disconnect",
    fields: &[
        f("lost_after", "LostAfter", K::Dur),
        f("stop_on_client_after", "StopOnClientAfter", K::Dur),
        f("replace", "Replace", K::Bool),
        f("reconcile", "Reconcile", K::Str),
    ],
    post: None,
};

static ACTION: Schema = Schema {
    name: "action",
    fields: &[f("command", "Command", K::Str), f("args", "Args", K::ListStr)],
    post: None,
};

static CSI_PLUGIN: Schema = Schema {
    name: "csi_plugin",
    fields: &[
        f("id", "ID", K::Str),
        f("type", "Type", K::Str),
        f("mount_dir", "MountDir", K::Str),
        f("stage_publish_base_dir", "StagePublishBaseDir", K::Str),
        f("health_timeout", "HealthTimeout", K::Dur),
    ],
    post: None,
};

static TASK: Schema = Schema {
    name: "task",
    fields: &[
        f("driver", "Driver", K::Str),
        f("user", "User", K::Str),
        f("config", "Config", K::Free),
        f("env", "Env", K::MapStr),
        f("meta", "Meta", K::MapStr),
        f("resources", "Resources", K::One(&RESOURCES)),
        f("restart", "RestartPolicy", K::One(&RESTART)),
        f("kill_timeout", "KillTimeout", K::Dur),
        f("kill_signal", "KillSignal", K::Str),
        f("shutdown_delay", "ShutdownDelay", K::Dur),
        f("leader", "Leader", K::Bool),
        f("lifecycle", "Lifecycle", K::One(&LIFECYCLE)),
        f("logs", "LogConfig", K::One(&LOGS)),
        f("artifact", "Artifacts", K::Many(&ARTIFACT)),
        f("template", "Templates", K::Many(&TEMPLATE)),
        f("service", "Services", K::Many(&SERVICE)),
        f("constraint", "Constraints", K::Many(&CONSTRAINT)),
        f("affinity", "Affinities", K::Many(&AFFINITY)),
        f("vault", "Vault", K::One(&VAULT)),
        f("consul", "Consul", K::One(&CONSUL)),
        f("identity", "_identities", K::Many(&IDENTITY)),
        f("volume_mount", "VolumeMounts", K::Many(&VOLUME_MOUNT)),
        f("dispatch_payload", "DispatchPayload", K::One(&DISPATCH_PAYLOAD)),
        f("csi_plugin", "CSIPluginConfig", K::One(&CSI_PLUGIN)),
        f("kind", "Kind", K::Str),
        f("action", "Actions", K::Labeled(&ACTION, "Name")),
        f("scaling", "_scaling", K::Labeled(&SCALING, "_label")),
        f("secret", "Secrets", K::Labeled(&SECRET, "Name")),
        f("schedule", "Schedule", K::Generic),
    ],
    post: Some(post_task),
};

static GROUP: Schema = Schema {
    name: "group",
    fields: &[
        f("count", "Count", K::Int),
        f("constraint", "Constraints", K::Many(&CONSTRAINT)),
        f("affinity", "Affinities", K::Many(&AFFINITY)),
        f("spread", "Spreads", K::Many(&SPREAD)),
        f("task", "Tasks", K::Labeled(&TASK, "Name")),
        f("network", "Networks", K::Many(&NETWORK)),
        f("service", "Services", K::Many(&SERVICE)),
        f("volume", "Volumes", K::LabelMap(&VOLUME, "Name")),
        f("restart", "RestartPolicy", K::One(&RESTART)),
        f("reschedule", "ReschedulePolicy", K::One(&RESCHEDULE)),
        f("migrate", "Migrate", K::One(&MIGRATE)),
        f("update", "Update", K::One(&UPDATE)),
        f("ephemeral_disk", "EphemeralDisk", K::One(&EPHEMERAL_DISK)),
        f("meta", "Meta", K::MapStr),
        f("disconnect", "Disconnect", K::One(&DISCONNECT)),
        f("shutdown_delay", "ShutdownDelay", K::Dur),
        f("max_run_duration", "MaxRunDuration", K::Dur),
        f(
            "stop_after_client_disconnect",
            "StopAfterClientDisconnect",
            K::Dur,
        ),
        f("max_client_disconnect", "MaxClientDisconnect", K::Dur),
        f("prevent_reschedule_on_lost", "PreventRescheduleOnLost", K::Bool),
        f("scaling", "Scaling", K::One(&SCALING)),
        f("consul", "Consul", K::One(&CONSUL)),
        f("vault", "_vault", K::One(&VAULT)),
    ],
    post: Some(post_group),
};

static JOB: Schema = Schema {
    name: "job",
    fields: &[
        f("id", "ID", K::Str),
        f("name", "Name", K::Str),
        f("region", "Region", K::Str),
        f("namespace", "Namespace", K::Str),
        f("type", "Type", K::Str),
        f("priority", "Priority", K::Int),
        f("datacenters", "Datacenters", K::ListStr),
        f("node_pool", "NodePool", K::Str),
        f("all_at_once", "AllAtOnce", K::Bool),
        f("consul_token", "ConsulToken", K::Str),
        f("consul_namespace", "ConsulNamespace", K::Str),
        f("vault_token", "VaultToken", K::Str),
        f("vault_namespace", "VaultNamespace", K::Str),
        f("meta", "Meta", K::MapStr),
        f("constraint", "Constraints", K::Many(&CONSTRAINT)),
        f("affinity", "Affinities", K::Many(&AFFINITY)),
        f("spread", "Spreads", K::Many(&SPREAD)),
        f("group", "TaskGroups", K::Labeled(&GROUP, "Name")),
        f("task", "_tasks", K::Labeled(&TASK, "Name")),
        f("update", "Update", K::One(&UPDATE)),
        f("migrate", "Migrate", K::One(&MIGRATE)),
        f("reschedule", "Reschedule", K::One(&RESCHEDULE)),
        f("periodic", "Periodic", K::One(&PERIODIC)),
        f("parameterized", "ParameterizedJob", K::One(&PARAMETERIZED)),
        f("multiregion", "Multiregion", K::Generic),
        f("ui", "UI", K::One(&UI)),
        f("vault", "_vault", K::One(&VAULT)),
        f("secret", "_secrets", K::Labeled(&SECRET, "Name")),
    ],
    post: Some(post_job),
};

/// Decodes blocks against schemas, collecting diagnostics.
pub struct Decoder<'a> {
    sm: &'a SourceMap,
    diags: &'a mut Vec<Diagnostic>,
}

impl std::fmt::Debug for Decoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("file", &self.sm.file()).finish()
    }
}

impl<'a> Decoder<'a> {
    /// A decoder reporting into `diags`.
    pub fn new(sm: &'a SourceMap, diags: &'a mut Vec<Diagnostic>) -> Self {
        Decoder { sm, diags }
    }

    fn err(
        &mut self,
        span: Option<&std::ops::Range<usize>>,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) {
        self.diags.push(self.sm.diag(span, summary, detail));
    }

    /// Decodes the `job "<id>"` block into API JSON.
    pub fn job(&mut self, block: &Block) -> Value {
        if block.labels.len() != 1 {
            self.err(
                block.span.as_ref(),
                "Missing job name",
                "write job \"<id>\" { … } with exactly one label",
            );
        }
        let mut obj = self.body(&JOB, block);
        if let Some(id) = block.labels.first() {
            obj.entry("ID").or_insert_with(|| Value::String(id.clone()));
            obj.entry("Name").or_insert_with(|| Value::String(id.clone()));
        }
        Value::Object(obj)
    }

    fn body(&mut self, schema: &Schema, block: &Block) -> Obj {
        let mut out = Obj::new();
        let body = &block.body;
        let mut seen_attrs: HashMap<&str, &Attr> = HashMap::new();
        for a in &body.attrs {
            if let Some(prev) = seen_attrs.insert(a.name.as_str(), a) {
                let (line, _) = prev
                    .span
                    .as_ref()
                    .map(|s| self.sm.position(s.start))
                    .unwrap_or((0, 0));
                self.err(
                    a.span.as_ref(),
                    "Attribute redefined",
                    format!("the argument {:?} was already set at line {line}", a.name),
                );
                continue;
            }
            match schema.fields.iter().find(|fl| fl.hcl == a.name) {
                Some(fl) if fl.k.is_block() => {
                    // `config = { … }` style: accept an object for free-form and generic blocks.
                    if matches!(fl.k, K::Free | K::Generic) && a.value.is_object() {
                        let v = if matches!(fl.k, K::Free) {
                            free_value_top(&a.value)
                        } else {
                            a.value.clone()
                        };
                        out.insert(fl.api.to_string(), v);
                    } else if let (K::One(s), Value::Object(_)) = (fl.k, &a.value) {
                        // `wait = { min = "5s" }`: attribute syntax for a single block.
                        let synthetic = Block {
                            ident: a.name.clone(),
                            labels: Vec::new(),
                            body: crate::json_body(&a.value),
                            span: a.span.clone(),
                        };
                        out.insert(fl.api.to_string(), Value::Object(self.block(s, &synthetic)));
                    } else {
                        self.err(
                            a.span.as_ref(),
                            "Unsupported argument",
                            format!(
                                "{:?} is a block, not an argument: write {} {{ … }}",
                                a.name, a.name
                            ),
                        );
                    }
                }
                Some(fl) => {
                    if let Some(v) = self.convert(fl.k, a) {
                        out.insert(fl.api.to_string(), v);
                    }
                }
                None => self.err(
                    a.span.as_ref(),
                    "Unsupported argument",
                    format!(
                        "an argument named {:?} is not expected in {}{}",
                        a.name,
                        schema.name,
                        hint(schema, &a.name)
                    ),
                ),
            }
        }
        let mut seen_blocks: HashMap<&str, &Block> = HashMap::new();
        let blocks = unfold_labels(schema, &body.blocks);
        for b in blocks.iter().map(|c| c.as_ref()) {
            let Some(fl) = schema.fields.iter().find(|fl| fl.hcl == b.ident) else {
                self.err(
                    b.span.as_ref(),
                    "Unsupported block type",
                    format!(
                        "blocks of type {:?} are not expected in {}{}",
                        b.ident,
                        schema.name,
                        hint(schema, &b.ident)
                    ),
                );
                continue;
            };
            if !fl.k.accepts_block_syntax() {
                self.err(
                    b.span.as_ref(),
                    "Unsupported block type",
                    format!("{:?} is an argument, not a block: write {} = …", b.ident, b.ident),
                );
                continue;
            }
            if seen_attrs.contains_key(b.ident.as_str()) {
                self.err(
                    b.span.as_ref(),
                    format!("Duplicate {} block", b.ident),
                    format!("{:?} is already set as an argument; use one form", b.ident),
                );
                continue;
            }
            let single = matches!(fl.k, K::One(_) | K::Free | K::Generic | K::MapStr | K::MapListStr);
            if single {
                if let Some(prev) = seen_blocks.insert(b.ident.as_str(), b) {
                    let (line, _) = prev
                        .span
                        .as_ref()
                        .map(|s| self.sm.position(s.start))
                        .unwrap_or((0, 0));
                    self.err(
                        b.span.as_ref(),
                        format!("Duplicate {} block", b.ident),
                        format!(
                            "only one {:?} block is allowed here; another was defined at line {line}",
                            b.ident
                        ),
                    );
                    continue;
                }
                if !b.labels.is_empty() && !matches!(fl.k, K::Free | K::Generic) {
                    self.err(
                        b.span.as_ref(),
                        format!("Extraneous label for {}", b.ident),
                        format!("{} blocks take no labels", b.ident),
                    );
                }
            }
            match fl.k {
                K::One(s) => {
                    let v = Value::Object(self.block(s, b));
                    out.insert(fl.api.to_string(), v);
                }
                K::Many(s) => {
                    if !b.labels.is_empty() {
                        self.err(
                            b.span.as_ref(),
                            format!("Extraneous label for {}", b.ident),
                            format!("{} blocks take no labels", b.ident),
                        );
                    }
                    let v = Value::Object(self.block(s, b));
                    push(&mut out, fl.api, v);
                }
                K::Labeled(s, key) => {
                    if b.labels.len() != 1 {
                        self.err(
                            b.span.as_ref(),
                            format!("Missing name for {}", b.ident),
                            format!(
                                "{} blocks need exactly one label: {} \"<name>\" {{ … }}",
                                b.ident, b.ident
                            ),
                        );
                        continue;
                    }
                    let mut o = self.block(s, b);
                    o.insert(key.to_string(), Value::String(b.labels[0].clone()));
                    push(&mut out, fl.api, Value::Object(o));
                }
                K::LabelMap(s, key) => {
                    if b.labels.len() != 1 {
                        self.err(
                            b.span.as_ref(),
                            format!("Missing name for {}", b.ident),
                            format!("{} blocks need exactly one label", b.ident),
                        );
                        continue;
                    }
                    let mut o = self.block(s, b);
                    o.insert(key.to_string(), Value::String(b.labels[0].clone()));
                    let map = out
                        .entry(fl.api.to_string())
                        .or_insert_with(|| Value::Object(Obj::new()));
                    if let Value::Object(m) = map {
                        if m.contains_key(&b.labels[0]) {
                            self.err(
                                b.span.as_ref(),
                                format!("Duplicate {} block", b.ident),
                                format!("{:?} is defined twice", b.labels[0]),
                            );
                        }
                        m.insert(b.labels[0].clone(), Value::Object(o));
                    }
                }
                K::Free => {
                    out.insert(fl.api.to_string(), Value::Object(free_body(&b.body)));
                }
                K::Generic => {
                    out.insert(fl.api.to_string(), Value::Object(generic_body(&b.body)));
                }
                K::MapStr => {
                    let mut m = Obj::new();
                    for a in &b.body.attrs {
                        if let Some(v) = self.scalar_string(a, &a.value) {
                            m.insert(a.name.clone(), Value::String(v));
                        }
                    }
                    for nb in &b.body.blocks {
                        self.err(
                            nb.span.as_ref(),
                            "Unsupported block type",
                            format!("{} holds only name = value pairs", b.ident),
                        );
                    }
                    out.insert(fl.api.to_string(), Value::Object(m));
                }
                K::MapListStr => {
                    let mut m = Obj::new();
                    for a in &b.body.attrs {
                        if let Some(v) = self.convert(K::ListStr, a) {
                            m.insert(a.name.clone(), v);
                        }
                    }
                    out.insert(fl.api.to_string(), Value::Object(m));
                }
                _ => {}
            }
        }
        if let Some(post) = schema.post {
            post(self, block, &mut out);
        }
        out
    }

    fn block(&mut self, s: &Schema, b: &Block) -> Obj {
        self.body(s, b)
    }

    fn scalar_string(&mut self, a: &Attr, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.err(
                    a.span.as_ref(),
                    format!("Inappropriate value for attribute {:?}", a.name),
                    format!("a string is required, got {}", kind_of(other)),
                );
                None
            }
        }
    }

    fn convert(&mut self, k: K, a: &Attr) -> Option<Value> {
        let v = &a.value;
        if v.is_null() {
            return None;
        }
        let bad = |me: &mut Self, want: &str| {
            me.err(
                a.span.as_ref(),
                format!("Inappropriate value for attribute {:?}", a.name),
                format!("{want} is required, got {}", describe(v)),
            );
            None
        };
        match k {
            K::Str => self.scalar_string(a, v).map(Value::String),
            K::Int => match v {
                Value::Number(n) if n.is_i64() || n.is_u64() => Some(v.clone()),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(Value::from(f as i64)),
                    Some(f) if f.fract() == 0.0 => bad(self, "a whole number that fits in 64 bits"),
                    _ => bad(self, "a whole number"),
                },
                Value::String(s) => match s.trim().parse::<i64>() {
                    Ok(i) => Some(Value::from(i)),
                    Err(_) => bad(self, "a whole number"),
                },
                _ => bad(self, "a whole number"),
            },
            K::Bool => match v {
                Value::Bool(_) => Some(v.clone()),
                Value::String(s) if s == "true" || s == "false" => Some(Value::Bool(s == "true")),
                _ => bad(self, "a bool"),
            },
            K::Dur => match v {
                Value::String(s) => match drover_types::time::parse_duration(s) {
                    Ok(n) => Some(Value::from(n)),
                    Err(e) => {
                        self.err(a.span.as_ref(), format!("Invalid duration for {:?}", a.name), e);
                        None
                    }
                },
                Value::Number(n) if n.is_i64() || n.is_u64() => Some(v.clone()),
                _ => bad(self, "a duration like \"30s\""),
            },
            K::ListStr => match v {
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for it in items {
                        out.push(Value::String(self.scalar_string(a, it)?));
                    }
                    Some(Value::Array(out))
                }
                _ => bad(self, "a list of strings"),
            },
            K::MapStr => match v {
                Value::Object(o) => {
                    let mut m = Obj::new();
                    for (key, val) in o {
                        m.insert(key.clone(), Value::String(self.scalar_string(a, val)?));
                    }
                    Some(Value::Object(m))
                }
                _ => bad(self, "a map of strings"),
            },
            K::MapListStr => match v {
                Value::Object(o) => {
                    let mut m = Obj::new();
                    for (key, val) in o {
                        let list = match val {
                            Value::Array(items) => {
                                let mut l = Vec::new();
                                for it in items {
                                    l.push(Value::String(self.scalar_string(a, it)?));
                                }
                                l
                            }
                            other => vec![Value::String(self.scalar_string(a, other)?)],
                        };
                        m.insert(key.clone(), Value::Array(list));
                    }
                    Some(Value::Object(m))
                }
                _ => bad(self, "a map of string lists"),
            },
            _ => Some(v.clone()),
        }
    }
}

/// HCL-JSON writes `group "cache" {…}` as `"group": {"cache": {…}}`, which arrives here as an
/// unlabelled `group` block holding a `cache` block. Unfold such blocks into labelled ones for
/// the names that take a label.
fn unfold_labels<'b>(schema: &Schema, blocks: &'b [Block]) -> Vec<std::borrow::Cow<'b, Block>> {
    use std::borrow::Cow;
    let mut out = Vec::with_capacity(blocks.len());
    for b in blocks {
        let labeled = schema
            .fields
            .iter()
            .any(|f| f.hcl == b.ident && matches!(f.k, K::Labeled(..) | K::LabelMap(..)));
        if labeled && b.labels.is_empty() && b.body.attrs.is_empty() && !b.body.blocks.is_empty() {
            for inner in &b.body.blocks {
                out.push(Cow::Owned(Block {
                    ident: b.ident.clone(),
                    labels: vec![inner.ident.clone()],
                    body: inner.body.clone(),
                    span: inner.span.clone().or_else(|| b.span.clone()),
                }));
            }
        } else {
            out.push(Cow::Borrowed(b));
        }
    }
    out
}

fn hint(schema: &Schema, name: &str) -> String {
    let close: Vec<&str> = schema
        .fields
        .iter()
        .filter(|f| !f.api.starts_with('_') || f.hcl.len() > 2)
        .map(|f| f.hcl)
        .filter(|h| similar(h, name))
        .collect();
    match close.first() {
        Some(c) => format!("; did you mean {c:?}?"),
        None => String::new(),
    }
}

fn similar(a: &str, b: &str) -> bool {
    if a == b {
        return false;
    }
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == b || a.replace('_', "") == b.replace('_', "") {
        return true;
    }
    // Two neighbouring letters swapped ("cuont" for "count").
    let (ac, bc): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if ac.len() == bc.len() {
        let diffs: Vec<usize> = (0..ac.len()).filter(|&i| ac[i] != bc[i]).collect();
        if let [i, j] = diffs[..]
            && j == i + 1
            && ac[i] == bc[j]
            && ac[j] == bc[i]
        {
            return true;
        }
    }
    // One edit apart (insert, delete or substitute), enough for common typos.
    let (x, y): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (n, m) = (x.len(), y.len());
    if n.abs_diff(m) > 1 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=m).collect();
    for i in 1..=n {
        let mut cur = vec![i; m + 1];
        for j in 1..=m {
            let cost = usize::from(x[i - 1] != y[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[m] <= 1
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() < 60 => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => kind_of(other).to_string(),
    }
}

fn push(out: &mut Obj, key: &str, v: Value) {
    match out
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(a) => a.push(v),
        other => *other = Value::Array(vec![v]),
    }
}

/// Top-level value of a free-form attribute: objects are wrapped in a one-element list.
fn free_value_top(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut m = Obj::new();
            for (k, val) in o {
                m.insert(k.clone(), free_attr_value(val));
            }
            Value::Object(m)
        }
        other => other.clone(),
    }
}

fn free_attr_value(v: &Value) -> Value {
    match v {
        Value::Object(_) => Value::Array(vec![v.clone()]),
        other => other.clone(),
    }
}

/// A free-form body (driver `config`): attributes as written (objects in one-element lists),
/// blocks as lists of objects, labels nesting as single-key objects.
fn free_body(body: &Body) -> Obj {
    let mut m = Obj::new();
    for a in &body.attrs {
        m.insert(a.name.clone(), free_attr_value(&a.value));
    }
    for b in &body.blocks {
        let mut inner = Value::Object(free_body(&b.body));
        for label in b.labels.iter().rev() {
            let mut wrap = Obj::new();
            wrap.insert(label.clone(), Value::Array(vec![inner]));
            inner = Value::Object(wrap);
        }
        push(&mut m, &b.ident, inner);
    }
    m
}

fn pascal(s: &str) -> String {
    let mut out = String::new();
    for part in s.split('_') {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            out.extend(c.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    match out.as_str() {
        "Id" => "ID".into(),
        _ => out,
    }
}

/// A generic body: names to PascalCase, one block → object, repeated → list, labels as `Name`.
fn generic_body(body: &Body) -> Obj {
    let mut m = Obj::new();
    for a in &body.attrs {
        m.insert(pascal(&a.name), a.value.clone());
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in &body.blocks {
        *counts.entry(b.ident.as_str()).or_default() += 1;
    }
    for b in &body.blocks {
        let mut o = generic_body(&b.body);
        if let Some(l) = b.labels.first() {
            o.insert("Name".into(), Value::String(l.clone()));
        }
        let key = pascal(&b.ident);
        if counts.get(b.ident.as_str()).copied().unwrap_or(0) > 1 || !b.labels.is_empty() {
            push(&mut m, &key, Value::Object(o));
        } else {
            m.insert(key, Value::Object(o));
        }
    }
    m
}

fn post_constraint(d: &mut Decoder<'_>, b: &Block, o: &mut Obj) {
    let shorthands = [
        "version",
        "semver",
        "regexp",
        "set_contains",
        "set_contains_any",
        "set_contains_all",
    ];
    for sh in shorthands {
        if let Some(v) = o.remove(&format!("_{sh}")) {
            if o.contains_key("Operand") {
                d.err(
                    b.span.as_ref(),
                    format!("Conflicting {} operators", b.ident),
                    format!("{sh} = … cannot be combined with operator"),
                );
            }
            o.insert("Operand".into(), Value::String(sh.into()));
            o.insert("RTarget".into(), v);
        }
    }
    if let Some(Value::Bool(true)) = o.remove("_distinct_hosts") {
        o.insert("Operand".into(), Value::String("distinct_hosts".into()));
        o.insert("RTarget".into(), Value::String("true".into()));
    }
    if let Some(v) = o.remove("_distinct_property") {
        o.insert("Operand".into(), Value::String("distinct_property".into()));
        o.insert("LTarget".into(), v);
    }
    o.entry("Operand").or_insert_with(|| Value::String("=".into()));
}

fn post_network(_d: &mut Decoder<'_>, _b: &Block, o: &mut Obj) {
    if let Some(Value::Array(ports)) = o.remove("_ports") {
        for p in ports {
            let is_static = p.get("Value").and_then(Value::as_i64).is_some_and(|v| v > 0);
            push(
                o,
                if is_static {
                    "ReservedPorts"
                } else {
                    "DynamicPorts"
                },
                p,
            );
        }
    }
}

fn post_service(_d: &mut Decoder<'_>, _b: &Block, o: &mut Obj) {
    // A service-level check_restart applies to every check that has none of its own.
    if let Some(cr) = o.remove("_check_restart")
        && let Some(Value::Array(checks)) = o.get_mut("Checks")
    {
        for c in checks {
            if let Value::Object(c) = c {
                c.entry("CheckRestart").or_insert_with(|| cr.clone());
            }
        }
    }
}

fn post_task(d: &mut Decoder<'_>, b: &Block, o: &mut Obj) {
    if let Some(Value::Array(ids)) = o.remove("_identities") {
        for id in ids {
            let name = id.get("Name").and_then(Value::as_str).unwrap_or("").to_string();
            if name.is_empty() || name == "default" {
                if o.contains_key("Identity") {
                    d.err(
                        b.span.as_ref(),
                        "Duplicate identity block",
                        "only one default (unnamed) identity is allowed",
                    );
                }
                o.insert("Identity".into(), id);
            } else {
                push(o, "Identities", id);
            }
        }
    }
    if let Some(Value::Array(policies)) = o.remove("_scaling") {
        let mut seen = std::collections::HashSet::new();
        for mut p in policies {
            if let Value::Object(pm) = &mut p {
                let label = pm
                    .remove("_label")
                    .and_then(|l| l.as_str().map(str::to_string))
                    .unwrap_or_default();
                let kind = match label.as_str() {
                    "cpu" => "vertical_cpu",
                    "mem" => "vertical_mem",
                    other => {
                        d.err(
                            b.span.as_ref(),
                            "Invalid scaling policy",
                            format!("task scaling blocks are labelled \"cpu\" or \"mem\", got {other:?}"),
                        );
                        continue;
                    }
                };
                if let Some(t) = pm.get("Type").and_then(Value::as_str)
                    && t != kind
                {
                    d.err(
                        b.span.as_ref(),
                        "Invalid scaling policy",
                        format!("scaling {label:?} has type {t:?}; it must be {kind:?} or left out"),
                    );
                }
                if !seen.insert(label.clone()) {
                    d.err(
                        b.span.as_ref(),
                        "Duplicate scaling block",
                        format!("scaling {label:?} is defined twice"),
                    );
                }
                pm.insert("Type".into(), Value::String(kind.into()));
            }
            push(o, "ScalingPolicies", p);
        }
    }
}

fn post_group(_d: &mut Decoder<'_>, _b: &Block, o: &mut Obj) {
    // A group-level vault block is copied into the group's tasks that have none.
    if let Some(vault) = o.remove("_vault")
        && let Some(Value::Array(tasks)) = o.get_mut("Tasks")
    {
        for t in tasks {
            if let Value::Object(t) = t {
                t.entry("Vault").or_insert_with(|| vault.clone());
            }
        }
    }
}

fn post_job(_d: &mut Decoder<'_>, _b: &Block, o: &mut Obj) {
    // A task directly under job becomes its own group of the same name.
    if let Some(Value::Array(tasks)) = o.remove("_tasks") {
        for t in tasks {
            let name = t.get("Name").cloned().unwrap_or(Value::Null);
            let mut g = Obj::new();
            g.insert("Name".into(), name);
            g.insert("Tasks".into(), Value::Array(vec![t]));
            push(o, "TaskGroups", Value::Object(g));
        }
    }
    // Job-level vault and secret blocks are copied into tasks lacking them.
    let vault = o.remove("_vault");
    let secrets = o.remove("_secrets");
    if vault.is_none() && secrets.is_none() {
        return;
    }
    if let Some(Value::Array(groups)) = o.get_mut("TaskGroups") {
        for g in groups {
            if let Some(Value::Array(tasks)) = g.get_mut("Tasks") {
                for t in tasks {
                    if let Value::Object(t) = t {
                        if let Some(v) = &vault {
                            t.entry("Vault").or_insert_with(|| v.clone());
                        }
                        if let Some(s) = &secrets {
                            t.entry("Secrets").or_insert_with(|| s.clone());
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_names() {
        assert!(similar("driver", "drivr"));
        assert!(similar("max_parallel", "maxparallel"));
        assert!(!similar("driver", "config"));
    }

    #[test]
    fn pascal_case() {
        assert_eq!(pascal("sidecar_service"), "SidecarService");
        assert_eq!(pascal("id"), "ID");
    }
}
