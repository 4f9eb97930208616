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

use crate::read_model::{column, ProjectionError, ReadModel};

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
        &[
            "rm_document_shares",
            "rm_document_templates",
            "rm_documents",
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let decoded = DocumentEvent::decode_recorded(event)?;
        Ok(apply(conn, event, &decoded).await?)
    }

    /// A page folded in memory first (each document's final row, each share's final
    /// state), then written in a few statements: a rebuild of millions of events is not a
    /// round trip per event.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut page = Page::default();
        for event in events {
            page.fold(event, DocumentEvent::decode_recorded(event)?);
        }
        Ok(page.write(conn).await?)
    }
}

/// A new document's row as the page leaves it.
struct NewRow {
    workspace: Uuid,
    title: String,
    folder: String,
    archived: bool,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created_position: i64,
    version: i64,
}

/// What the page changes in an existing document's row (`None`: unchanged).
#[derive(Default)]
struct RowChange {
    title: Option<String>,
    folder: Option<String>,
    archived: Option<bool>,
    updated_at: Option<DateTime<Utc>>,
    version: i64,
}

#[derive(Default)]
struct Page {
    created: std::collections::HashMap<Uuid, NewRow>,
    changed: std::collections::HashMap<Uuid, RowChange>,
    deleted: Vec<Uuid>,
    /// (document, user) → (workspace, role), or None: unshared.
    shares: std::collections::HashMap<(Uuid, String), Option<(Uuid, &'static str)>>,
    /// document → (workspace, whether it is a template now).
    templates: std::collections::HashMap<Uuid, (Uuid, bool)>,
}

impl Page {
    fn fold(&mut self, event: &RecordedEvent, decoded: DocumentEvent) {
        let document = event.stream_id.id;
        let at = event.metadata.recorded_at;
        let version = event.stream_version;
        let mut change = |title: Option<String>, folder: Option<String>, archived: Option<bool>| {
            if let Some(row) = self.created.get_mut(&document) {
                if let Some(title) = title {
                    row.title = title;
                }
                if let Some(folder) = folder {
                    row.folder = folder;
                }
                if let Some(archived) = archived {
                    row.archived = archived;
                }
                row.updated_at = at;
                row.version = version;
                return;
            }
            let row = self.changed.entry(document).or_default();
            if title.is_some() {
                row.title = title;
            }
            if folder.is_some() {
                row.folder = folder;
            }
            if archived.is_some() {
                row.archived = archived;
            }
            row.updated_at = Some(at);
            row.version = version;
        };
        match decoded {
            DocumentEvent::DocumentCreated(e) => {
                self.created.insert(
                    document,
                    NewRow {
                        workspace: e.workspace_id.as_uuid(),
                        title: e.title,
                        folder: e.folder,
                        archived: false,
                        created_by: e.created_by.as_str().to_owned(),
                        created_at: at,
                        updated_at: at,
                        created_position: event.position,
                        version,
                    },
                );
            }
            DocumentEvent::DocumentRenamed(e) => change(Some(e.title), None, None),
            DocumentEvent::DocumentMoved(e) => change(None, Some(e.folder), None),
            DocumentEvent::DocumentArchived(_) => change(None, None, Some(true)),
            DocumentEvent::DocumentRestored(_) => change(None, None, Some(false)),
            DocumentEvent::DocumentDeleted(_) => {
                if self.created.remove(&document).is_none() {
                    self.deleted.push(document);
                }
                self.changed.remove(&document);
                self.shares.retain(|(d, _), _| *d != document);
                self.templates
                    .insert(document, (event.metadata.workspace_id.as_uuid(), false));
            }
            DocumentEvent::DocumentTemplateChanged(e) => {
                self.templates.insert(
                    document,
                    (event.metadata.workspace_id.as_uuid(), e.template),
                );
            }
            DocumentEvent::DocumentShared(e) => {
                self.shares.insert(
                    (document, e.user_id.as_str().to_owned()),
                    Some((event.metadata.workspace_id.as_uuid(), e.role.as_str())),
                );
            }
            DocumentEvent::DocumentUnshared(e) => {
                self.shares
                    .insert((document, e.user_id.as_str().to_owned()), None);
            }
            DocumentEvent::ShareLinkCreated(_)
            | DocumentEvent::ShareLinkRevoked(_)
            | DocumentEvent::VersionNamed(_)
            | DocumentEvent::VersionDeleted(_) => {}
        }
    }

    async fn write(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.deleted.is_empty() {
            sqlx::query("DELETE FROM rm_document_shares WHERE document_id = ANY($1)")
                .bind(&self.deleted)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM rm_documents WHERE document_id = ANY($1)")
                .bind(&self.deleted)
                .execute(&mut *conn)
                .await?;
        }
        if !self.created.is_empty() {
            let rows: Vec<(Uuid, NewRow)> = self.created.into_iter().collect();
            sqlx::query(
                "INSERT INTO rm_documents (document_id, workspace_id, title, folder, archived, \
                 created_by, created_at, updated_at, created_position, version) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], \
                 $5::bool[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bigint[], \
                 $10::bigint[])",
            )
            .bind(column(&rows, |r| r.0))
            .bind(column(&rows, |r| r.1.workspace))
            .bind(column(&rows, |r| r.1.title.clone()))
            .bind(column(&rows, |r| r.1.folder.clone()))
            .bind(column(&rows, |r| r.1.archived))
            .bind(column(&rows, |r| r.1.created_by.clone()))
            .bind(column(&rows, |r| r.1.created_at))
            .bind(column(&rows, |r| r.1.updated_at))
            .bind(column(&rows, |r| r.1.created_position))
            .bind(column(&rows, |r| r.1.version))
            .execute(&mut *conn)
            .await?;
        }
        if !self.changed.is_empty() {
            let rows: Vec<(Uuid, RowChange)> = self.changed.into_iter().collect();
            sqlx::query(
                "UPDATE rm_documents d SET title = coalesce(u.title, d.title), \
                 folder = coalesce(u.folder, d.folder), archived = coalesce(u.archived, d.archived), \
                 updated_at = coalesce(u.at, d.updated_at), version = u.version \
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bool[], $5::timestamptz[], \
                 $6::bigint[]) AS u(id, title, folder, archived, at, version) \
                 WHERE d.document_id = u.id",
            )
            .bind(column(&rows, |r| r.0))
            .bind(column(&rows, |r| r.1.title.clone()))
            .bind(column(&rows, |r| r.1.folder.clone()))
            .bind(column(&rows, |r| r.1.archived))
            .bind(column(&rows, |r| r.1.updated_at))
            .bind(column(&rows, |r| r.1.version))
            .execute(&mut *conn)
            .await?;
        }
        let (on, off): (Vec<_>, Vec<_>) = self.templates.into_iter().partition(|(_, (_, t))| *t);
        if !off.is_empty() {
            sqlx::query("DELETE FROM rm_document_templates WHERE document_id = ANY($1)")
                .bind(column(&off, |t| t.0))
                .execute(&mut *conn)
                .await?;
        }
        if !on.is_empty() {
            sqlx::query(
                "INSERT INTO rm_document_templates (document_id, workspace_id)                  SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING",
            )
            .bind(column(&on, |t| t.0))
            .bind(column(&on, |t| t.1 .0))
            .execute(&mut *conn)
            .await?;
        }
        let (mut shared, mut unshared): (Vec<_>, Vec<_>) = (vec![], vec![]);
        for ((document, user), state) in self.shares {
            match state {
                Some((workspace, role)) => shared.push((document, workspace, user, role)),
                None => unshared.push((document, user)),
            }
        }
        if !unshared.is_empty() {
            let (documents, users): (Vec<Uuid>, Vec<String>) = unshared.into_iter().unzip();
            sqlx::query(
                "DELETE FROM rm_document_shares s USING unnest($1::uuid[], $2::text[]) AS u(d, usr) \
                 WHERE s.document_id = u.d AND s.user_id = u.usr",
            )
            .bind(documents)
            .bind(users)
            .execute(&mut *conn)
            .await?;
        }
        if !shared.is_empty() {
            sqlx::query(
                "INSERT INTO rm_document_shares (document_id, workspace_id, user_id, role) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) \
                 ON CONFLICT (document_id, user_id) DO UPDATE SET role = EXCLUDED.role",
            )
            .bind(column(&shared, |s| s.0))
            .bind(column(&shared, |s| s.1))
            .bind(column(&shared, |s| s.2.clone()))
            .bind(column(&shared, |s| s.3))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
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
            sqlx::query("DELETE FROM rm_document_templates WHERE document_id = $1")
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
        DocumentEvent::DocumentTemplateChanged(e) if e.template => {
            sqlx::query(
                "INSERT INTO rm_document_templates (document_id, workspace_id) VALUES ($1, $2)                  ON CONFLICT DO NOTHING",
            )
            .bind(document_id)
            .bind(event.metadata.workspace_id.as_uuid())
            .execute(&mut *conn)
            .await?;
        }
        DocumentEvent::DocumentTemplateChanged(_) => {
            sqlx::query("DELETE FROM rm_document_templates WHERE document_id = $1")
                .bind(document_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
