//! The brand portal: asset collections, tags, the asset library with its filters,
//! templates (documents new ones start from), and the download center (zips of files built
//! by the `downloads` role).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use collab_domain::content::EditOrigin;
use collab_domain::document::{Document, DocumentCommand};
use collab_domain::file::{File, FileCommand, FileState, Tag};
use collab_domain::workspace::{Workspace, WorkspaceCommand};
use collab_domain::{DocumentId, InvalidValue, Title, WorkspaceId};
use collab_projections::files::{self as read_model, AssetFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use yrs::{ReadTxn, StateVector, Transact};

use super::files::{file_id, file_in, standing, FileView};
use super::{
    command_response, decode_cursor_text, encode_cursor_text, page_limit, path_id, run, uuid_param,
};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_collections, create_collection))
        .routes(routes!(rename_collection, delete_collection))
        .routes(routes!(add_to_collection, remove_from_collection))
        .routes(routes!(set_tags))
        .routes(routes!(list_assets))
        .routes(routes!(list_templates))
        .routes(routes!(set_template))
        .routes(routes!(request_download))
        .routes(routes!(get_download))
}

const WS: &str = "The workspace";
const COLLECTION: &str = "The collection";
const FILE: &str = "The file";
const DOC: &str = "The document";

/// The caller reads the workspace (404 otherwise); `write`: and organises it (403).
async fn member(
    state: &AppState,
    principal: &Principal,
    workspace: &str,
    write: bool,
) -> Result<WorkspaceId, ApiError> {
    let workspace = path_id("workspace_id", workspace, WorkspaceId::parse)?;
    member_of(state, principal, workspace, write, "workspace").await?;
    Ok(workspace)
}

/// [`member`] for a workspace already known, answering 404 as `what`; the workspace.
async fn member_of(
    state: &AppState,
    principal: &Principal,
    workspace: WorkspaceId,
    write: bool,
    what: &'static str,
) -> Result<Arc<Workspace>, ApiError> {
    let (loaded, reads, writes) = standing(state, principal, workspace).await?;
    if !reads {
        return Err(ApiError::NotFound(what));
    }
    if write && !writes {
        return Err(ApiError::Forbidden(
            "only owners, admins and members organise assets".into(),
        ));
    }
    Ok(loaded)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CollectionBody {
    /// 1–200 characters, unique in the workspace (ignoring case).
    name: String,
}

#[derive(Serialize, ToSchema)]
struct CollectionView {
    id: Uuid,
    name: String,
    /// Uploaded files in it.
    files: i64,
    created_by: String,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
struct CollectionList {
    collections: Vec<CollectionView>,
}

#[derive(Serialize, ToSchema)]
struct CollectionChanged {
    id: Uuid,
    name: Option<String>,
}

/// Create an asset collection (owners, admins, members).
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/collections",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    request_body = CollectionBody,
    responses(
        (status = 201, description = "Created", body = crate::openapi::Committed<CollectionChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn create_collection(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
    ApiJson(body): ApiJson<CollectionBody>,
) -> Result<Response, ApiError> {
    let workspace = member(&state, &principal, &workspace, true).await?;
    let name = Title::parse("name", &body.name)?;
    let id = Uuid::now_v7();
    let command = WorkspaceCommand::CreateCollection {
        by: principal.id.clone(),
        collection_id: id,
        name: name.clone(),
    };
    let committed = run::<Workspace>(
        &state,
        &principal,
        &meta,
        workspace.as_uuid(),
        command,
        None,
    )
    .await?;
    Ok(command_response(
        StatusCode::CREATED,
        committed.position,
        CollectionChanged {
            id,
            name: Some(name.into()),
        },
    ))
}

/// The workspace's asset collections, by name, with how many files each holds.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/collections",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    responses((status = 200, description = "The collections", body = CollectionList), crate::openapi::Refusals)
)]
async fn list_collections(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
) -> Result<Json<CollectionList>, ApiError> {
    let workspace = member(&state, &principal, &workspace, false).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_workspace(workspace).await?;
    let rows = read_model::collections(&mut reader, workspace.as_uuid()).await?;
    Ok(Json(CollectionList {
        collections: rows
            .into_iter()
            .map(|r| CollectionView {
                id: r.collection_id,
                name: r.name,
                files: r.files,
                created_by: r.created_by,
                created_at: r.created_at,
            })
            .collect(),
    }))
}

/// Rename a collection.
#[utoipa::path(
    patch,
    path = "/v1/workspaces/{workspace_id}/collections/{collection_id}",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("collection_id" = uuid::Uuid, Path, description = COLLECTION)),
    request_body = CollectionBody,
    responses(
        (status = 200, description = "Renamed", body = crate::openapi::Committed<CollectionChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn rename_collection(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace, collection)): Path<(String, String)>,
    ApiJson(body): ApiJson<CollectionBody>,
) -> Result<Response, ApiError> {
    let workspace = member(&state, &principal, &workspace, true).await?;
    let id = uuid_param("collection_id", &collection)?;
    let name = Title::parse("name", &body.name)?;
    let command = WorkspaceCommand::RenameCollection {
        by: principal.id.clone(),
        collection_id: id,
        name: name.clone(),
    };
    let committed = run::<Workspace>(
        &state,
        &principal,
        &meta,
        workspace.as_uuid(),
        command,
        None,
    )
    .await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        CollectionChanged {
            id,
            name: Some(name.into()),
        },
    ))
}

/// Delete a collection: its files stay in the workspace.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace_id}/collections/{collection_id}",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("collection_id" = uuid::Uuid, Path, description = COLLECTION)),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Committed<CollectionChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn delete_collection(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace, collection)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let workspace = member(&state, &principal, &workspace, true).await?;
    let id = uuid_param("collection_id", &collection)?;
    let command = WorkspaceCommand::DeleteCollection {
        by: principal.id.clone(),
        collection_id: id,
    };
    let committed = run::<Workspace>(
        &state,
        &principal,
        &meta,
        workspace.as_uuid(),
        command,
        None,
    )
    .await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        CollectionChanged { id, name: None },
    ))
}

/// A file of `workspace` the caller may organise, and a collection of it that exists.
async fn file_and_collection(
    state: &AppState,
    principal: &Principal,
    workspace: &str,
    collection: &str,
    file: &str,
) -> Result<(Uuid, Uuid), ApiError> {
    let workspace = path_id("workspace_id", workspace, WorkspaceId::parse)?;
    let loaded = member_of(state, principal, workspace, true, "workspace").await?;
    let collection = uuid_param("collection_id", collection)?;
    let file = file_id(file)?;
    if !loaded.has_collection(&collection) {
        return Err(ApiError::NotFound("collection"));
    }
    file_in(state, workspace, file).await?;
    Ok((collection, file))
}

#[derive(Serialize, ToSchema)]
struct Membership {
    collection_id: Uuid,
    file_id: Uuid,
}

/// Put a file in a collection (an uploaded file of the same workspace).
#[utoipa::path(
    put,
    path = "/v1/workspaces/{workspace_id}/collections/{collection_id}/files/{file_id}",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("collection_id" = uuid::Uuid, Path, description = COLLECTION), ("file_id" = uuid::Uuid, Path, description = FILE)),
    responses(
        (status = 200, description = "In the collection", body = crate::openapi::Committed<Membership>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn add_to_collection(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(path): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    membership(&state, &principal, &meta, path, true).await
}

/// Puts a file in a collection (`add`) or takes it out.
async fn membership(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    (workspace, collection, file): (String, String, String),
    add: bool,
) -> Result<Response, ApiError> {
    let (collection_id, file_id) =
        file_and_collection(state, principal, &workspace, &collection, &file).await?;
    let by = principal.id.clone();
    let command = if add {
        FileCommand::AddToCollection { by, collection_id }
    } else {
        FileCommand::RemoveFromCollection { by, collection_id }
    };
    let committed = run::<File>(state, principal, meta, file_id, command, None).await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        Membership {
            collection_id,
            file_id,
        },
    ))
}

/// Take a file out of a collection (the file stays).
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace_id}/collections/{collection_id}/files/{file_id}",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("collection_id" = uuid::Uuid, Path, description = COLLECTION), ("file_id" = uuid::Uuid, Path, description = FILE)),
    responses(
        (status = 200, description = "Out of the collection", body = crate::openapi::Committed<Membership>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn remove_from_collection(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(path): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    membership(&state, &principal, &meta, path, false).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TagsBody {
    /// Every tag the file has from now on (0–50; each 1–50 characters, kept lower-case).
    tags: Vec<String>,
}

#[derive(Serialize, ToSchema)]
struct Tagged {
    id: Uuid,
    tags: Vec<String>,
}

/// Set a file's tags (owners, admins and members of its workspace).
#[utoipa::path(
    put,
    path = "/v1/files/{file_id}/tags",
    tag = "assets",
    params(("file_id" = uuid::Uuid, Path, description = FILE)),
    request_body = TagsBody,
    responses(
        (status = 200, description = "Tagged", body = crate::openapi::Committed<Tagged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn set_tags(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(file): Path<String>,
    ApiJson(body): ApiJson<TagsBody>,
) -> Result<Response, ApiError> {
    let id = file_id(&file)?;
    let file = state.aggregates.load::<File>(id).await?.aggregate;
    let workspace = collab_domain::EventSourced::workspace_id(&file)
        .filter(|_| file.state() != FileState::Deleted)
        .ok_or(ApiError::NotFound("file"))?;
    member_of(&state, &principal, workspace, true, "file").await?;
    // Not under /v1/workspaces/…: the workspace's rate limit is charged here.
    state.limits.check_workspace(workspace)?;
    if body.tags.len() > File::MAX_TAGS {
        return Err(ApiError::InvalidField(InvalidValue::new(
            "tags",
            "at most 50 tags",
        )));
    }
    let tags = body
        .tags
        .iter()
        .map(|t| Tag::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names: Vec<String> = tags.iter().map(|t| t.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    let command = FileCommand::SetTags {
        by: principal.id.clone(),
        tags,
    };
    let committed = run::<File>(&state, &principal, &meta, id, command, None).await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        Tagged { id, tags: names },
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AssetQuery {
    /// Only files in this collection.
    collection: Option<String>,
    /// Only files with this tag.
    tag: Option<String>,
    /// `image`, `video`, `pdf`, `office`, `text`, `zip`, or a content type.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Words the file name contains (case-insensitive).
    q: Option<String>,
    cursor: Option<String>,
    /// 1–200, default 50.
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct AssetPage {
    files: Vec<FileView>,
    next_cursor: Option<String>,
}

/// Content-type patterns of a `type` filter.
fn type_patterns(kind: &str) -> Result<Vec<String>, ApiError> {
    let patterns: &[&str] = match kind {
        "image" => &["image/%"],
        "video" => &["video/%"],
        "pdf" => &["application/pdf"],
        "office" => &[
            "application/msword",
            "application/vnd.ms-%",
            "application/vnd.openxmlformats-officedocument.%",
            "application/vnd.oasis.opendocument.%",
            "application/rtf",
        ],
        "text" => &["text/%"],
        "zip" => &["application/zip"],
        other => {
            let declared = collab_domain::file::declared_type(other).map_err(|_| {
                ApiError::InvalidParameter {
                    name: "type",
                    reason:
                        "must be image, video, pdf, office, text, zip or an accepted content type"
                            .into(),
                }
            })?;
            return Ok(vec![declared]);
        }
    };
    Ok(patterns.iter().map(|p| (*p).to_owned()).collect())
}

/// The asset library: a workspace's uploaded files, newest first, filtered by collection,
/// tag, type and name.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/assets",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), AssetQuery),
    responses((status = 200, description = "A page of files", body = AssetPage), crate::openapi::Refusals)
)]
async fn list_assets(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
    Query(query): Query<AssetQuery>,
) -> Result<Json<AssetPage>, ApiError> {
    let workspace = member(&state, &principal, &workspace, false).await?;
    let limit = page_limit(query.limit.as_deref())?;
    let mut filter = AssetFilter {
        limit: limit + 1,
        ..Default::default()
    };
    if let Some(raw) = &query.collection {
        filter.collection = Some(
            Uuid::parse_str(raw).map_err(|_| ApiError::InvalidParameter {
                name: "collection",
                reason: "must be a UUID".into(),
            })?,
        );
    }
    if let Some(raw) = &query.tag {
        filter.tag = Some(
            Tag::parse(raw)
                .map_err(|e| ApiError::InvalidParameter {
                    name: "tag",
                    reason: e.reason.to_string(),
                })?
                .as_str()
                .to_owned(),
        );
    }
    if let Some(kind) = &query.kind {
        filter.types = type_patterns(kind)?;
    }
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 200 {
            return Err(ApiError::InvalidParameter {
                name: "q",
                reason: "at most 200 characters".into(),
            });
        }
        filter.name = Some(q.to_owned());
    }
    if let Some(cursor) = &query.cursor {
        let raw = decode_cursor_text('a', cursor)?;
        let parsed = raw.split_once('|').and_then(|(at, id)| {
            Some((
                DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
                Uuid::parse_str(id).ok()?,
            ))
        });
        filter.before = Some(parsed.ok_or(ApiError::InvalidParameter {
            name: "cursor",
            reason: "is not a cursor this route gave".into(),
        })?);
    }
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_workspace(workspace).await?;
    let mut rows = read_model::assets(&mut reader, workspace.as_uuid(), &filter).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| {
            encode_cursor_text('a', &format!("{}|{}", r.created_at.to_rfc3339(), r.file_id))
        })
    } else {
        None
    };
    Ok(Json(AssetPage {
        files: rows.into_iter().map(FileView::from).collect(),
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
struct TemplateView {
    id: Uuid,
    title: String,
    folder: String,
}

#[derive(Serialize, ToSchema)]
struct TemplateList {
    templates: Vec<TemplateView>,
}

/// The workspace's templates the caller can open (create a document from one with
/// `template_id`).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/templates",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    responses((status = 200, description = "The templates", body = TemplateList), crate::openapi::Refusals)
)]
async fn list_templates(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
) -> Result<Json<TemplateList>, ApiError> {
    let workspace = member(&state, &principal, &workspace, false).await?;
    state.reach(meta.min_position).await?;
    let mut reader = state.reader(&principal).await?;
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT d.document_id, d.title, d.folder FROM rm_document_templates t \
         JOIN rm_documents d ON d.document_id = t.document_id \
         WHERE t.workspace_id = $1 AND NOT d.archived \
           AND ($2 OR collab_opens_document(d.document_id, d.workspace_id, d.created_by)) \
         ORDER BY lower(d.title), d.document_id",
    )
    .bind(workspace.as_uuid())
    .bind(principal.service.is_some())
    .fetch_all(&mut *reader)
    .await?;
    Ok(Json(TemplateList {
        templates: rows
            .into_iter()
            .map(|(id, title, folder)| TemplateView { id, title, folder })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    /// Whether the document is a template.
    template: bool,
}

#[derive(Serialize, ToSchema)]
struct TemplateChanged {
    document_id: DocumentId,
    template: bool,
}

/// Mark a document as a template, or not (editors).
#[utoipa::path(
    put,
    path = "/v1/documents/{document_id}/template",
    tag = "assets",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    request_body = TemplateBody,
    responses(
        (status = 200, description = "Set", body = crate::openapi::Committed<TemplateChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn set_template(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    ApiJson(body): ApiJson<TemplateBody>,
) -> Result<Response, ApiError> {
    let document = path_id("document_id", &document, DocumentId::parse)?;
    let committed = state
        .run_on_document(&principal, &meta, document, meta.if_match, |by| {
            vec![DocumentCommand::SetTemplate {
                by,
                template: body.template,
            }]
        })
        .await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        TemplateChanged {
            document_id: document,
            template: body.template,
        },
    ))
}

/// A template's content to start a document from.
pub(crate) struct TemplateContent {
    id: DocumentId,
    version: i64,
    update: Vec<u8>,
}

/// The content of `template` for a new document of `workspace`: the caller reads it, it
/// is in that workspace (404 otherwise) and it is a template (422 otherwise).
pub(crate) async fn template_state(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    workspace: WorkspaceId,
    template: DocumentId,
) -> Result<TemplateContent, ApiError> {
    let not_found = || ApiError::NotFound("template");
    let access = state
        .document_access(template, principal, meta.link.as_ref())
        .await
        .map_err(|_| not_found())?;
    if access.workspace != workspace {
        return Err(not_found());
    }
    let loaded = state
        .aggregates
        .load::<Document>(template.as_uuid())
        .await?
        .aggregate;
    if !loaded.is_template() {
        return Err(ApiError::InvalidField(InvalidValue::new(
            "template_id",
            "is not a template (mark it with PUT /v1/documents/{id}/template)",
        )));
    }
    let guard = state.live.rooms.acquire(template, access.workspace).await?;
    let update = guard.room.read(|doc| {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    });
    let (version, _) = guard.room.applied();
    Ok(TemplateContent {
        id: template,
        version,
        update,
    })
}

/// Writes a template's content as the new document's first content event; its position.
pub(crate) async fn copy_template(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document: DocumentId,
    template: TemplateContent,
) -> Result<i64, ApiError> {
    // An empty template leaves an empty document.
    if template.update == [0, 0] {
        return Ok(0);
    }
    let (guard, _) =
        super::content::open_room(state, &document.to_string(), principal, meta).await?;
    collab_live::admission::admit(
        &state.live.config,
        guard.room.stored_bytes(),
        &template.update,
        true,
    )?;
    let (_, position) = super::content::submit_edit(
        state,
        &guard,
        principal,
        meta,
        (0, template.update),
        EditOrigin::Template {
            template_id: template.id,
            template_version: template.version,
        },
    )
    .await?;
    Ok(position)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DownloadBody {
    /// Files of the workspace (1–1,000)…
    #[serde(default)]
    file_ids: Option<Vec<Uuid>>,
    /// …or a collection (its uploaded files).
    #[serde(default)]
    collection_id: Option<Uuid>,
}

/// A download as its requester sees it.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub(crate) struct DownloadView {
    id: Uuid,
    /// The zip's file name.
    name: String,
    /// `queued`, `building` (`bytes_done` of `total_bytes`), `ready` (`url`), `failed`
    /// (`error`) or `expired`.
    state: String,
    files: i32,
    bytes_done: i64,
    total_bytes: i64,
    error: Option<String>,
    created_at: DateTime<Utc>,
    ready_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    /// A short-lived presigned URL of the zip, while it is ready.
    #[sqlx(skip)]
    url: Option<String>,
}

/// The zips of the download center are built at most this many files at a time.
const MAX_DOWNLOAD_FILES: usize = 1_000;

/// Ask for a zip of files (or of a collection): built in the background by the
/// `downloads` role; follow it with `GET /v1/downloads/{id}`.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/downloads",
    tag = "assets",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    request_body = DownloadBody,
    responses(
        (status = 202, description = "Queued", body = DownloadView),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn request_download(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
    ApiJson(body): ApiJson<DownloadBody>,
) -> Result<(StatusCode, Json<DownloadView>), ApiError> {
    let workspace = path_id("workspace_id", &workspace, WorkspaceId::parse)?;
    let loaded = member_of(&state, &principal, workspace, false, "workspace").await?;
    let (ids, name) = match (body.file_ids, body.collection_id) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_DOWNLOAD_FILES {
                return Err(ApiError::InvalidField(InvalidValue::new(
                    "file_ids",
                    "must name 1 to 1,000 files",
                )));
            }
            let mut unique = Vec::new();
            for id in ids {
                if !unique.contains(&id) {
                    unique.push(id);
                }
            }
            (unique, "files.zip".to_owned())
        }
        (None, Some(collection)) => {
            state
                .reach_with(meta.min_position, read_model::NAME)
                .await?;
            if !loaded.has_collection(&collection) {
                return Err(ApiError::NotFound("collection"));
            }
            let mut reader = state.reader_for_workspace(workspace).await?;
            let ids = read_model::collection_files(&mut reader, collection).await?;
            let row = read_model::collections(&mut reader, workspace.as_uuid())
                .await?
                .into_iter()
                .find(|c| c.collection_id == collection);
            if ids.is_empty() {
                return Err(ApiError::InvalidField(InvalidValue::new(
                    "collection_id",
                    "the collection holds no files",
                )));
            }
            if ids.len() > MAX_DOWNLOAD_FILES {
                return Err(ApiError::InvalidField(InvalidValue::new(
                    "collection_id",
                    "the collection holds more than 1,000 files",
                )));
            }
            let name = row.map(|c| c.name).unwrap_or_else(|| "collection".into());
            (
                ids,
                format!(
                    "{}.zip",
                    collab_domain::file::FileName::sanitise(&name)
                        .map(|n| n.as_str().to_owned())
                        .unwrap_or_else(|_| "collection".into())
                ),
            )
        }
        _ => {
            return Err(ApiError::InvalidBody(
                "give exactly one of file_ids and collection_id".into(),
            ))
        }
    };
    // Every file must be an uploaded file of this workspace (which the caller reads).
    let mut total: i64 = 0;
    for id in &ids {
        let file = file_in(&state, workspace, *id).await?;
        if file.state() != FileState::Uploaded {
            return Err(ApiError::Conflict {
                code: "file_not_uploaded",
                message: format!("file {id} is {}, not uploaded", file.state().as_str()),
                details: serde_json::json!({ "file_id": id }),
            });
        }
        total += file.declared_size() as i64;
    }
    if !state.blobs.presigns() {
        return Err(ApiError::Unavailable {
            code: "file_storage_unavailable",
            message: "downloads need an S3-compatible blob store (COLLAB_S3_BUCKET)".into(),
        });
    }
    let id = Uuid::now_v7();
    let view: DownloadView = sqlx::query_as(
        "INSERT INTO downloads (download_id, workspace_id, requested_by, name, file_ids, state, \
         total_bytes, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, now(), now()) \
         RETURNING download_id AS id, name, state, cardinality(file_ids) AS files, bytes_done, \
         total_bytes, error, created_at, ready_at, expires_at",
    )
    .bind(id)
    .bind(workspace.as_uuid())
    .bind(principal.id.as_str())
    .bind(&name)
    .bind(&ids)
    .bind(total)
    .fetch_one(&state.pool)
    .await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// A download's progress; once ready, a short-lived URL of the zip (its requester only).
#[utoipa::path(
    get,
    path = "/v1/downloads/{download_id}",
    tag = "assets",
    params(("download_id" = uuid::Uuid, Path, description = "The download")),
    responses((status = 200, description = "The download", body = DownloadView), crate::openapi::Refusals)
)]
async fn get_download(
    State(state): State<AppState>,
    principal: Principal,
    Path(download): Path<String>,
) -> Result<Json<DownloadView>, ApiError> {
    let id = uuid_param("download_id", &download)?;
    let mut reader = state.reader(&principal).await?;
    let view: Option<DownloadView> = sqlx::query_as(
        "SELECT download_id AS id, name, state, cardinality(file_ids) AS files, bytes_done, \
         total_bytes, error, created_at, ready_at, expires_at FROM downloads WHERE download_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *reader)
    .await?;
    let mut view = view.ok_or(ApiError::NotFound("download"))?;
    if view.state == "ready" {
        let presented = collab_live::blob_store::Presented {
            content_type: "application/zip".into(),
            content_disposition: super::files::disposition(&view.name, false),
        };
        view.url = Some(
            state
                .blobs
                .presign_get(
                    &crate::files::download_key(id),
                    &presented,
                    state.files.download_expiry,
                )
                .await
                .map_err(super::files::storage)?,
        );
    }
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filters_name_families_or_one_accepted_type() {
        assert_eq!(type_patterns("image").unwrap(), ["image/%"]);
        assert_eq!(type_patterns("image/JPG").unwrap(), ["image/jpeg"]);
        assert!(type_patterns("application/x-msdownload").is_err());
        assert!(type_patterns("office").unwrap().len() > 2);
    }
}
