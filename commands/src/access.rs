//! Resolving what a user (and the share link they hold, if any) may do with a document,
//! from the aggregates — consistent with the commands that change it.

use chrono::Utc;
use collab_store::StoreError;

use std::sync::Arc;

use crate::{AggregateStore, CommandError, CommandMeta, Committed};
use collab_domain::access::{document_role, AccessFacts};
use collab_domain::document::{Acting, Document, DocumentCommand, DocumentError};
use collab_domain::workspace::Workspace;
use collab_domain::{DocumentId, DocumentRole, Scope, UserId, WorkspaceId, WorkspaceRole};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A share link as presented by a client: `cfl_<link id>_<secret>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkKey {
    pub link_id: Uuid,
    pub secret_hash: [u8; 32],
}

const LINK_PREFIX: &str = "cfl_";

impl LinkKey {
    pub fn parse(token: &str) -> Option<Self> {
        let rest = token.strip_prefix(LINK_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        if secret.len() < 32 {
            return None;
        }
        Some(Self {
            link_id: Uuid::parse_str(id).ok()?,
            secret_hash: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// A new link: its key (to check) and the token to hand out once.
    pub fn generate() -> (Self, String) {
        let link_id = Uuid::now_v7();
        // Two v4 UUIDs: 244 random bits from the OS generator.
        let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let key = Self {
            link_id,
            secret_hash: Sha256::digest(secret.as_bytes()).into(),
        };
        (key, format!("{LINK_PREFIX}{}_{secret}", link_id.simple()))
    }
}

/// A service account's API key as presented: `cfk_<workspace>_<account>_<secret>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKey {
    pub workspace: WorkspaceId,
    pub account: Uuid,
    pub secret_hash: [u8; 32],
}

const KEY_PREFIX: &str = "cfk_";

impl ApiKey {
    pub fn looks_like(token: &str) -> bool {
        token.starts_with(KEY_PREFIX)
    }

    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.strip_prefix(KEY_PREFIX)?.splitn(3, '_');
        let workspace = WorkspaceId::from_uuid(Uuid::parse_str(parts.next()?).ok()?);
        let account = Uuid::parse_str(parts.next()?).ok()?;
        let secret = parts.next()?;
        if secret.len() < 32 {
            return None;
        }
        Some(Self {
            workspace,
            account,
            secret_hash: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// A new key for a new account: the key (to check) and the token to show once.
    pub fn generate(workspace: WorkspaceId) -> (Self, String) {
        let account = Uuid::now_v7();
        let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let key = Self {
            workspace,
            account,
            secret_hash: Sha256::digest(secret.as_bytes()).into(),
        };
        let token = format!(
            "{KEY_PREFIX}{}_{}_{secret}",
            workspace.as_uuid().simple(),
            account.simple()
        );
        (key, token)
    }
}

/// An authenticated service account: which workspace, which account, what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIdentity {
    pub workspace: WorkspaceId,
    pub account: Uuid,
    pub scopes: Vec<Scope>,
}

impl ServiceIdentity {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The identity it acts under inside the domain (`created_by`, shares...).
    pub fn user_id(&self) -> UserId {
        UserId::parse(format!("service:{}", self.account.simple()))
            .expect("service ids are valid user ids")
    }

    /// Its role on the documents of its own workspace.
    pub fn document_role(&self, workspace: WorkspaceId) -> Option<DocumentRole> {
        if workspace != self.workspace {
            None
        } else if self.has(Scope::DocumentsWrite) {
            Some(DocumentRole::Editor)
        } else if self.has(Scope::DocumentsRead) {
            Some(DocumentRole::Viewer)
        } else {
            None
        }
    }
}

/// Checks an API key against its workspace (consistent: a revoked key fails at once).
/// Returns the workspace as loaded too, so a command of the same request need not load it
/// again.
pub async fn verify_api_key(
    aggregates: &AggregateStore,
    key: &ApiKey,
) -> Result<Option<(ServiceIdentity, Arc<Workspace>)>, StoreError> {
    let workspace = aggregates
        .load::<Workspace>(key.workspace.as_uuid())
        .await?
        .aggregate;
    let identity = workspace
        .service_account(key.account)
        .filter(|account| account.key_hash == key.secret_hash)
        .map(|account| ServiceIdentity {
            workspace: key.workspace,
            account: key.account,
            scopes: account.scopes.clone(),
        });
    Ok(identity.map(|identity| (identity, Arc::new(workspace))))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentAccess {
    pub workspace: WorkspaceId,
    pub role: DocumentRole,
    pub workspace_role: Option<WorkspaceRole>,
}

/// Who asks, as the command path needs it to decide their role: the user, the share link
/// they hold, the service account they are, and the workspace aggregate already loaded in
/// this request (to verify that account's key), so it is not loaded twice.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserId,
    pub link: Option<LinkKey>,
    pub service: Option<ServiceIdentity>,
    pub loaded_workspace: Option<Arc<Workspace>>,
}

impl Caller {
    /// The workspace aggregate, from this request's earlier load or the store.
    async fn workspace(
        &self,
        aggregates: &AggregateStore,
        id: WorkspaceId,
    ) -> Result<Arc<Workspace>, StoreError> {
        match &self.loaded_workspace {
            Some(workspace) if workspace.id() == Some(id) => Ok(workspace.clone()),
            _ => Ok(Arc::new(
                aggregates.load::<Workspace>(id.as_uuid()).await?.aggregate,
            )),
        }
    }
}

/// What `caller` may do with `document` (of `workspace`), from the two aggregates alone.
/// `None` when the document does not exist (or is deleted) or the caller has no access:
/// callers answer both the same way.
pub fn access_to(
    document: &Document,
    workspace: &Workspace,
    caller: &Caller,
    now_micros: i64,
) -> Option<DocumentAccess> {
    let workspace_id = document.live_workspace()?;
    let workspace_role = workspace.role_of(&caller.user);
    let from_user = document_role(AccessFacts {
        user: &caller.user,
        workspace_role,
        default_member_role: workspace.default_document_role(),
        created_by: document.created_by(),
        shared_role: document.shared_role(&caller.user),
    });
    let from_link = caller
        .link
        .and_then(|link| document.link_role(link.link_id, &link.secret_hash, now_micros));
    let from_service = caller
        .service
        .as_ref()
        .and_then(|s| s.document_role(workspace_id));
    from_user
        .max(from_link)
        .max(from_service)
        .map(|role| DocumentAccess {
            workspace: workspace_id,
            role,
            workspace_role,
        })
}

/// `None` when the document does not exist (or is deleted) or the caller has no access.
pub async fn resolve(
    aggregates: &AggregateStore,
    document: DocumentId,
    caller: &Caller,
) -> Result<Option<DocumentAccess>, StoreError> {
    let document = aggregates
        .load::<Document>(document.as_uuid())
        .await?
        .aggregate;
    let Some(workspace_id) = document.live_workspace() else {
        return Ok(None);
    };
    let workspace = caller.workspace(aggregates, workspace_id).await?;
    Ok(access_to(
        &document,
        &workspace,
        caller,
        Utc::now().timestamp_micros(),
    ))
}

impl AggregateStore {
    /// Runs commands on an existing document for `caller`: the document is loaded once,
    /// its workspace once (or not at all when this request verified an API key of it), the
    /// caller's role is decided from them, and `command` makes the commands from it (or
    /// refuses, with its own error: a rate limit, say); they are appended together. A caller without access gets the
    /// same `NotFound` as for a document that does not exist.
    pub async fn execute_on_document<E>(
        &self,
        document: DocumentId,
        caller: &Caller,
        meta: &CommandMeta,
        expected_version: Option<i64>,
        command: impl Fn(DocumentAccess, Acting) -> Result<Vec<DocumentCommand>, E>,
    ) -> Result<Committed, E>
    where
        E: From<CommandError<DocumentError>>,
    {
        let not_found = || E::from(CommandError::Domain(DocumentError::NotFound));
        self.execute_with::<Document, E, _, _>(
            document.as_uuid(),
            meta,
            expected_version,
            |loaded| {
                let command = &command;
                async move {
                    let workspace_id = loaded.live_workspace().ok_or_else(not_found)?;
                    let workspace = caller
                        .workspace(self, workspace_id)
                        .await
                        .map_err(|e| E::from(CommandError::from(e)))?;
                    let access =
                        access_to(&loaded, &workspace, caller, Utc::now().timestamp_micros())
                            .ok_or_else(not_found)?;
                    command(
                        access,
                        Acting {
                            user: caller.user.clone(),
                            role: access.role,
                        },
                    )
                }
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_round_trip_and_reject_garbage() {
        let (key, token) = LinkKey::generate();
        assert_eq!(LinkKey::parse(&token), Some(key));
        assert!(LinkKey::parse("cfl_nope").is_none());
        assert!(LinkKey::parse(&token.replace("cfl_", "xyz_")).is_none());
        // Another last character (the same one would be no tampering: 1 run in 64 drew '0').
        let last = if token.ends_with('0') { '1' } else { '0' };
        let tampered = format!("{}{last}", &token[..token.len() - 1]);
        assert_ne!(
            LinkKey::parse(&tampered).map(|k| k.secret_hash),
            Some(key.secret_hash)
        );
    }
}
