//! The `audit` read model: the audit trail (who did what, when, to which document or
//! member), every stream's head as last seen (what verification and signed checkpoints
//! compare against), and the newest checkpoint of each workspace. The queries that serve
//! it are here too.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::audit::AuditEvent;
use collab_domain::document::DocumentEvent;
use collab_domain::workspace::WorkspaceEvent;
use collab_domain::{DomainEvent, RecordedEvent, StreamCategory, WorkspaceId};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

/// Edits by one actor to one document with no pause longer than this form one entry.
pub const DEFAULT_EDIT_GAP: Duration = Duration::from_secs(5 * 60);

/// The audit read model. It folds every category, content edits included, so queries
/// that do not read it do not wait for it.
pub struct Audit {
    pub edit_gap: Duration,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            edit_gap: DEFAULT_EDIT_GAP,
        }
    }
}

pub const NAME: &str = "audit";

#[async_trait]
impl ReadModel for Audit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[
            StreamCategory::Workspace,
            StreamCategory::Document,
            StreamCategory::Content,
            StreamCategory::Audit,
        ]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_audit_entries",
            "rm_audit_open_edits",
            "rm_audit_names",
            "rm_audit_stream_heads",
            "rm_audit_checkpoints",
        ]
    }

    fn awaited_by_every_query(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        sqlx::query(
            "INSERT INTO rm_audit_stream_heads \
             (stream_id, workspace_id, stream_category, version, hash, position) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (stream_id) DO UPDATE \
             SET version = $4, hash = $5, position = $6",
        )
        .bind(event.stream_id.to_string())
        .bind(event.metadata.workspace_id.as_uuid())
        .bind(event.stream_id.category.as_str())
        .bind(event.stream_version)
        .bind(&event.hash[..])
        .bind(event.position)
        .execute(&mut *conn)
        .await?;
        match DomainEvent::decode_recorded(event)? {
            DomainEvent::Audit(AuditEvent::AuditCheckpointSigned(cp)) => {
                sqlx::query(
                    "INSERT INTO rm_audit_checkpoints (workspace_id, covers_position, position) \
                     VALUES ($1, $2, $3) ON CONFLICT (workspace_id) DO UPDATE \
                     SET covers_position = $2, position = $3",
                )
                .bind(event.metadata.workspace_id.as_uuid())
                .bind(cp.covers_position)
                .bind(event.position)
                .execute(&mut *conn)
                .await?;
            }
            DomainEvent::Content(_) => self.edit(conn, event).await?,
            DomainEvent::Workspace(e) => {
                let (summary, member) = workspace_summary(conn, event, &e).await?;
                insert_entry(conn, event, summary, None, member).await?;
            }
            DomainEvent::Document(e) => {
                let (summary, member) = document_summary(conn, event, &e).await?;
                insert_entry(conn, event, summary, Some(event.stream_id.id), member).await?;
            }
        }
        Ok(())
    }
}

impl Audit {
    /// A content edit extends its actor's open burst on the document, or opens one.
    async fn edit(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), sqlx::Error> {
        let document = event.stream_id.id;
        let actor = event.metadata.actor.to_string();
        let at = event.metadata.recorded_at;
        let gap = chrono::Duration::from_std(self.edit_gap).unwrap_or(chrono::Duration::MAX);
        let open: Option<(i64, DateTime<Utc>)> = sqlx::query_as(
            "SELECT entry_position, last_at FROM rm_audit_open_edits \
             WHERE document_id = $1 AND actor = $2",
        )
        .bind(document)
        .bind(&actor)
        .fetch_optional(&mut *conn)
        .await?;
        let title = name_of(conn, document).await?;
        match open {
            Some((entry, last_at)) if at - last_at <= gap => {
                sqlx::query(
                    "UPDATE rm_audit_entries SET edits = edits + 1, last_version = $3, \
                     last_position = $4, recorded_at = $5, \
                     summary = $6 || ' (' || (edits + 1) || ' edits, versions ' || first_version || '–' || $3 || ')' \
                     WHERE workspace_id = $1 AND position = $2",
                )
                .bind(event.metadata.workspace_id.as_uuid())
                .bind(entry)
                .bind(event.stream_version)
                .bind(event.position)
                .bind(at)
                .bind(format!("{} edited {title}", who(&actor)))
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "UPDATE rm_audit_open_edits SET last_at = $3 WHERE document_id = $1 AND actor = $2",
                )
                .bind(document)
                .bind(&actor)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            _ => {
                let summary = format!(
                    "{} edited {title} (1 edit, version {})",
                    who(&actor),
                    event.stream_version
                );
                insert_entry(conn, event, summary, Some(document), None).await?;
                sqlx::query(
                    "INSERT INTO rm_audit_open_edits \
                     (document_id, actor, workspace_id, entry_position, last_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (document_id, actor) DO UPDATE \
                     SET entry_position = $4, last_at = $5",
                )
                .bind(document)
                .bind(&actor)
                .bind(event.metadata.workspace_id.as_uuid())
                .bind(event.position)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }
}

async fn insert_entry(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    summary: String,
    document: Option<Uuid>,
    member: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_audit_entries (workspace_id, position, last_position, actor, event_type, \
         summary, document_id, member, stream_id, first_version, last_version, edits, \
         started_at, recorded_at) \
         VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1, $10, $10)",
    )
    .bind(event.metadata.workspace_id.as_uuid())
    .bind(event.position)
    .bind(event.metadata.actor.to_string())
    .bind(&event.event_type)
    .bind(summary)
    .bind(document)
    .bind(member)
    .bind(event.stream_id.to_string())
    .bind(event.stream_version)
    .bind(event.metadata.recorded_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// `alice` for `user:alice`, `service account-…` for a service.
fn who(actor: &str) -> String {
    match actor.split_once(':') {
        Some(("user", id)) => id.to_owned(),
        Some(("service", name)) => format!("service {name}"),
        _ => actor.to_owned(),
    }
}

async fn set_name(
    conn: &mut PgConnection,
    id: Uuid,
    workspace: Uuid,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_audit_names (id, workspace_id, name) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET name = $3",
    )
    .bind(id)
    .bind(workspace)
    .bind(name)
    .execute(conn)
    .await?;
    Ok(())
}

async fn name_of(conn: &mut PgConnection, id: Uuid) -> Result<String, sqlx::Error> {
    let name: Option<String> = sqlx::query_scalar("SELECT name FROM rm_audit_names WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(name.unwrap_or_else(|| id.to_string()))
}

async fn workspace_summary(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    decoded: &WorkspaceEvent,
) -> Result<(String, Option<String>), sqlx::Error> {
    let actor = who(&event.metadata.actor.to_string());
    let workspace = event.metadata.workspace_id.as_uuid();
    Ok(match decoded {
        WorkspaceEvent::WorkspaceCreated(e) => {
            set_name(conn, workspace, workspace, &e.name).await?;
            (format!("{actor} created workspace {}", e.name), None)
        }
        WorkspaceEvent::WorkspaceRenamed(e) => {
            let old = name_of(conn, workspace).await?;
            set_name(conn, workspace, workspace, &e.name).await?;
            (
                format!("{actor} renamed workspace {old} to {}", e.name),
                None,
            )
        }
        WorkspaceEvent::MemberAdded(e) => (
            format!("{actor} added {} as {}", e.user_id, e.role),
            Some(e.user_id.to_string()),
        ),
        WorkspaceEvent::MemberRoleChanged(e) => (
            format!("{actor} made {} {}", e.user_id, e.role),
            Some(e.user_id.to_string()),
        ),
        WorkspaceEvent::MemberRemoved(e) => (
            if actor == e.user_id.as_str() {
                format!("{actor} left the workspace")
            } else {
                format!("{actor} removed {} from the workspace", e.user_id)
            },
            Some(e.user_id.to_string()),
        ),
        WorkspaceEvent::DefaultDocumentRoleChanged(e) => (
            format!(
                "{actor} set the default document role to {}",
                e.role.map_or("none", |r| r.as_str())
            ),
            None,
        ),
        WorkspaceEvent::ServiceAccountCreated(e) => {
            set_name(conn, e.account_id, workspace, &e.name).await?;
            let scopes: Vec<&str> = e.scopes.iter().map(|s| s.as_str()).collect();
            (
                format!(
                    "{actor} created service account {} ({})",
                    e.name,
                    scopes.join(", ")
                ),
                None,
            )
        }
        WorkspaceEvent::ServiceAccountRevoked(e) => {
            let name = name_of(conn, e.account_id).await?;
            (format!("{actor} revoked service account {name}"), None)
        }
    })
}

async fn document_summary(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    decoded: &DocumentEvent,
) -> Result<(String, Option<String>), sqlx::Error> {
    let actor = who(&event.metadata.actor.to_string());
    let document = event.stream_id.id;
    let workspace = event.metadata.workspace_id.as_uuid();
    let title = name_of(&mut *conn, document).await?;
    Ok(match decoded {
        DocumentEvent::DocumentCreated(e) => {
            set_name(conn, document, workspace, &e.title).await?;
            (format!("{actor} created {} in {}", e.title, e.folder), None)
        }
        DocumentEvent::DocumentRenamed(e) => {
            set_name(conn, document, workspace, &e.title).await?;
            (format!("{actor} renamed {title} to {}", e.title), None)
        }
        DocumentEvent::DocumentMoved(e) => (format!("{actor} moved {title} to {}", e.folder), None),
        DocumentEvent::DocumentArchived(_) => (format!("{actor} archived {title}"), None),
        DocumentEvent::DocumentRestored(_) => (format!("{actor} restored {title}"), None),
        DocumentEvent::DocumentDeleted(_) => (format!("{actor} deleted {title}"), None),
        DocumentEvent::DocumentShared(e) => (
            format!("{actor} shared {title} with {} as {}", e.user_id, e.role),
            Some(e.user_id.to_string()),
        ),
        DocumentEvent::DocumentUnshared(e) => (
            format!("{actor} stopped sharing {title} with {}", e.user_id),
            Some(e.user_id.to_string()),
        ),
        DocumentEvent::ShareLinkCreated(e) => (
            format!("{actor} created a {} link to {title}", e.role),
            None,
        ),
        DocumentEvent::ShareLinkRevoked(_) => (format!("{actor} revoked a link to {title}"), None),
    })
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub position: i64,
    pub last_position: i64,
    pub actor: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub summary: String,
    pub document_id: Option<Uuid>,
    pub member: Option<String>,
    pub stream_id: String,
    pub first_version: i64,
    pub last_version: i64,
    pub edits: i32,
    pub started_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

/// What the audit trail is filtered by.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub event_type: Option<String>,
    pub document: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Entries before this position (the previous page's `next_cursor`).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Newest first. An entry is in `from..to` when its activity overlaps the range.
pub async fn list(
    executor: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, last_position, actor, event_type, summary, document_id, member, \
         stream_id, first_version, last_version, edits, started_at, recorded_at \
         FROM rm_audit_entries WHERE workspace_id = $1 \
         AND ($2::text IS NULL OR actor = $2) \
         AND ($3::text IS NULL OR event_type = $3) \
         AND ($4::uuid IS NULL OR document_id = $4) \
         AND ($5::timestamptz IS NULL OR recorded_at >= $5) \
         AND ($6::timestamptz IS NULL OR started_at <= $6) \
         AND ($7::bigint IS NULL OR position < $7) \
         ORDER BY position DESC LIMIT $8",
    )
    .bind(workspace.as_uuid())
    .bind(&query.actor)
    .bind(&query.event_type)
    .bind(query.document)
    .bind(query.from)
    .bind(query.to)
    .bind(query.before)
    .bind(query.limit)
    .fetch_all(executor)
    .await
}
