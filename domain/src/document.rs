//! The document aggregate: a document's metadata and lifecycle (its content is a CRDT and
//! lives in its own events; see the live-editing issue).

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_with::base64::Base64;
use serde_with::{serde_as, IfIsHumanReadable};

use crate::aggregate::EventSourced;
use crate::catalogue::event_enum;
use crate::envelope::StreamCategory;
use crate::ids::{DocumentId, UserId, WorkspaceId};
use crate::role::{DocumentRole, WorkspaceRole};
use crate::values::{FolderPath, Title, VersionName};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Who creates a document, with their role in the workspace (resolved by the caller from
/// the workspace aggregate, so the decision is made on consistent state).
#[derive(Debug, Clone, PartialEq)]
pub struct ActingMember {
    pub user: UserId,
    pub role: WorkspaceRole,
}

/// Who acts on an existing document, with their effective role on it (see `access`).
#[derive(Debug, Clone, PartialEq)]
pub struct Acting {
    pub user: UserId,
    pub role: DocumentRole,
}

/// A share link as the document knows it. Only the hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShareLink {
    pub role: DocumentRole,
    pub secret_hash: [u8; 32],
    pub expires_at_micros: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DocumentCommand {
    CreateDocument {
        by: ActingMember,
        id: DocumentId,
        workspace_id: WorkspaceId,
        title: Title,
        folder: FolderPath,
    },
    RenameDocument {
        by: Acting,
        title: Title,
    },
    MoveDocument {
        by: Acting,
        folder: FolderPath,
    },
    ArchiveDocument {
        by: Acting,
    },
    RestoreDocument {
        by: Acting,
    },
    DeleteDocument {
        by: Acting,
    },
    ShareDocument {
        by: Acting,
        user: UserId,
        role: DocumentRole,
    },
    UnshareDocument {
        by: Acting,
        user: UserId,
    },
    CreateShareLink {
        by: Acting,
        link_id: Uuid,
        role: DocumentRole,
        secret_hash: [u8; 32],
        expires_at_micros: Option<i64>,
    },
    RevokeShareLink {
        by: Acting,
        link_id: Uuid,
    },
    /// Names a point of the content history (`content_version`, checked by the caller to
    /// exist).
    NameVersion {
        by: Acting,
        version_id: Uuid,
        name: VersionName,
        content_version: i64,
    },
    DeleteVersion {
        by: Acting,
        version_id: Uuid,
    },
    /// Marks the document as a template (new documents may start from its content), or
    /// not.
    SetTemplate {
        by: Acting,
        template: bool,
    },
}

/// A document was created in a workspace. Its content is in the stream `content-<document id>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentCreated {
    /// The new document.
    pub document_id: DocumentId,
    /// The workspace it belongs to.
    pub workspace_id: WorkspaceId,
    /// Its title as given.
    pub title: String,
    /// The folder it is in, `/` for the top.
    pub folder: String,
    /// Who created it (its first owner).
    pub created_by: UserId,
}

/// The document got a new title.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentRenamed {
    /// The new title.
    pub title: String,
}

/// The document moved to another folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentMoved {
    /// The new folder.
    pub folder: String,
}

/// The document was archived: read-only until restored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentArchived {}

/// An archived document was restored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentRestored {}

/// The document was deleted: nobody can open it any more; its history stays in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentDeleted {}

/// The document was shared with a user (or their share changed role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentShared {
    /// Who it is shared with.
    pub user_id: UserId,
    /// Their role on this document.
    pub role: DocumentRole,
}

/// A user's share on the document was removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentUnshared {
    /// Whose share ended.
    pub user_id: UserId,
}

/// A share link was created: whoever holds it gets a role on the document.
#[serde_as]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShareLinkCreated {
    /// The link.
    pub link_id: Uuid,
    /// The role its holders get.
    pub role: DocumentRole,
    /// SHA-256 of the link's secret; the secret itself is shown once and never stored.
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub secret_hash: [u8; 32],
    /// When it stops working, in microseconds since the Unix epoch; absent: never.
    pub expires_at_micros: Option<i64>,
}

/// A share link was revoked; sockets opened with it close.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ShareLinkRevoked {
    /// The revoked link.
    pub link_id: Uuid,
}

/// A point of the document's content history got a name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VersionNamed {
    /// The named version.
    pub version_id: Uuid,
    /// Its name, unique among the document's named versions.
    pub name: String,
    /// The content-stream version it names.
    pub content_version: i64,
}

/// A named version was deleted (the content history itself stays).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VersionDeleted {
    /// The deleted named version.
    pub version_id: Uuid,
}

/// The document was marked as a template (new documents may start as a copy of its
/// content), or no longer is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentTemplateChanged {
    /// Whether it is a template now.
    pub template: bool,
}

event_enum!(
    /// Events of a document stream.
    DocumentEvent in Document {
        DocumentCreated = 1,
        DocumentRenamed = 1,
        DocumentMoved = 1,
        DocumentArchived = 1,
        DocumentRestored = 1,
        DocumentDeleted = 1,
        DocumentShared = 1,
        DocumentUnshared = 1,
        ShareLinkCreated = 1,
        ShareLinkRevoked = 1,
        VersionNamed = 1,
        VersionDeleted = 1,
        DocumentTemplateChanged = 1,
    }
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("document already exists")]
    AlreadyExists,
    #[error("document not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("document is archived; restore it first")]
    Archived,
    #[error("document is already archived")]
    AlreadyArchived,
    #[error("document is not archived")]
    NotArchived,
    #[error("{0} has no share on this document")]
    NotShared(UserId),
    #[error("share link not found")]
    LinkNotFound,
    #[error("this document already has a version named '{0}'")]
    VersionNameTaken(String),
    #[error("named version not found")]
    VersionNotFound,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    id: Option<DocumentId>,
    workspace_id: Option<WorkspaceId>,
    title: String,
    folder: String,
    created_by: Option<UserId>,
    archived: bool,
    deleted: bool,
    shares: BTreeMap<UserId, DocumentRole>,
    links: BTreeMap<Uuid, ShareLink>,
    /// Named versions: id → name.
    #[serde(default)]
    versions: BTreeMap<Uuid, String>,
    /// New documents may start as a copy of its content.
    #[serde(default)]
    template: bool,
}

impl Document {
    pub fn id(&self) -> Option<DocumentId> {
        self.id
    }

    /// The workspace of a live (created, not deleted) document.
    pub fn live_workspace(&self) -> Option<WorkspaceId> {
        if self.deleted {
            None
        } else {
            self.workspace_id
        }
    }

    fn require_live(&self) -> Result<(), DocumentError> {
        if self.id.is_none() || self.deleted {
            Err(DocumentError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Whether it is a template.
    pub fn is_template(&self) -> bool {
        self.template
    }

    /// The current title (consistent with the commands, unlike a read model).
    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn created_by(&self) -> Option<&UserId> {
        self.created_by.as_ref()
    }

    pub fn shared_role(&self, user: &UserId) -> Option<DocumentRole> {
        self.shares.get(user).copied()
    }

    pub fn shares(&self) -> &BTreeMap<UserId, DocumentRole> {
        &self.shares
    }

    pub fn links(&self) -> &BTreeMap<Uuid, ShareLink> {
        &self.links
    }

    /// The role a share link grants, if `secret_hash` matches a live, unexpired link.
    pub fn link_role(
        &self,
        link_id: Uuid,
        secret_hash: &[u8; 32],
        now_micros: i64,
    ) -> Option<DocumentRole> {
        let link = self.links.get(&link_id)?;
        let expired = link.expires_at_micros.is_some_and(|at| at <= now_micros);
        (!expired && &link.secret_hash == secret_hash).then_some(link.role)
    }

    fn require(by: &Acting, needed: DocumentRole, why: &'static str) -> Result<(), DocumentError> {
        if by.role >= needed {
            Ok(())
        } else {
            Err(DocumentError::Forbidden(why))
        }
    }

    fn require_editor(by: &Acting) -> Result<(), DocumentError> {
        Self::require(
            by,
            DocumentRole::Editor,
            "only editors and owners change documents",
        )
    }

    fn require_owner(by: &Acting) -> Result<(), DocumentError> {
        Self::require(by, DocumentRole::Owner, "only document owners do that")
    }

    /// Decides `command` against the current state: the events it yields, or why not
    /// (pure; `Aggregate::handle` wraps it).
    pub fn decide(&self, command: DocumentCommand) -> Result<Vec<DocumentEvent>, DocumentError> {
        use DocumentEvent as E;
        if let DocumentCommand::CreateDocument {
            by,
            id,
            workspace_id,
            title,
            folder,
        } = command
        {
            if !by.role.edits_documents() {
                return Err(DocumentError::Forbidden(
                    "guests and auditors cannot create documents",
                ));
            }
            if self.id.is_some() {
                return Err(DocumentError::AlreadyExists);
            }
            return Ok(vec![E::DocumentCreated(DocumentCreated {
                document_id: id,
                workspace_id,
                title: title.into(),
                folder: folder.into(),
                created_by: by.user,
            })]);
        }
        self.require_live()?;
        match command {
            DocumentCommand::CreateDocument { .. } => unreachable!("handled above"),
            DocumentCommand::RenameDocument { by, title } => {
                Self::require_editor(&by)?;
                if self.archived {
                    return Err(DocumentError::Archived);
                }
                if title.as_str() == self.title {
                    return Ok(vec![]);
                }
                Ok(vec![E::DocumentRenamed(DocumentRenamed {
                    title: title.into(),
                })])
            }
            DocumentCommand::MoveDocument { by, folder } => {
                Self::require_editor(&by)?;
                if self.archived {
                    return Err(DocumentError::Archived);
                }
                if folder.as_str() == self.folder {
                    return Ok(vec![]);
                }
                Ok(vec![E::DocumentMoved(DocumentMoved {
                    folder: folder.into(),
                })])
            }
            DocumentCommand::ArchiveDocument { by } => {
                Self::require_editor(&by)?;
                if self.archived {
                    return Err(DocumentError::AlreadyArchived);
                }
                Ok(vec![E::DocumentArchived(DocumentArchived {})])
            }
            DocumentCommand::RestoreDocument { by } => {
                Self::require_editor(&by)?;
                if !self.archived {
                    return Err(DocumentError::NotArchived);
                }
                Ok(vec![E::DocumentRestored(DocumentRestored {})])
            }
            DocumentCommand::DeleteDocument { by } => {
                Self::require_owner(&by)?;
                Ok(vec![E::DocumentDeleted(DocumentDeleted {})])
            }
            DocumentCommand::ShareDocument { by, user, role } => {
                Self::require_owner(&by)?;
                if self.shares.get(&user) == Some(&role) {
                    return Ok(vec![]);
                }
                Ok(vec![E::DocumentShared(DocumentShared {
                    user_id: user,
                    role,
                })])
            }
            DocumentCommand::UnshareDocument { by, user } => {
                Self::require_owner(&by)?;
                if !self.shares.contains_key(&user) {
                    return Err(DocumentError::NotShared(user));
                }
                Ok(vec![E::DocumentUnshared(DocumentUnshared {
                    user_id: user,
                })])
            }
            DocumentCommand::CreateShareLink {
                by,
                link_id,
                role,
                secret_hash,
                expires_at_micros,
            } => {
                Self::require_owner(&by)?;
                if self.links.contains_key(&link_id) {
                    return Err(DocumentError::AlreadyExists);
                }
                Ok(vec![E::ShareLinkCreated(ShareLinkCreated {
                    link_id,
                    role,
                    secret_hash,
                    expires_at_micros,
                })])
            }
            DocumentCommand::RevokeShareLink { by, link_id } => {
                Self::require_owner(&by)?;
                if !self.links.contains_key(&link_id) {
                    return Err(DocumentError::LinkNotFound);
                }
                Ok(vec![E::ShareLinkRevoked(ShareLinkRevoked { link_id })])
            }
            DocumentCommand::NameVersion {
                by,
                version_id,
                name,
                content_version,
            } => {
                Self::require_editor(&by)?;
                if self.archived {
                    return Err(DocumentError::Archived);
                }
                if self.versions.contains_key(&version_id) {
                    return Err(DocumentError::AlreadyExists);
                }
                if self.versions.values().any(|n| n == name.as_str()) {
                    return Err(DocumentError::VersionNameTaken(name.into()));
                }
                Ok(vec![E::VersionNamed(VersionNamed {
                    version_id,
                    name: name.into(),
                    content_version,
                })])
            }
            DocumentCommand::DeleteVersion { by, version_id } => {
                Self::require_editor(&by)?;
                if !self.versions.contains_key(&version_id) {
                    return Err(DocumentError::VersionNotFound);
                }
                Ok(vec![E::VersionDeleted(VersionDeleted { version_id })])
            }
            DocumentCommand::SetTemplate { by, template } => {
                Self::require_editor(&by)?;
                if template == self.template {
                    return Ok(vec![]);
                }
                Ok(vec![E::DocumentTemplateChanged(DocumentTemplateChanged {
                    template,
                })])
            }
        }
    }
}

impl Aggregate for Document {
    const TYPE: &'static str = "document";
    type Command = DocumentCommand;
    type Event = DocumentEvent;
    type Error = DocumentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DocumentEvent::DocumentCreated(e) => {
                self.id = Some(e.document_id);
                self.workspace_id = Some(e.workspace_id);
                self.title = e.title;
                self.folder = e.folder;
                self.created_by = Some(e.created_by);
            }
            DocumentEvent::DocumentRenamed(e) => self.title = e.title,
            DocumentEvent::DocumentMoved(e) => self.folder = e.folder,
            DocumentEvent::DocumentArchived(_) => self.archived = true,
            DocumentEvent::DocumentRestored(_) => self.archived = false,
            DocumentEvent::DocumentDeleted(_) => self.deleted = true,
            DocumentEvent::DocumentShared(e) => {
                self.shares.insert(e.user_id, e.role);
            }
            DocumentEvent::DocumentUnshared(e) => {
                self.shares.remove(&e.user_id);
            }
            DocumentEvent::ShareLinkCreated(e) => {
                self.links.insert(
                    e.link_id,
                    ShareLink {
                        role: e.role,
                        secret_hash: e.secret_hash,
                        expires_at_micros: e.expires_at_micros,
                    },
                );
            }
            DocumentEvent::ShareLinkRevoked(e) => {
                self.links.remove(&e.link_id);
            }
            DocumentEvent::VersionNamed(e) => {
                self.versions.insert(e.version_id, e.name);
            }
            DocumentEvent::VersionDeleted(e) => {
                self.versions.remove(&e.version_id);
            }
            DocumentEvent::DocumentTemplateChanged(e) => self.template = e.template,
        }
    }
}

impl EventSourced for Document {
    const CATEGORY: StreamCategory = StreamCategory::Document;
    const SNAPSHOT_VERSION: i32 = 4;

    fn workspace_id(&self) -> Option<WorkspaceId> {
        self.workspace_id
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<Document>;

    fn acting(name: &str, role: DocumentRole) -> Acting {
        Acting {
            user: UserId::parse(name).unwrap(),
            role,
        }
    }

    fn created() -> DocumentEvent {
        DocumentEvent::DocumentCreated(DocumentCreated {
            document_id: DocumentId::new(),
            workspace_id: WorkspaceId::new(),
            title: "Plan".into(),
            folder: "/".into(),
            created_by: UserId::parse("alice").unwrap(),
        })
    }

    #[test]
    fn guests_cannot_create_documents() {
        Given::with(())
            .given_no_previous_events()
            .when(DocumentCommand::CreateDocument {
                by: ActingMember {
                    user: UserId::parse("gus").unwrap(),
                    role: WorkspaceRole::Guest,
                },
                id: DocumentId::new(),
                workspace_id: WorkspaceId::new(),
                title: Title::parse("title", "x").unwrap(),
                folder: FolderPath::root(),
            })
            .then_expect_error(DocumentError::Forbidden(
                "guests and auditors cannot create documents",
            ));
    }

    #[test]
    fn archived_documents_are_frozen_until_restored() {
        let archived = vec![
            created(),
            DocumentEvent::DocumentArchived(DocumentArchived {}),
        ];
        Given::with(())
            .given(archived.clone())
            .when(DocumentCommand::RenameDocument {
                by: acting("alice", DocumentRole::Editor),
                title: Title::parse("title", "New").unwrap(),
            })
            .then_expect_error(DocumentError::Archived);
        Given::with(())
            .given(archived.clone())
            .when(DocumentCommand::ArchiveDocument {
                by: acting("alice", DocumentRole::Editor),
            })
            .then_expect_error(DocumentError::AlreadyArchived);
        Given::with(())
            .given(archived)
            .when(DocumentCommand::RestoreDocument {
                by: acting("alice", DocumentRole::Editor),
            })
            .then_expect_events(vec![DocumentEvent::DocumentRestored(DocumentRestored {})]);
    }

    #[test]
    fn viewers_and_commenters_change_nothing_and_only_owners_delete_or_share() {
        for role in [DocumentRole::Viewer, DocumentRole::Commenter] {
            Given::with(())
                .given(vec![created()])
                .when(DocumentCommand::RenameDocument {
                    by: acting("bob", role),
                    title: Title::parse("title", "x").unwrap(),
                })
                .then_expect_error(DocumentError::Forbidden(
                    "only editors and owners change documents",
                ));
        }
        Given::with(())
            .given(vec![created()])
            .when(DocumentCommand::DeleteDocument {
                by: acting("bob", DocumentRole::Editor),
            })
            .then_expect_error(DocumentError::Forbidden("only document owners do that"));
        Given::with(())
            .given(vec![created()])
            .when(DocumentCommand::ShareDocument {
                by: acting("bob", DocumentRole::Editor),
                user: UserId::parse("eve").unwrap(),
                role: DocumentRole::Viewer,
            })
            .then_expect_error(DocumentError::Forbidden("only document owners do that"));
        Given::with(())
            .given(vec![created()])
            .when(DocumentCommand::DeleteDocument {
                by: acting("carol", DocumentRole::Owner),
            })
            .then_expect_events(vec![DocumentEvent::DocumentDeleted(DocumentDeleted {})]);
    }

    #[test]
    fn shares_and_links_grant_and_revoke() {
        let eve = UserId::parse("eve").unwrap();
        let link_id = Uuid::now_v7();
        let shared = vec![
            created(),
            DocumentEvent::DocumentShared(DocumentShared {
                user_id: eve.clone(),
                role: DocumentRole::Commenter,
            }),
            DocumentEvent::ShareLinkCreated(ShareLinkCreated {
                link_id,
                role: DocumentRole::Viewer,
                secret_hash: [7; 32],
                expires_at_micros: Some(1_000),
            }),
        ];
        let mut document = Document::default();
        for event in shared.clone() {
            document.apply(event);
        }
        assert_eq!(document.shared_role(&eve), Some(DocumentRole::Commenter));
        assert_eq!(
            document.link_role(link_id, &[7; 32], 999),
            Some(DocumentRole::Viewer)
        );
        assert_eq!(
            document.link_role(link_id, &[7; 32], 1_000),
            None,
            "expired"
        );
        assert_eq!(
            document.link_role(link_id, &[8; 32], 999),
            None,
            "wrong secret"
        );
        Given::with(())
            .given(shared.clone())
            .when(DocumentCommand::UnshareDocument {
                by: acting("alice", DocumentRole::Owner),
                user: eve.clone(),
            })
            .then_expect_events(vec![DocumentEvent::DocumentUnshared(DocumentUnshared {
                user_id: eve,
            })]);
        Given::with(())
            .given(shared)
            .when(DocumentCommand::RevokeShareLink {
                by: acting("alice", DocumentRole::Owner),
                link_id: Uuid::now_v7(),
            })
            .then_expect_error(DocumentError::LinkNotFound);
    }

    #[test]
    fn deleted_documents_are_gone() {
        Given::with(())
            .given(vec![
                created(),
                DocumentEvent::DocumentDeleted(DocumentDeleted {}),
            ])
            .when(DocumentCommand::MoveDocument {
                by: acting("alice", DocumentRole::Owner),
                folder: FolderPath::parse("/x").unwrap(),
            })
            .then_expect_error(DocumentError::NotFound);
    }
}
