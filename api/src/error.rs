//! The one place errors become HTTP responses: `{ "code", "message", "details" }`.
//! Every variant says its status; 5xx causes are logged here, once, and never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use collab_commands::CommandError;
use collab_domain::document::DocumentError;
use collab_domain::workspace::WorkspaceError;
use collab_domain::InvalidValue;
use collab_store::StoreError;
use serde_json::{json, Value};

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// 422: JSON, but not the shape this route takes (unknown field, wrong type...).
    #[error("request body does not match the expected shape: {0}")]
    InvalidBody(String),
    /// 422: a field has a value we refuse.
    #[error("{0}")]
    InvalidField(InvalidValue),
    /// 400: a path or query parameter cannot be parsed.
    #[error("invalid {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    /// 415
    #[error("expected a request with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 415, naming the expected type.
    #[error("expected a request with Content-Type: {0}")]
    UnsupportedMediaTypeNamed(&'static str),
    /// 422: bytes that are not a Yjs update.
    #[error("body is not a valid Yjs v1 update: {0}")]
    InvalidUpdate(String),
    /// 413
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// 401
    #[error("{0}")]
    Unauthenticated(AuthError),
    /// 403
    #[error("{0}")]
    Forbidden(String),
    /// 404: missing, or not visible to the caller (deliberately the same).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// 400: a position beyond the log head was never handed to anyone; waiting would not
    /// help.
    #[error("position {requested} is beyond the event log's head ({head}); use a position a command returned")]
    PositionBeyondHead { requested: i64, head: i64 },
    /// 405, with the allowed methods in `Allow`.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// 503 + Retry-After: the read model has not reached the requested position yet.
    #[error("read model has not reached position {requested} yet")]
    NotYetConsistent { requested: i64 },
    /// 429 + Retry-After.
    #[error("too many requests for this {scope}; retry in {retry_after_seconds} s")]
    RateLimited {
        scope: &'static str,
        retry_after_seconds: u64,
    },
    /// Any other refusal produced below our handlers (axum's extractors, the upgrade
    /// check), given our body.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    /// 422 with its own code: a request well formed but refused on what it carried (an
    /// upload whose content is not what was declared).
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// 503 with its own code: a service the route needs is missing or not answering.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// 500: logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::InvalidParameter { .. }
            | ApiError::PositionBeyondHead { .. } => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Rejected { status, .. } => *status,
            ApiError::InvalidBody(_) | ApiError::InvalidField(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::UnsupportedMediaType | ApiError::UnsupportedMediaTypeNamed(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::InvalidUpdate(_) | ApiError::Unprocessable { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::NotYetConsistent { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidBody(_) => "invalid_body",
            ApiError::InvalidField(_) => "invalid_field",
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::UnsupportedMediaType | ApiError::UnsupportedMediaTypeNamed(_) => {
                "unsupported_media_type"
            }
            ApiError::InvalidUpdate(_) => "invalid_update",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::PositionBeyondHead { .. } => "position_beyond_head",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Rejected { status, .. } if status.is_server_error() => "internal",
            ApiError::Rejected { .. } => "bad_request",
            ApiError::Unauthenticated(AuthError::Expired) => "token_expired",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::NotYetConsistent { .. } => "not_yet_consistent",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Internal(_) => "internal",
        }
    }

    fn details(&self) -> Value {
        match self {
            ApiError::InvalidField(invalid) => {
                json!({ "field": invalid.field, "reason": invalid.reason })
            }
            ApiError::InvalidParameter { name, reason } => {
                json!({ "parameter": name, "reason": reason })
            }
            ApiError::PayloadTooLarge { limit } => json!({ "limit_bytes": limit }),
            ApiError::Conflict { details, .. } | ApiError::Unprocessable { details, .. } => {
                details.clone()
            }
            ApiError::RateLimited {
                scope,
                retry_after_seconds,
            } => json!({ "scope": scope, "retry_after_seconds": retry_after_seconds }),
            ApiError::PositionBeyondHead { requested, head } => {
                json!({ "min_position": requested, "head": head })
            }
            ApiError::NotYetConsistent { requested } => {
                json!({ "min_position": requested, "retry_after_seconds": 1 })
            }
            _ => json!({}),
        }
    }

    /// 503 `database_unavailable` (with `Retry-After: 1`): Postgres cannot be reached.
    pub fn database_unavailable() -> Self {
        ApiError::Unavailable {
            code: "database_unavailable",
            message: "the database cannot be reached; retry shortly".into(),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    fn conflict(code: &'static str, message: impl ToString) -> Self {
        ApiError::Conflict {
            code,
            message: message.to_string(),
            details: json!({}),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(error) = &self {
            if crate::database_health::is_outage(error) {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "request failed: Postgres is unreachable"
                );
                return ApiError::database_unavailable().into_response();
            }
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let status = self.status();
        let body = json!({
            "code": self.code(),
            "message": self.to_string(),
            "details": self.details(),
        });
        let mut response = (status, Json(body)).into_response();
        match &self {
            ApiError::Unauthenticated(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::NotYetConsistent { .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unavailable {
                code: code @ ("database_unavailable" | "database_busy"),
                ..
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                // The breaker (routes::database_guard) opens on this mark, or checks
                // whether a busy pool is in fact Postgres gone.
                response
                    .extensions_mut()
                    .insert(crate::database_health::DatabaseOutage {
                        confirmed: *code == "database_unavailable",
                    });
            }
            ApiError::RateLimited {
                retry_after_seconds,
                ..
            } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_str(&retry_after_seconds.to_string())
                        .expect("digits are a valid header value"),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<InvalidValue> for ApiError {
    fn from(value: InvalidValue) -> Self {
        ApiError::InvalidField(value)
    }
}

impl From<AuthError> for ApiError {
    fn from(value: AuthError) -> Self {
        ApiError::Unauthenticated(value)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(value: sqlx::Error) -> Self {
        if crate::database_health::is_outage_error(&value) {
            tracing::warn!(error = %value, "request failed: Postgres is unreachable");
            return ApiError::database_unavailable();
        }
        if matches!(value, sqlx::Error::PoolTimedOut) {
            tracing::warn!("request failed: no database connection within the pool's timeout");
            return ApiError::Unavailable {
                code: "database_busy",
                message: "no database connection was free in time; retry shortly".into(),
            };
        }
        ApiError::internal(value)
    }
}

impl From<collab_live::rooms::LoadError> for ApiError {
    fn from(value: collab_live::rooms::LoadError) -> Self {
        use collab_live::rooms::LoadError;
        match value {
            LoadError::Database(error) => error.into(),
            LoadError::Store(error) => error.into(),
            snapshot @ LoadError::Snapshot(_) => ApiError::internal(snapshot),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(value: StoreError) -> Self {
        match value {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => ApiError::Conflict {
                code: "version_conflict",
                message: format!("{stream} changed concurrently; reload and retry"),
                details: json!({ "expected": format!("{expected:?}"), "actual": actual }),
            },
            StoreError::Database(error) => error.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<WorkspaceError> for ApiError {
    fn from(value: WorkspaceError) -> Self {
        match value {
            WorkspaceError::NotFound => ApiError::NotFound("workspace"),
            WorkspaceError::Forbidden(why) => ApiError::Forbidden(why.to_owned()),
            WorkspaceError::AlreadyExists => ApiError::conflict("workspace_exists", &value),
            WorkspaceError::AlreadyMember(_) => ApiError::conflict("already_member", &value),
            WorkspaceError::NotMember(_) => ApiError::NotFound("member"),
            WorkspaceError::LastOwner => ApiError::conflict("last_owner", &value),
            WorkspaceError::ServiceAccountNotFound => ApiError::NotFound("service account"),
            WorkspaceError::WebhookNotFound => ApiError::NotFound("webhook"),
            WorkspaceError::TooManyWebhooks(_) => ApiError::conflict("too_many_webhooks", &value),
            WorkspaceError::CollectionNotFound => ApiError::NotFound("collection"),
            WorkspaceError::CollectionNameTaken(_) => {
                ApiError::conflict("collection_name_taken", &value)
            }
            WorkspaceError::TooManyCollections(_) => {
                ApiError::conflict("too_many_collections", &value)
            }
        }
    }
}

impl From<collab_domain::profile::ProfileError> for ApiError {
    fn from(value: collab_domain::profile::ProfileError) -> Self {
        ApiError::Forbidden(value.to_string())
    }
}

impl From<collab_domain::file::FileError> for ApiError {
    fn from(value: collab_domain::file::FileError) -> Self {
        use collab_domain::file::FileError;
        match value {
            FileError::NotFound => ApiError::NotFound("file"),
            FileError::Forbidden(why) => ApiError::Forbidden(why.to_owned()),
            FileError::AlreadyExists => ApiError::conflict("file_exists", &value),
            FileError::NotPending(_) => ApiError::conflict("upload_not_pending", &value),
            FileError::NotUploaded(_) => ApiError::conflict("file_not_uploaded", &value),
            FileError::TooManyAttachments => ApiError::conflict("too_many_attachments", &value),
            FileError::TooManyTags => ApiError::conflict("too_many_tags", &value),
        }
    }
}

impl From<collab_domain::comment::ThreadError> for ApiError {
    fn from(value: collab_domain::comment::ThreadError) -> Self {
        use collab_domain::comment::ThreadError;
        match value {
            ThreadError::NotFound => ApiError::NotFound("thread"),
            ThreadError::CommentNotFound => ApiError::NotFound("comment"),
            ThreadError::Forbidden(why) => ApiError::Forbidden(why.to_owned()),
            ThreadError::AlreadyExists => ApiError::conflict("thread_exists", &value),
            ThreadError::CommentExists => ApiError::conflict("comment_exists", &value),
            ThreadError::TooManyComments => ApiError::conflict("too_many_comments", &value),
            ThreadError::TooManyReactions => ApiError::conflict("too_many_reactions", &value),
        }
    }
}

impl From<DocumentError> for ApiError {
    fn from(value: DocumentError) -> Self {
        match value {
            DocumentError::NotFound => ApiError::NotFound("document"),
            DocumentError::Forbidden(why) => ApiError::Forbidden(why.to_owned()),
            DocumentError::AlreadyExists => ApiError::conflict("document_exists", &value),
            DocumentError::Archived => ApiError::conflict("document_archived", &value),
            DocumentError::AlreadyArchived => ApiError::conflict("already_archived", &value),
            DocumentError::NotArchived => ApiError::conflict("not_archived", &value),
            DocumentError::NotShared(_) => ApiError::NotFound("share"),
            DocumentError::LinkNotFound => ApiError::NotFound("link"),
            DocumentError::VersionNameTaken(_) => ApiError::conflict("version_name_taken", &value),
            DocumentError::VersionNotFound => ApiError::NotFound("version"),
        }
    }
}

impl<E> From<CommandError<E>> for ApiError
where
    E: std::error::Error + Into<ApiError>,
{
    fn from(value: CommandError<E>) -> Self {
        match value {
            CommandError::Domain(e) => e.into(),
            CommandError::Conflict {
                stream,
                expected,
                actual,
            } => ApiError::Conflict {
                code: "version_conflict",
                message: format!(
                    "{stream} is at version {actual}, not {expected}; reload and retry"
                ),
                details: json!({ "expected_version": expected, "current_version": actual }),
            },
            CommandError::Store(e) => e.into(),
        }
    }
}

impl From<collab_live::admission::Refusal> for ApiError {
    fn from(value: collab_live::admission::Refusal) -> Self {
        use collab_live::admission::Refusal;
        match value {
            Refusal::UpdateTooLarge { limit, .. } | Refusal::DocumentTooLarge { limit } => {
                ApiError::PayloadTooLarge { limit }
            }
            Refusal::Undecodable(reason) => ApiError::InvalidUpdate(reason),
        }
    }
}

/// Errors are always our JSON body: responses that axum or tower produce below the
/// handlers (405 from the router, 413 from the body limit, an extractor's plain-text
/// rejection) are rewritten here. And an error answering a request that carried a body
/// says `Connection: close`: the handler may have refused before reading it, and a client
/// must not send its next request on a connection whose unread bytes would be taken for it.
pub async fn uniform_errors(
    max_body_bytes: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let has_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > 0)
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        let allow = response.headers().get(header::ALLOW).cloned();
        let error = match status {
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                limit: max_body_bytes,
            },
            _ => {
                let body = std::mem::take(response.body_mut());
                let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
                let message = String::from_utf8_lossy(&text).trim().to_owned();
                ApiError::Rejected {
                    status,
                    message: if message.is_empty() {
                        status.canonical_reason().unwrap_or("refused").to_owned()
                    } else {
                        message
                    },
                }
            }
        };
        response = error.into_response();
        if let Some(allow) = allow {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    // 409 and 422 come from handlers that read and parsed the body: the connection is
    // clean. Any other refusal may have come first.
    let body_read = matches!(
        status,
        StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
    );
    if has_body && !body_read {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
