//! Fail fast while Postgres is unreachable. Without this, every request would wait out the
//! pool's acquire timeout (sqlx keeps retrying a refused connection until then) and answer
//! 500. The first request that meets a connection-level failure opens the breaker: from
//! then on requests are answered 503 `database_unavailable` at once, with `Retry-After`,
//! while one probe tries a connection every 250 ms; the first that succeeds closes it.
//! Probes, readiness and metrics are never refused by the breaker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

#[derive(Clone, Default)]
pub struct DatabaseHealth {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    down: AtomicBool,
    probing: AtomicBool,
}

/// Marks a response whose request failed on the database: `confirmed` when it was
/// unreachable, not when the pool only timed out (busy, or down: [`DatabaseHealth::verify`]
/// tells which).
#[derive(Clone, Copy, Debug)]
pub struct DatabaseOutage {
    pub confirmed: bool,
}

impl DatabaseHealth {
    pub fn is_down(&self) -> bool {
        self.inner.down.load(Ordering::Acquire)
    }

    /// After a pool timeout: opens the breaker if a connection of its own cannot reach
    /// Postgres either (one check at a time; a busy pool is not an outage).
    pub fn verify(&self, pool: &PgPool) {
        if self.is_down() || self.inner.probing.load(Ordering::Acquire) {
            return;
        }
        let (health, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            use sqlx::Connection;
            let options = pool.connect_options();
            let attempt = tokio::time::timeout(
                Duration::from_secs(2),
                sqlx::PgConnection::connect_with(&options),
            )
            .await;
            match attempt {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                }
                _ => health.report_outage(&pool),
            }
        });
    }

    /// Opens the breaker and starts the probe (once) that closes it.
    pub fn report_outage(&self, pool: &PgPool) {
        if !self.inner.down.swap(true, Ordering::AcqRel) {
            tracing::warn!("Postgres is unreachable: answering 503 until it is back");
            metrics::counter!("collab_database_outages_total").increment(1);
        }
        if self.inner.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let probe = tokio::time::timeout(Duration::from_secs(1), async {
                    sqlx::query("SELECT 1").execute(&pool).await
                })
                .await;
                if matches!(probe, Ok(Ok(_))) {
                    inner.down.store(false, Ordering::Release);
                    inner.probing.store(false, Ordering::Release);
                    tracing::info!("Postgres is reachable again");
                    return;
                }
            }
        });
    }
}

/// Whether `error` (or anything in its chain) is Postgres being unreachable, as opposed
/// to a query failing (see [`is_outage_error`]).
pub fn is_outage(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if let Some(error) = cause.downcast_ref::<sqlx::Error>() {
            return is_outage_error(error);
        }
        matches!(
            cause.downcast_ref::<collab_store::StoreError>(),
            Some(collab_store::StoreError::Database(error)) if is_outage_error(error)
        )
    })
}

/// Connection refused or reset, the server shutting down, crashed or not yet accepting
/// connections. Not the pool timing out: that is also what a busy pool does, so it is
/// checked with a connection of its own first (see [`DatabaseHealth::verify`]).
pub fn is_outage_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exceptions; 57P01-03: shutting down, crashed, starting.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}
