//! Who may do what with a document: the one place the role model is decided.
//!
//! * workspace owners and admins own every document of the workspace;
//! * a document's creator owns it while a member (owner, admin or member) of the workspace;
//! * members get the workspace's default document role (editor unless changed; it can be
//!   none), raised by an explicit share;
//! * auditors view every document;
//! * guests, and people outside the workspace, get only what is shared with them;
//! * a share link grants its role to whoever holds it, until revoked or expired.

use crate::ids::UserId;
use crate::role::{DocumentRole, WorkspaceRole};

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
