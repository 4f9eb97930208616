//! Read model `rm_documents`: the folding and the queries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::document::DocumentEvent;
use collab_domain::EventCodec;
use collab_domain::{DocumentId, RecordedEvent, StreamCategory, UserId, WorkspaceId};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use tracing::instrument;
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

/// `rm_documents`, `rm_document_shares`: documents of a workspace, their metadata and
/// explicit shares.
pub struct Documents;

#[async_trait]
impl ReadModel for Documents {
    fn name(&self) -> &'static str {
        "documents"
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Document]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_document_shares", "rm_documents"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let decoded = DocumentEvent::decode_recorded(event)?;
        Ok(apply(conn, event, &decoded).await?)
    }
}

const SET_TITLE: &str =
    "UPDATE rm_documents SET title = $2, updated_at = $3, version = $4 WHERE document_id = $1";
const SET_FOLDER: &str =
    "UPDATE rm_documents SET folder = $2, updated_at = $3, version = $4 WHERE document_id = $1";
const SET_ARCHIVED: &str =
    "UPDATE rm_documents SET archived = $2, updated_at = $3, version = $4 WHERE document_id = $1";

async fn apply(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    decoded: &DocumentEvent,
) -> Result<(), sqlx::Error> {
    let document_id = event.stream_id.id;
    let at = event.metadata.recorded_at;
    let update = |sql: &'static str| sqlx::query(sql).bind(document_id);
    match decoded {
        DocumentEvent::DocumentCreated(e) => {
            sqlx::query(
                "INSERT INTO rm_documents (document_id, workspace_id, title, folder, archived, \
                 created_by, created_at, updated_at, created_position, version) \
                 VALUES ($1, $2, $3, $4, false, $5, $6, $6, $7, $8)",
            )
            .bind(document_id)
            .bind(e.workspace_id.as_uuid())
            .bind(&e.title)
            .bind(&e.folder)
            .bind(e.created_by.as_str())
            .bind(at)
            .bind(event.position)
            .bind(event.stream_version)
            .execute(&mut *conn)
            .await?;
        }
        DocumentEvent::DocumentRenamed(e) => {
            update(SET_TITLE)
                .bind(&e.title)
                .bind(at)
                .bind(event.stream_version)
                .execute(&mut *conn)
                .await?;
        }
        DocumentEvent::DocumentMoved(e) => {
            update(SET_FOLDER)
                .bind(&e.folder)
                .bind(at)
                .bind(event.stream_version)
                .execute(&mut *conn)
                .await?;
        }
        DocumentEvent::DocumentArchived(_) | DocumentEvent::DocumentRestored(_) => {
            let archived = matches!(decoded, DocumentEvent::DocumentArchived(_));
            update(SET_ARCHIVED)
                .bind(archived)
                .bind(at)
                .bind(event.stream_version)
                .execute(&mut *conn)
                .await?;
        }
        DocumentEvent::DocumentDeleted(_) => {
            sqlx::query("DELETE FROM rm_documents WHERE document_id = $1")
                .bind(document_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM rm_document_shares WHERE document_id = $1")
                .bind(document_id)
                .execute(&mut *conn)
                .await?;
        }
        DocumentEvent::DocumentShared(e) => {
            sqlx::query(
                "INSERT INTO rm_document_shares (document_id, workspace_id, user_id, role) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (document_id, user_id) DO UPDATE SET role = EXCLUDED.role",
            )
            .bind(document_id)
            .bind(event.metadata.workspace_id.as_uuid())
            .bind(e.user_id.as_str())
            .bind(e.role.as_str())
            .execute(&mut *conn)
            .await?;
        }
        DocumentEvent::DocumentUnshared(e) => {
            sqlx::query("DELETE FROM rm_document_shares WHERE document_id = $1 AND user_id = $2")
                .bind(document_id)
                .bind(e.user_id.as_str())
                .execute(&mut *conn)
                .await?;
        }
        // Links are checked against the aggregate (consistent); no read model needs them.
        DocumentEvent::ShareLinkCreated(_) | DocumentEvent::ShareLinkRevoked(_) => {}
        // Named versions are the history read model's.
        DocumentEvent::VersionNamed(_) | DocumentEvent::VersionDeleted(_) => {}
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DocumentView {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub title: String,
    pub folder: String,
    pub archived: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    /// Global position of the creating event; the listing's sort key and cursor.
    #[serde(skip)]
    pub created_position: i64,
}

const DOCUMENT_VIEW: &str = "SELECT document_id AS id, workspace_id, title, folder, archived, \
     created_by, created_at, updated_at, version, created_position FROM rm_documents";

#[instrument(skip(executor), fields(document.id = %document))]
pub async fn get(
    executor: impl PgExecutor<'_>,
    document: DocumentId,
) -> Result<Option<DocumentView>, sqlx::Error> {
    sqlx::query_as(&format!("{DOCUMENT_VIEW} WHERE document_id = $1"))
        .bind(document.as_uuid())
        .fetch_optional(executor)
        .await
}

/// Which documents a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchivedFilter {
    Exclude,
    Include,
    Only,
}

/// A page of the workspace's documents that `user` may see, newest first, strictly older
/// than `before` (a creation position from the previous page). The visibility rule is
/// `collab_domain::access::document_role`, expressed in SQL.
#[instrument(skip(executor), fields(workspace.id = %workspace, user.id = %user))]
pub async fn list(
    executor: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    user: &UserId,
    sees_all: bool,
    archived: ArchivedFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DocumentView>, sqlx::Error> {
    let archived_clause = match archived {
        ArchivedFilter::Exclude => "AND NOT d.archived",
        ArchivedFilter::Include => "",
        ArchivedFilter::Only => "AND d.archived",
    };
    sqlx::query_as(&format!(
        "SELECT d.document_id AS id, d.workspace_id, d.title, d.folder, d.archived, d.created_by, \
                d.created_at, d.updated_at, d.version, d.created_position \
         FROM rm_documents d \
         JOIN rm_workspaces w ON w.workspace_id = d.workspace_id \
         LEFT JOIN rm_workspace_members m ON m.workspace_id = d.workspace_id AND m.user_id = $4 \
         WHERE d.workspace_id = $1 AND d.created_position < $2 {archived_clause} \
           AND ($5 OR m.role IN ('owner', 'admin', 'auditor') \
                OR (m.role = 'member' AND (d.created_by = $4 OR w.default_document_role IS NOT NULL)) \
                OR EXISTS (SELECT 1 FROM rm_document_shares s \
                           WHERE s.document_id = d.document_id AND s.user_id = $4)) \
         ORDER BY d.created_position DESC LIMIT $3"
    ))
    .bind(workspace.as_uuid())
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .bind(user.as_str())
    .bind(sees_all)
    .fetch_all(executor)
    .await
}
