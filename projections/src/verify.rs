//! Online verification of the log: every stream's hash chain, the gap-free position
//! sequence, the stream heads the audit projector recorded, and every signed checkpoint.
//!
//! What each check catches: an altered event (payload, actor, time...) breaks its own
//! hash; a deleted event in the middle of a stream leaves a version hole and a missing
//! position; a deleted last event of a stream leaves a missing position and a head the
//! audit projector saw but the log no longer has; swapped events put a stream's versions
//! out of order. What none of them can catch alone — the whole table and the read models
//! rewritten consistently — is what signed checkpoints (and exports verified offline
//! against the public key) are for.

use collab_domain::audit::{Break, ChainVerifier, Checkpoint, Report};
use collab_domain::replay::EventFilter;
use collab_domain::{DomainEvent, StreamCategory, WorkspaceId};
use collab_store::{EventLog, StoreError};
use ed25519_dalek::VerifyingKey;
use futures::TryStreamExt;
use sqlx::PgPool;

/// Events read per query.
const PAGE: i64 = 2000;

/// Verifies one workspace's streams, or the whole log (`None`), up to the current head.
/// `trusted`: the public key checkpoints must be signed with.
pub async fn verify(
    pool: &PgPool,
    workspace: Option<WorkspaceId>,
    trusted: Option<VerifyingKey>,
) -> Result<Report, StoreError> {
    let head = EventLog::head(pool).await?;
    let mut verifier = ChainVerifier::new(checkpoints(pool, workspace, head).await?, trusted);
    let mut candidates: Vec<Break> = Vec::new();
    let mut pages = std::pin::pin!(EventLog::pages(
        pool.clone(),
        workspace,
        EventFilter::default(),
        0,
        head,
        PAGE,
        None,
    ));
    while let Some(events) = pages.try_next().await? {
        for event in &events {
            verifier.push(event);
        }
    }

    // A version hole found by the chain: name the missing position when the (global)
    // sequence has one between the stream's neighbours.
    if let Some(found) = verifier.first_break_mut() {
        if let Some(after) = found.missing_after {
            let gaps = missing_positions(pool, after, found.position - 1).await?;
            if let Some(gap) = gaps.first() {
                found.reason = format!("{} (position {gap} is missing from the log)", found.reason);
                found.position = *gap;
            }
        }
    }
    // Heads the audit projector saw that the log no longer ends with.
    candidates.extend(head_mismatches(pool, workspace, head, &verifier).await?);
    // Positions missing anywhere: only for the whole log. A workspace's verification scans
    // its own events alone, and says nothing about (nor reveals) other tenants' positions.
    if workspace.is_none() {
        for gap in missing_positions(pool, 0, head).await? {
            candidates.push(Break {
                stream_id: None,
                stream_version: None,
                position: gap,
                reason: format!("position {gap} is missing from the log (an event was deleted)"),
                missing_after: None,
            });
        }
    }
    let mut report = verifier.finish(None);
    candidates.extend(report.first_break.take());
    // The earliest finding wins; at one position, the one that names a stream.
    candidates.sort_by_key(|b| (b.position, b.stream_id.is_none()));
    report.first_break = candidates.into_iter().next();
    report.ok = report.first_break.is_none();
    Ok(report)
}

/// Every signed checkpoint (of `workspace`, or all) at or below `head`, with the position
/// of its event. Checkpoints whose payload does not decode are reported by the chain
/// check (their hash breaks) or are simply absent here.
async fn checkpoints(
    pool: &PgPool,
    workspace: Option<WorkspaceId>,
    head: i64,
) -> Result<Vec<(i64, Checkpoint)>, StoreError> {
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let events =
            EventLog::read_categories(pool, &[StreamCategory::Audit], after, head + 1, PAGE)
                .await?;
        let Some(last) = events.last().map(|e| e.position) else {
            break;
        };
        for event in &events {
            if workspace.is_some_and(|ws| ws != event.metadata.workspace_id) {
                continue;
            }
            if let Ok(DomainEvent::Audit(
                collab_domain::audit::AuditEvent::AuditCheckpointSigned(cp),
            )) = DomainEvent::decode_recorded(event)
            {
                found.push((
                    event.position,
                    Checkpoint::from_event(event.metadata.workspace_id.as_uuid(), &cp),
                ));
            }
        }
        after = last;
        if (events.len() as i64) < PAGE {
            break;
        }
    }
    Ok(found)
}

/// Positions in `after + 1..=until` with no event (at most 1000 of them).
async fn missing_positions(pool: &PgPool, after: i64, until: i64) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT gap FROM ( \
           SELECT coalesce(lag(position) OVER (ORDER BY position), $1) + 1 AS gap, position \
           FROM events WHERE position > $1 AND position <= $2 \
           UNION ALL \
           SELECT coalesce(max(position), $1) + 1, $2 + 1 FROM events \
           WHERE position > $1 AND position <= $2 \
         ) p WHERE gap < position ORDER BY gap LIMIT 1000",
    )
    .bind(after)
    .bind(until)
    .fetch_all(pool)
    .await?)
}

/// Streams whose last event in the log is not the head the audit projector recorded
/// (for heads it recorded at or below `head`).
async fn head_mismatches(
    pool: &PgPool,
    workspace: Option<WorkspaceId>,
    head: i64,
    verifier: &ChainVerifier,
) -> Result<Vec<Break>, StoreError> {
    let rows: Vec<(String, i64, Vec<u8>, i64)> = sqlx::query_as(
        "SELECT stream_id, version, hash, position FROM rm_audit_stream_heads \
         WHERE ($1::uuid IS NULL OR workspace_id = $1) AND position <= $2",
    )
    .bind(workspace.map(|w| w.as_uuid()))
    .bind(head)
    .fetch_all(pool)
    .await?;
    let mut found = Vec::new();
    for (stream, version, hash, position) in rows {
        let log = verifier.head(&stream);
        let matches = log.is_some_and(|(v, h, _)| v == version && h[..] == hash[..]);
        if matches || log.is_some_and(|(v, _, _)| v > version) {
            // Equal, or the log went on (and the chain check covers what follows).
            continue;
        }
        let log_version = log.map_or(0, |(v, _, _)| v);
        found.push(Break {
            stream_id: Some(stream.clone()),
            stream_version: Some(log_version + 1),
            position: if version == log_version + 1 {
                position
            } else {
                head.min(position)
            },
            reason: if log_version < version {
                format!(
                    "the log ends at version {log_version} of {stream}, but version {version} \
                     was recorded at position {position} (events deleted from its end)"
                )
            } else {
                format!("the last event of {stream} is not the one recorded at position {position}")
            },
            missing_after: None,
        });
    }
    Ok(found)
}
