//! `/v1/workspaces/{ws}/service-accounts`: API keys for integrations, analytics consumers
//! and auditors. Created and revoked by workspace owners and admins; the key is shown once
//! and only its hash is kept (in the `ServiceAccountCreated` event).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::{Json, Router};
use collab_domain::workspace::{Workspace, WorkspaceCommand};
use collab_domain::{Scope, Title, WorkspaceId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{command_response, path_id, run};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;
use collab_commands::access::ApiKey;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/workspaces/{workspace_id}/service-accounts",
            get(list_service_accounts).post(create_service_account),
        )
        .route(
            "/v1/workspaces/{workspace_id}/service-accounts/{account_id}",
            delete(revoke_service_account),
        )
}

#[derive(Serialize)]
struct ServiceAccountView {
    id: Uuid,
    name: String,
    scopes: Vec<Scope>,
}

async fn list_service_accounts(
    State(state): State<AppState>,
    principal: Principal,
    Path(workspace_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let workspace_id = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let workspace = state
        .aggregates
        .load::<Workspace>(workspace_id.as_uuid())
        .await?
        .aggregate;
    match workspace.role_of(&principal.id) {
        Some(role) if role.manages_workspace() => {}
        Some(_) => {
            return Err(ApiError::Forbidden(
                "only owners and admins manage service accounts".into(),
            ))
        }
        None => return Err(ApiError::NotFound("workspace")),
    }
    let accounts: Vec<ServiceAccountView> = workspace
        .service_accounts()
        .iter()
        .map(|(id, account)| ServiceAccountView {
            id: *id,
            name: account.name.clone(),
            scopes: account.scopes.clone(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "service_accounts": accounts })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    scopes: Vec<String>,
}

async fn create_service_account(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let workspace_id = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let name = Title::parse("name", &body.name)?;
    let scopes = body
        .scopes
        .iter()
        .map(|s| Scope::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err(ApiError::InvalidField(collab_domain::InvalidValue::new(
            "scopes",
            "must name at least one scope",
        )));
    }
    let (key, token) = ApiKey::generate(workspace_id);
    let command = WorkspaceCommand::CreateServiceAccount {
        by: principal.id.clone(),
        account_id: key.account,
        name: name.clone(),
        scopes: scopes.clone(),
        key_hash: key.secret_hash,
    };
    let committed = run::<Workspace>(
        &state,
        &principal,
        &meta,
        workspace_id.as_uuid(),
        command,
        None,
    )
    .await?;
    #[derive(Serialize)]
    struct Created {
        id: Uuid,
        name: String,
        scopes: Vec<Scope>,
        /// Shown once. Use it as `Authorization: Bearer <key>` (or `?token=` on sockets).
        key: String,
    }
    let mut scopes = scopes;
    scopes.sort();
    scopes.dedup();
    Ok(command_response(
        StatusCode::CREATED,
        committed.position,
        Created {
            id: key.account,
            name: name.into(),
            scopes,
            key: token,
        },
    ))
}

async fn revoke_service_account(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace_id, account_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let workspace_id = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let account_id = Uuid::parse_str(&account_id).map_err(|_| ApiError::InvalidParameter {
        name: "account_id",
        reason: "must be a UUID".into(),
    })?;
    let command = WorkspaceCommand::RevokeServiceAccount {
        by: principal.id.clone(),
        account_id,
    };
    let committed = run::<Workspace>(
        &state,
        &principal,
        &meta,
        workspace_id.as_uuid(),
        command,
        None,
    )
    .await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        serde_json::json!({ "id": account_id }),
    ))
}
