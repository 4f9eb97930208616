//! The `events` table: append with optimistic concurrency and a per-stream hash chain,
//! read a stream, read the global log.
//!
//! Positions are gap-free and in commit order because an append first increments the
//! single row of `event_log_head`: the row lock serialises appends until commit, and a
//! rolled-back append rolls its increment back too. A reader that has seen position N
//! has therefore seen every position below N — the relay and projectors rely on it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use collab_domain::envelope::{chain_hash, now_micros};
use collab_domain::{
    Actor, EventId, EventMetadata, RecordedEvent, StreamCategory, StreamId, WorkspaceId,
};
use sqlx::{PgExecutor, PgPool, Postgres, QueryBuilder};
use tracing::instrument;
use uuid::Uuid;

/// Channel notified (with the new head position) whenever events commit.
pub const EVENTS_CHANNEL: &str = "collab_events";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (0 = must not exist).
    Exact(i64),
    /// Append wherever the stream is (CRDT updates commute; they never conflict).
    Any,
}

/// An event to append: already encoded by the catalogue.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Vec<u8>,
}

/// One request of a group commit.
#[derive(Debug, Clone)]
pub struct BatchAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub context: AppendContext,
    pub events: Vec<NewEvent>,
}

/// Who and why, for every event of one append.
#[derive(Debug, Clone)]
pub struct AppendContext {
    pub workspace_id: WorkspaceId,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct Appended {
    pub events: Vec<RecordedEvent>,
}

impl Appended {
    pub fn last_position(&self) -> i64 {
        self.events.last().map_or(0, |e| e.position)
    }

    pub fn stream_version(&self) -> i64 {
        self.events.last().map_or(0, |e| e.stream_version)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream} is at version {actual}, expected {expected:?}")]
    Conflict {
        stream: String,
        expected: ExpectedVersion,
        actual: i64,
    },
    #[error("stored event is unreadable: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Handle on the event log. Cheap to clone.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    position: i64,
    event_id: Uuid,
    stream_id: String,
    stream_version: i64,
    workspace_id: Uuid,
    event_type: String,
    schema_version: i32,
    payload: Vec<u8>,
    actor: String,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    recorded_at: DateTime<Utc>,
    prev_hash: Option<Vec<u8>>,
    hash: Vec<u8>,
}

const EVENT_COLUMNS: &str = "position, event_id, stream_id, stream_version, workspace_id, \
     event_type, schema_version, payload, actor, correlation_id, causation_id, recorded_at, \
     prev_hash, hash";

fn to_hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("hash is not 32 bytes".into()))
}

impl TryFrom<EventRow> for RecordedEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        let corrupt = |e: collab_domain::InvalidValue| StoreError::Corrupt(e.to_string());
        Ok(RecordedEvent {
            position: row.position,
            stream_id: StreamId::parse(&row.stream_id).map_err(corrupt)?,
            stream_version: row.stream_version,
            event_type: row.event_type,
            schema_version: row.schema_version,
            payload: row.payload,
            metadata: EventMetadata {
                event_id: EventId::from_uuid(row.event_id),
                workspace_id: WorkspaceId::from_uuid(row.workspace_id),
                actor: Actor::parse(&row.actor).map_err(corrupt)?,
                correlation_id: row.correlation_id,
                causation_id: row.causation_id,
                recorded_at: row.recorded_at,
            },
            prev_hash: row.prev_hash.map(to_hash).transpose()?,
            hash: to_hash(row.hash)?,
        })
    }
}

fn rows_to_events(rows: Vec<EventRow>) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.into_iter().map(RecordedEvent::try_from).collect()
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends `events` to `stream` in one transaction. Returns them as recorded, with
    /// positions, versions and hashes.
    #[instrument(skip_all, fields(stream.id = %stream, events = events.len()), err(level = "debug"))]
    pub async fn append(
        &self,
        stream: StreamId,
        expected: ExpectedVersion,
        context: &AppendContext,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        let mut appended = self
            .append_batch(vec![BatchAppend {
                stream,
                expected,
                context: context.clone(),
                events,
            }])
            .await?;
        Ok(appended.pop().expect("one result per request"))
    }

    /// Group commit: appends several requests (any streams) in one transaction, in order.
    /// Either all commit or none does (a conflict on one fails the batch).
    #[instrument(skip_all, fields(requests = requests.len()), err(level = "debug"))]
    pub async fn append_batch(
        &self,
        requests: Vec<BatchAppend>,
    ) -> Result<Vec<Appended>, StoreError> {
        let count: i64 = requests.iter().map(|r| r.events.len() as i64).sum();
        if count == 0 {
            return Ok(requests
                .iter()
                .map(|_| Appended { events: vec![] })
                .collect());
        }
        let mut tx = self.pool.begin().await?;
        // Taking this row lock first is what orders positions by commit.
        let head: i64 = sqlx::query_scalar(
            "UPDATE event_log_head SET position = position + $1 RETURNING position",
        )
        .bind(count)
        .fetch_one(&mut *tx)
        .await?;
        let mut heads = stream_heads(&mut *tx, &requests).await?;

        let recorded_at = now_micros();
        let mut position = head - count;
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let (version, prev_hash) = heads
                .get_mut(&request.stream)
                .expect("every stream of the batch has a head");
            let conflict = match request.expected {
                ExpectedVersion::NoStream => *version != 0,
                ExpectedVersion::Exact(expected) => *version != expected,
                ExpectedVersion::Any => false,
            };
            if conflict {
                return Err(StoreError::Conflict {
                    stream: request.stream.to_string(),
                    expected: request.expected,
                    actual: *version,
                });
            }
            let mut recorded = Vec::with_capacity(request.events.len());
            for event in request.events {
                let metadata = EventMetadata {
                    event_id: EventId::new(),
                    workspace_id: request.context.workspace_id,
                    actor: request.context.actor.clone(),
                    correlation_id: request.context.correlation_id,
                    causation_id: request.context.causation_id,
                    recorded_at,
                };
                *version += 1;
                position += 1;
                let hash = chain_hash(
                    prev_hash.as_ref(),
                    &request.stream,
                    *version,
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                    &metadata,
                );
                recorded.push(RecordedEvent {
                    position,
                    stream_id: request.stream,
                    stream_version: *version,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    payload: event.payload,
                    metadata,
                    prev_hash: *prev_hash,
                    hash,
                });
                *prev_hash = Some(hash);
            }
            results.push(Appended { events: recorded });
        }

        // Bind parameters are limited to 65535 per statement: insert in chunks.
        let all: Vec<&RecordedEvent> = results.iter().flat_map(|a| a.events.iter()).collect();
        for chunk in all.chunks(2000) {
            insert_events(&mut *tx, chunk)
                .await
                .map_err(unique_violation_is_conflict)?;
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(EVENTS_CHANNEL)
            .bind(head.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("collab_events_appended_total").increment(count as u64);
        Ok(results)
    }

    /// A stream's events after `after_version`, in version order.
    #[instrument(skip(self), fields(stream.id = %stream))]
    pub async fn read_stream(
        &self,
        stream: StreamId,
        after_version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 \
             ORDER BY stream_version"
        ))
        .bind(stream.to_string())
        .bind(after_version)
        .fetch_all(&self.pool)
        .await?;
        rows_to_events(rows)
    }

    /// Up to `limit` events of the global log after `after_position`, in order.
    pub async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read_all(&self.pool, after_position, limit).await
    }

    /// The position of the newest committed event (0 for an empty log).
    pub async fn head_position(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT coalesce(max(position), 0)::bigint FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Up to `limit` events after `after_position`, through any executor (projector
/// transactions use it to fill gaps from the source of truth).
pub async fn read_all(
    executor: impl PgExecutor<'_>,
    after_position: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after_position)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows_to_events(rows)
}

/// The current version and last hash of every stream in the batch (one index probe each).
/// Up to `limit` events of one stream category with `after < position < before`, in order.
pub async fn read_category(
    executor: impl PgExecutor<'_>,
    category: StreamCategory,
    after_position: i64,
    before_position: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_category = $1 AND position > $2 \
         AND position < $3 ORDER BY position LIMIT $4"
    ))
    .bind(category.as_str())
    .bind(after_position)
    .bind(before_position)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows_to_events(rows)
}

/// The newest position at or below `at_most` in one stream category (0 if none).
pub async fn category_position_at(
    executor: impl PgExecutor<'_>,
    category: StreamCategory,
    at_most: i64,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce(max(position), 0)::bigint FROM events \
         WHERE stream_category = $1 AND position <= $2",
    )
    .bind(category.as_str())
    .bind(at_most)
    .fetch_one(executor)
    .await?)
}

async fn stream_heads(
    executor: impl PgExecutor<'_>,
    requests: &[BatchAppend],
) -> Result<HashMap<StreamId, (i64, Option<[u8; 32]>)>, StoreError> {
    let mut streams: Vec<StreamId> = requests.iter().map(|r| r.stream).collect();
    streams.sort_by_key(|s| s.to_string());
    streams.dedup();
    let names: Vec<String> = streams.iter().map(StreamId::to_string).collect();
    let rows: Vec<(String, Option<i64>, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT s.id, e.stream_version, e.hash FROM unnest($1::text[]) AS s(id) \
         LEFT JOIN LATERAL (SELECT stream_version, hash FROM events WHERE stream_id = s.id \
                            ORDER BY stream_version DESC LIMIT 1) e ON true",
    )
    .bind(&names)
    .fetch_all(executor)
    .await?;
    let mut heads = HashMap::with_capacity(rows.len());
    for (name, version, hash) in rows {
        let stream = StreamId::parse(&name).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        heads.insert(
            stream,
            (version.unwrap_or(0), hash.map(to_hash).transpose()?),
        );
    }
    Ok(heads)
}

async fn insert_events(
    executor: impl PgExecutor<'_>,
    events: &[&RecordedEvent],
) -> Result<(), sqlx::Error> {
    let mut insert: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "INSERT INTO events ({EVENT_COLUMNS}, stream_category) "
    ));
    insert.push_values(events, |mut row, event| {
        row.push_bind(event.position)
            .push_bind(event.metadata.event_id.as_uuid())
            .push_bind(event.stream_id.to_string())
            .push_bind(event.stream_version)
            .push_bind(event.metadata.workspace_id.as_uuid())
            .push_bind(&event.event_type)
            .push_bind(event.schema_version)
            .push_bind(&event.payload)
            .push_bind(event.metadata.actor.to_string())
            .push_bind(event.metadata.correlation_id)
            .push_bind(event.metadata.causation_id)
            .push_bind(event.metadata.recorded_at)
            .push_bind(event.prev_hash.map(|h| h.to_vec()))
            .push_bind(event.hash.to_vec())
            .push_bind(event.stream_id.category.as_str());
    });
    insert.build().execute(executor).await?;
    Ok(())
}

fn unique_violation_is_conflict(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.constraint() == Some("events_stream_version_key") => {
            StoreError::Conflict {
                stream: "(concurrent append)".into(),
                expected: ExpectedVersion::Any,
                actual: -1,
            }
        }
        _ => StoreError::Database(error),
    }
}
