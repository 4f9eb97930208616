//! Full-text search over documents (and comments, once they exist): an embedded tantivy
//! index that every instance serving search keeps for itself, fed from the log by its
//! own indexer ([`indexer`]), rebuildable from the log to the same entries. Queries take
//! web-search syntax ([`query`]); what a caller may read is a filter of every query
//! ([`search::Scope`]), decided from the read models at query time — a share or an
//! unshare counts at once, without touching the index.

pub mod index;
pub mod indexer;
pub mod pairs;
pub mod query;
pub mod search;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use collab_store::Appends;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use index::SearchIndex;
pub use indexer::{Indexer, IndexerConfig};
pub use search::{Hit, Kind, Piece, Request, Results, Scope};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Directory(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] collab_store::StoreError),
    #[error("reading a document: {0}")]
    Projection(#[from] collab_projections::ProjectionError),
}

/// Where the index lives and how fresh it is kept.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// The index directory (each instance its own); None: in memory, refilled from the
    /// log at every start.
    pub dir: Option<PathBuf>,
    pub indexer: IndexerConfig,
}

/// This instance's search: the index, and the log position it reflects.
#[derive(Clone)]
pub struct Search {
    index: Arc<SearchIndex>,
    reflected: watch::Receiver<i64>,
}

impl Search {
    /// Opens the index and starts its indexer (stopped by `stop`).
    pub async fn start(
        config: &SearchConfig,
        pool: PgPool,
        appends: &Appends,
        stop: CancellationToken,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), SearchError> {
        let index = Arc::new(SearchIndex::open(config.dir.as_deref())?);
        let (sender, reflected) = watch::channel(0);
        let indexer = Indexer::start(index.clone(), pool, config.indexer, sender).await?;
        let signal = appends.signal(Duration::from_secs(1));
        let task = tokio::spawn(indexer.run(signal, stop));
        Ok((Self { index, reflected }, task))
    }

    /// The log position every change up to which the index reflects.
    pub fn position(&self) -> i64 {
        *self.reflected.borrow()
    }

    /// Waits (at most `timeout`) until the index reflects `position`; false if it did not.
    pub async fn reach(&self, position: i64, timeout: Duration) -> bool {
        let mut reflected = self.reflected.clone();
        tokio::time::timeout(timeout, reflected.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Runs a query (CPU work: off the async workers).
    pub async fn search(&self, request: Request) -> Result<Results, SearchError> {
        let index = self.index.clone();
        let started = std::time::Instant::now();
        let results = tokio::task::spawn_blocking(move || index.search(&request))
            .await
            .map_err(|e| SearchError::Directory(format!("search task: {e}")))?;
        metrics::histogram!("collab_search_query_seconds").record(started.elapsed().as_secs_f64());
        results
    }

    pub fn index(&self) -> &SearchIndex {
        &self.index
    }
}

/// Makes the index in `dir` anew from the log (the directory must not be in use by a
/// running server); returns the position it reflects.
pub async fn rebuild(
    dir: &std::path::Path,
    pool: PgPool,
    progress: impl Fn(i64, i64),
) -> Result<i64, SearchError> {
    let index = Arc::new(SearchIndex::open(Some(dir))?);
    let (sender, _) = watch::channel(0);
    let mut indexer = Indexer::start(index.clone(), pool, IndexerConfig::default(), sender).await?;
    indexer.empty()?;
    indexer.catch_up(progress).await
}
