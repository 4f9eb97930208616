//! `/v1/workspaces`: create, list, read, rename.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use collab_domain::workspace::{Workspace, WorkspaceCommand};
use collab_domain::{DocumentRole, Title, WorkspaceId, WorkspaceRole};
use collab_projections::workspaces::{self as read_model, WorkspaceView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{command_response, path_id};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_workspaces, create_workspace))
        .routes(routes!(get_workspace, rename_workspace))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkspaceBody {
    #[schema(min_length = 1, max_length = 200)]
    pub(crate) name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WorkspacePatch {
    /// 1–200 characters.
    name: Option<String>,
    /// `viewer`, `commenter`, `editor`, `owner`, or `none`.
    default_document_role: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct WorkspaceCreated {
    pub(crate) id: WorkspaceId,
    pub(crate) name: String,
    pub(crate) role: WorkspaceRole,
    pub(crate) version: i64,
}

#[derive(Serialize, ToSchema)]
struct WorkspaceChanged {
    id: WorkspaceId,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The new default document role (null: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DocumentRole>)]
    default_document_role: Option<Option<DocumentRole>>,
    version: i64,
}

#[derive(Serialize, ToSchema)]
struct WorkspaceList {
    workspaces: Vec<WorkspaceView>,
}

/// Create a workspace; the caller becomes its owner.
#[utoipa::path(
    post,
    path = "/v1/workspaces",
    tag = "workspaces",
    request_body = WorkspaceBody,
    responses(
        (status = 201, description = "Created", body = crate::openapi::Committed<WorkspaceCreated>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn create_workspace(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiJson(body): ApiJson<WorkspaceBody>,
) -> Result<Response, ApiError> {
    let (position, created) = create(&state, &principal, &meta, body).await?;
    Ok(command_response(StatusCode::CREATED, position, created))
}

/// Creates a workspace owned by the caller: (position, the workspace).
pub(crate) async fn create(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    body: WorkspaceBody,
) -> Result<(i64, WorkspaceCreated), ApiError> {
    if principal.service.is_some() {
        return Err(ApiError::Forbidden(
            "service accounts cannot create workspaces".into(),
        ));
    }
    let name = Title::parse("name", &body.name)?;
    let id = WorkspaceId::new();
    let command = WorkspaceCommand::CreateWorkspace {
        id,
        name: name.clone(),
        owner: principal.id.clone(),
    };
    let committed = state
        .aggregates
        .execute::<Workspace>(id.as_uuid(), command, &principal.command_meta(meta), None)
        .await?;
    Ok((
        committed.position,
        WorkspaceCreated {
            id,
            name: name.into(),
            role: WorkspaceRole::Owner,
            version: committed.version,
        },
    ))
}

/// The workspaces the caller belongs to, oldest first, with their role in each.
#[utoipa::path(
    get,
    path = "/v1/workspaces",
    tag = "workspaces",
    responses((status = 200, description = "The caller's workspaces", body = WorkspaceList), crate::openapi::Refusals)
)]
async fn list_workspaces(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
) -> Result<Json<WorkspaceList>, ApiError> {
    Ok(Json(WorkspaceList {
        workspaces: list(&state, &principal, &meta).await?,
    }))
}

/// The workspaces the caller belongs to, with their role (REST and GraphQL).
pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
) -> Result<Vec<WorkspaceView>, ApiError> {
    state.reach(meta.min_position).await?;
    Ok(read_model::list_for_user(&mut *state.reader(principal).await?, &principal.id).await?)
}

/// A workspace the caller belongs to.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = "The workspace")),
    responses((status = 200, description = "The workspace and the caller's role", body = WorkspaceView), crate::openapi::Refusals)
)]
async fn get_workspace(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
) -> Result<Json<WorkspaceView>, ApiError> {
    get(&state, &principal, &meta, &workspace_id)
        .await
        .map(Json)
}

/// A workspace the caller belongs to (REST and GraphQL).
pub(crate) async fn get(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    workspace_id: &str,
) -> Result<WorkspaceView, ApiError> {
    let workspace_id = path_id("workspace_id", workspace_id, WorkspaceId::parse)?;
    state.reach(meta.min_position).await?;
    let mut reader = state.reader(principal).await?;
    read_model::get_for_user(&mut *reader, workspace_id, &principal.id)
        .await?
        .ok_or(ApiError::NotFound("workspace"))
}

/// Rename a workspace and/or change the role members get on documents not shared with
/// them (owners and admins).
#[utoipa::path(
    patch,
    path = "/v1/workspaces/{workspace_id}",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = "The workspace")),
    request_body = WorkspacePatch,
    responses(
        (status = 200, description = "Changed", body = crate::openapi::Committed<WorkspaceChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn rename_workspace(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
    ApiJson(body): ApiJson<WorkspacePatch>,
) -> Result<Response, ApiError> {
    let id = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let name = body
        .name
        .as_deref()
        .map(|n| Title::parse("name", n))
        .transpose()?;
    let default_role = body
        .default_document_role
        .as_deref()
        .map(|raw| match raw {
            "none" => Ok(None),
            other => DocumentRole::parse(other).map(Some),
        })
        .transpose()?;
    if name.is_none() && default_role.is_none() {
        return Err(ApiError::InvalidBody(
            "give at least one of `name` and `default_document_role`".into(),
        ));
    }
    let meta_for_commands = principal.command_meta(&meta);
    let mut expected = meta.if_match;
    let mut committed = None;
    if let Some(name) = name.clone() {
        let command = WorkspaceCommand::RenameWorkspace {
            by: principal.id.clone(),
            name,
        };
        let done = state
            .aggregates
            .execute::<Workspace>(id.as_uuid(), command, &meta_for_commands, expected)
            .await?;
        expected = expected.map(|_| done.version);
        committed = Some(done);
    }
    if let Some(role) = default_role {
        let command = WorkspaceCommand::SetDefaultDocumentRole {
            by: principal.id.clone(),
            role,
        };
        committed = Some(
            state
                .aggregates
                .execute::<Workspace>(id.as_uuid(), command, &meta_for_commands, expected)
                .await?,
        );
    }
    let committed = committed.expect("at least one change was requested");
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        WorkspaceChanged {
            id,
            name: name.map(String::from),
            default_document_role: default_role,
            version: committed.version,
        },
    ))
}
