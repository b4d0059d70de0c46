//! `drover deployment status DEPLOYMENT` and `drover deployment list` (§8.8).
//!
//! ```text
//!  deployment list     GET /v1/deployments ─▶ deployment_list_table ("No deployments found")
//!  deployment status   resolve prefix (GET /v1/deployments?prefix=) ─▶ GET /v1/deployment/:id
//!                      ─▶ monitor::deployment_block (ID … Description, the Deployed table)
//! ```

use clap::{Args, Subcommand};
use drover_api::{Client, QueryOptions};
use drover_types::Deployment;

use crate::common::{ApiArgs, Ui, run_with_client};
use crate::format::{short_id, table};
use crate::monitor::deployment_block;
use crate::row;

/// `deployment` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeploymentCommand {
    /// Show a deployment.
    Status(DeploymentStatusArgs),
    /// List deployments.
    List(DeploymentListArgs),
}

/// `deployment status` flags.
#[derive(Debug, Clone, Args)]
pub struct DeploymentStatusArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Full IDs.
    #[arg(long)]
    pub verbose: bool,
    /// The deployment ID (or a unique prefix).
    pub deployment: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `deployment list` flags.
#[derive(Debug, Clone, Args)]
pub struct DeploymentListArgs {
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Full IDs.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Runs a deployment subcommand with the process's terminal.
pub fn run(cmd: DeploymentCommand) -> u8 {
    match cmd {
        DeploymentCommand::Status(a) => {
            run_with_client(&a.api, async |c, ui| deployment_status(&a, c, ui).await)
        }
        DeploymentCommand::List(a) => run_with_client(&a.api, async |c, ui| deployment_list(&a, c, ui).await),
    }
}

/// The deployment list: `ID  Job ID  Job Version  Status  Description`, newest first.
pub fn deployment_list_table(deployments: &[Deployment], verbose: bool) -> String {
    let mut sorted: Vec<&Deployment> = deployments.iter().collect();
    sorted.sort_by(|a, b| b.create_index.cmp(&a.create_index).then(a.id.cmp(&b.id)));
    let mut rows = vec![row!["ID", "Job ID", "Job Version", "Status", "Description"]];
    for d in sorted {
        rows.push(row![
            short_id(&d.id, verbose),
            d.job_id,
            d.job_version,
            d.status,
            d.status_description
        ]);
    }
    table(&rows)
}

/// Finds the deployment an ID or prefix names (exit 1 on none or several).
pub async fn resolve_deployment(client: &Client, ui: &mut Ui, id: &str, verbose: bool) -> Result<String, u8> {
    let deployments = match client.deployments(&QueryOptions::new().with_prefix(id)).await {
        Ok((d, _)) => d,
        Err(e) => {
            ui.error(format!("Error retrieving deployment: {e}"));
            return Err(1);
        }
    };
    if let Some(exact) = deployments.iter().find(|d| d.id == id) {
        return Ok(exact.id.clone());
    }
    match deployments.len() {
        0 => {
            ui.error(format!("No deployment(s) with prefix or id \"{id}\" found"));
            Err(1)
        }
        1 => Ok(deployments[0].id.clone()),
        _ => {
            ui.error(format!(
                "Prefix matched multiple deployments\n\n{}",
                deployment_list_table(&deployments, verbose)
            ));
            Err(1)
        }
    }
}

/// `deployment status DEPLOYMENT`.
pub async fn deployment_status(a: &DeploymentStatusArgs, client: &Client, ui: &mut Ui) -> u8 {
    let id = match resolve_deployment(client, ui, &a.deployment, a.verbose).await {
        Ok(id) => id,
        Err(code) => return code,
    };
    match client.deployment(&id, &QueryOptions::new()).await {
        Ok((d, _)) if a.json => ui.json(&d),
        Ok((d, _)) => {
            ui.output(deployment_block(&d, a.verbose));
            0
        }
        Err(e) => {
            ui.error(format!("Error retrieving deployment: {e}"));
            1
        }
    }
}

/// `deployment list`.
pub async fn deployment_list(a: &DeploymentListArgs, client: &Client, ui: &mut Ui) -> u8 {
    match client.deployments(&QueryOptions::new()).await {
        Ok((d, _)) if a.json => ui.json(&d),
        Ok((d, _)) if d.is_empty() => {
            ui.output("No deployments found");
            0
        }
        Ok((d, _)) => {
            ui.output(deployment_list_table(&d, a.verbose));
            0
        }
        Err(e) => {
            ui.error(format!("Error retrieving deployments: {e}"));
            1
        }
    }
}
