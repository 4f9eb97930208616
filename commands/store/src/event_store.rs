//! The `events` table: append with optimistic concurrency and a per-stream hash chain,
//! read a stream, read the global log.
//!
//! Positions are gap-free and in commit order because an append first increments the
//! single row of `event_log_head`: the row lock serialises appends until commit, and a
//! rolled-back append rolls its increment back too. A reader that has seen position N
//! has therefore seen every position below N — the relay and projectors rely on it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use collab_domain::envelope::{chain_hash, now_micros};
use collab_domain::replay::EventFilter;
use collab_domain::{
    Actor, EventId, EventMetadata, RecordedEvent, StreamCategory, StreamId, WorkspaceId,
};
use sqlx::{PgExecutor, PgPool, Postgres};
use tracing::instrument;
use uuid::Uuid;

use crate::copy::CopyRows;
use crate::tail::Appends;

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

/// Handle on the event log. Cheap to clone (clones share the head cache).
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    heads: Arc<Mutex<HashMap<StreamId, Head>>>,
    /// Events this store committed lately, by position (see [`EventStore::recent_after`]),
    /// kept once a relay in this process asked for them.
    recent: Arc<Mutex<Recent>>,
    keep_recent: Arc<AtomicBool>,
    /// The process's listener for appends (started by the first waiter).
    appends: Arc<tokio::sync::OnceCell<Appends>>,
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
        Self {
            pool,
            heads: Arc::default(),
            recent: Arc::default(),
            keep_recent: Arc::default(),
            appends: Arc::default(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The appends announced on this log, heard by one listener shared by every clone of
    /// this store (see [`Appends`]).
    pub async fn appends(&self) -> Appends {
        self.appends
            .get_or_init(|| Appends::start(self.pool.clone()))
            .await
            .clone()
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
    ///
    /// One round trip in the common case: the heads of streams this store appended to
    /// last are cached, and positions, rows and the notification go in one statement
    /// (see [`APPEND_SQL`]). A stale head (another writer, another instance) cannot
    /// corrupt anything — the `(stream_id, stream_version)` key refuses the rows — it
    /// costs a second try on the locked path. Requests that pin a version read their
    /// head from the table, never from the cache.
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
        let heads = self.heads(&requests).await?;
        let mut results = record(&requests, heads)?;
        let appended = if count >= COPY_MIN_EVENTS {
            self.copy(&mut results, count).await
        } else {
            insert(&self.pool, &results, count).await
        };
        match appended {
            Ok(head) => Ok(self.committed(results, head, count)),
            Err(error) if is_version_taken(&error) => {
                // Another writer got there first: our idea of some head was stale.
                self.forget_heads(&requests);
                metrics::counter!("collab_event_append_retries_total").increment(1);
                self.append_locked(&requests, count).await
            }
            Err(error) => {
                self.forget_heads(&requests);
                Err(error.into())
            }
        }
    }

    /// A large batch: the same rows through `COPY … FROM STDIN (FORMAT binary)`, which
    /// Postgres writes a page at a time, inside a transaction that first takes the head row
    /// and queues the notification (delivered only on commit), so positions are known
    /// before the rows are sent. A few more round trips than [`APPEND_SQL`], far less
    /// work per row.
    async fn copy(&self, results: &mut [Appended], count: i64) -> Result<i64, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let head: i64 = sqlx::query_scalar(COPY_HEAD_SQL)
            .bind(count)
            .bind(EVENTS_CHANNEL)
            .fetch_one(&mut *tx)
            .await?;
        number(results, head - count);
        copy_rows(results).send(&mut tx).await?;
        tx.commit().await?;
        Ok(head)
    }

    /// The slow path, after a stale head: take the head row first, then read the heads
    /// under it — nobody can append meanwhile, so the expectations are judged exactly
    /// and an unpinned append cannot be refused.
    async fn append_locked(
        &self,
        requests: &[BatchAppend],
        count: i64,
    ) -> Result<Vec<Appended>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT position FROM event_log_head FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        let streams: Vec<StreamId> = requests.iter().map(|r| r.stream).collect();
        let heads = stream_heads(&mut *tx, &streams).await?;
        let results = record(requests, heads)?;
        let head = insert(&mut *tx, &results, count).await?;
        tx.commit().await?;
        Ok(self.committed(results, head, count))
    }

    /// A batch has committed with `head` as the new last position: number its events,
    /// remember its heads (and events, for a relay here), count it.
    fn committed(&self, mut results: Vec<Appended>, head: i64, count: i64) -> Vec<Appended> {
        number(&mut results, head - count);
        self.remember_heads(&results);
        self.remember_committed(&results);
        metrics::counter!("collab_events_appended_total").increment(count as u64);
        results
    }

    fn remember_committed(&self, appended: &[Appended]) {
        if !self.keep_recent.load(Ordering::Relaxed) {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for event in appended.iter().flat_map(|a| &a.events) {
            recent.bytes += event.payload.len();
            if let Some(old) = recent.events.insert(event.position, event.clone()) {
                recent.bytes -= old.payload.len();
            }
        }
        // The relay here may stand by (another instance leads), or fall behind a flood of
        // large updates: keep a window bounded in events and in bytes.
        while recent.events.len() > RECENT_EVENTS || recent.bytes > RECENT_BYTES {
            match recent.events.pop_first() {
                Some((_, old)) => recent.bytes -= old.payload.len(),
                None => break,
            }
        }
    }

    /// Takes up to `limit` events this store committed, right after position `after` and
    /// without a gap — empty if the next position is not in memory (another instance
    /// wrote it, or it was evicted): then read the log. What is at or before `after` is
    /// forgotten. Lets the relay skip reading back what this process just wrote.
    pub fn recent_after(&self, after: i64, limit: usize) -> Vec<RecordedEvent> {
        self.keep_recent.store(true, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let newer = recent.events.split_off(&(after + 1));
        let forgotten: usize = recent.events.values().map(|e| e.payload.len()).sum();
        recent.bytes -= forgotten;
        recent.events = newer;
        // Handed over, not copied: should publishing fail, the relay reads the log.
        let mut taken = vec![];
        while taken.len() < limit {
            match recent.events.first_entry() {
                Some(entry) if *entry.key() == after + 1 + taken.len() as i64 => {
                    taken.push(entry.remove());
                }
                _ => break,
            }
        }
        recent.bytes -= taken.iter().map(|e| e.payload.len()).sum::<usize>();
        taken
    }

    /// The version and last hash of every stream in the batch: from the cache where
    /// allowed, the rest in one query.
    async fn heads(&self, requests: &[BatchAppend]) -> Result<HashMap<StreamId, Head>, StoreError> {
        let mut heads = HashMap::with_capacity(requests.len());
        let mut missing = vec![];
        {
            let cache = self.heads.lock().unwrap_or_else(|e| e.into_inner());
            for request in requests {
                let cached = (request.expected == ExpectedVersion::Any)
                    .then(|| cache.get(&request.stream))
                    .flatten();
                match cached {
                    Some(head) => {
                        heads.insert(request.stream, *head);
                    }
                    None => missing.push(request.stream),
                }
            }
        }
        let missing: Vec<StreamId> = missing
            .into_iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            // A stream both cached and read here takes the table's answer.
            heads.extend(stream_heads(&self.pool, &missing).await?);
        }
        Ok(heads)
    }

    fn remember_heads(&self, appended: &[Appended]) {
        let mut cache = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > HEAD_CACHE_STREAMS {
            cache.clear();
        }
        for event in appended.iter().flat_map(|a| a.events.last()) {
            let head = (event.stream_version, Some(event.hash));
            let entry = cache.entry(event.stream_id).or_insert(head);
            // Batches may finish out of order; a head only moves forward.
            if entry.0 < head.0 {
                *entry = head;
            }
        }
    }

    fn forget_heads(&self, requests: &[BatchAppend]) {
        let mut cache = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        for request in requests {
            cache.remove(&request.stream);
        }
    }

    /// A stream's events after `after_version`, in version order.
    pub async fn read_stream(
        &self,
        stream: StreamId,
        after_version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_until(stream, after_version, i64::MAX)
            .await
    }

    /// A stream's events with `after_version < version <= until_version`, in order.
    #[instrument(skip(self), fields(stream.id = %stream))]
    pub async fn read_stream_until(
        &self,
        stream: StreamId,
        after_version: i64,
        until_version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 \
             AND stream_version <= $3 ORDER BY stream_version"
        ))
        .bind(stream.to_string())
        .bind(after_version)
        .bind(until_version)
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
        EventLog::read_all(&self.pool, after_position, limit).await
    }
}

/// The read side's interface to the log: reads only, each through the executor the
/// caller gives (a read model folds inside its own transaction, so what it reads and what
/// it writes are one consistent snapshot). Projections and workers depend on this, never
/// on command handling.
pub struct EventLog;

impl EventLog {
    /// Up to `limit` events after `after_position`, in order.
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

    /// Up to `limit` events of the given stream categories with
    /// `after < position < before`, in order.
    pub async fn read_categories(
        executor: impl PgExecutor<'_>,
        categories: &[StreamCategory],
        after_position: i64,
        before_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_category = ANY($1) \
             AND position > $2 AND position < $3 ORDER BY position LIMIT $4"
        ))
        .bind(category_names(categories))
        .bind(after_position)
        .bind(before_position)
        .bind(limit)
        .fetch_all(executor)
        .await?;
        rows_to_events(rows)
    }

    /// The events of `workspace` (or of the whole log: `None`) matching `filter` with
    /// `after < position <= until`, as keyset pages of at most `page` events and `limit`
    /// events in all. A page is read only when the previous one has been taken, so a
    /// consumer of any size holds one page at a time (replay, export, verification).
    pub fn pages(
        pool: PgPool,
        workspace: Option<WorkspaceId>,
        filter: EventFilter,
        after: i64,
        until: i64,
        page: i64,
        limit: Option<i64>,
    ) -> impl futures::Stream<Item = Result<Vec<RecordedEvent>, StoreError>> + Send + 'static {
        let start = (after, limit, pool, filter);
        futures::stream::try_unfold(start, move |(after, remaining, pool, filter)| async move {
            let size = remaining.map_or(page, |r| r.min(page));
            if size <= 0 || after >= until {
                return Ok(None);
            }
            let (mut events, read_to) = match workspace {
                Some(ws) => {
                    let events =
                        Self::read_workspace(&pool, ws, &filter, after, until + 1, size).await?;
                    let read_to = match events.last() {
                        Some(last) if events.len() as i64 == size => last.position,
                        _ => until,
                    };
                    (events, read_to)
                }
                None => {
                    let events = Self::read_all(&pool, after, size).await?;
                    let read_to = match events.last() {
                        Some(last) if events.len() as i64 == size => last.position.min(until),
                        _ => until,
                    };
                    (events, read_to)
                }
            };
            events.retain(|e| e.position <= until && filter.matches(e));
            let remaining = remaining.map(|r| r - events.len() as i64);
            Ok(Some((events, (read_to, remaining, pool, filter))))
        })
    }

    /// Up to `limit` events of `workspace` matching `filter` with
    /// `after < position < before`, in order: one keyset page of a replay.
    pub async fn read_workspace(
        executor: impl PgExecutor<'_>,
        workspace: WorkspaceId,
        filter: &EventFilter,
        after_position: i64,
        before_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Only the filters asked for, so each shape gets its own plan: a walk of
        // `events_by_workspace` in order (or of the stream's key), never a sort of the
        // workspace's rows.
        let mut query = sqlx::QueryBuilder::<Postgres>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE workspace_id = "
        ));
        query.push_bind(workspace.as_uuid());
        query.push(" AND position > ").push_bind(after_position);
        query.push(" AND position < ").push_bind(before_position);
        if !filter.categories.is_empty() {
            query
                .push(" AND stream_category = ANY(")
                .push_bind(category_names(&filter.categories))
                .push(")");
        }
        if !filter.types.is_empty() {
            query
                .push(" AND event_type = ANY(")
                .push_bind(filter.types.clone())
                .push(")");
        }
        if let Some(stream) = filter.stream {
            query
                .push(" AND stream_id = ")
                .push_bind(stream.to_string());
        }
        if let Some(actor) = &filter.actor {
            query.push(" AND actor = ").push_bind(actor.to_string());
        }
        query
            .push(" ORDER BY workspace_id, position LIMIT ")
            .push_bind(limit);
        let rows: Vec<EventRow> = query.build_query_as().fetch_all(executor).await?;
        rows_to_events(rows)
    }

    /// The newest position at or below `at_most` in the given categories (0 if none).
    pub async fn position_at(
        executor: impl PgExecutor<'_>,
        categories: &[StreamCategory],
        at_most: i64,
    ) -> Result<i64, StoreError> {
        // One index probe per category (a max over `= ANY` would scan).
        Ok(sqlx::query_scalar(
            "SELECT coalesce(max(p), 0)::bigint FROM unnest($1::text[]) AS c(name), \
             LATERAL (SELECT max(position) AS p FROM events \
                      WHERE stream_category = c.name AND position <= $2) m",
        )
        .bind(category_names(categories))
        .bind(at_most)
        .fetch_one(executor)
        .await?)
    }

    /// How many events of the given categories lie after `after`, counting up to `cap`
    /// (a consumer's lag: only what it folds counts).
    pub async fn count_after(
        executor: impl PgExecutor<'_>,
        categories: &[StreamCategory],
        after: i64,
        cap: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*)::bigint FROM (SELECT 1 FROM events \
             WHERE stream_category = ANY($1) AND position > $2 LIMIT $3) e",
        )
        .bind(category_names(categories))
        .bind(after)
        .bind(cap)
        .fetch_one(executor)
        .await?)
    }

    /// The position of the newest committed event (0 for an empty log).
    pub async fn head(executor: impl PgExecutor<'_>) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(executor)
            .await?)
    }
}

fn category_names(categories: &[StreamCategory]) -> Vec<&'static str> {
    categories.iter().map(|c| c.as_str()).collect()
}

/// A stream's version and last hash (`(0, None)`: no such stream yet).
type Head = (i64, Option<[u8; 32]>);

/// Committed events kept in memory for a relay in the same process.
const RECENT_EVENTS: usize = 50_000;
/// ...and at most this many payload bytes (a flood of pastes is few events, many bytes).
const RECENT_BYTES: usize = 32 << 20;

/// The events kept for the relay, and their payloads' total size.
#[derive(Default)]
struct Recent {
    events: BTreeMap<i64, RecordedEvent>,
    bytes: usize,
}

/// Streams whose heads the store remembers (cleared when full: a cold entry costs one
/// index probe).
const HEAD_CACHE_STREAMS: usize = 100_000;

/// One statement: take the head row (the lock that orders positions by commit), insert
/// every row at the positions it frees, notify listeners. Arrays rather than a VALUES
/// list, so it is one prepared statement whatever the batch size. In autocommit, the
/// statement is its own transaction: all rows or none.
const APPEND_SQL: &str = "\
WITH head AS (
    UPDATE event_log_head SET position = position + $1 RETURNING position
), inserted AS (
    INSERT INTO events (position, event_id, stream_id, stream_version, workspace_id,
        event_type, schema_version, payload, actor, correlation_id, causation_id,
        recorded_at, prev_hash, hash, stream_category)
    SELECT head.position - $1 + e.ord, e.event_id, e.stream_id, e.stream_version,
        e.workspace_id, e.event_type, e.schema_version, e.payload, e.actor,
        e.correlation_id, e.causation_id, e.recorded_at, e.prev_hash, e.hash,
        e.stream_category
    FROM head, unnest($2::uuid[], $3::text[], $4::bigint[], $5::uuid[], $6::text[],
        $7::int4[], $8::bytea[], $9::text[], $10::uuid[], $11::uuid[],
        $12::timestamptz[], $13::bytea[], $14::bytea[], $15::text[])
        WITH ORDINALITY AS e(event_id, stream_id, stream_version, workspace_id,
            event_type, schema_version, payload, actor, correlation_id, causation_id,
            recorded_at, prev_hash, hash, stream_category, ord)
)
SELECT head.position, pg_notify($16, head.position::text) FROM head";

/// Batches of at least this many events are appended with `COPY` (see `EventStore::copy`).
pub const COPY_MIN_EVENTS: i64 = 256;

/// Takes the head row and frees `$1` positions, as [`APPEND_SQL`] does, and notifies
/// listeners (on commit) of the new head.
const COPY_HEAD_SQL: &str = "\
WITH head AS (
    UPDATE event_log_head SET position = position + $1 RETURNING position
)
SELECT head.position FROM head, pg_notify($2, head.position::text)";

/// The rows of a batch as one binary `COPY` of the events table.
fn copy_rows(appended: &[Appended]) -> CopyRows {
    let mut rows = CopyRows::new(
        "events",
        &[
            "position",
            "event_id",
            "stream_id",
            "stream_version",
            "workspace_id",
            "event_type",
            "schema_version",
            "payload",
            "actor",
            "correlation_id",
            "causation_id",
            "recorded_at",
            "prev_hash",
            "hash",
            "stream_category",
        ],
    );
    for event in appended.iter().flat_map(|a| &a.events) {
        let metadata = &event.metadata;
        rows.row()
            .value(&event.position)
            .value(&metadata.event_id.as_uuid())
            .value(&event.stream_id.to_string())
            .value(&event.stream_version)
            .value(&metadata.workspace_id.as_uuid())
            .value(&event.event_type)
            .value(&event.schema_version)
            .value(&event.payload)
            .value(&metadata.actor.to_string())
            .value(&metadata.correlation_id)
            .value(&metadata.causation_id)
            .value(&metadata.recorded_at)
            .value(&event.prev_hash.as_ref().map(|h| h.as_slice()))
            .value(&event.hash.as_slice())
            .value(&event.stream_id.category.as_str());
    }
    rows
}

/// The rows of a batch, column by column, bound as $2..$15 of [`APPEND_SQL`].
struct EventColumns<'a> {
    event_id: Vec<Uuid>,
    stream_id: Vec<String>,
    stream_version: Vec<i64>,
    workspace_id: Vec<Uuid>,
    event_type: Vec<&'a str>,
    schema_version: Vec<i32>,
    payload: Vec<&'a [u8]>,
    actor: Vec<String>,
    correlation_id: Vec<Uuid>,
    causation_id: Vec<Option<Uuid>>,
    recorded_at: Vec<DateTime<Utc>>,
    prev_hash: Vec<Option<&'a [u8]>>,
    hash: Vec<&'a [u8]>,
    stream_category: Vec<&'static str>,
}

impl<'a> EventColumns<'a> {
    fn of(appended: &'a [Appended]) -> Self {
        let events: Vec<&RecordedEvent> = appended.iter().flat_map(|a| &a.events).collect();
        Self {
            event_id: events
                .iter()
                .map(|e| e.metadata.event_id.as_uuid())
                .collect(),
            stream_id: events.iter().map(|e| e.stream_id.to_string()).collect(),
            stream_version: events.iter().map(|e| e.stream_version).collect(),
            workspace_id: events
                .iter()
                .map(|e| e.metadata.workspace_id.as_uuid())
                .collect(),
            event_type: events.iter().map(|e| e.event_type.as_str()).collect(),
            schema_version: events.iter().map(|e| e.schema_version).collect(),
            payload: events.iter().map(|e| e.payload.as_slice()).collect(),
            actor: events
                .iter()
                .map(|e| e.metadata.actor.to_string())
                .collect(),
            correlation_id: events.iter().map(|e| e.metadata.correlation_id).collect(),
            causation_id: events.iter().map(|e| e.metadata.causation_id).collect(),
            recorded_at: events.iter().map(|e| e.metadata.recorded_at).collect(),
            prev_hash: events
                .iter()
                .map(|e| e.prev_hash.as_ref().map(|h| h.as_slice()))
                .collect(),
            hash: events.iter().map(|e| e.hash.as_slice()).collect(),
            stream_category: events
                .iter()
                .map(|e| e.stream_id.category.as_str())
                .collect(),
        }
    }

    /// Binds the fourteen columns, in [`APPEND_SQL`]'s order.
    fn bind_to(self, query: AppendQuery<'a>) -> AppendQuery<'a> {
        query
            .bind(self.event_id)
            .bind(self.stream_id)
            .bind(self.stream_version)
            .bind(self.workspace_id)
            .bind(self.event_type)
            .bind(self.schema_version)
            .bind(self.payload)
            .bind(self.actor)
            .bind(self.correlation_id)
            .bind(self.causation_id)
            .bind(self.recorded_at)
            .bind(self.prev_hash)
            .bind(self.hash)
            .bind(self.stream_category)
    }
}

type AppendQuery<'q> = sqlx::query::QueryScalar<'q, Postgres, i64, sqlx::postgres::PgArguments>;

/// Runs [`APPEND_SQL`] for the recorded batch; returns the new last position.
async fn insert(
    executor: impl PgExecutor<'_>,
    results: &[Appended],
    count: i64,
) -> Result<i64, sqlx::Error> {
    let query = sqlx::query_scalar(APPEND_SQL).bind(count);
    EventColumns::of(results)
        .bind_to(query)
        .bind(EVENTS_CHANNEL)
        .fetch_one(executor)
        .await
}

/// Numbers and chains the batch's events from the heads (positions are filled in once
/// the statement has taken them), checking each request's expectation.
fn record(
    requests: &[BatchAppend],
    mut heads: HashMap<StreamId, Head>,
) -> Result<Vec<Appended>, StoreError> {
    let recorded_at = now_micros();
    let mut results = Vec::with_capacity(requests.len());
    for request in requests {
        let (version, prev_hash) = heads
            .get_mut(&request.stream)
            .expect("every stream of the batch has a head");
        if expectation_fails(request.expected, *version) {
            return Err(StoreError::Conflict {
                stream: request.stream.to_string(),
                expected: request.expected,
                actual: *version,
            });
        }
        let mut recorded = Vec::with_capacity(request.events.len());
        for event in &request.events {
            let metadata = EventMetadata {
                event_id: EventId::new(),
                workspace_id: request.context.workspace_id,
                actor: request.context.actor.clone(),
                correlation_id: request.context.correlation_id,
                causation_id: request.context.causation_id,
                recorded_at,
            };
            *version += 1;
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
                position: 0,
                stream_id: request.stream,
                stream_version: *version,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: event.payload.clone(),
                metadata,
                prev_hash: *prev_hash,
                hash,
            });
            *prev_hash = Some(hash);
        }
        results.push(Appended { events: recorded });
    }
    Ok(results)
}

/// Gives the batch's events their positions, the ones after `before`, in order.
fn number(appended: &mut [Appended], before: i64) {
    let mut position = before;
    for event in appended.iter_mut().flat_map(|a| a.events.iter_mut()) {
        position += 1;
        event.position = position;
    }
}

fn expectation_fails(expected: ExpectedVersion, version: i64) -> bool {
    match expected {
        ExpectedVersion::NoStream => version != 0,
        ExpectedVersion::Exact(expected) => version != expected,
        ExpectedVersion::Any => false,
    }
}

/// The current version and last hash of each stream (one index probe each).
async fn stream_heads(
    executor: impl PgExecutor<'_>,
    streams: &[StreamId],
) -> Result<HashMap<StreamId, Head>, StoreError> {
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

/// The key that refuses a version someone else already took.
fn is_version_taken(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.constraint() == Some("events_stream_version_key"))
}
