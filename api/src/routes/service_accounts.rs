//! `/v1/workspaces/{ws}/service-accounts`: API keys for integrations, analytics consumers
//! and auditors. Created and revoked by workspace owners and admins; the key is shown once
//! and only its hash is kept (in the `ServiceAccountCreated` event).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use collab_domain::workspace::{Workspace, WorkspaceCommand};
use collab_domain::{Scope, Title, WorkspaceId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{command_response, path_id, run};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;
use collab_commands::access::ApiKey;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_service_accounts, create_service_account))
        .routes(routes!(revoke_service_account))
}

const WS: &str = "The workspace";

#[derive(Serialize, ToSchema)]
struct ServiceAccountList {
    service_accounts: Vec<ServiceAccountView>,
}

#[derive(Serialize, ToSchema)]
struct ServiceAccountCreated {
    id: Uuid,
    name: String,
    scopes: Vec<Scope>,
    /// Shown once. Use it as `Authorization: Bearer <key>` (or `?token=` on sockets).
    key: String,
}

#[derive(Serialize, ToSchema)]
struct ServiceAccountRevoked {
    id: Uuid,
}

#[derive(Serialize, ToSchema)]
struct ServiceAccountView {
    id: Uuid,
    name: String,
    scopes: Vec<Scope>,
}

/// The workspace's service accounts (owners and admins).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/service-accounts",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    responses(
        (status = 200, description = "The service accounts", body = ServiceAccountList),
        crate::openapi::Refusals,
        crate::openapi::Forbidden
    )
)]
async fn list_service_accounts(
    State(state): State<AppState>,
    principal: Principal,
    Path(workspace_id): Path<String>,
) -> Result<Json<ServiceAccountList>, ApiError> {
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
    Ok(Json(ServiceAccountList {
        service_accounts: accounts,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    /// At least one.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    scopes: Vec<String>,
}

/// Create a service account (owners and admins); its API key is shown only in this answer.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/service-accounts",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created", body = crate::openapi::Committed<ServiceAccountCreated>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
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
    let mut scopes = scopes;
    scopes.sort();
    scopes.dedup();
    Ok(command_response(
        StatusCode::CREATED,
        committed.position,
        ServiceAccountCreated {
            id: key.account,
            name: name.into(),
            scopes,
            key: token,
        },
    ))
}

/// Revoke a service account (owners and admins): its key stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace_id}/service-accounts/{account_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("account_id" = uuid::Uuid, Path, description = "The service account")),
    responses(
        (status = 200, description = "Revoked", body = crate::openapi::Committed<ServiceAccountRevoked>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
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
        ServiceAccountRevoked { id: account_id },
    ))
}
