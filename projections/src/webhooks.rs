//! Read model `webhooks`: each workspace's webhooks (`rm_webhooks`), and — as it folds each
//! workspace, document and thread event — one delivery per enabled webhook whose patterns
//! match the event's type, in `webhook_deliveries` (the delivery worker's outbox). The
//! webhooks in force at that point of the log decide, so a rebuild writes the same
//! deliveries, which already exist (same ids) and are left alone.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use collab_domain::workspace::WorkspaceEvent;
use collab_domain::{EventCodec, RecordedEvent, StreamCategory};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

pub const NAME: &str = "webhooks";

/// `rm_webhooks` (and the deliveries it writes once).
pub struct Webhooks;

/// Whether an event type matches a webhook's pattern: the type itself, a prefix ending in
/// `*`, or `*`.
pub fn matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// The id of the delivery of `event` to `webhook` (stable across rebuilds).
pub fn delivery_id(event: Uuid, webhook: Uuid) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x9b1e_44c2_0f5d_4e7a_a3c8_6d21_5f0e_7b94);
    let mut name = event.as_bytes().to_vec();
    name.extend_from_slice(webhook.as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

#[async_trait]
impl ReadModel for Webhooks {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[
            StreamCategory::Workspace,
            StreamCategory::Document,
            StreamCategory::Thread,
        ]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_webhooks"]
    }

    /// A page in a few statements: the enabled webhooks of the page's workspaces read in
    /// one query (read again for a workspace whose webhooks an event changes, in position
    /// order), the page's deliveries written in one.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let workspaces: Vec<Uuid> = events
            .iter()
            .map(|e| e.metadata.workspace_id.as_uuid())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut hooks = enabled_hooks(conn, &workspaces).await?;
        let mut deliveries = Deliveries::default();
        for event in events {
            let workspace = event.metadata.workspace_id.as_uuid();
            if event.stream_id.category == StreamCategory::Workspace
                && lifecycle(conn, event, WorkspaceEvent::decode_recorded(event)?).await?
            {
                let mut now = enabled_hooks(conn, &[workspace]).await?;
                hooks.insert(workspace, now.remove(&workspace).unwrap_or_default());
            }
            for (webhook, patterns) in hooks.get(&workspace).into_iter().flatten() {
                if patterns.iter().any(|p| matches(p, &event.event_type)) {
                    deliveries.push(event, *webhook);
                }
            }
        }
        deliveries.write(conn).await?;
        Ok(())
    }
}

/// Each workspace's enabled webhooks and their patterns (an empty list for one without).
async fn enabled_hooks(
    conn: &mut PgConnection,
    workspaces: &[Uuid],
) -> Result<HashMap<Uuid, Vec<(Uuid, Vec<String>)>>, sqlx::Error> {
    let rows: Vec<(Uuid, Uuid, Vec<String>)> = sqlx::query_as(
        "SELECT workspace_id, webhook_id, events FROM rm_webhooks \
         WHERE workspace_id = ANY($1) AND enabled ORDER BY webhook_id",
    )
    .bind(workspaces)
    .fetch_all(&mut *conn)
    .await?;
    let mut hooks: HashMap<Uuid, Vec<(Uuid, Vec<String>)>> =
        workspaces.iter().map(|w| (*w, vec![])).collect();
    for (workspace, webhook, patterns) in rows {
        hooks
            .entry(workspace)
            .or_default()
            .push((webhook, patterns));
    }
    Ok(hooks)
}

/// A page's deliveries, written in one statement (ids are stable: a rebuild's are already
/// there and left alone).
#[derive(Default)]
struct Deliveries {
    ids: Vec<Uuid>,
    webhooks: Vec<Uuid>,
    workspaces: Vec<Uuid>,
    positions: Vec<i64>,
    types: Vec<String>,
    at: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Deliveries {
    fn push(&mut self, event: &RecordedEvent, webhook: Uuid) {
        self.ids
            .push(delivery_id(event.metadata.event_id.as_uuid(), webhook));
        self.webhooks.push(webhook);
        self.workspaces.push(event.metadata.workspace_id.as_uuid());
        self.positions.push(event.position);
        self.types.push(event.event_type.clone());
        self.at.push(event.metadata.recorded_at);
    }

    async fn write(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, webhook_id, workspace_id, position, \
             event_type, state, next_attempt_at, created_at, updated_at) \
             SELECT d, h, w, p, t, 'pending', a, a, a FROM unnest($1::uuid[], $2::uuid[], \
             $3::uuid[], $4::bigint[], $5::text[], $6::timestamptz[]) AS u(d, h, w, p, t, a) \
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(self.ids)
        .bind(self.webhooks)
        .bind(self.workspaces)
        .bind(self.positions)
        .bind(self.types)
        .bind(self.at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Applies a webhook's lifecycle event to `rm_webhooks`; whether it was one.
async fn lifecycle(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    decoded: WorkspaceEvent,
) -> Result<bool, sqlx::Error> {
    match decoded {
        WorkspaceEvent::WebhookCreated(e) => {
            sqlx::query(
                "INSERT INTO rm_webhooks (webhook_id, workspace_id, url, events, format, \
                 enabled, created_by, created_at, position) \
                 VALUES ($1, $2, $3, $4, $5, true, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(e.webhook_id)
            .bind(event.metadata.workspace_id.as_uuid())
            .bind(&e.url)
            .bind(&e.events)
            .bind(e.format.as_str())
            .bind(event.metadata.actor.to_string())
            .bind(event.metadata.recorded_at)
            .bind(event.position)
            .execute(conn)
            .await?;
        }
        WorkspaceEvent::WebhookDeleted(e) => {
            sqlx::query("DELETE FROM rm_webhooks WHERE webhook_id = $1")
                .bind(e.webhook_id)
                .execute(conn)
                .await?;
        }
        WorkspaceEvent::WebhookDisabled(e) => {
            sqlx::query(
                "UPDATE rm_webhooks SET enabled = false, disabled_reason = $2, position = $3 \
                 WHERE webhook_id = $1",
            )
            .bind(e.webhook_id)
            .bind(&e.reason)
            .bind(event.position)
            .execute(conn)
            .await?;
        }
        WorkspaceEvent::WebhookEnabled(e) => {
            sqlx::query(
                "UPDATE rm_webhooks SET enabled = true, disabled_reason = NULL, position = $2 \
                 WHERE webhook_id = $1",
            )
            .bind(e.webhook_id)
            .bind(event.position)
            .execute(conn)
            .await?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A webhook as its workspace's managers see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub webhook_id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub format: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str =
    "webhook_id, url, events, format, enabled, disabled_reason, created_by, created_at";

pub async fn list(
    conn: &mut PgConnection,
    workspace: Uuid,
) -> Result<Vec<WebhookRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_webhooks WHERE workspace_id = $1 ORDER BY created_at, webhook_id"
    ))
    .bind(workspace)
    .fetch_all(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    workspace: Uuid,
    webhook: Uuid,
) -> Result<Option<WebhookRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rm_webhooks WHERE workspace_id = $1 AND webhook_id = $2"
    ))
    .bind(workspace)
    .bind(webhook)
    .fetch_optional(conn)
    .await
}

/// A delivery with its attempts (`[attempt, at, status, error, duration_ms]`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub delivery_id: Uuid,
    pub position: i64,
    pub event_type: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub tries: sqlx::types::Json<Vec<Attempt>>,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct Attempt {
    pub attempt: i32,
    pub at: chrono::DateTime<chrono::Utc>,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A webhook's deliveries, newest first, before `before` (a position).
pub async fn deliveries(
    conn: &mut PgConnection,
    webhook: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.delivery_id, d.position, d.event_type, d.state, d.attempts, \
                d.next_attempt_at, d.created_at, \
                coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'at', a.at, \
                          'status', a.status, 'error', a.error, 'duration_ms', a.duration_ms) \
                          ORDER BY a.attempt) \
                          FROM webhook_attempts a WHERE a.delivery_id = d.delivery_id), \
                         '[]'::json) AS tries \
         FROM webhook_deliveries d WHERE d.webhook_id = $1 AND d.position < $2 \
         ORDER BY d.position DESC, d.delivery_id LIMIT $3",
    )
    .bind(webhook)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_types_prefixes_and_everything() {
        assert!(matches("DocumentRenamed", "DocumentRenamed"));
        assert!(!matches("DocumentRenamed", "DocumentRenamedLater"));
        assert!(matches("Comment*", "CommentAdded"));
        assert!(!matches("Comment*", "ThreadOpened"));
        assert!(matches("*", "MemberAdded"));
        assert_ne!(
            delivery_id(Uuid::from_u128(1), Uuid::from_u128(2)),
            delivery_id(Uuid::from_u128(1), Uuid::from_u128(3))
        );
    }
}
