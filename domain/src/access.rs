//! Who may do what with a document: the one place the role model is decided.
//!
//! * workspace owners and admins own every document of the workspace;
//! * a document's creator owns it while a member (owner, admin or member) of the workspace;
//! * members get the workspace's default document role (editor unless changed; it can be
//!   none), raised by an explicit share;
//! * auditors view every document;
//! * guests, and people outside the workspace, get only what is shared with them;
//! * a share link grants its role to whoever holds it, until revoked or expired.

use crate::catalogue::DomainEvent;
use crate::document::DocumentEvent;
use crate::ids::{DocumentId, UserId, WorkspaceId};
use crate::role::{DocumentRole, WorkspaceRole};
use crate::workspace::WorkspaceEvent;
use crate::RecordedEvent;

/// Whose access an event may have reduced: live sessions there must be checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessReduced {
    /// Every document of the workspace (a member removed or demoted, the default role
    /// changed, a service account revoked).
    Workspace(WorkspaceId),
    /// One document (unshared, re-shared with another role, a link revoked, deleted).
    Document(DocumentId),
}

/// Whether `event` may have taken access away from someone, and where. Exhaustive: a new
/// event type must decide here whether it reduces access.
pub fn access_reduced_by(event: &RecordedEvent, decoded: &DomainEvent) -> Option<AccessReduced> {
    let workspace = AccessReduced::Workspace(event.metadata.workspace_id);
    let document = AccessReduced::Document(DocumentId::from_uuid(event.stream_id.id));
    match decoded {
        DomainEvent::Workspace(e) => match e {
            WorkspaceEvent::MemberRoleChanged(_)
            | WorkspaceEvent::MemberRemoved(_)
            | WorkspaceEvent::DefaultDocumentRoleChanged(_)
            | WorkspaceEvent::ServiceAccountRevoked(_) => Some(workspace),
            WorkspaceEvent::WorkspaceCreated(_)
            | WorkspaceEvent::WorkspaceRenamed(_)
            | WorkspaceEvent::MemberAdded(_)
            | WorkspaceEvent::ServiceAccountCreated(_)
            | WorkspaceEvent::WebhookCreated(_)
            | WorkspaceEvent::WebhookDeleted(_)
            | WorkspaceEvent::WebhookDisabled(_)
            | WorkspaceEvent::WebhookEnabled(_)
            | WorkspaceEvent::CollectionCreated(_)
            | WorkspaceEvent::CollectionRenamed(_)
            | WorkspaceEvent::CollectionDeleted(_) => None,
        },
        DomainEvent::Document(e) => match e {
            // A share can also replace an editor's role with a viewer's.
            DocumentEvent::DocumentShared(_)
            | DocumentEvent::DocumentUnshared(_)
            | DocumentEvent::ShareLinkRevoked(_)
            | DocumentEvent::DocumentDeleted(_) => Some(document),
            DocumentEvent::DocumentCreated(_)
            | DocumentEvent::DocumentRenamed(_)
            | DocumentEvent::DocumentMoved(_)
            | DocumentEvent::DocumentArchived(_)
            | DocumentEvent::DocumentRestored(_)
            | DocumentEvent::ShareLinkCreated(_)
            | DocumentEvent::VersionNamed(_)
            | DocumentEvent::VersionDeleted(_)
            | DocumentEvent::DocumentTemplateChanged(_) => None,
        },
        DomainEvent::Content(_)
        | DomainEvent::Audit(_)
        | DomainEvent::Profile(_)
        | DomainEvent::Thread(_)
        | DomainEvent::File(_) => None,
    }
}

/// The facts access depends on, gathered from the workspace and the document.
#[derive(Debug, Clone, Copy)]
pub struct AccessFacts<'a> {
    pub user: &'a UserId,
    pub workspace_role: Option<WorkspaceRole>,
    /// The workspace's default document role for members (`None`: no default access).
    pub default_member_role: Option<DocumentRole>,
    pub created_by: Option<&'a UserId>,
    pub shared_role: Option<DocumentRole>,
}

pub fn document_role(facts: AccessFacts<'_>) -> Option<DocumentRole> {
    let from_workspace = match facts.workspace_role {
        Some(WorkspaceRole::Owner | WorkspaceRole::Admin) => Some(DocumentRole::Owner),
        Some(WorkspaceRole::Member) if facts.created_by == Some(facts.user) => {
            Some(DocumentRole::Owner)
        }
        Some(WorkspaceRole::Member) => facts.default_member_role,
        Some(WorkspaceRole::Auditor) => Some(DocumentRole::Viewer),
        Some(WorkspaceRole::Guest) | None => None,
    };
    from_workspace.max(facts.shared_role)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(
        workspace_role: Option<WorkspaceRole>,
        default_member_role: Option<DocumentRole>,
        creator: bool,
        shared_role: Option<DocumentRole>,
    ) -> Option<DocumentRole> {
        let user = UserId::parse("u").unwrap();
        let other = UserId::parse("someone").unwrap();
        document_role(AccessFacts {
            user: &user,
            workspace_role,
            default_member_role,
            created_by: Some(if creator { &user } else { &other }),
            shared_role,
        })
    }

    #[test]
    fn the_role_model() {
        use DocumentRole::*;
        use WorkspaceRole as W;
        assert_eq!(role(Some(W::Owner), None, false, None), Some(Owner));
        assert_eq!(role(Some(W::Admin), Some(Viewer), false, None), Some(Owner));
        assert_eq!(
            role(Some(W::Member), Some(Editor), false, None),
            Some(Editor)
        );
        assert_eq!(role(Some(W::Member), None, false, None), None);
        assert_eq!(
            role(Some(W::Member), Some(Viewer), false, Some(Editor)),
            Some(Editor)
        );
        assert_eq!(role(Some(W::Member), Some(Viewer), true, None), Some(Owner));
        assert_eq!(role(Some(W::Auditor), None, false, None), Some(Viewer));
        assert_eq!(role(Some(W::Guest), Some(Editor), false, None), None);
        assert_eq!(
            role(Some(W::Guest), Some(Editor), true, None),
            None,
            "guests own nothing"
        );
        assert_eq!(
            role(Some(W::Guest), None, false, Some(Commenter)),
            Some(Commenter)
        );
        assert_eq!(role(None, Some(Editor), false, Some(Viewer)), Some(Viewer));
        assert_eq!(role(None, Some(Editor), false, None), None);
    }
}
