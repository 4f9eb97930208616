//! Projector checkpoints: read, lock, advance, and wait for (read-your-writes).

use std::time::Duration;

use collab_commands::event_store::category_position_at;
use collab_commands::StoreError;
use sqlx::{PgConnection, PgPool};

fn store_error(error: StoreError) -> sqlx::Error {
    match error {
        StoreError::Database(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

use crate::projector::Projector;

/// Channel notified whenever a projector commits a checkpoint.
pub const PROJECTION_CHANNEL: &str = "collab_projection";

/// Locks the projector's checkpoint row for this transaction and returns it. Live
/// projectors and rebuilds of the same projector thus never interleave.
pub(crate) async fn lock(
    conn: &mut PgConnection,
    projector: Projector,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO projector_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
    )
    .bind(projector.name())
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("SELECT position FROM projector_checkpoints WHERE name = $1 FOR UPDATE")
        .bind(projector.name())
        .fetch_one(&mut *conn)
        .await
}

pub(crate) async fn save(
    conn: &mut PgConnection,
    projector: Projector,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projector_checkpoints SET position = $2, updated_at = now() WHERE name = $1",
    )
    .bind(projector.name())
    .bind(position)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(PROJECTION_CHANNEL)
        .bind(format!("{}:{position}", projector.name()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Every projector's checkpoint (0 for one that has not run yet).
pub async fn projector_positions(pool: &PgPool) -> Result<Vec<(Projector, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, position FROM projector_checkpoints")
            .fetch_all(pool)
            .await?;
    Ok(Projector::ALL
        .into_iter()
        .map(|p| {
            let position = rows
                .iter()
                .find(|(name, _)| name == p.name())
                .map_or(0, |(_, position)| *position);
            (p, position)
        })
        .collect())
}

/// Waits until every read model has folded the log up to `position`, for at most
/// `timeout`. Returns whether it got there. A projector reads one category, so it has
/// reached `position` once its checkpoint covers the newest event of its category at or
/// below it.
pub async fn wait_for_position(
    pool: &PgPool,
    position: i64,
    timeout: Duration,
) -> Result<bool, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    // What each projector must have covered; known once the log itself has reached `position`.
    let mut needed: Option<Vec<(&'static str, i64)>> = None;
    let mut pause = Duration::from_millis(2);
    loop {
        if needed.is_none() {
            let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
                .fetch_one(pool)
                .await?;
            if head >= position {
                let mut list = Vec::with_capacity(Projector::ALL.len());
                for projector in Projector::ALL {
                    let at = category_position_at(pool, projector.category(), position)
                        .await
                        .map_err(store_error)?;
                    if at > 0 {
                        list.push((projector.name(), at));
                    }
                }
                needed = Some(list);
            }
        }
        let reached = match &needed {
            None => false,
            Some(needed) => {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT name, position FROM projector_checkpoints")
                        .fetch_all(pool)
                        .await?;
                needed.iter().all(|(name, at)| {
                    rows.iter()
                        .any(|(n, checkpoint)| n == name && checkpoint >= at)
                })
            }
        };
        if reached {
            return Ok(true);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}
