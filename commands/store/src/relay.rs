//! The outbox relay: publishes every committed event to JetStream, in global order, once.
//!
//! * Order: each message carries `Nats-Expected-Last-Sequence`, so JetStream refuses a
//!   message that would land out of order even while acks are pipelined; on any error the
//!   relay re-reads where the stream really is and resumes from there.
//! * Once: `Nats-Msg-Id` is the event id (duplicates inside the window are dropped), and
//!   the resume point is read from the stream itself (the `Collab-Position` header of its
//!   last message), so a crash between publish and checkpoint republishes nothing.
//! * Nothing skipped: positions are gap-free in commit order (see `event_store`), so
//!   "everything after the last published position" is exactly what is left.
//! * NATS down: commands only touch Postgres; the relay backs off and catches up.
//! * One active relay per event stream: a Postgres advisory lock elects it; others wait.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use collab_domain::envelope::{event_subject, events_stream_name};
use collab_domain::RecordedEvent;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, instrument, warn};

use crate::event_store::{EventLog, EventStore, StoreError};
use crate::leadership;

pub const POSITION_HEADER: &str = "Collab-Position";
pub const EVENT_TYPE_HEADER: &str = "Collab-Event-Type";
pub const SCHEMA_VERSION_HEADER: &str = "Collab-Schema-Version";
pub const STREAM_ID_HEADER: &str = "Collab-Stream-Id";
pub const STREAM_VERSION_HEADER: &str = "Collab-Stream-Version";

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// First token of every subject (`<prefix>.events.…`); also names the stream.
    pub subject_prefix: String,
    /// Events read and published per round trip.
    pub batch_size: i64,
    /// How often to look for events when no notification arrives.
    pub idle_poll: Duration,
    /// Pause after a partial batch, so the next one carries more.
    pub coalesce: Duration,
    /// JetStream replicas of the events stream (1 on a single server, 3 on a cluster).
    pub replicas: usize,
}

impl RelayConfig {
    pub fn new(subject_prefix: impl Into<String>) -> Self {
        Self {
            subject_prefix: subject_prefix.into(),
            batch_size: 1000,
            idle_poll: Duration::from_millis(500),
            coalesce: Duration::from_millis(3),
            replicas: 1,
        }
    }

    pub fn stream_name(&self) -> String {
        events_stream_name(&self.subject_prefix)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("event store: {0}")]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("jetstream: {0}")]
    Nats(String),
    /// The stream holds events that are not this log's (the database was recreated, or
    /// two deployments share a subject prefix). Publishing would skip or mix events.
    #[error("{0}")]
    ForeignStream(String),
}

fn nats_error(error: impl std::fmt::Display) -> RelayError {
    RelayError::Nats(error.to_string())
}

/// Creates the events stream if it is missing (idempotent; every role calls it), with
/// `replicas` copies; an existing stream with another replica count is changed to it.
pub async fn ensure_events_stream(
    js: &jetstream::Context,
    subject_prefix: &str,
    replicas: usize,
) -> Result<stream::Stream, String> {
    let mut stream = js
        .get_or_create_stream(stream::Config {
            name: events_stream_name(subject_prefix),
            subjects: vec![format!("{subject_prefix}.events.>")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(120),
            // History is the product: never let JetStream drop or rewrite it.
            deny_delete: true,
            deny_purge: true,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
        .map_err(|e| replicas_hint(e.to_string(), replicas))?;
    let config = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .config
        .clone();
    if config.num_replicas != replicas {
        info!(
            from = config.num_replicas,
            to = replicas,
            "changing the events stream's replicas"
        );
        js.update_stream(stream::Config {
            num_replicas: replicas,
            ..config
        })
        .await
        .map_err(|e| replicas_hint(e.to_string(), replicas))?;
    }
    Ok(stream)
}

/// JetStream's refusal of replicas a single server cannot hold, with the setting named.
pub fn replicas_hint(error: String, replicas: usize) -> String {
    if replicas > 1 && error.contains("replicas") {
        format!("{error} (COLLAB_NATS_REPLICAS is {replicas}: a stream has at most as many replicas as the cluster has JetStream servers)")
    } else {
        error
    }
}

/// Where the relay stands: last published position and the stream's last sequence.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    published: i64,
    stream_sequence: u64,
}

pub struct Relay {
    store: EventStore,
    js: jetstream::Context,
    config: RelayConfig,
    /// When the checkpoint was last written, and at which position.
    last_bookkeeping: std::sync::Mutex<Option<(std::time::Instant, i64)>>,
}

impl Relay {
    pub fn new(store: EventStore, js: jetstream::Context, config: RelayConfig) -> Self {
        Self {
            store,
            js,
            config,
            last_bookkeeping: std::sync::Mutex::new(None),
        }
    }

    /// Runs until `shutdown`; then publishes what is already committed (bounded by a few
    /// seconds) and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        // One active relay per stream; the others stand by on the lock.
        let key = format!("collab-relay:{}", self.config.stream_name());
        let Some(_leadership) = leadership::lead(self.store.pool(), &key, &shutdown).await else {
            return;
        };
        info!(stream = %self.config.stream_name(), "relay is active");
        let mut signal = self.store.appends().await.signal(self.config.idle_poll);
        let mut cursor: Option<Cursor> = None;
        let mut backoff = Duration::from_millis(100);
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        let mut refusing = false;
        // The head the appends announced at the last wake-up (None: unknown, read the log).
        let mut announced = None;
        loop {
            if drain_deadline.is_none() && shutdown.is_cancelled() {
                drain_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(5));
            }
            if drain_deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
                warn!("relay stopped before publishing everything; it resumes on next start");
                return;
            }
            match self.step(&mut cursor, announced).await {
                Ok(published) if published > 0 => {
                    backoff = Duration::from_millis(100);
                    refusing = false;
                    if (published as i64) < self.config.batch_size {
                        // Let a few more commits accumulate: fewer, fuller round trips.
                        tokio::time::sleep(self.config.coalesce).await;
                    }
                    continue;
                }
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    if drain_deadline.is_some() {
                        info!("relay drained; stopping");
                        return;
                    }
                    announced = signal.wait(&shutdown).await;
                }
                Err(RelayError::ForeignStream(reason)) => {
                    // Nothing is published until an operator resolves it; said once, then
                    // re-checked quietly (deleting the stream is enough, no restart).
                    if !refusing {
                        error!("relay refuses to publish: {reason}");
                        refusing = true;
                    }
                    cursor = None;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
                Err(error) => {
                    warn!(%error, backoff_ms = backoff.as_millis() as u64, "relay cannot publish; retrying");
                    cursor = None;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled(), if drain_deadline.is_none() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Publishes one batch; returns how many events it published. `announced`: a head the
    /// appends signalled, if known — when what is in memory reaches it, the log has
    /// nothing more to give.
    #[instrument(skip_all, err(level = "debug"))]
    async fn step(
        &self,
        cursor: &mut Option<Cursor>,
        announced: Option<i64>,
    ) -> Result<usize, RelayError> {
        let current = match *cursor {
            Some(c) => c,
            None => {
                let c = self.resume_point().await?;
                debug!(
                    published = c.published,
                    sequence = c.stream_sequence,
                    "relay resumes"
                );
                *cursor = Some(c);
                c
            }
        };
        // What this process just committed is still in memory; the log is read for the
        // rest (other instances' events, anything evicted) — same events either way.
        let limit = self.config.batch_size;
        let mut events = self.store.recent_after(current.published, limit as usize);
        if events.is_empty() && announced.is_none_or(|head| head > current.published) {
            events = self.store.read_all(current.published, limit).await?;
        } else {
            metrics::counter!("collab_relay_from_memory_total").increment(events.len() as u64);
        }
        let Some(last) = events.last() else {
            // Idle: the bookkeeping (at most twice a second) catches up.
            self.bookkeeping(current.published).await?;
            return Ok(0);
        };
        let last_position = last.position;
        let stream_sequence = self.publish(&events, current.stream_sequence).await?;
        *cursor = Some(Cursor {
            published: last_position,
            stream_sequence,
        });
        metrics::counter!("collab_relay_published_total").increment(events.len() as u64);
        self.bookkeeping(last_position).await?;
        Ok(events.len())
    }

    /// Records the checkpoint (monitoring, fallback resume point) and the lag gauges — at
    /// most twice a second, so the relay adds no Postgres commit to every batch it
    /// publishes, nor to every keystroke after which it goes idle (the idle poll writes
    /// the last one).
    async fn bookkeeping(&self, published: i64) -> Result<(), RelayError> {
        let due = {
            let mut last = self
                .last_bookkeeping
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due = match *last {
                Some((at, position)) => {
                    position != published && at.elapsed() >= Duration::from_millis(500)
                }
                None => true,
            };
            if due {
                *last = Some((std::time::Instant::now(), published));
            }
            due
        };
        if !due {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO relay_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
        )
        .bind(self.config.stream_name())
        .bind(published)
        .execute(self.store.pool())
        .await?;
        self.record_lag(published).await;
        Ok(())
    }

    async fn record_lag(&self, published: i64) {
        metrics::gauge!("collab_relay_published_position").set(published as f64);
        if let Ok(head) = EventLog::head(self.store.pool()).await {
            metrics::gauge!("collab_relay_lag_events").set((head - published).max(0) as f64);
        }
    }

    /// Pipelines the batch and waits for every ack; returns the stream's new last sequence.
    async fn publish(
        &self,
        events: &[RecordedEvent],
        mut sequence: u64,
    ) -> Result<u64, RelayError> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let message = PublishMessage::build()
                .payload(event.to_wire().encode().into())
                .message_id(event.metadata.event_id.to_string())
                .expected_last_sequence(sequence)
                .header(POSITION_HEADER, event.position.to_string().as_str())
                .header(EVENT_TYPE_HEADER, event.event_type.as_str())
                .header(
                    SCHEMA_VERSION_HEADER,
                    event.schema_version.to_string().as_str(),
                )
                .header(STREAM_ID_HEADER, event.stream_id.to_string().as_str())
                .header(
                    STREAM_VERSION_HEADER,
                    event.stream_version.to_string().as_str(),
                );
            let subject = event_subject(&self.config.subject_prefix, event);
            acks.push(
                self.js
                    .send_publish(subject, message)
                    .await
                    .map_err(nats_error)?,
            );
            sequence += 1;
        }
        let mut last = sequence;
        for ack in acks {
            let ack = ack.await.map_err(nats_error)?;
            last = ack.sequence;
        }
        Ok(last)
    }

    /// Where publishing resumes: the position in the stream's last message, once that
    /// message is shown to be this log's event at that position. A stream that is ahead of
    /// the log, or whose last message is another event than the log's at its position,
    /// belongs to another log: [`RelayError::ForeignStream`], naming the fix.
    pub async fn resume_position(&self) -> Result<i64, RelayError> {
        Ok(self.resume_point().await?.published)
    }

    async fn resume_point(&self) -> Result<Cursor, RelayError> {
        let mut stream =
            ensure_events_stream(&self.js, &self.config.subject_prefix, self.config.replicas)
                .await
                .map_err(RelayError::Nats)?;
        let last_sequence = stream.info().await.map_err(nats_error)?.state.last_sequence;
        if last_sequence == 0 {
            return Ok(Cursor {
                published: 0,
                stream_sequence: 0,
            });
        }
        let published = match stream.get_raw_message(last_sequence).await {
            Ok(message) => {
                let position = message
                    .headers
                    .get(POSITION_HEADER)
                    .and_then(|v| v.as_str().parse::<i64>().ok())
                    .ok_or_else(|| {
                        RelayError::Nats(format!(
                            "message {last_sequence} of the events stream has no {POSITION_HEADER} header; \
                             only the relay may publish to it"
                        ))
                    })?;
                let event_id = message
                    .headers
                    .get("Nats-Msg-Id")
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                self.check_same_log(position, &event_id).await?;
                position
            }
            Err(error) => {
                warn!(%error, "last stream message unreadable; resuming from the Postgres checkpoint");
                sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = $1")
                    .bind(self.config.stream_name())
                    .fetch_optional(self.store.pool())
                    .await?
                    .unwrap_or(0)
            }
        };
        Ok(Cursor {
            published,
            stream_sequence: last_sequence,
        })
    }

    /// The log's event at `position` must be the one the stream holds there.
    async fn check_same_log(&self, position: i64, event_id: &str) -> Result<(), RelayError> {
        let ours: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT event_id FROM events WHERE position = $1")
                .bind(position)
                .fetch_optional(self.store.pool())
                .await?;
        let stream = self.config.stream_name();
        let fix = format!(
            "delete the stream to republish this log from the start (`nats stream rm {stream}`), \
             or give this deployment its own COLLAB_SUBJECT_PREFIX"
        );
        match ours {
            None => Err(RelayError::ForeignStream(format!(
                "JetStream stream {stream} ends at position {position}, beyond this database's \
                 event log (was the database recreated?): {fix}"
            ))),
            Some(id) if uuid::Uuid::parse_str(event_id).ok() != Some(id) => {
                Err(RelayError::ForeignStream(format!(
                "JetStream stream {stream} holds another event log's events (position {position} \
                 is event {event_id} there, {id} here): {fix}"
            )))
            }
            Some(_) => Ok(()),
        }
    }
}
