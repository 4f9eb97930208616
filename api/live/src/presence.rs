//! Presence changes: coalesced by the rooms, then written here in batches — to the
//! Postgres presence log (with retention), to the "who is here now" table, and to
//! JetStream (`<prefix>.presence.<workspace>.<document>`, stream `<PREFIX>_PRESENCE`).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use collab_domain::{DocumentId, UserId, WorkspaceId};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceKind {
    Joined,
    Left,
    TimedOut,
    Changed,
}

impl PresenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceKind::Joined => "joined",
            PresenceKind::Left => "left",
            PresenceKind::TimedOut => "timed_out",
            PresenceKind::Changed => "changed",
        }
    }
}

/// One presence change. Published on JetStream as JSON (`schema: 1`).
#[derive(Debug, Clone, Serialize)]
pub struct PresenceChange {
    pub kind: PresenceKind,
    pub document_id: DocumentId,
    pub workspace_id: WorkspaceId,
    pub session_id: Uuid,
    pub user_id: UserId,
    /// The Yjs awareness client id, for awareness changes.
    pub client_id: Option<u64>,
    /// The awareness state (JSON text: cursor, selection, user...), when there is one.
    #[serde(skip)]
    pub state: Option<Arc<str>>,
    pub read_only: bool,
    pub at: DateTime<Utc>,
}

/// Where rooms drop presence changes; never blocks a room.
#[derive(Clone)]
pub struct PresenceSink {
    tx: mpsc::Sender<PresenceChange>,
}

impl PresenceSink {
    pub fn emit(&self, change: PresenceChange) {
        if self.tx.try_send(change).is_err() {
            metrics::counter!("collab_presence_dropped_total").increment(1);
        }
    }
}

pub struct PresenceConfig {
    pub subject_prefix: String,
    pub instance_id: Uuid,
    pub retention: Duration,
    pub replicas: usize,
}

pub fn presence_stream_name(prefix: &str) -> String {
    collab_domain::envelope::events_stream_name(prefix).replace("_EVENTS", "_PRESENCE")
}

/// Starts the writer; returns the sink rooms use.
pub fn start(
    pool: PgPool,
    js: jetstream::Context,
    config: PresenceConfig,
    shutdown: CancellationToken,
) -> (PresenceSink, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(16_384);
    let handle = tokio::spawn(write_presence(pool, js, config, rx, shutdown));
    (PresenceSink { tx }, handle)
}

async fn write_presence(
    pool: PgPool,
    js: jetstream::Context,
    config: PresenceConfig,
    mut rx: mpsc::Receiver<PresenceChange>,
    shutdown: CancellationToken,
) {
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: presence_stream_name(&config.subject_prefix),
            subjects: vec![format!("{}.presence.>", config.subject_prefix)],
            max_age: config.retention,
            num_replicas: config.replicas,
            ..Default::default()
        })
        .await;
    if let Err(error) = stream {
        warn!(%error, "presence stream unavailable; presence goes to Postgres only until restart");
    }
    let mut sweep = tokio::time::interval(Duration::from_secs(60));
    loop {
        let first = tokio::select! {
            change = rx.recv() => change,
            _ = sweep.tick() => {
                sweep_presence(&pool, config.retention).await;
                continue;
            }
            _ = shutdown.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(change) => batch.push(change),
                Err(_) => break,
            }
        }
        if let Err(error) = store(&pool, &config, &batch).await {
            warn!(%error, changes = batch.len(), "cannot record presence changes");
        }
        for change in &batch {
            let subject = format!(
                "{}.presence.{}.{}",
                config.subject_prefix, change.workspace_id, change.document_id
            );
            let mut body = serde_json::to_value(change).unwrap_or_default();
            body["schema"] = 1.into();
            body["state"] = change
                .state
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(serde_json::Value::Null);
            // Presence is best effort on JetStream: Postgres has the log.
            let _ = js.publish(subject, body.to_string().into()).await;
        }
    }
    // Drain what is left so a graceful shutdown records the final "left" events.
    let mut rest = vec![];
    while let Ok(change) = rx.try_recv() {
        rest.push(change);
    }
    if !rest.is_empty() {
        let _ = store(&pool, &config, &rest).await;
    }
}

fn json_state(state: &Option<Arc<str>>) -> Option<serde_json::Value> {
    state.as_deref().and_then(|s| serde_json::from_str(s).ok())
}

async fn store(
    pool: &PgPool,
    config: &PresenceConfig,
    batch: &[PresenceChange],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut log: QueryBuilder<'_, Postgres> = QueryBuilder::new(
        "INSERT INTO presence_log (workspace_id, document_id, session_id, user_id, client_id, kind, state, recorded_at) ",
    );
    log.push_values(batch, |mut row, c| {
        row.push_bind(c.workspace_id.as_uuid())
            .push_bind(c.document_id.as_uuid())
            .push_bind(c.session_id)
            .push_bind(c.user_id.as_str())
            .push_bind(c.client_id.map(|id| id as i64))
            .push_bind(c.kind.as_str())
            .push_bind(json_state(&c.state))
            .push_bind(c.at);
    });
    log.build().execute(&mut *tx).await?;
    for change in batch {
        match change.kind {
            PresenceKind::Joined => {
                sqlx::query(
                    "INSERT INTO presence_now (document_id, session_id, workspace_id, user_id, instance_id, read_only, joined_at, last_seen) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
                )
                .bind(change.document_id.as_uuid())
                .bind(change.session_id)
                .bind(change.workspace_id.as_uuid())
                .bind(change.user_id.as_str())
                .bind(config.instance_id)
                .bind(change.read_only)
                .bind(change.at)
                .execute(&mut *tx)
                .await?;
            }
            PresenceKind::Left => {
                sqlx::query("DELETE FROM presence_now WHERE document_id = $1 AND session_id = $2")
                    .bind(change.document_id.as_uuid())
                    .bind(change.session_id)
                    .execute(&mut *tx)
                    .await?;
            }
            PresenceKind::Changed | PresenceKind::TimedOut => {
                let state = match change.kind {
                    PresenceKind::Changed => json_state(&change.state),
                    _ => None,
                };
                sqlx::query(
                    "UPDATE presence_now SET state = $3, last_seen = $4 WHERE document_id = $1 AND session_id = $2",
                )
                .bind(change.document_id.as_uuid())
                .bind(change.session_id)
                .bind(state)
                .bind(change.at)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await
}

/// Renews this instance's rows for a document (so readers know they are current).
pub async fn heartbeat(pool: &PgPool, instance_id: Uuid, document: DocumentId) {
    let _ = sqlx::query(
        "UPDATE presence_now SET last_seen = now() WHERE document_id = $1 AND instance_id = $2",
    )
    .bind(document.as_uuid())
    .bind(instance_id)
    .execute(pool)
    .await;
}

/// Rows not renewed for this long belong to an instance that died.
pub const PRESENCE_STALE_AFTER: Duration = Duration::from_secs(45);

async fn sweep_presence(pool: &PgPool, retention: Duration) {
    let _ =
        sqlx::query("DELETE FROM presence_now WHERE last_seen < now() - make_interval(secs => $1)")
            .bind(PRESENCE_STALE_AFTER.as_secs_f64() * 4.0)
            .execute(pool)
            .await;
    let _ = sqlx::query(
        "DELETE FROM presence_log WHERE recorded_at < now() - make_interval(secs => $1)",
    )
    .bind(retention.as_secs_f64())
    .execute(pool)
    .await;
}

/// Who is connected to a document now.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PresentSession {
    pub session_id: Uuid,
    pub user_id: String,
    pub read_only: bool,
    pub joined_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub state: Option<serde_json::Value>,
}

pub async fn present(
    executor: impl sqlx::PgExecutor<'_>,
    document: DocumentId,
) -> Result<Vec<PresentSession>, sqlx::Error> {
    sqlx::query_as(
        "SELECT session_id, user_id, read_only, joined_at, last_seen, state FROM presence_now \
         WHERE document_id = $1 AND last_seen > now() - make_interval(secs => $2) \
         ORDER BY joined_at, session_id",
    )
    .bind(document.as_uuid())
    .bind(PRESENCE_STALE_AFTER.as_secs_f64())
    .fetch_all(executor)
    .await
}

impl PresenceSink {
    /// A sink over a channel of the caller's (unit tests).
    pub fn for_tests(tx: mpsc::Sender<PresenceChange>) -> Self {
        Self { tx }
    }
}
