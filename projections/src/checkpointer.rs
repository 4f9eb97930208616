//! Signed checkpoints: every `every_events` events or `interval`, whichever comes first,
//! each workspace whose streams moved since its last checkpoint gets an
//! `AuditCheckpointSigned` event in its audit stream — the Merkle root of its stream
//! heads at a position, signed with the configured Ed25519 key. The heads come from the
//! audit read model, read in the same snapshot as its checkpoint, so they are exactly the
//! log's heads at that position. One process signs at a time (an advisory lock).

use std::time::Duration;

use collab_domain::audit::{Checkpoint, StreamHead};
use collab_domain::{Actor, EventCodec, StreamCategory, StreamId, WorkspaceId};
use collab_store::{AppendContext, EventStore, ExpectedVersion, NewEvent, StoreError};
use ed25519_dalek::SigningKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::audit::NAME as AUDIT;

#[derive(Clone)]
pub struct CheckpointConfig {
    pub key: SigningKey,
    pub every_events: i64,
    pub interval: Duration,
}

/// Signs checkpoints until `shutdown`.
pub async fn run(store: EventStore, config: CheckpointConfig, shutdown: CancellationToken) {
    let key = "collab-audit-checkpointer";
    let Some(_leadership) = collab_store::leadership::lead(store.pool(), key, &shutdown).await
    else {
        return;
    };
    info!("audit checkpoints are signed by this process");
    let mut last_run: Option<(i64, tokio::time::Instant)> = None;
    let mut covered = 0;
    let tick = Duration::from_millis(500).min(config.interval);
    while !shutdown.is_cancelled() {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.cancelled() => return,
        }
        let Ok(at) = audit_position(&store).await else {
            continue;
        };
        let due = match last_run {
            None => true,
            Some((position, when)) => {
                at - position >= config.every_events || when.elapsed() >= config.interval
            }
        };
        if !due {
            continue;
        }
        match sign_due(&store, &config.key, covered).await {
            Ok((covers, _)) => {
                covered = covers;
                last_run = Some((at, tokio::time::Instant::now()));
            }
            Err(error) => warn!(%error, "signing audit checkpoints failed; retrying"),
        }
    }
}

async fn audit_position(store: &EventStore) -> Result<i64, sqlx::Error> {
    crate::checkpoint::position(store.pool(), AUDIT).await
}

/// Signs a checkpoint for every workspace whose streams moved since its last one, once the
/// audit model has moved past `after` (the position the previous round covered; its own
/// checkpoints may not be folded yet). Returns the position covered and how many it
/// signed.
pub async fn sign_due(
    store: &EventStore,
    key: &SigningKey,
    after: i64,
) -> Result<(i64, usize), StoreError> {
    // One snapshot: the audit model's position and the heads it had folded by then.
    let mut tx = store.pool().begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let covers: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(position), 0) FROM projector_checkpoints WHERE name = $1",
    )
    .bind(AUDIT)
    .fetch_one(&mut *tx)
    .await?;
    if covers <= after {
        return Ok((after, 0));
    }
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT h.workspace_id FROM rm_audit_stream_heads h \
         LEFT JOIN rm_audit_checkpoints c ON c.workspace_id = h.workspace_id \
         WHERE h.stream_category <> 'audit' \
         GROUP BY h.workspace_id, c.covers_position \
         HAVING max(h.position) > coalesce(c.covers_position, 0)",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut signed = Vec::with_capacity(due.len());
    for workspace in due {
        let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT stream_id, version, hash FROM rm_audit_stream_heads \
             WHERE workspace_id = $1 AND stream_category <> 'audit'",
        )
        .bind(workspace)
        .fetch_all(&mut *tx)
        .await?;
        let heads = rows
            .into_iter()
            .map(|(stream_id, version, hash)| {
                let hash = hash.try_into().map_err(|_| {
                    StoreError::Corrupt(format!("stream head of {stream_id} is not a 32-byte hash"))
                })?;
                Ok(StreamHead {
                    stream_id,
                    version,
                    hash,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        signed.push(Checkpoint::sign(key, workspace, covers, &heads, None));
    }
    tx.commit().await?;
    for checkpoint in &signed {
        let event = collab_domain::audit::AuditEvent::AuditCheckpointSigned(checkpoint.to_event());
        let context = AppendContext {
            workspace_id: WorkspaceId::from_uuid(checkpoint.workspace_id),
            actor: Actor::Service("audit".into()),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        };
        store
            .append(
                StreamId::new(StreamCategory::Audit, checkpoint.workspace_id),
                ExpectedVersion::Any,
                &context,
                vec![NewEvent {
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    payload: event.encode(),
                }],
            )
            .await?;
    }
    Ok((covers, signed.len()))
}
