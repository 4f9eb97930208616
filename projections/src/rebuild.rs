//! Rebuilding read models from the Postgres log, position 0 onwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use collab_domain::{RecordedEvent, StreamCategory};
use collab_store::EventLog;
use futures::future::try_join_all;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::mpsc;
use tracing::{info, instrument};

use crate::checkpoint;
use crate::read_model::{ProjectionError, ReadModel};

/// Events read from the log per query; every read model folds the page's events of its
/// categories in one `apply_batch`.
const PAGE: i64 = 5000;

/// Pages read ahead of the slowest read model.
const READ_AHEAD: usize = 2;

/// Empties read models' tables and folds the whole log into them, each in one transaction:
/// readers keep seeing the old read model until the new one is complete, and its live
/// consumer (blocked on the checkpoint row meanwhile) resumes after the rebuilt position.
///
/// Several read models are rebuilt from one read of the log: a reader pages through the
/// events of every category any of them folds and hands each page to every read model's
/// task, so they fold side by side (a Postgres backend each) instead of one after
/// another, each reading the log again. `progress(name, position, head)` is called as a
/// read model finishes a page. Fails as a whole if any read model fails: the others roll
/// back.
pub async fn rebuild(
    pool: &PgPool,
    models: &[Arc<dyn ReadModel>],
    progress: impl Fn(&str, i64, i64) + Send + Sync + 'static,
) -> Result<Rebuilt, ProjectionError> {
    let progress = Arc::new(progress);
    // Every transaction first (each locks its checkpoint and empties its tables), then the
    // head: everything up to it is committed (positions follow commit order).
    let mut connections = Vec::with_capacity(models.len());
    for model in models {
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        sqlx::query("BEGIN").execute(&mut conn).await?;
        prepare(&mut conn, model.as_ref()).await?;
        connections.push(conn);
    }
    let head = EventLog::head(pool).await?;
    let mut categories: Vec<StreamCategory> = Vec::new();
    for category in models.iter().flat_map(|m| m.categories()) {
        if !categories.contains(category) {
            categories.push(*category);
        }
    }
    let mut senders = Vec::with_capacity(models.len());
    let mut folds = Vec::with_capacity(models.len());
    for (model, conn) in models.iter().cloned().zip(connections) {
        let (sender, pages) = mpsc::channel(READ_AHEAD);
        senders.push(sender);
        let progress = progress.clone();
        folds.push(tokio::spawn(fold(model, conn, pages, head, progress)));
    }
    let read = async {
        let mut position = 0;
        while position < head {
            let events =
                EventLog::read_categories(pool, &categories, position, head + 1, PAGE).await?;
            position = events.last().map_or(head, |e| e.position);
            let page: Arc<[RecordedEvent]> = events.into();
            for sender in &senders {
                // A closed channel is a fold that failed: its error is reported below.
                if sender
                    .send(Page::Events(page.clone(), position))
                    .await
                    .is_err()
                {
                    return Ok(false);
                }
            }
        }
        for sender in &senders {
            if sender.send(Page::End).await.is_err() {
                return Ok(false);
            }
        }
        Ok::<_, ProjectionError>(true)
    };
    let read = read.await;
    // Without `Page::End` (the read failed or a fold did), every fold rolls back.
    drop(senders);
    let folding = try_join_all(folds.into_iter().map(|fold| async move {
        fold.await
            .map_err(|e| ProjectionError::Corrupt(format!("a rebuild task failed: {e}")))?
    }))
    .await?;
    read?;
    Ok(Rebuilt {
        position: head,
        folding: models.iter().map(|m| m.name()).zip(folding).collect(),
    })
}

/// What [`rebuild`] did.
#[derive(Debug)]
pub struct Rebuilt {
    /// The position every read model now stands at (the head when it started).
    pub position: i64,
    /// Each read model's time spent folding (its own work, not waiting for pages).
    pub folding: Vec<(&'static str, Duration)>,
}

enum Page {
    /// Events in position order, and the position the log has been read to.
    Events(Arc<[RecordedEvent]>, i64),
    /// The log has been read to the head: commit.
    End,
}

/// One read model's side of [`rebuild`]: folds the pages of its categories and commits at
/// `Page::End` (dropping the connection without it rolls the transaction back).
async fn fold(
    model: Arc<dyn ReadModel>,
    mut conn: PgConnection,
    mut pages: mpsc::Receiver<Page>,
    head: i64,
    progress: Arc<impl Fn(&str, i64, i64) + Send + Sync + 'static>,
) -> Result<Duration, ProjectionError> {
    let mine = model.categories();
    let mut folding = Duration::ZERO;
    let every = StreamCategory::ALL.iter().all(|c| mine.contains(c));
    while let Some(page) = pages.recv().await {
        let (page, position) = match page {
            Page::Events(page, position) => (page, position),
            Page::End => {
                checkpoint::save(&mut conn, model.name(), head).await?;
                sqlx::query("COMMIT").execute(&mut conn).await?;
                info!(
                    read_model = model.name(),
                    position = head,
                    "read model rebuilt"
                );
                return Ok(folding);
            }
        };
        let started = Instant::now();
        // The page as it is when every event is of the read model's categories (no copy of
        // the events it would fold anyway: copies were a seventh of a rebuild's own CPU).
        if page.is_empty() {
            // The log's tail held none of the categories any read model folds.
        } else if every || page.iter().all(|e| mine.contains(&e.stream_id.category)) {
            model.apply_batch(&mut conn, &page).await?;
        } else {
            let events: Vec<RecordedEvent> = page
                .iter()
                .filter(|e| mine.contains(&e.stream_id.category))
                .cloned()
                .collect();
            if !events.is_empty() {
                model.apply_batch(&mut conn, &events).await?;
            }
        }
        folding += started.elapsed();
        progress(model.name(), position, head);
    }
    Err(ProjectionError::Corrupt(format!(
        "the rebuild of {} stopped before the head: another read model's failed",
        model.name()
    )))
}

/// Locks the read model's checkpoint, empties its tables (DELETE, not TRUNCATE: TRUNCATE
/// would lock readers out until commit).
#[instrument(skip_all, fields(read_model = model.name()))]
async fn prepare(conn: &mut PgConnection, model: &dyn ReadModel) -> Result<(), ProjectionError> {
    checkpoint::lock(conn, model.name()).await?;
    for table in model.tables() {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
