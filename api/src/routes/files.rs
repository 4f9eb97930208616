//! Files: `POST /v1/workspaces/{ws}/files` starts an upload (one presigned PUT, or a
//! presigned multipart upload for large files: the bytes go straight to object storage),
//! `POST /v1/files/{id}/complete` finishes it and has the server check what arrived;
//! `GET /v1/files/{id}` (metadata), `…/download` and `…/thumbnail` (redirects to
//! short-lived presigned URLs), `DELETE /v1/files/{id}`; attachments to documents.
//!
//! Who may read a file: whoever can read its workspace, or a document it is attached to
//! (shares and links included); everyone else gets 404, as for a file that does not exist.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use collab_domain::file::{self, object_key, File, FileCommand, FileName, FileState};
use collab_domain::workspace::Workspace;
use collab_domain::{DocumentId, DocumentRole, InvalidValue, Scope, WorkspaceId};
use collab_live::blob_store::{Part, Presented};
use collab_projections::files::{self as read_model, FileRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{command_response, path_id, run};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_upload))
        .routes(routes!(complete_upload))
        .routes(routes!(get_file, delete_file))
        .routes(routes!(download))
        .routes(routes!(thumbnail))
        .routes(routes!(attach, detach))
        .routes(routes!(list_attachments))
}

const WS: &str = "The workspace";
const FILE: &str = "The file";
const DOC: &str = "The document";

/// S3 takes at most this many parts per upload.
const MAX_PARTS: u64 = 10_000;

fn invalid(field: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidField(InvalidValue::new(field, reason.into()))
}

pub(crate) fn storage(error: std::io::Error) -> ApiError {
    match error.kind() {
        std::io::ErrorKind::Unsupported => ApiError::Unavailable {
            code: "file_storage_unavailable",
            message: error.to_string(),
        },
        _ => ApiError::Unavailable {
            code: "file_storage_unavailable",
            message: format!("the file store did not answer: {error}"),
        },
    }
}

pub(crate) fn file_id(raw: &str) -> Result<Uuid, ApiError> {
    super::uuid_param("file_id", raw)
}

/// A live (not deleted) file of `workspace`; 404 for any other. For a caller already known
/// to read the workspace.
pub(crate) async fn file_in(
    state: &AppState,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<File, ApiError> {
    let file = state.aggregates.load::<File>(id).await?.aggregate;
    let live = !matches!(file.state(), FileState::None | FileState::Deleted);
    if live && collab_domain::EventSourced::workspace_id(&file) == Some(workspace) {
        Ok(file)
    } else {
        Err(ApiError::NotFound("file"))
    }
}

/// The caller's standing in a workspace: its role there, or its service account's scopes.
pub(crate) async fn standing(
    state: &AppState,
    principal: &Principal,
    workspace: WorkspaceId,
) -> Result<(Arc<Workspace>, bool, bool), ApiError> {
    let loaded = match &principal.service_workspace {
        Some(ws) if ws.id() == Some(workspace) => ws.clone(),
        _ => Arc::new(
            state
                .aggregates
                .load::<Workspace>(workspace.as_uuid())
                .await?
                .aggregate,
        ),
    };
    let (reads, writes) = match (&principal.service, loaded.role_of(&principal.id)) {
        (Some(service), _) if service.workspace == workspace => (
            service.has(Scope::DocumentsRead) || service.has(Scope::DocumentsWrite),
            service.has(Scope::DocumentsWrite),
        ),
        (Some(_), _) => (false, false),
        (None, Some(role)) => (true, role.edits_documents()),
        (None, None) => (false, false),
    };
    Ok((loaded, reads, writes))
}

/// A file the caller may read (404 otherwise), and whether it manages the workspace.
pub(crate) async fn readable(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    id: Uuid,
) -> Result<(File, WorkspaceId, bool), ApiError> {
    let file = state.aggregates.load::<File>(id).await?.aggregate;
    let workspace = match (
        file.state(),
        collab_domain::EventSourced::workspace_id(&file),
    ) {
        (FileState::None | FileState::Deleted, _) | (_, None) => {
            return Err(ApiError::NotFound("file"))
        }
        (_, Some(workspace)) => workspace,
    };
    let (loaded, reads, _) = standing(state, principal, workspace).await?;
    let manager = principal.service.is_none()
        && loaded
            .role_of(&principal.id)
            .is_some_and(|r| r.manages_workspace());
    if reads {
        state.limits.check_workspace(workspace)?;
        return Ok((file, workspace, manager));
    }
    for document in file.attachments() {
        if state
            .document_access(*document, principal, meta.link.as_ref())
            .await
            .is_ok()
        {
            return Ok((file, workspace, false));
        }
    }
    Err(ApiError::NotFound("file"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// The file's name (folders and unsafe characters are removed).
    filename: String,
    /// Its size in bytes (at most `COLLAB_MAX_FILE_BYTES`); what arrives must match.
    size: u64,
    /// Its type: images, PDF, office documents, plain text, zip or video. What arrives
    /// must show it.
    content_type: String,
    /// A document to attach it to (the caller edits it).
    #[serde(default)]
    document_id: Option<Uuid>,
}

/// How the client sends the bytes.
#[derive(Serialize, ToSchema)]
#[serde(tag = "method", rename_all = "snake_case")]
enum Upload {
    /// One `PUT` of the whole file to `url`.
    Put { url: String },
    /// `PUT` each part (of `part_size` bytes, the last one shorter) to its URL, keep each
    /// answer's `ETag`, and name them all when completing.
    Multipart { part_size: u64, parts: Vec<PartUrl> },
}

#[derive(Serialize, ToSchema)]
struct PartUrl {
    number: i32,
    url: String,
}

#[derive(Serialize, ToSchema)]
struct UploadStarted {
    id: Uuid,
    filename: String,
    upload: Upload,
    /// When the URLs stop working; an upload not completed by then is cleaned up later.
    expires_at: DateTime<Utc>,
}

/// Start uploading a file: the answer says where to send its bytes (straight to object
/// storage); complete it with `POST /v1/files/{id}/complete`.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/files",
    tag = "files",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    request_body = StartBody,
    responses(
        (status = 201, description = "Started", body = crate::openapi::Committed<UploadStarted>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn start_upload(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Response, ApiError> {
    let workspace = path_id("workspace_id", &workspace, WorkspaceId::parse)?;
    let (_, reads, writes) = standing(&state, &principal, workspace).await?;
    let document_id = body.document_id.map(DocumentId::from_uuid);
    match document_id {
        Some(document) => {
            let access = state
                .document_access(document, &principal, meta.link.as_ref())
                .await?;
            if access.workspace != workspace {
                return Err(ApiError::NotFound("document"));
            }
            if access.role < DocumentRole::Editor {
                return Err(ApiError::Forbidden(
                    "attaching files needs the editor role on the document".into(),
                ));
            }
        }
        None if !reads => return Err(ApiError::NotFound("workspace")),
        None if !writes => {
            return Err(ApiError::Forbidden(
                "uploading files needs the owner, admin or member role".into(),
            ))
        }
        None => {}
    }
    let filename = FileName::sanitise(&body.filename).map_err(ApiError::InvalidField)?;
    let declared_type = file::declared_type(&body.content_type).map_err(ApiError::InvalidField)?;
    let max = state.files.max_file_bytes;
    if body.size == 0 {
        return Err(invalid("size", "must be at least 1 byte"));
    }
    if body.size > max {
        return Err(invalid("size", format!("must be at most {max} bytes")));
    }
    if !state.blobs.presigns() {
        return Err(storage(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "uploading files needs an S3-compatible blob store (COLLAB_S3_BUCKET)",
        )));
    }
    let id = Uuid::now_v7();
    let key = object_key(workspace, id);
    let expiry = state.files.upload_expiry;
    let part_size = state.files.part_bytes.max(body.size.div_ceil(MAX_PARTS));
    let (upload, upload_id) = if body.size <= part_size {
        let url = state
            .blobs
            .presign_put(&key, expiry)
            .await
            .map_err(storage)?;
        (Upload::Put { url }, None)
    } else {
        let upload_id = state.blobs.start_multipart(&key).await.map_err(storage)?;
        let count = body.size.div_ceil(part_size) as i32;
        let mut parts = Vec::with_capacity(count as usize);
        for number in 1..=count {
            let url = state
                .blobs
                .presign_part(&key, &upload_id, number, expiry)
                .await
                .map_err(storage)?;
            parts.push(PartUrl { number, url });
        }
        (Upload::Multipart { part_size, parts }, Some(upload_id))
    };
    let command = FileCommand::Start {
        by: principal.id.clone(),
        workspace_id: workspace,
        filename: filename.clone(),
        declared_type,
        size: body.size,
        document_id,
        key,
        upload_id,
        max_bytes: max,
    };
    let committed = run::<File>(&state, &principal, &meta, id, command, None).await?;
    Ok(command_response(
        StatusCode::CREATED,
        committed.position,
        UploadStarted {
            id,
            filename: filename.as_str().to_owned(),
            upload,
            expires_at: Utc::now() + chrono::Duration::from_std(expiry).unwrap_or_default(),
        },
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    /// For a multipart upload: every part, with the `ETag` its upload answered.
    #[serde(default)]
    parts: Vec<CompletedPart>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CompletedPart {
    number: i32,
    etag: String,
}

/// A file as its readers see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct FileView {
    id: Uuid,
    workspace_id: Uuid,
    filename: String,
    /// The type the uploader declared.
    declared_type: String,
    /// The type its content shows (once uploaded).
    content_type: Option<String>,
    size: i64,
    /// `pending`, `uploaded`, `rejected` (see `reason`) or `abandoned`.
    state: String,
    reason: Option<String>,
    uploaded_by: String,
    created_at: DateTime<Utc>,
    uploaded_at: Option<DateTime<Utc>>,
    /// The documents it is attached to.
    documents: Vec<Uuid>,
    /// The asset collections it is in.
    collections: Vec<Uuid>,
    /// Its tags (lower-case).
    tags: Vec<String>,
    /// `small` (256 px) and `large` (1024 px) with their dimensions, once made.
    #[schema(value_type = Object)]
    thumbnails: serde_json::Value,
    /// Why no thumbnail could be made.
    thumbnail_error: Option<String>,
}

impl From<FileRow> for FileView {
    fn from(row: FileRow) -> Self {
        Self {
            id: row.file_id,
            workspace_id: row.workspace_id,
            filename: row.filename,
            declared_type: row.declared_type,
            content_type: row.content_type,
            size: row.size,
            state: row.state,
            reason: row.reason,
            uploaded_by: row.uploaded_by,
            created_at: row.created_at,
            uploaded_at: row.uploaded_at,
            documents: row.documents,
            collections: row.collections,
            tags: row.tags,
            thumbnails: row.thumbnails,
            thumbnail_error: row.thumbnail_error,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct Completed {
    id: Uuid,
    state: String,
    content_type: String,
    size: u64,
}

/// Finish an upload: the server looks at what arrived — its size against the declared
/// size and the limit, its type (from its first bytes) against the declared type and the
/// allowlist. A file that passes is `uploaded`; one that does not is refused (422
/// `file_rejected`, with the reason), recorded `rejected`, and its bytes deleted.
#[utoipa::path(
    post,
    path = "/v1/files/{file_id}/complete",
    tag = "files",
    params(("file_id" = uuid::Uuid, Path, description = FILE)),
    request_body = CompleteBody,
    responses(
        (status = 200, description = "Uploaded", body = crate::openapi::Committed<Completed>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn complete_upload(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteBody>,
) -> Result<Response, ApiError> {
    let id = file_id(&id)?;
    let (file, _, _) = readable(&state, &principal, &meta, id).await?;
    if file.state() != FileState::Pending {
        return Err(ApiError::Conflict {
            code: "upload_not_pending",
            message: format!("the upload is already {}", file.state().as_str()),
            details: serde_json::json!({ "state": file.state().as_str() }),
        });
    }
    if file.uploaded_by() != Some(&principal.id) {
        return Err(ApiError::Forbidden(
            "only its uploader completes an upload".into(),
        ));
    }
    let key = file.key().to_owned();
    if let Some(upload) = file.upload_id() {
        if body.parts.is_empty() || body.parts.len() as u64 > MAX_PARTS {
            return Err(invalid(
                "parts",
                "must name every uploaded part (1 to 10,000)",
            ));
        }
        let mut parts: Vec<Part> = body
            .parts
            .into_iter()
            .map(|p| Part {
                number: p.number,
                etag: p.etag,
            })
            .collect();
        parts.sort_by_key(|p| p.number);
        if parts.windows(2).any(|w| w[0].number == w[1].number)
            || parts
                .iter()
                .any(|p| p.number < 1 || p.etag.is_empty() || p.etag.len() > 200)
        {
            return Err(invalid(
                "parts",
                "numbers must be distinct and from 1, each with its ETag",
            ));
        }
        if let Err(error) = state.blobs.complete_multipart(&key, upload, &parts).await {
            // The store refused the parts (a wrong ETag, a part missing or too small):
            // the upload stays open to be completed correctly.
            return Err(match error.kind() {
                std::io::ErrorKind::Other
                    if error.to_string().contains("CompleteMultipartUpload") =>
                {
                    invalid("parts", format!("the store refused them: {error}"))
                }
                _ => storage(error),
            });
        }
    } else if !body.parts.is_empty() {
        return Err(invalid("parts", "this upload is one PUT: name no parts"));
    }
    let arrived = crate::files::inspect(state.blobs.as_ref(), &key)
        .await
        .map_err(storage)?;
    let max_bytes = state.files.max_file_bytes;
    // The verdict the file will record (the aggregate judges the same way).
    let verdict = file::judge(
        file.declared_type(),
        file.declared_size(),
        max_bytes,
        &arrived,
    );
    let command = FileCommand::Complete {
        by: principal.id.clone(),
        arrived: arrived.clone(),
        max_bytes,
    };
    let committed = run::<File>(&state, &principal, &meta, id, command, None).await?;
    match verdict {
        Ok(content_type) => Ok(command_response(
            StatusCode::OK,
            committed.position,
            Completed {
                id,
                state: FileState::Uploaded.as_str().into(),
                content_type,
                size: arrived.size.unwrap_or_default(),
            },
        )),
        Err(reason) => {
            // Nothing of a refused upload is kept.
            if let Err(error) = state.blobs.delete(&key).await {
                tracing::warn!(%error, file.id = %id, "files: cannot delete a rejected upload");
            }
            Err(ApiError::Unprocessable {
                code: "file_rejected",
                message: format!("the file was rejected: {reason}"),
                details: serde_json::json!({ "reason": reason, "position": committed.position }),
            })
        }
    }
}

async fn view(
    state: &AppState,
    meta: &RequestMeta,
    workspace: WorkspaceId,
    id: Uuid,
) -> Result<FileView, ApiError> {
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_workspace(workspace).await?;
    let row = read_model::get(&mut reader, id)
        .await?
        .ok_or(ApiError::NotFound("file"))?;
    Ok(row.into())
}

/// A file's metadata: name, types, size, state (with the reason an upload was
/// rejected), attachments, thumbnails.
#[utoipa::path(
    get,
    path = "/v1/files/{file_id}",
    tag = "files",
    params(("file_id" = uuid::Uuid, Path, description = FILE)),
    responses((status = 200, description = "The file", body = FileView), crate::openapi::Refusals)
)]
async fn get_file(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Json<FileView>, ApiError> {
    let id = file_id(&id)?;
    let (_, workspace, _) = readable(&state, &principal, &meta, id).await?;
    Ok(Json(view(&state, &meta, workspace, id).await?))
}

/// A `Content-Disposition` value offering `filename` (ASCII fallback and RFC 5987 UTF-8).
pub(crate) fn disposition(filename: &str, inline: bool) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    let encoded: String = form_urlencoded::byte_serialize(filename.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn redirect(url: String) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&url).map_err(ApiError::internal)?;
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DownloadQuery {
    /// `false`: answer the URL in JSON (`{url, expires_at}`) instead of redirecting to it
    /// — for a page that shows the file itself (an `<img>`), since a redirect followed by
    /// `fetch` would carry the bearer token to the object store.
    redirect: Option<bool>,
}

/// Where a file's bytes are, for a while.
#[derive(Serialize, ToSchema)]
struct DownloadUrl {
    url: String,
    expires_at: DateTime<Utc>,
}

/// Download a file: a redirect (302) to a short-lived URL of the object store, which
/// answers with the file's name and the type its content showed (or, with
/// `redirect=false`, that URL in JSON).
#[utoipa::path(
    get,
    path = "/v1/files/{file_id}/download",
    tag = "files",
    params(("file_id" = uuid::Uuid, Path, description = FILE), DownloadQuery),
    responses(
        (status = 200, description = "The URL (`redirect=false`)", body = DownloadUrl),
        (status = 302, description = "To the file's bytes (`Location`)"),
        (status = 409, description = "Not uploaded (`file_not_uploaded`)", body = crate::openapi::ErrorBody),
        crate::openapi::Refusals
    )
)]
async fn download(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ApiError> {
    let id = file_id(&id)?;
    let (file, _, _) = readable(&state, &principal, &meta, id).await?;
    let uploaded = uploaded(&file)?;
    let presented = Presented {
        content_type: uploaded.to_owned(),
        content_disposition: disposition(
            file.filename().map(|f| f.as_str()).unwrap_or("file"),
            false,
        ),
    };
    let expiry = state.files.download_expiry;
    let url = state
        .blobs
        .presign_get(file.key(), &presented, expiry)
        .await
        .map_err(storage)?;
    if query.redirect == Some(false) {
        let expires_at = Utc::now() + chrono::Duration::from_std(expiry).unwrap_or_default();
        let mut response = Json(DownloadUrl { url, expires_at }).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(response);
    }
    redirect(url)
}

/// The type of an uploaded file, or 409 for one that is not.
fn uploaded(file: &File) -> Result<&str, ApiError> {
    match (file.state(), file.content_type()) {
        (FileState::Uploaded, Some(content_type)) => Ok(content_type),
        (other, _) => Err(ApiError::Conflict {
            code: "file_not_uploaded",
            message: format!("the file is {}, not uploaded", other.as_str()),
            details: serde_json::json!({ "state": other.as_str() }),
        }),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ThumbnailQuery {
    /// `small` (256 px, the default) or `large` (1024 px).
    size: Option<String>,
}

/// A file's thumbnail (images only, once the thumbnailer made it): a redirect (302) to a
/// short-lived URL; 404 while there is none.
#[utoipa::path(
    get,
    path = "/v1/files/{file_id}/thumbnail",
    tag = "files",
    params(("file_id" = uuid::Uuid, Path, description = FILE), ThumbnailQuery),
    responses((status = 302, description = "To the thumbnail (`Location`)"), crate::openapi::Refusals)
)]
async fn thumbnail(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
    Query(query): Query<ThumbnailQuery>,
) -> Result<Response, ApiError> {
    let id = file_id(&id)?;
    let max_px = match query.size.as_deref().unwrap_or("small") {
        "small" => 256,
        "large" => 1024,
        _ => {
            return Err(ApiError::InvalidParameter {
                name: "size",
                reason: "must be small or large".into(),
            })
        }
    };
    let (file, _, _) = readable(&state, &principal, &meta, id).await?;
    uploaded(&file)?;
    let thumbnail = file
        .thumbnails()
        .get(&max_px)
        .ok_or(ApiError::NotFound("thumbnail"))?;
    let stem = file
        .filename()
        .map(|f| f.as_str())
        .unwrap_or("file")
        .rsplit_once('.')
        .map(|(stem, _)| stem.to_owned())
        .unwrap_or_else(|| {
            file.filename()
                .map(|f| f.as_str().to_owned())
                .unwrap_or_default()
        });
    let extension = if thumbnail.content_type == "image/png" {
        "png"
    } else {
        "jpg"
    };
    let presented = Presented {
        content_type: thumbnail.content_type.clone(),
        content_disposition: disposition(&format!("{stem}-{max_px}.{extension}"), true),
    };
    let url = state
        .blobs
        .presign_get(&thumbnail.key, &presented, state.files.download_expiry)
        .await
        .map_err(storage)?;
    redirect(url)
}

#[derive(Serialize, ToSchema)]
struct FileChanged {
    id: Uuid,
}

/// Delete a file (its uploader, or the workspace's owners and admins): recorded, and its
/// bytes and thumbnails removed from storage.
#[utoipa::path(
    delete,
    path = "/v1/files/{file_id}",
    tag = "files",
    params(("file_id" = uuid::Uuid, Path, description = FILE)),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Committed<FileChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn delete_file(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = file_id(&id)?;
    let (file, _, manager) = readable(&state, &principal, &meta, id).await?;
    let command = FileCommand::Delete {
        by: principal.id.clone(),
        manager,
    };
    let committed = run::<File>(&state, &principal, &meta, id, command, None).await?;
    // The event is the record; the objects follow it (a failure here leaves garbage, never
    // a file that claims to exist).
    if let Some(upload) = file.upload_id() {
        let _ = state.blobs.abort_multipart(file.key(), upload).await;
    }
    let mut keys = vec![file.key().to_owned()];
    keys.extend(file.thumbnails().values().map(|t| t.key.clone()));
    for key in keys {
        if let Err(error) = state.blobs.delete(&key).await {
            tracing::warn!(%error, file.id = %id, "files: cannot delete an object of a deleted file");
        }
    }
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        FileChanged { id },
    ))
}

/// The caller edits `document` (404 when it cannot read it, 403 below editor).
async fn editing(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document: &str,
) -> Result<(DocumentId, WorkspaceId), ApiError> {
    let document = path_id("document_id", document, DocumentId::parse)?;
    let access = state
        .document_access(document, principal, meta.link.as_ref())
        .await?;
    if access.role < DocumentRole::Editor {
        return Err(ApiError::Forbidden(
            "attaching files needs the editor role on the document".into(),
        ));
    }
    Ok((document, access.workspace))
}

/// Attach a file to a document (both of one workspace; the caller edits the document and
/// can read the file).
#[utoipa::path(
    post,
    path = "/v1/documents/{document_id}/attachments/{file_id}",
    tag = "files",
    params(("document_id" = uuid::Uuid, Path, description = DOC), ("file_id" = uuid::Uuid, Path, description = FILE)),
    responses(
        (status = 200, description = "Attached", body = crate::openapi::Committed<FileChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn attach(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((document, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = file_id(&id)?;
    let (document, workspace) = editing(&state, &principal, &meta, &document).await?;
    let (_, file_workspace, _) = readable(&state, &principal, &meta, id).await?;
    if file_workspace != workspace {
        return Err(ApiError::NotFound("file"));
    }
    let command = FileCommand::Attach {
        by: principal.id.clone(),
        document_id: document,
    };
    let committed = run::<File>(&state, &principal, &meta, id, command, None).await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        FileChanged { id },
    ))
}

/// Detach a file from a document (the caller edits the document). The file stays.
#[utoipa::path(
    delete,
    path = "/v1/documents/{document_id}/attachments/{file_id}",
    tag = "files",
    params(("document_id" = uuid::Uuid, Path, description = DOC), ("file_id" = uuid::Uuid, Path, description = FILE)),
    responses(
        (status = 200, description = "Detached", body = crate::openapi::Committed<FileChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn detach(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((document, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = file_id(&id)?;
    let (document, _) = editing(&state, &principal, &meta, &document).await?;
    let file = state.aggregates.load::<File>(id).await?.aggregate;
    if !file.attachments().contains(&document) {
        return Err(ApiError::NotFound("attachment"));
    }
    let command = FileCommand::Detach {
        by: principal.id.clone(),
        document_id: document,
    };
    let committed = run::<File>(&state, &principal, &meta, id, command, None).await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        FileChanged { id },
    ))
}

#[derive(Serialize, ToSchema)]
struct AttachmentList {
    files: Vec<FileView>,
}

/// The uploaded files attached to a document (whoever reads the document).
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/attachments",
    tag = "files",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    responses((status = 200, description = "The files", body = AttachmentList), crate::openapi::Refusals)
)]
async fn list_attachments(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
) -> Result<Json<AttachmentList>, ApiError> {
    let document = path_id("document_id", &document, DocumentId::parse)?;
    let access = state
        .document_access(document, &principal, meta.link.as_ref())
        .await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_workspace(access.workspace).await?;
    let rows = read_model::attached_to(&mut reader, document.as_uuid()).await?;
    Ok(Json(AttachmentList {
        files: rows.into_iter().map(FileView::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_quote_safely_and_carry_utf8_names() {
        assert_eq!(
            disposition("report 2026.pdf", false),
            "attachment; filename=\"report 2026.pdf\"; filename*=UTF-8''report%202026.pdf"
        );
        let d = disposition("写真.jpg", true);
        assert!(
            d.starts_with("inline; filename=\"__.jpg\"; filename*=UTF-8''%E5%86%99"),
            "{d}"
        );
    }
}
