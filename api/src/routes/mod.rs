//! One router per resource, merged here.

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Json, Router};
use serde::Serialize;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use collab_commands::Committed;
use collab_domain::EventSourced;

use crate::error::{uniform_errors, ApiError};
use crate::extract::POSITION_HEADER;
use crate::extract::{Principal, RequestMeta};
use crate::observability::track_http;
use crate::state::AppState;

pub mod activity;
pub mod assets;
pub mod audit;
pub mod comments;
pub mod content;
pub mod documents;
pub mod events;
pub mod export;
pub mod files;
pub mod health;
pub mod history;
pub mod members;
pub mod notifications;
pub mod permissions;
pub mod profile;
pub mod search;
pub mod service_accounts;
pub mod sync;
pub mod webhooks;
pub mod workspaces;

/// Every route, with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    crate::openapi::base()
        .merge(workspaces::router())
        .merge(documents::router())
        .merge(members::router())
        .merge(profile::router())
        .merge(permissions::router())
        .merge(service_accounts::router())
        .merge(search::router())
        .merge(sync::router())
        .merge(health::router())
        .merge(events::router())
        .merge(audit::router())
        .merge(content::router())
        .merge(history::router())
        .merge(comments::router())
        .merge(notifications::router())
        .merge(activity::router())
        .merge(webhooks::router())
        .merge(files::router())
        .merge(assets::router())
        .merge(export::router())
        .merge(crate::graphql::router())
        .merge(crate::openapi::router())
        .merge(crate::web::router())
}

pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let (routes, document) = api_router().split_for_parts();
    crate::openapi::publish(document);
    routes
        // The web app's files and page; API-looking paths keep the JSON 404.
        .fallback(crate::web::fallback)
        .layer(DefaultBodyLimit::max(limit))
        // Also for bodies read without axum's extractors (GraphQL's): a larger
        // Content-Length is a 413 before anything is read, a longer stream an error.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            database_guard,
        ))
        .layer(middleware::from_fn(move |request, next| {
            uniform_errors(limit, request, next)
        }))
        .layer(middleware::from_fn(track_http))
        .layer(crate::web::compression())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// While Postgres is unreachable (see `database_health`), everything but the operations
/// endpoints is answered 503 at once; a response that met the outage opens the breaker.
async fn database_guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    // The operations endpoints, and the web app's files (which need no database).
    let path = request.uri().path();
    let exempt = matches!(path, "/healthz" | "/readyz" | "/metrics") || !path.starts_with("/v1/");
    if !exempt && state.database.is_down() {
        return ApiError::database_unavailable().into_response();
    }
    let response = next.run(request).await;
    match response
        .extensions()
        .get::<crate::database_health::DatabaseOutage>()
    {
        Some(outage) if outage.confirmed => state.database.report_outage(&state.pool),
        Some(_) => state.database.verify(&state.pool),
        None => {}
    }
    response
}

/// A process without the api role: liveness, readiness and metrics only.
pub fn operations_router(state: AppState) -> Router {
    let (routes, _) = health::router().split_for_parts();
    routes
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(middleware::from_fn(track_http))
        .with_state(state)
}

/// A command's answer: its body, with `position` (of the command's last event) both in
/// the body and in the `X-Collab-Position` header, so any client can ask a later query
/// to wait for it.
#[derive(Serialize)]
pub struct CommandResponse<T: Serialize> {
    #[serde(flatten)]
    pub body: T,
    pub position: i64,
}

pub fn command_response<T: Serialize>(status: StatusCode, position: i64, body: T) -> Response {
    let mut response = (status, Json(CommandResponse { body, position })).into_response();
    response.headers_mut().insert(
        POSITION_HEADER,
        HeaderValue::from_str(&position.to_string()).expect("digits are a valid header value"),
    );
    response
}

/// Runs `command` on aggregate `A` (id `id`) for `principal`; `expected_version` pins the
/// stream version (`If-Match`).
pub(crate) async fn run<A>(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    id: uuid::Uuid,
    command: A::Command,
    expected_version: Option<i64>,
) -> Result<Committed, ApiError>
where
    A: EventSourced<Services = ()> + Clone,
    A::Command: Clone,
    A::Error: Into<ApiError>,
{
    Ok(state
        .aggregates
        .execute::<A>(id, command, &principal.command_meta(meta), expected_version)
        .await?)
}

/// The start of a comment as a notification or an activity entry shows it (at most 280
/// characters).
pub(crate) fn excerpt(body: String) -> String {
    const EXCERPT_CHARS: usize = 280;
    body.chars().take(EXCERPT_CHARS).collect()
}

/// Page sizes of the listings: `limit` 1–200, 50 by default.
pub(crate) fn page_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    const DEFAULT_PAGE: i64 = 50;
    const MAX_PAGE: i64 = 200;
    match raw {
        None => Ok(DEFAULT_PAGE),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| ApiError::InvalidParameter {
                name: "limit",
                reason: format!("must be an integer from 1 to {MAX_PAGE}"),
            }),
    }
}

/// A UUID path parameter (400 `invalid_parameter` otherwise).
pub(crate) fn uuid_param(name: &'static str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    path_id(name, raw, |raw| {
        uuid::Uuid::parse_str(raw)
            .map_err(|_| collab_domain::InvalidValue::new(name, "must be a UUID"))
    })
}

/// A cursor carrying text (keyset values), tagged like [`encode_cursor`].
pub(crate) fn encode_cursor_text(tag: char, value: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{tag}{value}"))
}

/// The text of a cursor made by [`encode_cursor_text`] with `tag`.
pub(crate) fn decode_cursor_text(tag: char, raw: &str) -> Result<String, ApiError> {
    use base64::Engine;
    let invalid = || ApiError::InvalidParameter {
        name: "cursor",
        reason: "is not a cursor this route gave".into(),
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix(tag)
        .map(str::to_owned)
        .ok_or_else(invalid)
}

/// An opaque page cursor for a position: `tag` keeps one listing's cursors from being
/// accepted by another.
pub(crate) fn encode_cursor(tag: char, position: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{tag}{position}"))
}

/// The position of a cursor [`encode_cursor`] made with `tag`; anything else is a 400.
pub(crate) fn decode_cursor(tag: char, raw: &str) -> Result<i64, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(tag)?.parse().ok())
        .ok_or_else(|| ApiError::InvalidParameter {
            name: "cursor",
            reason: "is not a cursor this API returned".into(),
        })
}

/// Parses an id from the path, with a 400 that names it.
pub fn path_id<T>(
    name: &'static str,
    raw: &str,
    parse: impl Fn(&str) -> Result<T, collab_domain::InvalidValue>,
) -> Result<T, ApiError> {
    parse(raw).map_err(|_| ApiError::InvalidParameter {
        name,
        reason: "must be a UUID".into(),
    })
}
