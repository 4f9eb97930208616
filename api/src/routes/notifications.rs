//! `/v1/me/notifications…`: a person's in-app notifications (mentions, replies, shares,
//! resolutions), what they read, their preferences, and a live feed. The `notifications`
//! read model holds them; reading one is an event of the person's own stream, so a rebuild
//! keeps what was read.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use collab_domain::notification::{NotificationKind, NotificationPreferences};
use collab_domain::profile::{profile_id, Profile, ProfileCommand};
use collab_domain::{DocumentId, UserId, WorkspaceId};
use collab_projections::notifications as read_model;
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{command_response, decode_cursor, encode_cursor, page_limit, run};
use crate::error::ApiError;
use crate::extract::{parse_position, ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
        .routes(routes!(live))
        .routes(routes!(get_preferences, put_preferences))
}

/// Notifications are people's own: a service account has none.
fn person(principal: &Principal) -> Result<&UserId, ApiError> {
    principal.person("notifications")
}

/// Who caused a notification.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationActor {
    #[schema(value_type = UserId)]
    pub(crate) id: String,
    /// Their display name; null: none (or erased).
    pub(crate) name: Option<String>,
}

/// One notification.
#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationView {
    pub(crate) id: Uuid,
    pub(crate) kind: NotificationKind,
    /// Read (in any of the person's apps).
    pub(crate) read: bool,
    pub(crate) read_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
    /// The log position of what caused it (the live feed's `id:`).
    pub(crate) position: i64,
    #[schema(value_type = WorkspaceId)]
    pub(crate) workspace_id: Uuid,
    #[schema(value_type = DocumentId)]
    pub(crate) document_id: Uuid,
    /// The document's title now.
    pub(crate) document_title: String,
    /// The thread (mentions, replies, resolutions).
    pub(crate) thread_id: Option<Uuid>,
    /// The comment (mentions, replies).
    pub(crate) comment_id: Option<Uuid>,
    /// The start of the comment's text (at most 280 characters), as it reads now.
    pub(crate) excerpt: Option<String>,
    pub(crate) actor: NotificationActor,
    /// For a share: the role given.
    pub(crate) role: Option<String>,
    pub(crate) email: EmailDelivery,
}

/// How a notification is emailed.
#[derive(Serialize, ToSchema)]
pub(crate) struct EmailDelivery {
    /// `immediate`, `digest` or `off` (as your preferences said when it was caused).
    pub(crate) mode: String,
    /// Absent until the mailer takes it on; then `sending`, `sent`, `retry` (the server did
    /// not take it; tried again later), `failed`, `unknown` (broken off mid-send: never
    /// sent again), `skipped_read` (read in the app first), `skipped` (its comment or
    /// document went away) or `no_address` (no email in your profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sent_at: Option<DateTime<Utc>>,
}

impl From<read_model::NotificationRow> for NotificationView {
    fn from(row: read_model::NotificationRow) -> Self {
        let kind = NotificationKind::ALL
            .into_iter()
            .find(|k| k.as_str() == row.kind)
            .unwrap_or(NotificationKind::Mention);
        Self {
            id: row.notification_id,
            kind,
            read: row.read_at.is_some(),
            read_at: row.read_at,
            created_at: row.created_at,
            position: row.position,
            workspace_id: row.workspace_id,
            document_id: row.document_id,
            document_title: row.document_title,
            thread_id: row.thread_id,
            comment_id: row.comment_id,
            excerpt: row.comment_body.map(super::excerpt),
            actor: NotificationActor {
                id: row.actor,
                name: row.actor_name,
            },
            role: row.role,
            email: EmailDelivery {
                mode: row.email,
                state: row.email_state,
                sent_at: row.email_sent_at,
            },
        }
    }
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only unread ones (`true`); all by default.
    #[param(value_type = Option<bool>)]
    pub(crate) unread: Option<String>,
    /// 1–200, 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub(crate) limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct NotificationPage {
    pub(crate) notifications: Vec<NotificationView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub(crate) next_cursor: Option<String>,
    /// How many of your notifications are unread (all of them, not just this page).
    pub(crate) unread_count: i64,
}

/// Your notifications, newest first: about documents you can still read, and the kinds
/// you have on in the app.
#[utoipa::path(
    get,
    path = "/v1/me/notifications",
    tag = "notifications",
    params(ListParams),
    responses((status = 200, description = "A page of notifications", body = NotificationPage), crate::openapi::Refusals)
)]
async fn list_notifications(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Query(params): Query<ListParams>,
) -> Result<Json<NotificationPage>, ApiError> {
    Ok(Json(page(&state, &principal, &meta, params).await?))
}

/// A page of the caller's notifications (REST and GraphQL).
pub(crate) async fn page(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    params: ListParams,
) -> Result<NotificationPage, ApiError> {
    person(principal)?;
    let limit = page_limit(params.limit.as_deref())?;
    let unread = match params.unread.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::InvalidParameter {
                name: "unread",
                reason: "must be true or false".into(),
            })
        }
    };
    let before = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor('n', c))
        .transpose()?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_with_shares(principal).await?;
    let mut rows = read_model::list(&mut reader, unread, before, None, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|n| encode_cursor('n', n.position))
    } else {
        None
    };
    let unread_count = read_model::unread_count(&mut reader, None).await?;
    Ok(NotificationPage {
        notifications: rows.into_iter().map(NotificationView::from).collect(),
        next_cursor,
        unread_count,
    })
}

/// What to mark read: some notifications, or all of them.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReadBody {
    /// These notifications (1–500 of yours).
    #[serde(default)]
    ids: Option<Vec<Uuid>>,
    /// Every notification you have now.
    #[serde(default)]
    all: Option<bool>,
}

#[derive(Serialize, ToSchema)]
struct ReadAnswer {
    /// How many of your notifications are still unread.
    unread_count: i64,
}

/// The most notifications one request marks read by id.
const MAX_READ_IDS: usize = 500;

/// Marks notifications read: `{"ids": [...]}` or `{"all": true}`. Ids that are not your
/// notifications are a 404 and nothing is marked. Answers once the read model has it.
#[utoipa::path(
    post,
    path = "/v1/me/notifications/read",
    tag = "notifications",
    request_body = ReadBody,
    responses(
        (status = 200, description = "Marked read", body = crate::openapi::Committed<ReadAnswer>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn mark_read(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiJson(body): ApiJson<ReadBody>,
) -> Result<Response, ApiError> {
    let (position, unread_count) = mark(&state, &principal, &meta, body.ids, body.all).await?;
    Ok(command_response(
        StatusCode::OK,
        position,
        ReadAnswer { unread_count },
    ))
}

/// Marks the caller's notifications read (REST and GraphQL); the command's position and
/// the unread count once the read model has it.
pub(crate) async fn mark(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    ids: Option<Vec<Uuid>>,
    all: Option<bool>,
) -> Result<(i64, i64), ApiError> {
    let user = person(principal)?.clone();
    let invalid = |reason: &str| {
        ApiError::InvalidField(collab_domain::InvalidValue::new("ids", reason.to_owned()))
    };
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let command = match (ids, all) {
        (Some(ids), None | Some(false)) => {
            if ids.is_empty() || ids.len() > MAX_READ_IDS {
                return Err(invalid("must name 1 to 500 notifications"));
            }
            // With shares: a notification about a document shared with the person, in a
            // workspace they are not a member of, is theirs too (as the list shows it).
            let mut reader = state.reader_with_shares(principal).await?;
            if !read_model::not_theirs(&mut reader, &ids).await?.is_empty() {
                return Err(ApiError::NotFound("notification"));
            }
            ProfileCommand::MarkNotificationsRead {
                user_id: user.clone(),
                ids,
            }
        }
        (None, Some(true)) => {
            let mut reader = state.reader_with_shares(principal).await?;
            let up_to = read_model::newest(&mut reader).await?;
            ProfileCommand::MarkAllNotificationsRead {
                user_id: user.clone(),
                up_to,
            }
        }
        _ => return Err(invalid("send either ids or \"all\": true")),
    };
    let committed =
        run::<Profile>(state, principal, meta, profile_id(&user), command, None).await?;
    state
        .reach_with(Some(committed.position), read_model::NAME)
        .await?;
    let mut reader = state.reader_with_shares(principal).await?;
    let unread_count = read_model::unread_count(&mut reader, None).await?;
    Ok((committed.position, unread_count))
}

/// Your notification preferences (the defaults until you set them).
#[utoipa::path(
    get,
    path = "/v1/me/notification-preferences",
    tag = "notifications",
    responses((status = 200, description = "Your preferences", body = NotificationPreferences), crate::openapi::Refusals)
)]
async fn get_preferences(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
) -> Result<Json<NotificationPreferences>, ApiError> {
    person(&principal)?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader(&principal).await?;
    Ok(Json(read_model::preferences(&mut reader).await?))
}

/// Sets your notification preferences (every kind, and the digest's interval). They apply
/// to notifications caused from then on.
#[utoipa::path(
    put,
    path = "/v1/me/notification-preferences",
    tag = "notifications",
    request_body = NotificationPreferences,
    responses(
        (status = 200, description = "Set", body = crate::openapi::Committed<PreferencesSet>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn put_preferences(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiJson(preferences): ApiJson<NotificationPreferences>,
) -> Result<Response, ApiError> {
    let user = person(&principal)?.clone();
    let command = ProfileCommand::SetNotificationPreferences {
        user_id: user.clone(),
        preferences,
    };
    let committed =
        run::<Profile>(&state, &principal, &meta, profile_id(&user), command, None).await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        PreferencesSet { preferences },
    ))
}

/// The preferences as set.
#[derive(Serialize, ToSchema)]
struct PreferencesSet {
    preferences: NotificationPreferences,
}

/// Wakes the live feeds of people who were just told something: one `LISTEN` per process
/// on the channel the `notifications` fold notifies, fanned out to the feeds in memory.
#[derive(Clone)]
pub struct Wakeups {
    sender: broadcast::Sender<Arc<str>>,
}

impl Wakeups {
    /// Listens until `stop`; reconnects after a lost connection (the feeds look again
    /// every 15 s anyway, so nothing waits long for a lost wake-up).
    pub fn start(pool: PgPool, stop: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(1024);
        let wakeups = Self {
            sender: sender.clone(),
        };
        tokio::spawn(async move {
            loop {
                let listener = async {
                    let mut listener = PgListener::connect_with(&pool).await?;
                    listener.listen(read_model::CHANNEL).await?;
                    loop {
                        let notification = listener.recv().await?;
                        let _ = sender.send(Arc::from(notification.payload()));
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), sqlx::Error>(())
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    result = listener => {
                        if let Err(error) = result {
                            tracing::warn!(%error, "notification wake-ups: listening failed; again in 1 s");
                        }
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        wakeups
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.sender.subscribe()
    }
}

/// How often a feed looks again without a wake-up (and re-reads the unread count).
const FEED_RECHECK: Duration = Duration::from_secs(15);

/// How soon a feed looks again when the read models it joins were behind.
const FEED_SOON: Duration = Duration::from_millis(250);

/// `GET /v1/me/notifications/live`: your new notifications as they happen, as Server-Sent
/// Events: `event: notification` with `id:` its position and the notification as `data:`;
/// `event: unread` with `{"unread_count": n}` at the start and whenever it changes (read
/// in another tab too). `Last-Event-ID` (or `?after=`) resumes after a position; without
/// either, the feed starts with what comes next.
#[utoipa::path(
    get,
    path = "/v1/me/notifications/live",
    tag = "notifications",
    params(
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this position"),
        ("after" = Option<i64>, Query, minimum = 0, description = "Start after this position (default: from now)")
    ),
    responses(
        (status = 200, description = "Server-Sent Events without end", content_type = "text/event-stream", body = String),
        crate::openapi::Refusals
    )
)]
async fn live(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let user = person(&principal)?.clone();
    let mut after = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "after" => after = Some(parse_position("after", &value)?),
            _ => {
                return Err(ApiError::InvalidParameter {
                    name: "query",
                    reason: format!("unknown parameter '{key}'"),
                })
            }
        }
    }
    if let Some(last) = super::events::last_event_id(&headers)? {
        after = Some(last);
    }
    let wakeups = state.notification_wakeups.subscribe();
    let delivered = match after {
        Some(after) => after,
        None => {
            let mut reader = state.reader(&principal).await?;
            read_model::newest(&mut reader).await?
        }
    };
    let feed = Feed {
        state,
        principal,
        user,
        wakeups,
        delivered,
        unread: None,
        pending: VecDeque::new(),
        done: false,
        soon: false,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

struct Feed {
    state: AppState,
    principal: Principal,
    user: UserId,
    wakeups: broadcast::Receiver<Arc<str>>,
    delivered: i64,
    unread: Option<i64>,
    pending: VecDeque<Event>,
    done: bool,
    /// Look again soon: the read models joined were behind.
    soon: bool,
}

/// Notifications a feed reads per look.
const FEED_PAGE: i64 = 100;

impl Feed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if self.state.closing.is_cancelled() {
                self.done = true;
                return Some(
                    Event::default().event("closing").data(
                        json!({ "resume_after": self.delivered,
                            "message": "the server is restarting; reconnect with Last-Event-ID" })
                        .to_string(),
                    ),
                );
            }
            match self.look().await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "notification feed: reading failed");
                    self.done = true;
                    return Some(Event::default().event("error").data(
                        json!({ "resume_after": self.delivered,
                                "message": "reading notifications failed; reconnect with Last-Event-ID" })
                        .to_string(),
                    ));
                }
            }
            self.wait().await;
        }
    }

    /// Reads what is new; whether there is something to send.
    async fn look(&mut self) -> Result<bool, ApiError> {
        // A notification is shown with what it points to (the comment's text, the
        // document's title), which other read models fold: show only what this one has
        // folded, once they have folded as far (if they are far behind, look again soon:
        // shown early, a notification would lack its text, or be hidden for good).
        let folded = read_model::folded_to(&self.state.pool).await?;
        if folded > self.delivered {
            match self.state.reach(Some(folded)).await {
                Ok(()) => {}
                Err(ApiError::NotYetConsistent { .. }) => {
                    self.soon = true;
                    return Ok(false);
                }
                Err(error) => return Err(error),
            }
        }
        let mut reader = self.state.reader_with_shares(&self.principal).await?;
        let rows = read_model::list(
            &mut reader,
            false,
            Some(folded + 1),
            Some(self.delivered),
            FEED_PAGE,
        )
        .await?;
        let unread = read_model::unread_count(&mut reader, Some(folded + 1)).await?;
        drop(reader);
        for row in rows {
            self.delivered = self.delivered.max(row.position);
            let view = NotificationView::from(row);
            self.pending.push_back(
                Event::default()
                    .event("notification")
                    .id(view.position.to_string())
                    .data(serde_json::to_string(&view).expect("views serialize")),
            );
        }
        if self.unread != Some(unread) {
            self.unread = Some(unread);
            self.pending.push_back(
                Event::default()
                    .event("unread")
                    .data(json!({ "unread_count": unread }).to_string()),
            );
        }
        Ok(!self.pending.is_empty())
    }

    /// Until this person is told something, 15 s pass (a moment, when the read models were
    /// behind), or the server closes.
    async fn wait(&mut self) {
        let pause = if std::mem::take(&mut self.soon) {
            FEED_SOON
        } else {
            FEED_RECHECK
        };
        let deadline = tokio::time::Instant::now() + pause;
        let closing = self.state.closing.clone();
        loop {
            tokio::select! {
                _ = closing.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => return,
                woken = self.wakeups.recv() => match woken {
                    Ok(user) if *user == *self.user.as_str() => return,
                    Ok(_) => {}
                    // Missed some: look, in case one was ours.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep_until(deadline).await;
                        return;
                    }
                },
            }
        }
    }
}
