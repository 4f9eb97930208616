//! Edit bursts: one actor's consecutive edits to one document with no pause longer than a
//! gap. The audit trail and the document history both show edits this way; each keeps its
//! own table and decides what a burst's row says.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use collab_domain::RecordedEvent;
use sqlx::PgConnection;
use uuid::Uuid;

/// A burst is keyed by document and actor.
pub(crate) type BurstKey = (Uuid, String);

/// One actor's burst of edits on one document.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
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

/// A stored open burst with its key, as [`Bursts::preload`]'s query returns it.
#[derive(sqlx::FromRow)]
struct Stored {
    document_id: Uuid,
    actor: String,
    #[sqlx(flatten)]
    burst: Burst,
}

/// The bursts a page of events touches, kept in memory until written. The caller loads
/// the stored open bursts of every key the page edits ([`Bursts::preload`], one query)
/// before recording its edits, and writes [`Bursts::drain`] (once per page, or more
/// often: open bursts stay known after a drain, as just written).
pub(crate) struct Bursts {
    gap: chrono::Duration,
    open: HashMap<BurstKey, Burst>,
    /// Bursts closed since the last drain, still to be written.
    closed: Vec<(BurstKey, Burst)>,
    /// Keys whose stored open burst has been looked up.
    loaded: HashSet<BurstKey>,
    /// Keys whose open burst changed since the last drain.
    touched: HashSet<BurstKey>,
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
            touched: HashSet::new(),
            ended: HashSet::new(),
        }
    }

    /// Looks up, in one query, the stored open bursts of the keys not looked up yet.
    /// `query` takes the documents (`$1 uuid[]`) and actors (`$2 text[]`), pairwise, and
    /// returns each stored open burst's `document_id`, `actor` and [`Burst`] columns.
    pub(crate) async fn preload(
        &mut self,
        conn: &mut PgConnection,
        query: &str,
        keys: impl IntoIterator<Item = BurstKey>,
    ) -> Result<(), sqlx::Error> {
        let (mut documents, mut actors) = (vec![], vec![]);
        for key in keys {
            if self.loaded.insert(key.clone()) {
                documents.push(key.0);
                actors.push(key.1);
            }
        }
        if documents.is_empty() {
            return Ok(());
        }
        let stored: Vec<Stored> = sqlx::query_as(query)
            .bind(documents)
            .bind(actors)
            .fetch_all(conn)
            .await?;
        for row in stored {
            self.open.insert((row.document_id, row.actor), row.burst);
        }
        Ok(())
    }

    /// An edit extends its actor's open burst on the document, or opens one.
    pub(crate) fn edit(
        &mut self,
        key: BurstKey,
        event: &RecordedEvent,
        inserted: i64,
        deleted: i64,
    ) {
        debug_assert!(self.loaded.contains(&key), "edit of a burst not preloaded");
        let at = event.metadata.recorded_at;
        self.ended.remove(&key);
        self.touched.insert(key.clone());
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

    /// Every burst closed or changed since the last drain, each with whether it is still
    /// open, and the keys whose burst was ended with none open now.
    pub(crate) fn drain(&mut self) -> (Vec<(BurstKey, Burst, bool)>, Vec<BurstKey>) {
        let mut all: Vec<_> = self.closed.drain(..).map(|(k, b)| (k, b, false)).collect();
        for key in self.touched.drain() {
            if let Some(burst) = self.open.get(&key) {
                all.push((key, *burst, true));
            }
        }
        (all, self.ended.drain().collect())
    }
}

/// Stores which burst is open per document and actor, in one upsert into `table` (the
/// audit trail's and the history's tables of open bursts have the same columns).
pub(crate) async fn write_open(
    conn: &mut PgConnection,
    table: &str,
    open: impl IntoIterator<Item = (BurstKey, Burst)>,
) -> Result<(), sqlx::Error> {
    let (mut documents, mut actors, mut workspaces, mut positions, mut last_at) =
        (vec![], vec![], vec![], vec![], vec![]);
    for ((document, actor), burst) in open {
        documents.push(document);
        actors.push(actor);
        workspaces.push(burst.workspace);
        positions.push(burst.entry_position);
        last_at.push(burst.last_at);
    }
    if documents.is_empty() {
        return Ok(());
    }
    sqlx::query(&format!(
        "INSERT INTO {table} (document_id, actor, workspace_id, entry_position, last_at) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], \
         $5::timestamptz[]) \
         ON CONFLICT (document_id, actor) DO UPDATE \
         SET entry_position = excluded.entry_position, last_at = excluded.last_at"
    ))
    .bind(documents)
    .bind(actors)
    .bind(workspaces)
    .bind(positions)
    .bind(last_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Bursts as columns, bound as arrays by the upserts of their entries (each read model
/// binds the ones its table has).
#[derive(Default)]
pub(crate) struct BurstColumns {
    pub document: Vec<Uuid>,
    pub position: Vec<i64>,
    pub workspace: Vec<Uuid>,
    pub actor: Vec<String>,
    pub last_position: Vec<i64>,
    pub first_version: Vec<i64>,
    pub last_version: Vec<i64>,
    pub edits: Vec<i32>,
    pub inserted: Vec<i64>,
    pub deleted: Vec<i64>,
    pub started_at: Vec<DateTime<Utc>>,
    pub last_at: Vec<DateTime<Utc>>,
}

impl BurstColumns {
    pub(crate) fn push(&mut self, (document, actor): &BurstKey, burst: &Burst) {
        self.document.push(*document);
        self.position.push(burst.entry_position);
        self.workspace.push(burst.workspace);
        self.actor.push(actor.clone());
        self.last_position.push(burst.last_position);
        self.first_version.push(burst.first_version);
        self.last_version.push(burst.last_version);
        self.edits.push(burst.edits);
        self.inserted.push(burst.inserted);
        self.deleted.push(burst.deleted);
        self.started_at.push(burst.started_at);
        self.last_at.push(burst.last_at);
    }
}
