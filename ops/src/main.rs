//! `collab`: the one binary. Reads settings, starts telemetry, and runs a subcommand.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
mod history;

use collab_api::app::{connect_postgres, migrate};
use collab_api::auth::{parse_algorithms, AuthSettings, TokenVerifier};
use collab_api::files::{self, FileSettings};
use collab_api::mailer::MailSettings;
use collab_api::rate_limit::{Limit, RateLimitSettings};
use collab_api::settings::{defaults, AuditSettings};
use collab_api::webhooks::WebhookSettings;
use collab_api::{Application, Roles, Settings};
use collab_domain::UserId;
use collab_live::blob_store::S3Settings;
use collab_live::LiveConfig;
use collab_projections::history::HistoryConfig;
use collab_projections::{rebuild, Consumer, Registry};
use collab_search::{IndexerConfig, SearchConfig};
use indicatif::{ProgressBar, ProgressStyle};
use jsonwebtoken::Algorithm;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// The server allocates and frees a small buffer for every message on every path (socket
/// frames, updates, event rows, JetStream messages): glibc's allocator was a third of its
/// CPU while ingesting a trace. mimalloc's thread-local free lists make that a few percent.
/// (Feature `system-allocator` leaves it out, for heap profilers.)
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "collab",
    version,
    about = "Candlefish Collab: event-sourced real-time collaboration"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GlobalArgs {
    /// Postgres connection URL (the database is created if missing).
    #[arg(
        long,
        env = "COLLAB_DATABASE_URL",
        global = true,
        default_value = defaults::DATABASE_URL,
        hide_env_values = true
    )]
    database_url: String,
    /// NATS server URL, or several comma-separated (JetStream must be enabled).
    #[arg(
        long,
        env = "COLLAB_NATS_URL",
        global = true,
        default_value = defaults::NATS_URL
    )]
    nats_url: String,
    /// JetStream replicas of the events and presence streams: 1 on a single server, up to
    /// the number of JetStream servers on a cluster (3 is usual).
    #[arg(long, env = "COLLAB_NATS_REPLICAS", global = true, default_value_t = 1)]
    nats_replicas: usize,
    /// First token of every NATS subject; the events stream is <PREFIX>_EVENTS.
    #[arg(
        long,
        env = "COLLAB_SUBJECT_PREFIX",
        global = true,
        default_value = defaults::SUBJECT_PREFIX
    )]
    subject_prefix: String,
    /// HS256 secret for bearer tokens (development; needed by `token mint`).
    #[arg(long, env = "COLLAB_JWT_SECRET", global = true, hide_env_values = true)]
    jwt_secret: Option<String>,
    /// JWKS URL of the identity provider (RS256/ES256 tokens), e.g. Auth0's
    /// https://TENANT/.well-known/jwks.json.
    #[arg(long, env = "COLLAB_JWKS_URL", global = true)]
    jwks_url: Option<String>,
    /// Accepted JWT algorithms, comma-separated (default: HS256 with a secret, plus
    /// RS256,ES256 with a JWKS URL).
    #[arg(long, env = "COLLAB_JWT_ALGORITHMS", global = true)]
    jwt_algorithms: Option<String>,
    /// Required `iss` claim.
    #[arg(long, env = "COLLAB_JWT_ISSUER", global = true)]
    jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "COLLAB_JWT_AUDIENCE", global = true)]
    jwt_audience: Option<String>,
    /// Clock leeway for exp/nbf, in seconds.
    #[arg(
        long,
        env = "COLLAB_JWT_LEEWAY_SECS",
        global = true,
        default_value_t = defaults::JWT_LEEWAY_SECS
    )]
    jwt_leeway_secs: u64,
    /// Log format: json (default) or pretty.
    #[arg(long, env = "COLLAB_LOG_FORMAT", global = true, default_value = defaults::LOG_FORMAT)]
    log_format: String,
    /// Document history: one actor's edits with no pause longer than this many seconds
    /// form one history entry (the server and rebuilds must agree).
    #[arg(long, env = "COLLAB_HISTORY_SESSION_GAP_SECS", global = true, default_value_t = HistoryConfig::default().session_gap.as_secs())]
    history_session_gap_secs: u64,
    /// Document history: a history snapshot every this many content versions (a point of
    /// history replays fewer updates than this after its snapshot).
    #[arg(long, env = "COLLAB_HISTORY_SNAPSHOT_EVERY", global = true, default_value_t = HistoryConfig::default().snapshot_every)]
    history_snapshot_every: i64,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates first).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Development tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read models.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Replay, export and follow a workspace's events through the HTTP API.
    #[command(subcommand)]
    Events(history::EventsCommand),
    /// Verify the log's integrity; make signing keys.
    #[command(subcommand)]
    Audit(history::AuditCommand),
    /// This instance's search index.
    #[command(subcommand)]
    Search(SearchCommand),
    /// The GraphQL schema.
    #[command(subcommand)]
    Graphql(GraphqlCommand),
    /// People's personal data.
    #[command(subcommand)]
    Users(UsersCommand),
    /// The outbox relay, by hand.
    #[command(subcommand)]
    Relay(RelayCommand),
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Publish the Postgres log into this prefix's JetStream events stream until the
    /// stream holds all of it, then exit (after a restore: the stream is empty, or holds
    /// an older part of the same log). A running server's relay may do the publishing;
    /// either way the command returns once the stream has caught up.
    Republish {
        /// First delete this prefix's JetStream streams and with them every durable
        /// consumer (for a stream that holds another log, which the relay refuses to
        /// extend). Stop the servers using the prefix first.
        #[arg(long)]
        delete_existing: bool,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Erase a person's personal data, as `DELETE /v1/me/personal-data` does for
    /// themselves: records `PersonalDataErased` (actor `service:operator`) and destroys
    /// their data keys. Prints what it did as JSON.
    Erase {
        /// The person's user id (the token's `sub`).
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum GraphqlCommand {
    /// Print the schema's SDL (a federation subgraph), as committed in docs/schema.graphql.
    Sdl,
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Make the search index anew from the log (stop the server that uses it first).
    Rebuild {
        #[arg(long, env = "COLLAB_SEARCH_DIR", default_value = "data/search")]
        dir: std::path::PathBuf,
    },
    /// Print every entry of the index as JSON lines, in key order (to compare indexes).
    Dump {
        #[arg(long, env = "COLLAB_SEARCH_DIR", default_value = "data/search")]
        dir: std::path::PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address of the HTTP API: host:port, the host an IP address or a name
    /// (`localhost:7700`).
    #[arg(long, env = "COLLAB_LISTEN", default_value = defaults::LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    /// Development sign-in for the web app: anyone signs in under any name. Refused
    /// unless an HS256 secret is set (COLLAB_JWT_SECRET) and the address is loopback.
    #[arg(long, env = "COLLAB_DEV_LOGIN", default_value_t = false)]
    dev_login: bool,
    /// OpenID Connect issuer the web app signs people in with (authorisation code flow
    /// with PKCE). Its ID tokens are accepted: keys from its discovery document (unless
    /// COLLAB_JWKS_URL is set), `iss` this issuer and `aud` the client id (unless
    /// COLLAB_JWT_ISSUER / COLLAB_JWT_AUDIENCE are set).
    #[arg(long, env = "COLLAB_OIDC_ISSUER", requires = "oidc_client_id")]
    oidc_issuer: Option<String>,
    /// The web app's client id at the OpenID Connect issuer (a public client).
    #[arg(long, env = "COLLAB_OIDC_CLIENT_ID", requires = "oidc_issuer")]
    oidc_client_id: Option<String>,
    /// Roles to run: any of api, relay, projector, mailer, webhooks, thumbnailer,
    /// downloads (comma-separated), or all.
    #[arg(long, env = "COLLAB_ROLES", default_value = defaults::ROLES)]
    roles: String,
    /// Longest a query waits for X-Collab-Min-Position, in milliseconds.
    #[arg(long, env = "COLLAB_READ_WAIT_MS", default_value_t = defaults::READ_WAIT_MS)]
    read_wait_ms: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "COLLAB_MAX_BODY_BYTES", default_value_t = defaults::MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Aggregate snapshot interval, in stream versions.
    #[arg(long, env = "COLLAB_SNAPSHOT_EVERY", default_value_t = defaults::SNAPSHOT_EVERY)]
    snapshot_every: i64,
    /// Postgres connections in the pool.
    #[arg(
        long,
        env = "COLLAB_DATABASE_MAX_CONNECTIONS",
        default_value_t = defaults::DATABASE_MAX_CONNECTIONS
    )]
    database_max_connections: u32,
    /// Largest accepted Yjs update, in bytes (larger: socket closed with 1009).
    #[arg(long, env = "COLLAB_MAX_UPDATE_BYTES", default_value_t = LiveConfig::default().max_update_bytes)]
    max_update_bytes: usize,
    /// Largest document (snapshot + updates since), in bytes.
    #[arg(long, env = "COLLAB_MAX_DOCUMENT_BYTES", default_value_t = LiveConfig::default().max_document_bytes)]
    max_document_bytes: usize,
    /// A content snapshot every this many updates of a document...
    #[arg(long, env = "COLLAB_CONTENT_SNAPSHOT_EVERY", default_value_t = LiveConfig::default().snapshot_every)]
    content_snapshot_every: i64,
    /// ...or after this many milliseconds without updates.
    #[arg(long, env = "COLLAB_CONTENT_SNAPSHOT_QUIET_MS", default_value_t = LiveConfig::default().snapshot_quiet.as_millis() as u64)]
    content_snapshot_quiet_ms: u64,
    /// Content snapshots up to this size stay in Postgres; larger go to the blob store.
    #[arg(long, env = "COLLAB_SNAPSHOT_INLINE_MAX_BYTES", default_value_t = LiveConfig::default().snapshot_inline_max_bytes)]
    snapshot_inline_max_bytes: usize,
    /// Directory of the local-disk blob store.
    #[arg(long, env = "COLLAB_BLOB_DIR", default_value_os_t = LiveConfig::default().blob_dir)]
    blob_dir: std::path::PathBuf,
    /// Awareness states not renewed for this many seconds are removed.
    #[arg(long, env = "COLLAB_AWARENESS_TIMEOUT_SECS", default_value_t = LiveConfig::default().awareness_timeout.as_secs())]
    awareness_timeout_secs: u64,
    /// A sync socket the server has sent nothing for this many seconds gets an empty
    /// awareness frame (stock clients reconnect after 30 s of silence).
    #[arg(long, env = "COLLAB_WS_KEEPALIVE_SECS", default_value_t = LiveConfig::default().keepalive.as_secs(), value_parser = clap::value_parser!(u64).range(1..=25))]
    ws_keepalive_secs: u64,
    /// HTTP requests per second per user (0: unlimited); over it: 429 + Retry-After.
    #[arg(long, env = "COLLAB_RATE_LIMIT_USER_PER_SECOND", default_value_t = RateLimitSettings::default().per_user.per_second)]
    rate_limit_user_per_second: u32,
    /// HTTP requests a user may make at once before the per-second rate applies.
    #[arg(long, env = "COLLAB_RATE_LIMIT_USER_BURST", default_value_t = RateLimitSettings::default().per_user.burst)]
    rate_limit_user_burst: u32,
    /// HTTP requests per second per workspace (0: unlimited).
    #[arg(long, env = "COLLAB_RATE_LIMIT_WORKSPACE_PER_SECOND", default_value_t = RateLimitSettings::default().per_workspace.per_second)]
    rate_limit_workspace_per_second: u32,
    /// HTTP requests a workspace may take at once before the per-second rate applies.
    #[arg(long, env = "COLLAB_RATE_LIMIT_WORKSPACE_BURST", default_value_t = RateLimitSettings::default().per_workspace.burst)]
    rate_limit_workspace_burst: u32,
    /// Sync messages per second per socket (0: unlimited); beyond it a socket is read
    /// more slowly (nothing is lost).
    #[arg(long, env = "COLLAB_SOCKET_MESSAGES_PER_SECOND", default_value_t = RateLimitSettings::default().socket_messages.per_second)]
    socket_messages_per_second: u32,
    /// Sync messages a socket may send at once before the per-second rate applies.
    #[arg(long, env = "COLLAB_SOCKET_MESSAGES_BURST", default_value_t = RateLimitSettings::default().socket_messages.burst)]
    socket_messages_burst: u32,
    /// Presence log retention, in hours.
    #[arg(long, env = "COLLAB_PRESENCE_RETENTION_HOURS", default_value_t = LiveConfig::default().presence_retention.as_secs() / 3600)]
    presence_retention_hours: u64,
    /// Ed25519 key that signs audit checkpoints and export seals: the base64 of a 32-byte
    /// seed (`collab audit keygen`). Unset: nothing is signed.
    #[arg(long, env = "COLLAB_AUDIT_SIGNING_KEY", hide_env_values = true)]
    audit_signing_key: Option<String>,
    /// A signed checkpoint per changed workspace every this many events...
    #[arg(long, env = "COLLAB_AUDIT_CHECKPOINT_EVERY", default_value_t = defaults::AUDIT_CHECKPOINT_EVERY)]
    audit_checkpoint_every: i64,
    /// ...or every this many seconds, whichever comes first.
    #[arg(long, env = "COLLAB_AUDIT_CHECKPOINT_INTERVAL_SECS", default_value_t = defaults::AUDIT_CHECKPOINT_INTERVAL_SECS)]
    audit_checkpoint_interval_secs: u64,
    /// Directory of this instance's search index (each instance its own); `memory`: an
    /// index in memory, refilled from the log at every start.
    #[arg(long, env = "COLLAB_SEARCH_DIR", default_value = "data/search")]
    search_dir: String,
    /// A document being edited is re-indexed for search at most once per this many
    /// milliseconds.
    #[arg(long, env = "COLLAB_SEARCH_REFRESH_MS", default_value_t = IndexerConfig::default().refresh.as_millis() as u64)]
    search_refresh_ms: u64,
    /// Events a live tail (SSE) may fall behind before it gets `event: lagged` and closes.
    #[arg(long, env = "COLLAB_LIVE_TAIL_BUFFER", default_value_t = defaults::LIVE_TAIL_BUFFER)]
    live_tail_buffer: usize,
    /// The SMTP server notification emails go through: `smtps://user:pass@host:465` (TLS),
    /// `smtp://…?tls=required` (STARTTLS required), `?tls=opportunistic`, or plain
    /// `smtp://host:port` (unencrypted: development only). Unset: no emails.
    #[arg(long, env = "COLLAB_SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The sender of notification emails, `Name <address>`.
    #[arg(long, env = "COLLAB_SMTP_FROM", default_value_t = MailSettings::default().from)]
    smtp_from: String,
    /// The web app's address, which links in emails point to.
    #[arg(long, env = "COLLAB_PUBLIC_URL", default_value_t = MailSettings::default().public_url)]
    public_url: String,
    /// Seconds an immediate email waits (skipped if the notification is read meanwhile).
    #[arg(long, env = "COLLAB_MAIL_DELAY_SECS", default_value_t = MailSettings::default().delay.as_secs())]
    mail_delay_secs: u64,
    /// How often the mailer looks for emails to send, in milliseconds.
    #[arg(long, env = "COLLAB_MAIL_POLL_MS", default_value_t = MailSettings::default().poll.as_millis() as u64)]
    mail_poll_ms: u64,
    /// Seconds an hourly digest gathers.
    #[arg(long, env = "COLLAB_MAIL_HOURLY_SECS", default_value_t = MailSettings::default().hourly.as_secs())]
    mail_hourly_secs: u64,
    /// Seconds a daily digest gathers.
    #[arg(long, env = "COLLAB_MAIL_DAILY_SECS", default_value_t = MailSettings::default().daily.as_secs())]
    mail_daily_secs: u64,
    /// Seconds before the first retry of an email the server did not take (doubling each
    /// time, at most an hour).
    #[arg(long, env = "COLLAB_MAIL_RETRY_SECS", default_value_t = MailSettings::default().retry_base.as_secs())]
    mail_retry_secs: u64,
    /// Attempts before an email is given up.
    #[arg(long, env = "COLLAB_MAIL_MAX_ATTEMPTS", default_value_t = MailSettings::default().max_attempts)]
    mail_max_attempts: i32,
    /// Seconds before each retry of a failed webhook delivery, comma-separated; after the
    /// last, the delivery has failed.
    #[arg(
        long,
        env = "COLLAB_WEBHOOK_RETRY_SCHEDULE",
        default_value = "5,300,1800,7200,18000,36000,36000"
    )]
    webhook_retry_schedule: String,
    /// Seconds a webhook receiver may take to answer.
    #[arg(long, env = "COLLAB_WEBHOOK_TIMEOUT_SECS", default_value_t = WebhookSettings::default().timeout.as_secs())]
    webhook_timeout_secs: u64,
    /// Failed delivery attempts in a row after which a webhook is disabled.
    #[arg(long, env = "COLLAB_WEBHOOK_DISABLE_AFTER", default_value_t = WebhookSettings::default().disable_after)]
    webhook_disable_after: i32,
    /// How often the webhook worker looks for due deliveries, in milliseconds.
    #[arg(long, env = "COLLAB_WEBHOOK_POLL_MS", default_value_t = WebhookSettings::default().poll.as_millis() as u64)]
    webhook_poll_ms: u64,
    /// Let webhooks reach loopback and private addresses (tests and development only).
    #[arg(long, env = "COLLAB_WEBHOOK_ALLOW_PRIVATE", default_value_t = false)]
    webhook_allow_private: bool,
    /// The S3 bucket for files and large snapshots (credentials from the standard AWS
    /// variables). Unset: the local disk (`COLLAB_BLOB_DIR`), and no file uploads.
    #[arg(long, env = "COLLAB_S3_BUCKET")]
    s3_bucket: Option<String>,
    /// An S3-compatible store's URL (path-style addressing); unset: Amazon S3.
    #[arg(long, env = "COLLAB_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The bucket's region.
    #[arg(long, env = "COLLAB_S3_REGION", default_value = files::defaults::S3_REGION)]
    s3_region: String,
    /// Largest file accepted, in bytes.
    #[arg(long, env = "COLLAB_MAX_FILE_BYTES", default_value_t = files::defaults::MAX_FILE_BYTES)]
    max_file_bytes: u64,
    /// Files larger than this many bytes are uploaded in parts of this size (at least 5 MiB).
    #[arg(long, env = "COLLAB_UPLOAD_PART_BYTES", default_value_t = files::defaults::PART_BYTES, value_parser = clap::value_parser!(u64).range(5 * 1024 * 1024..))]
    upload_part_bytes: u64,
    /// Seconds upload URLs are valid; uploads not completed within twice this are aborted.
    #[arg(long, env = "COLLAB_UPLOAD_EXPIRY_SECS", default_value_t = files::defaults::UPLOAD_EXPIRY_SECS, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    upload_expiry_secs: u64,
    /// Seconds download URLs are valid.
    #[arg(long, env = "COLLAB_DOWNLOAD_URL_SECS", default_value_t = files::defaults::DOWNLOAD_EXPIRY_SECS, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    download_url_secs: u64,
    /// Images with more pixels than this get no thumbnail.
    #[arg(long, env = "COLLAB_THUMBNAIL_MAX_PIXELS", default_value_t = files::defaults::THUMBNAIL_MAX_PIXELS)]
    thumbnail_max_pixels: u64,
    /// Seconds a built zip of the download center is kept.
    #[arg(long, env = "COLLAB_ZIP_EXPIRY_SECS", default_value_t = files::defaults::ZIP_EXPIRY_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    zip_expiry_secs: u64,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a signed development token for a user.
    Mint {
        /// The user id the token is for (its `sub` claim), e.g. `alice`.
        #[arg(long)]
        user: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 24 * 3600)]
        ttl: u64,
        /// Sync sockets opened with this token are read-only.
        #[arg(long)]
        read_only: bool,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Rebuild read models from the Postgres log (position 0 onwards).
    Rebuild {
        /// A read model's name (see `status`) or `all`.
        name: String,
    },
    /// Show each read model's and worker's position, lag (events of its categories not
    /// yet folded) and, for workers, parked events.
    Status,
    /// Requeue a worker's parked events: the running worker handles them again.
    Retry {
        /// The worker's name (see `status`).
        name: String,
    },
}

/// `host:port`, the host an IP address or a name to resolve (`localhost:7700`).
fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let addresses: Vec<SocketAddr> = raw
        .to_socket_addrs()
        .map_err(|e| format!("'{raw}' is not host:port ({e})"))?
        .collect();
    // `localhost` may resolve to ::1 first; the examples and most clients use 127.0.0.1.
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("'{raw}' resolves to no address"))
}

fn init_tracing(format: &str) {
    let filter = EnvFilter::try_from_env("COLLAB_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "pretty" {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

impl GlobalArgs {
    fn jwt_secret(&self) -> anyhow::Result<SecretString> {
        match &self.jwt_secret {
            Some(secret) if secret.len() >= 16 => Ok(secret.clone().into()),
            Some(_) => anyhow::bail!("COLLAB_JWT_SECRET must be at least 16 characters"),
            None => anyhow::bail!(
                "COLLAB_JWT_SECRET is not set; set it to a random string of 16+ characters \
                 (ops/dev/serve.sh sets a development one)"
            ),
        }
    }

    /// Token verification: an HS256 secret, a JWKS URL, or both. With the web app's OpenID
    /// Connect issuer and client id (`oidc`), the issuer's keys are found through its
    /// discovery document (unless COLLAB_JWKS_URL names them), and tokens signed with them
    /// must come from it and be for that client (unless COLLAB_JWT_ISSUER /
    /// COLLAB_JWT_AUDIENCE say otherwise).
    fn auth(&self, oidc: Option<&collab_api::web::OidcClient>) -> anyhow::Result<AuthSettings> {
        let secret = match &self.jwt_secret {
            Some(_) => Some(self.jwt_secret()?),
            None => None,
        };
        if secret.is_none() && self.jwks_url.is_none() && oidc.is_none() {
            anyhow::bail!(
                "no way to verify tokens: set COLLAB_JWT_SECRET (development, HS256), \
                 COLLAB_JWKS_URL (RS256/ES256 from your identity provider) or \
                 COLLAB_OIDC_ISSUER with COLLAB_OIDC_CLIENT_ID; \
                 ops/dev/serve.sh sets a development secret"
            );
        }
        let algorithms = match &self.jwt_algorithms {
            Some(raw) => parse_algorithms(raw).map_err(anyhow::Error::msg)?,
            None => {
                let mut list = vec![];
                if secret.is_some() {
                    list.push(Algorithm::HS256);
                }
                if self.jwks_url.is_some() || oidc.is_some() {
                    list.extend([Algorithm::RS256, Algorithm::ES256]);
                }
                list
            }
        };
        Ok(AuthSettings {
            hs256_secret: secret,
            jwks_url: self.jwks_url.clone(),
            oidc: oidc.cloned(),
            algorithms,
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
            leeway_seconds: self.jwt_leeway_secs,
        })
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::local(
            &self.database_url,
            self.jwt_secret.as_deref().unwrap_or("unused-outside-serve"),
        );
        settings.nats_url = self.nats_url.clone();
        if !(1..=5).contains(&self.nats_replicas) {
            anyhow::bail!("COLLAB_NATS_REPLICAS must be 1 to 5 (JetStream's limit)");
        }
        settings.nats_replicas = self.nats_replicas;
        settings.subject_prefix = self.subject_prefix.clone();
        if self.history_snapshot_every < 1 {
            anyhow::bail!("COLLAB_HISTORY_SNAPSHOT_EVERY must be at least 1");
        }
        settings.history = HistoryConfig {
            session_gap: Duration::from_secs(self.history_session_gap_secs),
            snapshot_every: self.history_snapshot_every,
        };
        Ok(settings)
    }
}

async fn serve(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    // Every live socket is a file descriptor: raise the soft limit (often 1,024) to the
    // hard one, as a server expecting thousands of connections must.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    let mut settings = global.settings()?;
    let oidc = match (&args.oidc_issuer, &args.oidc_client_id) {
        (Some(issuer), Some(client_id)) => Some(collab_api::web::OidcClient {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.clone(),
        }),
        _ => None,
    };
    settings.auth = global.auth(oidc.as_ref())?;
    settings.listen = args.listen;
    settings.roles = Roles::parse(&args.roles).map_err(anyhow::Error::msg)?;
    settings.read_wait = Duration::from_millis(args.read_wait_ms);
    settings.max_body_bytes = args.max_body_bytes;
    settings.snapshot_every = args.snapshot_every;
    settings.database_max_connections = args.database_max_connections;
    settings.rate_limits = RateLimitSettings {
        per_user: Limit {
            per_second: args.rate_limit_user_per_second,
            burst: args.rate_limit_user_burst,
        },
        per_workspace: Limit {
            per_second: args.rate_limit_workspace_per_second,
            burst: args.rate_limit_workspace_burst,
        },
        socket_messages: Limit {
            per_second: args.socket_messages_per_second,
            burst: args.socket_messages_burst,
        },
    };
    settings.live = LiveConfig {
        max_update_bytes: args.max_update_bytes,
        max_document_bytes: args.max_document_bytes,
        snapshot_every: args.content_snapshot_every.max(1),
        snapshot_quiet: Duration::from_millis(args.content_snapshot_quiet_ms),
        snapshot_inline_max_bytes: args.snapshot_inline_max_bytes,
        blob_dir: args.blob_dir.clone(),
        awareness_timeout: Duration::from_secs(args.awareness_timeout_secs),
        presence_retention: Duration::from_secs(args.presence_retention_hours * 3600),
        stream_replicas: global.nats_replicas,
        keepalive: Duration::from_secs(args.ws_keepalive_secs),
    };
    settings.audit = AuditSettings {
        signing_key: args
            .audit_signing_key
            .as_deref()
            .map(collab_domain::audit::parse_signing_key)
            .transpose()
            .map_err(|e| anyhow::anyhow!("COLLAB_AUDIT_SIGNING_KEY {}", e.reason))?,
        checkpoint_every: args.audit_checkpoint_every.max(1),
        checkpoint_interval: Duration::from_secs(args.audit_checkpoint_interval_secs.max(1)),
    };
    settings.live_tail_buffer = args.live_tail_buffer.max(1);
    settings.search = SearchConfig {
        dir: (args.search_dir != "memory").then(|| args.search_dir.clone().into()),
        indexer: IndexerConfig {
            refresh: Duration::from_millis(args.search_refresh_ms.max(1)),
            ..IndexerConfig::default()
        },
    };
    settings.mail = MailSettings {
        smtp_url: args.smtp_url.clone(),
        from: args.smtp_from.clone(),
        public_url: args.public_url.clone(),
        delay: Duration::from_secs(args.mail_delay_secs),
        poll: Duration::from_millis(args.mail_poll_ms.max(10)),
        hourly: Duration::from_secs(args.mail_hourly_secs.max(1)),
        daily: Duration::from_secs(args.mail_daily_secs.max(1)),
        retry_base: Duration::from_secs(args.mail_retry_secs.max(1)),
        max_attempts: args.mail_max_attempts.max(1),
    };
    settings.webhooks = WebhookSettings {
        poll: Duration::from_millis(args.webhook_poll_ms.max(10)),
        timeout: Duration::from_secs(args.webhook_timeout_secs.max(1)),
        schedule: collab_api::webhooks::parse_schedule(&args.webhook_retry_schedule)
            .map_err(|e| anyhow::anyhow!("COLLAB_WEBHOOK_RETRY_SCHEDULE: {e}"))?,
        disable_after: args.webhook_disable_after.max(1),
        allow_private: args.webhook_allow_private,
    };
    settings.files = FileSettings {
        s3: args.s3_bucket.clone().map(|bucket| S3Settings {
            endpoint: args.s3_endpoint.clone(),
            bucket,
            region: args.s3_region.clone(),
        }),
        max_file_bytes: args.max_file_bytes.max(1),
        part_bytes: args.upload_part_bytes,
        upload_expiry: Duration::from_secs(args.upload_expiry_secs),
        download_expiry: Duration::from_secs(args.download_url_secs),
        thumbnail_max_pixels: args.thumbnail_max_pixels.max(1),
        zip_expiry: Duration::from_secs(args.zip_expiry_secs),
    };
    if args.dev_login {
        if settings.auth.hs256_secret.is_none() {
            anyhow::bail!(
                "--dev-login needs an HS256 secret (COLLAB_JWT_SECRET): it mints HS256 tokens"
            );
        }
        if !args.listen.ip().is_loopback() {
            anyhow::bail!(
                "--dev-login lets anyone sign in as anyone: it is refused on {} (listen on a loopback address such as 127.0.0.1:7700, or set COLLAB_DEV_LOGIN=false)",
                args.listen
            );
        }
    }
    settings.web = collab_api::web::WebSettings {
        dev_login: args.dev_login,
        oidc,
    };
    // A mailer that cannot start is a configuration error: say so now, not in a log.
    if settings.roles.mailer {
        collab_api::mailer::Mailer::check(&settings.mail).map_err(|e| anyhow::anyhow!(e))?;
    }
    let app = Application::build(settings).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await?;
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("can install a SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received; shutting down gracefully");
    shutdown.cancel();
}

async fn rebuild_projections(global: &GlobalArgs, name: &str) -> anyhow::Result<()> {
    let settings = global.settings()?;
    let registry = Registry::standard_with(settings.history);
    let models: Vec<_> = if name == "all" {
        registry.read_models().cloned().collect()
    } else {
        match registry.find(name) {
            Some(Consumer::ReadModel(model)) => vec![model.clone()],
            Some(Consumer::Worker(_)) => anyhow::bail!(
                "'{name}' is a worker: its effects left Postgres and cannot be rebuilt \
                 (see `collab projections retry`)"
            ),
            None => anyhow::bail!(
                "unknown read model '{name}' (expected one of: {}, or all)",
                registry.names()
            ),
        }
    };
    let pool = migrate(&settings).await?;
    // One bar per read model; they fold side by side from one read of the log.
    let bars = indicatif::MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix:>13} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
    )
    .expect("static template")
    .progress_chars("=> ");
    let mut by_name = HashMap::new();
    for model in &models {
        let bar = bars.add(ProgressBar::new(0).with_style(style.clone()));
        bar.set_prefix(model.name());
        by_name.insert(model.name(), bar);
    }
    let started = std::time::Instant::now();
    let rebuilt = rebuild(&pool, &models, move |name, position, head| {
        if let Some(bar) = by_name.get(name) {
            bar.set_length(head as u64);
            bar.set_position(position as u64);
            if position >= head {
                bar.finish_and_clear();
            }
        }
    })
    .await?;
    let elapsed = started.elapsed();
    let position = rebuilt.position;
    // Side by side, every read model ends with the slowest: each one's own folding time
    // says which that is.
    for (name, folding) in &rebuilt.folding {
        println!("{name}: rebuilt to position {position} ({folding:.2?} folding)");
    }
    println!(
        "{} read model(s) rebuilt to position {position} in {elapsed:.2?} ({:.0} events/s)",
        models.len(),
        position as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

async fn projections_status(global: &GlobalArgs) -> anyhow::Result<()> {
    let pool = connect_postgres(&global.settings()?).await?;
    let head = collab_store::EventLog::head(&pool).await?;
    println!("log head: {head}");
    for consumer in
        collab_projections::status(&pool, &Registry::standard_with(global.settings()?.history))
            .await?
    {
        let mut line = format!(
            "{:>10} ({}): position {}, lag {}",
            consumer.name, consumer.kind, consumer.position, consumer.lag
        );
        if let Some((parked, reason)) = &consumer.parked {
            line.push_str(&format!(", parked {parked}"));
            if let Some(reason) = reason {
                line.push_str(&format!(" (newest: {reason})"));
            }
        }
        println!("{line}");
    }
    Ok(())
}

/// Runs a relay until the events stream holds the whole log, with a progress bar.
async fn republish(global: &GlobalArgs, delete_existing: bool) -> anyhow::Result<()> {
    use collab_store::relay::RelayError;
    use collab_store::{EventLog, EventStore, Relay, RelayConfig};
    let settings = global.settings()?;
    let pool = connect_postgres(&settings).await?;
    let (_client, js) = collab_api::app::connect_nats(&settings).await?;
    let prefix = settings.subject_prefix.clone();
    if delete_existing {
        collab_live::delete_jetstream_streams(&js, &prefix).await?;
        collab_store::relay::ensure_events_stream(&js, &prefix, settings.nats_replicas)
            .await
            .map_err(|e| anyhow::anyhow!("cannot recreate the events stream: {e}"))?;
        println!("deleted the JetStream streams of prefix '{prefix}'");
    }
    let store = EventStore::new(pool.clone());
    let config = RelayConfig {
        replicas: settings.nats_replicas,
        ..RelayConfig::new(prefix.clone())
    };
    let probe = Relay::new(store.clone(), js.clone(), config.clone());
    let stop = CancellationToken::new();
    let relay = tokio::spawn(Relay::new(store, js, config).run(stop.clone()));
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "republish [{bar:40}] {pos}/{len} positions ({per_sec}, {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let outcome = loop {
        let head = EventLog::head(&pool).await?;
        let published = match probe.resume_position().await {
            Ok(published) => published,
            Err(RelayError::ForeignStream(reason)) => {
                break Err(anyhow::anyhow!(
                    "{reason}\n(after a restore, `collab relay republish --delete-existing` \
                     replaces that stream with this log)"
                ))
            }
            Err(error) => break Err(error.into()),
        };
        bar.set_length(head as u64);
        bar.set_position(published as u64);
        if published >= head {
            break Ok(head);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.cancel();
    let _ = relay.await;
    bar.finish_and_clear();
    let head = outcome?;
    println!(
        "republished: the stream '{}' holds the log to position {head} ({:.2?})",
        collab_domain::envelope::events_stream_name(&prefix),
        started.elapsed()
    );
    Ok(())
}

async fn retry_parked(global: &GlobalArgs, name: &str) -> anyhow::Result<()> {
    let registry = Registry::standard();
    match registry.find(name) {
        Some(Consumer::Worker(_)) => {}
        Some(Consumer::ReadModel(_)) => {
            anyhow::bail!("'{name}' is a read model: it parks nothing (rebuild it instead)")
        }
        None => anyhow::bail!(
            "unknown worker '{name}' (expected one of: {})",
            registry.names()
        ),
    }
    let pool = connect_postgres(&global.settings()?).await?;
    let requeued = collab_projections::worker::requeue_parked(&pool, name).await?;
    println!("{name}: {requeued} parked event(s) requeued; the running worker handles them within seconds");
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve(args) => serve(&cli.global, args).await,
        Command::Migrate => {
            migrate(&cli.global.settings()?).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Token(TokenCommand::Mint {
            user,
            ttl,
            read_only,
        }) => {
            let user = UserId::parse(user.clone())?;
            let verifier = TokenVerifier::hs256(&cli.global.jwt_secret()?);
            let token = verifier
                .mint_with(&user, Duration::from_secs(*ttl), *read_only)
                .expect("an HS256 secret is configured");
            println!("{token}");
            Ok(())
        }
        Command::Projections(ProjectionsCommand::Rebuild { name }) => {
            rebuild_projections(&cli.global, name).await
        }
        Command::Events(command) => history::run_events(command).await,
        Command::Audit(command) => {
            let report = history::run_audit(command, || cli.global.settings()).await?;
            if !report.ok {
                anyhow::bail!(
                    "verification failed: {}",
                    report.first_break.map(|b| b.reason).unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Search(SearchCommand::Rebuild { dir }) => {
            let pool = migrate(&cli.global.settings()?).await?;
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template("search [{bar:40}] {pos}/{len} positions ({eta})")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            let started = std::time::Instant::now();
            let position = collab_search::rebuild(dir, pool, |done, head| {
                bar.set_length(head as u64);
                bar.set_position(done as u64);
            })
            .await?;
            bar.finish_and_clear();
            println!(
                "search: rebuilt to position {position} in {:.2?}",
                started.elapsed()
            );
            Ok(())
        }
        Command::Search(SearchCommand::Dump { dir }) => {
            let index = collab_search::SearchIndex::open_existing(dir)?;
            for entry in index.dump()? {
                println!("{entry}");
            }
            Ok(())
        }
        Command::Users(UsersCommand::Erase { user }) => {
            let user = collab_domain::UserId::parse(user.as_str())?;
            let settings = cli.global.settings()?;
            let pool = migrate(&settings).await?;
            let aggregates = collab_commands::AggregateStore::new(
                collab_store::EventStore::new(pool.clone()),
                settings.snapshot_every,
            );
            let meta = collab_commands::CommandMeta {
                actor: collab_domain::Actor::Service("operator".into()),
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: None,
            };
            let (keys_destroyed, position) =
                collab_api::routes::profile::erase(&aggregates, &pool, &user, &meta)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{}",
                serde_json::json!({
                    "user_id": user.as_str(),
                    "keys_destroyed": keys_destroyed,
                    "position": position,
                })
            );
            Ok(())
        }
        Command::Graphql(GraphqlCommand::Sdl) => {
            print!("{}", collab_api::graphql::sdl());
            Ok(())
        }
        Command::Relay(RelayCommand::Republish { delete_existing }) => {
            republish(&cli.global, *delete_existing).await
        }
        Command::Projections(ProjectionsCommand::Status) => projections_status(&cli.global).await,
        Command::Projections(ProjectionsCommand::Retry { name }) => {
            retry_parked(&cli.global, name).await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use clap::CommandFactory;

    use super::*;

    /// `COLLAB_*` variable → default cell of the README's configuration table.
    fn readme_table() -> BTreeMap<String, String> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md is readable");
        readme
            .lines()
            .filter(|line| line.starts_with("| `COLLAB_"))
            .map(|line| {
                let cells: Vec<&str> = line.split(" | ").collect();
                (
                    cells[0]
                        .trim_start_matches("| ")
                        .trim_matches('`')
                        .to_owned(),
                    cells[2].to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_readme_configuration_table_matches_the_flags() {
        let table = readme_table();
        let cli = Cli::command();
        let serve = cli
            .find_subcommand("serve")
            .expect("serve subcommand")
            .clone();
        let mut seen = vec!["COLLAB_LOG".to_owned()]; // the log filter, not a flag
        for arg in cli.get_arguments().chain(serve.get_arguments()) {
            let Some(env) = arg.get_env() else { continue };
            let env = env.to_string_lossy().into_owned();
            let cell = table
                .get(&env)
                .unwrap_or_else(|| panic!("README's configuration table lacks {env}"));
            match arg.get_default_values() {
                [default] => assert_eq!(
                    cell,
                    &format!("`{}`", default.to_string_lossy()),
                    "README's default for {env}"
                ),
                _ => assert!(
                    !cell.starts_with('`'),
                    "README gives {env} a default ({cell}) it does not have"
                ),
            }
            seen.push(env);
        }
        for env in table.keys() {
            assert!(
                seen.contains(env),
                "README documents {env}, which no flag reads"
            );
        }
    }

    #[test]
    fn listen_accepts_host_names() {
        assert_eq!(
            parse_listen("localhost:7700").unwrap().port(),
            7700,
            "a name resolves"
        );
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_listen("localhost").is_err(), "a port is required");
    }
}
