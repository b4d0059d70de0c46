//! Operator: `/v1/operator/scheduler/configuration` (GET, and PUT/POST with optional
//! check-and-set `?cas=<ModifyIndex>`) and `PUT /v1/system/gc`.

use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use drover_state::Table;
use drover_types::SchedulerConfiguration;
use serde::Serialize;

use super::{decode_body, only_write};
use crate::blocking;
use crate::error::ApiError;
use crate::request::Req;
use crate::{AppState, respond};

/// `SchedulerConfigurationResponse`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigResponse {
    scheduler_config: SchedulerConfiguration,
    index: u64,
    last_contact: u64,
    known_leader: bool,
    next_token: String,
}

/// `GET|PUT|POST /v1/operator/scheduler/configuration`.
pub(crate) async fn scheduler_configuration(
    State(st): State<AppState>,
    req: Req,
) -> Result<Response, ApiError> {
    if req.method == Method::GET {
        let q = req.query_options()?;
        let (config, index) = blocking::run(&st, &req, &q, &[Table::SchedulerConfig], |s| {
            Ok((s.scheduler_config(), s.table_index(Table::SchedulerConfig)))
        })
        .await?;
        let body = ConfigResponse {
            scheduler_config: config,
            index: index.max(1),
            last_contact: 0,
            known_leader: respond::known_leader(&st),
            next_token: String::new(),
        };
        return respond::query(&st, &req, &body, index, None);
    }
    only_write(&req)?;
    let cas = match req.get("cas") {
        None | Some("") => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|e| ApiError::BadRequest(format!("Error parsing cas value: {e}")))?,
        ),
    };
    let config: SchedulerConfiguration = decode_body(&req)?;
    let resp = st.server.set_scheduler_config(config, cas).await?;
    let index = resp.index;
    respond::write(&req, &resp, index)
}

/// `PUT|POST /v1/system/gc`: run every garbage collector now; empty 200.
pub(crate) async fn gc(State(st): State<AppState>, req: Req) -> Result<Response, ApiError> {
    only_write(&req)?;
    st.server.force_gc().await?;
    Ok(respond::empty_write(0))
}
