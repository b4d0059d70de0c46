//! `drover operator scheduler get-config | set-config`: the cluster-wide scheduler settings
//! (algorithm, preemption per scheduler type, memory oversubscription).
//!
//! ```text
//!  get-config   GET /v1/operator/scheduler/configuration ─▶ config_text
//!  set-config   GET (current) ─▶ apply the flags given ─▶ PUT ...?cas=<-check-index>
//!               ─▶ "Scheduler configuration updated!" or a CAS failure (exit 1)
//! ```
//!
//! Boolean flags are Go-style: `-memory-oversubscription` alone means true,
//! `-memory-oversubscription=false` sets false; flags not given keep the current value.

use clap::{Args, Subcommand};
use drover_api::{Client, QueryOptions};
use drover_types::SchedulerConfiguration;

use crate::common::{ApiArgs, Ui, run_with_client};
use crate::format::kv;

/// `operator` subcommands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Scheduler configuration.
    #[command(subcommand)]
    Scheduler(SchedulerCommand),
}

/// `operator scheduler` subcommands.
#[derive(Debug, Subcommand)]
pub enum SchedulerCommand {
    /// Show the scheduler configuration.
    GetConfig(GetConfigArgs),
    /// Change the scheduler configuration.
    SetConfig(SetConfigArgs),
}

/// `get-config` flags.
#[derive(Debug, Clone, Args)]
pub struct GetConfigArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        other => Err(format!("invalid boolean {other:?} (use true or false)")),
    }
}

/// `set-config` flags.
#[derive(Debug, Clone, Default, Args)]
pub struct SetConfigArgs {
    /// Only update if the configuration's modify index is still N.
    #[arg(long = "check-index", value_name = "N")]
    pub check_index: Option<u64>,
    /// `binpack` or `spread`.
    #[arg(long = "scheduler-algorithm", value_name = "ALGORITHM")]
    pub scheduler_algorithm: Option<String>,
    /// Allow tasks to use memory beyond their reservation (memory_max).
    #[arg(long = "memory-oversubscription", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub memory_oversubscription: Option<bool>,
    /// Reject job registrations.
    #[arg(long = "reject-job-registration", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub reject_job_registration: Option<bool>,
    /// Pause the eval broker.
    #[arg(long = "pause-eval-broker", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub pause_eval_broker: Option<bool>,
    /// Preemption for batch jobs.
    #[arg(long = "preempt-batch-scheduler", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub preempt_batch_scheduler: Option<bool>,
    /// Preemption for service jobs.
    #[arg(long = "preempt-service-scheduler", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub preempt_service_scheduler: Option<bool>,
    /// Preemption for system jobs.
    #[arg(long = "preempt-system-scheduler", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub preempt_system_scheduler: Option<bool>,
    /// Preemption for sysbatch jobs.
    #[arg(long = "preempt-sysbatch-scheduler", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool, value_name = "BOOL")]
    pub preempt_sysbatch_scheduler: Option<bool>,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs an operator subcommand with the process's terminal.
pub fn run(cmd: OperatorCommand) -> u8 {
    match cmd {
        OperatorCommand::Scheduler(SchedulerCommand::GetConfig(a)) => {
            run_with_client(&a.api, async |c, ui| get_config(&a, c, ui).await)
        }
        OperatorCommand::Scheduler(SchedulerCommand::SetConfig(a)) => {
            run_with_client(&a.api, async |c, ui| set_config(&a, c, ui).await)
        }
    }
}

/// The configuration as `get-config` prints it.
pub fn config_text(c: &SchedulerConfiguration) -> String {
    let p = &c.preemption_config;
    let rows = [
        ("Scheduler Algorithm", c.scheduler_algorithm.clone()),
        (
            "Memory Oversubscription",
            c.memory_oversubscription_enabled.to_string(),
        ),
        ("Reject Job Registration", c.reject_job_registration.to_string()),
        ("Pause Eval Broker", c.pause_eval_broker.to_string()),
        (
            "Preemption System Scheduler",
            p.system_scheduler_enabled.to_string(),
        ),
        (
            "Preemption Service Scheduler",
            p.service_scheduler_enabled.to_string(),
        ),
        (
            "Preemption Batch Scheduler",
            p.batch_scheduler_enabled.to_string(),
        ),
        (
            "Preemption SysBatch Scheduler",
            p.sys_batch_scheduler_enabled.to_string(),
        ),
        ("Modify Index", c.modify_index.to_string()),
    ];
    let lines: Vec<String> = kv(&rows).lines().map(str::to_string).collect();
    // A blank line between the general settings and the preemption ones.
    format!("{}\n\n{}", lines[..4].join("\n"), lines[4..].join("\n"))
}

/// Applies the flags that were given to `c`.
pub fn apply_flags(a: &SetConfigArgs, c: &mut SchedulerConfiguration) -> Result<(), String> {
    if let Some(alg) = &a.scheduler_algorithm {
        if alg != "binpack" && alg != "spread" {
            return Err(format!(
                "invalid -scheduler-algorithm {alg:?}: use \"binpack\" or \"spread\""
            ));
        }
        c.scheduler_algorithm = alg.clone();
    }
    let p = &mut c.preemption_config;
    let set = |dst: &mut bool, v: Option<bool>| {
        if let Some(v) = v {
            *dst = v;
        }
    };
    set(&mut c.memory_oversubscription_enabled, a.memory_oversubscription);
    set(&mut c.reject_job_registration, a.reject_job_registration);
    set(&mut c.pause_eval_broker, a.pause_eval_broker);
    set(&mut p.batch_scheduler_enabled, a.preempt_batch_scheduler);
    set(&mut p.service_scheduler_enabled, a.preempt_service_scheduler);
    set(&mut p.system_scheduler_enabled, a.preempt_system_scheduler);
    set(&mut p.sys_batch_scheduler_enabled, a.preempt_sysbatch_scheduler);
    Ok(())
}

async fn current(client: &Client, ui: &mut Ui) -> Result<SchedulerConfiguration, u8> {
    match client.scheduler_configuration(&QueryOptions::new()).await {
        Ok((r, _)) => Ok(r.scheduler_config.unwrap_or_default()),
        Err(e) => {
            ui.error(format!("Error querying scheduler configuration: {e}"));
            Err(1)
        }
    }
}

/// `operator scheduler get-config`.
pub async fn get_config(a: &GetConfigArgs, client: &Client, ui: &mut Ui) -> u8 {
    match current(client, ui).await {
        Ok(c) if a.json => ui.json(&c),
        Ok(c) => {
            ui.output(config_text(&c));
            0
        }
        Err(code) => code,
    }
}

/// `operator scheduler set-config`.
pub async fn set_config(a: &SetConfigArgs, client: &Client, ui: &mut Ui) -> u8 {
    let mut config = match current(client, ui).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = apply_flags(a, &mut config) {
        ui.error(e);
        return 1;
    }
    match client.set_scheduler_configuration(&config, a.check_index).await {
        Ok(r) if a.check_index.is_some() && !r.updated => {
            ui.error("Scheduler configuration could not be atomically updated, please try again");
            1
        }
        Ok(_) => {
            ui.output("Scheduler configuration updated!");
            0
        }
        Err(e) => {
            ui.error(format!("Error setting scheduler configuration: {e}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_config_text() {
        let c = SchedulerConfiguration {
            modify_index: 5,
            ..Default::default()
        };
        assert_eq!(
            config_text(&c),
            "Scheduler Algorithm           = binpack\n\
             Memory Oversubscription       = false\n\
             Reject Job Registration       = false\n\
             Pause Eval Broker             = false\n\
             \n\
             Preemption System Scheduler   = true\n\
             Preemption Service Scheduler  = false\n\
             Preemption Batch Scheduler    = false\n\
             Preemption SysBatch Scheduler = false\n\
             Modify Index                  = 5"
        );
    }

    #[test]
    fn flags_change_only_what_they_name() {
        let mut c = SchedulerConfiguration::default();
        let a = SetConfigArgs {
            scheduler_algorithm: Some("spread".into()),
            preempt_service_scheduler: Some(true),
            preempt_system_scheduler: Some(false),
            ..Default::default()
        };
        apply_flags(&a, &mut c).unwrap();
        assert_eq!(c.scheduler_algorithm, "spread");
        assert!(c.preemption_config.service_scheduler_enabled);
        assert!(!c.preemption_config.system_scheduler_enabled);
        assert!(!c.memory_oversubscription_enabled);
        let bad = SetConfigArgs {
            scheduler_algorithm: Some("random".into()),
            ..Default::default()
        };
        assert!(apply_flags(&bad, &mut c).unwrap_err().contains("binpack"));
        assert_eq!(parse_go_bool("True"), Ok(true));
        assert!(parse_go_bool("yes").is_err());
    }
}
