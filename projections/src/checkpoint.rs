//! Consumer checkpoints: read, lock, advance, and wait for (read-your-writes).

use std::sync::Arc;
use std::time::Duration;

use collab_store::{EventLog, StoreError};
use sqlx::{PgConnection, PgPool};

use crate::read_model::ReadModel;
use crate::registry::Registry;

/// Channel notified whenever a read model commits a checkpoint.
pub const PROJECTION_CHANNEL: &str = "collab_projection";

fn store_error(error: StoreError) -> sqlx::Error {
    match error {
        StoreError::Database(e) => e,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// Locks the consumer's checkpoint row for this transaction and returns it. Live
/// consumers and rebuilds of the same read model thus never interleave.
pub(crate) async fn lock(conn: &mut PgConnection, name: &str) -> Result<i64, sqlx::Error> {
    Ok(lock_at_head(conn, name).await?.0)
}

/// [`lock`], and the log's head (everything up to it committed): one round trip once the
/// row exists. The head is read as the statement began, so after waiting for the lock
/// (a rebuild held it) it can be below the checkpoint: fold nothing then.
pub(crate) async fn lock_at_head(
    conn: &mut PgConnection,
    name: &str,
) -> Result<(i64, i64), sqlx::Error> {
    // `OF c`: the head row is only read (appends take it for update).
    const LOCK: &str = "SELECT c.position, h.position FROM projector_checkpoints c \
                        CROSS JOIN event_log_head h WHERE c.name = $1 FOR UPDATE OF c";
    if let Some(locked) = sqlx::query_as(LOCK)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(locked);
    }
    // The consumer's first run.
    sqlx::query(
        "INSERT INTO projector_checkpoints (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    sqlx::query_as(LOCK).bind(name).fetch_one(&mut *conn).await
}

/// The consumer's checkpoint (0 before it has run).
pub async fn position(pool: &PgPool, name: &str) -> Result<i64, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projector_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(position.unwrap_or(0))
}

pub(crate) async fn save(
    conn: &mut PgConnection,
    name: &str,
    position: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH saved AS (UPDATE projector_checkpoints SET position = $2, updated_at = now() \
         WHERE name = $1 RETURNING name) SELECT pg_notify($3, $4) FROM saved",
    )
    .bind(name)
    .bind(position)
    .bind(PROJECTION_CHANNEL)
    .bind(format!("{name}:{position}"))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every registered consumer's checkpoint (0 for one that has not run yet), in registry
/// order.
pub async fn positions(
    pool: &PgPool,
    registry: &Registry,
) -> Result<Vec<(&'static str, i64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, position FROM projector_checkpoints")
            .fetch_all(pool)
            .await?;
    Ok(registry
        .consumers()
        .iter()
        .map(|c| {
            let position = rows
                .iter()
                .find(|(name, _)| name == c.name())
                .map_or(0, |(_, position)| *position);
            (c.name(), position)
        })
        .collect())
}

/// How a wait for a position ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Every read model has folded the log up to the position.
    Yes,
    /// Not within the time given.
    NotYet,
    /// The position is beyond the log's head: no command ever answered with it (every
    /// position a command returns is committed), so waiting would not help.
    BeyondHead { head: i64 },
}

/// Waits until every read model has folded the log up to `position`, for at most
/// `timeout`. A read model reads only its categories, so it has reached `position` once
/// its checkpoint covers the newest event of its categories at or below it.
pub async fn wait_for_position(
    pool: &PgPool,
    models: &[Arc<dyn ReadModel>],
    position: i64,
    timeout: Duration,
) -> Result<Reached, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let head = EventLog::head(pool).await.map_err(store_error)?;
    if position > head {
        return Ok(Reached::BeyondHead { head });
    }
    // What each read model must have covered.
    let mut needed: Vec<(&'static str, i64)> = Vec::new();
    for model in models {
        let at = EventLog::position_at(pool, model.categories(), position)
            .await
            .map_err(store_error)?;
        if at > 0 {
            needed.push((model.name(), at));
        }
    }
    let mut pause = Duration::from_millis(2);
    loop {
        if needed.is_empty() {
            return Ok(Reached::Yes);
        }
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, position FROM projector_checkpoints")
                .fetch_all(pool)
                .await?;
        let reached = needed.iter().all(|(name, at)| {
            rows.iter()
                .any(|(n, checkpoint)| n == name && checkpoint >= at)
        });
        if reached {
            return Ok(Reached::Yes);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Reached::NotYet);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}
