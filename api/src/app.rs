//! Building and running the process: connect, migrate, start the enabled roles, serve.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use collab_commands::AggregateStore;
use collab_live::blob_store::{BlobStore, LocalDiskStore, S3Store};
use collab_projections::{run_consumer, Consumer, Registry};
use collab_store::relay::ensure_events_stream;
use collab_store::{EventStore, Relay, RelayConfig};
use secrecy::ExposeSecret;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::auth::TokenVerifier;
use crate::observability::metrics_handle;
use crate::rate_limit::RateLimits;
use crate::routes;
use crate::settings::{validate_subject_prefix, Settings};
use crate::state::AppState;
use collab_live::protocol::close;
use collab_live::{Live, LiveServices, LiveTasks};

/// Why the process could not start; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "cannot connect to Postgres at {url}: {cause}. Start Postgres or set COLLAB_DATABASE_URL."
    )]
    Postgres { url: String, cause: sqlx::Error },
    #[error(
        "the database at {url} does not exist yet: run `collab migrate` (or `collab serve`, which creates and migrates it)"
    )]
    DatabaseMissing { url: String },
    #[error("cannot migrate the database at {url}: {cause}")]
    Migrate {
        url: String,
        cause: sqlx::migrate::MigrateError,
    },
    #[error("cannot connect to NATS at {url}: {reason}. Start nats-server with JetStream (-js) or set COLLAB_NATS_URL.")]
    Nats { url: String, reason: String },
    #[error("cannot listen on {addr}: {cause}. Pick another address with COLLAB_LISTEN.")]
    Listen {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error("cannot use the S3 bucket: {0}. Check COLLAB_S3_ENDPOINT, COLLAB_S3_BUCKET, COLLAB_S3_REGION and the AWS credentials.")]
    Storage(String),
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error("cannot open the search index: {0}")]
    Search(collab_search::SearchError),
}

/// Hides the password of a connection URL for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A pooled connection idle at least this long is pinged before it is handed out (one
/// used more recently has just answered).
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Connects to Postgres (bounded wait, so an unreachable server is reported promptly).
pub async fn connect_postgres(settings: &Settings) -> Result<PgPool, StartupError> {
    let url = settings.database_url.expose_secret();
    PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A connection handed back moments ago is alive: check only those idle a while
        // (sqlx's default pings every connection it hands out: one more round trip for
        // each statement run on the pool). One that died within the second (a Postgres
        // restart) fails its statement once and is dropped.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect(url)
        .await
        .map_err(|cause| {
            // 3D000: invalid_catalog_name — the server is up, the database is not there.
            let missing = cause
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "3D000");
            if missing {
                StartupError::DatabaseMissing {
                    url: redact_url(url),
                }
            } else {
                StartupError::Postgres {
                    url: redact_url(url),
                    cause,
                }
            }
        })
}

/// Connects to Postgres and applies pending migrations.
/// Creates the database first if it does not exist yet.
pub async fn migrate(settings: &Settings) -> Result<PgPool, StartupError> {
    let url = settings.database_url.expose_secret();
    let exists = Postgres::database_exists(url)
        .await
        .map_err(|cause| StartupError::Postgres {
            url: redact_url(url),
            cause,
        })?;
    if !exists {
        info!(url = redact_url(url), "creating database");
        Postgres::create_database(url)
            .await
            .map_err(|cause| StartupError::Postgres {
                url: redact_url(url),
                cause,
            })?;
    }
    let pool = connect_postgres(settings).await?;
    collab_migrations::run(&pool)
        .await
        .map_err(|cause| StartupError::Migrate {
            url: redact_url(settings.database_url.expose_secret()),
            cause,
        })?;
    Ok(pool)
}

async fn connect_client(
    settings: &Settings,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, String> {
    let servers = settings
        .nats_url
        .split(',')
        .map(|url| url.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a NATS URL (or a comma-separated list of them): {e}"))?;
    options
        .connection_timeout(Duration::from_secs(5))
        // With several servers, try them in the order given (the first is usually local).
        .retain_servers_order()
        .connect(servers)
        .await
        .map_err(|e| e.to_string())
}

/// The connection live fan-out publishes and subscribes on. Without echo: the server
/// does not send an instance its own fan-out back (it would only be discarded).
pub async fn connect_fanout_nats(settings: &Settings) -> Result<async_nats::Client, StartupError> {
    let options = async_nats::ConnectOptions::new()
        .name("collab-fanout")
        .no_echo();
    connect_client(settings, options)
        .await
        .map_err(|reason| StartupError::Nats {
            url: settings.nats_url.clone(),
            reason,
        })
}

/// Connects to NATS and makes sure JetStream and the events stream are there.
pub async fn connect_nats(
    settings: &Settings,
) -> Result<(async_nats::Client, async_nats::jetstream::Context), StartupError> {
    let failed = |reason: String| StartupError::Nats {
        url: settings.nats_url.clone(),
        reason,
    };
    let client = connect_client(settings, async_nats::ConnectOptions::new().name("collab"))
        .await
        .map_err(failed)?;
    let js = async_nats::jetstream::new(client.clone());
    tokio::time::timeout(
        Duration::from_secs(10),
        ensure_events_stream(&js, &settings.subject_prefix, settings.nats_replicas),
    )
    .await
    .map_err(|_| failed("JetStream did not answer (is it enabled with -js?)".into()))?
    .map_err(failed)?;
    Ok((client, js))
}

pub struct Application {
    tail_stop: CancellationToken,
    search_stop: CancellationToken,
    search_task: Option<tokio::task::JoinHandle<()>>,
    live_tasks: LiveTasks,
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: Settings,
    state: AppState,
    js: async_nats::jetstream::Context,
}

impl Application {
    /// Builds the process with the product's read models and workers.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let registry = Registry::standard_with(settings.history);
        Self::build_with(settings, registry).await
    }

    /// Builds the process with the given read models and workers (tests add their own).
    pub async fn build_with(settings: Settings, registry: Registry) -> Result<Self, StartupError> {
        validate_subject_prefix(&settings.subject_prefix).map_err(StartupError::Settings)?;
        let pool = migrate(&settings).await?;
        let (nats, js) = connect_nats(&settings).await?;
        let fanout_nats = connect_fanout_nats(&settings).await?;
        // Every process listens: without the api role it serves only /healthz, /readyz
        // and /metrics (probes, and the relay's and projectors' metrics).
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|cause| StartupError::Listen {
                    addr: settings.listen,
                    cause,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|cause| StartupError::Listen {
                addr: settings.listen,
                cause,
            })?;
        let limits = Arc::new(RateLimits::new(&settings.rate_limits));
        let blobs: Arc<dyn BlobStore> = match &settings.files.s3 {
            Some(s3) => Arc::new(S3Store::connect(s3).await.map_err(StartupError::Storage)?),
            None => Arc::new(LocalDiskStore::new(settings.live.blob_dir.clone())),
        };
        let aggregates =
            AggregateStore::new(EventStore::new(pool.clone()), settings.snapshot_every);
        let (live, live_tasks) = Live::start(
            LiveServices {
                aggregates: aggregates.clone(),
                pool: pool.clone(),
                nats: nats.clone(),
                fanout_nats,
                blobs: blobs.clone(),
            },
            &settings.subject_prefix,
            settings.live.clone(),
            settings.rate_limits.socket_messages.quota(),
        );
        let tail_stop = CancellationToken::new();
        // One listener for appends serves the relay, the log tail and the search indexer.
        let appends = aggregates.events().appends().await;
        let tail = collab_store::LogTail::start(
            pool.clone(),
            &appends,
            settings.live_tail_buffer,
            tail_stop.clone(),
        );
        let notification_wakeups =
            crate::routes::notifications::Wakeups::start(pool.clone(), tail_stop.clone());
        let search_stop = CancellationToken::new();
        let (search, search_task) = if settings.roles.api {
            let (search, task) = collab_search::Search::start(
                &settings.search,
                pool.clone(),
                &appends,
                search_stop.clone(),
            )
            .await
            .map_err(StartupError::Search)?;
            (Some(search), Some(task))
        } else {
            (None, None)
        };
        let state = AppState {
            graphql: Arc::new(crate::graphql::schema()),
            search,
            tail,
            audit_key: settings.audit.signing_key.clone().map(Arc::new),
            closing: CancellationToken::new(),
            live,
            limits,
            aggregates,
            pool,
            tokens: Arc::new(TokenVerifier::new(&settings.auth)),
            nats,
            metrics: metrics_handle(),
            read_wait: settings.read_wait,
            max_body_bytes: settings.max_body_bytes,
            registry: Arc::new(registry),
            sign_ins: Default::default(),
            notification_wakeups,
            webhook_allow_private: settings.webhooks.allow_private,
            blobs,
            files: Arc::new(settings.files.clone()),
            web: Arc::new(settings.web.clone()),
            database: Default::default(),
            access_loads: Default::default(),
        };
        Ok(Self {
            tail_stop,
            search_stop,
            search_task,
            live_tasks,
            listener,
            local_addr,
            settings,
            state,
            js,
        })
    }

    /// The address the process listens on (the API, or only the operations endpoints
    /// when the api role is off).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then stops taking requests, lets the relay
    /// publish what is committed, and returns once every role has stopped.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let background = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let roles = self.settings.roles;
        if roles.relay {
            let relay = Relay::new(
                self.state.aggregates.events().clone(),
                self.js.clone(),
                RelayConfig {
                    replicas: self.settings.nats_replicas,
                    ..RelayConfig::new(self.settings.subject_prefix.clone())
                },
            );
            tasks.spawn(relay.run(background.clone()));
        }
        if roles.projector {
            if let Some(key) = &self.settings.audit.signing_key {
                tasks.spawn(collab_projections::checkpointer::run(
                    self.state.aggregates.events().clone(),
                    collab_projections::checkpointer::CheckpointConfig {
                        key: key.clone(),
                        every_events: self.settings.audit.checkpoint_every,
                        interval: self.settings.audit.checkpoint_interval,
                    },
                    background.clone(),
                ));
            }
            for consumer in self.state.registry.consumers() {
                tasks.spawn(run_consumer(
                    self.state.pool.clone(),
                    self.js.clone(),
                    self.settings.subject_prefix.clone(),
                    consumer.clone(),
                    background.clone(),
                ));
            }
        }
        if roles.mailer {
            match crate::mailer::Mailer::new(self.state.pool.clone(), self.settings.mail.clone()) {
                Ok(Some(mailer)) => {
                    tasks.spawn(mailer.run(background.clone()));
                }
                Ok(None) => info!("mailer: no COLLAB_SMTP_URL; notifications stay in the app"),
                Err(error) => tracing::error!(%error, "mailer: not started"),
            }
        }
        if roles.webhooks {
            let sender = crate::webhooks::Sender::new(
                self.state.pool.clone(),
                self.state.aggregates.clone(),
                self.settings.webhooks.clone(),
            );
            tasks.spawn(sender.run(background.clone()));
        }
        if roles.thumbnailer {
            let thumbnailer = crate::files::Thumbnailer {
                aggregates: self.state.aggregates.clone(),
                blobs: self.state.blobs.clone(),
                max_pixels: self.settings.files.thumbnail_max_pixels,
            };
            tasks.spawn(run_consumer(
                self.state.pool.clone(),
                self.js.clone(),
                self.settings.subject_prefix.clone(),
                Consumer::Worker(Arc::new(thumbnailer)),
                background.clone(),
            ));
            tasks.spawn(crate::files::sweep_uploads(
                self.state.pool.clone(),
                self.state.aggregates.clone(),
                self.state.blobs.clone(),
                self.settings.files.clone(),
                background.clone(),
            ));
        }
        if roles.downloads {
            tasks.spawn(crate::files::run_downloads(
                self.state.pool.clone(),
                self.state.aggregates.clone(),
                self.state.blobs.clone(),
                self.settings.files.clone(),
                background.clone(),
            ));
        }
        info!(
            addr = ?self.local_addr,
            api = roles.api,
            relay = roles.relay,
            projector = roles.projector,
            mailer = roles.mailer,
            webhooks = roles.webhooks,
            thumbnailer = roles.thumbnailer,
            downloads = roles.downloads,
            "collab is running"
        );
        let limits = self.state.limits.clone();
        let forget = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = every.tick() => limits.forget_idle(),
                    _ = forget.cancelled() => return,
                }
            }
        });
        // Live tails are responses that never end: end them when shutdown starts.
        let closing = self.state.closing.clone();
        let ending = shutdown.clone();
        tokio::spawn(async move {
            ending.cancelled().await;
            closing.cancel();
        });
        // Upgraded sockets are not connections axum waits for: close them ourselves.
        let rooms = self.state.live.rooms.clone();
        let closer = shutdown.clone();
        tokio::spawn(async move {
            closer.cancelled().await;
            rooms.close_all(close::RESTARTING, "server is restarting; reconnect");
        });
        let app = if roles.api {
            routes::router(self.state.clone())
        } else {
            routes::operations_router(self.state.clone())
        };
        // Edits are small frames: send each at once instead of letting Nagle hold it until
        // the peer's delayed ack (up to 40 ms on Linux).
        let listener = self.listener.tap_io(|socket| {
            if let Err(error) = socket.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        info!("shutting down: saving queued edits, then draining background roles");
        self.state
            .live
            .rooms
            .close_all(close::RESTARTING, "server is restarting; reconnect");
        self.live_tasks.stop.cancel();
        for handle in self.live_tasks.handles {
            let _ = handle.await;
        }
        background.cancel();
        self.tail_stop.cancel();
        self.search_stop.cancel();
        if let Some(task) = self.search_task {
            let _ = task.await;
        }
        while tasks.join_next().await.is_some() {}
        self.state.nats.flush().await.ok();
        served
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://u:secret@host/db"),
            "postgres://u:***@host/db"
        );
        assert_eq!(redact_url("postgres://u@host/db"), "postgres://u@host/db");
    }
}
