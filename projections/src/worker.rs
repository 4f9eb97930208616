//! Workers: consumers of the log whose effects leave Postgres (email, webhook calls,
//! thumbnails, zips). Same shape as a read model — a name, the categories it consumes, a
//! durable consumer and a checkpoint — plus what side effects need:
//!
//! - one process at a time per worker (a Postgres advisory lock; others stand by), and no
//!   transaction open while an effect runs;
//! - a per-event idempotency record (`worker_events`): an event recorded `done` or
//!   `parked` is never handled again, even when the checkpoint is moved back (a requeue);
//! - retries with exponential backoff for transient failures;
//! - a parked (dead-letter) state with its reason, for permanent failures and for
//!   transient ones that outlast the retries; `collab projections status` and the
//!   `collab_worker_parked_events` gauge show them, `collab projections retry` requeues.
//!
//! Delivery is at least once: a process that dies between the effect and its record
//! handles the event again. `handle` gets the event, whose `event_id` is the idempotency
//! key to hand downstream (a webhook id, a message id).

use std::time::Duration;

use async_trait::async_trait;
use collab_domain::{RecordedEvent, StreamCategory};
use collab_store::EventLog;
use sqlx::PgPool;
use tracing::{info, warn};

use crate::checkpoint;
use crate::read_model::ProjectionError;

/// Why handling an event failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkerError {
    /// Worth another attempt (a timeout, a 5xx, a connection refused).
    #[error("{0}")]
    Transient(String),
    /// Will never succeed (a malformed address, a 4xx); parked at once.
    #[error("{0}")]
    Permanent(String),
}

/// How often and how patiently a transient failure is retried before the event is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The pause after failed attempt `attempt` (1-based): doubling, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// Stable name: the checkpoint row, the durable consumer, records, metrics, the CLI.
    fn name(&self) -> &'static str;
    /// The stream categories it consumes.
    fn categories(&self) -> &'static [StreamCategory];
    fn retry(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    /// Performs the event's side effect (or decides it has none: `Ok`).
    async fn handle(&self, event: &RecordedEvent) -> Result<(), WorkerError>;
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Parked,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Parked => "parked",
        }
    }
}

/// Handles every event of the worker's categories after its checkpoint up to and
/// including `target` (never beyond the log head), one at a time: the event is read, its
/// record checked, the effect performed with no transaction open (retries and backoff
/// included), then the outcome recorded and the checkpoint moved in one short transaction.
/// Only one process handles a worker at a time (see [`lead`]), so nothing is handled twice
/// concurrently. Returns the checkpoint.
pub(crate) async fn process_to(
    pool: &PgPool,
    worker: &dyn Worker,
    target: i64,
) -> Result<i64, ProjectionError> {
    let name = worker.name();
    let target = target.min(EventLog::head(pool).await?);
    loop {
        let checkpoint = crate::checkpoint::position(pool, name).await?;
        if checkpoint >= target {
            return Ok(checkpoint);
        }
        let events =
            EventLog::read_categories(pool, worker.categories(), checkpoint, target + 1, 1).await?;
        let Some(event) = events.first() else {
            let mut tx = pool.begin().await?;
            let locked = checkpoint::lock(&mut tx, name).await?;
            checkpoint::save(&mut tx, name, locked.max(target)).await?;
            tx.commit().await?;
            return Ok(target);
        };
        let recorded: Option<String> = sqlx::query_scalar(
            "SELECT status FROM worker_events WHERE worker = $1 AND event_id = $2",
        )
        .bind(name)
        .bind(event.metadata.event_id.as_uuid())
        .fetch_optional(pool)
        .await?;
        let outcome = match recorded {
            Some(_) => None,
            None => Some(handle_with_retries(worker, event).await),
        };
        let mut tx = pool.begin().await?;
        let locked = checkpoint::lock(&mut tx, name).await?;
        if let Some((outcome, attempts, reason)) = outcome {
            sqlx::query(
                "INSERT INTO worker_events (worker, event_id, position, status, attempts, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (worker, event_id) DO NOTHING",
            )
            .bind(name)
            .bind(event.metadata.event_id.as_uuid())
            .bind(event.position)
            .bind(outcome.as_str())
            .bind(attempts as i32)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            metrics::counter!("collab_worker_events_total", "worker" => name, "outcome" => outcome.as_str())
                .increment(1);
        }
        // A requeue may have moved the checkpoint back meanwhile: never forward over it.
        if locked == checkpoint {
            checkpoint::save(&mut tx, name, event.position).await?;
        }
        tx.commit().await?;
    }
}

async fn handle_with_retries(
    worker: &dyn Worker,
    event: &RecordedEvent,
) -> (Outcome, u32, Option<String>) {
    let policy = worker.retry();
    let mut attempt = 1;
    loop {
        match worker.handle(event).await {
            Ok(()) => return (Outcome::Done, attempt, None),
            Err(WorkerError::Permanent(reason)) => {
                warn!(worker = worker.name(), event.position = event.position, %reason, "event parked: permanent failure");
                return (Outcome::Parked, attempt, Some(reason));
            }
            Err(WorkerError::Transient(reason)) if attempt >= policy.attempts => {
                warn!(worker = worker.name(), event.position = event.position, attempts = attempt, %reason, "event parked: retries exhausted");
                return (Outcome::Parked, attempt, Some(reason));
            }
            Err(WorkerError::Transient(reason)) => {
                let pause = policy.backoff(attempt);
                info!(worker = worker.name(), event.position = event.position, attempt, ?pause, %reason, "retrying");
                metrics::counter!("collab_worker_retries_total", "worker" => worker.name())
                    .increment(1);
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
        }
    }
}

/// A parked event of a worker.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Parked {
    pub position: i64,
    pub event_id: uuid::Uuid,
    pub attempts: i32,
    pub reason: Option<String>,
}

/// The worker's parked events, oldest first.
pub async fn parked(pool: &PgPool, worker: &str) -> Result<Vec<Parked>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, event_id, attempts, reason FROM worker_events \
         WHERE worker = $1 AND status = 'parked' ORDER BY position",
    )
    .bind(worker)
    .fetch_all(pool)
    .await
}

/// Requeues the worker's parked events: their records are dropped and the checkpoint moves
/// back before the oldest, so the running worker handles them again (events recorded
/// `done` in between are skipped by their records). Returns how many were requeued.
pub async fn requeue_parked(pool: &PgPool, worker: &str) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let checkpoint = checkpoint::lock(&mut tx, worker).await?;
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT min(position) FROM worker_events WHERE worker = $1 AND status = 'parked'",
    )
    .bind(worker)
    .fetch_one(&mut *tx)
    .await?;
    let Some(oldest) = oldest else {
        return Ok(0);
    };
    let requeued = sqlx::query("DELETE FROM worker_events WHERE worker = $1 AND status = 'parked'")
        .bind(worker)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    checkpoint::save(&mut tx, worker, checkpoint.min(oldest - 1)).await?;
    tx.commit().await?;
    Ok(requeued)
}
