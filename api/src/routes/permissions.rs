//! Sharing: `/v1/documents/{id}/permissions` and `/v1/documents/{id}/links`. Every change
//! is an event, and live sockets that lose access are closed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use collab_domain::document::{Document, DocumentCommand};
use collab_domain::{DocumentId, DocumentRole, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{command_response, path_id};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;
use collab_commands::access::LinkKey;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_permissions))
        .routes(routes!(share_document, unshare_document))
        .routes(routes!(create_link))
        .routes(routes!(revoke_link))
}

const DOC: &str = "The document";
const PRINCIPAL: &str = "`user:<id>` or a bare user id";

/// `user:<id>` or a bare user id.
fn parse_principal(raw: &str) -> Result<UserId, ApiError> {
    let id = raw.strip_prefix("user:").unwrap_or(raw);
    UserId::parse(id).map_err(|_| ApiError::InvalidParameter {
        name: "principal",
        reason: "must be user:<id> or a user id".into(),
    })
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Share {
    pub(crate) principal: String,
    pub(crate) role: DocumentRole,
}

#[derive(Serialize, ToSchema)]
struct Link {
    id: Uuid,
    role: DocumentRole,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
struct Permissions {
    /// The caller's own role.
    role: DocumentRole,
    /// The workspace's default role for members (null: none).
    default_member_role: Option<DocumentRole>,
    shares: Vec<Share>,
    links: Vec<Link>,
}

/// Who has which role on a document: the caller's, the members' default, explicit shares,
/// and (for owners) the share links.
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/permissions",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    responses((status = 200, description = "The permissions", body = Permissions), crate::openapi::Refusals)
)]
async fn list_permissions(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document_id): Path<String>,
) -> Result<Json<Permissions>, ApiError> {
    let document_id = path_id("document_id", &document_id, DocumentId::parse)?;
    let access = state
        .document_access(document_id, &principal, meta.link.as_ref())
        .await?;
    let document = state
        .aggregates
        .load::<Document>(document_id.as_uuid())
        .await?
        .aggregate;
    let workspace = state
        .aggregates
        .load::<collab_domain::workspace::Workspace>(access.workspace.as_uuid())
        .await?
        .aggregate;
    // Only owners see the links (they grant access to whoever holds them).
    let links = if access.role == DocumentRole::Owner {
        document
            .links()
            .iter()
            .map(|(id, link)| Link {
                id: *id,
                role: link.role,
                expires_at: link
                    .expires_at_micros
                    .and_then(DateTime::<Utc>::from_timestamp_micros),
            })
            .collect()
    } else {
        vec![]
    };
    Ok(Json(Permissions {
        role: access.role,
        default_member_role: workspace.default_document_role(),
        shares: document
            .shares()
            .iter()
            .map(|(user, role)| Share {
                principal: format!("user:{user}"),
                role: *role,
            })
            .collect(),
        links,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShareBody {
    #[schema(value_type = DocumentRole)]
    pub(crate) role: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Unshared {
    pub(crate) principal: String,
}

#[derive(Serialize, ToSchema)]
struct LinkRevoked {
    id: Uuid,
}

#[derive(Serialize, ToSchema)]
struct LinkCreated {
    id: Uuid,
    role: DocumentRole,
    expires_at: Option<DateTime<Utc>>,
    /// Shown once: pass it as `?link=` (sockets, content) or `X-Collab-Link`.
    token: String,
}

/// Share a document with a user, or change their role (owners).
#[utoipa::path(
    put,
    path = "/v1/documents/{document_id}/permissions/{principal}",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC), ("principal" = String, Path, description = PRINCIPAL)),
    request_body = ShareBody,
    responses(
        (status = 200, description = "Shared", body = crate::openapi::Committed<Share>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn share_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((document_id, target)): Path<(String, String)>,
    ApiJson(body): ApiJson<ShareBody>,
) -> Result<Response, ApiError> {
    let (position, share) = share(&state, &principal, &meta, &document_id, &target, body).await?;
    Ok(command_response(StatusCode::OK, position, share))
}

/// Shares a document with a user (or changes their role): (position, the share).
pub(crate) async fn share(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document_id: &str,
    target: &str,
    body: ShareBody,
) -> Result<(i64, Share), ApiError> {
    let document_id = path_id("document_id", document_id, DocumentId::parse)?;
    let user = parse_principal(target)?;
    let role = DocumentRole::parse(&body.role)?;
    let committed = state
        .run_on_document(principal, meta, document_id, meta.if_match, |by| {
            vec![DocumentCommand::ShareDocument {
                by,
                user: user.clone(),
                role,
            }]
        })
        .await?;
    Ok((
        committed.position,
        Share {
            principal: format!("user:{user}"),
            role,
        },
    ))
}

/// Take a user's share away (owners); their live sessions close.
#[utoipa::path(
    delete,
    path = "/v1/documents/{document_id}/permissions/{principal}",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC), ("principal" = String, Path, description = PRINCIPAL)),
    responses(
        (status = 200, description = "Unshared", body = crate::openapi::Committed<Unshared>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn unshare_document(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((document_id, target)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (position, unshared) = unshare(&state, &principal, &meta, &document_id, &target).await?;
    Ok(command_response(StatusCode::OK, position, unshared))
}

/// Takes a user's share away: (position, whose).
pub(crate) async fn unshare(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document_id: &str,
    target: &str,
) -> Result<(i64, Unshared), ApiError> {
    let document_id = path_id("document_id", document_id, DocumentId::parse)?;
    let user = parse_principal(target)?;
    let committed = state
        .run_on_document(principal, meta, document_id, meta.if_match, |by| {
            vec![DocumentCommand::UnshareDocument {
                by,
                user: user.clone(),
            }]
        })
        .await?;
    Ok((
        committed.position,
        Unshared {
            principal: format!("user:{user}"),
        },
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    /// `viewer`, `commenter` or `editor`.
    #[schema(pattern = "^(viewer|commenter|editor)$")]
    role: String,
    /// Lifetime in seconds; none: until revoked.
    expires_in_seconds: Option<i64>,
}

/// Create a share link (owners): whoever holds its token gets its role, until it is
/// revoked or expires.
#[utoipa::path(
    post,
    path = "/v1/documents/{document_id}/links",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    request_body = LinkBody,
    responses(
        (status = 201, description = "Created; the token is shown only here", body = crate::openapi::Committed<LinkCreated>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn create_link(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document_id): Path<String>,
    ApiJson(body): ApiJson<LinkBody>,
) -> Result<Response, ApiError> {
    let document_id = path_id("document_id", &document_id, DocumentId::parse)?;
    let role = DocumentRole::parse(&body.role)?;
    if role == DocumentRole::Owner {
        return Err(ApiError::InvalidField(collab_domain::InvalidValue::new(
            "role",
            "links grant viewer, commenter or editor",
        )));
    }
    let expires_at = match body.expires_in_seconds {
        Some(seconds) if seconds <= 0 => {
            return Err(ApiError::InvalidField(collab_domain::InvalidValue::new(
                "expires_in_seconds",
                "must be positive",
            )))
        }
        Some(seconds) => {
            Some(Utc::now() + chrono::Duration::seconds(seconds.min(10 * 365 * 86_400)))
        }
        None => None,
    };
    let (key, token) = LinkKey::generate();
    let committed = state
        .run_on_document(&principal, &meta, document_id, meta.if_match, |by| {
            vec![DocumentCommand::CreateShareLink {
                by,
                link_id: key.link_id,
                role,
                secret_hash: key.secret_hash,
                expires_at_micros: expires_at.map(|at| at.timestamp_micros()),
            }]
        })
        .await?;
    Ok(command_response(
        StatusCode::CREATED,
        committed.position,
        LinkCreated {
            id: key.link_id,
            role,
            expires_at,
            token,
        },
    ))
}

/// Revoke a share link (owners); sockets opened with it close.
#[utoipa::path(
    delete,
    path = "/v1/documents/{document_id}/links/{link_id}",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = DOC), ("link_id" = uuid::Uuid, Path, description = "The link")),
    responses(
        (status = 200, description = "Revoked", body = crate::openapi::Committed<LinkRevoked>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn revoke_link(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((document_id, link_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let document_id = path_id("document_id", &document_id, DocumentId::parse)?;
    let link_id = Uuid::parse_str(&link_id).map_err(|_| ApiError::InvalidParameter {
        name: "link_id",
        reason: "must be a UUID".into(),
    })?;
    let committed = state
        .run_on_document(&principal, &meta, document_id, meta.if_match, |by| {
            vec![DocumentCommand::RevokeShareLink { by, link_id }]
        })
        .await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        LinkRevoked { id: link_id },
    ))
}
