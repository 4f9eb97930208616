//! `/v1/workspaces/{ws}/members`: list, add, change role, remove.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, patch};
use axum::{Json, Router};
use collab_domain::workspace::{Workspace, WorkspaceCommand};
use collab_domain::{UserId, WorkspaceId, WorkspaceRole};
use collab_projections::workspaces as read_model;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{command_response, path_id, run};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/workspaces/{workspace_id}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/v1/workspaces/{workspace_id}/members/{user_id}",
            patch(change_member_role).delete(remove_member),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    user_id: String,
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeRoleBody {
    role: String,
}

#[derive(Serialize)]
struct MemberChanged {
    workspace_id: WorkspaceId,
    user_id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<WorkspaceRole>,
    version: i64,
}

async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workspace_id = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    state.reach(meta.min_position).await?;
    let mut reader = state.reader(&principal).await?;
    if read_model::role_of(&mut *reader, workspace_id, &principal.id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("workspace"));
    }
    let members = read_model::members(&mut *reader, workspace_id).await?;
    Ok(Json(json!({ "members": members })))
}

async fn execute(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    workspace_id: WorkspaceId,
    command: WorkspaceCommand,
) -> Result<collab_commands::Committed, ApiError> {
    run::<Workspace>(
        state,
        principal,
        meta,
        workspace_id.as_uuid(),
        command,
        meta.if_match,
    )
    .await
}

async fn add_member(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
    ApiJson(body): ApiJson<AddMemberBody>,
) -> Result<Response, ApiError> {
    let workspace_id = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let user = UserId::parse(body.user_id)?;
    let role = WorkspaceRole::parse(&body.role)?;
    let command = WorkspaceCommand::AddMember {
        by: principal.id.clone(),
        user: user.clone(),
        role,
    };
    let committed = execute(&state, &principal, &meta, workspace_id, command).await?;
    Ok(command_response(
        StatusCode::CREATED,
        committed.position,
        MemberChanged {
            workspace_id,
            user_id: user,
            role: Some(role),
            version: committed.version,
        },
    ))
}

async fn change_member_role(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace_id, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ChangeRoleBody>,
) -> Result<Response, ApiError> {
    let workspace_id = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let user = UserId::parse(user_id)?;
    let role = WorkspaceRole::parse(&body.role)?;
    let command = WorkspaceCommand::ChangeMemberRole {
        by: principal.id.clone(),
        user: user.clone(),
        role,
    };
    let committed = execute(&state, &principal, &meta, workspace_id, command).await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        MemberChanged {
            workspace_id,
            user_id: user,
            role: Some(role),
            version: committed.version,
        },
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace_id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let workspace_id = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let user = UserId::parse(user_id)?;
    let command = WorkspaceCommand::RemoveMember {
        by: principal.id.clone(),
        user: user.clone(),
    };
    let committed = execute(&state, &principal, &meta, workspace_id, command).await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        MemberChanged {
            workspace_id,
            user_id: user,
            role: None,
            version: committed.version,
        },
    ))
}
