//! One active process per role: whoever holds a Postgres advisory lock is active, the
//! others stand by and take over when its connection goes (the relay, each worker).

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Waits until this process holds the advisory lock named `key`, and returns the
/// connection that holds it: the lock lasts as long as that connection. Tries again every
/// second while another process holds it. `None` once `shutdown` is cancelled.
pub async fn lead(pool: &PgPool, key: &str, shutdown: &CancellationToken) -> Option<PgConnection> {
    loop {
        let attempt = async {
            let mut conn = pool.acquire().await?.detach();
            let locked: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await?;
            Ok::<_, sqlx::Error>(locked.then_some(conn))
        };
        match attempt.await {
            Ok(Some(conn)) => return Some(conn),
            Ok(None) => debug!(key, "another process is active; standing by"),
            Err(error) => warn!(key, %error, "cannot reach Postgres to take the lead"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.cancelled() => return None,
        }
    }
}
