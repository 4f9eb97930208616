//! Running a projector as a durable JetStream pull consumer.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use collab_commands::relay::ensure_events_stream;
use collab_domain::{RecordedEvent, WireEnvelope};
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::checkpoint;
use crate::projector::Projector;

/// Messages folded per transaction at most.
const BATCH: usize = 500;

/// The durable consumer name of a projector under a subject prefix.
pub fn durable_name(subject_prefix: &str, projector: Projector) -> String {
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
    format!("{prefix}-projector-{}", projector.name())
}

/// Runs `projector` until `shutdown`, reconnecting with backoff on any error.
pub async fn run_projector(
    pool: PgPool,
    js: jetstream::Context,
    subject_prefix: String,
    projector: Projector,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match consume(&pool, &js, &subject_prefix, projector, &shutdown).await {
            Ok(()) => return,
            Err(error) => {
                warn!(projector = projector.name(), %error, "projector interrupted; retrying");
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
    projector: Projector,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let stream = ensure_events_stream(js, subject_prefix).await?;
    let durable = durable_name(subject_prefix, projector);
    let consumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                // Only this projector's category: content edits (the bulk of the log)
                // never reach it. Read-your-writes accounts for that (see checkpoint.rs).
                filter_subject: format!(
                    "{subject_prefix}.events.*.{}.*",
                    projector.category().as_str()
                ),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::All,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut batches = messages.ready_chunks(BATCH);
    info!(projector = projector.name(), "projector consuming");
    loop {
        let batch = tokio::select! {
            batch = batches.next() => batch,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let Some(batch) = batch else {
            return Err("message stream ended".into());
        };
        let mut messages = Vec::with_capacity(batch.len());
        for message in batch {
            messages.push(message.map_err(|e| e.to_string())?);
        }
        let mut events: Vec<RecordedEvent> = Vec::with_capacity(messages.len());
        for message in &messages {
            match WireEnvelope::decode(&message.payload) {
                Ok(event) => events.push(event),
                // The Postgres log fills whatever we cannot read here.
                Err(e) => {
                    error!(projector = projector.name(), error = %e, "undecodable message skipped")
                }
            }
        }
        let position = fold_batch(pool, projector, &events)
            .await
            .map_err(|e| e.to_string())?;
        let last = messages
            .last()
            .expect("ready_chunks yields non-empty batches");
        // AckPolicy::All: acknowledging the last message acknowledges the batch.
        last.ack().await.map_err(|e| e.to_string())?;
        if let Ok(info) = last.info() {
            metrics::gauge!("collab_projector_pending_messages", "projector" => projector.name())
                .set(info.pending as f64);
        }
        metrics::gauge!("collab_projector_position", "projector" => projector.name())
            .set(position as f64);
        if let Some(event) = events.last() {
            let lag = chrono::Utc::now() - event.metadata.recorded_at;
            metrics::histogram!("collab_projection_lag_seconds", "projector" => projector.name())
                .record(lag.num_microseconds().unwrap_or(0) as f64 / 1e6);
        }
    }
}

/// Folds a delivered batch and advances the checkpoint in one transaction. Returns the new
/// checkpoint.
pub async fn fold_batch(
    pool: &PgPool,
    projector: Projector,
    events: &[RecordedEvent],
) -> Result<i64, crate::ProjectionError> {
    let Some(target) = events.iter().map(|e| e.position).max() else {
        return Ok(0);
    };
    let mut tx = pool.begin().await?;
    let mut position = checkpoint::lock(&mut tx, projector).await?;
    let folded = projector.fold_to(&mut tx, &mut position, target).await?;
    if position == target {
        checkpoint::save(&mut tx, projector, position).await?;
    }
    tx.commit().await?;
    metrics::counter!("collab_projector_events_total", "projector" => projector.name())
        .increment(folded as u64);
    Ok(position)
}
