//! `/v1/workspaces/{ws}/members`: list, add, change role, remove.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use collab_domain::workspace::{Workspace, WorkspaceCommand};
use collab_domain::{UserId, WorkspaceId, WorkspaceRole};
use collab_projections::workspaces as read_model;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{command_response, path_id, run};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(change_member_role, remove_member))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    #[schema(value_type = UserId)]
    user_id: String,
    #[schema(value_type = WorkspaceRole)]
    role: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeRoleBody {
    #[schema(value_type = WorkspaceRole)]
    role: String,
}

#[derive(Serialize, ToSchema)]
struct MemberList {
    members: Vec<read_model::MemberView>,
}

#[derive(Serialize, ToSchema)]
struct MemberChanged {
    workspace_id: WorkspaceId,
    user_id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<WorkspaceRole>,
    version: i64,
}

const WS: &str = "The workspace";
const USER: &str = "The member's user id";

/// The workspace's members (any member may list them).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/members",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    responses((status = 200, description = "The members", body = MemberList), crate::openapi::Refusals)
)]
async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
) -> Result<Json<MemberList>, ApiError> {
    Ok(Json(MemberList {
        members: list(&state, &principal, &meta, &workspace_id).await?,
    }))
}

/// The workspace's members, for any member (REST and GraphQL).
pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    workspace_id: &str,
) -> Result<Vec<read_model::MemberView>, ApiError> {
    let workspace_id = path_id("workspace_id", workspace_id, WorkspaceId::parse)?;
    state.reach(meta.min_position).await?;
    let mut reader = state.reader(principal).await?;
    if read_model::role_of(&mut *reader, workspace_id, &principal.id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("workspace"));
    }
    Ok(read_model::members(&mut *reader, workspace_id).await?)
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

/// Add a member (owners and admins).
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/members",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    request_body = AddMemberBody,
    responses(
        (status = 201, description = "Added", body = crate::openapi::Committed<MemberChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
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

/// Change a member's role (owners and admins; only owners make or unmake owners).
#[utoipa::path(
    patch,
    path = "/v1/workspaces/{workspace_id}/members/{user_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("user_id" = String, Path, description = USER)),
    request_body = ChangeRoleBody,
    responses(
        (status = 200, description = "Changed", body = crate::openapi::Committed<MemberChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
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

/// Remove a member (owners and admins); their live sessions close.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace_id}/members/{user_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("user_id" = String, Path, description = USER)),
    responses(
        (status = 200, description = "Removed", body = crate::openapi::Committed<MemberChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
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
