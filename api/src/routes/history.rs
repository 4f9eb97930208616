//! Document history: the history list, named versions, restore as a forward edit, diffs
//! and blame with attribution, and reading a document at any point (used by the content
//! routes too).

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use collab_domain::content::EditOrigin;
use collab_domain::document::DocumentCommand;
use collab_domain::{DocumentId, VersionName};
use collab_live::history::{self as past, Attributed, RootKind};
use collab_projections::history::{self as read_model, AtPoint, Point};
use collab_store::EventLog;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use yrs::{ReadTxn, StateVector, Transact};

use super::content::{open_room, submit_edit};
use super::{command_response, decode_cursor, encode_cursor, page_limit, path_id};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_history))
        .routes(routes!(restore))
        .routes(routes!(list_versions, name_version))
        .routes(routes!(get_version, delete_version))
        .routes(routes!(diff))
        .routes(routes!(blame))
}

/// A point of a document's history (at most one of the three), as the content, state,
/// export and blame routes document it; they read it from the raw query ([`parse_point`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct PointParams {
    /// As it was after this content version (0: the empty document).
    #[param(minimum = 0)]
    at_version: Option<i64>,
    /// As it was at this global position.
    #[param(minimum = 0)]
    at_position: Option<i64>,
    /// As it was at this time (RFC 3339).
    at_time: Option<DateTime<Utc>>,
}

/// Query parameters, each at most once; any name outside `allowed` (and the `link` and
/// `min_position` every route takes) is a 400 naming it.
pub(crate) fn query_params(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let mut params = HashMap::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if name == "link" || name == "min_position" {
            continue;
        }
        if !allowed.contains(&name.as_ref()) {
            return Err(ApiError::InvalidParameter {
                name: "query",
                reason: format!(
                    "unknown parameter '{name}' (expected {})",
                    allowed.join(", ")
                ),
            });
        }
        if params.insert(name.to_string(), value.to_string()).is_some() {
            return Err(ApiError::InvalidParameter {
                name: "query",
                reason: format!("'{name}' is given twice"),
            });
        }
    }
    Ok(params)
}

/// The parameters that name a point of history.
pub(crate) const POINT_PARAMS: [&str; 3] = ["at_version", "at_position", "at_time"];

fn number(name: &'static str, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::InvalidParameter {
            name,
            reason: "must be a non-negative integer".into(),
        })
}

/// `at_version=V`, `at_position=P` or `at_time=RFC3339` (at most one); none: `None`.
pub(crate) fn parse_point(params: &HashMap<String, String>) -> Result<Option<Point>, ApiError> {
    let given: Vec<&str> = POINT_PARAMS
        .into_iter()
        .filter(|p| params.contains_key(*p))
        .collect();
    if given.len() > 1 {
        return Err(ApiError::InvalidParameter {
            name: "query",
            reason: "give one of at_version, at_position and at_time".into(),
        });
    }
    Ok(match given.first() {
        None => None,
        Some(&"at_version") => Some(Point::Version(number("at_version", &params["at_version"])?)),
        Some(&"at_position") => Some(Point::Position(number(
            "at_position",
            &params["at_position"],
        )?)),
        Some(_) => Some(Point::Time(
            DateTime::parse_from_rfc3339(&params["at_time"])
                .map_err(|_| ApiError::InvalidParameter {
                    name: "at_time",
                    reason: "must be an RFC 3339 time, e.g. 2026-12-02T10:00:00Z".into(),
                })?
                .with_timezone(&Utc),
        )),
    })
}

/// The document's current content version (its content stream's length).
async fn content_head(state: &AppState, document: DocumentId) -> Result<i64, ApiError> {
    Ok(collab_live::rooms::content_head(&state.pool, document).await?)
}

/// The document as it was at `point`, for a caller the aggregates already authorized.
/// A version or position the document or log has not reached is a 400.
pub(crate) async fn document_at(
    state: &AppState,
    document: DocumentId,
    point: Point,
) -> Result<AtPoint, ApiError> {
    match point {
        Point::Version(version) => {
            let head = content_head(state, document).await?;
            if version > head {
                return Err(ApiError::InvalidParameter {
                    name: "at_version",
                    reason: format!("is beyond the document's current version ({head})"),
                });
            }
        }
        Point::Position(position) => {
            let head = EventLog::head(&state.pool).await?;
            if position > head {
                return Err(ApiError::PositionBeyondHead {
                    requested: position,
                    head,
                });
            }
        }
        Point::Time(_) | Point::Head => {}
    }
    let started = std::time::Instant::now();
    let mut conn = state.pool.acquire().await?;
    let at = read_model::document_at(&mut conn, document.as_uuid(), point)
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    metrics::histogram!("collab_history_point_seconds").record(started.elapsed().as_secs_f64());
    Ok(at)
}

/// Headers naming the point a response describes.
pub(crate) fn point_headers(at: &AtPoint) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("x-collab-content-version", at.version.to_string()),
        ("x-collab-position", at.position.to_string()),
    ];
    if let Some(recorded_at) = at.recorded_at {
        headers.push((
            "x-collab-recorded-at",
            recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ));
    }
    headers
}

async fn authorized(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    raw: &str,
) -> Result<(DocumentId, collab_commands::access::DocumentAccess), ApiError> {
    let document = path_id("document_id", raw, DocumentId::parse)?;
    let access = state
        .document_access(document, principal, meta.link.as_ref())
        .await?;
    Ok((document, access))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryPage {
    pub(crate) entries: Vec<read_model::HistoryEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// `GET /v1/documents/{id}/history?cursor=&limit=`: edit sessions, restores, named
/// versions and metadata events, newest first.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/history",
    tag = "history",
    params(
        ("document_id" = uuid::Uuid, Path, description = "The document"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1–200, 50 by default")
    ),
    responses((status = 200, description = "A page of the history, newest first", body = HistoryPage), crate::openapi::Refusals)
)]
async fn list_history(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<HistoryPage>, ApiError> {
    let params = query_params(query.as_deref(), &["cursor", "limit"])?;
    Ok(Json(
        history_page(
            &state,
            &principal,
            &meta,
            &document,
            params.get("cursor").map(String::as_str),
            params.get("limit").map(String::as_str),
        )
        .await?,
    ))
}

/// A page of a document's history, newest first (REST and GraphQL).
pub(crate) async fn history_page(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document: &str,
    cursor: Option<&str>,
    limit: Option<&str>,
) -> Result<HistoryPage, ApiError> {
    let limit = page_limit(limit)?;
    let before = cursor.map(|c| decode_cursor('h', c)).transpose()?;
    let (document, _) = authorized(state, principal, meta, document).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_document(principal, document).await?;
    let mut entries = read_model::list(&mut *reader, document.as_uuid(), before, limit + 1).await?;
    let next_cursor = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries.last().map(|e| encode_cursor('h', e.last_position))
    } else {
        None
    };
    Ok(HistoryPage {
        entries,
        next_cursor,
    })
}

#[derive(Serialize, ToSchema)]
struct VersionList {
    versions: Vec<read_model::NamedVersion>,
}

/// `GET /v1/documents/{id}/versions`: named versions, newest content first.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/versions",
    tag = "history",
    params(("document_id" = uuid::Uuid, Path, description = "The document")),
    responses((status = 200, description = "The named versions", body = VersionList), crate::openapi::Refusals)
)]
async fn list_versions(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
) -> Result<Json<VersionList>, ApiError> {
    let (document, _) = authorized(&state, &principal, &meta, &document).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_document(&principal, document).await?;
    let versions = read_model::versions(&mut *reader, document.as_uuid()).await?;
    Ok(Json(VersionList { versions }))
}

fn version_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::InvalidParameter {
        name: "version_id",
        reason: "must be a UUID".into(),
    })
}

async fn find_version(
    state: &AppState,
    principal: &Principal,
    document: DocumentId,
    version: Uuid,
) -> Result<read_model::NamedVersion, ApiError> {
    let mut reader = state.reader_for_document(principal, document).await?;
    read_model::named_version(&mut *reader, document.as_uuid(), version)
        .await?
        .ok_or(ApiError::NotFound("version"))
}

/// A named version.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/versions/{version_id}",
    tag = "history",
    params(("document_id" = uuid::Uuid, Path, description = "The document"), ("version_id" = uuid::Uuid, Path, description = "The named version")),
    responses((status = 200, description = "The named version", body = read_model::NamedVersion), crate::openapi::Refusals)
)]
async fn get_version(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((document, version)): Path<(String, String)>,
) -> Result<Json<read_model::NamedVersion>, ApiError> {
    let version = version_id(&version)?;
    let (document, _) = authorized(&state, &principal, &meta, &document).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    Ok(Json(
        find_version(&state, &principal, document, version).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NameVersionBody {
    /// 1–100 characters, unique in the document.
    name: String,
    /// The content version to name (default: the current one).
    at_version: Option<i64>,
}

/// `POST /v1/documents/{id}/versions {name, at_version?}`: names a point of the content
/// history (default: the current version). Editors only; names are unique per document.
#[utoipa::path(
    post,
    path = "/v1/documents/{document_id}/versions",
    tag = "history",
    params(("document_id" = uuid::Uuid, Path, description = "The document")),
    request_body = NameVersionBody,
    responses(
        (status = 201, description = "Named: `{version_id, name, content_version, position}`", body = Object),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn name_version(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    ApiJson(body): ApiJson<NameVersionBody>,
) -> Result<Response, ApiError> {
    let (document, _) = authorized(&state, &principal, &meta, &document).await?;
    let name = VersionName::parse("name", &body.name).map_err(ApiError::InvalidField)?;
    let head = content_head(&state, document).await?;
    let content_version = match body.at_version {
        None => head,
        Some(v) if (0..=head).contains(&v) => v,
        Some(_) => {
            return Err(ApiError::InvalidField(collab_domain::InvalidValue::new(
                "at_version",
                format!("must be a content version from 0 to the current one ({head})"),
            )))
        }
    };
    let version_id = Uuid::now_v7();
    let committed = state
        .run_on_document(&principal, &meta, document, None, |by| {
            vec![DocumentCommand::NameVersion {
                by,
                version_id,
                name: name.clone(),
                content_version,
            }]
        })
        .await?;
    Ok(command_response(
        StatusCode::CREATED,
        committed.position,
        json!({
            "version_id": version_id,
            "name": name.as_str(),
            "content_version": content_version,
        }),
    ))
}

/// `DELETE /v1/documents/{id}/versions/{vid}` (editors).
#[utoipa::path(
    delete,
    path = "/v1/documents/{document_id}/versions/{version_id}",
    tag = "history",
    params(("document_id" = uuid::Uuid, Path, description = "The document"), ("version_id" = uuid::Uuid, Path, description = "The named version")),
    responses(
        (status = 200, description = "Deleted: `{version_id, deleted, position}`", body = Object),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn delete_version(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((document, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let document = path_id("document_id", &document, DocumentId::parse)?;
    let version_id = version_id(&version)?;
    let committed = state
        .run_on_document(&principal, &meta, document, None, |by| {
            vec![DocumentCommand::DeleteVersion { by, version_id }]
        })
        .await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        json!({ "version_id": version_id, "deleted": true }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    /// Restore the content as it was after this version...
    at_version: Option<i64>,
    /// ...or at this named version (exactly one of the two).
    version_id: Option<Uuid>,
}

/// `POST /v1/documents/{id}/history/restore {at_version | version_id}`: one update that
/// turns the current content into the content at that point, appended like any edit
/// (live sessions get it at once). History is not rewritten.
#[utoipa::path(
    post,
    path = "/v1/documents/{document_id}/history/restore",
    tag = "history",
    params(("document_id" = uuid::Uuid, Path, description = "The document")),
    request_body = RestoreBody,
    responses(
        (status = 200, description = "Restored as one forward edit: `{document_id, version, restored_from, changed, position}`", body = Object),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn restore(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    ApiJson(body): ApiJson<RestoreBody>,
) -> Result<Response, ApiError> {
    let (document, access) = authorized(&state, &principal, &meta, &document).await?;
    if !access.role.edits() {
        return Err(ApiError::Forbidden(
            "only editors and owners restore versions".into(),
        ));
    }
    let from_version = match (body.at_version, body.version_id) {
        (Some(v), None) => v,
        (None, Some(id)) => {
            state
                .reach_with(meta.min_position, read_model::NAME)
                .await?;
            find_version(&state, &principal, document, id)
                .await?
                .content_version
        }
        _ => {
            return Err(ApiError::InvalidBody(
                "give exactly one of at_version and version_id".into(),
            ))
        }
    };
    if from_version < 0 {
        return Err(ApiError::InvalidField(collab_domain::InvalidValue::new(
            "at_version",
            "must be a non-negative integer",
        )));
    }
    let target = document_at(&state, document, Point::Version(from_version)).await?;
    let (guard, _) = open_room(&state, &document.to_string(), &principal, &meta).await?;
    let current = guard.room.read(|doc| {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    });
    let target_doc = target.doc;
    let (client_id, update) =
        tokio::task::spawn_blocking(move || past::restore_update(&current, &target_doc))
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
            .map_err(|e| ApiError::internal(anyhow::anyhow!("cannot compute the restore: {e}")))?;
    // The same limits as any edit (update size, document size).
    collab_live::admission::admit(&state.live.config, guard.room.stored_bytes(), &update, true)?;
    // An update that changes nothing is two zero bytes (no clients, no deletions).
    if update == [0, 0] {
        let (version, position) = guard.room.applied();
        return Ok(command_response(
            StatusCode::OK,
            position,
            json!({ "document_id": document, "version": version, "restored_from": from_version, "changed": false }),
        ));
    }
    let (version, position) = submit_edit(
        &state,
        &guard,
        &principal,
        &meta,
        (client_id, update),
        EditOrigin::Restore { from_version },
    )
    .await?;
    Ok(command_response(
        StatusCode::OK,
        position,
        json!({ "document_id": document, "version": version, "restored_from": from_version, "changed": true }),
    ))
}

/// The root a diff or blame reads: `root` if given (it must be text or an XML fragment
/// where it exists), else the documents' only such root (`default`, TipTap's, first).
fn text_root(docs: &[&yrs::Doc], root: Option<&String>) -> Result<String, ApiError> {
    let readable = |k: &RootKind| matches!(k, RootKind::Text | RootKind::Xml);
    let kinds: Vec<(String, RootKind)> = docs.iter().flat_map(|d| past::root_kinds(d)).collect();
    if let Some(root) = root {
        if let Some((_, kind)) = kinds.iter().find(|(n, k)| n == root && !readable(k)) {
            return Err(ApiError::InvalidParameter {
                name: "root",
                reason: format!(
                    "'{root}' is a {}, not text or an XML fragment",
                    kind.as_str()
                ),
            });
        }
        return Ok(root.clone());
    }
    let mut texts: Vec<&String> = kinds
        .iter()
        .filter(|(_, k)| readable(k))
        .map(|(n, _)| n)
        .collect();
    texts.sort();
    texts.dedup();
    if texts.iter().any(|n| *n == "default") {
        return Ok("default".into());
    }
    match texts.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ApiError::InvalidParameter {
            name: "root",
            reason: "the document has no text at these points".into(),
        }),
        several => Err(ApiError::InvalidParameter {
            name: "root",
            reason: format!(
                "the document has several text roots; pass root= one of {}",
                several
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The text of `root` at `at`, attributed character by character. Waits (bounded) for
/// the history read model to have folded the point, so every item has its author.
async fn attributed(
    state: &AppState,
    principal: &Principal,
    document: DocumentId,
    at: &AtPoint,
    root: &str,
) -> Result<Vec<Attributed>, ApiError> {
    state
        .reach_with(Some(at.position), read_model::NAME)
        .await?;
    let mut reader = state.reader_for_document(principal, document).await?;
    let authors = read_model::item_authors(&mut *reader, document.as_uuid()).await?;
    let items = past::text_items(&at.doc, root);
    Ok(past::attribute(
        &items,
        |client, clock| authors.actor(client, clock).map(str::to_owned),
        |client, clock| authors.range_end(client, clock),
    ))
}

fn point_json(at: &AtPoint) -> serde_json::Value {
    json!({ "version": at.version, "position": at.position, "recorded_at": at.recorded_at })
}

/// `GET /v1/documents/{id}/diff?from=V1&to=V2[&root=NAME]&format=json|unified`.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/diff",
    tag = "history",
    params(
        ("document_id" = uuid::Uuid, Path, description = "The document"),
        ("from" = i64, Query, minimum = 0, description = "The older content version"),
        ("to" = Option<i64>, Query, minimum = 0, description = "The newer content version (default: now)"),
        ("root" = Option<String>, Query, description = "The text or XML root (default: the only one, `default` first)"),
        ("format" = Option<String>, Query, description = "`json` (default: word-grouped changes, attributed) or `unified`")
    ),
    responses(
        (status = 200, description = "The changes", content(
            (Object = "application/json"),
            (String = "text/x-diff")
        )),
        crate::openapi::Refusals
    )
)]
async fn diff(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_params(query.as_deref(), &["from", "to", "root", "format"])?;
    let from = number(
        "from",
        params.get("from").ok_or(ApiError::InvalidParameter {
            name: "from",
            reason: "is required (a content version)".into(),
        })?,
    )?;
    let to = params.get("to").map(|v| number("to", v)).transpose()?;
    let format = params.get("format").map(String::as_str).unwrap_or("json");
    if !matches!(format, "json" | "unified") {
        return Err(ApiError::InvalidParameter {
            name: "format",
            reason: "must be json or unified".into(),
        });
    }
    let (document, _) = authorized(&state, &principal, &meta, &document).await?;
    let old = document_at(&state, document, Point::Version(from)).await?;
    let new = document_at(&state, document, to.map_or(Point::Head, Point::Version)).await?;
    let root = text_root(&[&old.doc, &new.doc], params.get("root"))?;
    // The text blame reads (an XML fragment's text nodes one per line).
    let old_text = past::plain_text(&past::text_items(&old.doc, &root));
    let new_text = past::plain_text(&past::text_items(&new.doc, &root));
    if format == "unified" {
        let body = past::unified_diff(
            &old_text,
            &new_text,
            &format!("version {}", old.version),
            &format!("version {}", new.version),
        );
        return Ok(([(header::CONTENT_TYPE, "text/x-diff; charset=utf-8")], body).into_response());
    }
    let authors = attributed(&state, &principal, document, &new, &root).await?;
    let changes =
        tokio::task::spawn_blocking(move || past::text_changes(&old_text, &new_text, &authors))
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let count = |op: &str| -> usize {
        changes
            .iter()
            .filter(|c| c.op == op)
            .map(|c| c.text.chars().count())
            .sum()
    };
    Ok(Json(json!({
        "document_id": document,
        "root": root,
        "from": point_json(&old),
        "to": point_json(&new),
        "inserted": count("insert"),
        "deleted": count("delete"),
        "changes": changes,
    }))
    .into_response())
}

/// `GET /v1/documents/{id}/blame[?at_version=V|at_position=P|at_time=T][&root=NAME]`:
/// the text at that point (default: now) split by who wrote each part.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/blame",
    tag = "history",
    params(
        ("document_id" = uuid::Uuid, Path, description = "The document"),
        PointParams,
        ("root" = Option<String>, Query, description = "The text or XML root")
    ),
    responses(
        (status = 200, description = "`{document_id, root, at, authors: [{actor, characters}], spans: [{text, actor}]}`", body = Object),
        crate::openapi::Refusals
    )
)]
async fn blame(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let params = query_params(
        query.as_deref(),
        &["at_version", "at_position", "at_time", "root"],
    )?;
    let point = parse_point(&params)?.unwrap_or(Point::Head);
    let (document, _) = authorized(&state, &principal, &meta, &document).await?;
    let at = document_at(&state, document, point).await?;
    let root = text_root(&[&at.doc], params.get("root"))?;
    let spans = attributed(&state, &principal, document, &at, &root).await?;
    let mut totals: Vec<(String, usize)> = vec![];
    for span in &spans {
        let actor = span.actor.clone().unwrap_or_else(|| "unknown".into());
        let chars = span.text.chars().count();
        match totals.iter_mut().find(|(a, _)| *a == actor) {
            Some((_, n)) => *n += chars,
            None => totals.push((actor, chars)),
        }
    }
    totals.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(Json(json!({
        "document_id": document,
        "root": root,
        "at": point_json(&at),
        "authors": totals.into_iter().map(|(actor, characters)| json!({"actor": actor, "characters": characters})).collect::<Vec<_>>(),
        "spans": spans,
    })))
}
