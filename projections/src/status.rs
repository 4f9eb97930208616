//! Where each read model and worker stands: checkpoint, lag, parked events.

use collab_store::{EventLog, StoreError};
use sqlx::PgPool;

use crate::checkpoint;
use crate::registry::{Consumer, Registry};
use crate::worker;

/// Lag is counted up to this many events (a count over a long backlog would scan it all;
/// beyond this the figure is "at least").
pub const LAG_COUNT_CAP: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStatus {
    pub name: &'static str,
    pub kind: &'static str,
    pub position: i64,
    /// Events of its categories after its checkpoint (capped at [`LAG_COUNT_CAP`]).
    pub lag: i64,
    /// Workers only: parked events and the newest reason.
    pub parked: Option<(usize, Option<String>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The status of every registered consumer, in registry order.
pub async fn status(
    pool: &PgPool,
    registry: &Registry,
) -> Result<Vec<ConsumerStatus>, StatusError> {
    let positions = checkpoint::positions(pool, registry).await?;
    let mut out = Vec::with_capacity(positions.len());
    for (consumer, (name, position)) in registry.consumers().iter().zip(positions) {
        let lag = lag(pool, consumer.categories(), position).await?;
        let parked = match consumer {
            Consumer::Worker(_) => {
                let parked = worker::parked(pool, name).await?;
                let reason = parked.last().and_then(|p| p.reason.clone());
                Some((parked.len(), reason))
            }
            Consumer::ReadModel(_) => None,
        };
        out.push(ConsumerStatus {
            name,
            kind: consumer.kind(),
            position,
            lag,
            parked,
        });
    }
    Ok(out)
}

async fn lag(
    pool: &PgPool,
    categories: &[collab_domain::StreamCategory],
    position: i64,
) -> Result<i64, StoreError> {
    EventLog::count_after(pool, categories, position, LAG_COUNT_CAP).await
}
