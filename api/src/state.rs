//! The shared handles every handler works with. Cheap to clone.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use collab_commands::AggregateStore;
use collab_domain::{DocumentId, Scope};
use collab_projections::{wait_for_position, Reached, Registry};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;

use crate::auth::TokenVerifier;
use crate::error::ApiError;
use crate::extract::{Principal, RequestMeta};
use crate::rate_limit::RateLimits;
use collab_commands::access::{self, DocumentAccess, LinkKey};
use collab_commands::Committed;
use collab_domain::document::{Acting, DocumentCommand};
use collab_live::Live;

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
    pub limits: Arc<RateLimits>,
    /// The read models and workers (what read-your-writes waits for).
    pub registry: Arc<Registry>,
    /// Every newly committed event, for live tails.
    pub tail: collab_store::LogTail,
    /// Signs audit checkpoints and export seals; its public key is the one verification
    /// trusts. None: nothing is signed.
    pub audit_key: Option<Arc<ed25519_dalek::SigningKey>>,
    /// Cancelled when the server starts shutting down: endless responses (live tails)
    /// end, so the graceful shutdown does not wait for their clients.
    pub closing: tokio_util::sync::CancellationToken,
    /// This instance's search index (None when the api role is off).
    pub search: Option<collab_search::Search>,
    /// The GraphQL schema (`/v1/graphql`).
    pub graphql: Arc<crate::graphql::CollabSchema>,
    /// People whose first sign-in this process has seen (profiles filled from claims).
    pub sign_ins: Arc<crate::routes::profile::SignIns>,
    /// Wakes notification feeds when their person is told something.
    pub notification_wakeups: crate::routes::notifications::Wakeups,
    /// Webhook URLs may point at loopback and private addresses (tests, development).
    pub webhook_allow_private: bool,
    /// Where snapshots and files live (S3, or the local disk).
    pub blobs: Arc<dyn collab_live::blob_store::BlobStore>,
    /// Files' limits and URL lifetimes.
    pub files: Arc<crate::files::FileSettings>,
    /// Sign-in options of the web app.
    pub web: Arc<crate::web::WebSettings>,
    /// Open while Postgres is unreachable: requests are refused at once.
    pub database: crate::database_health::DatabaseHealth,
    /// Access checks of sockets opening one document together share their loads.
    pub access_loads: Arc<collab_commands::access::SharedAccessLoads>,
}

impl FromRef<AppState> for Arc<RateLimits> {
    fn from_ref(state: &AppState) -> Self {
        state.limits.clone()
    }
}

impl FromRef<AppState> for Arc<TokenVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

/// A reader's transaction sees one snapshot for all its statements: a page and its count,
/// a list and what it joins, read while a projector commits, agree with each other.
const READER_BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ";

impl AppState {
    /// What `user` (holding `link`, if any) may do with a live document, from the
    /// aggregates. Unknown documents and no access both get 404.
    pub async fn document_access(
        &self,
        document: DocumentId,
        principal: &Principal,
        link: Option<&LinkKey>,
    ) -> Result<DocumentAccess, ApiError> {
        let found = access::resolve(&self.aggregates, document, &principal.caller(link)).await?;
        self.granted(found)
    }

    /// As `document_access`, sharing the aggregates' loads with the callers arriving at
    /// the same document meanwhile (see `SharedAccessLoads`): for sockets, which open in
    /// crowds.
    pub async fn shared_document_access(
        &self,
        document: DocumentId,
        principal: &Principal,
        link: Option<&LinkKey>,
    ) -> Result<DocumentAccess, ApiError> {
        let found = self
            .access_loads
            .resolve(&self.aggregates, document, &principal.caller(link))
            .await?;
        self.granted(found)
    }

    /// Access as resolved: none is 404 (a document that does not exist answers the same),
    /// and the workspace's rate limit applies.
    fn granted(&self, found: Option<DocumentAccess>) -> Result<DocumentAccess, ApiError> {
        let access = found.ok_or(ApiError::NotFound("document"))?;
        self.limits.check_workspace(access.workspace)?;
        Ok(access)
    }

    /// Runs document commands for `principal`: the document and its workspace are loaded
    /// once each, the caller's role is decided from them in the command path
    /// (`collab_commands::access`), and the workspace's rate limit applies. `commands`
    /// makes the commands from the caller's effective role.
    pub async fn run_on_document(
        &self,
        principal: &Principal,
        meta: &RequestMeta,
        document: DocumentId,
        expected_version: Option<i64>,
        commands: impl Fn(Acting) -> Vec<DocumentCommand>,
    ) -> Result<Committed, ApiError> {
        let charged = std::sync::atomic::AtomicBool::new(false);
        self.aggregates
            .execute_on_document(
                document,
                &principal.caller(meta.link.as_ref()),
                &principal.command_meta(meta),
                expected_version,
                |access, by| {
                    // Once per request, not once per internal retry.
                    if !charged.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        self.limits.check_workspace(access.workspace)?;
                    }
                    Ok(commands(by))
                },
            )
            .await
    }

    /// A read-only transaction on the read models as `collab_reader`, scoped by row-level
    /// security to `user` and the workspaces they belong to (see migration 0005).
    pub async fn reader(
        &self,
        principal: &Principal,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
        let tx = self.begin_reader().await?;
        self.scope(tx, principal).await
    }

    /// Like [`AppState::reader`], with the documents shared with the caller visible too
    /// (for what spans workspaces, such as a person's notifications).
    pub async fn reader_with_shares(
        &self,
        principal: &Principal,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
        let mut tx = self.pool.begin_with(READER_BEGIN).await?;
        if principal.service.is_none() {
            // Read as the owner, before the role changes: shares of every workspace.
            sqlx::query(
                "SELECT set_config('collab.documents', \
                 (SELECT coalesce(string_agg(document_id::text, ','), '') \
                  FROM rm_document_shares WHERE user_id = $1), true)",
            )
            .bind(principal.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("SET LOCAL ROLE collab_reader")
            .execute(&mut *tx)
            .await?;
        self.scope(tx, principal).await
    }

    /// Sets whose rows a reader transaction sees.
    async fn scope(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        principal: &Principal,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
        let user = &principal.id;
        set_local(&mut tx, "collab.user_id", user.as_str()).await?;
        match principal
            .service
            .as_ref()
            .filter(|s| s.has(Scope::DocumentsRead) || s.has(Scope::DocumentsWrite))
        {
            // A service account reads its own workspace.
            Some(service) => {
                set_local(&mut tx, "collab.workspaces", &service.workspace.to_string()).await?;
            }
            // Visible through the user_id policy alone, before the workspaces are known.
            None => {
                sqlx::query(
                    "SELECT set_config('collab.workspaces', \
                     (SELECT coalesce(string_agg(workspace_id::text, ','), '') \
                      FROM rm_workspace_members WHERE user_id = $1), true)",
                )
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
            }
        }
        Ok(tx)
    }

    /// A read-only transaction as `collab_reader` that sees one workspace's rows, for a
    /// caller already authorized for it (auditors, service accounts with `audit:read`).
    pub async fn reader_for_workspace(
        &self,
        workspace: collab_domain::WorkspaceId,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
        let mut tx = self.begin_reader().await?;
        set_local(&mut tx, "collab.workspaces", &workspace.to_string()).await?;
        Ok(tx)
    }

    /// A transaction as `collab_reader`, which row-level security applies to; it sees
    /// nothing until the `collab.*` settings say whose rows.
    async fn begin_reader(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
        let mut tx = self.pool.begin_with(READER_BEGIN).await?;
        sqlx::query("SET LOCAL ROLE collab_reader")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Like [`AppState::reader`], with one more document visible (its row and its
    /// presence, nothing else of its workspace): for a document whose access the
    /// aggregates granted (a share link, a share, a service account's key). See migration
    /// 0009.
    pub async fn reader_for_document(
        &self,
        principal: &Principal,
        document: DocumentId,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
        let mut tx = self.reader(principal).await?;
        set_local(&mut tx, "collab.documents", &document.to_string()).await?;
        Ok(tx)
    }

    /// Read-your-writes: waits (bounded) until every read model awaited by every query
    /// has folded `min`.
    pub async fn reach(&self, min: Option<i64>) -> Result<(), ApiError> {
        self.reach_models(min, &self.registry.awaited_by_every_query())
            .await
    }

    /// Read-your-writes for a route that reads the read model `name` too.
    pub async fn reach_with(&self, min: Option<i64>, name: &str) -> Result<(), ApiError> {
        self.reach_with_all(min, &[name]).await
    }

    /// Read-your-writes for a route that reads the read models `names` too (one wait).
    pub async fn reach_with_all(&self, min: Option<i64>, names: &[&str]) -> Result<(), ApiError> {
        let mut models = self.registry.awaited_by_every_query();
        models.extend(
            names
                .iter()
                .filter_map(|n| self.registry.read_model_named(n)),
        );
        self.reach_models(min, &models).await
    }

    async fn reach_models(
        &self,
        min: Option<i64>,
        models: &[std::sync::Arc<dyn collab_projections::ReadModel>],
    ) -> Result<(), ApiError> {
        let Some(min) = min else { return Ok(()) };
        match wait_for_position(&self.pool, models, min, self.read_wait).await? {
            Reached::Yes => Ok(()),
            Reached::NotYet => Err(ApiError::NotYetConsistent { requested: min }),
            Reached::BeyondHead { head } => Err(ApiError::PositionBeyondHead {
                requested: min,
                head,
            }),
        }
    }
}

/// Sets a `collab.*` setting for the rest of the transaction.
async fn set_local(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    name: &str,
    value: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(name)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
