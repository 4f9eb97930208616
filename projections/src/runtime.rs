//! Running a read model or worker as a durable JetStream pull consumer.
//!
//! A delivered batch is only a signal and a high-water mark: the consumer reads its
//! categories' events from the Postgres log between its checkpoint and the batch's
//! highest position, so an event JetStream lost, reordered or redelivered changes nothing.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use collab_domain::envelope::events_stream_name;
use collab_domain::{StreamCategory, WireEnvelope};
use collab_store::relay::POSITION_HEADER;
use collab_store::{leadership, EventLog};
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::checkpoint;
use crate::read_model::{fold_to, ProjectionError, ReadModel};
use crate::registry::Consumer;
use crate::worker;

/// Messages taken per transaction at most.
const BATCH: usize = 500;

/// How far past a delivered position a read model folds in one transaction (never past
/// the log head). Deliveries it has already folded are then only acknowledged.
const FOLD_AHEAD: i64 = 20_000;

/// A read model this far behind the log head after a fold folds again at once, without
/// waiting for a delivery: JetStream hands a consumer of every subject about 10,000
/// messages a second, which bounded keystroke-folding read models (history, audit) below
/// the ingest rate; the log read is several times faster.
const CATCH_UP_AT: i64 = 1_000;

/// How often a worker looks for work without a delivery (requeued events).
const WORKER_TICK: Duration = Duration::from_secs(3);

/// The durable consumer name of a read model or worker under a subject prefix.
pub fn durable_name(subject_prefix: &str, consumer: &Consumer) -> String {
    let prefix: String = subject_prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let kind = match consumer {
        Consumer::ReadModel(_) => "projector",
        Consumer::Worker(_) => "worker",
    };
    format!("{prefix}-{kind}-{}", consumer.name())
}

/// The JetStream consumers behind a read model or worker: (durable name, subject filter).
/// One category: one consumer filtered to it. Several: one consumer per category (named
/// `<durable>-<category>`), so content edits — the bulk of the log — never reach a read
/// model that does not fold them (nats-server 2.9 takes one filter per consumer). Every
/// category (audit): one consumer of every subject.
fn nats_consumers(subject_prefix: &str, consumer: &Consumer) -> Vec<(String, String)> {
    let durable = durable_name(subject_prefix, consumer);
    match consumer.categories() {
        [one] => vec![(durable, category_filter(subject_prefix, *one))],
        all if all.len() == StreamCategory::ALL.len() => {
            vec![(durable, format!("{subject_prefix}.events.>"))]
        }
        several => several
            .iter()
            .map(|category| {
                (
                    format!("{durable}-{}", category.as_str()),
                    category_filter(subject_prefix, *category),
                )
            })
            .collect(),
    }
}

fn category_filter(subject_prefix: &str, category: StreamCategory) -> String {
    format!("{subject_prefix}.events.*.{}.*", category.as_str())
}

/// The category of an event's subject (`<prefix>.events.<workspace>.<category>.<id>`).
fn subject_category(subject: &str) -> Option<StreamCategory> {
    let mut tokens = subject.rsplit('.');
    tokens.next()?;
    StreamCategory::parse(tokens.next()?).ok()
}

/// Runs `consumer` until `shutdown`, reconnecting with backoff on any error.
pub async fn run_consumer(
    pool: PgPool,
    js: jetstream::Context,
    subject_prefix: String,
    consumer: Consumer,
    shutdown: CancellationToken,
) {
    // A worker's effects leave Postgres: one process handles it at a time.
    let _leadership = match &consumer {
        Consumer::Worker(worker) => {
            let key = format!("collab-worker:{}", worker.name());
            match leadership::lead(&pool, &key, &shutdown).await {
                Some(connection) => Some(connection),
                None => return,
            }
        }
        Consumer::ReadModel(_) => None,
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        match consume(&pool, &js, &subject_prefix, &consumer, &shutdown).await {
            Ok(()) => return,
            Err(error) => {
                warn!(consumer = consumer.name(), %error, "consumer interrupted; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn consume(
    pool: &PgPool,
    js: &jetstream::Context,
    subject_prefix: &str,
    consumer: &Consumer,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    // Every process creates the stream at start (with the configured replicas).
    let stream = js
        .get_stream(events_stream_name(subject_prefix))
        .await
        .map_err(|e| e.to_string())?;
    let consumers = nats_consumers(subject_prefix, consumer);
    if consumers.len() > 1 {
        // Before one consumer per category, such a read model had one consumer of every
        // subject under its plain name: gone for good.
        let _ = stream
            .delete_consumer(&durable_name(subject_prefix, consumer))
            .await;
    }
    let mut feeds = Vec::with_capacity(consumers.len());
    for (index, (durable, filter_subject)) in consumers.into_iter().enumerate() {
        let nats_consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    filter_subject,
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::All,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let messages = nats_consumer.messages().await.map_err(|e| e.to_string())?;
        // Each message with the consumer it came from (acknowledgements are per consumer).
        feeds.push(messages.map(move |message| message.map(|m| (index, m))));
    }
    let messages = futures::stream::select_all(feeds);
    let mut batches = messages.ready_chunks(BATCH);
    let name = consumer.name();
    info!(consumer = name, kind = consumer.kind(), "consuming");
    let mut tick = tokio::time::interval(WORKER_TICK);
    // What this consumer is known to have folded (read models only), and when it last did.
    let mut folded: i64 = -1;
    let mut last_fold: Option<tokio::time::Instant> = None;
    if let Consumer::ReadModel(model) = consumer {
        // Behind the log at start (new, emptied by a migration, its server down while the
        // relay published): fold to the head from the log now. A delivery is only a
        // signal, and none may come: the messages can be acknowledged already or gone
        // from the stream, and then the read model would wait for the next event.
        // A step waits for the checkpoint's lock (a rebuild holds it to its end): shutdown
        // does not wait for it, and the step's transaction rolls back.
        let head = EventLog::head(pool).await.map_err(|e| e.to_string())?;
        let mut position = checkpoint::position(pool, model.name())
            .await
            .map_err(|e| e.to_string())?;
        while position < head {
            let step = fold_batch(pool, model.as_ref(), head.min(position + FOLD_AHEAD));
            let reached = tokio::select! {
                reached = step => reached.map_err(|e| e.to_string())?,
                _ = shutdown.cancelled() => return Ok(()),
            };
            if reached <= position {
                // No progress: the log's head is below what was read at start (a
                // recreated database); deliveries take over.
                break;
            }
            position = reached;
        }
        folded = position;
    }
    loop {
        let batch = tokio::select! {
            batch = batches.next() => batch,
            _ = tick.tick(), if matches!(consumer, Consumer::Worker(_)) => {
                // Requeued events lie below the head: pick them up without a delivery.
                let head = EventLog::head(pool).await.map_err(|e| e.to_string())?;
                advance(pool, consumer, head).await.map_err(|e| e.to_string())?;
                continue;
            }
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some(batch) = batch else {
            return Err("message stream ended".into());
        };
        let mut messages = Vec::with_capacity(batch.len());
        for message in batch {
            messages.push(message.map_err(|e| e.to_string())?);
        }
        // A read model that folds every keystroke folds at most once per window: what
        // arrives meanwhile joins this fold (one transaction instead of one per event).
        // An event after a quiet spell is folded at once.
        if let (Consumer::ReadModel(model), Some(last_fold)) = (consumer, last_fold) {
            let due = last_fold + model.fold_window();
            while tokio::time::Instant::now() < due {
                tokio::select! {
                    more = batches.next() => match more {
                        Some(more) => {
                            for message in more {
                                messages.push(message.map_err(|e| e.to_string())?);
                            }
                        }
                        None => return Err("message stream ended".into()),
                    },
                    _ = tokio::time::sleep_until(due) => break,
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
        // The last message of each JetStream consumer (AckPolicy::All: acknowledging it
        // acknowledges everything before it on that consumer).
        let lasts = last_of_each(&messages);
        // The highest position delivered of the consumer's own categories (a consumer of
        // every subject sees others; they are acknowledged without touching Postgres):
        // from the header, else the envelope (the log fills whatever cannot be read here).
        let target = messages
            .iter()
            .map(|(_, m)| m)
            .filter(|m| {
                subject_category(&m.subject).is_none_or(|c| consumer.categories().contains(&c))
            })
            .filter_map(|m| {
                m.headers
                    .as_ref()
                    .and_then(|h| h.get(POSITION_HEADER))
                    .and_then(|v| v.as_str().parse::<i64>().ok())
                    .or_else(|| WireEnvelope::decode(&m.payload).ok().map(|e| e.position))
            })
            .max();
        let Some(target) = target else {
            acknowledge(&lasts).await?;
            continue;
        };
        let newest = messages
            .last()
            .and_then(|(_, m)| WireEnvelope::decode(&m.payload).ok());
        // Messages JetStream has not delivered yet: many means far behind.
        let pending = lasts
            .iter()
            .map(|m| m.info().map(|info| info.pending).unwrap_or(u64::MAX))
            .fold(0u64, u64::saturating_add);
        let position = match consumer {
            // Already folded (by folding ahead): only the acknowledgement is left.
            Consumer::ReadModel(_) if target <= folded => folded,
            Consumer::ReadModel(model) => {
                let ahead = target.max(folded.saturating_add(FOLD_AHEAD));
                let mut position = fold_batch(pool, model.as_ref(), ahead)
                    .await
                    .map_err(|e| e.to_string())?;
                last_fold = Some(tokio::time::Instant::now());
                if pending >= CATCH_UP_AT as u64 {
                    // Acknowledge what was delivered before a long catch-up, so JetStream
                    // does not redeliver it meanwhile.
                    acknowledge(&lasts).await?;
                    // Far behind the log: catch up from the log itself instead of waiting
                    // for JetStream to hand over every message one by one.
                    while !shutdown.is_cancelled()
                        && EventLog::head(pool).await.map_err(|e| e.to_string())? - position
                            >= CATCH_UP_AT
                    {
                        position = fold_batch(pool, model.as_ref(), position + FOLD_AHEAD)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
                position
            }
            Consumer::Worker(_) => advance(pool, consumer, target)
                .await
                .map_err(|e| e.to_string())?,
        };
        if matches!(consumer, Consumer::ReadModel(_)) {
            folded = position;
        }
        acknowledge(&lasts).await?;
        if pending != u64::MAX {
            metrics::gauge!("collab_projector_pending_messages", "projector" => name)
                .set(pending as f64);
        }
        metrics::gauge!("collab_projector_position", "projector" => name).set(position as f64);
        if let Some(event) = newest {
            let lag = chrono::Utc::now() - event.metadata.recorded_at;
            metrics::histogram!("collab_projection_lag_seconds", "projector" => name)
                .record(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
        }
    }
}

/// The last message of each JetStream consumer in a batch.
fn last_of_each(messages: &[(usize, jetstream::Message)]) -> Vec<&jetstream::Message> {
    let mut seen = std::collections::HashSet::new();
    messages
        .iter()
        .rev()
        .filter(|(consumer, _)| seen.insert(*consumer))
        .map(|(_, message)| message)
        .collect()
}

async fn acknowledge(lasts: &[&jetstream::Message]) -> Result<(), String> {
    for message in lasts {
        message.ack().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Brings the consumer up to `target`. Returns its checkpoint.
pub async fn advance(
    pool: &PgPool,
    consumer: &Consumer,
    target: i64,
) -> Result<i64, ProjectionError> {
    match consumer {
        Consumer::ReadModel(model) => fold_batch(pool, model.as_ref(), target).await,
        Consumer::Worker(worker) => worker::process_to(pool, worker.as_ref(), target).await,
    }
}

/// Folds the read model's events up to `target` and advances the checkpoint in one
/// transaction. Returns the new checkpoint.
pub async fn fold_batch(
    pool: &PgPool,
    model: &dyn ReadModel,
    target: i64,
) -> Result<i64, ProjectionError> {
    let mut tx = pool.begin().await?;
    let (mut position, head) = checkpoint::lock_at_head(&mut tx, model.name()).await?;
    // A delivered position is only a signal: never beyond this log's head (a message of
    // another log — a recreated database, a shared prefix — must not move the checkpoint
    // past events that were never folded).
    let target = target.min(head);
    let folded = fold_to(model, &mut tx, &mut position, target).await?;
    if position == target {
        checkpoint::save(&mut tx, model.name(), position).await?;
    }
    tx.commit().await?;
    metrics::counter!("collab_projector_events_total", "projector" => model.name())
        .increment(folded as u64);
    Ok(position)
}
