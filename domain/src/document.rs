//! The document aggregate: a document's metadata and lifecycle (its content is a CRDT and
//! lives in its own events; see the live-editing issue).

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::aggregate::EventSourced;
use crate::catalogue::event_enum;
use crate::envelope::StreamCategory;
use crate::ids::{DocumentId, UserId, WorkspaceId};
use crate::role::WorkspaceRole;
use crate::values::{FolderPath, Title};

/// Who is acting, with their role in the document's workspace (resolved by the caller
/// from the workspace aggregate, so the decision is made on consistent state).
#[derive(Debug, Clone, PartialEq)]
pub struct ActingMember {
    pub user: UserId,
    pub role: WorkspaceRole,
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
        by: ActingMember,
        title: Title,
    },
    MoveDocument {
        by: ActingMember,
        folder: FolderPath,
    },
    ArchiveDocument {
        by: ActingMember,
    },
    RestoreDocument {
        by: ActingMember,
    },
    DeleteDocument {
        by: ActingMember,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentCreated {
    pub document_id: DocumentId,
    pub workspace_id: WorkspaceId,
    pub title: String,
    pub folder: String,
    pub created_by: UserId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentRenamed {
    pub title: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentMoved {
    pub folder: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentArchived {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentRestored {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentDeleted {}

event_enum!(
    /// Events of a document stream.
    DocumentEvent {
        DocumentCreated = 1,
        DocumentRenamed = 1,
        DocumentMoved = 1,
        DocumentArchived = 1,
        DocumentRestored = 1,
        DocumentDeleted = 1,
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

    fn require_editor(by: &ActingMember) -> Result<(), DocumentError> {
        if by.role.edits_documents() {
            Ok(())
        } else {
            Err(DocumentError::Forbidden(
                "guests and auditors cannot change documents",
            ))
        }
    }

    fn decide(&self, command: DocumentCommand) -> Result<Vec<DocumentEvent>, DocumentError> {
        use DocumentEvent as E;
        if let DocumentCommand::CreateDocument {
            by,
            id,
            workspace_id,
            title,
            folder,
        } = command
        {
            Self::require_editor(&by)?;
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
                Self::require_editor(&by)?;
                // Members delete only their own documents; owners and admins any.
                if !by.role.manages_workspace() && self.created_by.as_ref() != Some(&by.user) {
                    return Err(DocumentError::Forbidden(
                        "members can delete only documents they created",
                    ));
                }
                Ok(vec![E::DocumentDeleted(DocumentDeleted {})])
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
        }
    }
}

impl EventSourced for Document {
    const CATEGORY: StreamCategory = StreamCategory::Document;
    const SNAPSHOT_VERSION: i32 = 1;

    fn workspace_id(&self) -> Option<WorkspaceId> {
        self.workspace_id
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<Document>;

    fn acting(name: &str, role: WorkspaceRole) -> ActingMember {
        ActingMember {
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
                by: acting("gus", WorkspaceRole::Guest),
                id: DocumentId::new(),
                workspace_id: WorkspaceId::new(),
                title: Title::parse("title", "x").unwrap(),
                folder: FolderPath::root(),
            })
            .then_expect_error(DocumentError::Forbidden(
                "guests and auditors cannot change documents",
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
                by: acting("alice", WorkspaceRole::Member),
                title: Title::parse("title", "New").unwrap(),
            })
            .then_expect_error(DocumentError::Archived);
        Given::with(())
            .given(archived.clone())
            .when(DocumentCommand::ArchiveDocument {
                by: acting("alice", WorkspaceRole::Member),
            })
            .then_expect_error(DocumentError::AlreadyArchived);
        Given::with(())
            .given(archived)
            .when(DocumentCommand::RestoreDocument {
                by: acting("alice", WorkspaceRole::Member),
            })
            .then_expect_events(vec![DocumentEvent::DocumentRestored(DocumentRestored {})]);
    }

    #[test]
    fn members_delete_only_their_own_documents() {
        Given::with(())
            .given(vec![created()])
            .when(DocumentCommand::DeleteDocument {
                by: acting("bob", WorkspaceRole::Member),
            })
            .then_expect_error(DocumentError::Forbidden(
                "members can delete only documents they created",
            ));
        Given::with(())
            .given(vec![created()])
            .when(DocumentCommand::DeleteDocument {
                by: acting("carol", WorkspaceRole::Admin),
            })
            .then_expect_events(vec![DocumentEvent::DocumentDeleted(DocumentDeleted {})]);
    }

    #[test]
    fn deleted_documents_are_gone() {
        Given::with(())
            .given(vec![
                created(),
                DocumentEvent::DocumentDeleted(DocumentDeleted {}),
            ])
            .when(DocumentCommand::MoveDocument {
                by: acting("alice", WorkspaceRole::Owner),
                folder: FolderPath::parse("/x").unwrap(),
            })
            .then_expect_error(DocumentError::NotFound);
    }
}
