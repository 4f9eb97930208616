//! Rebuilding a read model from the Postgres log, position 0 onwards.

use collab_store::EventLog;
use sqlx::PgPool;
use tracing::{info, instrument};

use crate::checkpoint;
use crate::read_model::{fold_to, ProjectionError, ReadModel};

const BATCH: i64 = 5000;

/// Empties the read model's tables and folds the whole log into them, in one transaction:
/// readers keep seeing the old read model until the new one is complete, and the live
/// consumer (blocked on the checkpoint row meanwhile) resumes after the rebuilt position.
/// `progress(position, head)` is called after every batch. Returns the final position.
#[instrument(skip_all, fields(read_model = model.name()))]
pub async fn rebuild(
    pool: &PgPool,
    model: &dyn ReadModel,
    mut progress: impl FnMut(i64, i64),
) -> Result<i64, ProjectionError> {
    let mut tx = pool.begin().await?;
    checkpoint::lock(&mut tx, model.name()).await?;
    for table in model.tables() {
        // DELETE, not TRUNCATE: TRUNCATE would lock readers out until commit.
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    // Everything up to the head is committed (positions follow commit order): fold the
    // categories' events up to it, and the checkpoint is the head.
    let head = EventLog::head(&mut *tx).await?;
    let mut position = 0;
    // In steps, for the progress bar.
    while position < head {
        let step = (position + BATCH).min(head);
        fold_to(model, &mut tx, &mut position, step).await?;
        progress(position, head);
    }
    checkpoint::save(&mut tx, model.name(), position).await?;
    tx.commit().await?;
    info!(position, "read model rebuilt");
    Ok(position)
}
