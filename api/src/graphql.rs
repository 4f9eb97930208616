//! GraphQL (`POST /v1/graphql`, and `GET /v1/graphql` upgraded to a WebSocket speaking
//! graphql-transport-ws for subscriptions), through async-graphql.
//!
//! Every resolver calls the same functions as the REST handlers (`routes::documents::create`,
//! `routes::search::run`...): the same parsing, the same authorization on the aggregates,
//! the same row-level-security readers, so no rule has a second copy here. Errors carry
//! the REST error's `code` and `status` in their `extensions`.
//!
//! The schema is a federation subgraph (`@key(fields: "id")` on `Workspace`, `Document`
//! and `User`); queries deeper than [`MAX_DEPTH`] or costlier than [`MAX_COMPLEXITY`] are
//! refused before they run. Its SDL is committed as `docs/schema.graphql` (a test compares
//! it with the code; `collab graphql sdl` prints it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{
    ComplexObject, Context, Data, Error, ErrorExtensions, Json, Object, Result, Schema,
    SimpleObject, Subscription, ID,
};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use collab_domain::access::{access_reduced_by, AccessReduced};
use collab_domain::replay::{EventLine, PayloadForm};
use collab_domain::{DocumentId, DomainEvent, EventCodec, StreamCategory};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::extract::{authenticate, Principal, RequestMeta};
use crate::routes::{
    comments, documents, history, members, notifications, permissions, search, workspaces,
};
use crate::state::AppState;

/// Deepest selection a query may have.
pub const MAX_DEPTH: usize = 10;
/// Most fields (lists counted by their children) a query may select.
pub const MAX_COMPLEXITY: usize = 500;

pub type CollabSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// The schema (without per-request data).
pub fn schema() -> CollabSchema {
    Schema::build(Query, Mutation, SubscriptionRoot)
        .enable_federation()
        // Routers that federate subscriptions (Apollo Router's) see them too.
        .enable_subscription_in_federation()
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema's SDL as a federation subgraph (what `docs/schema.graphql` holds).
pub fn sdl() -> String {
    schema().sdl_with_options(async_graphql::SDLExportOptions::new().federation())
}

/// Who asks, for this request (or this WebSocket).
struct Caller {
    /// As last authenticated: for a request, by its `Authorization`; for a WebSocket,
    /// again at every operation (see [`root`]).
    principal: RwLock<Arc<Principal>>,
    meta: RequestMeta,
    /// A WebSocket's `Authorization` value (None: an HTTP request).
    socket_token: Option<String>,
    /// Root fields resolved so far.
    root_fields: AtomicUsize,
}

impl Caller {
    fn new(principal: Principal, meta: RequestMeta, socket_token: Option<String>) -> Self {
        Self {
            principal: RwLock::new(Arc::new(principal)),
            meta,
            socket_token,
            root_fields: AtomicUsize::new(0),
        }
    }

    fn principal(&self) -> Arc<Principal> {
        self.principal
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn context<'a>(ctx: &'a Context<'_>) -> Result<(&'a AppState, &'a Caller)> {
    Ok((ctx.data::<AppState>()?, ctx.data::<Arc<Caller>>()?.as_ref()))
}

/// The context of a root field (an operation's top-level query, mutation or
/// subscription field). A WebSocket authenticates its token again for each — a revoked API
/// key or an expired token stops working on a socket already open — which also charges the
/// user's rate limit; a request's fields after its first are charged too (the request
/// itself was charged once).
async fn root<'a>(ctx: &'a Context<'_>) -> Result<(&'a AppState, &'a Caller)> {
    let (state, caller) = context(ctx)?;
    let earlier = caller.root_fields.fetch_add(1, Ordering::Relaxed);
    match &caller.socket_token {
        Some(token) => {
            let fresh = authenticate(state, Some(token)).await.map_err(refused)?;
            *caller.principal.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        }
        None if earlier > 0 => state
            .limits
            .check_user(&caller.principal().id)
            .map_err(refused)?,
        None => {}
    }
    Ok((state, caller))
}

/// A workspace-scoped field counts against the workspace's rate limit, as a REST route
/// under `/v1/workspaces/{id}` does.
fn charge_workspace(state: &AppState, id: &str) -> Result<()> {
    if let Ok(id) = collab_domain::WorkspaceId::parse(id) {
        state.limits.check_workspace(id).map_err(refused)?;
    }
    Ok(())
}

/// A REST error as a GraphQL error: the message, and `code`/`status` as extensions.
fn refused(error: ApiError) -> Error {
    if let ApiError::Internal(cause) = &error {
        tracing::error!(error = format!("{cause:#}"), "graphql request failed");
    }
    let code = error.code();
    let status = error.status().as_u16();
    Error::new(error.to_string()).extend_with(|_, extensions| {
        extensions.set("code", code);
        extensions.set("status", status);
    })
}

// ---------------------------------------------------------------- types

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Workspace {
    id: ID,
    name: String,
    /// The caller's role.
    role: String,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
    /// The role members get on documents not shared with them (null: none).
    default_document_role: Option<String>,
}

impl From<collab_projections::workspaces::WorkspaceView> for Workspace {
    fn from(w: collab_projections::workspaces::WorkspaceView) -> Self {
        Self {
            id: ID(w.id.to_string()),
            name: w.name,
            role: w.role,
            created_by: w.created_by,
            created_at: w.created_at,
            updated_at: w.updated_at,
            version: w.version,
            default_document_role: w.default_document_role,
        }
    }
}

#[ComplexObject]
impl Workspace {
    /// The workspace's documents the caller can read, newest first.
    async fn documents(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "1–200, 50 by default")] limit: Option<i32>,
        #[graphql(desc = "`nextCursor` of the previous page")] cursor: Option<String>,
        #[graphql(desc = "`exclude` (default), `include` or `only`")] archived: Option<String>,
    ) -> Result<DocumentPage> {
        list_documents(ctx, &self.id, limit, cursor, archived).await
    }

    /// Its members.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<Member>> {
        let (state, caller) = context(ctx)?;
        charge_workspace(state, &self.id)?;
        Ok(
            members::list(state, &caller.principal(), &caller.meta, &self.id)
                .await
                .map_err(refused)?
                .into_iter()
                .map(|m| Member {
                    user_id: m.user_id,
                    display_name: m.display_name,
                    role: m.role,
                    added_at: m.added_at,
                })
                .collect(),
        )
    }
}

#[derive(SimpleObject)]
pub struct Member {
    user_id: String,
    /// The name the member gave in their profile (null: none, or erased).
    display_name: Option<String>,
    role: String,
    added_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Document {
    id: ID,
    workspace_id: ID,
    title: String,
    folder: String,
    archived: bool,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

impl From<collab_projections::documents::DocumentView> for Document {
    fn from(d: collab_projections::documents::DocumentView) -> Self {
        Self {
            id: ID(d.id.to_string()),
            workspace_id: ID(d.workspace_id.to_string()),
            title: d.title,
            folder: d.folder,
            archived: d.archived,
            created_by: d.created_by,
            created_at: d.created_at,
            updated_at: d.updated_at,
            version: d.version,
        }
    }
}

#[ComplexObject]
impl Document {
    /// The caller's role on the document (from the aggregates, like every command).
    async fn role(&self, ctx: &Context<'_>) -> Result<String> {
        let (state, caller) = context(ctx)?;
        // The aggregates decide, as for `GET /v1/documents/{id}`; the row is already here.
        let id =
            crate::routes::path_id("document_id", &self.id, DocumentId::parse).map_err(refused)?;
        let access = state
            .document_access(id, &caller.principal(), caller.meta.link.as_ref())
            .await
            .map_err(refused)?;
        Ok(access.role.as_str().to_owned())
    }

    /// Comment threads (`open` by default, `resolved` or `all`), oldest first, each with
    /// its comments and its passage as it is in the current text.
    async fn threads(&self, ctx: &Context<'_>, status: Option<String>) -> Result<Vec<Thread>> {
        let (state, caller) = context(ctx)?;
        let threads = comments::list(
            state,
            &caller.principal(),
            &caller.meta,
            &self.id,
            status.as_deref(),
        )
        .await
        .map_err(refused)?;
        Ok(threads.into_iter().map(Thread::from).collect())
    }

    /// Edit sessions, restores, named versions and metadata changes, newest first.
    async fn history(
        &self,
        ctx: &Context<'_>,
        limit: Option<i32>,
        cursor: Option<String>,
    ) -> Result<HistoryPage> {
        let (state, caller) = context(ctx)?;
        let limit = limit.map(|l| l.to_string());
        let page = history::history_page(
            state,
            &caller.principal(),
            &caller.meta,
            &self.id,
            cursor.as_deref(),
            limit.as_deref(),
        )
        .await
        .map_err(refused)?;
        Ok(HistoryPage {
            entries: page
                .entries
                .into_iter()
                .map(|e| HistoryEntry {
                    kind: e.kind,
                    actor: e.actor,
                    first_position: e.first_position,
                    last_position: e.last_position,
                    first_version: e.first_version,
                    last_version: e.last_version,
                    edits: e.edits,
                    inserted: e.inserted,
                    deleted: e.deleted,
                    started_at: e.started_at,
                    ended_at: e.ended_at,
                    details: Json(e.details.0),
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }
}

#[derive(SimpleObject)]
pub struct DocumentPage {
    documents: Vec<Document>,
    /// Pass as `cursor` for the next (older) page; null on the last.
    next_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct HistoryEntry {
    /// `edits`, `restored`, `VersionNamed`, `VersionDeleted` or a document event type.
    kind: String,
    actor: String,
    first_position: i64,
    last_position: i64,
    first_version: Option<i64>,
    last_version: Option<i64>,
    edits: i32,
    inserted: i64,
    deleted: i64,
    started_at: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    details: Json<serde_json::Value>,
}

#[derive(SimpleObject)]
pub struct HistoryPage {
    entries: Vec<HistoryEntry>,
    next_cursor: Option<String>,
}

/// A person, by the id the identity provider gives them.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct User {
    id: ID,
}

#[ComplexObject]
impl User {
    /// The workspaces this user belongs to: only for the caller themselves (null otherwise).
    async fn workspaces(&self, ctx: &Context<'_>) -> Result<Option<Vec<Workspace>>> {
        let (state, caller) = context(ctx)?;
        if self.id.as_str() != caller.principal().id.as_str() {
            return Ok(None);
        }
        Ok(Some(list_workspaces(state, caller).await?))
    }
}

#[derive(SimpleObject)]
pub struct Piece {
    text: String,
    highlight: bool,
}

fn pieces(pieces: Vec<collab_search::Piece>) -> Vec<Piece> {
    pieces
        .into_iter()
        .map(|p| Piece {
            text: p.text,
            highlight: p.highlight,
        })
        .collect()
}

#[derive(SimpleObject)]
pub struct SearchResult {
    /// `document` or `comment`.
    kind: String,
    /// A comment's thread (comments only).
    thread_id: Option<ID>,
    /// The comment (comments only).
    comment_id: Option<ID>,
    document_id: ID,
    workspace_id: ID,
    title: String,
    folder: String,
    updated_at: DateTime<Utc>,
    score: f32,
    title_highlight: Vec<Piece>,
    snippet: Vec<Piece>,
}

#[derive(SimpleObject)]
pub struct SearchPage {
    results: Vec<SearchResult>,
    /// How many results match, counted up to 1,000.
    total: i64,
    /// More than 1,000 results match (`total` is 1,000).
    total_is_lower_bound: bool,
    next_cursor: Option<String>,
    /// The log position the index reflected when it answered.
    position: i64,
}

/// Where a thread's passage is now.
#[derive(SimpleObject)]
pub struct Anchor {
    root: String,
    /// Character offsets in the root's current text (null when orphaned).
    from: Option<i64>,
    to: Option<i64>,
    quote: Option<String>,
    /// All of the passage's text was deleted.
    orphaned: bool,
    /// The passage's text when the thread was opened.
    original_quote: String,
    /// The anchor's Yjs relative positions, base64 (a Yjs editor places the passage with
    /// `Y.decodeRelativePosition`).
    start: String,
    end: String,
}

impl From<comments::AnchorView> for Anchor {
    fn from(a: comments::AnchorView) -> Self {
        Self {
            root: a.root,
            from: a.from.map(|n| n as i64),
            to: a.to.map(|n| n as i64),
            quote: a.quote,
            orphaned: a.orphaned,
            original_quote: a.original_quote,
            start: a.start,
            end: a.end,
        }
    }
}

#[derive(SimpleObject)]
pub struct Reaction {
    emoji: String,
    count: i64,
    users: Vec<String>,
}

#[derive(SimpleObject)]
pub struct Comment {
    id: ID,
    thread_id: ID,
    author: String,
    author_name: Option<String>,
    /// Null once deleted.
    body: Option<String>,
    deleted: bool,
    mentions: Vec<String>,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
    reactions: Vec<Reaction>,
}

/// A comment thread on a passage of a document.
#[derive(SimpleObject)]
pub struct Thread {
    id: ID,
    document_id: ID,
    /// `open` or `resolved`.
    status: String,
    author: String,
    author_name: Option<String>,
    anchor: Anchor,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    resolved_by: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
    version: i64,
    comments: Vec<Comment>,
}

impl From<comments::ThreadView> for Thread {
    fn from(t: comments::ThreadView) -> Self {
        Self {
            id: ID(t.thread_id.to_string()),
            document_id: ID(t.document_id.to_string()),
            status: t.status.to_owned(),
            author: t.author,
            author_name: t.author_name,
            anchor: t.anchor.into(),
            created_at: t.created_at,
            updated_at: t.updated_at,
            resolved_by: t.resolved_by,
            resolved_at: t.resolved_at,
            version: t.version,
            comments: t
                .comments
                .into_iter()
                .map(|c| Comment {
                    id: ID(c.comment_id.to_string()),
                    thread_id: ID(c.thread_id.to_string()),
                    author: c.author,
                    author_name: c.author_name,
                    body: c.body,
                    deleted: c.deleted,
                    mentions: c.mentions,
                    created_at: c.created_at,
                    edited_at: c.edited_at,
                    reactions: c
                        .reactions
                        .into_iter()
                        .map(|r| Reaction {
                            emoji: r.emoji,
                            count: r.count as i64,
                            users: r.users,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A comment written (a thread opened, a reply, an edit).
#[derive(SimpleObject)]
pub struct CommentChange {
    thread_id: ID,
    comment_id: ID,
    /// The passage as anchored (opening a thread only).
    anchor: Option<Anchor>,
    /// Mentioned people who cannot read the document: they are not told.
    mentions_without_access: Vec<String>,
    position: i64,
}

/// One of the caller's notifications (as `GET /v1/me/notifications` gives it).
#[derive(SimpleObject)]
pub struct Notification {
    id: ID,
    /// `mention`, `reply`, `share` or `resolved`.
    kind: String,
    read: bool,
    created_at: DateTime<Utc>,
    /// The log position of what caused it.
    position: i64,
    workspace_id: ID,
    document_id: ID,
    document_title: String,
    thread_id: Option<ID>,
    comment_id: Option<ID>,
    /// The start of the comment as it reads now.
    excerpt: Option<String>,
    actor_id: String,
    actor_name: Option<String>,
    /// For a share: the role given.
    role: Option<String>,
    /// `immediate`, `digest` or `off`.
    email_mode: String,
    /// How the email went (absent until the mailer takes it on).
    email_state: Option<String>,
}

impl From<notifications::NotificationView> for Notification {
    fn from(n: notifications::NotificationView) -> Self {
        Self {
            id: ID(n.id.to_string()),
            kind: n.kind.as_str().to_owned(),
            read: n.read,
            created_at: n.created_at,
            position: n.position,
            workspace_id: ID(n.workspace_id.to_string()),
            document_id: ID(n.document_id.to_string()),
            document_title: n.document_title,
            thread_id: n.thread_id.map(|t| ID(t.to_string())),
            comment_id: n.comment_id.map(|c| ID(c.to_string())),
            excerpt: n.excerpt,
            actor_id: n.actor.id,
            actor_name: n.actor.name,
            role: n.role,
            email_mode: n.email.mode,
            email_state: n.email.state,
        }
    }
}

#[derive(SimpleObject)]
pub struct NotificationPage {
    notifications: Vec<Notification>,
    next_cursor: Option<String>,
    /// All of the caller's unread notifications, not just this page's.
    unread_count: i64,
}

/// Notifications marked read.
#[derive(SimpleObject)]
pub struct NotificationsRead {
    unread_count: i64,
    position: i64,
}

/// A thread changed (resolved, reopened, a comment deleted, a reaction).
#[derive(SimpleObject)]
pub struct ThreadChange {
    thread_id: ID,
    version: i64,
    position: i64,
}

fn thread_change((position, changed): (i64, comments::ThreadChanged)) -> ThreadChange {
    ThreadChange {
        thread_id: ID(changed.thread_id.to_string()),
        version: changed.version,
        position,
    }
}

fn comment_change((position, written): (i64, comments::CommentWritten)) -> CommentChange {
    CommentChange {
        thread_id: ID(written.thread_id.to_string()),
        comment_id: ID(written.comment_id.to_string()),
        anchor: None,
        mentions_without_access: written.mentions_without_access,
        position,
    }
}

/// What a command did: the global position of its last event (send it back as
/// `X-Collab-Min-Position` to read your write) and the stream's new version.
#[derive(SimpleObject)]
pub struct DocumentChange {
    id: ID,
    version: i64,
    position: i64,
    title: Option<String>,
    folder: Option<String>,
}

#[derive(SimpleObject)]
pub struct WorkspaceChange {
    id: ID,
    name: String,
    role: String,
    version: i64,
    position: i64,
}

#[derive(SimpleObject)]
pub struct ShareChange {
    /// `user:<id>`.
    principal: String,
    /// The role granted (null: the share was taken away).
    role: Option<String>,
    position: i64,
}

/// An event of a document's stream as it is committed.
#[derive(SimpleObject)]
pub struct DocumentEvent {
    position: i64,
    /// The event type (`DocumentRenamed`, `DocumentShared`, `VersionNamed`...).
    #[graphql(name = "type")]
    event_type: String,
    stream_id: String,
    stream_version: i64,
    actor: String,
    recorded_at: String,
    /// The event's data as the catalogue describes it.
    data: Json<serde_json::Value>,
}

// ---------------------------------------------------------------- shared resolvers

async fn list_workspaces(state: &AppState, caller: &Caller) -> Result<Vec<Workspace>> {
    let views = workspaces::list(state, &caller.principal(), &caller.meta)
        .await
        .map_err(refused)?;
    Ok(views.into_iter().map(Workspace::from).collect())
}

/// A workspace the caller belongs to; null for an id that is not one (as `document`).
async fn get_workspace(state: &AppState, caller: &Caller, id: &str) -> Result<Option<Workspace>> {
    charge_workspace(state, id)?;
    match workspaces::get(state, &caller.principal(), &caller.meta, id).await {
        Ok(view) => Ok(Some(view.into())),
        Err(ApiError::NotFound(_) | ApiError::InvalidParameter { .. }) => Ok(None),
        Err(other) => Err(refused(other)),
    }
}

async fn get_document(state: &AppState, caller: &Caller, id: &str) -> Result<Option<Document>> {
    match documents::get(state, &caller.principal(), &caller.meta, id).await {
        Ok(document) => Ok(Some(document.document.into())),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(other) => Err(refused(other)),
    }
}

async fn list_documents(
    ctx: &Context<'_>,
    workspace_id: &str,
    limit: Option<i32>,
    cursor: Option<String>,
    archived: Option<String>,
) -> Result<DocumentPage> {
    let (state, caller) = context(ctx)?;
    charge_workspace(state, workspace_id)?;
    let page = documents::list(
        state,
        &caller.principal(),
        &caller.meta,
        workspace_id,
        documents::ListParams {
            limit: limit.map(|l| l.to_string()),
            cursor,
            archived,
        },
    )
    .await
    .map_err(refused)?;
    Ok(DocumentPage {
        documents: page.documents.into_iter().map(Document::from).collect(),
        next_cursor: page.next_cursor,
    })
}

// ---------------------------------------------------------------- roots

pub struct Query;

#[Object]
impl Query {
    /// The signed-in user (or service account).
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        let (_, caller) = root(ctx).await?;
        Ok(User {
            id: ID(caller.principal().id.as_str().to_owned()),
        })
    }

    /// The workspaces the caller belongs to, oldest first.
    async fn workspaces(&self, ctx: &Context<'_>) -> Result<Vec<Workspace>> {
        let (state, caller) = root(ctx).await?;
        list_workspaces(state, caller).await
    }

    /// A workspace the caller belongs to (null: none such).
    async fn workspace(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Workspace>> {
        let (state, caller) = root(ctx).await?;
        get_workspace(state, caller, &id).await
    }

    /// A page of a workspace's documents the caller can read, newest first.
    async fn documents(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        limit: Option<i32>,
        cursor: Option<String>,
        archived: Option<String>,
    ) -> Result<DocumentPage> {
        root(ctx).await?;
        list_documents(ctx, &workspace_id, limit, cursor, archived).await
    }

    /// A document the caller can read (null: none such, or not visible).
    async fn document(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Document>> {
        let (state, caller) = root(ctx).await?;
        get_document(state, caller, &id).await
    }

    /// Full-text search over what the caller may read (the syntax of `GET /v1/search`).
    // Each argument is a GraphQL argument.
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        ctx: &Context<'_>,
        q: String,
        workspace_id: Option<ID>,
        #[graphql(desc = "`document` or `comment`")] kind: Option<String>,
        folder: Option<String>,
        limit: Option<i32>,
        cursor: Option<String>,
    ) -> Result<SearchPage> {
        let (state, caller) = root(ctx).await?;
        let page = search::run(
            state,
            &caller.principal(),
            &caller.meta,
            search::SearchParams {
                q: Some(q),
                workspace: workspace_id.map(|w| w.0),
                kind,
                folder,
                cursor,
                limit: limit.map(|l| l.to_string()),
            },
        )
        .await
        .map_err(refused)?;
        Ok(SearchPage {
            results: page
                .results
                .into_iter()
                .map(|hit| SearchResult {
                    kind: hit.kind.to_owned(),
                    thread_id: hit.thread_id.map(ID),
                    comment_id: hit.comment_id.map(ID),
                    document_id: ID(hit.document_id),
                    workspace_id: ID(hit.workspace_id),
                    title: hit.title,
                    folder: hit.folder,
                    updated_at: hit.updated_at,
                    score: hit.score,
                    title_highlight: pieces(hit.title_highlight),
                    snippet: pieces(hit.snippet),
                })
                .collect(),
            total: page.total as i64,
            total_is_lower_bound: page.total_is_lower_bound,
            next_cursor: page.next_cursor,
            position: page.position,
        })
    }

    /// The caller's notifications, newest first (`unread: true` for unread ones only).
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        unread: Option<bool>,
        limit: Option<i32>,
        cursor: Option<String>,
    ) -> Result<NotificationPage> {
        let (state, caller) = root(ctx).await?;
        let page = notifications::page(
            state,
            &caller.principal(),
            &caller.meta,
            notifications::ListParams {
                unread: unread.map(|u| u.to_string()),
                limit: limit.map(|l| l.to_string()),
                cursor,
            },
        )
        .await
        .map_err(refused)?;
        Ok(NotificationPage {
            notifications: page
                .notifications
                .into_iter()
                .map(Notification::from)
                .collect(),
            next_cursor: page.next_cursor,
            unread_count: page.unread_count,
        })
    }

    #[graphql(entity)]
    async fn find_workspace_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Workspace>> {
        let (state, caller) = root(ctx).await?;
        get_workspace(state, caller, &id).await
    }

    #[graphql(entity)]
    async fn find_document_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Document>> {
        let (state, caller) = root(ctx).await?;
        get_document(state, caller, &id).await
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<User> {
        root(ctx).await?;
        Ok(User { id })
    }
}

pub struct Mutation;

fn document_change(position: i64, changed: documents::DocumentChanged) -> DocumentChange {
    DocumentChange {
        id: ID(changed.id.to_string()),
        version: changed.version,
        position,
        title: changed.title,
        folder: changed.folder,
    }
}

#[Object]
impl Mutation {
    /// Open a comment thread on a passage (commenters and above): `from`/`to` character
    /// offsets in the root's text (a `Y.Text`, or a `Y.XmlFragment`'s text nodes one per line),
    /// or `start`/`end` Yjs relative positions (base64).
    #[allow(clippy::too_many_arguments)]
    async fn open_thread(
        &self,
        ctx: &Context<'_>,
        document_id: ID,
        #[graphql(name = "root")] root_name: String,
        from: Option<i64>,
        to: Option<i64>,
        start: Option<String>,
        end: Option<String>,
        body: String,
    ) -> Result<CommentChange> {
        let (state, caller) = root(ctx).await?;
        let offset = |n: Option<i64>| n.map(|n| u64::try_from(n).unwrap_or(u64::MAX));
        let input = comments::OpenThreadBody {
            anchor: comments::AnchorBody {
                root: root_name,
                from: offset(from),
                to: offset(to),
                start,
                end,
            },
            body,
        };
        let (position, opened) = comments::open(
            state,
            &caller.principal(),
            &caller.meta,
            &document_id,
            input,
        )
        .await
        .map_err(refused)?;
        Ok(CommentChange {
            thread_id: ID(opened.thread_id.to_string()),
            comment_id: ID(opened.comment_id.to_string()),
            anchor: Some(opened.anchor.into()),
            mentions_without_access: opened.mentions_without_access,
            position,
        })
    }

    /// Reply in a thread (commenters and above).
    async fn reply_to_thread(
        &self,
        ctx: &Context<'_>,
        thread_id: ID,
        body: String,
    ) -> Result<CommentChange> {
        let (state, caller) = root(ctx).await?;
        comments::add_reply(state, &caller.principal(), &caller.meta, &thread_id, &body)
            .await
            .map(comment_change)
            .map_err(refused)
    }

    /// Mark notifications read: some of the caller's (`ids`), or all of them (`all: true`).
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        ids: Option<Vec<ID>>,
        all: Option<bool>,
    ) -> Result<NotificationsRead> {
        let (state, caller) = root(ctx).await?;
        let ids = ids
            .map(|ids| {
                ids.iter()
                    .map(|id| uuid::Uuid::parse_str(id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|_| {
                refused(ApiError::InvalidField(collab_domain::InvalidValue::new(
                    "ids",
                    "must be notification ids",
                )))
            })?;
        let (position, unread_count) =
            notifications::mark(state, &caller.principal(), &caller.meta, ids, all)
                .await
                .map_err(refused)?;
        Ok(NotificationsRead {
            unread_count,
            position,
        })
    }

    /// Change a comment's text (its author).
    async fn edit_comment(&self, ctx: &Context<'_>, id: ID, body: String) -> Result<CommentChange> {
        let (state, caller) = root(ctx).await?;
        comments::edit(state, &caller.principal(), &caller.meta, &id, &body)
            .await
            .map(comment_change)
            .map_err(refused)
    }

    /// Delete a comment (its author or the document's owner).
    async fn delete_comment(&self, ctx: &Context<'_>, id: ID) -> Result<ThreadChange> {
        let (state, caller) = root(ctx).await?;
        comments::delete(state, &caller.principal(), &caller.meta, &id)
            .await
            .map(thread_change)
            .map_err(refused)
    }

    /// Resolve a thread (commenters and above).
    async fn resolve_thread(&self, ctx: &Context<'_>, id: ID) -> Result<ThreadChange> {
        let (state, caller) = root(ctx).await?;
        comments::set_resolved(state, &caller.principal(), &caller.meta, &id, true)
            .await
            .map(thread_change)
            .map_err(refused)
    }

    /// Reopen a resolved thread (commenters and above).
    async fn reopen_thread(&self, ctx: &Context<'_>, id: ID) -> Result<ThreadChange> {
        let (state, caller) = root(ctx).await?;
        comments::set_resolved(state, &caller.principal(), &caller.meta, &id, false)
            .await
            .map(thread_change)
            .map_err(refused)
    }

    /// React to a comment with one emoji, or take the reaction back (`add: false`).
    async fn react_to_comment(
        &self,
        ctx: &Context<'_>,
        comment_id: ID,
        emoji: String,
        add: bool,
    ) -> Result<ThreadChange> {
        let (state, caller) = root(ctx).await?;
        comments::react(
            state,
            &caller.principal(),
            &caller.meta,
            &comment_id,
            &emoji,
            add,
        )
        .await
        .map(thread_change)
        .map_err(refused)
    }

    /// Create a workspace; the caller becomes its owner.
    async fn create_workspace(&self, ctx: &Context<'_>, name: String) -> Result<WorkspaceChange> {
        let (state, caller) = root(ctx).await?;
        let (position, created) = workspaces::create(
            state,
            &caller.principal(),
            &caller.meta,
            workspaces::WorkspaceBody { name },
        )
        .await
        .map_err(refused)?;
        Ok(WorkspaceChange {
            id: ID(created.id.to_string()),
            name: created.name,
            role: created.role.as_str().to_owned(),
            version: created.version,
            position,
        })
    }

    /// Create a document (members; guests cannot).
    async fn create_document(
        &self,
        ctx: &Context<'_>,
        workspace_id: ID,
        title: String,
        folder: Option<String>,
    ) -> Result<DocumentChange> {
        let (state, caller) = root(ctx).await?;
        charge_workspace(state, &workspace_id)?;
        let (position, created) = documents::create(
            state,
            &caller.principal(),
            &caller.meta,
            &workspace_id,
            documents::CreateDocumentBody {
                title,
                folder,
                template_id: None,
            },
        )
        .await
        .map_err(refused)?;
        Ok(DocumentChange {
            id: ID(created.id.to_string()),
            version: created.version,
            position,
            title: Some(created.title),
            folder: Some(created.folder),
        })
    }

    /// Rename a document (editors).
    async fn rename_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
        title: String,
    ) -> Result<DocumentChange> {
        let (state, caller) = root(ctx).await?;
        let body = documents::UpdateDocumentBody {
            title: Some(title),
            folder: None,
        };
        let (position, changed) =
            documents::update(state, &caller.principal(), &caller.meta, &id, body)
                .await
                .map_err(refused)?;
        Ok(document_change(position, changed))
    }

    /// Move a document to another folder (editors).
    async fn move_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
        folder: String,
    ) -> Result<DocumentChange> {
        let (state, caller) = root(ctx).await?;
        let body = documents::UpdateDocumentBody {
            title: None,
            folder: Some(folder),
        };
        let (position, changed) =
            documents::update(state, &caller.principal(), &caller.meta, &id, body)
                .await
                .map_err(refused)?;
        Ok(document_change(position, changed))
    }

    /// Archive a document (editors).
    async fn archive_document(&self, ctx: &Context<'_>, id: ID) -> Result<DocumentChange> {
        lifecycle(ctx, &id, documents::archive_command).await
    }

    /// Restore an archived document (editors).
    async fn restore_document(&self, ctx: &Context<'_>, id: ID) -> Result<DocumentChange> {
        lifecycle(ctx, &id, documents::restore_command).await
    }

    /// Delete a document (owners).
    async fn delete_document(&self, ctx: &Context<'_>, id: ID) -> Result<DocumentChange> {
        lifecycle(ctx, &id, documents::delete_command).await
    }

    /// Share a document with a user, or change their role (owners).
    async fn share_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
        user_id: String,
        #[graphql(desc = "`viewer`, `commenter`, `editor` or `owner`")] role: String,
    ) -> Result<ShareChange> {
        let (state, caller) = root(ctx).await?;
        let (position, share) = permissions::share(
            state,
            &caller.principal(),
            &caller.meta,
            &id,
            &user_id,
            permissions::ShareBody { role },
        )
        .await
        .map_err(refused)?;
        Ok(ShareChange {
            principal: share.principal,
            role: Some(share.role.as_str().to_owned()),
            position,
        })
    }

    /// Take a user's share away (owners).
    async fn unshare_document(
        &self,
        ctx: &Context<'_>,
        id: ID,
        user_id: String,
    ) -> Result<ShareChange> {
        let (state, caller) = root(ctx).await?;
        let (position, unshared) =
            permissions::unshare(state, &caller.principal(), &caller.meta, &id, &user_id)
                .await
                .map_err(refused)?;
        Ok(ShareChange {
            principal: unshared.principal,
            role: None,
            position,
        })
    }
}

async fn lifecycle(
    ctx: &Context<'_>,
    id: &str,
    command: fn(collab_domain::document::Acting) -> collab_domain::document::DocumentCommand,
) -> Result<DocumentChange> {
    let (state, caller) = root(ctx).await?;
    let (position, changed) =
        documents::lifecycle(state, &caller.principal(), &caller.meta, id, command)
            .await
            .map_err(refused)?;
    Ok(document_change(position, changed))
}

pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The events of a document's stream as they are committed: renames, moves, archive
    /// and restore, deletion, named versions, and its comment threads' events (threads
    /// opened, replies, edits, deletions, resolutions, reactions);
    /// shares and share links too for the document's owners. Ends when the caller loses
    /// access to the document (an unshare, a removal from its workspace, a revoked key...)
    /// or falls so far behind that events would be skipped (subscribe again).
    async fn document_events(
        &self,
        ctx: &Context<'_>,
        document_id: ID,
    ) -> Result<impl Stream<Item = DocumentEvent>> {
        let (state, caller) = root(ctx).await?;
        let document = crate::routes::path_id("document_id", &document_id, DocumentId::parse)
            .map_err(refused)?;
        // Subscribe before checking, so nothing committed in between is missed.
        let events = state.tail.subscribe();
        let access = state
            .document_access(document, &caller.principal(), caller.meta.link.as_ref())
            .await
            .map_err(refused)?;
        let follow = Follow {
            state: state.clone(),
            caller: ctx.data::<Arc<Caller>>()?.clone(),
            document,
            workspace: access.workspace,
            role: access.role,
            stream: format!("document-{document}"),
            events,
        };
        Ok(futures::stream::unfold(follow, |mut follow| async move {
            let event = follow.next().await?;
            Some((event, follow))
        }))
    }
}

/// Events of a document only its owners receive: who it is shared with, its share links.
const OWNER_EVENTS: [&str; 4] = [
    "DocumentShared",
    "DocumentUnshared",
    "ShareLinkCreated",
    "ShareLinkRevoked",
];

/// A subscriber following one document's stream on the process's log tail.
struct Follow {
    state: AppState,
    caller: Arc<Caller>,
    document: DocumentId,
    workspace: collab_domain::WorkspaceId,
    /// The subscriber's role, as last decided.
    role: collab_domain::DocumentRole,
    stream: String,
    events: tokio::sync::broadcast::Receiver<Arc<collab_domain::RecordedEvent>>,
}

impl Follow {
    /// Decides the subscriber's access again (authenticating a socket's token again
    /// first): false when it is gone.
    async fn still_allowed(&mut self) -> bool {
        if let Some(token) = &self.caller.socket_token {
            match authenticate(&self.state, Some(token)).await {
                Ok(fresh) => {
                    *self
                        .caller
                        .principal
                        .write()
                        .unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh)
                }
                Err(_) => return false,
            }
        }
        match self
            .state
            .document_access(
                self.document,
                &self.caller.principal(),
                self.caller.meta.link.as_ref(),
            )
            .await
        {
            Ok(access) => {
                self.role = access.role;
                true
            }
            Err(_) => false,
        }
    }

    /// The next event of the document; None when the tail closes or access is lost.
    async fn next(&mut self) -> Option<DocumentEvent> {
        loop {
            let event = match self.events.recv().await {
                Ok(event) => event,
                // Too far behind to deliver everything: end, the client subscribes again
                // (and reads what it missed from the history or the replay).
                Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
            };
            // Any event that may take access away — on this document, or on its
            // workspace (a member removed or demoted, the default role, a key revoked) —
            // has it decided again before anything else is delivered. Only workspace and
            // document events of this workspace can: nothing else (keystrokes of every
            // document above all) is decoded.
            let may_reduce = event.metadata.workspace_id == self.workspace
                && matches!(
                    event.stream_id.category,
                    StreamCategory::Workspace | StreamCategory::Document
                );
            let reduced = may_reduce
                .then(|| DomainEvent::decode_recorded(&event).ok())
                .flatten()
                .and_then(|decoded| access_reduced_by(&event, &decoded));
            let ours = match reduced {
                Some(AccessReduced::Document(d)) => d == self.document,
                Some(AccessReduced::Workspace(w)) => w == self.workspace,
                None => false,
            };
            if ours && !self.still_allowed().await {
                return None;
            }
            let of_thread = event.stream_id.category == StreamCategory::Thread
                && event.metadata.workspace_id == self.workspace
                && collab_domain::comment::ThreadEvent::decode_recorded(&event)
                    .is_ok_and(|e| e.document_id() == self.document);
            if !of_thread && event.stream_id.to_string() != self.stream {
                continue;
            }
            let line = EventLine::new(&event, PayloadForm::Json);
            if OWNER_EVENTS.contains(&line.event_type.as_str())
                && self.role != collab_domain::DocumentRole::Owner
            {
                continue;
            }
            let mut data = line.data.unwrap_or(serde_json::Value::Null);
            // A link's secret stays on the server (its hash too).
            if let Some(object) = data.as_object_mut() {
                object.remove("secret_hash");
            }
            return Some(DocumentEvent {
                position: line.position,
                event_type: line.event_type,
                stream_id: line.stream_id,
                stream_version: line.stream_version,
                actor: line.actor,
                recorded_at: line.recorded_at,
                data: Json(data),
            });
        }
    }
}

// ---------------------------------------------------------------- routes

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(graphql_ws, graphql_http))
}

/// Queries and mutations (and subscriptions over the WebSocket of `GET`): a GraphQL
/// request `{query, variables, operationName}`, answered `{data, errors}`. Errors carry
/// the REST error's `code` and `status` in `extensions`.
#[utoipa::path(
    post,
    path = "/v1/graphql",
    tag = "graphql",
    request_body(content = Object, description = "`{query, variables?, operationName?}`"),
    responses(
        (status = 200, description = "`{data, errors?}` (`application/graphql-response+json` when the client accepts it)", content(
            (Object = "application/json"),
            (Object = "application/graphql-response+json")
        )),
        (status = 400, description = "Not a GraphQL request", body = crate::openapi::ErrorBody),
        (status = 401, description = "No token, or a forged, expired or revoked one", body = crate::openapi::ErrorBody),
        (status = 413, description = "The body is larger than the server takes", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many requests", body = crate::openapi::ErrorBody)
    )
)]
async fn graphql_http(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let caller = Arc::new(Caller::new(principal, meta, None));
    state
        .graphql
        .execute(request.into_inner().data(state.clone()).data(caller))
        .await
        .into()
}

/// Subscriptions: a WebSocket speaking graphql-transport-ws (or the older graphql-ws);
/// the token comes in `connection_init`'s payload as `{"token": "..."}` or
/// `{"Authorization": "Bearer ..."}` (browsers cannot set headers on a WebSocket).
#[utoipa::path(
    get,
    path = "/v1/graphql",
    tag = "graphql",
    security(()),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request with a GraphQL subprotocol", body = crate::openapi::ErrorBody),
        (status = 426, description = "The connection cannot be upgraded", body = crate::openapi::ErrorBody)
    )
)]
async fn graphql_ws(
    State(state): State<AppState>,
    protocol: Result<GraphQLProtocol, axum::http::StatusCode>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let (Ok(protocol), Ok(upgrade)) = (protocol, upgrade) else {
        return ApiError::InvalidParameter {
            name: "Sec-WebSocket-Protocol",
            reason:
                "GET /v1/graphql is a WebSocket for graphql-transport-ws; send queries with POST"
                    .into(),
        }
        .into_response();
    };
    let schema = state.graphql.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            GraphQLWebSocket::new(socket, (*schema).clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let token = payload
                        .get("token")
                        .and_then(|t| t.as_str())
                        .map(|t| format!("Bearer {t}"))
                        .or_else(|| {
                            payload
                                .get("Authorization")
                                .or_else(|| payload.get("authorization"))
                                .and_then(|t| t.as_str())
                                .map(str::to_owned)
                        });
                    let principal = authenticate(&state, token.as_deref())
                        .await
                        .map_err(|e| Error::new(e.to_string()))?;
                    let mut data = Data::default();
                    data.insert(state.clone());
                    data.insert(Arc::new(Caller::new(principal, RequestMeta::none(), token)));
                    Ok(data)
                })
                .serve()
                .await
        })
}
