//! Edit bursts: one actor's consecutive edits to one document with no pause longer than a
//! gap. The audit trail and the document history both show edits this way; each keeps its
//! own table and decides what a burst's row says.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use collab_domain::RecordedEvent;
use uuid::Uuid;

/// A burst is keyed by document and actor.
pub(crate) type BurstKey = (Uuid, String);

/// One actor's burst of edits on one document.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct Burst {
    pub workspace: Uuid,
    /// Position of its first edit: the key of its row.
    pub entry_position: i64,
    pub started_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub last_position: i64,
    pub first_version: i64,
    pub last_version: i64,
    pub edits: i32,
    /// Yjs clock units inserted and deleted (characters, for text).
    pub inserted: i64,
    pub deleted: i64,
}

/// The bursts a page of events touches, kept in memory until written. The caller loads a
/// burst it does not know yet ([`Bursts::knows`], [`Bursts::load`]) before recording an
/// edit of it, and writes [`Bursts::drain`] once per page.
pub(crate) struct Bursts {
    gap: chrono::Duration,
    open: HashMap<BurstKey, Burst>,
    /// Bursts closed within this page, still to be written.
    closed: Vec<(BurstKey, Burst)>,
    /// Keys whose stored open burst was looked up in this page.
    loaded: HashSet<BurstKey>,
    /// Keys whose open burst [`Bursts::end`] ended, with none opened since.
    ended: HashSet<BurstKey>,
}

impl Bursts {
    pub(crate) fn new(gap: Duration) -> Self {
        Self {
            gap: chrono::Duration::from_std(gap).unwrap_or(chrono::Duration::MAX),
            open: HashMap::new(),
            closed: vec![],
            loaded: HashSet::new(),
            ended: HashSet::new(),
        }
    }

    pub(crate) fn knows(&self, key: &BurstKey) -> bool {
        self.loaded.contains(key)
    }

    /// The stored open burst of `key` (or none), before its first edit in this page.
    pub(crate) fn load(&mut self, key: BurstKey, burst: Option<Burst>) {
        if let Some(burst) = burst {
            self.open.insert(key.clone(), burst);
        }
        self.loaded.insert(key);
    }

    /// An edit extends its actor's open burst on the document, or opens one.
    pub(crate) fn edit(
        &mut self,
        key: BurstKey,
        event: &RecordedEvent,
        inserted: i64,
        deleted: i64,
    ) {
        let at = event.metadata.recorded_at;
        self.ended.remove(&key);
        match self.open.get_mut(&key) {
            Some(burst) if at - burst.last_at <= self.gap => {
                burst.edits += 1;
                burst.last_at = at;
                burst.last_position = event.position;
                burst.last_version = event.stream_version;
                burst.inserted += inserted;
                burst.deleted += deleted;
            }
            _ => {
                let fresh = Burst {
                    workspace: event.metadata.workspace_id.as_uuid(),
                    entry_position: event.position,
                    started_at: at,
                    last_at: at,
                    last_position: event.position,
                    first_version: event.stream_version,
                    last_version: event.stream_version,
                    edits: 1,
                    inserted,
                    deleted,
                };
                if let Some(old) = self.open.insert(key.clone(), fresh) {
                    self.closed.push((key, old));
                }
            }
        }
    }

    /// Ends `key`'s open burst: its next edit opens a new one.
    pub(crate) fn end(&mut self, key: BurstKey) {
        if let Some(old) = self.open.remove(&key) {
            self.closed.push((key.clone(), old));
        }
        self.ended.insert(key);
    }

    /// Every burst touched so far, each with whether it is still open, and the keys
    /// whose burst was ended with none open now; then forgets everything.
    pub(crate) fn drain(&mut self) -> (Vec<(BurstKey, Burst, bool)>, Vec<BurstKey>) {
        let mut all: Vec<_> = self.closed.drain(..).map(|(k, b)| (k, b, false)).collect();
        all.extend(self.open.drain().map(|(k, b)| (k, b, true)));
        self.loaded.clear();
        (all, self.ended.drain().collect())
    }
}
