//! A live document on this instance: the merged Yjs state of everything durable, the
//! connected sessions, and the awareness (presence) states.
//!
//! Updates are applied strictly in content-stream version order, whatever path they come
//! by (this instance's group commit, another instance over NATS, or a catch-up read of
//! the log): a version at or below `applied_version` was seen already (so an update
//! delivered twice is applied once), one beyond the next is held until the gap is filled.
//! The state lives behind a std `Mutex` and is never held across an `.await` (yrs
//! transactions are not `Send`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use collab_domain::{DocumentId, UserId, WorkspaceId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::AwarenessUpdate;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::outbox::Outbox;
use super::presence::{PresenceChange, PresenceKind, PresenceSink};
use super::protocol;
use collab_commands::access::{LinkKey, ServiceIdentity};

pub type SessionId = Uuid;

/// A session as an access re-check sees it.
#[derive(Debug, Clone)]
pub struct ConnectedSession {
    pub id: SessionId,
    pub user: UserId,
    pub read_only: bool,
    pub read_only_token: bool,
    pub link: Option<LinkKey>,
    pub service: Option<ServiceIdentity>,
}

/// A connected socket, as the room knows it.
pub struct SessionEntry {
    /// Everyone else's edits and awareness for it, and the reason it is ended, if it is.
    pub outbox: Outbox,
    pub user: UserId,
    pub read_only: bool,
    /// Awareness client ids this session has announced.
    clients: HashSet<u64>,
    /// The share link it was admitted with, and whether its token is read-only: what an
    /// access re-check needs.
    pub link: Option<LinkKey>,
    pub read_only_token: bool,
    pub service: Option<ServiceIdentity>,
}

impl SessionEntry {
    pub fn new(outbox: Outbox, user: UserId, read_only: bool) -> Self {
        Self {
            outbox,
            user,
            read_only,
            clients: HashSet::new(),
            link: None,
            read_only_token: false,
            service: None,
        }
    }
}

struct AwarenessEntry {
    clock: u32,
    json: Arc<str>,
    last_seen: Instant,
    /// The local session that owns it; None for states relayed from other instances.
    session: Option<SessionId>,
}

const NULL_STATE: &str = "null";

/// Where the last snapshot stands, and what has happened since.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotMark {
    pub version: i64,
    pub size_bytes: usize,
}

struct RoomState {
    doc: Doc,
    applied_version: i64,
    applied_position: i64,
    pending: BTreeMap<i64, (i64, Vec<u8>, Option<SessionId>)>,
    sessions: HashMap<SessionId, SessionEntry>,
    awareness: HashMap<u64, AwarenessEntry>,
    snapshot: SnapshotMark,
    tail_bytes: usize,
    last_applied_at: Instant,
    /// Awareness clients whose change is waiting for the presence coalescing window.
    presence_dirty: HashSet<u64>,
    presence_emitted_at: HashMap<u64, Instant>,
    /// The whole document as a sync step 2 at a version: what every client joining with
    /// nothing gets. Held weakly, by the sockets that still have it queued: a crowd joining
    /// at once shares one encoding (and one copy in memory), an idle room keeps none.
    full_state: Option<(i64, Weak<Vec<u8>>)>,
}

/// A shared frame as `Bytes` (the owner is counted, so the cache above can hold it weakly).
struct SharedFrame(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedFrame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

pub struct Room {
    pub document_id: DocumentId,
    pub workspace_id: WorkspaceId,
    state: Mutex<RoomState>,
    presence: PresenceSink,
    /// Signalled when an update arrived ahead of a missing one.
    pub gap: Notify,
    /// Cancelled when the room is unloaded.
    pub stop: CancellationToken,
}

/// At most this many presence "changed" events per awareness client per second, roughly.
const PRESENCE_WINDOW: Duration = Duration::from_millis(500);

/// A document as loaded from its snapshot and the events after it.
pub struct Loaded {
    pub doc: Doc,
    /// Content-stream version and global position of the last update folded in.
    pub version: i64,
    pub position: i64,
    pub snapshot: SnapshotMark,
    /// Bytes of the updates read after the snapshot.
    pub tail_bytes: usize,
}

/// The outcome of offering the room a committed update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub updates: usize,
    pub waiting_for_gap: bool,
}

impl Room {
    pub fn new(
        document_id: DocumentId,
        workspace_id: WorkspaceId,
        loaded: Loaded,
        presence: PresenceSink,
    ) -> Self {
        Self {
            document_id,
            workspace_id,
            state: Mutex::new(RoomState {
                doc: loaded.doc,
                applied_version: loaded.version,
                applied_position: loaded.position,
                pending: BTreeMap::new(),
                sessions: HashMap::new(),
                awareness: HashMap::new(),
                snapshot: loaded.snapshot,
                tail_bytes: loaded.tail_bytes,
                last_applied_at: Instant::now(),
                presence_dirty: HashSet::new(),
                presence_emitted_at: HashMap::new(),
                full_state: None,
            }),
            presence,
            gap: Notify::new(),
            stop: CancellationToken::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock leaves yrs state we cannot trust less than a
        // poisoned flag; the state itself is only ever mutated by whole transactions.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn presence_change(
        &self,
        kind: PresenceKind,
        session: SessionId,
        entry: &SessionEntry,
        client_id: Option<u64>,
        state: Option<Arc<str>>,
    ) {
        self.presence.emit(PresenceChange {
            kind,
            document_id: self.document_id,
            workspace_id: self.workspace_id,
            session_id: session,
            user_id: entry.user.clone(),
            client_id,
            state,
            read_only: entry.read_only,
            at: chrono::Utc::now(),
        });
    }

    /// Adds a session; returns the greeting: sync step 1 (our state vector), then the
    /// awareness states we hold, as separate frames.
    pub fn join(&self, session: SessionId, entry: SessionEntry) -> Vec<Bytes> {
        let mut state = self.lock();
        let mut greeting = vec![protocol::sync_step1(state.doc.transact().state_vector())];
        if let Some(update) = full_awareness(&state) {
            greeting.push(protocol::awareness(update));
        }
        self.presence_change(PresenceKind::Joined, session, &entry, None, None);
        state.sessions.insert(session, entry);
        metrics::gauge!("collab_live_sessions").increment(1.0);
        greeting
    }

    /// Removes a session and its awareness states (announced to everyone else as removed).
    /// Returns the awareness removal, encoded, for other instances.
    pub fn leave(&self, session: SessionId) -> Option<Vec<u8>> {
        let mut state = self.lock();
        let entry = state.sessions.remove(&session)?;
        metrics::gauge!("collab_live_sessions").decrement(1.0);
        self.presence_change(PresenceKind::Left, session, &entry, None, None);
        let clients: Vec<u64> = entry.clients.iter().copied().collect();
        let removal = remove_awareness(&mut state, &clients)?;
        let encoded = removal.encode_v1();
        broadcast(&mut state, protocol::awareness(removal), None);
        Some(encoded)
    }

    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_read_only(&self, session: SessionId) -> bool {
        self.lock()
            .sessions
            .get(&session)
            .is_none_or(|s| s.read_only)
    }

    /// Answer to a client's sync step 1: what it lacks, as sync step 2.
    pub fn sync_step2_for(&self, remote: &StateVector) -> Bytes {
        let mut state = self.lock();
        if !remote.is_empty() {
            let diff = state.doc.transact().encode_diff_v1(remote);
            return protocol::sync_step2(diff);
        }
        let version = state.applied_version;
        if let Some((at, shared)) = &state.full_state {
            if let Some(frame) = shared.upgrade().filter(|_| *at == version) {
                metrics::counter!("collab_sync_full_state_shared_total").increment(1);
                return Bytes::from_owner(SharedFrame(frame));
            }
        }
        let diff = state.doc.transact().encode_diff_v1(remote);
        let frame = Arc::new(Vec::from(protocol::sync_step2(diff)));
        state.full_state = Some((version, Arc::downgrade(&frame)));
        Bytes::from_owner(SharedFrame(frame))
    }

    pub fn awareness_frame(&self) -> Option<Bytes> {
        full_awareness(&self.lock()).map(protocol::awareness)
    }

    /// Size of the document as stored: last snapshot plus the updates since.
    pub fn stored_bytes(&self) -> usize {
        let state = self.lock();
        state.snapshot.size_bytes + state.tail_bytes
    }

    pub fn applied(&self) -> (i64, i64) {
        let state = self.lock();
        (state.applied_version, state.applied_position)
    }

    pub fn has_gap(&self) -> bool {
        !self.lock().pending.is_empty()
    }

    /// Offers a durable update (content-stream `version`, global `position`). Applies it
    /// and whatever it unblocks, in version order, and sends each to every session but
    /// the one it came from.
    pub fn apply_committed(
        &self,
        version: i64,
        position: i64,
        update: &[u8],
        origin: Option<SessionId>,
    ) -> Applied {
        let mut state = self.lock();
        if version <= state.applied_version {
            return Applied {
                updates: 0,
                waiting_for_gap: !state.pending.is_empty(),
            };
        }
        state
            .pending
            .insert(version, (position, update.to_vec(), origin));
        let mut applied = 0;
        loop {
            let next = state.applied_version + 1;
            let Some((position, bytes, origin)) = state.pending.remove(&next) else {
                break;
            };
            match Update::decode_v1(&bytes) {
                Ok(decoded) => {
                    if let Err(error) = state.doc.transact_mut().apply_update(decoded) {
                        tracing::error!(document.id = %self.document_id, version = next, %error, "stored update does not apply");
                    }
                }
                Err(error) => {
                    tracing::error!(document.id = %self.document_id, version = next, %error, "stored update does not decode")
                }
            }
            state.applied_version = next;
            state.applied_position = position;
            state.tail_bytes += bytes.len();
            state.last_applied_at = Instant::now();
            broadcast(&mut state, protocol::sync_update(&bytes), origin);
            applied += 1;
        }
        let waiting = !state.pending.is_empty();
        drop(state);
        if waiting {
            self.gap.notify_one();
        }
        Applied {
            updates: applied,
            waiting_for_gap: waiting,
        }
    }

    /// Applies an awareness update from a local session (or, with `None`, from another
    /// instance), relays it to the other local sessions, and records presence changes.
    pub fn apply_awareness(&self, from: Option<SessionId>, update: &AwarenessUpdate) {
        let mut state = self.lock();
        let now = Instant::now();
        let mut relayed = HashMap::new();
        for (client, entry) in &update.clients {
            let client = client.get();
            let removed = entry.json.as_ref() == NULL_STATE;
            let (newer, changed) = match state.awareness.get(&client) {
                None => (!removed, true),
                Some(known) => (
                    known.clock < entry.clock
                        || (known.clock == entry.clock
                            && removed
                            && known.json.as_ref() != NULL_STATE),
                    known.json != entry.json,
                ),
            };
            if let Some(known) = state.awareness.get_mut(&client) {
                // Any message from the client renews its state, changed or not.
                known.last_seen = now;
            }
            if !newer {
                continue;
            }
            state.awareness.insert(
                client,
                AwarenessEntry {
                    clock: entry.clock,
                    json: entry.json.clone(),
                    last_seen: now,
                    session: from,
                },
            );
            if let Some(session) = from {
                if let Some(s) = state.sessions.get_mut(&session) {
                    s.clients.insert(client);
                }
            }
            relayed.insert(client, entry.clone());
            if changed && from.is_some() {
                self.note_presence_change(&mut state, client, now);
            }
        }
        if relayed.is_empty() {
            return;
        }
        let frame = protocol::awareness(to_update(relayed));
        broadcast(&mut state, frame, from);
    }

    fn note_presence_change(&self, state: &mut RoomState, client: u64, now: Instant) {
        let recent = state
            .presence_emitted_at
            .get(&client)
            .is_some_and(|at| now.duration_since(*at) < PRESENCE_WINDOW);
        if recent {
            state.presence_dirty.insert(client);
        } else {
            self.emit_awareness_presence(state, client, PresenceKind::Changed);
            state.presence_emitted_at.insert(client, now);
        }
    }

    fn emit_awareness_presence(&self, state: &RoomState, client: u64, kind: PresenceKind) {
        let Some(entry) = state.awareness.get(&client) else {
            return;
        };
        let Some(session) = entry.session else { return };
        if let Some(owner) = state.sessions.get(&session) {
            let json = (entry.json.as_ref() != NULL_STATE).then(|| entry.json.clone());
            self.presence_change(kind, session, owner, Some(client), json);
        }
    }

    /// Emits the presence changes held back by the coalescing window.
    pub fn flush_presence(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let due: Vec<u64> = state
            .presence_dirty
            .iter()
            .copied()
            .filter(|c| {
                state
                    .presence_emitted_at
                    .get(c)
                    .is_none_or(|at| now.duration_since(*at) >= PRESENCE_WINDOW)
            })
            .collect();
        for client in due {
            state.presence_dirty.remove(&client);
            self.emit_awareness_presence(&state, client, PresenceKind::Changed);
            state.presence_emitted_at.insert(client, now);
        }
    }

    /// Removes awareness states not renewed within `timeout`, tells the local sessions,
    /// and returns the removal (encoded) for other instances.
    pub fn expire_awareness(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut state = self.lock();
        let now = Instant::now();
        let stale: Vec<u64> = state
            .awareness
            .iter()
            .filter(|(_, e)| {
                e.json.as_ref() != NULL_STATE && now.duration_since(e.last_seen) > timeout
            })
            .map(|(c, _)| *c)
            .collect();
        if stale.is_empty() {
            return None;
        }
        for client in &stale {
            self.emit_awareness_presence(&state, *client, PresenceKind::TimedOut);
        }
        let removal = remove_awareness(&mut state, &stale)?;
        let encoded = removal.encode_v1();
        broadcast(&mut state, protocol::awareness(removal), None);
        Some(encoded)
    }

    /// Whether a snapshot is due: `every` updates since the last one, or some updates and
    /// `quiet` time without any.
    pub fn snapshot_due(&self, every: i64, quiet: Duration) -> bool {
        let state = self.lock();
        let behind = state.applied_version - state.snapshot.version;
        behind >= every || (behind > 0 && state.last_applied_at.elapsed() >= quiet)
    }

    /// The merged state now: (version, position, state vector, state as one update).
    pub fn encode_snapshot(&self) -> (i64, i64, Vec<u8>, Vec<u8>) {
        let state = self.lock();
        let txn = state.doc.transact();
        (
            state.applied_version,
            state.applied_position,
            txn.state_vector().encode_v1(),
            txn.encode_state_as_update_v1(&StateVector::default()),
        )
    }

    pub fn snapshot_taken(&self, mark: SnapshotMark) {
        let mut state = self.lock();
        if mark.version > state.snapshot.version {
            state.snapshot = mark;
            // Only what arrived after the snapshot remains in the tail; approximate it.
            state.tail_bytes = if state.applied_version == mark.version {
                0
            } else {
                state.tail_bytes / 2
            };
        }
    }

    pub fn snapshot_mark(&self) -> SnapshotMark {
        self.lock().snapshot
    }

    /// Runs `f` on the document (read-only).
    pub fn read<T>(&self, f: impl FnOnce(&Doc) -> T) -> T {
        f(&self.lock().doc)
    }

    /// Sends `frame` to every session but `except`.
    pub fn broadcast(&self, frame: Bytes, except: Option<SessionId>) {
        broadcast(&mut self.lock(), frame, except);
    }

    /// Closes every session (unload, shutdown, persistence failure).
    pub fn close_all(&self, code: u16, reason: &str) {
        let state = self.lock();
        for session in state.sessions.values() {
            session.outbox.close(code, reason);
        }
    }

    /// Closes one session.
    pub fn close_session(&self, session: SessionId, code: u16, reason: &str) {
        if let Some(entry) = self.lock().sessions.get(&session) {
            entry.outbox.close(code, reason);
        }
    }

    /// Who is connected now, with what access re-checks need.
    pub fn sessions(&self) -> Vec<ConnectedSession> {
        self.lock()
            .sessions
            .iter()
            .map(|(id, s)| ConnectedSession {
                id: *id,
                user: s.user.clone(),
                read_only: s.read_only,
                read_only_token: s.read_only_token,
                link: s.link,
                service: s.service.clone(),
            })
            .collect()
    }
}

fn to_update(entries: HashMap<u64, AwarenessUpdateEntry>) -> AwarenessUpdate {
    AwarenessUpdate {
        clients: entries
            .into_iter()
            .map(|(client, entry)| (yrs::block::ClientID::new(client), entry))
            .collect(),
    }
}

fn full_awareness(state: &RoomState) -> Option<AwarenessUpdate> {
    let live: HashMap<u64, AwarenessUpdateEntry> = state
        .awareness
        .iter()
        .filter(|(_, e)| e.json.as_ref() != NULL_STATE)
        .map(|(c, e)| {
            (
                *c,
                AwarenessUpdateEntry {
                    clock: e.clock,
                    json: e.json.clone(),
                },
            )
        })
        .collect();
    (!live.is_empty()).then(|| to_update(live))
}

/// Marks `clients` removed (clock + 1, null state: what y-protocols does) and returns the
/// update announcing it.
fn remove_awareness(state: &mut RoomState, clients: &[u64]) -> Option<AwarenessUpdate> {
    let mut removal = HashMap::new();
    for client in clients {
        if let Some(entry) = state.awareness.get_mut(client) {
            if entry.json.as_ref() == NULL_STATE {
                continue;
            }
            entry.clock += 1;
            entry.json = NULL_STATE.into();
            removal.insert(
                *client,
                AwarenessUpdateEntry {
                    clock: entry.clock,
                    json: entry.json.clone(),
                },
            );
        }
    }
    (!removal.is_empty()).then(|| to_update(removal))
}

/// Queues `frame` for every session but `except`. A session whose outbox is full is too
/// slow to keep up: it is ended (and resynchronises when it reconnects).
fn broadcast(state: &mut RoomState, frame: Bytes, except: Option<SessionId>) {
    for (id, session) in &state.sessions {
        if Some(*id) != except && !session.outbox.push(frame.clone()) {
            metrics::counter!("collab_live_sessions_dropped_total").increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text};

    fn room() -> (Room, Outbox) {
        let (presence, _) = tokio::sync::mpsc::channel(16);
        let room = Room::new(
            DocumentId::new(),
            WorkspaceId::new(),
            Loaded {
                doc: Doc::new(),
                version: 0,
                position: 0,
                snapshot: SnapshotMark {
                    version: 0,
                    size_bytes: 0,
                },
                tail_bytes: 0,
            },
            PresenceSink::for_tests(presence),
        );
        let outbox = Outbox::new();
        room.join(
            Uuid::now_v7(),
            SessionEntry::new(outbox.clone(), UserId::parse("u").unwrap(), false),
        );
        (room, outbox)
    }

    fn edit(text: &str, at: u32, doc: &Doc) -> Vec<u8> {
        let root = doc.get_or_insert_text("text");
        let before = doc.transact().state_vector();
        root.insert(&mut doc.transact_mut(), at, text);
        let update = doc.transact().encode_diff_v1(&before);
        update
    }

    fn text(room: &Room) -> String {
        room.read(|doc| {
            let root = doc.get_or_insert_text("text");
            let text = root.get_string(&doc.transact());
            text
        })
    }

    #[test]
    fn updates_apply_once_in_version_order_whatever_the_arrival_order() {
        let (room, outbox) = room();
        let source = Doc::new();
        let first = edit("a", 0, &source);
        let second = edit("b", 1, &source);
        let third = edit("c", 2, &source);
        assert_eq!(room.apply_committed(1, 10, &first, None).updates, 1);
        // Delivered twice (own commit and fan-out): applied once, sent once.
        assert_eq!(room.apply_committed(1, 10, &first, None).updates, 0);
        // Version 3 before 2: held until the gap is filled.
        let held = room.apply_committed(3, 30, &third, None);
        assert_eq!(
            held,
            Applied {
                updates: 0,
                waiting_for_gap: true
            }
        );
        assert!(room.has_gap());
        let filled = room.apply_committed(2, 20, &second, None);
        assert_eq!(
            filled,
            Applied {
                updates: 2,
                waiting_for_gap: false
            }
        );
        assert_eq!(text(&room), "abc");
        assert_eq!(room.applied(), (3, 30));
        // three updates, each its own frame (the greeting is returned by join)
        let frames = outbox.take(100);
        assert_eq!(frames.len(), 3);
    }

    #[test]
    fn a_snapshot_is_due_after_enough_updates_and_covers_the_state() {
        let (room, _rx) = room();
        let source = Doc::new();
        for (n, c) in ["x", "y", "z"].iter().enumerate() {
            let update = edit(c, n as u32, &source);
            room.apply_committed(n as i64 + 1, n as i64 + 1, &update, None);
        }
        assert!(room.snapshot_due(3, Duration::from_secs(60)));
        assert!(!room.snapshot_due(4, Duration::from_secs(60)));
        let (version, _, _, state) = room.encode_snapshot();
        assert_eq!(version, 3);
        let replica = Doc::new();
        replica
            .transact_mut()
            .apply_update(Update::decode_v1(&state).unwrap())
            .unwrap();
        let root = replica.get_or_insert_text("text");
        assert_eq!(root.get_string(&replica.transact()), "xyz");
        room.snapshot_taken(SnapshotMark {
            version: 3,
            size_bytes: state.len(),
        });
        assert!(!room.snapshot_due(1, Duration::ZERO));
    }

    #[test]
    fn clients_joining_with_nothing_share_one_encoding_while_it_is_queued() {
        let (room, _rx) = room();
        let source = Doc::new();
        room.apply_committed(1, 1, &edit("hello", 0, &source), None);
        let empty = StateVector::default();
        let first = room.sync_step2_for(&empty);
        let second = room.sync_step2_for(&empty);
        assert_eq!(first.as_ptr(), second.as_ptr(), "one encoding, shared");
        // A client that has something gets its own diff.
        let partial = room.sync_step2_for(&source.transact().state_vector());
        assert_ne!(partial, first);
        // Nobody holds it any more: encoded again (and nothing kept meanwhile).
        drop((first, second));
        let again = room.sync_step2_for(&empty);
        // A new version is a new encoding even while the old one is held.
        room.apply_committed(2, 2, &edit(" world", 5, &source), None);
        let newer = room.sync_step2_for(&empty);
        assert_ne!(newer.as_ptr(), again.as_ptr());
        let replica = Doc::new();
        let frames = collab_sync::decode_frame(&newer).unwrap();
        let yrs::sync::Message::Sync(yrs::sync::SyncMessage::SyncStep2(update)) = &frames[0] else {
            panic!("a sync step 2: {frames:?}")
        };
        replica
            .transact_mut()
            .apply_update(Update::decode_v1(update).unwrap())
            .unwrap();
        let root = replica.get_or_insert_text("text");
        assert_eq!(root.get_string(&replica.transact()), "hello world");
    }
}
