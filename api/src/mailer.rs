//! The `mailer` role: emails notifications, never on a request's path. It reads the
//! `notifications` read model and keeps its own record, `mail_deliveries` (one row per
//! notification: the email it went in and how that went), which is what makes each
//! notification emailed at most once — the row is committed as `sending` before the SMTP
//! exchange, so a mailer that dies mid-send never sends it again (a row left `sending`
//! becomes `unknown`). Failures that say the message was not taken (the server down or
//! refusing for now) are retried with backoff; a permanent refusal is `failed`.
//!
//! Immediate emails wait `delay` and are skipped if the person read the notification in
//! the app meanwhile; digests gather a person's pending `digest` notifications into one
//! email once the oldest has waited the person's interval (hourly or daily).

use std::time::Duration;

use collab_live::export::escape_html;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

/// How and when the mailer sends.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `smtps://user:pass@host:465` (TLS from the start), `smtp://…?tls=required`
    /// (STARTTLS required), `?tls=opportunistic` (STARTTLS when offered), or plain
    /// `smtp://host:port` (unencrypted: development). None: no email is sent (the
    /// notifications stay in the app).
    pub smtp_url: Option<String>,
    /// The sender, `Name <address>`.
    pub from: String,
    /// Where links in emails point (the web app's address).
    pub public_url: String,
    /// How long an immediate email waits (skipped if read in the app meanwhile).
    pub delay: Duration,
    /// How often the mailer looks for work.
    pub poll: Duration,
    /// A digest's interval for `hourly` and `daily`.
    pub hourly: Duration,
    pub daily: Duration,
    /// The first retry's wait; each next one doubles it (at most an hour).
    pub retry_base: Duration,
    /// Attempts before an email is given up (`failed`).
    pub max_attempts: i32,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Candlefish Collab <collab@localhost>".into(),
            public_url: "http://127.0.0.1:7700".into(),
            delay: Duration::from_secs(180),
            poll: Duration::from_secs(5),
            hourly: Duration::from_secs(3600),
            daily: Duration::from_secs(86_400),
            retry_base: Duration::from_secs(30),
            max_attempts: 8,
        }
    }
}

/// What one email carries about one notification.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Item {
    kind: String,
    document_id: Uuid,
    document_title: Option<String>,
    thread_id: Option<Uuid>,
    actor: String,
    actor_name: Option<String>,
    comment_body: Option<String>,
    role: Option<String>,
}

/// Why a send failed, and what it means for the message.
enum Failure {
    /// Not taken (the server down, or refusing for now): try again later.
    NotTaken(String),
    /// Refused for good.
    Refused(String),
    /// Broke off where the server may have taken it: never sent again.
    Unknown(String),
}

pub struct Mailer {
    pool: PgPool,
    settings: MailSettings,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Whether `settings` make a mailer (the SMTP URL and the sender parse).
    pub fn check(settings: &MailSettings) -> Result<(), String> {
        if let Some(url) = &settings.smtp_url {
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| format!("COLLAB_SMTP_URL: {e}"))?;
            settings
                .from
                .parse::<Mailbox>()
                .map_err(|e| format!("COLLAB_SMTP_FROM: {e}"))?;
        }
        Ok(())
    }

    /// A mailer for `settings`; `Ok(None)` when no SMTP server is configured.
    pub fn new(pool: PgPool, settings: MailSettings) -> Result<Option<Self>, String> {
        let Some(url) = settings.smtp_url.clone() else {
            return Ok(None);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| format!("COLLAB_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("COLLAB_SMTP_FROM: {e}"))?;
        Ok(Some(Self {
            pool,
            settings,
            transport,
            from,
        }))
    }

    /// Sends until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        info!("mailer: sending notification emails");
        // A row still `sending` after this long belongs to a mailer that died mid-send.
        let abandoned = Duration::from_secs(300).max(self.settings.poll * 10);
        loop {
            if let Err(error) = self.round(abandoned).await {
                warn!(%error, "mailer: a round failed; trying again");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    async fn round(&self, abandoned: Duration) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE mail_deliveries SET state = 'unknown', updated_at = now(), \
             last_error = 'the mailer stopped while sending' \
             WHERE state = 'sending' AND updated_at < now() - $1::interval",
        )
        .bind(abandoned)
        .execute(&self.pool)
        .await?;
        self.immediate().await?;
        self.digests().await?;
        self.retries().await?;
        Ok(())
    }

    /// Immediate notifications past the delay: each its own email (read ones skipped).
    async fn immediate(&self) -> Result<(), sqlx::Error> {
        let claimed: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "INSERT INTO mail_deliveries (notification_id, recipient, mode, message_id, state, \
             updated_at) \
             SELECT n.notification_id, n.recipient, 'immediate', gen_random_uuid(), \
                    CASE WHEN n.read_at IS NULL THEN 'sending' ELSE 'skipped_read' END, now() \
             FROM rm_notifications n \
             WHERE n.email = 'immediate' AND n.created_at <= now() - $1::interval \
               AND NOT EXISTS (SELECT 1 FROM mail_deliveries m \
                               WHERE m.notification_id = n.notification_id) \
             ORDER BY n.position LIMIT 100 \
             ON CONFLICT (notification_id) DO NOTHING \
             RETURNING message_id, notification_id",
        )
        .bind(self.settings.delay)
        .fetch_all(&self.pool)
        .await?;
        for (message, _) in claimed {
            self.send(message).await?;
        }
        Ok(())
    }

    /// People whose oldest pending digest notification has waited their interval: one
    /// email each with all of them.
    async fn digests(&self) -> Result<(), sqlx::Error> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT n.recipient FROM rm_notifications n \
             LEFT JOIN rm_notification_preferences p ON p.user_id = n.recipient \
             WHERE n.email = 'digest' \
               AND NOT EXISTS (SELECT 1 FROM mail_deliveries m \
                               WHERE m.notification_id = n.notification_id) \
             GROUP BY n.recipient, p.preferences->>'digest' \
             HAVING min(n.created_at) <= now() - CASE p.preferences->>'digest' \
                    WHEN 'hourly' THEN $1::interval ELSE $2::interval END \
             LIMIT 100",
        )
        .bind(self.settings.hourly)
        .bind(self.settings.daily)
        .fetch_all(&self.pool)
        .await?;
        for recipient in due {
            let message = Uuid::now_v7();
            let sending: i64 = sqlx::query_scalar(
                "WITH claimed AS ( \
                   INSERT INTO mail_deliveries (notification_id, recipient, mode, message_id, \
                   state, updated_at) \
                   SELECT n.notification_id, n.recipient, 'digest', $2, \
                          CASE WHEN n.read_at IS NULL THEN 'sending' ELSE 'skipped_read' END, \
                          now() \
                   FROM rm_notifications n \
                   WHERE n.recipient = $1 AND n.email = 'digest' \
                     AND NOT EXISTS (SELECT 1 FROM mail_deliveries m \
                                     WHERE m.notification_id = n.notification_id) \
                   ON CONFLICT (notification_id) DO NOTHING RETURNING state) \
                 SELECT count(*) FROM claimed WHERE state = 'sending'",
            )
            .bind(&recipient)
            .bind(message)
            .fetch_one(&self.pool)
            .await?;
            if sending > 0 {
                self.send(message).await?;
            }
        }
        Ok(())
    }

    /// Emails whose retry is due.
    async fn retries(&self) -> Result<(), sqlx::Error> {
        let due: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE mail_deliveries SET state = 'sending', updated_at = now() \
             WHERE message_id IN (SELECT DISTINCT message_id FROM mail_deliveries \
                                  WHERE state = 'retry' AND next_attempt_at <= now() LIMIT 100) \
               AND state = 'retry' \
             RETURNING message_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut seen = std::collections::HashSet::new();
        for message in due {
            if seen.insert(message) {
                self.send(message).await?;
            }
        }
        Ok(())
    }

    /// Sends the email `message` (its rows are `sending`) and records how it went.
    async fn send(&self, message: Uuid) -> Result<(), sqlx::Error> {
        let (recipient, mode, address, attempts): (String, String, Option<String>, i32) =
            sqlx::query_as(
                "SELECT m.recipient, m.mode, p.email, max(m.attempts) \
                 FROM mail_deliveries m LEFT JOIN rm_profiles p ON p.user_id = m.recipient \
                 WHERE m.message_id = $1 GROUP BY m.recipient, m.mode, p.email",
            )
            .bind(message)
            .fetch_one(&self.pool)
            .await?;
        let items: Vec<Item> = sqlx::query_as(
            "SELECT n.kind, n.document_id, d.title AS document_title, \
                    n.thread_id, n.actor, a.display_name AS actor_name, c.body AS comment_body, \
                    n.role \
             FROM mail_deliveries m JOIN rm_notifications n USING (notification_id) \
             LEFT JOIN rm_documents d ON d.document_id = n.document_id \
             LEFT JOIN rm_profiles a ON a.user_id = n.actor \
             LEFT JOIN rm_comments c ON c.comment_id = n.comment_id \
             WHERE m.message_id = $1 AND m.state = 'sending' ORDER BY n.position",
        )
        .bind(message)
        .fetch_all(&self.pool)
        .await?;
        let Some(address) = address.and_then(|a| a.parse::<Mailbox>().ok()) else {
            return self
                .record(message, "no_address", attempts, None, "no email address")
                .await;
        };
        if items.is_empty() {
            // Everything in it went away meanwhile (a deleted comment, document).
            return self.record(message, "skipped", attempts, None, "").await;
        }
        let email = match self.compose(message, &recipient, address, &mode, &items) {
            Ok(email) => email,
            Err(error) => {
                return self
                    .record(message, "failed", attempts + 1, None, &error)
                    .await
            }
        };
        match self.transport.send(email).await {
            Ok(_) => {
                sqlx::query(
                    "UPDATE mail_deliveries SET state = 'sent', sent_at = now(), \
                     attempts = attempts + 1, updated_at = now(), last_error = NULL \
                     WHERE message_id = $1 AND state = 'sending'",
                )
                .bind(message)
                .execute(&self.pool)
                .await?;
                metrics::counter!("collab_mail_sent_total", "mode" => mode).increment(1);
                Ok(())
            }
            Err(error) => {
                let attempts = attempts + 1;
                match classify(&error) {
                    Failure::NotTaken(why) if attempts < self.settings.max_attempts => {
                        let wait = self
                            .settings
                            .retry_base
                            .saturating_mul(1 << (attempts - 1).min(16))
                            .min(Duration::from_secs(3600));
                        warn!(%message, attempts, error = %why, "mailer: not sent; retrying");
                        self.record(message, "retry", attempts, Some(wait), &why)
                            .await
                    }
                    Failure::NotTaken(why) | Failure::Refused(why) => {
                        warn!(%message, attempts, error = %why, "mailer: given up");
                        self.record(message, "failed", attempts, None, &why).await
                    }
                    Failure::Unknown(why) => {
                        warn!(%message, error = %why, "mailer: may have been sent; not again");
                        self.record(message, "unknown", attempts, None, &why).await
                    }
                }
            }
        }
    }

    async fn record(
        &self,
        message: Uuid,
        state: &str,
        attempts: i32,
        retry_in: Option<Duration>,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE mail_deliveries SET state = $2, attempts = $3, \
             next_attempt_at = now() + $4::interval, last_error = nullif($5, ''), \
             updated_at = now() WHERE message_id = $1 AND state = 'sending'",
        )
        .bind(message)
        .bind(state)
        .bind(attempts)
        .bind(retry_in)
        .bind(error)
        .execute(&self.pool)
        .await?;
        if state != "retry" {
            metrics::counter!("collab_mail_outcomes_total", "state" => state.to_owned())
                .increment(1);
        }
        Ok(())
    }

    fn compose(
        &self,
        message: Uuid,
        recipient: &str,
        to: Mailbox,
        mode: &str,
        items: &[Item],
    ) -> Result<Message, String> {
        let base = self.settings.public_url.trim_end_matches('/');
        let lines: Vec<(String, Option<String>, String)> = items
            .iter()
            .map(|item| {
                let link = match item.thread_id {
                    Some(thread) => {
                        format!("{base}/documents/{}#thread-{thread}", item.document_id)
                    }
                    None => format!("{base}/documents/{}", item.document_id),
                };
                (headline(item), item.comment_body.clone(), link)
            })
            .collect();
        let subject = if mode == "digest" {
            match lines.len() {
                1 => format!("Your digest: {}", lines[0].0),
                n => format!("Your digest: {n} notifications"),
            }
        } else {
            lines[0].0.clone()
        };
        let mut text = String::new();
        let mut html = String::from("<div style=\"font-family:sans-serif\">");
        for (headline, body, link) in &lines {
            text.push_str(&format!("{headline}\n"));
            html.push_str(&format!(
                "<p><strong>{}</strong></p>",
                escape_html(headline)
            ));
            if let Some(body) = body {
                let excerpt: String = body.chars().take(1000).collect();
                for line in excerpt.lines() {
                    text.push_str(&format!("> {line}\n"));
                }
                html.push_str(&format!(
                    "<blockquote style=\"white-space:pre-wrap\">{}</blockquote>",
                    escape_html(&excerpt)
                ));
            }
            text.push_str(&format!("Open it: {link}\n\n"));
            html.push_str(&format!(
                "<p><a href=\"{}\">Open it</a></p>",
                escape_html(link)
            ));
        }
        let settings = format!("{base}/settings/notifications");
        text.push_str(&format!(
            "--\nYou get these emails as your notification preferences say: {settings}\n"
        ));
        html.push_str(&format!(
            "<hr><p style=\"color:#666\">You get these emails as your <a href=\"{}\">notification preferences</a> say.</p></div>",
            escape_html(&settings)
        ));
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{message}@collab>")))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(text))
                    .singlepart(SinglePart::html(html)),
            )
            .map_err(|e| format!("cannot build the email for {recipient}: {e}"))
    }
}

/// One notification in a line.
fn headline(item: &Item) -> String {
    let who = item
        .actor_name
        .clone()
        .unwrap_or_else(|| item.actor.clone());
    let title = item.document_title.as_deref().unwrap_or("a document");
    match item.kind.as_str() {
        "mention" => format!("{who} mentioned you in “{title}”"),
        "reply" => format!("{who} replied in a thread on “{title}”"),
        "share" => format!(
            "{who} shared “{title}” with you ({})",
            item.role.as_deref().unwrap_or("viewer")
        ),
        "resolved" => format!("{who} resolved your thread on “{title}”"),
        other => format!("{who}: {other} on “{title}”"),
    }
}

/// What an SMTP error says about the message: a reply code is the server's word on it
/// (4xx: not taken, for now; 5xx: refused); a failure to connect means nothing was sent;
/// anything else broke off mid-exchange, where the message may have been taken.
fn classify(error: &lettre::transport::smtp::Error) -> Failure {
    let why = error.to_string();
    if error.is_transient() || error.is_tls() || connection_refused(error) {
        Failure::NotTaken(why)
    } else if error.is_permanent() || error.is_client() {
        Failure::Refused(why)
    } else {
        Failure::Unknown(why)
    }
}

/// Whether the error is a failed connection (nothing reached the server): lettre's
/// connection errors (it has no predicate for them), or a refused socket underneath.
fn connection_refused(error: &lettre::transport::smtp::Error) -> bool {
    use std::error::Error as _;
    if error.to_string().starts_with("Connection error") {
        return true;
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotConnected
                    | std::io::ErrorKind::AddrNotAvailable
            );
        }
        source = cause.source();
    }
    false
}
