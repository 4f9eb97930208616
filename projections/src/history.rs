//! The `history` read model: each document's history list (edit sessions, restores, named
//! versions and metadata events), history snapshots (the merged Yjs state every K content
//! versions, all kept), who made which Yjs items, and named versions — and
//! [`document_at`], which materialises a document at any point of its history from the
//! nearest snapshot before it plus fewer than K updates.
//!
//! It folds every keystroke, so it keeps each document it is folding as a live Yjs
//! document in memory (a few, least recently used evicted) and writes a page of events
//! in a few statements. A cached document is used only when it stands exactly one version
//! before the event (after a rolled-back page or an eviction it is rebuilt from the
//! snapshots), so the result never depends on the cache: a rebuild gives the same rows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::catalogue::EventCodec;
use collab_domain::content::{ContentEvent, EditOrigin};
use collab_domain::document::DocumentEvent;
use collab_domain::{DomainEvent, RecordedEvent, StreamCategory, StreamId};
use collab_store::copy::CopyRows;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use tracing::warn;
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use crate::bursts::{self, BurstColumns, BurstKey, Bursts};
use crate::read_model::{ProjectionError, ReadModel};

pub const NAME: &str = "history";

/// Edits by one actor with no pause longer than this form one history entry.
pub const DEFAULT_SESSION_GAP: Duration = Duration::from_secs(5 * 60);

/// A history snapshot every this many content versions.
pub const DEFAULT_SNAPSHOT_EVERY: i64 = 500;

/// Documents kept live in memory while folding.
const CACHED_DOCUMENTS: usize = 32;

/// Content events read per query when materialising.
const PAGE: i64 = 2000;

/// How the history read model groups and snapshots. Both shape its rows, so the server
/// and `collab projections rebuild` must use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Edits by one actor with no pause longer than this form one entry.
    pub session_gap: Duration,
    /// K: a history snapshot at every content version that is a multiple of it.
    pub snapshot_every: i64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            session_gap: DEFAULT_SESSION_GAP,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

#[derive(Default)]
pub struct History {
    config: HistoryConfig,
    cache: Mutex<HashMap<Uuid, Cached>>,
    tick: AtomicU64,
}

impl History {
    pub fn new(config: HistoryConfig) -> Self {
        Self {
            config: HistoryConfig {
                snapshot_every: config.snapshot_every.max(1),
                ..config
            },
            cache: Mutex::default(),
            tick: AtomicU64::new(0),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The document at content version `version`: the cached one if it stands there,
    /// else materialised from the snapshots and the log.
    async fn checkout(
        &self,
        conn: &mut PgConnection,
        document: Uuid,
        version: i64,
    ) -> Result<Cached, ProjectionError> {
        let cached = self.cache().remove(&document);
        if let Some(cached) = cached.filter(|c| c.version == version) {
            return Ok(cached);
        }
        let at = document_at(conn, document, Point::Version(version)).await?;
        Ok(Cached {
            doc: at.doc,
            version: at.version,
            used: 0,
        })
    }

    fn checkin(&self, document: Uuid, mut cached: Cached) {
        cached.used = self.tick.fetch_add(1, Ordering::Relaxed);
        let mut cache = self.cache();
        cache.insert(document, cached);
        if cache.len() > CACHED_DOCUMENTS {
            if let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.used).map(|(k, _)| *k) {
                cache.remove(&oldest);
            }
        }
    }
}

/// A document being folded, at content version `version`.
struct Cached {
    doc: Doc,
    version: i64,
    used: u64,
}

/// What one update changed.
#[derive(Default)]
struct Change {
    /// Clock units integrated and deleted (characters, for text).
    inserted: i64,
    deleted: i64,
    /// The items it brought: (Yjs client, clock range).
    items: Vec<(u64, std::ops::Range<u32>)>,
}

impl Cached {
    fn apply(&mut self, update: &[u8]) -> Change {
        let update = match Update::decode_v1(update) {
            Ok(update) => update,
            Err(error) => {
                warn!(%error, "stored update does not decode; skipped");
                return Change::default();
            }
        };
        let mut txn = self.doc.transact_mut();
        if let Err(error) = txn.apply_update(update) {
            warn!(%error, "stored update does not apply");
        }
        let mut change = Change::default();
        for (client, ranges) in txn.insert_set().iter() {
            for range in ranges.iter() {
                change.inserted += i64::from(range.end - range.start);
                change.items.push((client.get(), range.clone()));
            }
        }
        for (_, ranges) in txn.delete_set().iter() {
            for range in ranges.iter() {
                change.deleted += i64::from(range.end - range.start);
            }
        }
        change
    }

    /// Replaces the document with `state` decoded into a fresh one.
    fn reload(&mut self, state: &[u8]) {
        let doc = Doc::new();
        if let Ok(update) = Update::decode_v1(state) {
            if doc.transact_mut().apply_update(update).is_ok() {
                self.doc = doc;
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }
}

#[async_trait]
impl ReadModel for History {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Document, StreamCategory::Content]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_history_entries",
            "rm_history_open_sessions",
            "rm_history_snapshots",
            "rm_history_authors",
            "rm_document_versions",
        ]
    }

    fn awaited_by_every_query(&self) -> bool {
        false
    }

    fn fold_window(&self) -> std::time::Duration {
        crate::read_model::KEYSTROKE_FOLD_WINDOW
    }

    /// A page in a few statements: sessions and item authors gathered in memory and
    /// written once; snapshots and other entries as they come.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut sessions = Bursts::new(self.config.session_gap);
        let mut authors = Authors::default();
        let mut entries = Entries::default();
        // Rows of different documents never depend on each other: fold the page document
        // by document (each in position order), so interleaved edits to many documents
        // reuse the cached document instead of evicting it at every event.
        let mut ordered: Vec<&RecordedEvent> = events.iter().collect();
        ordered.sort_by_key(|e| (e.stream_id.id, e.position));
        let edits = events
            .iter()
            .filter(|e| e.stream_id.category == StreamCategory::Content)
            .map(|e| (e.stream_id.id, e.metadata.actor.to_string()));
        sessions.preload(conn, LOAD_SESSIONS, edits).await?;
        for event in ordered {
            match DomainEvent::decode_recorded(event)? {
                DomainEvent::Content(ContentEvent::DocumentEdited(edit)) => {
                    let document = event.stream_id.id;
                    let mut cached = self
                        .checkout(conn, document, event.stream_version - 1)
                        .await?;
                    let change = cached.apply(&edit.update);
                    cached.version = event.stream_version;
                    if event.stream_version % self.config.snapshot_every == 0 {
                        let state = cached.encode();
                        save_snapshot(conn, event, state.clone()).await?;
                        // Go on from the snapshot as loaded, as a fold that starts from it
                        // does: the next snapshot has the same bytes whichever path made it
                        // (the same content can sit in differently merged items).
                        cached.reload(&state);
                    }
                    self.checkin(document, cached);
                    let actor = event.metadata.actor.to_string();
                    authors.record(event, &actor, &change.items);
                    let key: BurstKey = (document, actor);
                    match edit.origin {
                        EditOrigin::Restore { from_version } => {
                            sessions.end(key);
                            entries.push(
                                event,
                                "restored",
                                Some(event.stream_version),
                                (change.inserted, change.deleted),
                                serde_json::json!({ "from_version": from_version }),
                            );
                        }
                        EditOrigin::Template {
                            template_id,
                            template_version,
                        } => {
                            sessions.end(key);
                            entries.push(
                                event,
                                "from_template",
                                Some(event.stream_version),
                                (change.inserted, change.deleted),
                                serde_json::json!({
                                    "template_id": template_id,
                                    "template_version": template_version,
                                }),
                            );
                        }
                        EditOrigin::Socket | EditOrigin::Http => {
                            sessions.edit(key, event, change.inserted, change.deleted)
                        }
                    }
                }
                DomainEvent::Document(decoded) => {
                    document_event(conn, &mut entries, event, decoded).await?
                }
                DomainEvent::Workspace(_)
                | DomainEvent::Audit(_)
                | DomainEvent::Profile(_)
                | DomainEvent::Thread(_)
                | DomainEvent::File(_) => {}
            }
        }
        write_sessions(conn, &mut sessions).await?;
        authors.write(conn).await?;
        entries.write(conn).await?;
        Ok(())
    }
}

async fn save_snapshot(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    state: Vec<u8>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_history_snapshots \
         (document_id, version, workspace_id, position, recorded_at, state) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (document_id, version) DO NOTHING",
    )
    .bind(event.stream_id.id)
    .bind(event.stream_version)
    .bind(event.metadata.workspace_id.as_uuid())
    .bind(event.position)
    .bind(event.metadata.recorded_at)
    .bind(state)
    .execute(conn)
    .await?;
    Ok(())
}

/// History entries of single events (restores, named versions, metadata events), gathered
/// over a page and written in one COPY.
struct Entries(CopyRows);

impl Default for Entries {
    fn default() -> Self {
        Self(CopyRows::new(
            "rm_history_entries",
            &[
                "document_id",
                "position",
                "workspace_id",
                "kind",
                "actor",
                "last_position",
                "first_version",
                "last_version",
                "edits",
                "inserted",
                "deleted",
                "started_at",
                "ended_at",
                "details",
            ],
        ))
    }
}

impl Entries {
    fn push(
        &mut self,
        event: &RecordedEvent,
        kind: &str,
        version: Option<i64>,
        (inserted, deleted): (i64, i64),
        details: serde_json::Value,
    ) {
        let at = event.metadata.recorded_at;
        self.0
            .row()
            .value(&event.stream_id.id)
            .value(&event.position)
            .value(&event.metadata.workspace_id.as_uuid())
            .value(&kind)
            .value(&event.metadata.actor.to_string())
            .value(&event.position)
            .value(&version)
            .value(&version)
            .value(&i32::from(
                event.stream_id.category == StreamCategory::Content,
            ))
            .value(&inserted)
            .value(&deleted)
            .value(&at)
            .value(&at)
            .value(&details);
    }

    async fn write(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.0.send(conn).await?;
        Ok(())
    }
}

/// Named versions, and every metadata event as an entry of its own.
async fn document_event(
    conn: &mut PgConnection,
    entries: &mut Entries,
    event: &RecordedEvent,
    decoded: DocumentEvent,
) -> Result<(), sqlx::Error> {
    let document = event.stream_id.id;
    let mut version = None;
    let mut details = decoded.to_json();
    match &decoded {
        DocumentEvent::VersionNamed(named) => {
            let content_position: Option<i64> = sqlx::query_scalar(
                "SELECT position FROM events WHERE stream_id = $1 AND stream_version = $2",
            )
            .bind(StreamId::new(StreamCategory::Content, document).to_string())
            .bind(named.content_version)
            .fetch_optional(&mut *conn)
            .await?;
            sqlx::query(
                "INSERT INTO rm_document_versions (version_id, document_id, workspace_id, name, \
                 content_version, content_position, created_by, created_at, position) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (version_id) DO NOTHING",
            )
            .bind(named.version_id)
            .bind(document)
            .bind(event.metadata.workspace_id.as_uuid())
            .bind(&named.name)
            .bind(named.content_version)
            .bind(content_position.unwrap_or(0))
            .bind(event.metadata.actor.to_string())
            .bind(event.metadata.recorded_at)
            .bind(event.position)
            .execute(&mut *conn)
            .await?;
            version = Some(named.content_version);
        }
        DocumentEvent::VersionDeleted(deleted) => {
            let named: Option<(String, i64)> = sqlx::query_as(
                "DELETE FROM rm_document_versions WHERE version_id = $1 \
                 RETURNING name, content_version",
            )
            .bind(deleted.version_id)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some((name, content_version)) = named {
                details["name"] = name.into();
                version = Some(content_version);
            }
        }
        DocumentEvent::ShareLinkCreated(link) => {
            // Links are for owners to see (the permissions route): the history says that
            // one was made, and for which role, nothing that identifies it.
            details = serde_json::json!({ "role": link.role });
        }
        DocumentEvent::ShareLinkRevoked(_) => details = serde_json::json!({}),
        _ => {}
    }
    entries.push(event, decoded.event_type(), version, (0, 0), details);
    Ok(())
}

/// The stored open sessions of `(document, actor)` pairs, for [`Bursts::preload`].
const LOAD_SESSIONS: &str = "\
SELECT o.document_id, o.actor, e.workspace_id AS workspace, e.position AS entry_position,
    e.started_at, o.last_at, e.last_position, e.first_version, e.last_version, e.edits,
    e.inserted, e.deleted
FROM unnest($1::uuid[], $2::text[]) AS k(document_id, actor)
JOIN rm_history_open_sessions o ON o.document_id = k.document_id AND o.actor = k.actor
JOIN rm_history_entries e ON e.document_id = o.document_id AND e.position = o.entry_position";

/// The page's sessions in at most three statements: their entries, the open ones, the
/// ended ones.
async fn write_sessions(conn: &mut PgConnection, sessions: &mut Bursts) -> Result<(), sqlx::Error> {
    let (touched, ended) = sessions.drain();
    if !touched.is_empty() {
        let mut entries = BurstColumns::default();
        let mut open = vec![];
        for (key, session, is_open) in touched {
            entries.push(&key, &session);
            if is_open {
                open.push((key, session));
            }
        }
        sqlx::query(
            "INSERT INTO rm_history_entries (document_id, position, workspace_id, kind, actor, \
             last_position, first_version, last_version, edits, inserted, deleted, started_at, \
             ended_at, details) \
             SELECT d, p, w, 'edits', a, lp, fv, lv, n, i, x, sa, ea, '{}' \
             FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::bigint[], \
             $6::bigint[], $7::bigint[], $8::int4[], $9::bigint[], $10::bigint[], \
             $11::timestamptz[], $12::timestamptz[]) \
             AS t(d, p, w, a, lp, fv, lv, n, i, x, sa, ea) \
             ON CONFLICT (document_id, position) DO UPDATE SET \
             last_position = excluded.last_position, last_version = excluded.last_version, \
             edits = excluded.edits, inserted = excluded.inserted, deleted = excluded.deleted, \
             ended_at = excluded.ended_at",
        )
        .bind(entries.document)
        .bind(entries.position)
        .bind(entries.workspace)
        .bind(entries.actor)
        .bind(entries.last_position)
        .bind(entries.first_version)
        .bind(entries.last_version)
        .bind(entries.edits)
        .bind(entries.inserted)
        .bind(entries.deleted)
        .bind(entries.started_at)
        .bind(entries.last_at)
        .execute(&mut *conn)
        .await?;
        bursts::write_open(conn, "rm_history_open_sessions", open).await?;
    }
    if !ended.is_empty() {
        let (documents, actors): (Vec<Uuid>, Vec<String>) = ended.into_iter().unzip();
        sqlx::query(
            "DELETE FROM rm_history_open_sessions o \
             USING unnest($1::uuid[], $2::text[]) AS k(document_id, actor) \
             WHERE o.document_id = k.document_id AND o.actor = k.actor",
        )
        .bind(documents)
        .bind(actors)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A clock range of one Yjs client, and who delivered it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct AuthorRange {
    first_clock: i64,
    end_clock: i64,
    actor: String,
}

/// Item authors gathered over a page: per (document, client), every range it has, in
/// clock order (read whole from the table the first time the page touches the client,
/// written back whole), so what is stored depends only on the events, never on where a
/// page ended.
#[derive(Default)]
struct Authors {
    touched: HashMap<(Uuid, i64), (Uuid, Vec<AuthorRange>)>,
    pending: Vec<(Uuid, i64, Uuid, AuthorRange)>,
}

impl Authors {
    fn record(
        &mut self,
        event: &RecordedEvent,
        actor: &str,
        items: &[(u64, std::ops::Range<u32>)],
    ) {
        for (client, range) in items {
            self.pending.push((
                event.stream_id.id,
                *client as i64,
                event.metadata.workspace_id.as_uuid(),
                AuthorRange {
                    first_clock: i64::from(range.start),
                    end_clock: i64::from(range.end),
                    actor: actor.to_owned(),
                },
            ));
        }
    }

    /// Adds each new range to its client's ranges (what earlier ranges cover keeps its
    /// author: items belong to whoever delivered them first), and writes what changed:
    /// three statements for the page, however many clients it touched.
    async fn write(mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let pending = std::mem::take(&mut self.pending);
        for (document, client, workspace, _) in &pending {
            self.touched
                .entry((*document, *client))
                .or_insert_with(|| (*workspace, vec![]));
        }
        if self.touched.is_empty() {
            return Ok(());
        }
        let keys: Vec<(Uuid, i64)> = self.touched.keys().copied().collect();
        let (documents, clients): (Vec<Uuid>, Vec<i64>) = keys.iter().copied().unzip();
        let stored: Vec<(Uuid, i64, i64, i64, String)> = sqlx::query_as(
            "SELECT a.document_id, a.client_id, a.first_clock, a.end_clock, a.actor \
             FROM rm_history_authors a \
             JOIN unnest($1::uuid[], $2::bigint[]) AS k(document_id, client_id) \
               ON a.document_id = k.document_id AND a.client_id = k.client_id \
             ORDER BY a.document_id, a.client_id, a.first_clock",
        )
        .bind(&documents)
        .bind(&clients)
        .fetch_all(&mut *conn)
        .await?;
        for (document, client, first_clock, end_clock, actor) in stored {
            if let Some((_, ranges)) = self.touched.get_mut(&(document, client)) {
                ranges.push(AuthorRange {
                    first_clock,
                    end_clock,
                    actor,
                });
            }
        }
        for (document, client, _, range) in pending {
            if let Some((_, ranges)) = self.touched.get_mut(&(document, client)) {
                add_range(ranges, range);
            }
        }
        sqlx::query(
            "DELETE FROM rm_history_authors a \
             USING unnest($1::uuid[], $2::bigint[]) AS k(document_id, client_id) \
             WHERE a.document_id = k.document_id AND a.client_id = k.client_id",
        )
        .bind(&documents)
        .bind(&clients)
        .execute(&mut *conn)
        .await?;
        let mut rows = (vec![], vec![], vec![], vec![], vec![], vec![]);
        for ((document, client), (workspace, ranges)) in self.touched {
            for range in ranges {
                rows.0.push(document);
                rows.1.push(client);
                rows.2.push(range.first_clock);
                rows.3.push(range.end_clock);
                rows.4.push(range.actor);
                rows.5.push(workspace);
            }
        }
        sqlx::query(
            "INSERT INTO rm_history_authors \
             (document_id, client_id, first_clock, end_clock, actor, workspace_id) \
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], \
                                  $5::text[], $6::uuid[])",
        )
        .bind(rows.0)
        .bind(rows.1)
        .bind(rows.2)
        .bind(rows.3)
        .bind(rows.4)
        .bind(rows.5)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Adds `new` to `ranges` (in clock order, disjoint): only the clocks no range covers yet
/// are its actor's, and a range continuing the same actor's range before or after it is
/// joined to it.
fn add_range(ranges: &mut Vec<AuthorRange>, new: AuthorRange) {
    let mut pieces = vec![(new.first_clock, new.end_clock)];
    for range in ranges.iter() {
        pieces = pieces
            .into_iter()
            .flat_map(|(first, end)| {
                [
                    (first, end.min(range.first_clock)),
                    (first.max(range.end_clock), end),
                ]
            })
            .filter(|(first, end)| first < end)
            .collect();
    }
    for (first, end) in pieces {
        let at = ranges.partition_point(|r| r.first_clock < first);
        ranges.insert(
            at,
            AuthorRange {
                first_clock: first,
                end_clock: end,
                actor: new.actor.clone(),
            },
        );
    }
    ranges.dedup_by(|next, previous| {
        let joined = previous.actor == next.actor && previous.end_clock == next.first_clock;
        if joined {
            previous.end_clock = next.end_clock;
        }
        joined
    });
}

/// A point of a document's content history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    /// After content version `V` (0: before the first edit).
    Version(i64),
    /// After every content event at or before global position `P`.
    Position(i64),
    /// After every content event recorded at or before this instant.
    Time(DateTime<Utc>),
    /// Now: after every content event.
    Head,
}

/// A document as it was at a point.
pub struct AtPoint {
    pub doc: Doc,
    /// Content version and global position of the last update folded in (0, 0: none).
    pub version: i64,
    pub position: i64,
    /// When that update was recorded.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Updates applied after the snapshot it started from.
    pub replayed: usize,
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    version: i64,
    position: i64,
    recorded_at: DateTime<Utc>,
    state: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct ContentRow {
    stream_version: i64,
    position: i64,
    recorded_at: DateTime<Utc>,
    event_type: String,
    schema_version: i32,
    payload: Vec<u8>,
}

/// The document `document` exactly as it was at `point`: the newest history snapshot at or
/// before it, then the content events after that snapshot up to the point (fewer than K
/// once the history read model has folded them). Reads as the caller's connection allows:
/// the server's role (after the aggregates authorized the caller) or a projector's.
pub async fn document_at(
    conn: &mut PgConnection,
    document: Uuid,
    point: Point,
) -> Result<AtPoint, ProjectionError> {
    const COLUMNS: &str = "SELECT version, position, recorded_at, state FROM rm_history_snapshots \
                           WHERE document_id = $1";
    let snapshot_query = match point {
        Point::Version(_) | Point::Head => {
            format!("{COLUMNS} AND version <= $2 ORDER BY version DESC LIMIT 1")
        }
        Point::Position(_) => {
            format!("{COLUMNS} AND position <= $2 ORDER BY position DESC LIMIT 1")
        }
        Point::Time(_) => {
            format!("{COLUMNS} AND recorded_at <= $3 ORDER BY recorded_at DESC LIMIT 1")
        }
    };
    let (bound, time) = match point {
        Point::Version(v) | Point::Position(v) => (v, None),
        Point::Time(t) => (0, Some(t)),
        Point::Head => (i64::MAX, None),
    };
    let started = std::time::Instant::now();
    let snapshot: Option<SnapshotRow> = sqlx::query_as(&snapshot_query)
        .bind(document)
        .bind(bound)
        .bind(time)
        .fetch_optional(&mut *conn)
        .await?;
    let doc = Doc::new();
    let (mut version, mut position, mut recorded_at) = (0, 0, None);
    if let Some(row) = snapshot {
        let update =
            Update::decode_v1(&row.state).map_err(|e| corrupt(document, row.version, e))?;
        doc.transact_mut()
            .apply_update(update)
            .map_err(|e| corrupt(document, row.version, e))?;
        (version, position, recorded_at) = (row.version, row.position, Some(row.recorded_at));
    }
    let snapshot_loaded = started.elapsed();
    let stream = StreamId::new(StreamCategory::Content, document).to_string();
    let mut replayed = 0;
    'pages: loop {
        // A closed range of versions, so the plan is an index range scan whatever the
        // planner thinks of `stream_version > $2` alone on a long stream.
        let upto = match point {
            Point::Version(v) => v.min(version + PAGE),
            _ => version + PAGE,
        };
        if upto <= version {
            break;
        }
        let rows: Vec<ContentRow> = sqlx::query_as(
            "SELECT stream_version, position, recorded_at, event_type, schema_version, payload \
             FROM events WHERE stream_id = $1 AND stream_version > $2 AND stream_version <= $3 \
             ORDER BY stream_version",
        )
        .bind(&stream)
        .bind(version)
        .bind(upto)
        .fetch_all(&mut *conn)
        .await?;
        let full = rows.len() as i64 == upto - version;
        for row in rows {
            let beyond = match point {
                Point::Version(v) => row.stream_version > v,
                Point::Position(p) => row.position > p,
                Point::Time(t) => row.recorded_at > t,
                Point::Head => false,
            };
            if beyond {
                break 'pages;
            }
            let ContentEvent::DocumentEdited(edit) =
                ContentEvent::decode(&row.event_type, row.schema_version, &row.payload)?;
            // One transaction per update, as the fold applies them: Yjs merges neighbouring
            // items when a transaction ends, so other boundaries would give the same
            // content in other items, and a snapshot taken from here other bytes.
            match Update::decode_v1(&edit.update) {
                Ok(update) => {
                    if let Err(error) = doc.transact_mut().apply_update(update) {
                        warn!(version = row.stream_version, %error, "stored update does not apply");
                    }
                }
                Err(error) => {
                    warn!(version = row.stream_version, %error, "stored update does not decode")
                }
            }
            (version, position, recorded_at) =
                (row.stream_version, row.position, Some(row.recorded_at));
            replayed += 1;
        }
        if !full {
            break;
        }
    }
    tracing::debug!(
        document = %document,
        version,
        replayed,
        snapshot_ms = snapshot_loaded.as_secs_f64() * 1e3,
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "document materialised at a point"
    );
    Ok(AtPoint {
        doc,
        version,
        position,
        recorded_at,
        replayed,
    })
}

fn corrupt(document: Uuid, version: i64, error: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Corrupt(format!(
        "history snapshot {version} of document {document} does not load: {error}"
    ))
}

/// One entry of a document's history list.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// `edits`, `restored`, `VersionNamed`, `VersionDeleted` or a document event type.
    pub kind: String,
    pub actor: String,
    pub first_position: i64,
    pub last_position: i64,
    /// Content versions (for `edits` and `restored`; the named one for named versions).
    pub first_version: Option<i64>,
    pub last_version: Option<i64>,
    pub edits: i32,
    /// Yjs clock units inserted and deleted: characters, for text.
    pub inserted: i64,
    pub deleted: i64,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub details: sqlx::types::Json<serde_json::Value>,
}

/// Newest first (by each entry's last event), before `before` (a last position).
pub async fn list(
    executor: impl PgExecutor<'_>,
    document: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, actor, position AS first_position, last_position, first_version, \
         last_version, edits, inserted, deleted, started_at, ended_at, details \
         FROM rm_history_entries WHERE document_id = $1 \
         AND ($2::bigint IS NULL OR last_position < $2) \
         ORDER BY last_position DESC LIMIT $3",
    )
    .bind(document)
    .bind(before)
    .bind(limit)
    .fetch_all(executor)
    .await
}

/// A named version.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct NamedVersion {
    pub version_id: Uuid,
    pub name: String,
    pub content_version: i64,
    pub content_position: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const VERSION_COLUMNS: &str =
    "SELECT version_id, name, content_version, content_position, created_by, created_at \
     FROM rm_document_versions";

/// A document's named versions, newest content first.
pub async fn versions(
    executor: impl PgExecutor<'_>,
    document: Uuid,
) -> Result<Vec<NamedVersion>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{VERSION_COLUMNS} WHERE document_id = $1 ORDER BY content_version DESC, position DESC"
    ))
    .bind(document)
    .fetch_all(executor)
    .await
}

/// One named version of a document.
pub async fn named_version(
    executor: impl PgExecutor<'_>,
    document: Uuid,
    version_id: Uuid,
) -> Result<Option<NamedVersion>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{VERSION_COLUMNS} WHERE document_id = $1 AND version_id = $2"
    ))
    .bind(document)
    .bind(version_id)
    .fetch_optional(executor)
    .await
}

/// Who delivered which Yjs items of a document first.
#[derive(Debug, Default)]
pub struct ItemAuthors {
    by_client: HashMap<u64, Vec<(u32, u32, String)>>,
}

impl ItemAuthors {
    /// The actor whose edit brought item `(client, clock)`.
    pub fn actor(&self, client: u64, clock: u32) -> Option<&str> {
        let ranges = self.by_client.get(&client)?;
        let index = ranges.partition_point(|(first, _, _)| *first <= clock);
        let (first, end, actor) = ranges.get(index.checked_sub(1)?)?;
        (*first <= clock && clock < *end).then_some(actor.as_str())
    }

    /// Where the answer of [`ItemAuthors::actor`] for `(client, clock)` stops holding
    /// (exclusive): the end of the range covering it, or — in a gap between ranges — where
    /// the next one starts.
    pub fn range_end(&self, client: u64, clock: u32) -> Option<u32> {
        let ranges = self.by_client.get(&client)?;
        let index = ranges.partition_point(|(first, _, _)| *first <= clock);
        match index.checked_sub(1).and_then(|i| ranges.get(i)) {
            Some((_, end, _)) if clock < *end => Some(*end),
            _ => ranges.get(index).map(|(first, _, _)| *first),
        }
    }
}

pub async fn item_authors(
    executor: impl PgExecutor<'_>,
    document: Uuid,
) -> Result<ItemAuthors, sqlx::Error> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "SELECT client_id, first_clock, end_clock, actor FROM rm_history_authors \
         WHERE document_id = $1 ORDER BY client_id, first_clock",
    )
    .bind(document)
    .fetch_all(executor)
    .await?;
    let mut authors = ItemAuthors::default();
    for (client, first, end, actor) in rows {
        authors
            .by_client
            .entry(client as u64)
            .or_default()
            .push((first as u32, end as u32, actor));
    }
    Ok(authors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: i64, end: i64, actor: &str) -> AuthorRange {
        AuthorRange {
            first_clock: first,
            end_clock: end,
            actor: actor.into(),
        }
    }

    fn ranges(ranges: &[AuthorRange]) -> Vec<(i64, i64, &str)> {
        ranges
            .iter()
            .map(|r| (r.first_clock, r.end_clock, r.actor.as_str()))
            .collect()
    }

    #[test]
    fn ranges_arriving_in_any_order_give_first_deliverers_in_disjoint_ranges() {
        let mut stored = vec![];
        // A later part first, then the gap before it, then a resend of both.
        add_range(&mut stored, range(518, 1420, "a"));
        add_range(&mut stored, range(0, 510, "a"));
        add_range(&mut stored, range(510, 1483, "a"));
        assert_eq!(ranges(&stored), [(0, 1483, "a")]);
        // Someone else resending what is known gets nothing; what is new is theirs.
        add_range(&mut stored, range(1000, 1600, "b"));
        add_range(&mut stored, range(1700, 1800, "a"));
        add_range(&mut stored, range(1600, 1700, "a"));
        assert_eq!(
            ranges(&stored),
            [(0, 1483, "a"), (1483, 1600, "b"), (1600, 1800, "a")]
        );
        // Someone else's range inside and around a known one is cut around it.
        let mut stored = vec![range(5, 9, "a")];
        add_range(&mut stored, range(0, 3, "b"));
        add_range(&mut stored, range(2, 12, "b"));
        add_range(&mut stored, range(0, 20, "a"));
        assert_eq!(
            ranges(&stored),
            [(0, 5, "b"), (5, 9, "a"), (9, 12, "b"), (12, 20, "a")]
        );
    }

    #[test]
    fn authors_answer_in_ranges_and_across_gaps() {
        let mut authors = ItemAuthors::default();
        authors.by_client.insert(
            7,
            vec![(0, 5, "user:alice".into()), (10, 12, "user:bob".into())],
        );
        assert_eq!(authors.actor(7, 4), Some("user:alice"));
        assert_eq!(authors.range_end(7, 4), Some(5));
        // In the gap nobody is known, up to where bob's range starts.
        assert_eq!(authors.actor(7, 6), None);
        assert_eq!(authors.range_end(7, 6), Some(10));
        assert_eq!(authors.actor(7, 11), Some("user:bob"));
        assert_eq!(
            (authors.actor(7, 12), authors.range_end(7, 12)),
            (None, None)
        );
        assert_eq!(authors.actor(8, 0), None);
    }
}
