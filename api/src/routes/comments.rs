//! Comment threads on a document's text: open a thread on a passage, reply, edit, delete,
//! resolve and reopen, react. Anchors are Yjs relative positions (a Yjs client sends its
//! own) or character offsets the server turns into them; reading a thread resolves its
//! anchor against the live content, so the passage follows the text.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use collab_commands::access::{self, Caller};
use collab_domain::comment::{Anchor, CommentBody, CommentThread, Emoji, ThreadCommand};
use collab_domain::document::Acting;
use collab_domain::{DocumentId, DocumentRole, InvalidValue, UserId};
use collab_live::anchors::{self, AnchorError, Passage, Resolved};
use collab_projections::comments::{self as read_model, Status};
use collab_store::EventLog;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::content::open_room;
use super::{command_response, path_id, run, uuid_param};
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_threads, open_thread))
        .routes(routes!(get_thread))
        .routes(routes!(reply))
        .routes(routes!(resolve_thread))
        .routes(routes!(reopen_thread))
        .routes(routes!(edit_comment, delete_comment))
        .routes(routes!(add_reaction, remove_reaction))
}

const DOC: &str = "The document";
const THREAD: &str = "The thread";
const COMMENT: &str = "The comment";

/// Where a new thread is anchored: either `from`/`to` (character offsets in the root's
/// current text, `from` < `to`; an XML fragment's text is its text nodes one per line) or
/// `start`/`end` (Yjs relative positions as a Yjs client has them:
/// `Y.encodeRelativePosition`, base64).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnchorBody {
    /// The root the passage is in: a `Y.Text`, or a `Y.XmlFragment` (a TipTap document's
    /// `default`).
    pub(crate) root: String,
    #[serde(default)]
    pub(crate) from: Option<u64>,
    #[serde(default)]
    pub(crate) to: Option<u64>,
    #[serde(default)]
    pub(crate) start: Option<String>,
    #[serde(default)]
    pub(crate) end: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenThreadBody {
    pub(crate) anchor: AnchorBody,
    /// Markdown (a subset clients render), 1–10,000 characters; mention people as
    /// `<@user-id>`.
    pub(crate) body: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentBodyJson {
    /// Markdown (a subset clients render), 1–10,000 characters; mention people as
    /// `<@user-id>`.
    body: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `open` (default), `resolved` or `all`.
    #[param(pattern = "^(open|resolved|all)$")]
    status: Option<String>,
}

/// Where a thread's passage is now.
#[derive(Serialize, ToSchema)]
pub(crate) struct AnchorView {
    pub(crate) root: String,
    /// Character offsets of the passage in the root's current text (absent when
    /// orphaned): `from` is its first character, `to` one past its last.
    pub(crate) from: Option<usize>,
    pub(crate) to: Option<usize>,
    /// The passage's current text (absent when orphaned).
    pub(crate) quote: Option<String>,
    /// All of the passage's text was deleted: the thread stays, without a place.
    pub(crate) orphaned: bool,
    /// The passage's text when the thread was opened.
    pub(crate) original_quote: String,
    /// The anchor's Yjs relative positions (`Y.decodeRelativePosition` of the base64
    /// bytes): a Yjs editor places the passage in its own copy with them.
    pub(crate) start: String,
    pub(crate) end: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ReactionView {
    pub(crate) emoji: String,
    pub(crate) count: usize,
    /// Who reacted, in the order they did.
    pub(crate) users: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CommentView {
    pub(crate) comment_id: Uuid,
    pub(crate) thread_id: Uuid,
    pub(crate) author: String,
    /// The author's display name (absent when they have none, or it was erased).
    pub(crate) author_name: Option<String>,
    /// Absent once deleted.
    pub(crate) body: Option<String>,
    pub(crate) deleted: bool,
    /// The people the comment mentions.
    pub(crate) mentions: Vec<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) edited_at: Option<DateTime<Utc>>,
    pub(crate) reactions: Vec<ReactionView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ThreadView {
    pub(crate) thread_id: Uuid,
    pub(crate) document_id: Uuid,
    /// `open` or `resolved`.
    pub(crate) status: &'static str,
    pub(crate) author: String,
    pub(crate) author_name: Option<String>,
    pub(crate) anchor: AnchorView,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) resolved_by: Option<String>,
    pub(crate) resolved_at: Option<DateTime<Utc>>,
    /// The thread's stream version (send as `If-Match` to act only on what you saw).
    pub(crate) version: i64,
    /// Oldest first; deleted comments stay as tombstones without a body.
    pub(crate) comments: Vec<CommentView>,
}

#[derive(Serialize, ToSchema)]
struct ThreadList {
    threads: Vec<ThreadView>,
}

/// A thread just opened.
#[derive(Serialize, ToSchema)]
pub(crate) struct ThreadOpenedView {
    pub(crate) thread_id: Uuid,
    pub(crate) comment_id: Uuid,
    /// The passage as the server anchored it.
    pub(crate) anchor: AnchorView,
    /// People the comment mentions who cannot read the document: they are not told.
    pub(crate) mentions_without_access: Vec<String>,
}

/// A comment just added or edited.
#[derive(Serialize, ToSchema)]
pub(crate) struct CommentWritten {
    pub(crate) thread_id: Uuid,
    pub(crate) comment_id: Uuid,
    /// People the comment mentions who cannot read the document: they are not told.
    pub(crate) mentions_without_access: Vec<String>,
}

/// A change to a thread or comment.
#[derive(Serialize, ToSchema)]
pub(crate) struct ThreadChanged {
    pub(crate) thread_id: Uuid,
    /// The thread's stream version after the change.
    pub(crate) version: i64,
}

fn invalid_anchor(error: AnchorError) -> ApiError {
    ApiError::InvalidField(InvalidValue::new("anchor", error.to_string()))
}

/// People one comment may mention (each is checked for access to the document).
const MAX_MENTIONS: usize = 50;

fn body_of(raw: &str) -> Result<CommentBody, ApiError> {
    let body = CommentBody::parse(raw)?;
    if body.mentions().len() > MAX_MENTIONS {
        return Err(ApiError::InvalidField(InvalidValue::new(
            "body",
            format!("mentions at most {MAX_MENTIONS} people"),
        )));
    }
    Ok(body)
}

fn decode_position(raw: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    let raw = raw.trim();
    if raw.len() > Anchor::MAX_POSITION_BYTES * 2 {
        return Err(invalid_anchor(AnchorError::Undecodable));
    }
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
        .map_err(|_| invalid_anchor(AnchorError::Undecodable))
}

/// Who is acting on the document's comments, with their role on it; `404` when they
/// cannot read it.
async fn acting(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document: DocumentId,
) -> Result<(Acting, collab_commands::access::DocumentAccess), ApiError> {
    let access = state
        .document_access(document, principal, meta.link.as_ref())
        .await?;
    Ok((
        Acting {
            user: principal.id.clone(),
            role: access.role,
        },
        access,
    ))
}

fn require_commenter(role: DocumentRole) -> Result<(), ApiError> {
    if role < DocumentRole::Commenter {
        return Err(ApiError::Forbidden(
            "commenting needs the commenter role or above".into(),
        ));
    }
    Ok(())
}

/// The mentioned people who cannot read `document`: they are not recorded as mentioned,
/// and get nothing.
async fn without_access(
    state: &AppState,
    document: DocumentId,
    mentions: &[UserId],
) -> Result<Vec<UserId>, ApiError> {
    let mut refused = Vec::new();
    for user in mentions {
        let caller = Caller {
            user: user.clone(),
            link: None,
            service: None,
            loaded_workspace: None,
        };
        if access::resolve(&state.aggregates, document, &caller)
            .await?
            .is_none()
        {
            refused.push(user.clone());
        }
    }
    Ok(refused)
}

/// The mentions split into those who can read `document` and those who cannot.
async fn reachable(
    state: &AppState,
    document: DocumentId,
    mentions: Vec<UserId>,
) -> Result<(Vec<UserId>, Vec<String>), ApiError> {
    let refused = without_access(state, document, &mentions).await?;
    let reachable = mentions
        .into_iter()
        .filter(|u| !refused.contains(u))
        .collect();
    Ok((reachable, refused.iter().map(UserId::to_string).collect()))
}

fn anchor_view(anchor: &Anchor, original_quote: String, resolved: Resolved) -> AnchorView {
    use base64::Engine;
    let (from, to, quote) = match resolved {
        Resolved::Passage(Passage { from, to, quote }) => (Some(from), Some(to), Some(quote)),
        Resolved::Orphaned | Resolved::Elsewhere => (None, None, None),
    };
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    AnchorView {
        root: anchor.root.clone(),
        orphaned: quote.is_none(),
        from,
        to,
        quote,
        original_quote,
        start: encode(&anchor.start),
        end: encode(&anchor.end),
    }
}

/// Open a thread on a passage, with its first comment (commenters and above).
#[utoipa::path(
    post,
    path = "/v1/documents/{document_id}/threads",
    tag = "comments",
    params(("document_id" = uuid::Uuid, Path, description = DOC)),
    request_body = OpenThreadBody,
    responses(
        (status = 201, description = "Opened", body = crate::openapi::Committed<ThreadOpenedView>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn open_thread(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    ApiJson(body): ApiJson<OpenThreadBody>,
) -> Result<Response, ApiError> {
    let (position, view) = open(&state, &principal, &meta, &document, body).await?;
    Ok(command_response(StatusCode::CREATED, position, view))
}

/// Opens a thread for the caller (REST and GraphQL): (position, what was opened).
pub(crate) async fn open(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document: &str,
    body: OpenThreadBody,
) -> Result<(i64, ThreadOpenedView), ApiError> {
    let document = path_id("document_id", document, DocumentId::parse)?;
    let (by, access) = acting(state, principal, meta, document).await?;
    require_commenter(by.role)?;
    let text = body_of(&body.body)?;
    let anchor = body.anchor;
    if anchor.root.is_empty() || anchor.root.len() > Anchor::MAX_ROOT_BYTES {
        return Err(ApiError::InvalidField(InvalidValue::new(
            "anchor",
            "root must be 1 to 255 bytes",
        )));
    }
    let relative =
        match (anchor.from, anchor.to, &anchor.start, &anchor.end) {
            (Some(from), Some(to), None, None) => Err((from, to)),
            (None, None, Some(start), Some(end)) => Ok(Anchor {
                root: anchor.root.clone(),
                start: decode_position(start)?,
                end: decode_position(end)?,
            }),
            _ => return Err(ApiError::InvalidField(InvalidValue::new(
                "anchor",
                "must have either from and to (offsets) or start and end (Yjs relative positions)",
            ))),
        };
    let (guard, _) = open_room(state, &document.to_string(), principal, meta).await?;
    let (anchor, passage) = guard
        .room
        .read(|doc| match relative {
            Ok(anchor) => anchors::check(doc, &anchor).map(|p| (anchor, p)),
            Err((from, to)) => anchors::from_offsets(
                doc,
                &anchor.root,
                usize::try_from(from).unwrap_or(usize::MAX),
                usize::try_from(to).unwrap_or(usize::MAX),
            ),
        })
        .map_err(invalid_anchor)?;
    drop(guard);
    let thread_id = Uuid::now_v7();
    let comment_id = Uuid::now_v7();
    let (reachable, refused) = reachable(state, document, text.mentions()).await?;
    let quote = passage.quote.clone();
    let command = ThreadCommand::Open {
        by,
        document_id: document,
        workspace_id: access.workspace,
        anchor: anchor.clone(),
        quote: quote.clone(),
        comment_id,
        body: text,
        reachable,
    };
    let committed = run::<CommentThread>(state, principal, meta, thread_id, command, None).await?;
    let view = ThreadOpenedView {
        thread_id,
        comment_id,
        anchor: anchor_view(&anchor, quote, Resolved::Passage(passage)),
        mentions_without_access: refused,
    };
    Ok((committed.position, view))
}

/// The threads of a document with their comments, each anchor resolved against the
/// current text (viewers and above).
#[utoipa::path(
    get,
    path = "/v1/documents/{document_id}/threads",
    tag = "comments",
    params(("document_id" = uuid::Uuid, Path, description = DOC), ListParams),
    responses((status = 200, description = "The threads, oldest first", body = ThreadList), crate::openapi::Refusals)
)]
async fn list_threads(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(document): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<ThreadList>, ApiError> {
    let threads = list(
        &state,
        &principal,
        &meta,
        &document,
        params.status.as_deref(),
    )
    .await?;
    Ok(Json(ThreadList { threads }))
}

/// A document's threads with `status` (`open` by default) for the caller (REST and
/// GraphQL).
pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    document: &str,
    status: Option<&str>,
) -> Result<Vec<ThreadView>, ApiError> {
    let document = path_id("document_id", document, DocumentId::parse)?;
    let status = match status {
        None | Some("open") => Status::Open,
        Some("resolved") => Status::Resolved,
        Some("all") => Status::All,
        Some(_) => {
            return Err(ApiError::InvalidParameter {
                name: "status",
                reason: "must be open, resolved or all".into(),
            })
        }
    };
    acting(state, principal, meta, document).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_document(principal, document).await?;
    let rows = read_model::threads(&mut *reader, document.as_uuid(), status).await?;
    views(state, principal, meta, &mut reader, document, rows).await
}

/// One thread with its comments (viewers and above of its document).
#[utoipa::path(
    get,
    path = "/v1/threads/{thread_id}",
    tag = "comments",
    params(("thread_id" = uuid::Uuid, Path, description = THREAD)),
    responses((status = 200, description = "The thread", body = ThreadView), crate::openapi::Refusals)
)]
async fn get_thread(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(thread): Path<String>,
) -> Result<Json<ThreadView>, ApiError> {
    let thread = uuid_param("thread_id", &thread)?;
    let document = document_of(&state, thread).await?;
    acting(&state, &principal, &meta, document).await?;
    state
        .reach_with(meta.min_position, read_model::NAME)
        .await?;
    let mut reader = state.reader_for_document(&principal, document).await?;
    let rows: Vec<_> = read_model::thread(&mut *reader, thread)
        .await?
        .into_iter()
        .collect();
    views(&state, &principal, &meta, &mut reader, document, rows)
        .await?
        .pop()
        .map(Json)
        .ok_or(ApiError::NotFound("thread"))
}

/// Threads with their comments and resolved anchors.
async fn views(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    reader: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    document: DocumentId,
    rows: Vec<read_model::ThreadRow>,
) -> Result<Vec<ThreadView>, ApiError> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<Uuid> = rows.iter().map(|t| t.thread_id).collect();
    let mut comments: BTreeMap<Uuid, Vec<CommentView>> = BTreeMap::new();
    for c in read_model::comments(&mut **reader, &ids).await? {
        let mut reactions: Vec<ReactionView> = Vec::new();
        for (emoji, user) in c.reactions.0 {
            match reactions.iter_mut().find(|r| r.emoji == emoji) {
                Some(r) => {
                    r.count += 1;
                    r.users.push(user);
                }
                None => reactions.push(ReactionView {
                    emoji,
                    count: 1,
                    users: vec![user],
                }),
            }
        }
        comments.entry(c.thread_id).or_default().push(CommentView {
            comment_id: c.comment_id,
            thread_id: c.thread_id,
            author: c.author,
            author_name: c.author_name,
            deleted: c.deleted_at.is_some(),
            body: c.body,
            mentions: c.mentions,
            created_at: c.created_at,
            edited_at: c.edited_at,
            reactions,
        });
    }
    let anchors: Vec<Anchor> = rows
        .iter()
        .map(|t| Anchor {
            root: t.root.clone(),
            start: t.anchor_start.clone(),
            end: t.anchor_end.clone(),
        })
        .collect();
    let (guard, _) = open_room(state, &document.to_string(), principal, meta).await?;
    let resolved: Vec<Resolved> = guard.room.read(|doc| anchors::resolve_all(doc, &anchors));
    drop(guard);
    Ok(rows
        .into_iter()
        .zip(anchors.iter().zip(resolved))
        .map(|(t, (anchor, resolved))| ThreadView {
            comments: comments.remove(&t.thread_id).unwrap_or_default(),
            version: t.version,
            thread_id: t.thread_id,
            document_id: t.document_id,
            status: if t.resolved { "resolved" } else { "open" },
            author: t.author,
            author_name: t.author_name,
            anchor: anchor_view(anchor, t.quote, resolved),
            created_at: t.created_at,
            updated_at: t.updated_at,
            resolved_by: t.resolved_by,
            resolved_at: t.resolved_at,
        })
        .collect())
}

/// The document a thread is on, from its aggregate; `404` for no such thread.
async fn document_of(state: &AppState, thread: Uuid) -> Result<DocumentId, ApiError> {
    state
        .aggregates
        .load::<CommentThread>(thread)
        .await?
        .aggregate
        .document_id()
        .ok_or(ApiError::NotFound("thread"))
}

/// The thread a comment is in. A comment only just written may not be folded yet: then
/// the lookup waits (bounded) for the read model to reach the log's head and looks again.
async fn thread_of(state: &AppState, comment: Uuid) -> Result<Uuid, ApiError> {
    if let Some(thread) = read_model::thread_of(&state.pool, comment).await? {
        return Ok(thread);
    }
    let head = EventLog::head(&state.pool).await?;
    state.reach_with(Some(head), read_model::NAME).await?;
    read_model::thread_of(&state.pool, comment)
        .await?
        .ok_or(ApiError::NotFound("comment"))
}

/// Runs a command on a thread as the caller, with their role on its document and, of
/// `mentions`, those who can read it: the thread is loaded once, and the command decided
/// on that load (again on a fresh one when a concurrent command moved the stream).
/// Returns the mentioned people who cannot read the document.
async fn on_thread(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    thread: Uuid,
    mentions: &[UserId],
    command: impl Fn(Acting, Vec<UserId>) -> ThreadCommand,
) -> Result<(Vec<UserId>, collab_commands::Committed), ApiError> {
    let refused_on = std::sync::Mutex::new(Vec::new());
    let (command, refused_on) = (&command, &refused_on);
    let committed = state
        .aggregates
        .execute_with::<CommentThread, ApiError, _, _>(
            thread,
            &principal.command_meta(meta),
            meta.if_match,
            |loaded| {
                let document = loaded.document_id();
                async move {
                    let document = document.ok_or(ApiError::NotFound("thread"))?;
                    let (by, _) = acting(state, principal, meta, document).await?;
                    let refused = without_access(state, document, mentions).await?;
                    let reachable = mentions
                        .iter()
                        .filter(|u| !refused.contains(u))
                        .cloned()
                        .collect();
                    *refused_on.lock().expect("not poisoned") = refused;
                    Ok(vec![command(by, reachable)])
                }
            },
        )
        .await?;
    let refused = std::mem::take(&mut *refused_on.lock().expect("not poisoned"));
    Ok((refused, committed))
}

/// Reply in a thread (commenters and above).
#[utoipa::path(
    post,
    path = "/v1/threads/{thread_id}/comments",
    tag = "comments",
    params(("thread_id" = uuid::Uuid, Path, description = THREAD)),
    request_body = CommentBodyJson,
    responses(
        (status = 201, description = "Added", body = crate::openapi::Committed<CommentWritten>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn reply(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(thread): Path<String>,
    ApiJson(body): ApiJson<CommentBodyJson>,
) -> Result<Response, ApiError> {
    let (position, written) = add_reply(&state, &principal, &meta, &thread, &body.body).await?;
    Ok(command_response(StatusCode::CREATED, position, written))
}

/// Replies in a thread for the caller (REST and GraphQL).
pub(crate) async fn add_reply(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    thread: &str,
    body: &str,
) -> Result<(i64, CommentWritten), ApiError> {
    let thread = uuid_param("thread_id", thread)?;
    let body = body_of(body)?;
    let comment_id = Uuid::now_v7();
    write_comment(
        state,
        principal,
        meta,
        thread,
        comment_id,
        body,
        |by, body, reachable| ThreadCommand::Reply {
            by,
            comment_id,
            body,
            reachable,
        },
    )
    .await
}

/// A reply or an edit as the caller: the command `make` makes with the body and the
/// mentioned people who can read the document; the others are listed in the answer.
async fn write_comment(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    thread: Uuid,
    comment_id: Uuid,
    body: CommentBody,
    make: impl Fn(Acting, CommentBody, Vec<UserId>) -> ThreadCommand,
) -> Result<(i64, CommentWritten), ApiError> {
    let mentions = body.mentions();
    let (refused, committed) = on_thread(
        state,
        principal,
        meta,
        thread,
        &mentions,
        |by, reachable| make(by, body.clone(), reachable),
    )
    .await?;
    let written = CommentWritten {
        thread_id: thread,
        comment_id,
        mentions_without_access: refused.iter().map(UserId::to_string).collect(),
    };
    Ok((committed.position, written))
}

/// Change a comment's text (its author).
#[utoipa::path(
    patch,
    path = "/v1/comments/{comment_id}",
    tag = "comments",
    params(("comment_id" = uuid::Uuid, Path, description = COMMENT)),
    request_body = CommentBodyJson,
    responses(
        (status = 200, description = "Edited", body = crate::openapi::Committed<CommentWritten>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn edit_comment(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(comment): Path<String>,
    ApiJson(body): ApiJson<CommentBodyJson>,
) -> Result<Response, ApiError> {
    let (position, written) = edit(&state, &principal, &meta, &comment, &body.body).await?;
    Ok(command_response(StatusCode::OK, position, written))
}

/// Changes a comment's text for the caller (REST and GraphQL).
pub(crate) async fn edit(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    comment: &str,
    body: &str,
) -> Result<(i64, CommentWritten), ApiError> {
    let comment_id = uuid_param("comment_id", comment)?;
    let body = body_of(body)?;
    let thread = thread_of(state, comment_id).await?;
    write_comment(
        state,
        principal,
        meta,
        thread,
        comment_id,
        body,
        |by, body, reachable| ThreadCommand::Edit {
            by,
            comment_id,
            body,
            reachable,
        },
    )
    .await
}

/// Delete a comment (its author, or the document's owner). Its text leaves the read
/// models; the history keeps that it was deleted, and by whom.
#[utoipa::path(
    delete,
    path = "/v1/comments/{comment_id}",
    tag = "comments",
    params(("comment_id" = uuid::Uuid, Path, description = COMMENT)),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::Committed<ThreadChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn delete_comment(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(comment): Path<String>,
) -> Result<Response, ApiError> {
    respond(delete(&state, &principal, &meta, &comment).await?)
}

/// Deletes a comment for the caller (REST and GraphQL).
pub(crate) async fn delete(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    comment: &str,
) -> Result<(i64, ThreadChanged), ApiError> {
    let comment_id = uuid_param("comment_id", comment)?;
    let thread = thread_of(state, comment_id).await?;
    let (_, committed) = on_thread(state, principal, meta, thread, &[], |by, _| {
        ThreadCommand::Delete { by, comment_id }
    })
    .await?;
    Ok(changed(thread, committed))
}

fn changed(thread_id: Uuid, committed: collab_commands::Committed) -> (i64, ThreadChanged) {
    (
        committed.position,
        ThreadChanged {
            thread_id,
            version: committed.version,
        },
    )
}

fn respond((position, changed): (i64, ThreadChanged)) -> Result<Response, ApiError> {
    Ok(command_response(StatusCode::OK, position, changed))
}

/// Resolves (or reopens) a thread for the caller (REST and GraphQL).
pub(crate) async fn set_resolved(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    thread: &str,
    resolved: bool,
) -> Result<(i64, ThreadChanged), ApiError> {
    let thread = uuid_param("thread_id", thread)?;
    let (_, committed) = on_thread(
        state,
        principal,
        meta,
        thread,
        &[],
        |by, _| match resolved {
            true => ThreadCommand::Resolve { by },
            false => ThreadCommand::Reopen { by },
        },
    )
    .await?;
    Ok(changed(thread, committed))
}

/// Mark a thread resolved (commenters and above; resolving a resolved thread changes
/// nothing).
#[utoipa::path(
    post,
    path = "/v1/threads/{thread_id}/resolve",
    tag = "comments",
    params(("thread_id" = uuid::Uuid, Path, description = THREAD)),
    responses(
        (status = 200, description = "Resolved", body = crate::openapi::Committed<ThreadChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn resolve_thread(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(thread): Path<String>,
) -> Result<Response, ApiError> {
    respond(set_resolved(&state, &principal, &meta, &thread, true).await?)
}

/// Open a resolved thread again (commenters and above).
#[utoipa::path(
    post,
    path = "/v1/threads/{thread_id}/reopen",
    tag = "comments",
    params(("thread_id" = uuid::Uuid, Path, description = THREAD)),
    responses(
        (status = 200, description = "Reopened", body = crate::openapi::Committed<ThreadChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn reopen_thread(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path(thread): Path<String>,
) -> Result<Response, ApiError> {
    respond(set_resolved(&state, &principal, &meta, &thread, false).await?)
}

/// Adds or takes back the caller's reaction (REST and GraphQL).
pub(crate) async fn react(
    state: &AppState,
    principal: &Principal,
    meta: &RequestMeta,
    comment: &str,
    emoji: &str,
    add: bool,
) -> Result<(i64, ThreadChanged), ApiError> {
    let comment_id = uuid_param("comment_id", comment)?;
    let emoji = Emoji::parse(emoji).map_err(|e| ApiError::InvalidParameter {
        name: "emoji",
        reason: e.reason,
    })?;
    let thread = thread_of(state, comment_id).await?;
    let (_, committed) = on_thread(state, principal, meta, thread, &[], |by, _| match add {
        true => ThreadCommand::React {
            by,
            comment_id,
            emoji: emoji.clone(),
        },
        false => ThreadCommand::Unreact {
            by,
            comment_id,
            emoji: emoji.clone(),
        },
    })
    .await?;
    Ok(changed(thread, committed))
}

/// React to a comment with an emoji (commenters and above; once per person and emoji).
#[utoipa::path(
    put,
    path = "/v1/comments/{comment_id}/reactions/{emoji}",
    tag = "comments",
    params(
        ("comment_id" = uuid::Uuid, Path, description = COMMENT),
        ("emoji" = String, Path, description = "One emoji, percent-encoded")
    ),
    responses(
        (status = 200, description = "Reacted", body = crate::openapi::Committed<ThreadChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn add_reaction(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((comment, emoji)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    respond(react(&state, &principal, &meta, &comment, &emoji, true).await?)
}

/// Take your reaction back.
#[utoipa::path(
    delete,
    path = "/v1/comments/{comment_id}/reactions/{emoji}",
    tag = "comments",
    params(
        ("comment_id" = uuid::Uuid, Path, description = COMMENT),
        ("emoji" = String, Path, description = "One emoji, percent-encoded")
    ),
    responses(
        (status = 200, description = "Removed", body = crate::openapi::Committed<ThreadChanged>),
        crate::openapi::Refusals,
        crate::openapi::CommandRefusals
    )
)]
async fn remove_reaction(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    Path((comment, emoji)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    respond(react(&state, &principal, &meta, &comment, &emoji, false).await?)
}
