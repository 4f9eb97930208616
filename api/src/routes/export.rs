//! Export: one document as Markdown, HTML, plain text or ProseMirror JSON (now or at any
//! point of its history), and a whole workspace as a zip of Markdown or HTML files in the
//! workspace's folders.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use collab_domain::{DocumentId, WorkspaceId};
use collab_live::export::{self, Format};
use collab_projections::documents::{self as documents, ArchivedFilter, DocumentView};
use collab_projections::history::{self as history_model, Point};
use collab_projections::workspaces::role_of;
use futures::StreamExt;
use tracing::warn;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact};

use super::content::open_room;
use super::history::{document_at, parse_point, query_params};
use super::path_id;
use crate::error::ApiError;
use crate::extract::{Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_document))
        .routes(routes!(export_workspace))
}

fn format_param(raw: Option<&String>, allowed: &[Format]) -> Result<Format, ApiError> {
    let names: Vec<&str> = allowed.iter().map(|f| f.extension()).collect();
    raw.map_or(Some(Format::Markdown), |f| Format::parse(f))
        .filter(|f| allowed.contains(f))
        .ok_or_else(|| ApiError::InvalidParameter {
            name: "format",
            reason: format!("must be one of {}", names.join(", ")),
        })
}

/// A file name from a title: no path separators, control or reserved characters, not
/// empty, at most 100 characters.
fn file_name(title: &str) -> String {
    let cleaned: String = title
        .chars()
        .map(|c| {
            if c.is_control() || "/\\:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .take(100)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_owned();
    if cleaned.is_empty() {
        "untitled".into()
    } else {
        cleaned
    }
}

/// `attachment` with an ASCII fallback name and the exact one (RFC 6266 / 8187).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// `GET /v1/documents/{id}/export?format=md|html|txt|json[&root=][&at_version=|at_position=|at_time=]`.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/export",
    tag = "history",
    params(
        ("document_id" = uuid::Uuid, Path, description = "The document"),
        ("format" = Option<String>, Query, description = "`md` (default), `html`, `txt` or `json` (ProseMirror)"),
        ("root" = Option<String>, Query, description = "The root to export (default: `default`, TipTap's)"),
        super::history::PointParams
    ),
    responses(
        (status = 200, description = "The document as a file (`Content-Disposition: attachment`)", content(
            (String = "text/markdown"),
            (String = "text/html"),
            (String = "text/plain"),
            (Object = "application/json")
        )),
        crate::openapi::Refusals
    )
)]
async fn export_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_params(
        query.as_deref(),
        &["format", "root", "at_version", "at_position", "at_time"],
    )?;
    let format = format_param(
        params.get("format"),
        &[Format::Markdown, Format::Html, Format::Text, Format::Json],
    )?;
    let id = path_id("document_id", &document, DocumentId::parse)?;
    let doc = match parse_point(&params)? {
        Some(point) => {
            state
                .document_access(id, &principal, meta.link.as_ref())
                .await?;
            document_at(&state, id, point).await?.doc
        }
        None => {
            // Now: the live room's state, copied (the export must not type its roots).
            let (guard, _) = open_room(&state, &document, &principal, &meta).await?;
            let current = guard.room.read(|doc| {
                doc.transact()
                    .encode_state_as_update_v1(&StateVector::default())
            });
            let copy = yrs::Doc::new();
            copy.transact_mut()
                .apply_update(yrs::Update::decode_v1(&current).map_err(|e| {
                    ApiError::internal(anyhow::anyhow!("room state does not decode: {e}"))
                })?)
                .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
            copy
        }
    };
    let body =
        export::export(&doc, params.get("root").map(String::as_str), format).map_err(|e| {
            ApiError::InvalidParameter {
                name: "root",
                reason: e.to_string(),
            }
        })?;
    // The title as the commands know it: an export right after a rename carries the new one.
    let loaded = state
        .aggregates
        .load::<collab_domain::document::Document>(id.as_uuid())
        .await?
        .aggregate;
    let title = Some(loaded.title())
        .filter(|t| !t.is_empty())
        .unwrap_or("document");
    let name = format!("{}.{}", file_name(title), format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, content_disposition(&name)),
        ],
        body,
    )
        .into_response())
}

/// Zip bytes as the writer produces them, taken out after each file (or part).
#[derive(Clone, Default)]
pub(crate) struct Chunks(Arc<Mutex<Vec<u8>>>);

impl Chunks {
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Bytes written and not taken yet.
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every document of the workspace the caller can read (archived ones too).
async fn readable_documents(
    state: &AppState,
    principal: &Principal,
    workspace: WorkspaceId,
) -> Result<Vec<DocumentView>, ApiError> {
    let mut reader = state.reader(principal).await?;
    let sees_all = principal
        .service
        .as_ref()
        .is_some_and(|s| s.document_role(workspace).is_some());
    if !sees_all
        && role_of(&mut *reader, workspace, &principal.id)
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound("workspace"));
    }
    let mut all = vec![];
    let mut before = None;
    loop {
        let page = documents::list(
            &mut *reader,
            workspace,
            &principal.id,
            sees_all,
            ArchivedFilter::Include,
            before,
            200,
        )
        .await?;
        before = page.last().map(|d| d.created_position);
        let done = page.len() < 200;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// `GET /v1/workspaces/{ws}/export?format=md|html`: a zip, streamed one document at a time,
/// of every document the caller can read, in folders as in the workspace.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/export",
    tag = "history",
    params(
        ("workspace_id" = uuid::Uuid, Path, description = "The workspace"),
        ("format" = Option<String>, Query, description = "`md` (default) or `html`")
    ),
    responses(
        (status = 200, description = "A zip of every document the caller can read, in the workspace's folders, streamed", content_type = "application/zip", body = Vec<u8>),
        crate::openapi::Refusals
    )
)]
async fn export_workspace(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_params(query.as_deref(), &["format"])?;
    let format = format_param(params.get("format"), &[Format::Markdown, Format::Html])?;
    let workspace = path_id("workspace_id", &workspace, WorkspaceId::parse)?;
    state.limits.check_workspace(workspace)?;
    state.reach(meta.min_position).await?;
    let docs = readable_documents(&state, &principal, workspace).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let pool = state.pool.clone();
    let aggregates = state.aggregates.clone();
    let caller = principal.caller(meta.link.as_ref());
    tokio::spawn(async move {
        let chunks = Chunks::default();
        let mut zip = zip::ZipWriter::new_stream(chunks.clone());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        let mut used = std::collections::HashSet::new();
        for view in docs {
            let document = view.id;
            // The listing is eventually consistent: access is decided on the aggregates,
            // as for every content route (a share revoked a moment ago counts).
            let allowed = collab_commands::access::resolve(
                &aggregates,
                DocumentId::from_uuid(document),
                &caller,
            )
            .await;
            if !matches!(allowed, Ok(Some(_))) {
                continue;
            }
            let rendered = async {
                let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
                let at = history_model::document_at(&mut conn, document, Point::Head)
                    .await
                    .map_err(|e| e.to_string())?;
                export::export(&at.doc, None, format).map_err(|e| e.to_string())
            }
            .await;
            let body = match rendered {
                Ok(body) => body,
                Err(error) => {
                    warn!(document.id = %document, %error, "document left out of the export");
                    continue;
                }
            };
            // Each folder segment made a plain name too (no `\`, `:` or the like).
            let folder = view
                .folder
                .split('/')
                .filter(|segment| !segment.is_empty())
                .map(file_name)
                .collect::<Vec<_>>()
                .join("/");
            let base = file_name(&view.title);
            let mut path = String::new();
            for n in 1.. {
                let name = if n == 1 {
                    format!("{base}.{}", format.extension())
                } else {
                    format!("{base} ({n}).{}", format.extension())
                };
                path = if folder.is_empty() {
                    name
                } else {
                    format!("{folder}/{name}")
                };
                if used.insert(path.clone()) {
                    break;
                }
            }
            let written = zip
                .start_file(path.as_str(), options)
                .and_then(|()| zip.write_all(body.as_bytes()).map_err(Into::into));
            if let Err(error) = written {
                let _ = tx.send(Err(std::io::Error::other(error))).await;
                return;
            }
            if tx.send(Ok(chunks.take())).await.is_err() {
                return; // the client went away
            }
        }
        match zip.finish() {
            Ok(_) => {
                let _ = tx.send(Ok(chunks.take())).await;
            }
            Err(error) => {
                let _ = tx.send(Err(std::io::Error::other(error))).await;
            }
        }
    });
    let stream = tokio_stream_from(rx).filter(|chunk| {
        let empty = matches!(chunk, Ok(bytes) if bytes.is_empty());
        async move { !empty }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                content_disposition(&format!("workspace-{workspace}-{}.zip", format.extension())),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_to_one_path_segment() {
        assert_eq!(file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_name("  "), "untitled");
        assert_eq!(file_name("Plan: Q1/Q2"), "Plan_ Q1_Q2");
        assert_eq!(
            content_disposition("Ünïcode \"x\".md"),
            "attachment; filename=\"_n_code _x_.md\"; filename*=UTF-8''%C3%9Cn%C3%AFcode%20%22x%22.md"
        );
    }
}
