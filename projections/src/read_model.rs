//! What a read model is: a type that names itself, the stream categories it consumes,
//! the tables it owns, and how it folds one event into them. Everything else — the
//! durable consumer, the checkpoint in the read model's own transaction, gap reads from
//! the log, rebuilds, lag — is the runtime's, generic over this trait.

use async_trait::async_trait;
use collab_domain::{RecordedEvent, StreamCategory, UnknownEvent};
use collab_store::{EventLog, StoreError};
use sqlx::PgConnection;

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    UnknownEvent(#[from] UnknownEvent),
    /// Stored state the read model wrote cannot be read back.
    #[error("{0}")]
    Corrupt(String),
}

/// A read model: Postgres tables folded from the log.
///
/// `apply` runs inside the transaction that also moves the checkpoint, so a fold is
/// all-or-nothing and a redelivered event is never folded twice. It must take every
/// value from the event (never `now()`), so a rebuild is row-for-row identical.
#[async_trait]
pub trait ReadModel: Send + Sync + 'static {
    /// Stable name: the checkpoint row, the durable consumer, the metrics label, the CLI.
    fn name(&self) -> &'static str;
    /// The stream categories it folds; the consumer and gap reads see only these.
    fn categories(&self) -> &'static [StreamCategory];
    /// The tables it owns, children first (a rebuild empties them in this order).
    fn tables(&self) -> &'static [&'static str];
    /// Whether every query's read-your-writes wait includes it. Read models that fold
    /// every keystroke say no: only the routes that read them wait for them
    /// ([`Registry::awaited_by_every_query`] vs [`Registry::read_model_named`]).
    ///
    /// [`Registry::awaited_by_every_query`]: crate::Registry::awaited_by_every_query
    /// [`Registry::read_model_named`]: crate::Registry::read_model_named
    fn awaited_by_every_query(&self) -> bool {
        true
    }

    /// The least time between two of its live folds. Zero folds every delivery at once;
    /// read models that fold every keystroke take a window, so a burst of typing is one
    /// transaction (the first event after a quiet spell is still folded at once).
    fn fold_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    /// Folds one event of its categories. A read model implements this or
    /// [`ReadModel::apply_batch`] (at least one: each defaults to the other); the runtime
    /// and rebuilds call `apply_batch`.
    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_batch(conn, std::slice::from_ref(event)).await
    }

    /// Folds consecutive events (in position order). Read models that see many events
    /// (keystrokes, metadata at scale) fold a page in a few statements; the result must not
    /// depend on where pages start and end, so a rebuild equals the live fold.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.apply(conn, event).await?;
        }
        Ok(())
    }
}

/// The fold window of read models that fold every keystroke: at most ten transactions a
/// second each while people type, however many type.
pub const KEYSTROKE_FOLD_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// One column of rows, for a multi-row statement (`unnest($1::…[], …)`).
pub(crate) fn column<T, U>(rows: &[T], field: impl Fn(&T) -> U) -> Vec<U> {
    rows.iter().map(field).collect()
}

/// Events read from the log per query while folding.
const PAGE: i64 = 1000;

/// Folds every event of `model`'s categories after `checkpoint` up to and including
/// position `target`, reading them from the Postgres log (the source of truth), and
/// advances `checkpoint` to `target`. A delivered message is only the signal and the
/// high-water mark: redeliveries (at or below the checkpoint) change nothing, and an
/// event JetStream lost or reordered is read anyway.
pub(crate) async fn fold_to(
    model: &dyn ReadModel,
    conn: &mut PgConnection,
    checkpoint: &mut i64,
    target: i64,
) -> Result<usize, ProjectionError> {
    if target <= *checkpoint {
        return Ok(0);
    }
    let mut folded = 0;
    let (mut reading, mut applying) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    loop {
        let started = std::time::Instant::now();
        let events = EventLog::read_categories(
            &mut *conn,
            model.categories(),
            *checkpoint,
            target + 1,
            PAGE,
        )
        .await?;
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        let read = std::time::Instant::now();
        reading += read - started;
        model.apply_batch(conn, &events).await?;
        applying += read.elapsed();
        folded += events.len();
        *checkpoint = last;
        if (events.len() as i64) < PAGE {
            break;
        }
    }
    *checkpoint = target;
    tracing::debug!(
        read_model = model.name(),
        folded,
        read_ms = reading.as_secs_f64() * 1e3,
        apply_ms = applying.as_secs_f64() * 1e3,
        "folded"
    );
    Ok(folded)
}
