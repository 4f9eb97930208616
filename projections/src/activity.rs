//! Activity feeds: what happened to documents, for people (created, renamed, moved,
//! shared, edited — grouped by author and burst —, restored, commented, resolved). The
//! `history` read model already holds a document's edit sessions, restores and metadata
//! events; this read model (`activity`) adds what people did in comment threads, and the
//! feed queries read both, newest first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::comment::ThreadEvent;
use collab_domain::{EventCodec, RecordedEvent, StreamCategory};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

pub const NAME: &str = "activity";

/// `rm_activity`.
pub struct Activity;

#[async_trait]
impl ReadModel for Activity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Thread]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_activity"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let decoded = ThreadEvent::decode_recorded(event)?;
        let (kind, comment) = match &decoded {
            ThreadEvent::ThreadOpened(e) => ("commented", Some(e.comment_id)),
            ThreadEvent::CommentAdded(e) => ("commented", Some(e.comment_id)),
            ThreadEvent::ThreadResolved(_) => ("resolved", None),
            ThreadEvent::ThreadReopened(_) => ("reopened", None),
            ThreadEvent::CommentDeleted(e) => {
                // A deleted comment leaves the feed with its text.
                sqlx::query("DELETE FROM rm_activity WHERE comment_id = $1")
                    .bind(e.comment_id)
                    .execute(&mut *conn)
                    .await?;
                return Ok(());
            }
            ThreadEvent::CommentEdited(_)
            | ThreadEvent::ReactionAdded(_)
            | ThreadEvent::ReactionRemoved(_) => return Ok(()),
        };
        sqlx::query(
            "INSERT INTO rm_activity (position, workspace_id, document_id, kind, actor, \
             thread_id, comment_id, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (position) DO NOTHING",
        )
        .bind(event.position)
        .bind(event.metadata.workspace_id.as_uuid())
        .bind(decoded.document_id().as_uuid())
        .bind(kind)
        .bind(event.metadata.actor.to_string())
        .bind(event.stream_id.id)
        .bind(comment)
        .bind(event.metadata.recorded_at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// The history entry kinds a feed shows, and what the feed calls them.
pub const HISTORY_KINDS: [(&str, &str); 11] = [
    ("edits", "edited"),
    ("restored", "restored"),
    ("from_template", "from_template"),
    ("DocumentCreated", "created"),
    ("DocumentRenamed", "renamed"),
    ("DocumentMoved", "moved"),
    ("DocumentArchived", "archived"),
    ("DocumentRestored", "unarchived"),
    ("DocumentShared", "shared"),
    ("DocumentUnshared", "unshared"),
    ("VersionNamed", "version_named"),
];

/// One entry of a feed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    /// The position of the entry's last event (the cursor).
    pub position: i64,
    pub kind: String,
    pub actor: String,
    pub actor_name: Option<String>,
    pub document_id: Uuid,
    pub document_title: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub edits: i32,
    pub inserted: i64,
    pub deleted: i64,
    pub details: sqlx::types::Json<serde_json::Value>,
    pub thread_id: Option<Uuid>,
    pub comment_id: Option<Uuid>,
    pub comment_body: Option<String>,
}

/// Which feed.
#[derive(Debug, Clone, Copy)]
pub enum Feed {
    Document(Uuid),
    /// A workspace's, with only the documents the caller may open (`all`: every one, for a
    /// service account of the workspace).
    Workspace {
        id: Uuid,
        all: bool,
    },
}

/// A page of a feed, newest first, before `before` (a position).
pub async fn feed(
    conn: &mut PgConnection,
    feed: Feed,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<ActivityRow>, sqlx::Error> {
    let (history_kinds, names): (Vec<&str>, Vec<&str>) = HISTORY_KINDS.into_iter().unzip();
    let (scope, id, all) = match feed {
        Feed::Document(id) => ("document_id", id, true),
        Feed::Workspace { id, all } => ("workspace_id", id, all),
    };
    // Each half is filtered to what the caller may open before it is limited, so a page
    // is full whenever there is more.
    let readable = "($6 OR collab_opens_document(d.document_id, d.workspace_id, d.created_by))";
    sqlx::query_as(&format!(
        "WITH kinds AS (SELECT * FROM unnest($4::text[], $5::text[]) AS k(stored, shown)), \
         entries AS ( \
           (SELECT h.last_position AS position, k.shown AS kind, h.actor, h.document_id, \
                   d.title, h.started_at, h.ended_at, h.edits, h.inserted, h.deleted, \
                   h.details, NULL::uuid AS thread_id, NULL::uuid AS comment_id \
            FROM rm_history_entries h JOIN kinds k ON k.stored = h.kind \
            JOIN rm_documents d ON d.document_id = h.document_id \
            WHERE h.{scope} = $1 AND h.last_position < $2 AND {readable} \
            ORDER BY h.last_position DESC LIMIT $3) \
           UNION ALL \
           (SELECT a.position, a.kind, a.actor, a.document_id, d.title, a.recorded_at, \
                   a.recorded_at, 0, 0, 0, '{{}}'::jsonb, a.thread_id, a.comment_id \
            FROM rm_activity a JOIN rm_documents d ON d.document_id = a.document_id \
            WHERE a.{scope} = $1 AND a.position < $2 AND {readable} \
            ORDER BY a.position DESC LIMIT $3)) \
         SELECT e.position, e.kind, e.actor, p.display_name AS actor_name, e.document_id, \
                e.title AS document_title, e.started_at, e.ended_at, e.edits, e.inserted, \
                e.deleted, e.details, e.thread_id, e.comment_id, c.body AS comment_body \
         FROM entries e \
         LEFT JOIN rm_profiles p ON 'user:' || p.user_id = e.actor \
         LEFT JOIN rm_comments c ON c.comment_id = e.comment_id \
         ORDER BY e.position DESC LIMIT $3"
    ))
    .bind(id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .bind(history_kinds)
    .bind(names)
    .bind(all)
    .fetch_all(conn)
    .await
}
