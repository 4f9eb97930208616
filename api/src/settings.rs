//! Typed settings, loaded once by the binary (from flags and `COLLAB_*` variables) and
//! built directly by tests.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::auth::AuthSettings;
use crate::rate_limit::RateLimitSettings;

use collab_live::LiveConfig;

/// Which parts of the system this process runs. All by default; split them to scale
/// each on its own (any number of api processes; projectors share durable consumers;
/// one relay is active at a time, the others stand by).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub api: bool,
    pub relay: bool,
    pub projector: bool,
    /// Emails notifications (when an SMTP server is configured).
    pub mailer: bool,
    /// Delivers webhooks.
    pub webhooks: bool,
    /// Makes thumbnails of uploaded images and cleans up unfinished uploads.
    pub thumbnailer: bool,
    /// Builds the download center's zips.
    pub downloads: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        api: true,
        relay: true,
        projector: true,
        mailer: true,
        webhooks: true,
        thumbnailer: true,
        downloads: true,
    };

    /// Parses a comma-separated list: `api`, `relay`, `projector`, `mailer`, `webhooks`,
    /// `thumbnailer`, `downloads`, or `all`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut roles = Roles {
            api: false,
            relay: false,
            projector: false,
            mailer: false,
            webhooks: false,
            thumbnailer: false,
            downloads: false,
        };
        for role in raw.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "all" => roles = Roles::ALL,
                "api" => roles.api = true,
                "relay" => roles.relay = true,
                "projector" => roles.projector = true,
                "mailer" => roles.mailer = true,
                "webhooks" => roles.webhooks = true,
                "thumbnailer" => roles.thumbnailer = true,
                "downloads" => roles.downloads = true,
                other => {
                    return Err(format!(
                        "unknown role '{other}' (expected api, relay, projector, mailer, webhooks, thumbnailer, downloads or all)"
                    ))
                }
            }
        }
        if roles
            == (Roles {
                api: false,
                relay: false,
                projector: false,
                mailer: false,
                webhooks: false,
                thumbnailer: false,
                downloads: false,
            })
        {
            return Err(
                "no role given (expected api, relay, projector, mailer, webhooks, thumbnailer, downloads or all)"
                    .into(),
            );
        }
        Ok(roles)
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the HTTP API listens (port 0 picks a free port).
    pub listen: SocketAddr,
    pub database_url: SecretString,
    pub database_max_connections: u32,
    /// One NATS URL, or several separated by commas (servers of one cluster).
    pub nats_url: String,
    /// JetStream replicas of the events and presence streams (3 on a 3-node cluster).
    pub nats_replicas: usize,
    /// First token of every NATS subject and the name of the events stream
    /// (`<PREFIX>_EVENTS`); lets several deployments (or tests) share one NATS.
    pub subject_prefix: String,
    /// How bearer tokens are verified (HS256 secret and/or JWKS).
    pub auth: AuthSettings,
    pub roles: Roles,
    /// Longest a query waits for `X-Collab-Min-Position` before answering 503.
    pub read_wait: Duration,
    /// An aggregate snapshot is written every this many stream versions.
    pub snapshot_every: i64,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Live editing: limits, snapshots, presence.
    pub live: LiveConfig,
    pub rate_limits: RateLimitSettings,
    /// Signed audit checkpoints and export seals.
    pub audit: AuditSettings,
    /// Events a live tail may fall behind before it is told `lagged` and closed.
    pub live_tail_buffer: usize,
    /// How the history read model groups edits and takes history snapshots.
    pub history: collab_projections::history::HistoryConfig,
    /// Where this instance keeps its search index, and how fresh.
    pub search: collab_search::SearchConfig,
    /// Notification emails (the `mailer` role).
    pub mail: crate::mailer::MailSettings,
    /// Webhook deliveries (the `webhooks` role) and which URLs webhooks may have.
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Object storage (S3 or the local disk) and files' limits.
    pub files: crate::files::FileSettings,
    /// How people sign in to the web app (development sign-in, OpenID Connect).
    pub web: crate::web::WebSettings,
}

/// Signed checkpoints: a checkpoint per changed workspace every `checkpoint_every`
/// events or `checkpoint_interval`, whichever comes first, signed with `signing_key`
/// (none: no checkpoints, exports unsealed).
#[derive(Clone)]
pub struct AuditSettings {
    pub signing_key: Option<ed25519_dalek::SigningKey>,
    pub checkpoint_every: i64,
    pub checkpoint_interval: Duration,
}

impl std::fmt::Debug for AuditSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditSettings")
            .field("signing_key", &self.signing_key.as_ref().map(|_| "***"))
            .field("checkpoint_every", &self.checkpoint_every)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .finish()
    }
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            signing_key: None,
            checkpoint_every: defaults::AUDIT_CHECKPOINT_EVERY,
            checkpoint_interval: Duration::from_secs(defaults::AUDIT_CHECKPOINT_INTERVAL_SECS),
        }
    }
}

/// The defaults of the settings that are not a field's own type default: each defined
/// here once; `Settings::local` and the binary's flags take them from here.
pub mod defaults {
    pub const LISTEN: &str = "127.0.0.1:7700";
    pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/collab";
    pub const NATS_URL: &str = "nats://127.0.0.1:4222";
    pub const SUBJECT_PREFIX: &str = "collab";
    pub const DATABASE_MAX_CONNECTIONS: u32 = 16;
    pub const READ_WAIT_MS: u64 = 5000;
    pub const SNAPSHOT_EVERY: i64 = 50;
    pub const MAX_BODY_BYTES: usize = 1024 * 1024;
    pub const JWT_LEEWAY_SECS: u64 = 30;
    pub const LOG_FORMAT: &str = "json";
    pub const ROLES: &str = "all";
    pub const AUDIT_CHECKPOINT_EVERY: i64 = 10_000;
    pub const AUDIT_CHECKPOINT_INTERVAL_SECS: u64 = 60;
    pub const LIVE_TAIL_BUFFER: usize = 10_000;
}

impl Settings {
    /// Development defaults against the local Postgres and NATS, listening on a free
    /// loopback port (the binary's default address is [`defaults::LISTEN`]).
    pub fn local(database_url: &str, jwt_secret: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_owned().into(),
            database_max_connections: defaults::DATABASE_MAX_CONNECTIONS,
            nats_url: defaults::NATS_URL.into(),
            nats_replicas: 1,
            subject_prefix: defaults::SUBJECT_PREFIX.into(),
            auth: AuthSettings::hs256(jwt_secret),
            roles: Roles::ALL,
            read_wait: Duration::from_millis(defaults::READ_WAIT_MS),
            snapshot_every: defaults::SNAPSHOT_EVERY,
            max_body_bytes: defaults::MAX_BODY_BYTES,
            live: LiveConfig::default(),
            rate_limits: RateLimitSettings::default(),
            audit: AuditSettings::default(),
            live_tail_buffer: defaults::LIVE_TAIL_BUFFER,
            history: Default::default(),
            // In memory: every in-process server gets its own, refilled from the log.
            search: collab_search::SearchConfig {
                dir: None,
                indexer: Default::default(),
            },
            mail: Default::default(),
            webhooks: Default::default(),
            files: Default::default(),
            web: Default::default(),
        }
    }
}

/// Subject prefixes are NATS tokens: lowercase letters, digits, `-` and `_`.
pub fn validate_subject_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty()
        || prefix.len() > 64
        || !prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(format!(
            "subject prefix '{prefix}' must be 1-64 characters of a-z, 0-9, '-' or '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse() {
        assert_eq!(Roles::parse("all").unwrap(), Roles::ALL);
        let relay_only = Roles::parse("relay").unwrap();
        assert!(relay_only.relay && !relay_only.api && !relay_only.projector);
        assert!(Roles::parse("api,gateway").is_err());
        assert!(Roles::parse("").is_err());
    }

    #[test]
    fn subject_prefixes_are_single_tokens() {
        assert!(validate_subject_prefix("collab").is_ok());
        assert!(validate_subject_prefix("t-1_x").is_ok());
        assert!(validate_subject_prefix("a.b").is_err());
        assert!(validate_subject_prefix("").is_err());
        assert!(validate_subject_prefix("A").is_err());
    }
}
