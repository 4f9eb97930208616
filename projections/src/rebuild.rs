//! Rebuilding a read model from the Postgres log, position 0 onwards.

use collab_commands::event_store::read_all;
use sqlx::PgPool;
use tracing::{info, instrument};

use crate::checkpoint;
use crate::projector::{ProjectionError, Projector};

const BATCH: i64 = 5000;

/// Empties the projector's tables and folds the whole log into them, in one transaction:
/// readers keep seeing the old read model until the new one is complete, and the live
/// projector (blocked on the checkpoint row meanwhile) resumes after the rebuilt position.
/// `progress(position, head)` is called after every batch. Returns the final position.
#[instrument(skip(pool, progress), fields(projector = projector.name()))]
pub async fn rebuild(
    pool: &PgPool,
    projector: Projector,
    mut progress: impl FnMut(i64, i64),
) -> Result<i64, ProjectionError> {
    let mut tx = pool.begin().await?;
    checkpoint::lock(&mut tx, projector).await?;
    for table in projector.tables() {
        // DELETE, not TRUNCATE: TRUNCATE would lock readers out until commit.
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    let mut position = 0;
    loop {
        let events = read_all(&mut *tx, position, BATCH).await?;
        if events.is_empty() {
            break;
        }
        projector.fold(&mut tx, &mut position, &events).await?;
        let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
            .fetch_one(&mut *tx)
            .await?;
        progress(position, head);
    }
    checkpoint::save(&mut tx, projector, position).await?;
    tx.commit().await?;
    info!(position, "read model rebuilt");
    Ok(position)
}
