//! The `audit` read model: the audit trail (who did what, when, to which document or
//! member), every stream's head as last seen (what verification and signed checkpoints
//! compare against), and the newest checkpoint of each workspace. The queries that serve
//! it are here too.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::audit::AuditEvent;
use collab_domain::comment::ThreadEvent;
use collab_domain::document::DocumentEvent;
use collab_domain::file::FileEvent;
use collab_domain::profile::ProfileEvent;
use collab_domain::workspace::WorkspaceEvent;
use collab_domain::{DomainEvent, RecordedEvent, StreamCategory, StreamId, WorkspaceId};
use collab_store::copy::CopyRows;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::bursts::{self, Burst, BurstColumns, BurstKey, Bursts};
use crate::read_model::{ProjectionError, ReadModel};

/// Edits by one actor to one document with no pause longer than this form one entry.
pub const DEFAULT_EDIT_GAP: Duration = Duration::from_secs(5 * 60);

/// The audit read model. It folds every category, content edits included, so queries
/// that do not read it do not wait for it.
pub struct Audit {
    pub edit_gap: Duration,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            edit_gap: DEFAULT_EDIT_GAP,
        }
    }
}

pub const NAME: &str = "audit";

#[async_trait]
impl ReadModel for Audit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &StreamCategory::ALL
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "rm_audit_entries",
            "rm_audit_open_edits",
            "rm_audit_names",
            "rm_audit_stream_heads",
            "rm_audit_checkpoints",
        ]
    }

    fn awaited_by_every_query(&self) -> bool {
        false
    }

    fn fold_window(&self) -> std::time::Duration {
        crate::read_model::KEYSTROKE_FOLD_WINDOW
    }

    /// A page in a few statements: stream heads in one upsert; keystrokes grouped into
    /// their bursts in memory (the stored open ones read in one query) and written in one
    /// upsert per table; other events' entries and the
    /// names their summaries use gathered in memory (in position order, so each summary
    /// sees the names as of its event) and written at the end.
    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        upsert_heads(conn, events).await?;
        let mut bursts = Bursts::new(self.edit_gap);
        let edits = events
            .iter()
            .filter(|e| e.stream_id.category == StreamCategory::Content)
            .map(burst_key);
        bursts.preload(conn, LOAD_BURSTS, edits).await?;
        let mut page = Page::default();
        page.read_names(conn, events).await?;
        for event in events {
            match DomainEvent::decode_recorded(event)? {
                DomainEvent::Content(_) => bursts.edit(burst_key(event), event, 0, 0),
                DomainEvent::Audit(AuditEvent::AuditCheckpointSigned(cp)) => {
                    sqlx::query(
                        "INSERT INTO rm_audit_checkpoints (workspace_id, covers_position, position) \
                         VALUES ($1, $2, $3) ON CONFLICT (workspace_id) DO UPDATE \
                         SET covers_position = $2, position = $3",
                    )
                    .bind(event.metadata.workspace_id.as_uuid())
                    .bind(cp.covers_position)
                    .bind(event.position)
                    .execute(&mut *conn)
                    .await?;
                }
                DomainEvent::Workspace(e) => {
                    flush(&mut bursts, conn, &mut page).await?;
                    let (summary, member) = workspace_summary(conn, &mut page, event, &e).await?;
                    page.entry(event, summary, None, member);
                }
                DomainEvent::Profile(e) => {
                    flush(&mut bursts, conn, &mut page).await?;
                    // Who, never what: the fields are personal data.
                    let summary = match e {
                        ProfileEvent::ProfileUpdated(e) if e.from_sign_in => {
                            format!("{}'s profile was filled at sign-in", e.user_id)
                        }
                        ProfileEvent::ProfileUpdated(e) => {
                            format!("{} updated their profile", e.user_id)
                        }
                        ProfileEvent::PersonalDataErased(e) => {
                            format!("{}'s personal data was erased", e.user_id)
                        }
                        ProfileEvent::NotificationPreferencesSet(e) => {
                            format!("{} set their notification preferences", e.user_id)
                        }
                        ProfileEvent::NotificationsRead(e) => {
                            format!("{} read {} notification(s)", e.user_id, e.ids.len())
                        }
                        ProfileEvent::AllNotificationsRead(e) => {
                            format!("{} read all their notifications", e.user_id)
                        }
                    };
                    page.entry(event, summary, None, None);
                }
                DomainEvent::Thread(e) => {
                    flush(&mut bursts, conn, &mut page).await?;
                    let document = e.document_id().as_uuid();
                    page.entry(event, thread_summary(e), Some(document), None);
                }
                DomainEvent::File(e) => {
                    flush(&mut bursts, conn, &mut page).await?;
                    let (summary, document) = file_summary(e);
                    page.entry(event, summary, document, None);
                }
                DomainEvent::Document(e) => {
                    flush(&mut bursts, conn, &mut page).await?;
                    let (summary, member) = document_summary(conn, &mut page, event, &e).await?;
                    page.entry(event, summary, Some(event.stream_id.id), member);
                }
            }
        }
        flush(&mut bursts, conn, &mut page).await?;
        page.write(conn).await?;
        Ok(())
    }
}

/// A file's event in a line, with the document it concerns (if one).
fn file_summary(event: FileEvent) -> (String, Option<uuid::Uuid>) {
    match event {
        FileEvent::FileUploadStarted(e) => (
            format!(
                "{} started uploading '{}' ({} bytes)",
                e.by,
                e.filename.as_str(),
                e.size
            ),
            e.document_id.map(|d| d.as_uuid()),
        ),
        FileEvent::FileUploaded(e) => (
            format!("a {} file of {} bytes was uploaded", e.content_type, e.size),
            None,
        ),
        FileEvent::FileRejected(e) => (format!("an upload was rejected: {}", e.reason), None),
        FileEvent::FileUploadAbandoned(_) => ("an unfinished upload was cleaned up".into(), None),
        FileEvent::FileDeleted(e) => (format!("{} deleted a file", e.by), None),
        FileEvent::ThumbnailCreated(e) => (format!("a {} px thumbnail was made", e.max_px), None),
        FileEvent::ThumbnailFailed(e) => {
            (format!("no thumbnail could be made: {}", e.reason), None)
        }
        FileEvent::FileAttached(e) => (
            format!("{} attached a file", e.by),
            Some(e.document_id.as_uuid()),
        ),
        FileEvent::FileDetached(e) => (
            format!("{} detached a file", e.by),
            Some(e.document_id.as_uuid()),
        ),
        FileEvent::FileTagsSet(e) => (
            format!("{} tagged a file: {}", e.by, e.tags.join(", ")),
            None,
        ),
        FileEvent::FileAddedToCollection(e) => (
            format!("{} added a file to collection {}", e.by, e.collection_id),
            None,
        ),
        FileEvent::FileRemovedFromCollection(e) => (
            format!("{} took a file out of collection {}", e.by, e.collection_id),
            None,
        ),
    }
}

/// A comment thread's event in a line (what was said stays in the thread).
fn thread_summary(event: ThreadEvent) -> String {
    match event {
        ThreadEvent::ThreadOpened(e) => format!("{} opened a comment thread", e.author),
        ThreadEvent::CommentAdded(e) => format!("{} replied in a comment thread", e.author),
        ThreadEvent::CommentEdited(e) => format!("comment {} was edited", e.comment_id),
        ThreadEvent::CommentDeleted(e) => format!("{} deleted comment {}", e.by, e.comment_id),
        ThreadEvent::ThreadResolved(e) => format!("{} resolved a comment thread", e.by),
        ThreadEvent::ThreadReopened(e) => format!("{} reopened a comment thread", e.by),
        ThreadEvent::ReactionAdded(e) => {
            format!(
                "{} reacted {} to comment {}",
                e.user,
                e.emoji.as_str(),
                e.comment_id
            )
        }
        ThreadEvent::ReactionRemoved(e) => {
            format!(
                "{} took back {} on comment {}",
                e.user,
                e.emoji.as_str(),
                e.comment_id
            )
        }
    }
}

/// Each stream's last event of the page, in one statement.
async fn upsert_heads(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
) -> Result<(), sqlx::Error> {
    let mut last: HashMap<String, &RecordedEvent> = HashMap::new();
    for event in events {
        last.insert(event.stream_id.to_string(), event);
    }
    let (mut ids, mut workspaces, mut categories, mut versions, mut hashes, mut positions) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (id, event) in last {
        ids.push(id);
        workspaces.push(event.metadata.workspace_id.as_uuid());
        categories.push(event.stream_id.category.as_str());
        versions.push(event.stream_version);
        hashes.push(event.hash.to_vec());
        positions.push(event.position);
    }
    sqlx::query(
        "INSERT INTO rm_audit_stream_heads \
         (stream_id, workspace_id, stream_category, version, hash, position) \
         SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bigint[], $5::bytea[], $6::bigint[]) \
         ON CONFLICT (stream_id) DO UPDATE \
         SET version = excluded.version, hash = excluded.hash, position = excluded.position",
    )
    .bind(ids)
    .bind(workspaces)
    .bind(categories)
    .bind(versions)
    .bind(hashes)
    .bind(positions)
    .execute(conn)
    .await?;
    Ok(())
}

/// The burst a content edit extends: its document's and actor's.
fn burst_key(event: &RecordedEvent) -> BurstKey {
    (event.stream_id.id, event.metadata.actor.to_string())
}

/// Moves every burst touched since the last flush into the page's rows, its summary
/// naming the document as it is called now (so before a later event of the page renames it).
async fn flush(
    bursts: &mut Bursts,
    conn: &mut PgConnection,
    page: &mut Page,
) -> Result<(), sqlx::Error> {
    let (touched, _) = bursts.drain();
    for ((document, actor), burst, open) in touched {
        let title = page.name_of(conn, document).await?;
        let summary = if burst.edits == 1 {
            format!(
                "{} edited {title} (1 edit, version {})",
                who(&actor),
                burst.last_version
            )
        } else {
            format!(
                "{} edited {title} ({} edits, versions {}–{})",
                who(&actor),
                burst.edits,
                burst.first_version,
                burst.last_version
            )
        };
        // A burst flushed twice in a page is written once, as it is last (a burst open at
        // one flush and closed by a later one is drained again, closed).
        page.bursts.insert(
            (burst.workspace, burst.entry_position),
            ((document, actor), summary, burst, open),
        );
    }
    Ok(())
}

/// The stored open bursts of `(document, actor)` pairs, for [`Bursts::preload`].
const LOAD_BURSTS: &str = "\
SELECT o.document_id, o.actor, e.workspace_id AS workspace, e.position AS entry_position,
    e.started_at, o.last_at, e.last_position, e.first_version, e.last_version, e.edits,
    0::bigint AS inserted, 0::bigint AS deleted
FROM unnest($1::uuid[], $2::text[]) AS k(document_id, actor)
JOIN rm_audit_open_edits o ON o.document_id = k.document_id AND o.actor = k.actor
JOIN rm_audit_entries e ON e.workspace_id = o.workspace_id AND e.position = o.entry_position";

/// `alice` for `user:alice`, `service account-…` for a service.
fn who(actor: &str) -> String {
    match actor.split_once(':') {
        Some(("user", id)) => id.to_owned(),
        Some(("service", name)) => format!("service {name}"),
        _ => actor.to_owned(),
    }
}

/// What a page of events writes besides bursts, gathered in memory and written in a few
/// statements at its end: entries of single events, and the names summaries use (read from
/// the table once per name and page, kept current in memory as the page renames things).
#[derive(Default)]
struct Page {
    names: HashMap<Uuid, String>,
    renamed: HashMap<Uuid, (Uuid, String)>,
    entries: Vec<Entry>,
    /// Burst entries by key (workspace, position of the first edit): its document and
    /// actor, summary, the burst, and whether it is still open.
    bursts: HashMap<(Uuid, i64), (BurstKey, String, Burst, bool)>,
}

/// One audit entry of a single event.
struct Entry {
    workspace: Uuid,
    position: i64,
    actor: String,
    event_type: String,
    summary: String,
    document: Option<Uuid>,
    member: Option<String>,
    stream_id: String,
    version: i64,
    at: DateTime<Utc>,
}

impl Page {
    async fn name_of(&mut self, conn: &mut PgConnection, id: Uuid) -> Result<String, sqlx::Error> {
        if let Some(name) = self.names.get(&id) {
            return Ok(name.clone());
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT name FROM rm_audit_names WHERE id = $1")
                .bind(id)
                .fetch_optional(conn)
                .await?;
        let name = stored.unwrap_or_else(|| id.to_string());
        self.names.insert(id, name.clone());
        Ok(name)
    }

    /// Reads in one query the names the page's summaries are likely to use: its documents'
    /// and workspaces' (others are read when first used).
    async fn read_names(
        &mut self,
        conn: &mut PgConnection,
        events: &[RecordedEvent],
    ) -> Result<(), sqlx::Error> {
        let mut ids = std::collections::HashSet::new();
        for event in events {
            match event.stream_id.category {
                StreamCategory::Document | StreamCategory::Content => {
                    ids.insert(event.stream_id.id);
                }
                StreamCategory::Workspace => {
                    ids.insert(event.metadata.workspace_id.as_uuid());
                }
                _ => {}
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = ids.into_iter().collect();
        let stored: Vec<(Uuid, String)> =
            // A join, not `id = ANY($1)`: a rebuild fills the table in one transaction, so
            // its statistics still say it is empty, and `= ANY` was then planned as a scan of
            // every name comparing each with every id of the page (a fifth of the audit
            // rebuild's time in Postgres).
            sqlx::query_as(
                "SELECT n.id, n.name FROM unnest($1::uuid[]) AS k(id) \
                 JOIN rm_audit_names n ON n.id = k.id",
            )
                .bind(&ids)
                .fetch_all(&mut *conn)
                .await?;
        self.names.extend(stored);
        for id in ids {
            self.names.entry(id).or_insert_with(|| id.to_string());
        }
        Ok(())
    }

    fn set_name(&mut self, id: Uuid, workspace: Uuid, name: &str) {
        self.names.insert(id, name.to_owned());
        self.renamed.insert(id, (workspace, name.to_owned()));
    }

    fn entry(
        &mut self,
        event: &RecordedEvent,
        summary: String,
        document: Option<Uuid>,
        member: Option<String>,
    ) {
        self.entries.push(Entry {
            workspace: event.metadata.workspace_id.as_uuid(),
            position: event.position,
            actor: event.metadata.actor.to_string(),
            event_type: event.event_type.clone(),
            summary,
            document,
            member,
            stream_id: event.stream_id.to_string(),
            version: event.stream_version,
            at: event.metadata.recorded_at,
        });
    }

    async fn write(self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.renamed.is_empty() {
            let (ids, rest): (Vec<Uuid>, Vec<(Uuid, String)>) = self.renamed.into_iter().unzip();
            let (workspaces, names): (Vec<Uuid>, Vec<String>) = rest.into_iter().unzip();
            sqlx::query(
                "INSERT INTO rm_audit_names (id, workspace_id, name) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[]) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            )
            .bind(ids)
            .bind(workspaces)
            .bind(names)
            .execute(&mut *conn)
            .await?;
        }
        write_bursts(conn, self.bursts).await?;
        let mut rows = CopyRows::new(
            "rm_audit_entries",
            &[
                "workspace_id",
                "position",
                "last_position",
                "actor",
                "event_type",
                "summary",
                "document_id",
                "member",
                "stream_id",
                "first_version",
                "last_version",
                "edits",
                "started_at",
                "recorded_at",
            ],
        );
        for e in &self.entries {
            rows.row()
                .value(&e.workspace)
                .value(&e.position)
                .value(&e.position)
                .value(&e.actor)
                .value(&e.event_type)
                .value(&e.summary)
                .value(&e.document)
                .value(&e.member)
                .value(&e.stream_id)
                .value(&e.version)
                .value(&e.version)
                .value(&1i32)
                .value(&e.at)
                .value(&e.at);
        }
        rows.send(conn).await?;
        Ok(())
    }
}

/// Burst entries and open bursts, an upsert each (a burst may already be stored: one
/// that an earlier page opened and this one extends).
async fn write_bursts(
    conn: &mut PgConnection,
    bursts: HashMap<(Uuid, i64), (BurstKey, String, Burst, bool)>,
) -> Result<(), sqlx::Error> {
    if bursts.is_empty() {
        return Ok(());
    }
    let mut columns = BurstColumns::default();
    let (mut summaries, mut stream_ids, mut open) = (vec![], vec![], vec![]);
    for (key, summary, burst, is_open) in bursts.into_values() {
        columns.push(&key, &burst);
        summaries.push(summary);
        stream_ids.push(StreamId::new(StreamCategory::Content, key.0).to_string());
        if is_open {
            open.push((key, burst));
        }
    }
    sqlx::query(
        "INSERT INTO rm_audit_entries (workspace_id, position, last_position, actor, \
         event_type, summary, document_id, member, stream_id, first_version, last_version, \
         edits, started_at, recorded_at) \
         SELECT w, p, lp, a, 'DocumentEdited', s, d, NULL, sid, fv, lv, n, sa, ra \
         FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
         $6::uuid[], $7::text[], $8::bigint[], $9::bigint[], $10::int4[], \
         $11::timestamptz[], $12::timestamptz[]) AS t(w, p, lp, a, s, d, sid, fv, lv, n, sa, ra) \
         ON CONFLICT (workspace_id, position) DO UPDATE SET \
         last_position = excluded.last_position, summary = excluded.summary, \
         last_version = excluded.last_version, edits = excluded.edits, \
         recorded_at = excluded.recorded_at",
    )
    .bind(columns.workspace)
    .bind(columns.position)
    .bind(columns.last_position)
    .bind(columns.actor)
    .bind(summaries)
    .bind(columns.document)
    .bind(stream_ids)
    .bind(columns.first_version)
    .bind(columns.last_version)
    .bind(columns.edits)
    .bind(columns.started_at)
    .bind(columns.last_at)
    .execute(&mut *conn)
    .await?;
    bursts::write_open(conn, "rm_audit_open_edits", open).await
}

async fn workspace_summary(
    conn: &mut PgConnection,
    page: &mut Page,
    event: &RecordedEvent,
    decoded: &WorkspaceEvent,
) -> Result<(String, Option<String>), sqlx::Error> {
    let actor = who(&event.metadata.actor.to_string());
    let workspace = event.metadata.workspace_id.as_uuid();
    Ok(match decoded {
        WorkspaceEvent::WorkspaceCreated(e) => {
            page.set_name(workspace, workspace, &e.name);
            (format!("{actor} created workspace {}", e.name), None)
        }
        WorkspaceEvent::WorkspaceRenamed(e) => {
            let old = page.name_of(conn, workspace).await?;
            page.set_name(workspace, workspace, &e.name);
            (
                format!("{actor} renamed workspace {old} to {}", e.name),
                None,
            )
        }
        WorkspaceEvent::MemberAdded(e) => (
            format!("{actor} added {} as {}", e.user_id, e.role),
            Some(e.user_id.to_string()),
        ),
        WorkspaceEvent::MemberRoleChanged(e) => (
            format!("{actor} made {} {}", e.user_id, e.role),
            Some(e.user_id.to_string()),
        ),
        WorkspaceEvent::MemberRemoved(e) => (
            if actor == e.user_id.as_str() {
                format!("{actor} left the workspace")
            } else {
                format!("{actor} removed {} from the workspace", e.user_id)
            },
            Some(e.user_id.to_string()),
        ),
        WorkspaceEvent::DefaultDocumentRoleChanged(e) => (
            format!(
                "{actor} set the default document role to {}",
                e.role.map_or("none", |r| r.as_str())
            ),
            None,
        ),
        WorkspaceEvent::ServiceAccountCreated(e) => {
            page.set_name(e.account_id, workspace, &e.name);
            let scopes: Vec<&str> = e.scopes.iter().map(|s| s.as_str()).collect();
            (
                format!(
                    "{actor} created service account {} ({})",
                    e.name,
                    scopes.join(", ")
                ),
                None,
            )
        }
        WorkspaceEvent::ServiceAccountRevoked(e) => {
            let name = page.name_of(conn, e.account_id).await?;
            (format!("{actor} revoked service account {name}"), None)
        }
        WorkspaceEvent::WebhookCreated(e) => (
            format!(
                "{actor} added a {} webhook to {} for {}",
                e.format.as_str(),
                e.url,
                e.events.join(", ")
            ),
            None,
        ),
        WorkspaceEvent::WebhookDeleted(e) => {
            (format!("{actor} deleted webhook {}", e.webhook_id), None)
        }
        WorkspaceEvent::WebhookDisabled(e) => (
            format!("webhook {} was disabled: {}", e.webhook_id, e.reason),
            None,
        ),
        WorkspaceEvent::WebhookEnabled(e) => {
            (format!("{actor} enabled webhook {}", e.webhook_id), None)
        }
        WorkspaceEvent::CollectionCreated(e) => (
            format!("{actor} created the collection \"{}\"", e.name),
            None,
        ),
        WorkspaceEvent::CollectionRenamed(e) => (
            format!(
                "{actor} renamed collection {} to \"{}\"",
                e.collection_id, e.name
            ),
            None,
        ),
        WorkspaceEvent::CollectionDeleted(e) => (
            format!("{actor} deleted collection {}", e.collection_id),
            None,
        ),
    })
}

async fn document_summary(
    conn: &mut PgConnection,
    page: &mut Page,
    event: &RecordedEvent,
    decoded: &DocumentEvent,
) -> Result<(String, Option<String>), sqlx::Error> {
    let actor = who(&event.metadata.actor.to_string());
    let document = event.stream_id.id;
    let workspace = event.metadata.workspace_id.as_uuid();
    let title = match decoded {
        // A new document has no name yet: nothing to look up.
        DocumentEvent::DocumentCreated(_) => String::new(),
        _ => page.name_of(&mut *conn, document).await?,
    };
    Ok(match decoded {
        DocumentEvent::DocumentCreated(e) => {
            page.set_name(document, workspace, &e.title);
            (format!("{actor} created {} in {}", e.title, e.folder), None)
        }
        DocumentEvent::DocumentRenamed(e) => {
            page.set_name(document, workspace, &e.title);
            (format!("{actor} renamed {title} to {}", e.title), None)
        }
        DocumentEvent::DocumentMoved(e) => (format!("{actor} moved {title} to {}", e.folder), None),
        DocumentEvent::DocumentArchived(_) => (format!("{actor} archived {title}"), None),
        DocumentEvent::DocumentRestored(_) => (format!("{actor} restored {title}"), None),
        DocumentEvent::DocumentDeleted(_) => (format!("{actor} deleted {title}"), None),
        DocumentEvent::DocumentShared(e) => (
            format!("{actor} shared {title} with {} as {}", e.user_id, e.role),
            Some(e.user_id.to_string()),
        ),
        DocumentEvent::DocumentUnshared(e) => (
            format!("{actor} stopped sharing {title} with {}", e.user_id),
            Some(e.user_id.to_string()),
        ),
        DocumentEvent::ShareLinkCreated(e) => (
            format!("{actor} created a {} link to {title}", e.role),
            None,
        ),
        DocumentEvent::ShareLinkRevoked(_) => (format!("{actor} revoked a link to {title}"), None),
        DocumentEvent::VersionNamed(e) => (
            format!(
                "{actor} named version {} of {title} \"{}\"",
                e.content_version, e.name
            ),
            None,
        ),
        DocumentEvent::VersionDeleted(_) => {
            (format!("{actor} deleted a named version of {title}"), None)
        }
        DocumentEvent::DocumentTemplateChanged(e) if e.template => {
            (format!("{actor} made {title} a template"), None)
        }
        DocumentEvent::DocumentTemplateChanged(_) => {
            (format!("{actor} made {title} no longer a template"), None)
        }
    })
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub position: i64,
    pub last_position: i64,
    pub actor: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub summary: String,
    pub document_id: Option<Uuid>,
    pub member: Option<String>,
    pub stream_id: String,
    pub first_version: i64,
    pub last_version: i64,
    pub edits: i32,
    pub started_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

/// What the audit trail is filtered by.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub event_type: Option<String>,
    pub document: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Entries before this position (the previous page's `next_cursor`).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Newest first. An entry is in `from..to` when its activity overlaps the range.
pub async fn list(
    executor: impl PgExecutor<'_>,
    workspace: WorkspaceId,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT position, last_position, actor, event_type, summary, document_id, member, \
         stream_id, first_version, last_version, edits, started_at, recorded_at \
         FROM rm_audit_entries WHERE workspace_id = $1 \
         AND ($2::text IS NULL OR actor = $2) \
         AND ($3::text IS NULL OR event_type = $3) \
         AND ($4::uuid IS NULL OR document_id = $4) \
         AND ($5::timestamptz IS NULL OR recorded_at >= $5) \
         AND ($6::timestamptz IS NULL OR started_at <= $6) \
         AND ($7::bigint IS NULL OR position < $7) \
         ORDER BY position DESC LIMIT $8",
    )
    .bind(workspace.as_uuid())
    .bind(&query.actor)
    .bind(&query.event_type)
    .bind(query.document)
    .bind(query.from)
    .bind(query.to)
    .bind(query.before)
    .bind(query.limit)
    .fetch_all(executor)
    .await
}
