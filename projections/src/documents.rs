//! Read model `rm_documents`: the folding and the queries.

use chrono::{DateTime, Utc};
use collab_domain::document::DocumentEvent;
use collab_domain::{DocumentId, RecordedEvent, WorkspaceId};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use tracing::instrument;
use uuid::Uuid;

const SET_TITLE: &str =
    "UPDATE rm_documents SET title = $2, updated_at = $3, version = $4 WHERE document_id = $1";
const SET_FOLDER: &str =
    "UPDATE rm_documents SET folder = $2, updated_at = $3, version = $4 WHERE document_id = $1";
const SET_ARCHIVED: &str =
    "UPDATE rm_documents SET archived = $2, updated_at = $3, version = $4 WHERE document_id = $1";

pub(crate) async fn apply(
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
        }
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

/// A page of a workspace's documents, newest first, strictly older than `before` (a
/// creation position from the previous page).
#[instrument(skip(executor), fields(workspace.id = %workspace))]
pub async fn list(
    executor: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    archived: ArchivedFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DocumentView>, sqlx::Error> {
    let archived_clause = match archived {
        ArchivedFilter::Exclude => "AND NOT archived",
        ArchivedFilter::Include => "",
        ArchivedFilter::Only => "AND archived",
    };
    sqlx::query_as(&format!(
        "{DOCUMENT_VIEW} WHERE workspace_id = $1 AND created_position < $2 {archived_clause} \
         ORDER BY created_position DESC LIMIT $3"
    ))
    .bind(workspace.as_uuid())
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(executor)
    .await
}
