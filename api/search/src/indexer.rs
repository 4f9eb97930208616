//! Following the log into the index. Every instance that serves search runs one indexer
//! over its own index: it reads the document, content and comment-thread events after its
//! checkpoint, marks their documents (or threads) stale, and re-indexes a stale document
//! from its current state — at most once per `refresh` while it is being edited, not on
//! every keystroke. Each live comment is an entry of its own (kind `comment`), carrying
//! its document's workspace, folder and creator so the same scope filters apply; a
//! thread's entries are remade from the `comments` read model once it has folded the
//! thread's events, and a document's metadata change remakes its comments' entries too.
//!
//! A document's entry is made from its row in the `documents` read model (title, folder,
//! workspace, archived) and its content at the head of the log (the history read model's
//! snapshot plus the updates after it): a function of the log alone, so a rebuild gives
//! the same entries. A document whose metadata events the `documents` read model has not
//! folded yet waits for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use collab_domain::{StreamCategory, StreamId};
use collab_projections::history::{document_at, Point};
use collab_store::{AppendSignal, EventLog};
use sqlx::PgPool;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{IndexWriter, TantivyDocument, Term};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::index::{Checkpoint, Fields, SearchIndex, FORMAT};
use crate::SearchError;

/// How the indexer paces itself.
#[derive(Debug, Clone, Copy)]
pub struct IndexerConfig {
    /// A document being edited is re-indexed at most once per this.
    pub refresh: Duration,
    /// Documents re-indexed per round.
    pub batch: usize,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_millis(1000),
            batch: 256,
        }
    }
}

/// Events read per query while following the log.
const PAGE: i64 = 2000;
/// Commit at least this often while there is work (a long refill shows progress and a
/// restart does not lose it).
const COMMIT_EVERY: Duration = Duration::from_secs(2);

/// What an event makes stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Document(Uuid),
    Thread(Uuid),
}

/// Unindexed events of a document or thread.
#[derive(Debug, Clone, Copy)]
struct Stale {
    /// The first of them: the checkpoint stays before it until the target is indexed.
    first: i64,
    /// The last metadata event (document category; for a thread, any of its events): the
    /// read model the entry is made from (`documents`, `comments`) must have folded it
    /// before the entry is made.
    last_metadata: i64,
}

/// The log identity an index checkpoint names.
async fn log_identity(pool: &PgPool) -> Result<String, SearchError> {
    let first: Option<Uuid> = sqlx::query_scalar("SELECT event_id FROM events WHERE position = 1")
        .fetch_optional(pool)
        .await?;
    Ok(first.map_or_else(|| "empty".to_owned(), |id| id.to_string()))
}

/// The id of the event at `position` (None: position 0, or no such event any more).
async fn event_at(pool: &PgPool, position: i64) -> Result<Option<String>, SearchError> {
    let id: Option<Uuid> = sqlx::query_scalar("SELECT event_id FROM events WHERE position = $1")
        .bind(position)
        .fetch_optional(pool)
        .await?;
    Ok(id.map(|id| id.to_string()))
}

async fn read_model_checkpoint(pool: &PgPool, name: &str) -> Result<i64, SearchError> {
    Ok(collab_projections::checkpoint::position(pool, name).await?)
}

/// A live comment with what its entry shows of its document.
#[derive(sqlx::FromRow)]
struct CommentRow {
    comment_id: Uuid,
    thread_id: Uuid,
    body: String,
    updated_at: DateTime<Utc>,
    document_id: Uuid,
    workspace_id: Uuid,
    title: String,
    folder: String,
    created_by: String,
}

fn term_query(field: tantivy::schema::Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

#[derive(sqlx::FromRow)]
struct DocumentRow {
    document_id: Uuid,
    workspace_id: Uuid,
    title: String,
    folder: String,
    archived: bool,
    created_by: String,
    updated_at: DateTime<Utc>,
}

/// One document's entry, or its removal (deleted, archived).
enum Entry {
    Put(Box<TantivyDocument>),
    Remove,
}

pub struct Indexer {
    index: Arc<SearchIndex>,
    writer: IndexWriter,
    pool: PgPool,
    config: IndexerConfig,
    log: String,
    /// Events read up to here.
    read_to: i64,
    stale: HashMap<Target, Stale>,
    /// When each recently indexed target was indexed (for the refresh interval).
    indexed_at: HashMap<Target, Instant>,
    uncommitted: bool,
    last_commit: Instant,
    reflected: watch::Sender<i64>,
}

impl Indexer {
    /// Opens the writer and resumes from the index's checkpoint; an index of another log
    /// or format is emptied first.
    pub async fn start(
        index: Arc<SearchIndex>,
        pool: PgPool,
        config: IndexerConfig,
        reflected: watch::Sender<i64>,
    ) -> Result<Self, SearchError> {
        let writer = index.writer()?;
        let log = log_identity(&pool).await?;
        let read_to = match index.checkpoint()? {
            Some(c) if c.log == log && event_at(&pool, c.position).await? == c.event => c.position,
            other => {
                if other.is_some() {
                    info!("the search index was made from another log (or one since restored to an earlier point): refilling it");
                }
                writer.delete_all_documents()?;
                0
            }
        };
        reflected.send_replace(read_to);
        Ok(Self {
            index,
            writer,
            pool,
            config,
            log,
            read_to,
            stale: HashMap::new(),
            indexed_at: HashMap::new(),
            uncommitted: read_to == 0,
            last_commit: Instant::now(),
            reflected,
        })
    }

    /// Follows the log until `stop` (waking at each append `signal` announces), then
    /// commits what it has.
    pub async fn run(mut self, mut signal: AppendSignal, stop: CancellationToken) {
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            match self.step().await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures += 1;
                    warn!(%error, "search indexer: a round failed; retrying");
                    metrics::counter!("collab_search_index_failures_total").increment(1);
                    let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.cancelled() => {}
                    }
                    continue;
                }
            }
            if self.stale.is_empty() {
                signal.wait(&stop).await;
            } else {
                // Stale documents wait for their refresh or for the documents read model.
                tokio::select! {
                    _ = tokio::time::sleep(self.config.refresh / 8) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
        if let Err(error) = self.commit().await {
            warn!(%error, "search indexer: the last commit failed");
        }
    }

    /// Indexes everything up to the log's head as it is now, then commits; `progress`
    /// hears (position reflected, head). For `collab search rebuild`.
    pub async fn catch_up(&mut self, progress: impl Fn(i64, i64)) -> Result<i64, SearchError> {
        let head = EventLog::head(&self.pool).await?;
        let mut last_progress = (self.position(), Instant::now());
        loop {
            self.step().await?;
            let position = self.position();
            progress(position, head);
            // Everything up to the head as it was when the rebuild began (later edits,
            // from instances still running, are the server's to index).
            if position >= head {
                break;
            }
            if position > last_progress.0 {
                last_progress = (position, Instant::now());
            } else if last_progress.1.elapsed() > Duration::from_secs(30) {
                return Err(SearchError::Directory(format!(
                    "no progress for 30 s at position {position}: the documents read model \
                     is at {}; start the projector role or run `collab projections rebuild documents`",
                    read_model_checkpoint(&self.pool, "documents").await?
                )));
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.commit().await?;
        Ok(self.position())
    }

    /// One round: read the new events, re-index the documents that are due, commit.
    pub async fn step(&mut self) -> Result<(), SearchError> {
        self.read_events().await?;
        let documents_at = read_model_checkpoint(&self.pool, "documents").await?;
        let comments_at = read_model_checkpoint(&self.pool, "comments").await?;
        let now = Instant::now();
        let refresh = self.config.refresh;
        self.indexed_at
            .retain(|_, at| now.duration_since(*at) < refresh);
        let mut due: Vec<(Target, Stale)> = self
            .stale
            .iter()
            .filter(|(target, stale)| {
                let folded = match target {
                    Target::Document(_) => documents_at,
                    Target::Thread(_) => comments_at,
                };
                stale.last_metadata <= folded && !self.indexed_at.contains_key(target)
            })
            .map(|(target, stale)| (*target, *stale))
            .collect();
        due.sort_by_key(|(_, stale)| stale.first);
        due.truncate(self.config.batch);
        if !due.is_empty() {
            let f = self.index.fields;
            let mut documents = vec![];
            let mut renamed = vec![];
            let mut threads = vec![];
            for (target, stale) in &due {
                match target {
                    Target::Document(id) => {
                        documents.push(*id);
                        if stale.last_metadata > 0 {
                            renamed.push(*id);
                        }
                    }
                    Target::Thread(id) => threads.push(*id),
                }
            }
            // Only documents with comments have comment entries to remake (a refill of
            // a large log would otherwise queue a delete for every document).
            let renamed: Vec<Uuid> = if renamed.is_empty() {
                renamed
            } else {
                sqlx::query_scalar(
                    "SELECT DISTINCT document_id FROM rm_comments WHERE document_id = ANY($1)",
                )
                .bind(&renamed)
                .fetch_all(&self.pool)
                .await?
            };
            for (id, entry) in self.entries(&documents).await? {
                self.writer
                    .delete_term(Term::from_field_text(f.key, &key(id)));
                if let Entry::Put(doc) = entry {
                    self.writer.add_document(*doc)?;
                }
            }
            // Comments: each thread's entries, and every comment of a document whose
            // title, folder or life changed, deleted and made again from the read models.
            for thread in &threads {
                self.writer
                    .delete_term(Term::from_field_text(f.thread, &thread.to_string()));
            }
            for document in &renamed {
                self.writer.delete_query(Box::new(BooleanQuery::new(vec![
                    (Occur::Must, term_query(f.kind, "comment")),
                    (Occur::Must, term_query(f.document, &document.to_string())),
                ])))?;
            }
            for comment in self.comment_entries(&threads, &renamed).await? {
                self.writer.add_document(comment)?;
            }
            for (target, _) in &due {
                self.stale.remove(target);
                self.indexed_at.insert(*target, now);
            }
            metrics::counter!("collab_search_documents_indexed_total")
                .increment(documents.len() as u64);
            self.uncommitted = true;
        }
        let position = self.position();
        let behind_refresh = !self.stale.is_empty();
        if self.uncommitted && (!behind_refresh || self.last_commit.elapsed() >= COMMIT_EVERY) {
            self.commit().await?;
        } else if !self.uncommitted && position > *self.reflected.borrow() {
            // Nothing of these events changed an entry: the index reflects them as it is.
            self.reflected.send_replace(position);
        }
        Ok(())
    }

    /// Drops every entry: the next rounds refill the index from the start of the log.
    pub fn empty(&mut self) -> Result<(), SearchError> {
        self.writer.delete_all_documents()?;
        self.read_to = 0;
        self.stale.clear();
        self.indexed_at.clear();
        self.uncommitted = true;
        Ok(())
    }

    /// Every event up to here is reflected once committed: up to the first event of a
    /// document still stale.
    fn position(&self) -> i64 {
        self.stale
            .values()
            .map(|s| s.first - 1)
            .min()
            .unwrap_or(self.read_to)
            .min(self.read_to)
    }

    async fn commit(&mut self) -> Result<(), SearchError> {
        let position = self.position();
        let checkpoint = Checkpoint {
            format: FORMAT,
            log: self.log.clone(),
            event: event_at(&self.pool, position).await?,
            position,
        };
        let started = Instant::now();
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&serde_json::to_string(&checkpoint).expect("serialisable"));
        prepared.commit()?;
        self.index.reader.reload()?;
        self.uncommitted = false;
        self.last_commit = Instant::now();
        self.reflected.send_replace(position);
        metrics::histogram!("collab_search_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::gauge!("collab_search_position").set(position as f64);
        debug!(position, stale = self.stale.len(), "search index committed");
        Ok(())
    }

    async fn read_events(&mut self) -> Result<(), SearchError> {
        let head = EventLog::head(&self.pool).await?;
        if self.read_to == 0 && head > 0 && self.log == "empty" {
            // The log's first event arrived since start: it names the log from now on.
            self.log = log_identity(&self.pool).await?;
        }
        while self.read_to < head {
            // Which streams changed, not what: the entries are read from their sources.
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT position, stream_id FROM events WHERE stream_category = ANY($1) \
                 AND position > $2 AND position <= $3 ORDER BY position LIMIT $4",
            )
            .bind([
                StreamCategory::Document.as_str(),
                StreamCategory::Content.as_str(),
                StreamCategory::Thread.as_str(),
            ])
            .bind(self.read_to)
            .bind(head)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let full = rows.len() as i64 == PAGE;
            for (position, stream) in &rows {
                let stream: StreamId = stream.parse().map_err(|_| {
                    SearchError::Directory(format!("unreadable stream id {stream} in the log"))
                })?;
                let target = match stream.category {
                    StreamCategory::Thread => Target::Thread(stream.id),
                    _ => Target::Document(stream.id),
                };
                let stale = self.stale.entry(target).or_insert(Stale {
                    first: *position,
                    last_metadata: 0,
                });
                if matches!(
                    stream.category,
                    StreamCategory::Document | StreamCategory::Thread
                ) {
                    stale.last_metadata = *position;
                }
            }
            self.read_to = match rows.last() {
                Some((last, _)) if full => *last,
                _ => head,
            };
        }
        metrics::gauge!("collab_search_stale_documents").set(self.stale.len() as f64);
        Ok(())
    }

    /// The entries of `ids` as of now.
    async fn entries(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Entry)>, SearchError> {
        let rows: Vec<DocumentRow> = sqlx::query_as(
            "SELECT document_id, workspace_id, title, folder, archived, created_by, updated_at \
             FROM rm_documents WHERE document_id = ANY($1)",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut rows: HashMap<Uuid, DocumentRow> =
            rows.into_iter().map(|r| (r.document_id, r)).collect();
        // Each live document at the head of the log, read first; then all of their text
        // in one blocking task (CPU work, off the async workers), not one task each.
        let mut conn = self.pool.acquire().await?;
        let mut read = Vec::with_capacity(ids.len());
        for id in ids {
            let content = match rows.remove(id) {
                Some(row) if !row.archived => {
                    Some((row, document_at(&mut conn, *id, Point::Head).await?))
                }
                // Deleted (no row) or archived: not searchable.
                _ => None,
            };
            read.push((*id, content));
        }
        let fields = self.index.fields;
        tokio::task::spawn_blocking(move || {
            read.into_iter()
                .map(|(id, content)| match content {
                    Some((row, at)) => {
                        let body =
                            collab_live::history::searchable_text(&at.doc, MAX_INDEXED_TEXT_BYTES);
                        let updated = at
                            .recorded_at
                            .map_or(row.updated_at, |t| t.max(row.updated_at));
                        (
                            id,
                            Entry::Put(Box::new(entry(&fields, &row, &body, updated))),
                        )
                    }
                    None => (id, Entry::Remove),
                })
                .collect()
        })
        .await
        .map_err(|e| SearchError::Directory(format!("indexing task: {e}")))
    }
}

impl Indexer {
    /// The entries of the live comments of `threads` and of `documents` (comments of
    /// archived or deleted documents have none).
    async fn comment_entries(
        &self,
        threads: &[Uuid],
        documents: &[Uuid],
    ) -> Result<Vec<TantivyDocument>, SearchError> {
        if threads.is_empty() && documents.is_empty() {
            return Ok(vec![]);
        }
        let rows: Vec<CommentRow> = sqlx::query_as(
            "SELECT c.comment_id, c.thread_id, c.body, \
                    coalesce(c.edited_at, c.created_at) AS updated_at, d.document_id, \
                    d.workspace_id, d.title, d.folder, d.created_by \
             FROM rm_comments c JOIN rm_documents d ON d.document_id = c.document_id \
             WHERE c.body IS NOT NULL AND NOT d.archived \
               AND (c.thread_id = ANY($1) OR c.document_id = ANY($2))",
        )
        .bind(threads)
        .bind(documents)
        .fetch_all(&self.pool)
        .await?;
        let f = self.index.fields;
        Ok(rows.iter().map(|row| comment_entry(&f, row)).collect())
    }
}

fn comment_entry(f: &Fields, row: &CommentRow) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.key, format!("comment:{}", row.comment_id));
    doc.add_text(f.kind, "comment");
    doc.add_text(f.workspace, row.workspace_id.to_string());
    doc.add_text(f.document, row.document_id.to_string());
    for folder in folder_and_ancestors(&row.folder) {
        doc.add_text(f.folders, folder);
    }
    doc.add_text(f.folder, &row.folder);
    // The document's creator: the scope that lets people see the documents they created
    // lets them see those documents' comments.
    doc.add_text(f.creator, &row.created_by);
    // Shown, not searched: a word of the title finds the document, not its comments.
    doc.add_text(f.document_title, &row.title);
    doc.add_text(f.body, &row.body);
    doc.add_text(f.pairs, &row.body);
    doc.add_text(f.thread, row.thread_id.to_string());
    doc.add_text(f.comment, row.comment_id.to_string());
    doc.add_i64(f.updated, row.updated_at.timestamp_micros());
    doc
}

pub(crate) fn key(document: Uuid) -> String {
    format!("document:{document}")
}

/// `/a/b` → `/`, `/a`, `/a/b`.
pub(crate) fn folder_and_ancestors(folder: &str) -> Vec<String> {
    let mut out = vec!["/".to_owned()];
    let mut path = String::new();
    for segment in folder.split('/').filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(segment);
        out.push(path.clone());
    }
    out
}

/// A document's text is indexed up to this many bytes (its title and its comments always
/// whole). Indexing costs several times the text in memory at once — 300 MB for a
/// document flooded to 41 MB (RELIABILITY.md) — and a search hit in the middle of a
/// book-length document helps nobody much; the first mebibyte is a long report's worth.
pub const MAX_INDEXED_TEXT_BYTES: usize = 1 << 20;

fn entry(f: &Fields, row: &DocumentRow, body: &str, updated: DateTime<Utc>) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_text(f.key, key(row.document_id));
    doc.add_text(f.kind, "document");
    doc.add_text(f.workspace, row.workspace_id.to_string());
    doc.add_text(f.document, row.document_id.to_string());
    for folder in folder_and_ancestors(&row.folder) {
        doc.add_text(f.folders, folder);
    }
    doc.add_text(f.folder, &row.folder);
    doc.add_text(f.creator, &row.created_by);
    doc.add_text(f.title, &row.title);
    doc.add_text(f.body, body);
    doc.add_text(f.pairs, body);
    doc.add_i64(f.updated, updated.timestamp_micros());
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_filter_by_every_ancestor() {
        assert_eq!(folder_and_ancestors("/"), vec!["/"]);
        assert_eq!(folder_and_ancestors("/a/b"), vec!["/", "/a", "/a/b"]);
    }
}
