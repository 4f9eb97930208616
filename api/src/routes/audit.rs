//! For auditors: the audit trail, online verification of the hash chains, and the signed
//! export that `collab audit verify --file` checks with no server and no database.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use collab_domain::audit::{Checkpoint, Report, SealFacts, StreamHead};
use collab_domain::replay::{EventFilter, PayloadForm};
use collab_domain::{Actor, DomainEvent, RecordedEvent, Scope, WorkspaceId};
use collab_projections::audit::{self as read_model, AuditEntry, AuditQuery};
use collab_store::EventLog;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::events::{authorize_history, ndjson_chunk};
use super::path_id;
use crate::error::ApiError;
use crate::extract::{Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trail))
        .routes(routes!(verify))
        .routes(routes!(export))
}

#[derive(serde::Serialize, ToSchema)]
struct Trail {
    entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    next_cursor: Option<i64>,
}

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

fn bad(name: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidParameter {
        name,
        reason: reason.into(),
    }
}

fn parse_time(name: &'static str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad(name, "must be an RFC 3339 time, e.g. 2026-12-02T09:00:00Z"))
}

fn parse_query(raw: Option<&str>) -> Result<AuditQuery, ApiError> {
    let mut query = AuditQuery {
        limit: DEFAULT_LIMIT,
        ..AuditQuery::default()
    };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "actor" => {
                // `alice` is short for `user:alice`.
                let actor = if value.contains(':') {
                    value.to_string()
                } else {
                    format!("user:{value}")
                };
                Actor::parse(&actor).map_err(|e| bad("actor", e.reason))?;
                query.actor = Some(actor);
            }
            "type" => {
                if !DomainEvent::is_known_type(&value) {
                    return Err(bad("type", "is not an event type of the catalogue"));
                }
                query.event_type = Some(value.to_string());
            }
            "document" => {
                query.document = Some(
                    uuid::Uuid::parse_str(&value).map_err(|_| bad("document", "must be a UUID"))?,
                )
            }
            "from" => query.from = Some(parse_time("from", &value)?),
            "to" => query.to = Some(parse_time("to", &value)?),
            "cursor" => {
                query.before = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|p: &i64| *p > 0)
                        .ok_or_else(|| bad("cursor", "must be a next_cursor this route returned"))?,
                )
            }
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_LIMIT).contains(l))
                    .ok_or_else(|| bad("limit", format!("must be 1 to {MAX_LIMIT}")))?
            }
            "min_position" => {}
            _ => {
                return Err(bad(
                    "query",
                    format!(
                        "unknown parameter '{name}' (expected actor, type, document, from, to, cursor, limit, min_position)"
                    ),
                ))
            }
        }
    }
    Ok(query)
}

/// `GET /v1/workspaces/{ws}/audit`: newest first, edits grouped per actor, document and
/// burst; `next_cursor` pages on.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/audit",
    tag = "audit",
    params(
        ("workspace_id" = uuid::Uuid, Path, description = "The workspace"),
        ("actor" = Option<String>, Query, description = "Only this actor (`alice` is short for `user:alice`)"),
        ("type" = Option<String>, Query, description = "Only this event type of the catalogue"),
        ("document" = Option<uuid::Uuid>, Query, description = "Only this document"),
        ("from" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Recorded at or after (RFC 3339)"),
        ("to" = Option<chrono::DateTime<chrono::Utc>>, Query, description = "Recorded before (RFC 3339)"),
        ("cursor" = Option<i64>, Query, minimum = 1, description = "`next_cursor` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1–500, 50 by default"),
        ("min_position" = Option<i64>, Query, minimum = 0, description = "Wait until the audit read model has reached this position")
    ),
    responses((status = 200, description = "A page of the trail, newest first", body = Trail), crate::openapi::Refusals)
)]
async fn trail(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Trail>, ApiError> {
    let workspace = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let query = parse_query(raw.as_deref())?;
    authorize_history(&state, &principal, workspace, Scope::AuditRead).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_workspace(workspace).await?;
    let entries: Vec<AuditEntry> = read_model::list(&mut *reader, workspace, &query).await?;
    let next_cursor = (entries.len() as i64 == query.limit)
        .then(|| entries.last().map(|e| e.position))
        .flatten();
    Ok(Json(Trail {
        entries,
        next_cursor,
    }))
}

/// `GET /v1/workspaces/{ws}/audit/verify`: recomputes the workspace's chains, the
/// position sequence and its checkpoints.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/audit/verify",
    tag = "audit",
    params(("workspace_id" = uuid::Uuid, Path, description = "The workspace")),
    responses((status = 200, description = "What verification found", body = Report), crate::openapi::Refusals)
)]
async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    Path(workspace_id): Path<String>,
) -> Result<Json<Report>, ApiError> {
    let workspace = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    authorize_history(&state, &principal, workspace, Scope::AuditRead).await?;
    let trusted = state.audit_key.as_ref().map(|k| k.verifying_key());
    let started = std::time::Instant::now();
    let report = collab_projections::verify::verify(&state.pool, Some(workspace), trusted).await?;
    metrics::histogram!("collab_audit_verify_seconds").record(started.elapsed().as_secs_f64());
    Ok(Json(report))
}

/// `GET /v1/workspaces/{ws}/audit/export`: every event of the workspace (checkpoints
/// included) as NDJSON lines carrying both `data` and the raw `payload`, then one last
/// line `{"seal": …}`: a checkpoint signed now over the heads of exactly what was
/// exported, so a truncated or edited file fails offline verification.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/audit/export",
    tag = "audit",
    params(("workspace_id" = uuid::Uuid, Path, description = "The workspace")),
    responses(
        (status = 200, description = "NDJSON: every event with `data` and its raw `payload`, checkpoints, then `{\"seal\": ...}`", content_type = "application/x-ndjson", body = String),
        crate::openapi::Refusals
    )
)]
async fn export(
    State(state): State<AppState>,
    principal: Principal,
    Path(workspace_id): Path<String>,
) -> Result<Response, ApiError> {
    let workspace = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    authorize_history(&state, &principal, workspace, Scope::AuditRead).await?;
    let head = EventLog::head(&state.pool).await?;
    let body = export_lines(state.pool.clone(), workspace, head, state.audit_key.clone());
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"audit-{workspace}-{head}.ndjson\""
        ))
        .expect("ids and digits are a valid header value"),
    );
    Ok(response)
}

const EXPORT_PAGE: i64 = 500;

/// What the seal of an export covers, gathered while its pages go out.
#[derive(Default)]
struct Sealing {
    heads: BTreeMap<String, (i64, [u8; 32])>,
    events: u64,
    last_position: i64,
}

impl Sealing {
    fn saw(&mut self, events: &[RecordedEvent]) {
        for event in events {
            self.events += 1;
            self.last_position = event.position;
            // The seal covers every stream exported, checkpoints included.
            self.heads.insert(
                event.stream_id.to_string(),
                (event.stream_version, event.hash),
            );
        }
    }

    /// The last line: the seal signed now, or why there is none.
    fn line(&self, workspace: WorkspaceId, head: i64, key: Option<&SigningKey>) -> Value {
        let heads: Vec<StreamHead> = self
            .heads
            .iter()
            .map(|(id, (version, hash))| StreamHead {
                stream_id: id.clone(),
                version: *version,
                hash: *hash,
            })
            .collect();
        match key {
            Some(key) => json!({
                "seal": Checkpoint::sign(
                    key,
                    workspace.as_uuid(),
                    head,
                    &heads,
                    Some(SealFacts { events: self.events, last_position: self.last_position }),
                ),
                "events_to": head,
            }),
            None => json!({
                "seal": null,
                "reason": "the server has no audit signing key (COLLAB_AUDIT_SIGNING_KEY)",
            }),
        }
    }
}

fn export_lines(
    pool: sqlx::PgPool,
    workspace: WorkspaceId,
    head: i64,
    key: Option<Arc<SigningKey>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let pages = EventLog::pages(
        pool,
        Some(workspace),
        EventFilter::default(),
        0,
        head,
        EXPORT_PAGE,
        None,
    )
    .boxed();
    futures::stream::try_unfold(
        (pages, Some(Sealing::default())),
        move |(mut pages, sealing)| {
            let key = key.clone();
            async move {
                let Some(mut sealing) = sealing else {
                    return Ok(None);
                };
                match pages.next().await {
                    Some(page) => {
                        let events = page.map_err(std::io::Error::other)?;
                        sealing.saw(&events);
                        let chunk = ndjson_chunk(&events, PayloadForm::Both)?;
                        Ok(Some((chunk, (pages, Some(sealing)))))
                    }
                    None => {
                        let mut line = sealing.line(workspace, head, key.as_deref()).to_string();
                        line.push('\n');
                        Ok(Some((Bytes::from(line), (pages, None))))
                    }
                }
            }
        },
    )
    .boxed()
}
