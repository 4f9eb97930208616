//! Server-side content of a live document: read it as text, JSON or binary Yjs state,
//! apply a binary update (integrations), and see who is present.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use collab_domain::content::EditOrigin;
use collab_domain::{DocumentId, DocumentRole};
use serde_json::json;
use tokio::sync::oneshot;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use yrs::{ReadTxn, StateVector, Transact};

use super::{command_response, history, path_id};
use crate::error::ApiError;
use crate::extract::{Principal, RequestMeta};
use crate::state::AppState;
use collab_live::admission::admit;
use collab_live::appender::EditRequest;
use collab_live::content;
use collab_live::presence;
use collab_live::rooms::RoomGuard;
use collab_projections::history::AtPoint;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_content))
        .routes(routes!(get_state))
        .routes(routes!(post_update))
        .routes(routes!(get_presence))
}

#[derive(serde::Serialize, ToSchema)]
struct UpdateApplied {
    document_id: DocumentId,
    /// The document's content version after the update.
    version: i64,
}

pub(crate) async fn open_room(
    state: &AppState,
    document: &str,
    principal: &Principal,
    meta: &RequestMeta,
) -> Result<(RoomGuard, DocumentRole), ApiError> {
    let document = path_id("document_id", document, DocumentId::parse)?;
    let access = state
        .document_access(document, principal, meta.link.as_ref())
        .await?;
    let guard = state.live.rooms.acquire(document, access.workspace).await?;
    Ok((guard, access.role))
}

/// Where content is read from: the live room (now) or the document as it was at a point.
enum Source {
    Live(RoomGuard),
    Past(AtPoint),
}

impl Source {
    /// Opens the room, or — with `at_version`, `at_position` or `at_time` — materialises
    /// the document at that point.
    async fn open(
        state: &AppState,
        document: &str,
        principal: &Principal,
        meta: &RequestMeta,
        params: &HashMap<String, String>,
    ) -> Result<Self, ApiError> {
        match history::parse_point(params)? {
            None => Ok(Source::Live(
                open_room(state, document, principal, meta).await?.0,
            )),
            Some(point) => {
                let id = path_id("document_id", document, DocumentId::parse)?;
                state
                    .document_access(id, principal, meta.link.as_ref())
                    .await?;
                Ok(Source::Past(history::document_at(state, id, point).await?))
            }
        }
    }

    fn read<R>(&self, f: impl FnOnce(&yrs::Doc) -> R) -> R {
        match self {
            Source::Live(guard) => guard.room.read(f),
            Source::Past(at) => f(&at.doc),
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            Source::Live(guard) => {
                let (version, position) = guard.room.applied();
                vec![
                    ("x-collab-content-version", version.to_string()),
                    ("x-collab-position", position.to_string()),
                ]
            }
            Source::Past(at) => history::point_headers(at),
        }
    }
}

fn with_headers(mut response: Response, headers: Vec<(&'static str, String)>) -> Response {
    for (name, value) in headers {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::HeaderName::from_static(name), value);
        }
    }
    response
}

/// `GET /v1/documents/{id}/content[?format=text|json][&root=][&at_version=|at_position=|at_time=]`.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/content",
    tag = "content",
    params(
        ("document_id" = uuid::Uuid, Path, description = "The document"),
        ("format" = Option<String>, Query, description = "`text` (default) or `json` (every root by name)"),
        ("root" = Option<String>, Query, description = "For `text`: only this root"),
        super::history::PointParams,
        ("min_position" = Option<i64>, Query, minimum = 0, description = "Read your writes: wait for this position")
    ),
    responses(
        (status = 200, description = "The content; `X-Collab-Content-Version` and `X-Collab-Position` say which", content(
            (String = "text/plain"),
            (Object = "application/json")
        )),
        crate::openapi::Refusals
    )
)]
async fn get_content(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = history::query_params(
        query.as_deref(),
        &["format", "root", "at_version", "at_position", "at_time"],
    )?;
    let format = params.get("format").map(String::as_str).unwrap_or("text");
    if !matches!(format, "text" | "json") {
        return Err(ApiError::InvalidParameter {
            name: "format",
            reason: "must be text or json".into(),
        });
    }
    let source = Source::open(&state, &document, &principal, &meta, &params).await?;
    let response = match format {
        "json" => Json(source.read(content::to_json)).into_response(),
        _ => {
            let root = params.get("root").map(String::as_str);
            let text = source.read(|doc| content::to_text(doc, root));
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
    };
    Ok(with_headers(response, source.headers()))
}

/// `GET /v1/documents/{id}/state[?at_version=|at_position=|at_time=]`: the binary Yjs
/// state (v1 update), which any Yjs client can apply.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/state",
    tag = "content",
    params(
        ("document_id" = uuid::Uuid, Path, description = "The document"),
        super::history::PointParams,
        ("min_position" = Option<i64>, Query, minimum = 0, description = "Read your writes: wait for this position")
    ),
    responses(
        (status = 200, description = "The Yjs state as one v1 update", content_type = "application/octet-stream", body = Vec<u8>),
        crate::openapi::Refusals
    )
)]
async fn get_state(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = history::query_params(query.as_deref(), &history::POINT_PARAMS)?;
    let source = Source::open(&state, &document, &principal, &meta, &params).await?;
    let bytes = source.read(|doc| {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    });
    let response = ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response();
    Ok(with_headers(response, source.headers()))
}

/// Apply a Yjs update (editors): live sessions receive it once it is durable.
#[utoipa::path(
    post,
    path = "/v1/documents/{document_id}/updates",
    tag = "content",
    params(("document_id" = uuid::Uuid, Path, description = "The document")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "A Yjs v1 update"),
    responses(
        (status = 200, description = "Applied (or changed nothing)", body = crate::openapi::Committed<UpdateApplied>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn post_update(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    if !content_type.starts_with("application/octet-stream") {
        return Err(ApiError::UnsupportedMediaTypeNamed(
            "application/octet-stream",
        ));
    }
    let (guard, role) = open_room(&state, &document, &principal, &meta).await?;
    if !role.edits() {
        return Err(ApiError::Forbidden(
            "viewers and commenters cannot change content".into(),
        ));
    }
    let admitted = admit(&state.live.config, guard.room.stored_bytes(), &body, true)?;
    if admitted.empty {
        let (version, position) = guard.room.applied();
        return Ok(command_response(
            StatusCode::OK,
            position,
            UpdateApplied {
                document_id: guard.room.document_id,
                version,
            },
        ));
    }
    let (version, position) = submit_edit(
        &state,
        &guard,
        &principal,
        &meta,
        (0, body.to_vec()),
        EditOrigin::Http,
    )
    .await?;
    Ok(command_response(
        StatusCode::OK,
        position,
        UpdateApplied {
            document_id: guard.room.document_id,
            version,
        },
    ))
}

/// Appends one update to the room's document like any edit (the room applies it and
/// sends it to its sessions once durable) and waits for it to land: (version, position).
pub(crate) async fn submit_edit(
    state: &AppState,
    guard: &RoomGuard,
    principal: &Principal,
    meta: &RequestMeta,
    (client_id, update): (u64, Vec<u8>),
    origin: EditOrigin,
) -> Result<(i64, i64), ApiError> {
    let (done, landed) = oneshot::channel();
    state
        .live
        .appender
        .submit(EditRequest {
            room: guard.room.clone(),
            actor: principal.actor(),
            correlation_id: meta.correlation_id,
            client_id,
            update,
            origin,
            sender: None,
            done: Some(done),
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    landed
        .await
        .map_err(|_| ApiError::internal(anyhow::anyhow!("the edit was dropped")))?
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))
}

/// Who is connected to the document now.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/presence",
    tag = "content",
    params(("document_id" = uuid::Uuid, Path, description = "The document")),
    responses(
        (status = 200, description = "`{users: [...], sessions: [{session_id, user_id, awareness...}]}`", body = Object),
        crate::openapi::Refusals
    )
)]
async fn get_presence(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let document = path_id("document_id", &document, DocumentId::parse)?;
    state
        .document_access(document, &principal, meta.link.as_ref())
        .await?;
    // Access was granted by the aggregates above (a link or a share counts): the
    // document's presence is readable whatever the caller's memberships.
    let mut reader = state.reader_for_document(&principal, document).await?;
    let sessions = presence::present(&mut *reader, document).await?;
    let mut users: Vec<&str> = sessions.iter().map(|s| s.user_id.as_str()).collect();
    users.sort();
    users.dedup();
    Ok(Json(json!({ "users": users, "sessions": sessions })))
}
