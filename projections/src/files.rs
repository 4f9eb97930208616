//! Read model `files`: each workspace's files (`rm_files`: name, types, size, state, the
//! reason a rejected upload was refused, thumbnails, tags), the documents they are
//! attached to (`rm_file_attachments`), the asset collections (`rm_collections`, from the
//! workspace streams) and which files are in each (`rm_collection_files`), with the queries
//! that read them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::file::FileEvent;
use collab_domain::workspace::WorkspaceEvent;
use collab_domain::{EventCodec, RecordedEvent, StreamCategory};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

pub const NAME: &str = "files";

/// `rm_files`, `rm_file_attachments`.
pub struct Files;

#[async_trait]
impl ReadModel for Files {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::File, StreamCategory::Workspace]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_collection_files",
            "rm_collections",
            "rm_file_attachments",
            "rm_files",
        ]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let file = event.stream_id.id;
        let workspace = event.metadata.workspace_id.as_uuid();
        let at = event.metadata.recorded_at;
        if event.stream_id.category == StreamCategory::Workspace {
            return Ok(
                collection_event(conn, event, WorkspaceEvent::decode_recorded(event)?).await?,
            );
        }
        let set = |assignments: &'static str| {
            format!("UPDATE rm_files SET {assignments}, position = $2, updated_at = $3 WHERE file_id = $1")
        };
        match FileEvent::decode_recorded(event)? {
            FileEvent::FileUploadStarted(e) => {
                sqlx::query(
                    "INSERT INTO rm_files (file_id, workspace_id, filename, declared_type, size, \
                     state, uploaded_by, created_at, updated_at, position, multipart) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(file)
                .bind(workspace)
                .bind(e.filename.as_str())
                .bind(&e.declared_type)
                .bind(e.size as i64)
                .bind(e.by.as_str())
                .bind(at)
                .bind(event.position)
                .bind(e.upload_id.is_some())
                .execute(&mut *conn)
                .await?;
                if let Some(document) = e.document_id {
                    attach(conn, file, workspace, document.as_uuid(), e.by.as_str(), at).await?;
                }
            }
            FileEvent::FileUploaded(e) => {
                sqlx::query(&set(
                    "state = 'uploaded', content_type = $4, size = $5, uploaded_at = $3",
                ))
                .bind(file)
                .bind(event.position)
                .bind(at)
                .bind(&e.content_type)
                .bind(e.size as i64)
                .execute(&mut *conn)
                .await?;
            }
            FileEvent::FileRejected(e) => {
                sqlx::query(&set("state = 'rejected', reason = $4"))
                    .bind(file)
                    .bind(event.position)
                    .bind(at)
                    .bind(&e.reason)
                    .execute(&mut *conn)
                    .await?;
            }
            FileEvent::FileUploadAbandoned(_) => {
                sqlx::query(&set(
                    "state = 'abandoned', reason = 'the upload was not completed in time'",
                ))
                .bind(file)
                .bind(event.position)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            FileEvent::FileDeleted(_) => {
                // Kept no longer: its name and metadata go with it.
                sqlx::query("DELETE FROM rm_collection_files WHERE file_id = $1")
                    .bind(file)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM rm_file_attachments WHERE file_id = $1")
                    .bind(file)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM rm_files WHERE file_id = $1")
                    .bind(file)
                    .execute(&mut *conn)
                    .await?;
            }
            FileEvent::ThumbnailCreated(e) => {
                let size = if e.max_px <= 256 { "small" } else { "large" };
                sqlx::query(&set("thumbnails = thumbnails || jsonb_build_object($4::text, jsonb_build_object('width', $5::int, 'height', $6::int))"))
                    .bind(file)
                    .bind(event.position)
                    .bind(at)
                    .bind(size)
                    .bind(e.width as i32)
                    .bind(e.height as i32)
                    .execute(&mut *conn)
                    .await?;
            }
            FileEvent::ThumbnailFailed(e) => {
                sqlx::query(&set("thumbnail_error = $4"))
                    .bind(file)
                    .bind(event.position)
                    .bind(at)
                    .bind(&e.reason)
                    .execute(&mut *conn)
                    .await?;
            }
            FileEvent::FileAttached(e) => {
                attach(
                    conn,
                    file,
                    workspace,
                    e.document_id.as_uuid(),
                    e.by.as_str(),
                    at,
                )
                .await?;
            }
            FileEvent::FileDetached(e) => {
                sqlx::query(
                    "DELETE FROM rm_file_attachments WHERE file_id = $1 AND document_id = $2",
                )
                .bind(file)
                .bind(e.document_id.as_uuid())
                .execute(&mut *conn)
                .await?;
            }
            FileEvent::FileTagsSet(e) => {
                sqlx::query(&set("tags = $4"))
                    .bind(file)
                    .bind(event.position)
                    .bind(at)
                    .bind(&e.tags)
                    .execute(&mut *conn)
                    .await?;
            }
            FileEvent::FileAddedToCollection(e) => {
                sqlx::query(
                    "INSERT INTO rm_collection_files (collection_id, file_id, workspace_id, added_at, position) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(e.collection_id)
                .bind(file)
                .bind(workspace)
                .bind(at)
                .bind(event.position)
                .execute(&mut *conn)
                .await?;
            }
            FileEvent::FileRemovedFromCollection(e) => {
                sqlx::query(
                    "DELETE FROM rm_collection_files WHERE collection_id = $1 AND file_id = $2",
                )
                .bind(e.collection_id)
                .bind(file)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

async fn collection_event(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    decoded: WorkspaceEvent,
) -> Result<(), sqlx::Error> {
    match decoded {
        WorkspaceEvent::CollectionCreated(e) => {
            sqlx::query(
                "INSERT INTO rm_collections (collection_id, workspace_id, name, created_by, created_at, position) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(e.collection_id)
            .bind(event.metadata.workspace_id.as_uuid())
            .bind(&e.name)
            .bind(e.by.as_str())
            .bind(event.metadata.recorded_at)
            .bind(event.position)
            .execute(conn)
            .await?;
        }
        WorkspaceEvent::CollectionRenamed(e) => {
            sqlx::query(
                "UPDATE rm_collections SET name = $2, position = $3 WHERE collection_id = $1",
            )
            .bind(e.collection_id)
            .bind(&e.name)
            .bind(event.position)
            .execute(conn)
            .await?;
        }
        WorkspaceEvent::CollectionDeleted(e) => {
            // Its files stay; they are only no longer in it.
            sqlx::query("DELETE FROM rm_collection_files WHERE collection_id = $1")
                .bind(e.collection_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM rm_collections WHERE collection_id = $1")
                .bind(e.collection_id)
                .execute(conn)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn attach(
    conn: &mut PgConnection,
    file: Uuid,
    workspace: Uuid,
    document: Uuid,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_file_attachments (file_id, document_id, workspace_id, attached_by, attached_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(file)
    .bind(document)
    .bind(workspace)
    .bind(by)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A file as the routes show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FileRow {
    pub file_id: Uuid,
    pub workspace_id: Uuid,
    pub filename: String,
    pub declared_type: String,
    pub content_type: Option<String>,
    pub size: i64,
    pub state: String,
    pub reason: Option<String>,
    pub uploaded_by: String,
    pub created_at: DateTime<Utc>,
    pub uploaded_at: Option<DateTime<Utc>>,
    pub thumbnails: serde_json::Value,
    pub thumbnail_error: Option<String>,
    pub multipart: bool,
    pub tags: Vec<String>,
    /// The documents it is attached to.
    pub documents: Vec<Uuid>,
    /// The collections it is in.
    pub collections: Vec<Uuid>,
}

const COLUMNS: &str = "f.file_id, f.workspace_id, f.filename, f.declared_type, f.content_type, \
     f.size, f.state, f.reason, f.uploaded_by, f.created_at, f.uploaded_at, f.thumbnails, \
     f.thumbnail_error, f.multipart, f.tags, \
     coalesce((SELECT array_agg(a.document_id ORDER BY a.attached_at) FROM rm_file_attachments a \
               WHERE a.file_id = f.file_id), '{}') AS documents, \
     coalesce((SELECT array_agg(c.collection_id ORDER BY c.added_at) FROM rm_collection_files c \
               WHERE c.file_id = f.file_id), '{}') AS collections";

pub async fn get(conn: &mut PgConnection, file: Uuid) -> Result<Option<FileRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_files f WHERE f.file_id = $1"
    ))
    .bind(file)
    .fetch_optional(conn)
    .await
}

/// The uploaded files attached to a document, oldest attachment first.
pub async fn attached_to(
    conn: &mut PgConnection,
    document: Uuid,
) -> Result<Vec<FileRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_files f JOIN rm_file_attachments a ON a.file_id = f.file_id \
         WHERE a.document_id = $1 AND f.state = 'uploaded' ORDER BY a.attached_at, f.file_id"
    ))
    .bind(document)
    .fetch_all(conn)
    .await
}

/// Uploads still pending that were started before `before`: (file, workspace).
pub async fn stale_uploads(
    conn: &mut PgConnection,
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT file_id, workspace_id FROM rm_files WHERE state = 'pending' AND created_at < $1 \
         ORDER BY created_at LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// An asset collection with how many files are in it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CollectionRow {
    pub collection_id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub files: i64,
}

/// A workspace's collections by name.
pub async fn collections(
    conn: &mut PgConnection,
    workspace: Uuid,
) -> Result<Vec<CollectionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.collection_id, c.workspace_id, c.name, c.created_by, c.created_at, \
         (SELECT count(*) FROM rm_collection_files f JOIN rm_files r ON r.file_id = f.file_id \
          WHERE f.collection_id = c.collection_id AND r.state = 'uploaded') AS files \
         FROM rm_collections c WHERE c.workspace_id = $1 ORDER BY lower(c.name), c.collection_id",
    )
    .bind(workspace)
    .fetch_all(conn)
    .await
}

/// What the asset library is filtered by.
#[derive(Debug, Clone, Default)]
pub struct AssetFilter {
    pub collection: Option<Uuid>,
    pub tag: Option<String>,
    /// Content-type patterns (`image/%`, `application/pdf`): any of them.
    pub types: Vec<String>,
    /// Words the name contains (case-insensitive).
    pub name: Option<String>,
    /// Keyset: files created before this (created_at, file_id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A workspace's uploaded files, newest first, filtered.
pub async fn assets(
    conn: &mut PgConnection,
    workspace: Uuid,
    filter: &AssetFilter,
) -> Result<Vec<FileRow>, sqlx::Error> {
    let name = filter.name.as_ref().map(|n| {
        format!(
            "%{}%",
            n.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_files f WHERE f.workspace_id = $1 AND f.state = 'uploaded' \
         AND ($2::uuid IS NULL OR EXISTS (SELECT 1 FROM rm_collection_files c \
              WHERE c.file_id = f.file_id AND c.collection_id = $2)) \
         AND ($3::text IS NULL OR $3 = ANY(f.tags)) \
         AND (cardinality($4::text[]) = 0 OR f.content_type LIKE ANY($4)) \
         AND ($5::text IS NULL OR f.filename ILIKE $5) \
         AND ($6::timestamptz IS NULL OR (f.created_at, f.file_id) < ($6, $7)) \
         ORDER BY f.created_at DESC, f.file_id DESC LIMIT $8"
    ))
    .bind(workspace)
    .bind(filter.collection)
    .bind(&filter.tag)
    .bind(&filter.types)
    .bind(name)
    .bind(filter.before.map(|b| b.0))
    .bind(filter.before.map(|b| b.1))
    .bind(filter.limit)
    .fetch_all(conn)
    .await
}

/// The uploaded files of a collection (for a zip), oldest first.
pub async fn collection_files(
    conn: &mut PgConnection,
    collection: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.file_id FROM rm_collection_files c JOIN rm_files f ON f.file_id = c.file_id \
         WHERE c.collection_id = $1 AND f.state = 'uploaded' ORDER BY c.added_at, c.file_id",
    )
    .bind(collection)
    .fetch_all(conn)
    .await
}
