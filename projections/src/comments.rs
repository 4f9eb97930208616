//! Read model `comments`: comment threads, their comments and reactions, and the queries
//! that read them. Anchors are kept encoded; the API resolves them against the content.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::comment::ThreadEvent;
use collab_domain::EventCodec;
use collab_domain::{RecordedEvent, StreamCategory};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

pub const NAME: &str = "comments";

/// `rm_comment_threads`, `rm_comments`, `rm_comment_reactions`.
pub struct Comments;

#[async_trait]
impl ReadModel for Comments {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Thread]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_comment_reactions", "rm_comments", "rm_comment_threads"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let thread = event.stream_id.id;
        let workspace = event.metadata.workspace_id.as_uuid();
        let at = event.metadata.recorded_at;
        let position = event.position;
        let version = event.stream_version;
        let touch = sqlx::query(
            "UPDATE rm_comment_threads SET updated_at = $2, position = $3, version = $4 \
             WHERE thread_id = $1",
        )
        .bind(thread)
        .bind(at)
        .bind(position)
        .bind(version);
        match ThreadEvent::decode_recorded(event)? {
            ThreadEvent::ThreadOpened(e) => {
                sqlx::query(
                    "INSERT INTO rm_comment_threads (thread_id, workspace_id, document_id, \
                     author, root, anchor_start, anchor_end, quote, resolved, created_at, \
                     updated_at, version, position) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9, $9, $10, $11)",
                )
                .bind(thread)
                .bind(workspace)
                .bind(e.document_id.as_uuid())
                .bind(e.author.as_str())
                .bind(&e.anchor.root)
                .bind(&e.anchor.start)
                .bind(&e.anchor.end)
                .bind(&e.quote)
                .bind(at)
                .bind(version)
                .bind(position)
                .execute(&mut *conn)
                .await?;
                insert_comment(
                    conn,
                    event,
                    e.comment_id,
                    e.author.as_str(),
                    e.body.as_str(),
                    &e.mentions,
                )
                .await?;
            }
            ThreadEvent::CommentAdded(e) => {
                insert_comment(
                    conn,
                    event,
                    e.comment_id,
                    e.author.as_str(),
                    e.body.as_str(),
                    &e.mentions,
                )
                .await?;
                touch.execute(&mut *conn).await?;
            }
            ThreadEvent::CommentEdited(e) => {
                sqlx::query(
                    "UPDATE rm_comments SET body = $2, mentions = $3, edited_at = $4, \
                     position = $5 WHERE comment_id = $1",
                )
                .bind(e.comment_id)
                .bind(e.body.as_str())
                .bind(mention_ids(&e.mentions))
                .bind(at)
                .bind(position)
                .execute(&mut *conn)
                .await?;
                touch.execute(&mut *conn).await?;
            }
            ThreadEvent::CommentDeleted(e) => {
                sqlx::query(
                    "UPDATE rm_comments SET body = NULL, mentions = '{}', deleted_at = $2, \
                     deleted_by = $3, position = $4 WHERE comment_id = $1",
                )
                .bind(e.comment_id)
                .bind(at)
                .bind(e.by.as_str())
                .bind(position)
                .execute(&mut *conn)
                .await?;
                sqlx::query("DELETE FROM rm_comment_reactions WHERE comment_id = $1")
                    .bind(e.comment_id)
                    .execute(&mut *conn)
                    .await?;
                touch.execute(&mut *conn).await?;
            }
            ThreadEvent::ThreadResolved(e) => {
                sqlx::query(
                    "UPDATE rm_comment_threads SET resolved = true, resolved_by = $2, \
                     resolved_at = $3, updated_at = $3, position = $4, version = $5 \
                     WHERE thread_id = $1",
                )
                .bind(thread)
                .bind(e.by.as_str())
                .bind(at)
                .bind(position)
                .bind(version)
                .execute(&mut *conn)
                .await?;
            }
            ThreadEvent::ThreadReopened(_) => {
                sqlx::query(
                    "UPDATE rm_comment_threads SET resolved = false, resolved_by = NULL, \
                     resolved_at = NULL, updated_at = $2, position = $3, version = $4 \
                     WHERE thread_id = $1",
                )
                .bind(thread)
                .bind(at)
                .bind(position)
                .bind(version)
                .execute(&mut *conn)
                .await?;
            }
            ThreadEvent::ReactionAdded(e) => {
                sqlx::query(
                    "INSERT INTO rm_comment_reactions (comment_id, emoji, user_id, \
                     workspace_id, document_id, reacted_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(e.comment_id)
                .bind(e.emoji.as_str())
                .bind(e.user.as_str())
                .bind(workspace)
                .bind(e.document_id.as_uuid())
                .bind(at)
                .execute(&mut *conn)
                .await?;
                touch.execute(&mut *conn).await?;
            }
            ThreadEvent::ReactionRemoved(e) => {
                sqlx::query(
                    "DELETE FROM rm_comment_reactions \
                     WHERE comment_id = $1 AND emoji = $2 AND user_id = $3",
                )
                .bind(e.comment_id)
                .bind(e.emoji.as_str())
                .bind(e.user.as_str())
                .execute(&mut *conn)
                .await?;
                touch.execute(&mut *conn).await?;
            }
        }
        Ok(())
    }
}

fn mention_ids(mentions: &[collab_domain::UserId]) -> Vec<String> {
    mentions.iter().map(|u| u.as_str().to_owned()).collect()
}

async fn insert_comment(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    comment: Uuid,
    author: &str,
    body: &str,
    mentions: &[collab_domain::UserId],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_comments (comment_id, thread_id, workspace_id, document_id, author, \
         body, mentions, created_at, position) \
         SELECT $1, $2, t.workspace_id, t.document_id, $3, $4, $5, $6, $7 \
         FROM rm_comment_threads t WHERE t.thread_id = $2",
    )
    .bind(comment)
    .bind(event.stream_id.id)
    .bind(author)
    .bind(body)
    .bind(mention_ids(mentions))
    .bind(event.metadata.recorded_at)
    .bind(event.position)
    .execute(conn)
    .await?;
    Ok(())
}

/// A thread's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ThreadRow {
    pub thread_id: Uuid,
    pub document_id: Uuid,
    pub author: String,
    pub author_name: Option<String>,
    pub root: String,
    pub anchor_start: Vec<u8>,
    pub anchor_end: Vec<u8>,
    pub quote: String,
    pub resolved: bool,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// A comment's row, with its reactions as `[emoji, user]` pairs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CommentRow {
    pub comment_id: Uuid,
    pub thread_id: Uuid,
    pub author: String,
    pub author_name: Option<String>,
    pub body: Option<String>,
    pub mentions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub reactions: sqlx::types::Json<Vec<(String, String)>>,
}

/// Which threads a listing holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Resolved,
    All,
}

const THREAD_COLUMNS: &str =
    "t.thread_id, t.document_id, t.author, p.display_name AS author_name, \
     t.root, t.anchor_start, t.anchor_end, t.quote, t.resolved, t.resolved_by, t.resolved_at, \
     t.created_at, t.updated_at, t.version";

/// A document's threads with `status`, oldest first, leaving out threads whose every
/// comment was deleted.
pub async fn threads(
    executor: impl PgExecutor<'_>,
    document: Uuid,
    status: Status,
) -> Result<Vec<ThreadRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {THREAD_COLUMNS} FROM rm_comment_threads t \
         LEFT JOIN rm_profiles p ON p.user_id = t.author \
         WHERE t.document_id = $1 AND ($2::boolean IS NULL OR t.resolved = $2) \
           AND EXISTS (SELECT 1 FROM rm_comments c \
                       WHERE c.thread_id = t.thread_id AND c.deleted_at IS NULL) \
         ORDER BY t.created_at, t.thread_id"
    ))
    .bind(document)
    .bind(match status {
        Status::Open => Some(false),
        Status::Resolved => Some(true),
        Status::All => None,
    })
    .fetch_all(executor)
    .await
}

/// One thread (deleted or not).
pub async fn thread(
    executor: impl PgExecutor<'_>,
    thread: Uuid,
) -> Result<Option<ThreadRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {THREAD_COLUMNS} FROM rm_comment_threads t \
         LEFT JOIN rm_profiles p ON p.user_id = t.author WHERE t.thread_id = $1"
    ))
    .bind(thread)
    .fetch_optional(executor)
    .await
}

/// The comments of `threads`, oldest first, with their reactions.
pub async fn comments(
    executor: impl PgExecutor<'_>,
    threads: &[Uuid],
) -> Result<Vec<CommentRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.comment_id, c.thread_id, c.author, p.display_name AS author_name, c.body, \
                c.mentions, c.created_at, c.edited_at, c.deleted_at, \
                coalesce((SELECT json_agg(json_build_array(r.emoji, r.user_id) \
                                          ORDER BY r.reacted_at, r.emoji, r.user_id) \
                          FROM rm_comment_reactions r WHERE r.comment_id = c.comment_id), \
                         '[]'::json) AS reactions \
         FROM rm_comments c LEFT JOIN rm_profiles p ON p.user_id = c.author \
         WHERE c.thread_id = ANY($1) ORDER BY c.created_at, c.comment_id",
    )
    .bind(threads)
    .fetch_all(executor)
    .await
}

/// The thread a comment is in, read past row-level security (the caller's access to the
/// thread's document is checked by the command path).
pub async fn thread_of(
    executor: impl PgExecutor<'_>,
    comment: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT thread_id FROM rm_comments WHERE comment_id = $1")
        .bind(comment)
        .fetch_optional(executor)
        .await
}
