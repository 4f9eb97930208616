//! The shared handles every handler works with. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use collab_commands::AggregateStore;
use collab_domain::document::Document;
use collab_domain::workspace::Workspace;
use collab_domain::{DocumentId, UserId, WorkspaceId, WorkspaceRole};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::auth::TokenVerifier;
use crate::error::ApiError;
use crate::live::Live;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub aggregates: AggregateStore,
    pub tokens: Arc<TokenVerifier>,
    pub nats: async_nats::Client,
    pub metrics: PrometheusHandle,
    pub read_wait: Duration,
    pub max_body_bytes: usize,
    pub live: Live,
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

impl AppState {
    /// The caller's role in a live document's workspace, from the aggregates (consistent,
    /// not the read model). Unknown documents and non-members both get 404.
    pub async fn document_role(
        &self,
        document: DocumentId,
        user: &UserId,
    ) -> Result<(WorkspaceId, WorkspaceRole), ApiError> {
        let loaded = self.aggregates.load::<Document>(document.as_uuid()).await?;
        let workspace = loaded
            .aggregate
            .live_workspace()
            .ok_or(ApiError::NotFound("document"))?;
        let role = self
            .aggregates
            .load::<Workspace>(workspace.as_uuid())
            .await?
            .aggregate
            .role_of(user)
            .ok_or(ApiError::NotFound("document"))?;
        Ok((workspace, role))
    }

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
