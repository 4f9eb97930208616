//! The shared handles every handler works with. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use collab_commands::AggregateStore;
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::auth::TokenVerifier;
use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub aggregates: AggregateStore,
    pub tokens: Arc<TokenVerifier>,
    pub nats: async_nats::Client,
    pub metrics: PrometheusHandle,
    pub read_wait: Duration,
    pub max_body_bytes: usize,
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

impl AppState {
    /// Read-your-writes: waits (bounded) until every read model has folded `min`.
    pub async fn reach(&self, min: Option<i64>) -> Result<(), ApiError> {
        let Some(min) = min else { return Ok(()) };
        if collab_projections::wait_for_position(&self.pool, min, self.read_wait).await? {
            Ok(())
        } else {
            Err(ApiError::NotYetConsistent { requested: min })
        }
    }
}
