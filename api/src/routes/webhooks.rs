//! `/v1/workspaces/{ws}/webhooks…`: endpoints subscribed to a workspace's events (owners
//! and admins), their deliveries and attempts, and a manual retry.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use collab_domain::workspace::{WebhookFormat, Workspace, WorkspaceCommand};
use collab_domain::{DomainEvent, InvalidValue, WorkspaceId};
use collab_projections::webhooks::{self as read_model, Attempt, DeliveryRow, WebhookRow};
use collab_projections::ReadModel;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{command_response, decode_cursor, encode_cursor, page_limit, path_id, run};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(enable_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

const WS: &str = "The workspace";
const HOOK: &str = "The webhook";

/// Patterns per webhook.
const MAX_PATTERNS: usize = 50;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// Where deliveries are posted: http(s), no credentials, not an internal address.
    url: String,
    /// Event types (`DocumentRenamed`), prefixes (`Comment*`) or `*`: of workspace,
    /// document and comment-thread events (1–50).
    events: Vec<String>,
    /// `standard` (default) or `slack`.
    #[serde(default)]
    format: Option<WebhookFormat>,
}

/// A webhook as its workspace's owners and admins see it.
#[derive(Serialize, ToSchema)]
struct WebhookView {
    id: Uuid,
    url: String,
    events: Vec<String>,
    format: String,
    /// False once disabled after failing deliveries (`disabled_reason` says why); enable
    /// it again with `POST …/enable`.
    enabled: bool,
    disabled_reason: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl From<WebhookRow> for WebhookView {
    fn from(row: WebhookRow) -> Self {
        Self {
            id: row.webhook_id,
            url: row.url,
            events: row.events,
            format: row.format,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            created_by: row
                .created_by
                .strip_prefix("user:")
                .unwrap_or(&row.created_by)
                .to_owned(),
            created_at: row.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct WebhookCreated {
    id: Uuid,
    url: String,
    events: Vec<String>,
    format: WebhookFormat,
    /// The signing secret (`whsec_…`), shown only here: verify each delivery's
    /// `webhook-signature` with it (any Standard Webhooks library does).
    secret: String,
}

#[derive(Serialize, ToSchema)]
struct WebhookList {
    webhooks: Vec<WebhookView>,
}

/// The caller manages the workspace (owners, admins); otherwise 404 (not a member) or 403.
async fn manager(
    state: &AppState,
    principal: &Principal,
    workspace: WorkspaceId,
) -> Result<(), ApiError> {
    if principal.service.is_some() {
        return Err(ApiError::Forbidden(
            "webhooks are managed by the workspace's owners and admins".into(),
        ));
    }
    let loaded = state
        .aggregates
        .load::<Workspace>(workspace.as_uuid())
        .await?;
    let role = loaded
        .aggregate
        .role_of(&principal.id)
        .ok_or(ApiError::NotFound("workspace"))?;
    if !role.manages_workspace() {
        return Err(ApiError::Forbidden(
            "webhooks are managed by the workspace's owners and admins".into(),
        ));
    }
    Ok(())
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidField(InvalidValue::new(field, reason.into()))
}

/// Checks the patterns: known event types of the categories webhooks follow, prefixes of
/// some, or `*`.
fn patterns(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() || raw.len() > MAX_PATTERNS {
        return Err(invalid("events", "must have 1 to 50 patterns"));
    }
    // The categories the `webhooks` read model follows (content edits are for the sync
    // socket and replay).
    let followed: Vec<&str> = read_model::Webhooks
        .categories()
        .iter()
        .map(|c| c.as_str())
        .collect();
    let types: Vec<&str> = DomainEvent::catalogue()
        .iter()
        .filter(|e| followed.contains(&e.category))
        .map(|e| e.event_type)
        .collect();
    let mut out = Vec::new();
    for pattern in raw {
        let pattern = pattern.trim().to_owned();
        let known = types.iter().any(|t| read_model::matches(&pattern, t));
        let well_formed = !pattern.is_empty()
            && pattern.len() <= 100
            && pattern
                .trim_end_matches('*')
                .chars()
                .all(|c| c.is_ascii_alphabetic())
            && pattern.matches('*').count() <= 1;
        if !well_formed || !known {
            return Err(invalid(
                "events",
                format!("'{pattern}' matches no workspace, document or comment event type"),
            ));
        }
        if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    Ok(out)
}

/// Subscribe an endpoint to the workspace's events (owners and admins); its signing secret
/// is shown only in this answer.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/webhooks",
    tag = "webhooks",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    request_body = CreateBody,
    responses(
        (status = 201, description = "Created", body = crate::openapi::Committed<WebhookCreated>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let workspace = path_id("workspace_id", &workspace, WorkspaceId::parse)?;
    manager(&state, &principal, workspace).await?;
    let events = patterns(body.events)?;
    let url = crate::webhooks::check_url(&body.url, state.webhook_allow_private)
        .await
        .map_err(|reason| invalid("url", reason))?;
    let format = body.format.unwrap_or(WebhookFormat::Standard);
    let (secret, key) = crate::webhooks::new_secret()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    let webhook_id = Uuid::now_v7();
    // The secret is kept before the event exists, so no delivery ever lacks it.
    sqlx::query("INSERT INTO webhook_secrets (webhook_id, secret) VALUES ($1, $2)")
        .bind(webhook_id)
        .bind(&key)
        .execute(&state.pool)
        .await?;
    let command = WorkspaceCommand::CreateWebhook {
        by: principal.id.clone(),
        webhook_id,
        url: url.to_string(),
        events: events.clone(),
        format,
    };
    let committed = run::<Workspace>(
        &state,
        &principal,
        &meta,
        workspace.as_uuid(),
        command,
        None,
    )
    .await;
    let committed = match committed {
        Ok(committed) => committed,
        Err(error) => {
            let _ = sqlx::query("DELETE FROM webhook_secrets WHERE webhook_id = $1")
                .bind(webhook_id)
                .execute(&state.pool)
                .await;
            return Err(error);
        }
    };
    Ok(command_response(
        StatusCode::CREATED,
        committed.position,
        WebhookCreated {
            id: webhook_id,
            url: url.to_string(),
            events,
            format,
            secret,
        },
    ))
}

/// The workspace's webhooks (owners and admins; never their secrets).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/webhooks",
    tag = "webhooks",
    params(("workspace_id" = uuid::Uuid, Path, description = WS)),
    responses((status = 200, description = "The webhooks", body = WebhookList), crate::openapi::Refusals)
)]
async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
) -> Result<Json<WebhookList>, ApiError> {
    let workspace = path_id("workspace_id", &workspace, WorkspaceId::parse)?;
    manager(&state, &principal, workspace).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader(&principal).await?;
    let rows = read_model::list(&mut reader, workspace.as_uuid()).await?;
    Ok(Json(WebhookList {
        webhooks: rows.into_iter().map(WebhookView::from).collect(),
    }))
}

async fn one(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    workspace: &str,
    webhook: &str,
) -> Result<(WorkspaceId, WebhookRow), ApiError> {
    let workspace = path_id("workspace_id", workspace, WorkspaceId::parse)?;
    let webhook = super::uuid_param("webhook_id", webhook)?;
    manager(state, principal, workspace).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader(principal).await?;
    let row = read_model::get(&mut reader, workspace.as_uuid(), webhook)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok((workspace, row))
}

/// One webhook.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/webhooks/{webhook_id}",
    tag = "webhooks",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("webhook_id" = uuid::Uuid, Path, description = HOOK)),
    responses((status = 200, description = "The webhook", body = WebhookView), crate::openapi::Refusals)
)]
async fn get_webhook(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace, webhook)): Path<(String, String)>,
) -> Result<Json<WebhookView>, ApiError> {
    let (_, row) = one(&state, &principal, &meta, &workspace, &webhook).await?;
    Ok(Json(row.into()))
}

#[derive(Serialize, ToSchema)]
struct WebhookChanged {
    id: Uuid,
}

/// Delete a webhook: nothing more is delivered to it.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{workspace_id}/webhooks/{webhook_id}",
    tag = "webhooks",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("webhook_id" = uuid::Uuid, Path, description = HOOK)),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Committed<WebhookChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace, webhook)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change(
        &state,
        &principal,
        &meta,
        &workspace,
        &webhook,
        |by, webhook_id| WorkspaceCommand::DeleteWebhook { by, webhook_id },
    )
    .await
}

/// Turn a disabled webhook on again: its waiting deliveries go out.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/enable",
    tag = "webhooks",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("webhook_id" = uuid::Uuid, Path, description = HOOK)),
    responses(
        (status = 200, description = "Enabled", body = crate::openapi::Committed<WebhookChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn enable_webhook(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace, webhook)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change(
        &state,
        &principal,
        &meta,
        &workspace,
        &webhook,
        |by, webhook_id| WorkspaceCommand::EnableWebhook { by, webhook_id },
    )
    .await
}

/// Runs the command `make` makes on one webhook of the workspace, as its manager.
async fn change(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    workspace: &str,
    webhook: &str,
    make: impl FnOnce(collab_domain::UserId, Uuid) -> WorkspaceCommand,
) -> Result<Response, ApiError> {
    let (workspace, row) = one(state, principal, meta, workspace, webhook).await?;
    let command = make(principal.id.clone(), row.webhook_id);
    let committed =
        run::<Workspace>(state, principal, meta, workspace.as_uuid(), command, None).await?;
    Ok(command_response(
        StatusCode::OK,
        committed.position,
        WebhookChanged { id: row.webhook_id },
    ))
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// 1–200, 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct AttemptView {
    attempt: i32,
    at: DateTime<Utc>,
    /// The receiver's HTTP status; absent when there was no answer.
    status: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            attempt: a.attempt,
            at: a.at,
            status: a.status,
            error: a.error,
            duration_ms: a.duration_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct DeliveryView {
    /// Also the `webhook-id` header: the same on every attempt.
    id: Uuid,
    /// The event's log position and type.
    position: i64,
    event_type: String,
    /// `pending`, `sending`, `retry`, `succeeded` or `failed`.
    state: String,
    attempts: Vec<AttemptView>,
    /// When it is tried next (for `pending` and `retry`).
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(row: DeliveryRow) -> Self {
        let waiting = matches!(row.state.as_str(), "pending" | "retry");
        Self {
            id: row.delivery_id,
            position: row.position,
            event_type: row.event_type,
            state: row.state,
            attempts: row.tries.0.into_iter().map(AttemptView::from).collect(),
            next_attempt_at: waiting.then_some(row.next_attempt_at),
            created_at: row.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct DeliveryPage {
    deliveries: Vec<DeliveryView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

/// A webhook's deliveries with every attempt, newest first.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/deliveries",
    tag = "webhooks",
    params(("workspace_id" = uuid::Uuid, Path, description = WS), ("webhook_id" = uuid::Uuid, Path, description = HOOK), PageParams),
    responses((status = 200, description = "A page of deliveries", body = DeliveryPage), crate::openapi::Refusals)
)]
async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace, webhook)): Path<(String, String)>,
    Query(params): Query<PageParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let limit = page_limit(params.limit.as_deref())?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor('w', c))
        .transpose()?;
    let (_, row) = one(&state, &principal, &meta, &workspace, &webhook).await?;
    let mut reader = state.reader(&principal).await?;
    let mut rows = read_model::deliveries(&mut reader, row.webhook_id, before, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|d| encode_cursor('w', d.position))
    } else {
        None
    };
    Ok(Json(DeliveryPage {
        deliveries: rows.into_iter().map(DeliveryView::from).collect(),
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
struct RetryQueued {
    id: Uuid,
    state: String,
}

/// Send a delivery again now (a failed one too): it keeps its id, and counts its attempts on.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{workspace_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    params(
        ("workspace_id" = uuid::Uuid, Path, description = WS),
        ("webhook_id" = uuid::Uuid, Path, description = HOOK),
        ("delivery_id" = uuid::Uuid, Path, description = "The delivery")
    ),
    responses((status = 202, description = "Queued", body = RetryQueued), crate::openapi::Refusals)
)]
async fn retry_delivery(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((workspace, webhook, delivery)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<RetryQueued>), ApiError> {
    let delivery = super::uuid_param("delivery_id", &delivery)?;
    let (_, row) = one(&state, &principal, &meta, &workspace, &webhook).await?;
    let state_now: Option<String> = sqlx::query_scalar(
        "UPDATE webhook_deliveries SET state = CASE WHEN state = 'sending' THEN state ELSE 'retry' END, \
         next_attempt_at = now(), updated_at = now() \
         WHERE delivery_id = $1 AND webhook_id = $2 RETURNING state",
    )
    .bind(delivery)
    .bind(row.webhook_id)
    .fetch_optional(&state.pool)
    .await?;
    let state_now = state_now.ok_or(ApiError::NotFound("delivery"))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RetryQueued {
            id: delivery,
            state: state_now,
        }),
    ))
}
