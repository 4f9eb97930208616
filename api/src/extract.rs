//! Extractors that turn requests into typed inputs, and their failures into our error body.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use collab_commands::CommandMeta;
use collab_domain::{Actor, UserId};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::auth::AuthError;
use crate::auth::TokenVerifier;
use crate::error::ApiError;
use crate::rate_limit::RateLimits;
use crate::state::AppState;
use collab_commands::access::{self, ApiKey, Caller, LinkKey, ServiceIdentity};
use collab_domain::workspace::Workspace;

/// `axum::Json` with our error body: 400 for broken JSON, 422 for the wrong shape,
/// 415 for a missing content type, 413 for an oversized body. Every body is a JSON
/// object: serde would also read a struct from an array of its fields (`[null, null]`),
/// which is refused with 422.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = AppState::from_ref(state).max_body_bytes;
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
            match e.into_inner().is::<http_body_util::LengthLimitError>() {
                true => ApiError::PayloadTooLarge { limit },
                false => ApiError::MalformedJson("the body could not be read".into()),
            }
        })?;
        let is_object = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(_) if !is_object => Err(ApiError::InvalidBody(
                "the body must be a JSON object".into(),
            )),
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::MalformedJson(e.body_text())),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::InvalidBody(e.body_text())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge { limit })
            }
            Err(e) => Err(ApiError::MalformedJson(e.body_text())),
        }
    }
}

/// Who is behind a request: a user (JWT), or a service account (API key) acting under
/// the id `service:<account>`.
pub struct Principal {
    pub id: UserId,
    pub service: Option<ServiceIdentity>,
    /// The workspace aggregate loaded to verify the service account's key: a command of
    /// this request reuses it instead of loading it again.
    pub service_workspace: Option<Arc<Workspace>>,
}

impl Principal {
    /// The person asking, for what only people have (`what`: a profile, notifications);
    /// a service account is refused with 403.
    pub fn person(&self, what: &str) -> Result<&UserId, ApiError> {
        if self.service.is_some() {
            return Err(ApiError::Forbidden(format!(
                "service accounts have no {what}"
            )));
        }
        Ok(&self.id)
    }
}

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    Arc<TokenVerifier>: FromRef<S>,
    Arc<RateLimits>: FromRef<S>,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let principal = authenticate(&AppState::from_ref(state), header).await?;
        // Workspace-scoped routes count against the workspace too.
        if let Some(workspace) = parts
            .uri
            .path()
            .strip_prefix("/v1/workspaces/")
            .and_then(|rest| rest.split('/').next())
            .and_then(|id| collab_domain::WorkspaceId::parse(id).ok())
        {
            Arc::<RateLimits>::from_ref(state).check_workspace(workspace)?;
        }
        Ok(principal)
    }
}

/// Who an `Authorization` header value (`Bearer <JWT or API key>`) names, within the
/// user's rate limit: the one authentication of HTTP requests and GraphQL sockets.
pub async fn authenticate(state: &AppState, header: Option<&str>) -> Result<Principal, ApiError> {
    let bearer = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let (user, service, service_workspace) = match bearer {
        Some(key) if ApiKey::looks_like(key) => {
            let (service, workspace) = authenticate_key(state, key).await?;
            (service.user_id(), Some(service), Some(workspace))
        }
        _ => {
            let token = state.tokens.verify_header(header).await?;
            state.limits.check_user(&token.user)?;
            state
                .sign_ins
                .first(
                    state,
                    &token.user,
                    token.name.as_deref(),
                    token.email.as_deref(),
                )
                .await;
            return Ok(Principal {
                id: token.user,
                service: None,
                service_workspace: None,
            });
        }
    };
    state.limits.check_user(&user)?;
    Ok(Principal {
        id: user,
        service,
        service_workspace,
    })
}

/// Verifies a service account's API key (401 when unknown, revoked or wrong).
pub async fn authenticate_key(
    state: &AppState,
    key: &str,
) -> Result<(ServiceIdentity, Arc<Workspace>), ApiError> {
    let parsed = ApiKey::parse(key).ok_or(ApiError::Unauthenticated(AuthError::Invalid))?;
    access::verify_api_key(&state.aggregates, &parsed)
        .await?
        .ok_or(ApiError::Unauthenticated(AuthError::Invalid))
}

impl Principal {
    /// The caller as the command path decides their role: with the share link presented
    /// (if any) and the workspace this request already loaded.
    pub fn caller(&self, link: Option<&LinkKey>) -> Caller {
        Caller {
            user: self.id.clone(),
            link: link.copied(),
            service: self.service.clone(),
            loaded_workspace: self.service_workspace.clone(),
        }
    }

    /// The actor recorded on events: `user:<id>` or `service:account-<id>`.
    pub fn actor(&self) -> Actor {
        match &self.service {
            Some(service) => Actor::Service(format!("account-{}", service.account)),
            None => Actor::User(self.id.clone()),
        }
    }

    /// Command metadata for this principal; the correlation id is the request's
    /// `X-Request-Id` when it is a UUID, else a fresh one.
    pub fn command_meta(&self, parts: &RequestMeta) -> CommandMeta {
        CommandMeta {
            actor: self.actor(),
            correlation_id: parts.correlation_id,
            causation_id: None,
        }
    }
}

/// Per-request facts commands need: correlation id, read position, expected version.
#[derive(Clone)]
pub struct RequestMeta {
    pub correlation_id: Uuid,
    /// `X-Collab-Min-Position` header or `min_position` query parameter.
    pub min_position: Option<i64>,
    /// `If-Match: "<version>"`: the stream version the client last saw.
    pub if_match: Option<i64>,
    /// A share link (`X-Collab-Link` header or `link` query parameter).
    pub link: Option<LinkKey>,
}

impl RequestMeta {
    /// No headers: a fresh correlation id, no wait, no expected version, no link (a
    /// GraphQL WebSocket's operations).
    pub fn none() -> Self {
        Self {
            correlation_id: Uuid::now_v7(),
            min_position: None,
            if_match: None,
            link: None,
        }
    }
}

pub const MIN_POSITION_HEADER: &str = "x-collab-min-position";
pub const POSITION_HEADER: &str = "x-collab-position";

pub(crate) fn parse_position(name: &'static str, raw: &str) -> Result<i64, ApiError> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|p| *p >= 0)
        .ok_or_else(|| ApiError::InvalidParameter {
            name,
            reason: "must be a non-negative integer".into(),
        })
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header_text = |name: &'static str| -> Result<Option<&str>, ApiError> {
            parts
                .headers
                .get(name)
                .map(|v| {
                    v.to_str().map_err(|_| ApiError::InvalidParameter {
                        name,
                        reason: "is not ASCII".into(),
                    })
                })
                .transpose()
        };
        let mut link_text = header_text("x-collab-link")?.map(str::to_owned);
        let mut min_position = header_text(MIN_POSITION_HEADER)?
            .map(|raw| parse_position("X-Collab-Min-Position", raw))
            .transpose()?;
        if let Some(query) = parts.uri.query() {
            for (key, value) in url_pairs(query) {
                if key == "min_position" {
                    let from_query = parse_position("min_position", &value)?;
                    min_position = Some(min_position.map_or(from_query, |h| h.max(from_query)));
                }
                if key == "link" {
                    link_text = Some(value);
                }
            }
        }
        let if_match = header_text("if-match")?
            .map(|raw| {
                parse_position(
                    "If-Match",
                    raw.trim().trim_start_matches("W/").trim_matches('"'),
                )
            })
            .transpose()?;
        let correlation_id = header_text("x-request-id")?
            .and_then(|raw| Uuid::parse_str(raw).ok())
            .unwrap_or_else(Uuid::now_v7);
        let link = link_text
            .map(|raw| {
                LinkKey::parse(&raw).ok_or(ApiError::InvalidParameter {
                    name: "link",
                    reason: "is not a share link token".into(),
                })
            })
            .transpose()?;
        Ok(RequestMeta {
            correlation_id,
            min_position,
            if_match,
            link,
        })
    }
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k.to_owned(), v.to_owned())
    })
}
