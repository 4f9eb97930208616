//! Documents: `/v1/workspaces/{ws}/documents` (list, create) and `/v1/documents/{id}`
//! (read, rename/move, delete, archive, restore).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use collab_domain::document::{Acting, ActingMember, Document, DocumentCommand};
use collab_domain::workspace::Workspace;
use collab_domain::{
    DocumentId, DocumentRole, FolderPath, Title, UserId, WorkspaceId, WorkspaceRole,
};
use collab_projections::documents::{self as read_model, ArchivedFilter, DocumentView};
use collab_projections::workspaces::role_of;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{command_response, decode_cursor, encode_cursor, page_limit, path_id};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_documents, create_document))
        .routes(routes!(get_document, update_document, delete_document))
        .routes(routes!(archive_document))
        .routes(routes!(restore_document))
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// 1–200, 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub(crate) limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// `exclude` (default), `include` or `only`.
    #[param(pattern = "^(exclude|include|only)$")]
    pub(crate) archived: Option<String>,
}

const WS: &str = "The workspace";
const DOC: &str = "The document";

#[derive(Serialize, ToSchema)]
pub(crate) struct DocumentPage {
    pub(crate) documents: Vec<DocumentView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// The workspace's documents the caller can read, newest first.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/documents",
    tag = "documents",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ListParams),
    responses((status = 200, description = "A page of documents", body = DocumentPage), crate::openapi::Refusals)
)]
async fn list_documents(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<DocumentPage>, ApiError> {
    Ok(Json(
        list(&state, &principal, &meta, &workspace_id, params).await?,
    ))
}

/// A page of the workspace's documents the caller can read (REST and GraphQL).
pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    workspace_id: &str,
    params: ListParams,
) -> Result<DocumentPage, ApiError> {
    let workspace_id = path_id("workspace_id", workspace_id, WorkspaceId::parse)?;
    let limit = page_limit(params.limit.as_deref())?;
    let archived = match params.archived.as_deref() {
        None | Some("exclude") => ArchivedFilter::Exclude,
        Some("include") => ArchivedFilter::Include,
        Some("only") => ArchivedFilter::Only,
        Some(_) => {
            return Err(ApiError::InvalidParameter {
                name: "archived",
                reason: "must be exclude, include or only".into(),
            })
        }
    };
    let before = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor('p', c))
        .transpose()?;
    state.reach(meta.min_position).await?;
    let mut reader = state.reader(principal).await?;
    // A service account with a documents scope sees all of its workspace's documents.
    let sees_all = principal
        .service
        .as_ref()
        .is_some_and(|s| s.document_role(workspace_id).is_some());
    if !sees_all
        && role_of(&mut *reader, workspace_id, &principal.id)
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound("workspace"));
    }
    let mut documents = read_model::list(
        &mut *reader,
        workspace_id,
        &principal.id,
        sees_all,
        archived,
        before,
        limit + 1,
    )
    .await?;
    let next_cursor = if documents.len() as i64 > limit {
        documents.truncate(limit as usize);
        documents
            .last()
            .map(|d| encode_cursor('p', d.created_position))
    } else {
        None
    };
    Ok(DocumentPage {
        documents,
        next_cursor,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateDocumentBody {
    #[schema(min_length = 1, max_length = 200)]
    pub(crate) title: String,
    /// `/` (default) or `/a/b`: segments of 1–100 characters, at most 16 deep.
    pub(crate) folder: Option<String>,
    /// A template (a document marked as one, that the caller can read, in this workspace):
    /// the new document starts as a copy of its content.
    #[serde(default)]
    pub(crate) template_id: Option<DocumentId>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DocumentCreated {
    pub(crate) id: DocumentId,
    pub(crate) workspace_id: WorkspaceId,
    pub(crate) title: String,
    pub(crate) folder: String,
    pub(crate) archived: bool,
    pub(crate) created_by: UserId,
    pub(crate) version: i64,
}

/// Create a document (members; guests cannot).
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/documents",
    tag = "documents",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    request_body = CreateDocumentBody,
    responses(
        (status = 201, description = "Created", body = crate::openapi::Committed<DocumentCreated>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn create_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
    ApiJson(body): ApiJson<CreateDocumentBody>,
) -> Result<Response, ApiError> {
    let (position, created) = create(&state, &principal, &meta, &workspace_id, body).await?;
    Ok(command_response(StatusCode::CREATED, position, created))
}

/// Creates a document for the caller: (position, the document).
pub(crate) async fn create(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    workspace_id: &str,
    body: CreateDocumentBody,
) -> Result<(i64, DocumentCreated), ApiError> {
    let workspace_id = path_id("workspace_id", workspace_id, WorkspaceId::parse)?;
    let title = Title::parse("title", &body.title)?;
    let folder = match body.folder.as_deref() {
        Some(raw) => FolderPath::parse(raw)?,
        None => FolderPath::root(),
    };
    let role = match &principal.service {
        // Service accounts create documents with documents:write, like a member.
        Some(service) if service.document_role(workspace_id).is_some() => {
            if service.has(collab_domain::Scope::DocumentsWrite) {
                WorkspaceRole::Member
            } else {
                WorkspaceRole::Guest
            }
        }
        _ => state
            .aggregates
            .load::<Workspace>(workspace_id.as_uuid())
            .await?
            .aggregate
            .role_of(&principal.id)
            .ok_or(ApiError::NotFound("workspace"))?,
    };
    if !role.edits_documents() {
        return Err(ApiError::Forbidden(
            "guests and auditors cannot create documents".into(),
        ));
    }
    // The template is checked before anything is created.
    let template = match body.template_id {
        Some(template) => Some(
            crate::routes::assets::template_state(state, principal, meta, workspace_id, template)
                .await?,
        ),
        None => None,
    };
    let id = DocumentId::new();
    let command = DocumentCommand::CreateDocument {
        by: ActingMember {
            user: principal.id.clone(),
            role,
        },
        id,
        workspace_id,
        title: title.clone(),
        folder: folder.clone(),
    };
    let committed = state
        .aggregates
        .execute::<Document>(id.as_uuid(), command, &principal.command_meta(meta), None)
        .await?;
    let position = match template {
        Some(template) => {
            crate::routes::assets::copy_template(state, principal, meta, id, template)
                .await?
                .max(committed.position)
        }
        None => committed.position,
    };
    Ok((
        position,
        DocumentCreated {
            id,
            workspace_id,
            title: title.into(),
            folder: folder.into(),
            archived: false,
            created_by: principal.id.clone(),
            version: committed.version,
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DocumentWithRole {
    #[serde(flatten)]
    pub(crate) document: DocumentView,
    /// The caller's role on this document.
    pub(crate) role: DocumentRole,
}

/// A document and the caller's role on it.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    responses((status = 200, description = "The document", body = DocumentWithRole), crate::openapi::Refusals)
)]
async fn get_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document_id): Path<String>,
) -> Result<Json<DocumentWithRole>, ApiError> {
    Ok(Json(get(&state, &principal, &meta, &document_id).await?))
}

/// A document and the caller's role on it (REST and GraphQL).
pub(crate) async fn get(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document_id: &str,
) -> Result<DocumentWithRole, ApiError> {
    let document_id = path_id("document_id", document_id, DocumentId::parse)?;
    state.reach(meta.min_position).await?;
    // The caller's role from the aggregates, like every other document route: a share
    // link or a service account's key counts as much as a membership.
    let access = state
        .document_access(document_id, principal, meta.link.as_ref())
        .await?;
    let mut reader = state.reader_for_document(principal, document_id).await?;
    let document = read_model::get(&mut *reader, document_id)
        .await?
        .ok_or(ApiError::NotFound("document"))?;
    Ok(DocumentWithRole {
        document,
        role: access.role,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateDocumentBody {
    /// Rename: 1–200 characters.
    pub(crate) title: Option<String>,
    /// Move: `/` or `/a/b`.
    pub(crate) folder: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct DocumentChanged {
    pub(crate) id: DocumentId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) folder: Option<String>,
    pub(crate) version: i64,
}

/// Rename and/or move a document (editors); both or neither.
#[utoipa::path(
    patch,
    path = "/v1/documents/{document_id}",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    request_body = UpdateDocumentBody,
    responses(
        (status = 200, description = "Changed", body = crate::openapi::Committed<DocumentChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn update_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document_id): Path<String>,
    ApiJson(body): ApiJson<UpdateDocumentBody>,
) -> Result<Response, ApiError> {
    let (position, changed) = update(&state, &principal, &meta, &document_id, body).await?;
    Ok(command_response(StatusCode::OK, position, changed))
}

/// Renames and/or moves a document: (position, what changed).
pub(crate) async fn update(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document_id: &str,
    body: UpdateDocumentBody,
) -> Result<(i64, DocumentChanged), ApiError> {
    let document_id = path_id("document_id", document_id, DocumentId::parse)?;
    let title = body
        .title
        .as_deref()
        .map(|t| Title::parse("title", t))
        .transpose()?;
    let folder = body.folder.as_deref().map(FolderPath::parse).transpose()?;
    if title.is_none() && folder.is_none() {
        return Err(ApiError::InvalidBody(
            "give at least one of `title` and `folder`".into(),
        ));
    }
    // One command path: the document and its workspace are loaded once, both changes
    // decided on that state and appended together (or neither).
    let committed = state
        .run_on_document(principal, meta, document_id, meta.if_match, |by| {
            let mut commands = vec![];
            if let Some(title) = title.clone() {
                commands.push(DocumentCommand::RenameDocument {
                    by: by.clone(),
                    title,
                });
            }
            if let Some(folder) = folder.clone() {
                commands.push(DocumentCommand::MoveDocument { by, folder });
            }
            commands
        })
        .await?;
    Ok((
        committed.position,
        DocumentChanged {
            id: document_id,
            title: title.map(String::from),
            folder: folder.map(String::from),
            version: committed.version,
        },
    ))
}

/// Deletes, archives or restores a document: (position, its new version).
pub(crate) async fn lifecycle(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document_id: &str,
    command: fn(Acting) -> DocumentCommand,
) -> Result<(i64, DocumentChanged), ApiError> {
    let document_id = path_id("document_id", document_id, DocumentId::parse)?;
    let committed = state
        .run_on_document(principal, meta, document_id, meta.if_match, |by| {
            vec![command(by)]
        })
        .await?;
    Ok((
        committed.position,
        DocumentChanged {
            id: document_id,
            title: None,
            folder: None,
            version: committed.version,
        },
    ))
}

/// The command of a lifecycle route.
pub(crate) fn delete_command(by: Acting) -> DocumentCommand {
    DocumentCommand::DeleteDocument { by }
}

pub(crate) fn archive_command(by: Acting) -> DocumentCommand {
    DocumentCommand::ArchiveDocument { by }
}

pub(crate) fn restore_command(by: Acting) -> DocumentCommand {
    DocumentCommand::RestoreDocument { by }
}

async fn lifecycle_response(
    state: AppState,
    principal: Principal,
    meta: RequestMeta,
    document_id: String,
    command: fn(Acting) -> DocumentCommand,
) -> Result<Response, ApiError> {
    let (position, changed) = lifecycle(&state, &principal, &meta, &document_id, command).await?;
    Ok(command_response(StatusCode::OK, position, changed))
}

/// Delete a document (owners); its live sessions close.
#[utoipa::path(
    delete,
    path = "/v1/documents/{document_id}",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    responses(
        (status = 200, description = "Done", body = crate::openapi::Committed<DocumentChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn delete_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document_id): Path<String>,
) -> Result<Response, ApiError> {
    // Its sockets close because the deletion is committed (collab_live::revalidate).
    lifecycle_response(state, principal, meta, document_id, delete_command).await
}

/// Archive a document (editors).
#[utoipa::path(
    post,
    path = "/v1/documents/{document_id}/archive",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    responses(
        (status = 200, description = "Done", body = crate::openapi::Committed<DocumentChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn archive_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document_id): Path<String>,
) -> Result<Response, ApiError> {
    lifecycle_response(state, principal, meta, document_id, archive_command).await
}

/// Restore an archived document (editors).
#[utoipa::path(
    post,
    path = "/v1/documents/{document_id}/restore",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    responses(
        (status = 200, description = "Done", body = crate::openapi::Committed<DocumentChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn restore_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document_id): Path<String>,
) -> Result<Response, ApiError> {
    lifecycle_response(state, principal, meta, document_id, restore_command).await
}
