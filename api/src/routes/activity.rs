//! Activity feeds: `GET /v1/documents/{id}/activity` and `GET /v1/workspaces/{ws}/activity`,
//! human-readable entries newest first, of what the caller may open.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use collab_domain::{DocumentId, WorkspaceId};
use collab_projections::activity::{self as read_model, ActivityRow, Feed};
use collab_projections::workspaces::role_of;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{decode_cursor, encode_cursor, page_limit, path_id};
use crate::error::ApiError;
use crate::extract::{Principal, RequestMeta};
use crate::state::AppState;

/// The read models a feed reads (`history` folds every keystroke, so only the routes that
/// read it wait for it).
const FEED_MODELS: [&str; 2] = [collab_projections::history::NAME, read_model::NAME];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(document_activity))
        .routes(routes!(workspace_activity))
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
struct FeedParams {
    /// 1–200, 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Who did it.
#[derive(Serialize, ToSchema)]
struct Actor {
    /// A user id, or `service:<name>`.
    id: String,
    /// Their display name; null: none (or erased).
    name: Option<String>,
}

/// One entry of a feed.
#[derive(Serialize, ToSchema)]
struct ActivityEntry {
    /// `created`, `renamed`, `moved`, `archived`, `unarchived`, `shared`, `unshared`,
    /// `version_named`, `edited` (one author's burst of edits), `restored`, `commented`,
    /// `resolved`, `reopened`.
    kind: String,
    /// The entry in a sentence.
    summary: String,
    actor: Actor,
    #[schema(value_type = DocumentId)]
    document_id: Uuid,
    /// The document's title now.
    document_title: String,
    /// When it began (an edit burst's first edit) and ended.
    started_at: DateTime<Utc>,
    at: DateTime<Utc>,
    /// The position of the entry's last event (what `cursor` pages by).
    position: i64,
    /// For `edited`: how many edits, characters inserted and deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    edits: Option<EditCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment_id: Option<Uuid>,
    /// For `commented`: the start of the comment as it reads now (at most 280 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    excerpt: Option<String>,
    /// The event's own fields (for metadata entries), e.g. the new title or folder.
    details: Value,
}

#[derive(Serialize, ToSchema)]
struct EditCounts {
    edits: i32,
    inserted: i64,
    deleted: i64,
}

#[derive(Serialize, ToSchema)]
struct ActivityPage {
    entries: Vec<ActivityEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

fn quoted(value: &Value) -> String {
    format!("“{}”", value.as_str().unwrap_or_default())
}

/// The entry in a sentence; `title` names the document (the workspace feed) or not.
fn summary(row: &ActivityRow, title: Option<&str>) -> String {
    let who = row.actor_name.clone().unwrap_or_else(|| {
        row.actor
            .strip_prefix("user:")
            .unwrap_or(&row.actor)
            .to_owned()
    });
    let it = title.map_or_else(|| "the document".to_owned(), |t| format!("“{t}”"));
    let d = &row.details.0;
    match row.kind.as_str() {
        "created" => format!("{who} created {}", quoted(&d["title"])),
        "renamed" => match title {
            Some(_) => format!("{who} renamed a document to {}", quoted(&d["title"])),
            None => format!("{who} renamed the document to {}", quoted(&d["title"])),
        },
        "moved" => format!(
            "{who} moved {it} to {}",
            d["folder"].as_str().unwrap_or("/")
        ),
        "archived" => format!("{who} archived {it}"),
        "unarchived" => format!("{who} took {it} out of the archive"),
        "shared" => format!(
            "{who} shared {it} with {} as {}",
            d["user_id"].as_str().unwrap_or("someone"),
            d["role"].as_str().unwrap_or("viewer")
        ),
        "unshared" => format!(
            "{who} stopped sharing {it} with {}",
            d["user_id"].as_str().unwrap_or("someone")
        ),
        "version_named" => format!("{who} named a version of {it} {}", quoted(&d["name"])),
        "from_template" => format!("{who} started {it} from a template"),
        "restored" => format!(
            "{who} restored {it} to version {}",
            d["from_version"].as_i64().unwrap_or(0)
        ),
        "edited" => format!(
            "{who} edited {it} ({} {}, +{} −{} characters)",
            row.edits,
            if row.edits == 1 { "edit" } else { "edits" },
            row.inserted,
            row.deleted
        ),
        "commented" => format!("{who} commented on {it}"),
        "resolved" => format!("{who} resolved a thread on {it}"),
        "reopened" => format!("{who} reopened a thread on {it}"),
        other => format!("{who}: {other} ({it})"),
    }
}

fn entry(row: ActivityRow, in_workspace: bool) -> ActivityEntry {
    let summary = summary(&row, in_workspace.then_some(row.document_title.as_str()));
    let actor_id = row
        .actor
        .strip_prefix("user:")
        .unwrap_or(&row.actor)
        .to_owned();
    ActivityEntry {
        edits: (row.kind == "edited").then_some(EditCounts {
            edits: row.edits,
            inserted: row.inserted,
            deleted: row.deleted,
        }),
        kind: row.kind,
        summary,
        actor: Actor {
            id: actor_id,
            name: row.actor_name,
        },
        document_id: row.document_id,
        document_title: row.document_title,
        started_at: row.started_at,
        at: row.ended_at,
        position: row.position,
        thread_id: row.thread_id,
        comment_id: row.comment_id,
        excerpt: row.comment_body.map(super::excerpt),
        details: row.details.0,
    }
}

fn page(mut rows: Vec<ActivityRow>, limit: i64, in_workspace: bool) -> ActivityPage {
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| encode_cursor('a', r.position))
    } else {
        None
    };
    ActivityPage {
        entries: rows.into_iter().map(|r| entry(r, in_workspace)).collect(),
        next_cursor,
    }
}

/// What happened to a document, newest first (anyone who can read it).
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/activity",
    tag = "documents",
    params(("document_id" = uuid::Uuid, Path, description = "The document"), FeedParams),
    responses((status = 200, description = "A page of the feed", body = ActivityPage), crate::openapi::Refusals)
)]
async fn document_activity(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    Query(params): Query<FeedParams>,
) -> Result<Json<ActivityPage>, ApiError> {
    let document = path_id("document_id", &document, DocumentId::parse)?;
    let limit = page_limit(params.limit.as_deref())?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor('a', c))
        .transpose()?;
    state
        .document_access(document, &principal, meta.link.as_ref())
        .await?;
    state
        .reach_with_all(meta.min_position, &FEED_MODELS)
        .await?;
    let mut reader = state.reader_for_document(&principal, document).await?;
    let rows = read_model::feed(
        &mut reader,
        Feed::Document(document.as_uuid()),
        before,
        limit + 1,
    )
    .await?;
    Ok(Json(page(rows, limit, false)))
}

/// What happened in a workspace, newest first: only about the documents the caller may
/// open (members; a guest sees what is shared with them).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{workspace_id}/activity",
    tag = "workspaces",
    params(("workspace_id" = uuid::Uuid, Path, description = "The workspace"), FeedParams),
    responses((status = 200, description = "A page of the feed", body = ActivityPage), crate::openapi::Refusals)
)]
async fn workspace_activity(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(workspace): Path<String>,
    Query(params): Query<FeedParams>,
) -> Result<Json<ActivityPage>, ApiError> {
    let workspace = path_id("workspace_id", &workspace, WorkspaceId::parse)?;
    let limit = page_limit(params.limit.as_deref())?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor('a', c))
        .transpose()?;
    state
        .reach_with_all(meta.min_position, &FEED_MODELS)
        .await?;
    let mut reader = state.reader_with_shares(&principal).await?;
    // A service account with a documents scope sees all of its workspace's documents.
    let all = principal
        .service
        .as_ref()
        .is_some_and(|s| s.document_role(workspace).is_some());
    if !all
        && role_of(&mut *reader, workspace, &principal.id)
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound("workspace"));
    }
    let rows = read_model::feed(
        &mut reader,
        Feed::Workspace {
            id: workspace.as_uuid(),
            all,
        },
        before,
        limit + 1,
    )
    .await?;
    Ok(Json(page(rows, limit, true)))
}
