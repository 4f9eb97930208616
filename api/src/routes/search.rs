//! `GET /v1/search`: full-text search over what the caller may read.

use axum::extract::{Query, State};
use axum::Json;
use collab_domain::access::{document_role, AccessFacts};
use collab_domain::{DocumentRole, FolderPath, Scope as ApiScope, WorkspaceId, WorkspaceRole};
use collab_search::{query, Hit, Kind, Request, Scope};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{decode_cursor, encode_cursor, page_limit, path_id};
use crate::error::ApiError;
use crate::extract::{Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// Results past this many are not paged (as in web search: refine the query instead).
const MAX_OFFSET: usize = 1000;

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// Words (all must match), `"a phrase"`, `-excluded`, `a OR b`; the last word also
    /// matches as a prefix while it is being typed (no space after it). At most 500
    /// characters.
    #[param(required = true)]
    pub(crate) q: Option<String>,
    /// Only this workspace.
    #[param(value_type = Option<uuid::Uuid>)]
    pub(crate) workspace: Option<String>,
    /// `document` or `comment`.
    pub(crate) kind: Option<String>,
    /// Only documents in this folder or below (`/a/b`).
    pub(crate) folder: Option<String>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// 1–200, 50 by default.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub(crate) limit: Option<String>,
}

/// One result.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct SearchHit {
    /// `document` or `comment`.
    kind: String,
    /// A comment's thread (comments only).
    thread_id: Option<uuid::Uuid>,
    /// The comment (comments only).
    comment_id: Option<uuid::Uuid>,
    /// The document (for a comment: the document it is on).
    document_id: uuid::Uuid,
    workspace_id: uuid::Uuid,
    title: String,
    folder: String,
    updated_at: chrono::DateTime<chrono::Utc>,
    score: f32,
    /// The title in pieces; the matched words have `highlight: true`.
    title_highlight: Vec<Piece>,
    /// The best passage of the text (up to 200 characters) in pieces; the matched words
    /// have `highlight: true`.
    snippet: Vec<Piece>,
}

/// A piece of highlighted text.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
struct Piece {
    text: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    highlight: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SearchPage {
    #[schema(value_type = Vec<SearchHit>)]
    pub(crate) results: Vec<Hit>,
    /// How many results match, counted up to 1,000.
    pub(crate) total: usize,
    /// More than 1,000 results match (`total` is 1,000).
    pub(crate) total_is_lower_bound: bool,
    /// Pass as `cursor` for the next page; absent on the last.
    pub(crate) next_cursor: Option<String>,
    /// The log position the index reflected when it answered.
    pub(crate) position: i64,
}

/// What the caller may read, from the read models (a share or an unshare counts as soon
/// as the `documents` read model has folded it; read-your-writes waits for that).
/// A membership (workspace, role, the workspace's default document role) or a share (the
/// document).
type ScopeRow = (Option<Uuid>, Option<String>, Option<String>, Option<Uuid>);

async fn scope(state: &AppState, principal: &Principal) -> Result<Scope, ApiError> {
    let mut scope = Scope {
        user: principal.id.as_str().to_owned(),
        ..Scope::default()
    };
    if let Some(service) = &principal.service {
        if service.has(ApiScope::DocumentsRead) || service.has(ApiScope::DocumentsWrite) {
            scope.workspaces.push(service.workspace.as_uuid());
        }
        return Ok(scope);
    }
    // The caller's own memberships and shares, by their authenticated id, in one
    // statement on the server's connection: the rows row-level security's `user_id` policy
    // shows them (migration 0005), without a reader transaction's five round trips (the
    // most frequent cost of a search after the index itself). Like `access::resolve`, this
    // is an authorization decision, not a read of others' data.
    let rows: Vec<ScopeRow> = sqlx::query_as(
        "SELECT m.workspace_id, m.role, w.default_document_role, NULL::uuid \
         FROM rm_workspace_members m JOIN rm_workspaces w USING (workspace_id) \
         WHERE m.user_id = $1 \
         UNION ALL \
         SELECT NULL, NULL, NULL, s.document_id FROM rm_document_shares s WHERE s.user_id = $1",
    )
    .bind(principal.id.as_str())
    .fetch_all(&state.pool)
    .await?;
    let other = collab_domain::UserId::parse("search:someone-else").expect("a valid user id");
    for (workspace, role, default_role, shared) in rows {
        if let Some(document) = shared {
            scope.documents.push(document);
            continue;
        }
        let (Some(workspace), Some(role)) = (workspace, role) else {
            continue;
        };
        let workspace_role = WorkspaceRole::parse(&role).ok();
        let default_member_role = default_role.and_then(|r| DocumentRole::parse(&r).ok());
        let role_for = |creator| {
            document_role(AccessFacts {
                user: &principal.id,
                workspace_role,
                default_member_role,
                created_by: Some(creator),
                shared_role: None,
            })
        };
        if role_for(&other).is_some() {
            scope.workspaces.push(workspace);
        } else if role_for(&principal.id).is_some() {
            scope.own_in.push(workspace);
        }
    }
    Ok(scope)
}

/// Full-text search over the documents (and comments) the caller may read, best first.
#[utoipa::path(
    get,
    path = "/v1/search",
    tag = "search",
    params(SearchParams),
    responses((status = 200, description = "A page of results", body = SearchPage), crate::openapi::Refusals)
)]
async fn search(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Query(params): Query<SearchParams>,
) -> Result<Json<SearchPage>, ApiError> {
    Ok(Json(run(&state, &principal, &meta, params).await?))
}

/// A search for the caller (REST and GraphQL).
pub(crate) async fn run(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    params: SearchParams,
) -> Result<SearchPage, ApiError> {
    let raw = params.q.as_deref().unwrap_or("");
    let parsed = query::parse(raw).map_err(|e| ApiError::InvalidParameter {
        name: "q",
        reason: e.to_string(),
    })?;
    let workspace = params
        .workspace
        .as_deref()
        .map(|w| path_id("workspace", w, WorkspaceId::parse))
        .transpose()?;
    let kind = match params.kind.as_deref() {
        None => None,
        Some("document") => Some(Kind::Document),
        Some("comment") => Some(Kind::Comment),
        Some(_) => {
            return Err(ApiError::InvalidParameter {
                name: "kind",
                reason: "must be document or comment".into(),
            })
        }
    };
    let folder = params
        .folder
        .as_deref()
        .map(|f| {
            FolderPath::parse(f).map_err(|e| ApiError::InvalidParameter {
                name: "folder",
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let limit = page_limit(params.limit.as_deref())? as usize;
    let offset = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor('s', c))
        .transpose()?
        .unwrap_or(0);
    if !(0..MAX_OFFSET as i64).contains(&offset) {
        return Err(ApiError::InvalidParameter {
            name: "cursor",
            reason: "is not a cursor this API returned".into(),
        });
    }
    let offset = offset as usize;
    // Pages stop at the first 1,000 results.
    let limit = limit.min(MAX_OFFSET - offset);
    let search = state.search.as_ref().ok_or(ApiError::NotFound("route"))?;
    state.reach(meta.min_position).await?;
    if let Some(min) = meta.min_position {
        if !search.reach(min, state.read_wait).await {
            return Err(ApiError::NotYetConsistent { requested: min });
        }
    }
    let scope = scope(state, principal).await?;
    let position = search.position();
    let results = search
        .search(Request {
            query: parsed,
            scope,
            workspace: workspace.map(|w| w.as_uuid()),
            folder: folder.map(String::from),
            kind,
            offset,
            limit,
            now_micros: chrono::Utc::now().timestamp_micros(),
        })
        .await
        .map_err(ApiError::internal)?;
    let next = offset + results.hits.len();
    let next_cursor =
        (next < results.total && next < MAX_OFFSET).then(|| encode_cursor('s', next as i64));
    Ok(SearchPage {
        results: results.hits,
        total: results.total,
        total_is_lower_bound: results.total_is_lower_bound,
        next_cursor,
        position,
    })
}
