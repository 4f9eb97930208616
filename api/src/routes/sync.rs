//! `GET /v1/sync/{document_id}?token=JWT`: the y-websocket endpoint. Stock clients work
//! unchanged: `new WebsocketProvider("ws://HOST/v1/sync", documentId, ydoc, { params: {
//! token } })`. Refusals are close frames with a code and a reason a person can read.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use collab_domain::DocumentId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthError;
use crate::error::ApiError;
use crate::extract::{authenticate_key, Principal};
use crate::state::AppState;
use collab_commands::access::{ApiKey, LinkKey};
use collab_live::protocol::close;
use collab_live::session::{self, token_from, Admission};
use collab_live::websocket;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sync_socket))
}

/// The live document: a WebSocket speaking the y-websocket protocol (sync and awareness).
/// The token comes as `?token=` (browsers cannot set headers on a WebSocket) or
/// `Authorization: Bearer`; a share link as `?link=`. Refusals after the upgrade are close
/// frames with a code and a readable reason (4401 unauthenticated, 4403 forbidden, 4404 not
/// found, 1009 too large...).
#[utoipa::path(
    get,
    path = "/v1/sync/{document_id}",
    tag = "content",
    // Authenticated after the upgrade (`?token=`), refused with a close frame, not a 401.
    security(()),
    params(
        ("document_id" = uuid::Uuid, Path, description = "The document"),
        ("token" = Option<String>, Query, description = "A JWT or an API key"),
        ("link" = Option<String>, Query, description = "A share link's token")
    ),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = crate::openapi::ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = crate::openapi::ErrorBody)
    )
)]
async fn sync_socket(
    State(state): State<AppState>,
    Path(document): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    mut request: Request,
) -> Response {
    let accept = match websocket::accept_key(request.headers()) {
        Ok(accept) => accept,
        Err(refusal) => {
            let mut response = ApiError::Rejected {
                status: refusal.status,
                message: format!("not a WebSocket upgrade: {}", refusal.reason),
            }
            .into_response();
            if refusal.status == StatusCode::UPGRADE_REQUIRED {
                response.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            return response;
        }
    };
    let Some(upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return ApiError::Rejected {
            status: StatusCode::UPGRADE_REQUIRED,
            message: "this connection cannot be upgraded (HTTP/1.1 is needed)".to_owned(),
        }
        .into_response();
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(upgraded) => hyper_util::rt::TokioIo::new(upgraded),
            Err(error) => {
                tracing::debug!(%error, "socket upgrade failed");
                return;
            }
        };
        // Oversized updates get a readable close (1009) from the session; only messages
        // far past the limit are cut off while being read.
        let limit = state.live.config.max_update_bytes * 2 + 64 * 1024;
        let socket = websocket::split(io, limit);
        let admitted = admit(&state, &document, &params, authorization.as_deref()).await;
        let live = state.live.clone();
        match admitted {
            // The session gets a task of its own, sized for what it keeps (a task keeps
            // room for its largest future for its whole life): this one, with the
            // admission's futures and the request's state in it, ends here.
            Ok(admission) => drop(tokio::spawn(session::run(live, admission, socket))),
            Err((code, reason)) => {
                metrics::counter!("collab_sync_refusals_total", "code" => code.to_string())
                    .increment(1);
                session::refuse(socket, code, &reason).await
            }
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response()
}

/// Authenticates and authorises before the socket joins a room.
async fn admit(
    state: &AppState,
    document: &str,
    params: &HashMap<String, String>,
    authorization: Option<&str>,
) -> Result<Admission, (u16, String)> {
    let token = token_from(params, authorization).ok_or((
        close::UNAUTHENTICATED,
        "missing token: pass ?token=<JWT>".to_owned(),
    ))?;
    let principal = if ApiKey::looks_like(&token) {
        let (service, workspace) = authenticate_key(state, &token)
            .await
            .map_err(|_| (close::UNAUTHENTICATED, "API key is invalid".to_owned()))?;
        (
            Principal {
                id: service.user_id(),
                service: Some(service),
                service_workspace: Some(workspace),
            },
            false,
        )
    } else {
        let verified = state.tokens.verify_token(&token).await.map_err(|e| {
            let reason = match e {
                AuthError::Expired => "token has expired",
                _ => "token is invalid",
            };
            (close::UNAUTHENTICATED, reason.to_owned())
        })?;
        (
            Principal {
                id: verified.user,
                service: None,
                service_workspace: None,
            },
            verified.read_only,
        )
    };
    let (principal, read_only_token) = principal;
    // Before the access check: see `Admission::checked_at`.
    let checked_at = state.live.revocations_seen();
    let not_found = || (close::NOT_FOUND, "document not found".to_owned());
    let document = DocumentId::parse(document).map_err(|_| not_found())?;
    let link = match params.get("link") {
        Some(raw) => Some(LinkKey::parse(raw).ok_or_else(not_found)?),
        None => None,
    };
    let access = match state
        .shared_document_access(document, &principal, link.as_ref())
        .await
    {
        Ok(found) => found,
        Err(ApiError::NotFound(_)) => return Err(not_found()),
        Err(error) => {
            tracing::error!(%error, "cannot check document access");
            return Err((
                close::INTERNAL,
                "could not check access; try again".to_owned(),
            ));
        }
    };
    Ok(Admission {
        user: principal.id,
        service: principal.service,
        document,
        workspace: access.workspace,
        link,
        read_only_token,
        read_only: read_only_token || !access.role.edits(),
        checked_at,
    })
}
