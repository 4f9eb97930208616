//! Events for analytics consumers: the catalogue, replay (`/events`, NDJSON) and the live
//! tail (`/events/live`, Server-Sent Events) of one workspace; and for editors, the live
//! feed of one document's comment threads (`/v1/documents/{id}/events/live`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use collab_domain::comment::ThreadEvent;
use collab_domain::replay::{EventFilter, EventLine, PayloadForm};
use collab_domain::workspace::Workspace;
use collab_domain::{
    DocumentId, DomainEvent, EventCodec, InvalidValue, RecordedEvent, Scope, StreamCategory,
    WorkspaceId, WorkspaceRole,
};
use collab_store::EventLog;
use futures::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::path_id;
use crate::error::ApiError;
use crate::extract::{parse_position, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalogue))
        .routes(routes!(replay))
        .routes(routes!(live))
        .routes(routes!(document_live))
}

/// Events per page read from Postgres (and per response chunk).
const PAGE: i64 = 500;

/// How often a live tail re-checks that its reader may still read the workspace.
const RECHECK_ACCESS: Duration = Duration::from_secs(15);

/// The header a replay names the head it runs to in (without `limit`).
pub const HEAD_HEADER: &str = "x-collab-head";

/// Every event type: its schema versions, stream category, meaning, fields and the JSON
/// Schema of its `data` (no authentication needed).
#[utoipa::path(
    get,
    path = "/v1/events/catalogue",
    tag = "events",
    security(()),
    responses((status = 200, description = "`{events: [...]}`", body = Object))
)]
async fn catalogue() -> Json<Value> {
    Json(json!({ "events": DomainEvent::catalogue() }))
}

/// Who may read a workspace's history: its owners, admins and auditors, and its own
/// service accounts whose key has `scope`. Everyone else gets 404, as for any workspace
/// they cannot see. Decided on the aggregate, so a removed auditor loses access at once.
pub(crate) async fn authorize_history(
    state: &AppState,
    principal: &Principal,
    workspace: WorkspaceId,
    scope: Scope,
) -> Result<(), ApiError> {
    if principal
        .service
        .as_ref()
        .is_some_and(|s| s.workspace != workspace || !s.has(scope))
    {
        return Err(ApiError::NotFound("workspace"));
    }
    let loaded = state
        .aggregates
        .load::<Workspace>(workspace.as_uuid())
        .await?
        .aggregate;
    if let Some(service) = &principal.service {
        // Still a live account with the scope (long-lived tails re-check this).
        return match loaded.service_account(service.account) {
            Some(account) if account.scopes.contains(&scope) => Ok(()),
            _ => Err(ApiError::NotFound("workspace")),
        };
    }
    match loaded.role_of(&principal.id) {
        Some(WorkspaceRole::Owner | WorkspaceRole::Admin | WorkspaceRole::Auditor) => Ok(()),
        _ => Err(ApiError::NotFound("workspace")),
    }
}

/// The filters of a replay and a live tail, as the document shows them; they are read from
/// the raw query ([`parse_params`]), which refuses any other name.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct FilterParams {
    /// Start after this position (0: from the start).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Only these stream categories (`workspace`, `document`, `content`, `audit`);
    /// repeatable.
    category: Option<String>,
    /// Only these event types (e.g. `DocumentCreated`); repeatable.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Only this stream (e.g. `document-<id>`).
    stream: Option<String>,
    /// Only events by this actor (`user:<id>` or `service:<name>`).
    actor: Option<String>,
    /// `json` (default: `data` decoded) or `raw` (also the stored bytes, base64).
    payload: Option<String>,
}

/// The query of a replay or a live tail.
pub(crate) struct ReplayParams {
    pub after: i64,
    pub limit: Option<i64>,
    pub filter: EventFilter,
    pub form: PayloadForm,
}

fn invalid(value: InvalidValue) -> ApiError {
    ApiError::InvalidParameter {
        name: value.field,
        reason: value.reason,
    }
}

/// Parses `after`, `limit` (when `limit_allowed`), `category`, `type`, `stream`, `actor`
/// and `payload`; anything else is a 400 naming it.
pub(crate) fn parse_params(
    raw: Option<&str>,
    limit_allowed: bool,
) -> Result<ReplayParams, ApiError> {
    let mut params = ReplayParams {
        after: 0,
        limit: None,
        filter: EventFilter::default(),
        form: PayloadForm::Json,
    };
    let number = |name: &'static str, value: &str, min: i64| {
        value
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= min)
            .ok_or_else(|| ApiError::InvalidParameter {
                name,
                reason: format!("must be an integer of at least {min}"),
            })
    };
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "after" => params.after = number("after", &value, 0)?,
            "limit" if limit_allowed => params.limit = Some(number("limit", &value, 1)?),
            "payload" => params.form = PayloadForm::parse(&value).map_err(invalid)?,
            "category" | "type" | "stream" | "actor" => {
                params.filter.add(&name, &value).map_err(invalid)?
            }
            _ => {
                return Err(ApiError::InvalidParameter {
                    name: "query",
                    reason: format!(
                        "unknown parameter '{name}' (expected after, {}category, type, stream, actor, payload)",
                        if limit_allowed { "limit, " } else { "" }
                    ),
                })
            }
        }
    }
    Ok(params)
}

/// `GET /v1/workspaces/{ws}/events`: the workspace's events after `after`, in position
/// order, as NDJSON, streamed page by page (memory stays bounded whatever the size), up
/// to `limit` events or the head as of the request (`X-Collab-Head`).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/events",
    tag = "events",
    params(
        ("workspace_id" = uuid::Uuid, Path, description = "The workspace"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "At most this many events"),
        FilterParams
    ),
    responses(
        (status = 200, description = "One JSON event per line, in position order; `X-Collab-Head` names the head it runs to", content_type = "application/x-ndjson", body = String),
        crate::openapi::Refusals
    )
)]
async fn replay(
    State(state): State<AppState>,
    principal: Principal,
    Path(workspace_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let workspace = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let params = parse_params(query.as_deref(), true)?;
    authorize_history(&state, &principal, workspace, Scope::EventsRead).await?;
    let head = EventLog::head(&state.pool).await?;
    let lines = event_lines(state.pool.clone(), workspace, params, head);
    let mut response = Body::from_stream(lines).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(HEAD_HEADER, HeaderValue::from(head));
    Ok(response)
}

/// The workspace's events matching `params` up to `head`, as NDJSON chunks of one page
/// each. A database error ends the body early: the consumer resumes after the last
/// position it got.
pub(crate) fn event_lines(
    pool: sqlx::PgPool,
    workspace: WorkspaceId,
    params: ReplayParams,
    head: i64,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let form = params.form;
    let pages = EventLog::pages(
        pool,
        Some(workspace),
        params.filter,
        params.after,
        head,
        PAGE,
        params.limit,
    );
    pages.map(move |page| {
        let events = page.map_err(std::io::Error::other)?;
        metrics::counter!("collab_replay_events_total", "route" => "replay")
            .increment(events.len() as u64);
        ndjson_chunk(&events, form)
    })
}

/// Events as NDJSON lines, one chunk.
pub(crate) fn ndjson_chunk(
    events: &[RecordedEvent],
    form: PayloadForm,
) -> Result<Bytes, std::io::Error> {
    let mut chunk = Vec::with_capacity(events.len() * 256);
    for event in events {
        serde_json::to_writer(&mut chunk, &EventLine::new(event, form))
            .map_err(std::io::Error::other)?;
        chunk.push(b'\n');
    }
    Ok(Bytes::from(chunk))
}

/// `GET /v1/workspaces/{ws}/events/live`: Server-Sent Events, `id:` = position. Starts
/// after `Last-Event-ID` (or `?after=`), catches up from Postgres, then follows new
/// events with no gap and no duplicate at the hand-over. A subscriber that falls more
/// than the tail's buffer behind gets `event: lagged` with the position to resume from,
/// and the stream ends.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/events/live",
    tag = "events",
    params(
        ("workspace_id" = uuid::Uuid, Path, description = "The workspace"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this position"),
        FilterParams
    ),
    responses(
        (status = 200, description = "Server-Sent Events without end: `id:` is the position, `data:` one event line; `event: lagged` (with the position to resume from) ends a stream that fell too far behind", content_type = "text/event-stream", body = String),
        crate::openapi::Refusals
    )
)]
async fn live(
    State(state): State<AppState>,
    principal: Principal,
    Path(workspace_id): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let workspace = path_id("workspace_id", &workspace_id, WorkspaceId::parse)?;
    let mut params = parse_params(query.as_deref(), false)?;
    resume_after(&headers, &mut params)?;
    authorize_history(&state, &principal, workspace, Scope::EventsRead).await?;
    Ok(sse(Tail::new(state, principal, workspace, None, params)))
}

/// `Last-Event-ID`, when sent, is where the stream resumes (over `?after=`).
fn resume_after(headers: &HeaderMap, params: &mut ReplayParams) -> Result<(), ApiError> {
    if let Some(last) = last_event_id(headers)? {
        params.after = last;
    }
    Ok(())
}

/// The position in a `Last-Event-ID` header (every live feed resumes from one).
pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|last| parse_position("Last-Event-ID", last.to_str().unwrap_or_default()))
        .transpose()
}

fn sse(tail: Tail) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok(event), tail))
    });
    Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    )
}

/// `GET /v1/documents/{id}/events/live`: the document's comment-thread events as they are
/// committed (threads opened, comments added, edited, deleted, resolutions, reactions), as
/// Server-Sent Events like the workspace's live tail: `id:` is the position, `data:` the
/// event line; `Last-Event-ID` (or `?after=`) resumes. Anyone who can read the document;
/// the stream ends with `event: revoked` once they no longer can.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/events/live",
    tag = "comments",
    params(
        ("document_id" = uuid::Uuid, Path, description = "The document"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this position"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Start after this position (0 by default: from the first)"),
        ("type" = Option<String>, Query, description = "Only these event types (comma-separated)")
    ),
    responses(
        (status = 200, description = "Server-Sent Events without end: `id:` is the position, `data:` one event line", content_type = "text/event-stream", body = String),
        crate::openapi::Refusals
    )
)]
async fn document_live(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let document = path_id("document_id", &document, DocumentId::parse)?;
    let mut params = parse_params(query.as_deref(), false)?;
    if !params.filter.categories.is_empty() || params.filter.stream.is_some() {
        return Err(ApiError::InvalidParameter {
            name: "query",
            reason: "a document's feed is its comment threads: no category or stream filter".into(),
        });
    }
    params.filter.categories = vec![StreamCategory::Thread];
    resume_after(&headers, &mut params)?;
    let access = state
        .document_access(document, &principal, meta.link.as_ref())
        .await?;
    let audience = Audience::Document {
        id: document,
        link: meta.link,
    };
    Ok(sse(Tail::new(
        state,
        principal,
        access.workspace,
        Some(audience),
        params,
    )))
}

/// Who a tail is for besides the workspace's event readers.
#[derive(Clone, Copy)]
enum Audience {
    /// The readers of one document: its threads' events only.
    Document {
        id: DocumentId,
        link: Option<collab_commands::access::LinkKey>,
    },
}

enum Phase {
    /// Reading the log from Postgres; subscribed once near the head.
    CatchUp(Option<Receiver<Arc<RecordedEvent>>>),
    Live(Receiver<Arc<RecordedEvent>>),
    Done,
}

struct Tail {
    /// The last position sent (what `Last-Event-ID` resumes from).
    delivered: i64,
    /// Every global position up to here has been considered (sent or filtered out).
    scanned: i64,
    pending: VecDeque<Arc<RecordedEvent>>,
    phase: Phase,
    recheck_at: tokio::time::Instant,
    workspace: WorkspaceId,
    audience: Option<Audience>,
    params: ReplayParams,
    principal: Principal,
    state: AppState,
}

impl Tail {
    fn new(
        state: AppState,
        principal: Principal,
        workspace: WorkspaceId,
        audience: Option<Audience>,
        params: ReplayParams,
    ) -> Self {
        Self {
            delivered: params.after,
            scanned: params.after,
            pending: VecDeque::new(),
            phase: Phase::CatchUp(None),
            recheck_at: tokio::time::Instant::now() + RECHECK_ACCESS,
            workspace,
            audience,
            params,
            principal,
            state,
        }
    }

    fn wanted(&self, event: &RecordedEvent) -> bool {
        event.metadata.workspace_id == self.workspace
            && self.params.filter.matches(event)
            && match self.audience {
                None => true,
                Some(Audience::Document { id, .. }) => {
                    ThreadEvent::decode_recorded(event).is_ok_and(|e| e.document_id() == id)
                }
            }
    }

    /// Whether the reader may still read what the tail shows.
    async fn still_allowed(&self) -> bool {
        match self.audience {
            None => authorize_history(
                &self.state,
                &self.principal,
                self.workspace,
                Scope::EventsRead,
            )
            .await
            .is_ok(),
            Some(Audience::Document { id, link }) => self
                .state
                .document_access(id, &self.principal, link.as_ref())
                .await
                .is_ok(),
        }
    }

    fn line(&self, event: &RecordedEvent) -> Event {
        let line = EventLine::new(event, self.params.form);
        Event::default()
            .id(event.position.to_string())
            .data(serde_json::to_string(&line).expect("lines always serialize"))
    }

    fn end(&mut self, kind: &str, body: Value) -> Option<Event> {
        self.phase = Phase::Done;
        Some(
            Event::default()
                .id(self.delivered.to_string())
                .event(kind)
                .data(body.to_string()),
        )
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if matches!(self.phase, Phase::Done) && self.pending.is_empty() {
                return None;
            }
            if self.state.closing.is_cancelled() {
                return self.end(
                    "closing",
                    json!({ "resume_after": self.delivered,
                            "message": "the server is restarting; reconnect with Last-Event-ID" }),
                );
            }
            if tokio::time::Instant::now() >= self.recheck_at {
                self.recheck_at = tokio::time::Instant::now() + RECHECK_ACCESS;
                if !self.still_allowed().await {
                    self.pending.clear();
                    return self.end(
                        "revoked",
                        json!({ "message": "access to these events ended" }),
                    );
                }
            }
            if let Some(event) = self.pending.pop_front() {
                self.delivered = event.position;
                metrics::counter!("collab_replay_events_total", "route" => "live").increment(1);
                return Some(self.line(&event));
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::CatchUp(receiver) => match self.catch_up(receiver).await {
                    Ok(phase) => self.phase = phase,
                    Err(error) => {
                        tracing::warn!(%error, "live tail: reading the log failed");
                        return self.end(
                            "error",
                            json!({ "resume_after": self.delivered,
                                    "message": "reading the log failed; reconnect with Last-Event-ID" }),
                        );
                    }
                },
                Phase::Live(mut receiver) => {
                    let closing = self.state.closing.clone();
                    let received = tokio::select! {
                        received = tokio::time::timeout_at(self.recheck_at, receiver.recv()) => received,
                        _ = closing.cancelled() => {
                            // Ends the stream at the top of the loop.
                            self.phase = Phase::Live(receiver);
                            continue;
                        }
                    };
                    match received {
                        // Time to re-check access (at the top of the loop).
                        Err(_) => self.phase = Phase::Live(receiver),
                        Ok(Ok(event)) => {
                            if event.position <= self.scanned {
                                self.phase = Phase::Live(receiver);
                            } else if event.position == self.scanned + 1 {
                                self.scanned = event.position;
                                if self.wanted(&event) {
                                    self.pending.push_back(event);
                                }
                                self.phase = Phase::Live(receiver);
                            } else {
                                // The follower skipped ahead of us: read the hole from
                                // the log, then follow again.
                                self.phase = Phase::CatchUp(Some(receiver));
                            }
                        }
                        Ok(Err(RecvError::Lagged(missed))) => {
                            metrics::counter!("collab_live_tail_lagged_total").increment(1);
                            return self.end(
                                "lagged",
                                json!({
                                    "resume_after": self.delivered,
                                    "missed_at_least": missed,
                                    "message": "this consumer fell too far behind; reconnect with Last-Event-ID to resume",
                                }),
                            );
                        }
                        Ok(Err(RecvError::Closed)) => return None,
                    }
                }
            }
        }
    }

    /// Reads one page from the log. Near the head, subscribes to the process's tail
    /// first and reads up to the head once more, so nothing committed in between is
    /// missed; events the subscription repeats are skipped by position.
    async fn catch_up(
        &mut self,
        receiver: Option<Receiver<Arc<RecordedEvent>>>,
    ) -> Result<Phase, collab_store::StoreError> {
        let head = EventLog::head(&self.state.pool).await?;
        let events = EventLog::read_workspace(
            &self.state.pool,
            self.workspace,
            &self.params.filter,
            self.scanned,
            head + 1,
            PAGE,
        )
        .await?;
        let full = events.len() as i64 == PAGE;
        self.scanned = match (full, events.last()) {
            (true, Some(last)) => last.position,
            _ => head.max(self.scanned),
        };
        let wanted: Vec<Arc<RecordedEvent>> = events
            .into_iter()
            .filter(|e| self.audience.is_none() || self.wanted(e))
            .map(Arc::new)
            .collect();
        self.pending.extend(wanted);
        Ok(match (full, receiver) {
            // Far from the head: follow again once near it (no buffer fills meanwhile).
            (true, _) => Phase::CatchUp(None),
            (false, None) => Phase::CatchUp(Some(self.state.tail.subscribe())),
            (false, Some(receiver)) => Phase::Live(receiver),
        })
    }
}
