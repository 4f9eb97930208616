//! Read models `rm_workspaces` and `rm_workspace_members`: the folding and the queries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::workspace::WorkspaceEvent;
use collab_domain::EventCodec;
use collab_domain::{RecordedEvent, StreamCategory, UserId, WorkspaceId, WorkspaceRole};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use tracing::instrument;
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

/// `rm_workspaces`, `rm_workspace_members`: a user's workspaces and their members.
pub struct Workspaces;

#[async_trait]
impl ReadModel for Workspaces {
    fn name(&self) -> &'static str {
        "workspaces"
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Workspace]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_workspace_members", "rm_workspaces"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let decoded = WorkspaceEvent::decode_recorded(event)?;
        Ok(apply(conn, event, &decoded).await?)
    }
}

async fn apply(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    decoded: &WorkspaceEvent,
) -> Result<(), sqlx::Error> {
    let workspace_id = event.stream_id.id;
    let at = event.metadata.recorded_at;
    match decoded {
        WorkspaceEvent::WorkspaceCreated(e) => {
            sqlx::query(
                "INSERT INTO rm_workspaces (workspace_id, name, created_by, created_at, updated_at, version) \
                 VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(workspace_id)
            .bind(&e.name)
            .bind(e.owner.as_str())
            .bind(at)
            .bind(event.stream_version)
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        WorkspaceEvent::WorkspaceRenamed(e) => {
            sqlx::query("UPDATE rm_workspaces SET name = $2 WHERE workspace_id = $1")
                .bind(workspace_id)
                .bind(&e.name)
                .execute(&mut *conn)
                .await?;
        }
        WorkspaceEvent::MemberAdded(e) => {
            sqlx::query(
                "INSERT INTO rm_workspace_members (workspace_id, user_id, role, added_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(workspace_id)
            .bind(e.user_id.as_str())
            .bind(e.role.as_str())
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        WorkspaceEvent::MemberRoleChanged(e) => {
            sqlx::query(
                "UPDATE rm_workspace_members SET role = $3 WHERE workspace_id = $1 AND user_id = $2",
            )
            .bind(workspace_id)
            .bind(e.user_id.as_str())
            .bind(e.role.as_str())
            .execute(&mut *conn)
            .await?;
        }
        WorkspaceEvent::DefaultDocumentRoleChanged(e) => {
            sqlx::query(
                "UPDATE rm_workspaces SET default_document_role = $2 WHERE workspace_id = $1",
            )
            .bind(workspace_id)
            .bind(e.role.map(|r| r.as_str()))
            .execute(&mut *conn)
            .await?;
        }
        // Service accounts are checked against the aggregate; no read model needs them.
        WorkspaceEvent::ServiceAccountCreated(_) | WorkspaceEvent::ServiceAccountRevoked(_) => {}
        // The `webhooks` read model's.
        WorkspaceEvent::WebhookCreated(_)
        | WorkspaceEvent::WebhookDeleted(_)
        | WorkspaceEvent::WebhookDisabled(_)
        | WorkspaceEvent::WebhookEnabled(_) => {}
        // The `files` read model's.
        WorkspaceEvent::CollectionCreated(_)
        | WorkspaceEvent::CollectionRenamed(_)
        | WorkspaceEvent::CollectionDeleted(_) => {}
        WorkspaceEvent::MemberRemoved(e) => {
            sqlx::query(
                "DELETE FROM rm_workspace_members WHERE workspace_id = $1 AND user_id = $2",
            )
            .bind(workspace_id)
            .bind(e.user_id.as_str())
            .execute(&mut *conn)
            .await?;
        }
    }
    sqlx::query("UPDATE rm_workspaces SET updated_at = $2, version = $3 WHERE workspace_id = $1")
        .bind(workspace_id)
        .bind(at)
        .bind(event.stream_version)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A workspace as one of its members sees it in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WorkspaceView {
    pub id: Uuid,
    pub name: String,
    /// The requesting user's role.
    pub role: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    /// The role members get on documents not shared with them (null: none).
    pub default_document_role: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: String,
    /// The name the member gave in their profile (null: none, or erased).
    pub display_name: Option<String>,
    pub role: String,
    pub added_at: DateTime<Utc>,
}

const WORKSPACE_VIEW: &str = "SELECT w.workspace_id AS id, w.name, m.role, w.created_by, \
     w.created_at, w.updated_at, w.version, w.default_document_role \
     FROM rm_workspaces w JOIN rm_workspace_members m ON m.workspace_id = w.workspace_id";

/// The workspaces `user` belongs to, oldest first.
#[instrument(skip(executor), fields(user.id = %user))]
pub async fn list_for_user(
    executor: impl PgExecutor<'_>,
    user: &UserId,
) -> Result<Vec<WorkspaceView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{WORKSPACE_VIEW} WHERE m.user_id = $1 ORDER BY w.created_at, w.workspace_id"
    ))
    .bind(user.as_str())
    .fetch_all(executor)
    .await
}

/// One workspace as `user` sees it; `None` when it does not exist or `user` is not a
/// member (the two are indistinguishable on purpose).
#[instrument(skip(executor), fields(workspace.id = %workspace, user.id = %user))]
pub async fn get_for_user(
    executor: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    user: &UserId,
) -> Result<Option<WorkspaceView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{WORKSPACE_VIEW} WHERE m.user_id = $1 AND w.workspace_id = $2"
    ))
    .bind(user.as_str())
    .bind(workspace.as_uuid())
    .fetch_optional(executor)
    .await
}

/// `user`'s role in `workspace`, per the read model.
pub async fn role_of(
    executor: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    user: &UserId,
) -> Result<Option<WorkspaceRole>, sqlx::Error> {
    let role: Option<String> = sqlx::query_scalar(
        "SELECT role FROM rm_workspace_members WHERE workspace_id = $1 AND user_id = $2",
    )
    .bind(workspace.as_uuid())
    .bind(user.as_str())
    .fetch_optional(executor)
    .await?;
    Ok(role.and_then(|r| WorkspaceRole::parse(&r).ok()))
}

#[instrument(skip(executor), fields(workspace.id = %workspace))]
pub async fn members(
    executor: impl PgExecutor<'_>,
    workspace: WorkspaceId,
) -> Result<Vec<MemberView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, p.display_name, m.role, m.added_at FROM rm_workspace_members m \
         LEFT JOIN rm_profiles p ON p.user_id = m.user_id WHERE m.workspace_id = $1 \
         ORDER BY m.added_at, m.user_id",
    )
    .bind(workspace.as_uuid())
    .fetch_all(executor)
    .await
}
