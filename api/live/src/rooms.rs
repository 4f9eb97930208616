//! The rooms of this instance: load on first join (newest snapshot + the content events
//! after it), one background task per room (other instances' updates, gap repair,
//! awareness expiry, presence, snapshots), unload when the last user leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use collab_domain::catalogue::EventCodec;
use collab_domain::content::ContentEvent;
use collab_domain::{DocumentId, StreamCategory, StreamId, WorkspaceId};
use collab_store::EventStore;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use tracing::{debug, instrument, warn};
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

use super::blob_store::BlobStore;
use super::fanout::{Fanout, LiveMessage};
use super::presence::{self, PresenceSink};
use super::room::{Loaded, Room, SnapshotMark};
use super::LiveConfig;

/// What loading and running rooms needs.
pub struct RoomDeps {
    pub store: EventStore,
    pub pool: PgPool,
    pub fanout: Fanout,
    pub presence: PresenceSink,
    pub blobs: Arc<dyn BlobStore>,
    pub config: Arc<LiveConfig>,
    pub instance_id: Uuid,
}

struct Slot {
    cell: Arc<OnceCell<Arc<Room>>>,
    users: usize,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    slots: Arc<Mutex<HashMap<DocumentId, Slot>>>,
    deps: Arc<RoomDeps>,
}

/// A claim on a loaded room; the room unloads when the last guard is dropped.
pub struct RoomGuard {
    pub room: Arc<Room>,
    rooms: Rooms,
}

impl Drop for RoomGuard {
    fn drop(&mut self) {
        self.rooms.release(self.room.document_id);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] collab_store::StoreError),
    #[error("snapshot: {0}")]
    Snapshot(String),
}

impl Rooms {
    pub fn new(deps: RoomDeps) -> Self {
        Self {
            slots: Arc::default(),
            deps: Arc::new(deps),
        }
    }

    pub fn deps(&self) -> &RoomDeps {
        &self.deps
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<DocumentId, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rooms loaded on this instance now.
    pub fn live_count(&self) -> usize {
        self.slots()
            .values()
            .filter(|slot| slot.cell.initialized())
            .count()
    }

    /// Joins (loading if needed) the room of `document`.
    pub async fn acquire(
        &self,
        document: DocumentId,
        workspace: WorkspaceId,
    ) -> Result<RoomGuard, LoadError> {
        let cell = {
            let mut slots = self.slots();
            let slot = slots.entry(document).or_insert_with(|| Slot {
                cell: Arc::new(OnceCell::new()),
                users: 0,
            });
            slot.users += 1;
            slot.cell.clone()
        };
        let loaded = cell
            .get_or_try_init(|| load(self.deps.clone(), document, workspace))
            .await
            .cloned();
        match loaded {
            Ok(room) => Ok(RoomGuard {
                room,
                rooms: self.clone(),
            }),
            Err(error) => {
                self.release(document);
                Err(error)
            }
        }
    }

    fn release(&self, document: DocumentId) {
        let unloaded = {
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(&document) else {
                return;
            };
            slot.users -= 1;
            if slot.users > 0 {
                return;
            }
            slots
                .remove(&document)
                .and_then(|slot| slot.cell.get().cloned())
        };
        if let Some(room) = unloaded {
            // The room task takes a final snapshot and unsubscribes.
            room.stop.cancel();
        }
    }

    pub fn loaded_rooms(&self) -> Vec<Arc<Room>> {
        self.slots()
            .values()
            .filter_map(|slot| slot.cell.get().cloned())
            .collect()
    }

    /// Closes every session of every room (graceful shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for room in self.loaded_rooms() {
            room.close_all(code, reason);
        }
    }

    /// A live room of this instance, if loaded (no claim taken).
    pub fn loaded(&self, document: DocumentId) -> Option<Arc<Room>> {
        self.slots()
            .get(&document)
            .and_then(|slot| slot.cell.get().cloned())
    }
}

fn content_stream(document: DocumentId) -> StreamId {
    StreamId::new(StreamCategory::Content, document.as_uuid())
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    version: i64,
    position: i64,
    state: Option<Vec<u8>>,
    blob_key: Option<String>,
    size_bytes: i64,
}

/// The document's content as of content-stream version `at` (`None`: the newest): the
/// newest room snapshot at or below it plus the content events after it, up to `at`. Rooms
/// load through it. (Past points are read with `collab_projections::history::document_at`,
/// which starts from the nearest of every history snapshot, not only the newest.)
#[instrument(skip(deps), fields(document.id = %document))]
pub async fn load_state(
    deps: &RoomDeps,
    document: DocumentId,
    at: Option<i64>,
) -> Result<Loaded, LoadError> {
    let snapshot: Option<SnapshotRow> = sqlx::query_as(
        "SELECT version, position, state, blob_key, size_bytes FROM document_snapshots \
         WHERE document_id = $1 AND version <= $2",
    )
    .bind(document.as_uuid())
    .bind(at.unwrap_or(i64::MAX))
    .fetch_optional(&deps.pool)
    .await?;
    let doc = Doc::new();
    let (mut version, mut position, mark) = match snapshot {
        Some(row) => {
            let state = match (row.state, row.blob_key) {
                (Some(state), _) => state,
                (None, Some(key)) => deps
                    .blobs
                    .get(&key)
                    .await
                    .map_err(|e| LoadError::Snapshot(format!("blob {key}: {e}")))?,
                (None, None) => return Err(LoadError::Snapshot("snapshot without state".into())),
            };
            let update =
                Update::decode_v1(&state).map_err(|e| LoadError::Snapshot(e.to_string()))?;
            doc.transact_mut()
                .apply_update(update)
                .map_err(|e| LoadError::Snapshot(e.to_string()))?;
            (
                row.version,
                row.position,
                SnapshotMark {
                    version: row.version,
                    size_bytes: row.size_bytes as usize,
                },
            )
        }
        None => (
            0,
            0,
            SnapshotMark {
                version: 0,
                size_bytes: 0,
            },
        ),
    };
    let tail = deps
        .store
        .read_stream_until(content_stream(document), version, at.unwrap_or(i64::MAX))
        .await?;
    let mut tail_bytes = 0;
    {
        let mut txn = doc.transact_mut();
        for event in &tail {
            let ContentEvent::DocumentEdited(edit) =
                ContentEvent::decode(&event.event_type, event.schema_version, &event.payload)
                    .map_err(|e| LoadError::Snapshot(e.to_string()))?;
            match Update::decode_v1(&edit.update) {
                Ok(update) => {
                    if let Err(error) = txn.apply_update(update) {
                        warn!(version = event.stream_version, %error, "stored update does not apply");
                    }
                }
                Err(error) => {
                    warn!(version = event.stream_version, %error, "stored update does not decode")
                }
            }
            tail_bytes += edit.update.len();
            version = event.stream_version;
            position = event.position;
        }
    }
    debug!(version, tail = tail.len(), "document state loaded");
    Ok(Loaded {
        doc,
        version,
        position,
        snapshot: mark,
        tail_bytes,
    })
}

async fn load(
    deps: Arc<RoomDeps>,
    document: DocumentId,
    workspace: WorkspaceId,
) -> Result<Arc<Room>, LoadError> {
    let started = std::time::Instant::now();
    // Subscribe before reading the log, so nothing committed meanwhile slips between.
    let subscription = deps.fanout.subscribe(document).await;
    let loaded = load_state(&deps, document, None).await?;
    let room = Arc::new(Room::new(
        document,
        workspace,
        loaded,
        deps.presence.clone(),
    ));
    metrics::histogram!("collab_room_load_seconds").record(started.elapsed().as_secs_f64());
    metrics::gauge!("collab_live_rooms").increment(1.0);
    tokio::spawn(room_task(room.clone(), deps, subscription));
    Ok(room)
}

/// Reads what the room lacks from the log (after a lost fan-out message).
async fn catch_up(room: &Room, deps: &RoomDeps) {
    let (applied, _) = room.applied();
    match deps
        .store
        .read_stream(content_stream(room.document_id), applied)
        .await
    {
        Ok(events) => {
            for event in events {
                if let Ok(ContentEvent::DocumentEdited(edit)) =
                    ContentEvent::decode(&event.event_type, event.schema_version, &event.payload)
                {
                    room.apply_committed(event.stream_version, event.position, &edit.update, None);
                }
            }
        }
        Err(error) => {
            warn!(document.id = %room.document_id, %error, "cannot catch up from the log")
        }
    }
}

/// The document's current content version: its content stream's length (0: no edit yet).
pub async fn content_head(
    executor: impl sqlx::PgExecutor<'_>,
    document: DocumentId,
) -> Result<i64, sqlx::Error> {
    Ok(sqlx::query_scalar(
        "SELECT stream_version FROM events WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1",
    )
    .bind(content_stream(document).to_string())
    .fetch_optional(executor)
    .await?
    .unwrap_or(0))
}

/// How long a room waits for a missing update to arrive from other instances before it
/// reads it from the log.
const GAP_GRACE: Duration = Duration::from_millis(100);

async fn room_task(
    room: Arc<Room>,
    deps: Arc<RoomDeps>,
    mut subscription: Option<async_nats::Subscriber>,
) {
    let config = deps.config.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut ticks: u64 = 0;
    // The content version the log had at the previous safety-net check.
    let mut committed_before: i64 = 0;
    // When a gap is read from the log if the fast path has not filled it by then.
    let mut gap_deadline: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = room.stop.cancelled() => break,
            message = async {
                match subscription.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(message) = message else {
                    subscription = None;
                    continue;
                };
                match deps.fanout.decode(&message.payload) {
                    Some(LiveMessage::Updates { updates }) => {
                        for c in updates {
                            room.apply_committed(c.version, c.position, &c.update, None);
                        }
                        // Filled by the fast path: a later gap gets its own full grace.
                        if gap_deadline.is_some() && !room.has_gap() {
                            gap_deadline = None;
                        }
                    }
                    Some(LiveMessage::Awareness { update }) => {
                        if let Ok(update) = yrs::sync::AwarenessUpdate::decode_v1(&update) {
                            room.apply_awareness(None, &update);
                        }
                    }
                    None => {}
                }
            }
            _ = room.gap.notified() => {
                // Give the missing update a moment to arrive by the fast path first — while
                // this loop goes on reading it: updates committed by other instances often
                // arrive out of order, and the one that fills the gap is usually next.
                gap_deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now() + GAP_GRACE
                });
            }
            _ = async {
                match gap_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => {
                gap_deadline = None;
                if room.has_gap() {
                    catch_up(&room, &deps).await;
                }
            }
            _ = tick.tick() => {
                ticks += 1;
                room.flush_presence();
                if ticks.is_multiple_of(10) {
                    if let Some(removal) = room.expire_awareness(config.awareness_timeout) {
                        deps.fanout.publish_awareness(&room, removal).await;
                    }
                    // Safety net for a lost fan-out message with nothing after it: what
                    // was committed by the previous check (5 s ago) and is still not here.
                    // Not merely "behind the log": during a burst the room always is, by
                    // the updates in flight, and reading them here would send each one
                    // twice — to its own sender too, whose queue a long burst overflows.
                    if room.applied().0 < committed_before {
                        catch_up(&room, &deps).await;
                    }
                    if let Ok(head) = content_head(&deps.pool, room.document_id).await {
                        committed_before = head;
                    }
                }
                if ticks.is_multiple_of(30) {
                    presence::heartbeat(&deps.pool, deps.instance_id, room.document_id).await;
                }
                if room.snapshot_due(config.snapshot_every, config.snapshot_quiet) {
                    take_snapshot(&room, &deps).await;
                }
            }
        }
    }
    if room.snapshot_mark().version < room.applied().0 {
        take_snapshot(&room, &deps).await;
    }
    metrics::gauge!("collab_live_rooms").decrement(1.0);
}

/// Compacts the room's state into a snapshot, off the editing path.
#[instrument(skip_all, fields(document.id = %room.document_id))]
pub async fn take_snapshot(room: &Room, deps: &RoomDeps) {
    let (version, position, state_vector, state) = room.encode_snapshot();
    let size = state.len();
    let (inline, blob_key) = if size <= deps.config.snapshot_inline_max_bytes {
        (Some(state), None)
    } else {
        let key = format!("snapshots/{}/{version}.yupdate", room.document_id);
        if let Err(error) = deps.blobs.put(&key, state).await {
            warn!(%error, "cannot store snapshot blob");
            return;
        }
        (None, Some(key))
    };
    let previous: Option<Option<String>> =
        sqlx::query_scalar("SELECT blob_key FROM document_snapshots WHERE document_id = $1")
            .bind(room.document_id.as_uuid())
            .fetch_optional(&deps.pool)
            .await
            .unwrap_or(None);
    let saved = sqlx::query(
        "INSERT INTO document_snapshots (document_id, workspace_id, version, position, state_vector, state, blob_key, size_bytes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (document_id) DO UPDATE SET version = EXCLUDED.version, position = EXCLUDED.position, \
           state_vector = EXCLUDED.state_vector, state = EXCLUDED.state, blob_key = EXCLUDED.blob_key, \
           size_bytes = EXCLUDED.size_bytes, taken_at = now() \
         WHERE document_snapshots.version < EXCLUDED.version",
    )
    .bind(room.document_id.as_uuid())
    .bind(room.workspace_id.as_uuid())
    .bind(version)
    .bind(position)
    .bind(state_vector)
    .bind(inline)
    .bind(&blob_key)
    .bind(size as i64)
    .execute(&deps.pool)
    .await;
    match saved {
        Ok(result) if result.rows_affected() == 1 => {
            room.snapshot_taken(SnapshotMark {
                version,
                size_bytes: size,
            });
            metrics::counter!("collab_document_snapshots_total").increment(1);
            if let Some(Some(old)) = previous {
                if Some(&old) != blob_key.as_ref() {
                    let _ = deps.blobs.delete(&old).await;
                }
            }
        }
        Ok(_) => {}
        Err(error) => warn!(%error, "cannot save snapshot"),
    }
}
