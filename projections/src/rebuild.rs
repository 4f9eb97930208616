//! Rebuilding a read model from the Postgres log, position 0 onwards.

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
    // Everything up to the head is committed (positions follow commit order): fold the
    // category's events up to it, and the checkpoint is the head.
    let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
        .fetch_one(&mut *tx)
        .await?;
    let mut position = 0;
    // In steps, for the progress bar.
    while position < head {
        let step = (position + BATCH).min(head);
        projector.fold_to(&mut tx, &mut position, step).await?;
        progress(position, head);
    }
    checkpoint::save(&mut tx, projector, position).await?;
    tx.commit().await?;
    info!(position, "read model rebuilt");
    Ok(position)
}
