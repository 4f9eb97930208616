//! Read model `notifications`: who is told what. Folded from comment threads (mentions,
//! replies, resolutions), documents (shares) and people's own streams (what they read,
//! their preferences), in log order, so the preferences in force when a notification was
//! caused decide how it is delivered — the same on a rebuild. Each fold that tells
//! someone also sends `NOTIFY collab_notifications, '<recipient>'` (delivered when the
//! fold commits), which the live feeds wait on.

use async_trait::async_trait;
use collab_domain::comment::ThreadEvent;
use collab_domain::document::DocumentEvent;
use collab_domain::notification::{notification_id, NotificationKind, NotificationPreferences};
use collab_domain::profile::ProfileEvent;
use collab_domain::{Actor, EventCodec, RecordedEvent, StreamCategory, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

pub const NAME: &str = "notifications";

/// The channel the fold notifies (payload: the recipient's user id).
pub const CHANNEL: &str = "collab_notifications";

/// `rm_notifications`, `rm_notification_threads`, `rm_notification_preferences`.
pub struct Notifications;

/// What a notification is about.
struct About {
    document: Uuid,
    thread: Option<Uuid>,
    comment: Option<Uuid>,
    role: Option<&'static str>,
}

#[async_trait]
impl ReadModel for Notifications {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[
            StreamCategory::Thread,
            StreamCategory::Document,
            StreamCategory::User,
        ]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_notifications",
            "rm_notification_threads",
            "rm_notification_preferences",
        ]
    }

    /// Shares (the bulk of what it folds, among many document events that tell no one)
    /// are gathered and written a run at a time: the recipients' preferences in one query,
    /// the notifications in one statement. A thread or personal event writes what was
    /// gathered first, so every event sees the notifications and preferences before it.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut shares = Shares::default();
        for event in events {
            match event.stream_id.category {
                StreamCategory::Document => {
                    if let DocumentEvent::DocumentShared(e) = DocumentEvent::decode_recorded(event)?
                    {
                        if e.user_id.as_str() != actor(event) {
                            shares.push(event, e.user_id, e.role.as_str());
                        }
                    }
                }
                StreamCategory::Thread => {
                    shares.write(conn).await?;
                    thread_event(conn, event).await?;
                }
                StreamCategory::User => {
                    shares.write(conn).await?;
                    own_event(conn, event).await?;
                }
                _ => {}
            }
        }
        shares.write(conn).await
    }
}

/// Documents shared with someone (the events of the page being folded), to be told as
/// their preferences then say.
#[derive(Default)]
struct Shares<'a> {
    shares: Vec<(&'a RecordedEvent, UserId, &'static str)>,
}

impl<'a> Shares<'a> {
    fn push(&mut self, event: &'a RecordedEvent, recipient: UserId, role: &'static str) {
        self.shares.push((event, recipient, role));
    }

    async fn write(&mut self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        if self.shares.is_empty() {
            return Ok(());
        }
        let shares = std::mem::take(&mut self.shares);
        let mut recipients: Vec<&str> = shares.iter().map(|(_, r, _)| r.as_str()).collect();
        recipients.sort_unstable();
        recipients.dedup();
        let stored: Vec<(String, sqlx::types::Json<NotificationPreferences>)> = sqlx::query_as(
            "SELECT user_id, preferences FROM rm_notification_preferences \
             WHERE user_id = ANY($1)",
        )
        .bind(&recipients)
        .fetch_all(&mut *conn)
        .await?;
        let preferences: std::collections::HashMap<String, NotificationPreferences> =
            stored.into_iter().map(|(u, p)| (u, p.0)).collect();
        let mut rows = Rows::default();
        for (event, recipient, role) in &shares {
            let about = About {
                document: event.stream_id.id,
                thread: None,
                comment: None,
                role: Some(*role),
            };
            let preference = preferences
                .get(recipient.as_str())
                .cloned()
                .unwrap_or_default()
                .of(NotificationKind::Share);
            rows.push(
                event,
                recipient,
                NotificationKind::Share,
                &about,
                preference,
            );
        }
        rows.write(conn).await
    }
}

async fn thread_event(
    conn: &mut PgConnection,
    event: &RecordedEvent,
) -> Result<(), ProjectionError> {
    let thread = event.stream_id.id;
    let workspace = event.metadata.workspace_id.as_uuid();
    let decoded = ThreadEvent::decode_recorded(event)?;
    let document = decoded.document_id().as_uuid();
    let about = |comment: Option<Uuid>| About {
        document,
        thread: Some(thread),
        comment,
        role: None,
    };
    match decoded {
        ThreadEvent::ThreadOpened(e) => {
            take_part(conn, thread, &e.author, true, workspace, document).await?;
            let about = about(Some(e.comment_id));
            for user in e.mentions.iter().filter(|u| **u != e.author) {
                tell(conn, event, user, NotificationKind::Mention, &about).await?;
            }
        }
        ThreadEvent::CommentAdded(e) => {
            let about = about(Some(e.comment_id));
            for user in e.mentions.iter().filter(|u| **u != e.author) {
                tell(conn, event, user, NotificationKind::Mention, &about).await?;
            }
            // Everyone who took part hears of the reply (a mention already told them).
            let people: Vec<String> = sqlx::query_scalar(
                "SELECT user_id FROM rm_notification_threads WHERE thread_id = $1 \
                 ORDER BY user_id",
            )
            .bind(thread)
            .fetch_all(&mut *conn)
            .await?;
            for person in people {
                let Ok(person) = UserId::parse(&person) else {
                    continue;
                };
                if person != e.author && !e.mentions.contains(&person) {
                    tell(conn, event, &person, NotificationKind::Reply, &about).await?;
                }
            }
            take_part(conn, thread, &e.author, false, workspace, document).await?;
        }
        ThreadEvent::CommentEdited(e) => {
            // Only the people the edit newly mentions are told.
            let author = actor(event);
            let about = about(Some(e.comment_id));
            for user in e.mentions.iter().filter(|u| u.as_str() != author) {
                let told: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM rm_notifications \
                     WHERE comment_id = $1 AND recipient = $2 AND kind = 'mention')",
                )
                .bind(e.comment_id)
                .bind(user.as_str())
                .fetch_one(&mut *conn)
                .await?;
                if !told {
                    tell(conn, event, user, NotificationKind::Mention, &about).await?;
                }
            }
        }
        ThreadEvent::CommentDeleted(e) => {
            // A deleted comment's notifications go with it (its text is gone).
            sqlx::query("DELETE FROM rm_notifications WHERE comment_id = $1")
                .bind(e.comment_id)
                .execute(&mut *conn)
                .await?;
        }
        ThreadEvent::ThreadResolved(e) => {
            let author: Option<String> = sqlx::query_scalar(
                "SELECT user_id FROM rm_notification_threads WHERE thread_id = $1 AND author",
            )
            .bind(thread)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(author) = author.and_then(|a| UserId::parse(&a).ok()) {
                if author != e.by {
                    tell(
                        conn,
                        event,
                        &author,
                        NotificationKind::Resolved,
                        &about(None),
                    )
                    .await?;
                }
            }
        }
        ThreadEvent::ThreadReopened(_)
        | ThreadEvent::ReactionAdded(_)
        | ThreadEvent::ReactionRemoved(_) => {}
    }
    Ok(())
}

async fn own_event(conn: &mut PgConnection, event: &RecordedEvent) -> Result<(), ProjectionError> {
    let at = event.metadata.recorded_at;
    let user = match ProfileEvent::decode_recorded(event)? {
        ProfileEvent::NotificationPreferencesSet(e) => {
            sqlx::query(
                "INSERT INTO rm_notification_preferences (user_id, preferences, updated_at, \
                 position) VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO UPDATE \
                 SET preferences = $2, updated_at = $3, position = $4",
            )
            .bind(e.user_id.as_str())
            .bind(sqlx::types::Json(e.preferences))
            .bind(at)
            .bind(event.position)
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        ProfileEvent::NotificationsRead(e) => {
            sqlx::query(
                "UPDATE rm_notifications SET read_at = $3 \
                 WHERE recipient = $1 AND notification_id = ANY($2) AND read_at IS NULL",
            )
            .bind(e.user_id.as_str())
            .bind(&e.ids)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            e.user_id
        }
        ProfileEvent::AllNotificationsRead(e) => {
            sqlx::query(
                "UPDATE rm_notifications SET read_at = $3 \
                 WHERE recipient = $1 AND position <= $2 AND read_at IS NULL",
            )
            .bind(e.user_id.as_str())
            .bind(e.up_to)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            e.user_id
        }
        ProfileEvent::PersonalDataErased(e) => {
            // What they were told about goes too (it named other people's words).
            sqlx::query("DELETE FROM rm_notifications WHERE recipient = $1")
                .bind(e.user_id.as_str())
                .execute(&mut *conn)
                .await?;
            e.user_id
        }
        ProfileEvent::ProfileUpdated(_) => return Ok(()),
    };
    notify(conn, &[user.as_str()]).await
}

/// `user` took part in `thread` (opened it, or replied).
async fn take_part(
    conn: &mut PgConnection,
    thread: Uuid,
    user: &UserId,
    author: bool,
    workspace: Uuid,
    document: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rm_notification_threads (thread_id, user_id, author, workspace_id, \
         document_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(thread)
    .bind(user.as_str())
    .bind(author)
    .bind(workspace)
    .bind(document)
    .execute(conn)
    .await?;
    Ok(())
}

/// Who caused the event, as a user id (or `service:<name>`).
fn actor(event: &RecordedEvent) -> String {
    match &event.metadata.actor {
        Actor::User(user) => user.to_string(),
        other => other.to_string(),
    }
}

/// Tells `recipient` of `kind` caused by `event`, as their preferences then say (nothing
/// when the kind is off both in the app and by email).
async fn tell(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    recipient: &UserId,
    kind: NotificationKind,
    about: &About,
) -> Result<(), ProjectionError> {
    let set: Option<sqlx::types::Json<NotificationPreferences>> = sqlx::query_scalar(
        "SELECT preferences FROM rm_notification_preferences WHERE user_id = $1",
    )
    .bind(recipient.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let preference = set.map(|p| p.0).unwrap_or_default().of(kind);
    let mut rows = Rows::default();
    rows.push(event, recipient, kind, about, preference);
    rows.write(conn).await
}

/// Notifications written in one statement, and their recipients notified (once each).
#[derive(Default)]
struct Rows {
    ids: Vec<Uuid>,
    recipients: Vec<String>,
    kinds: Vec<&'static str>,
    workspaces: Vec<Uuid>,
    documents: Vec<Uuid>,
    threads: Vec<Option<Uuid>>,
    comments: Vec<Option<Uuid>>,
    actors: Vec<String>,
    roles: Vec<Option<&'static str>>,
    in_app: Vec<bool>,
    email: Vec<&'static str>,
    at: Vec<chrono::DateTime<chrono::Utc>>,
    positions: Vec<i64>,
}

impl Rows {
    /// Adds the notification unless the kind is off both in the app and by email.
    fn push(
        &mut self,
        event: &RecordedEvent,
        recipient: &UserId,
        kind: NotificationKind,
        about: &About,
        preference: collab_domain::notification::KindPreference,
    ) {
        if !preference.in_app && preference.email == collab_domain::notification::EmailMode::Off {
            return;
        }
        self.ids
            .push(notification_id(event.metadata.event_id, recipient));
        self.recipients.push(recipient.as_str().to_owned());
        self.kinds.push(kind.as_str());
        self.workspaces.push(event.metadata.workspace_id.as_uuid());
        self.documents.push(about.document);
        self.threads.push(about.thread);
        self.comments.push(about.comment);
        self.actors.push(actor(event));
        self.roles.push(about.role);
        self.in_app.push(preference.in_app);
        self.email.push(preference.email.as_str());
        self.at.push(event.metadata.recorded_at);
        self.positions.push(event.position);
    }

    async fn write(self, conn: &mut PgConnection) -> Result<(), ProjectionError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO rm_notifications (notification_id, recipient, kind, workspace_id, \
             document_id, thread_id, comment_id, actor, role, in_app, email, created_at, position) \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], \
             $6::uuid[], $7::uuid[], $8::text[], $9::text[], $10::bool[], $11::text[], \
             $12::timestamptz[], $13::bigint[]) \
             ON CONFLICT (notification_id) DO NOTHING",
        )
        .bind(&self.ids)
        .bind(&self.recipients)
        .bind(&self.kinds)
        .bind(&self.workspaces)
        .bind(&self.documents)
        .bind(&self.threads)
        .bind(&self.comments)
        .bind(&self.actors)
        .bind(&self.roles)
        .bind(&self.in_app)
        .bind(&self.email)
        .bind(&self.at)
        .bind(&self.positions)
        .execute(&mut *conn)
        .await?;
        let mut recipients = self.recipients;
        recipients.sort_unstable();
        recipients.dedup();
        notify(conn, &recipients).await
    }
}

/// `NOTIFY collab_notifications` once per recipient (delivered when the fold commits).
async fn notify(
    conn: &mut PgConnection,
    recipients: &[impl AsRef<str> + Sync],
) -> Result<(), ProjectionError> {
    let recipients: Vec<&str> = recipients.iter().map(AsRef::as_ref).collect();
    sqlx::query("SELECT pg_notify($1, r) FROM unnest($2::text[]) AS r")
        .bind(CHANNEL)
        .bind(recipients)
        .execute(conn)
        .await?;
    Ok(())
}

/// One notification as its recipient sees it: what caused it, joined with what it points
/// to (the document's title, the comment's text, the actor's name) as they are now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub notification_id: Uuid,
    pub kind: String,
    pub workspace_id: Uuid,
    pub document_id: Uuid,
    pub document_title: String,
    pub thread_id: Option<Uuid>,
    pub comment_id: Option<Uuid>,
    pub comment_body: Option<String>,
    pub actor: String,
    pub actor_name: Option<String>,
    pub role: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub position: i64,
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How it is emailed (`immediate`, `digest`, `off`), and how that went so far.
    pub email: String,
    pub email_state: Option<String>,
    pub email_sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The caller's in-app notifications (row-level security: their own, about documents they
/// can still read): newest first before `before` (a position), or oldest first after
/// `after`; at most `limit`.
pub async fn list(
    conn: &mut PgConnection,
    unread_only: bool,
    before: Option<i64>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    let order = if after.is_some() { "ASC" } else { "DESC" };
    sqlx::query_as(&format!(
        "SELECT n.notification_id, n.kind, n.workspace_id, n.document_id, \
                d.title AS document_title, n.thread_id, n.comment_id, c.body AS comment_body, \
                n.actor, p.display_name AS actor_name, n.role, n.created_at, n.position, \
                n.read_at, n.email, m.state AS email_state, m.sent_at AS email_sent_at \
         FROM rm_notifications n \
         JOIN rm_documents d ON d.document_id = n.document_id \
         LEFT JOIN rm_comments c ON c.comment_id = n.comment_id \
         LEFT JOIN rm_profiles p ON p.user_id = n.actor \
         LEFT JOIN mail_deliveries m ON m.notification_id = n.notification_id \
         WHERE n.recipient = collab_current_user() AND n.in_app \
           AND collab_opens_document(d.document_id, d.workspace_id, d.created_by) \
           AND (NOT $1 OR n.read_at IS NULL) \
           AND ($2::bigint IS NULL OR n.position < $2) \
           AND ($3::bigint IS NULL OR n.position > $3) \
         ORDER BY n.position {order}, n.notification_id LIMIT $4"
    ))
    .bind(unread_only)
    .bind(before)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// How many of the caller's in-app notifications are unread (of those before a position, if
/// given: a live feed counts only what it has shown, as the projector may fold more meanwhile).
pub async fn unread_count(
    conn: &mut PgConnection,
    before: Option<i64>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM rm_notifications n \
         JOIN rm_documents d ON d.document_id = n.document_id \
         WHERE n.recipient = collab_current_user() AND n.in_app AND n.read_at IS NULL \
           AND collab_opens_document(d.document_id, d.workspace_id, d.created_by) \
           AND ($1::bigint IS NULL OR n.position < $1)",
    )
    .bind(before)
    .fetch_one(conn)
    .await
}

/// Of `ids`, those that are not the caller's notifications.
pub async fn not_theirs(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM unnest($1::uuid[]) AS id WHERE NOT EXISTS \
         (SELECT 1 FROM rm_notifications n \
          WHERE n.notification_id = id AND n.recipient = collab_current_user())",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The position of the newest notification the caller has (0: none).
pub async fn newest(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(max(position), 0) FROM rm_notifications \
         WHERE recipient = collab_current_user()",
    )
    .fetch_one(conn)
    .await
}

/// The caller's preferences (the defaults when never set).
pub async fn preferences(conn: &mut PgConnection) -> Result<NotificationPreferences, sqlx::Error> {
    let set: Option<sqlx::types::Json<NotificationPreferences>> = sqlx::query_scalar(
        "SELECT preferences FROM rm_notification_preferences \
         WHERE user_id = collab_current_user()",
    )
    .fetch_optional(conn)
    .await?;
    Ok(set.map(|p| p.0).unwrap_or_default())
}

/// How far the read model has folded the log (its checkpoint; 0 before its first fold).
pub async fn folded_to(executor: impl sqlx::PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(max(position), 0) FROM projector_checkpoints WHERE name = $1",
    )
    .bind(NAME)
    .fetch_one(executor)
    .await
}
