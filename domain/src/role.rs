//! Workspace roles and what each may do. Stored and sent as lowercase text so the event
//! contract does not depend on an enum's variant order.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::InvalidValue;

/// JSON Schema of a role-like enum stored as lowercase text: a string out of `ALL`.
macro_rules! text_enum_schema {
    ($name:ident) => {
        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let values: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                schemars::json_schema!({ "type": "string", "enum": values })
            }
        }
    };
}

text_enum_schema!(WorkspaceRole);
text_enum_schema!(DocumentRole);
text_enum_schema!(Scope);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum WorkspaceRole {
    Owner,
    Admin,
    Member,
    Guest,
    Auditor,
}

impl WorkspaceRole {
    pub const ALL: [WorkspaceRole; 5] = [
        WorkspaceRole::Owner,
        WorkspaceRole::Admin,
        WorkspaceRole::Member,
        WorkspaceRole::Guest,
        WorkspaceRole::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceRole::Owner => "owner",
            WorkspaceRole::Admin => "admin",
            WorkspaceRole::Member => "member",
            WorkspaceRole::Guest => "guest",
            WorkspaceRole::Auditor => "auditor",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue::new(
                    "role",
                    "must be one of owner, admin, member, guest, auditor",
                )
            })
    }

    /// Owners and admins manage the workspace and its members.
    pub fn manages_workspace(self) -> bool {
        matches!(self, WorkspaceRole::Owner | WorkspaceRole::Admin)
    }

    /// Owners, admins and members create and organise documents; guests and auditors read.
    pub fn edits_documents(self) -> bool {
        matches!(
            self,
            WorkspaceRole::Owner | WorkspaceRole::Admin | WorkspaceRole::Member
        )
    }
}

impl TryFrom<String> for WorkspaceRole {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<WorkspaceRole> for String {
    fn from(value: WorkspaceRole) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for WorkspaceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What someone may do with one document. Ordered: viewer < commenter < editor < owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DocumentRole {
    Viewer,
    Commenter,
    Editor,
    Owner,
}

impl DocumentRole {
    pub const ALL: [DocumentRole; 4] = [
        DocumentRole::Viewer,
        DocumentRole::Commenter,
        DocumentRole::Editor,
        DocumentRole::Owner,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentRole::Viewer => "viewer",
            DocumentRole::Commenter => "commenter",
            DocumentRole::Editor => "editor",
            DocumentRole::Owner => "owner",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue::new("role", "must be one of owner, editor, commenter, viewer")
            })
    }

    /// Editors and owners change content and metadata; viewers and commenters only read it.
    pub fn edits(self) -> bool {
        self >= DocumentRole::Editor
    }
}

impl TryFrom<String> for DocumentRole {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DocumentRole> for String {
    fn from(value: DocumentRole) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for DocumentRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a service account's API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    /// Read the workspace's documents (list, metadata, content, state; read-only sockets).
    DocumentsRead,
    /// Change the workspace's documents (create, edit content and metadata).
    DocumentsWrite,
    /// Replay and tail events (for analytics consumers).
    EventsRead,
    /// Read history and verify hash chains (for auditors).
    AuditRead,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::DocumentsRead,
        Scope::DocumentsWrite,
        Scope::EventsRead,
        Scope::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::DocumentsRead => "documents:read",
            Scope::DocumentsWrite => "documents:write",
            Scope::EventsRead => "events:read",
            Scope::AuditRead => "audit:read",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue::new(
                    "scopes",
                    "each must be documents:read, documents:write, events:read or audit:read",
                )
            })
    }
}

impl TryFrom<String> for Scope {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Scope> for String {
    fn from(value: Scope) -> Self {
        value.as_str().to_owned()
    }
}
