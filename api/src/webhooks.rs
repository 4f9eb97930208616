//! The `webhooks` role: posts the deliveries the `webhooks` read model writes, signed as
//! the Standard Webhooks specification says (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256>`), never on a command's path. Each attempt
//! is recorded; a failure is retried on a schedule (Svix's by default, over about a day);
//! an endpoint whose attempts keep failing is disabled (an event, with the reason). Every
//! request refuses loopback, private, link-local and other internal addresses — at
//! creation and at each connection (DNS may change) — unless private targets are allowed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use collab_commands::{AggregateStore, CommandMeta};
use collab_domain::replay::{EventLine, PayloadForm};
use collab_domain::workspace::{Workspace, WorkspaceCommand};
use collab_domain::Actor;
use collab_store::EventLog;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// How often the worker looks for due deliveries.
    pub poll: Duration,
    /// The longest a receiver may take to answer.
    pub timeout: Duration,
    /// The waits before each retry; after the last, a delivery has `failed`.
    pub schedule: Vec<Duration>,
    /// Failed attempts in a row after which an endpoint is disabled.
    pub disable_after: i32,
    /// Deliver to loopback and private addresses too (tests and development only).
    pub allow_private: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            // Svix's: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
            schedule: [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
                .map(Duration::from_secs)
                .to_vec(),
            disable_after: 50,
            allow_private: false,
        }
    }
}

/// Parses a retry schedule: seconds, comma-separated (`5,300,1800`).
pub fn parse_schedule(raw: &str) -> Result<Vec<Duration>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| format!("'{s}' is not a number of seconds"))
        })
        .collect()
}

/// Whether an address is one a webhook must not reach: loopback, private, link-local,
/// carrier-grade NAT, unspecified, multicast, broadcast, documentation, or an IPv4 one of
/// those inside IPv6.
pub fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b
        }
    }
}

/// Checks a webhook URL: http(s), no credentials, a host that resolves only to public
/// addresses (unless `allow_private`).
pub async fn check_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if raw.len() > 2000 {
        return Err("must be at most 2,000 characters".into());
    }
    let host = url.host_str().ok_or("must have a host")?.to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|_| format!("host '{host}' cannot be resolved"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("host '{host}' cannot be resolved"));
    }
    if !allow_private && addrs.iter().any(|a| internal(a.ip())) {
        return Err(format!(
            "host '{host}' is a loopback, private or link-local address, which webhooks may not reach"
        ));
    }
    Ok(url)
}

/// Resolves names for deliveries and drops internal addresses, so a name that changes its
/// answer after the check (DNS rebinding) reaches nothing inside.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| !internal(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the host resolves only to internal addresses".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Makes a signing secret: `whsec_` and the base64 of 24 random bytes.
pub fn new_secret() -> Result<(String, Vec<u8>), getrandom::Error> {
    use base64::Engine;
    let mut key = vec![0u8; 24];
    getrandom::fill(&mut key)?;
    let text = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(&key)
    );
    Ok((text, key))
}

pub struct Sender {
    pool: PgPool,
    aggregates: AggregateStore,
    settings: WebhookSettings,
    client: reqwest::Client,
}

#[derive(sqlx::FromRow)]
struct Due {
    delivery_id: Uuid,
    webhook_id: Uuid,
    workspace_id: Uuid,
    position: i64,
    attempts: i32,
    url: String,
    format: String,
    secret: Vec<u8>,
}

impl Sender {
    pub fn new(pool: PgPool, aggregates: AggregateStore, settings: WebhookSettings) -> Self {
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .user_agent("Candlefish-Collab-Webhooks/1");
        if !settings.allow_private {
            client = client.dns_resolver(Arc::new(GuardedResolver));
        }
        Self {
            pool,
            aggregates,
            client: client.build().expect("the webhook client builds"),
            settings,
        }
    }

    /// Delivers until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        info!("webhooks: delivering");
        loop {
            match self.round().await {
                Ok(sent) if sent > 0 => continue,
                Ok(_) => {}
                Err(error) => warn!(%error, "webhooks: a round failed; trying again"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    async fn round(&self) -> Result<usize, sqlx::Error> {
        // A delivery left `sending` by a worker that stopped goes out again (receivers
        // tell repeats by `webhook-id`).
        sqlx::query(
            "UPDATE webhook_deliveries SET state = 'retry', updated_at = now() \
             WHERE state = 'sending' AND updated_at < now() - $1::interval",
        )
        .bind(self.settings.timeout * 3)
        .execute(&self.pool)
        .await?;
        let due: Vec<Due> = sqlx::query_as(
            "WITH due AS ( \
               SELECT d.delivery_id FROM webhook_deliveries d \
               JOIN rm_webhooks w ON w.webhook_id = d.webhook_id AND w.enabled \
               WHERE d.state IN ('pending', 'retry') AND d.next_attempt_at <= now() \
               ORDER BY d.next_attempt_at, d.position LIMIT 32 FOR UPDATE OF d SKIP LOCKED), \
             claimed AS ( \
               UPDATE webhook_deliveries d SET state = 'sending', updated_at = now() \
               FROM due WHERE d.delivery_id = due.delivery_id \
               RETURNING d.delivery_id, d.webhook_id, d.workspace_id, d.position, d.attempts) \
             SELECT c.*, w.url, w.format, s.secret FROM claimed c \
             JOIN rm_webhooks w ON w.webhook_id = c.webhook_id \
             JOIN webhook_secrets s ON s.webhook_id = c.webhook_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let count = due.len();
        let sends = due.into_iter().map(|d| self.deliver(d));
        for result in futures::future::join_all(sends).await {
            result?;
        }
        Ok(count)
    }

    async fn deliver(&self, due: Due) -> Result<(), sqlx::Error> {
        let attempt = due.attempts + 1;
        let started = Instant::now();
        let outcome = self.post(&due).await;
        let duration = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let (status, error) = match &outcome {
            Ok(status) if (200..300).contains(status) => (Some(*status), None),
            Ok(status) => (Some(*status), Some(format!("answered {status}"))),
            Err(error) => (None, Some(error.clone())),
        };
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, duration_ms) \
             VALUES ($1, $2, now(), $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(due.delivery_id)
        .bind(attempt)
        .bind(status)
        .bind(&error)
        .bind(duration)
        .execute(&self.pool)
        .await?;
        let Some(error) = error else {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'succeeded', attempts = $2, \
                 updated_at = now() WHERE delivery_id = $1",
            )
            .bind(due.delivery_id)
            .bind(attempt)
            .execute(&self.pool)
            .await?;
            sqlx::query("DELETE FROM webhook_health WHERE webhook_id = $1")
                .bind(due.webhook_id)
                .execute(&self.pool)
                .await?;
            metrics::counter!("collab_webhook_deliveries_total", "outcome" => "succeeded")
                .increment(1);
            return Ok(());
        };
        let wait = self.settings.schedule.get(due.attempts as usize).copied();
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $2, attempts = $3, \
             next_attempt_at = now() + coalesce($4::interval, '0'), updated_at = now() \
             WHERE delivery_id = $1",
        )
        .bind(due.delivery_id)
        .bind(if wait.is_some() { "retry" } else { "failed" })
        .bind(attempt)
        .bind(wait)
        .execute(&self.pool)
        .await?;
        metrics::counter!("collab_webhook_deliveries_total", "outcome" => if wait.is_some() { "retry" } else { "failed" })
            .increment(1);
        let failures: i32 = sqlx::query_scalar(
            "INSERT INTO webhook_health (webhook_id, consecutive_failures, last_error) \
             VALUES ($1, 1, $2) ON CONFLICT (webhook_id) DO UPDATE \
             SET consecutive_failures = webhook_health.consecutive_failures + 1, last_error = $2 \
             RETURNING consecutive_failures",
        )
        .bind(due.webhook_id)
        .bind(&error)
        .fetch_one(&self.pool)
        .await?;
        if failures >= self.settings.disable_after {
            let reason = format!("{failures} delivery attempts in a row failed; the last: {error}");
            warn!(webhook.id = %due.webhook_id, %reason, "webhooks: disabling an endpoint");
            let meta = CommandMeta {
                actor: Actor::Service("webhooks".into()),
                correlation_id: Uuid::now_v7(),
                causation_id: None,
            };
            let command = WorkspaceCommand::DisableWebhook {
                webhook_id: due.webhook_id,
                reason,
            };
            match self
                .aggregates
                .execute::<Workspace>(due.workspace_id, command, &meta, None)
                .await
            {
                Ok(_) => {
                    sqlx::query("DELETE FROM webhook_health WHERE webhook_id = $1")
                        .bind(due.webhook_id)
                        .execute(&self.pool)
                        .await?;
                }
                Err(error) => warn!(%error, "webhooks: could not disable an endpoint"),
            }
        }
        Ok(())
    }

    /// Posts one delivery; the receiver's status, or why there is none.
    async fn post(&self, due: &Due) -> Result<i32, String> {
        let url = reqwest::Url::parse(&due.url).map_err(|e| e.to_string())?;
        if !self.settings.allow_private {
            if let Some(ip) = url
                .host_str()
                .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
            {
                if internal(ip) {
                    return Err("the URL is an internal address".into());
                }
            }
        }
        let events = EventLog::read_all(&self.pool, due.position - 1, 1)
            .await
            .map_err(|e| e.to_string())?;
        let event = events
            .into_iter()
            .find(|e| e.position == due.position)
            .ok_or("the event is not in the log")?;
        let line = EventLine::new(&event, PayloadForm::Json);
        let body = if due.format == "slack" {
            serde_json::json!({ "text": slack_text(&line) })
        } else {
            serde_json::json!({
                "type": event.event_type,
                "timestamp": event.metadata.recorded_at,
                "data": line,
            })
        };
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let id = due.delivery_id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signature = standardwebhooks::Webhook::from_bytes(due.secret.clone())
            .and_then(|hook| hook.sign(&id, timestamp, &body))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            })?;
        Ok(i32::from(response.status().as_u16()))
    }
}

/// A Slack message for an event: who did what, and the event's fields.
fn slack_text(line: &EventLine) -> String {
    let actor = line
        .actor
        .strip_prefix("user:")
        .unwrap_or(&line.actor)
        .to_owned();
    let fields = line
        .data
        .as_ref()
        .and_then(|d| d.as_object())
        .map(|fields| {
            fields
                .iter()
                .filter(|(_, v)| v.is_string() || v.is_number() || v.is_boolean())
                .map(|(k, v)| match v.as_str() {
                    Some(s) => format!("{k}: {s}"),
                    None => format!("{k}: {v}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    if fields.is_empty() {
        format!("*{}* by {actor} ({})", line.event_type, line.stream_id)
    } else {
        format!(
            "*{}* by {actor} ({}): {fields}",
            line.event_type, line.stream_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(parse_schedule("1, 2,3").unwrap().len(), 3);
        assert!(parse_schedule("1,x").is_err());
    }

    #[tokio::test]
    async fn urls_are_checked() {
        assert!(check_url("ftp://example.com/x", false).await.is_err());
        assert!(check_url("http://user:pw@example.com/", true)
            .await
            .is_err());
        assert!(check_url("http://127.0.0.1:9/hook", false).await.is_err());
        assert!(check_url("http://[::1]:9/hook", false).await.is_err());
        assert!(check_url("http://localhost:9/hook", false).await.is_err());
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
        assert!(check_url("not a url", true).await.is_err());
    }
}
