//! Workspace roles and what each may do. Stored and sent as lowercase text so the event
//! contract does not depend on an enum's variant order.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::InvalidValue;

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
