//! The workspace aggregate: a tenant, its name and its members with their roles.

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_with::base64::Base64;
use serde_with::{serde_as, IfIsHumanReadable};

use crate::aggregate::EventSourced;
use crate::catalogue::event_enum;
use crate::envelope::StreamCategory;
use crate::ids::{UserId, WorkspaceId};
use crate::role::{DocumentRole, Scope, WorkspaceRole};
use crate::values::Title;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum WorkspaceCommand {
    CreateWorkspace {
        id: WorkspaceId,
        name: Title,
        owner: UserId,
    },
    RenameWorkspace {
        by: UserId,
        name: Title,
    },
    AddMember {
        by: UserId,
        user: UserId,
        role: WorkspaceRole,
    },
    ChangeMemberRole {
        by: UserId,
        user: UserId,
        role: WorkspaceRole,
    },
    RemoveMember {
        by: UserId,
        user: UserId,
    },
    /// The role members get on documents not shared with them (`None`: no access).
    SetDefaultDocumentRole {
        by: UserId,
        role: Option<DocumentRole>,
    },
    CreateServiceAccount {
        by: UserId,
        account_id: Uuid,
        name: Title,
        scopes: Vec<Scope>,
        key_hash: [u8; 32],
    },
    RevokeServiceAccount {
        by: UserId,
        account_id: Uuid,
    },
    /// Owners and admins subscribe an endpoint to the workspace's events (its signing
    /// secret is kept outside the log).
    CreateWebhook {
        by: UserId,
        webhook_id: Uuid,
        url: String,
        events: Vec<String>,
        format: WebhookFormat,
    },
    DeleteWebhook {
        by: UserId,
        webhook_id: Uuid,
    },
    /// Turned on again after it was disabled.
    EnableWebhook {
        by: UserId,
        webhook_id: Uuid,
    },
    /// The delivery worker gives up on an endpoint that keeps failing.
    DisableWebhook {
        webhook_id: Uuid,
        reason: String,
    },
    /// An asset collection (owners, admins, members).
    CreateCollection {
        by: UserId,
        collection_id: Uuid,
        name: Title,
    },
    RenameCollection {
        by: UserId,
        collection_id: Uuid,
        name: Title,
    },
    /// Its files stay; they are only no longer in it.
    DeleteCollection {
        by: UserId,
        collection_id: Uuid,
    },
}

/// How a webhook's deliveries are shaped.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum WebhookFormat {
    /// Standard Webhooks: `{type, timestamp, data}` signed with HMAC-SHA256.
    Standard,
    /// A Slack incoming webhook: `{"text": ...}` (signed the same way).
    Slack,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Standard => "standard",
            WebhookFormat::Slack => "slack",
        }
    }
}

/// An endpoint was subscribed to the workspace's events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookCreated {
    /// The webhook.
    pub webhook_id: Uuid,
    /// Where deliveries are posted (http or https).
    pub url: String,
    /// Event type patterns it receives (`DocumentRenamed`, `Comment*`, `*`).
    pub events: Vec<String>,
    /// `standard` or `slack`.
    pub format: WebhookFormat,
}

/// A webhook was deleted; nothing more is delivered to it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookDeleted {
    /// The webhook.
    pub webhook_id: Uuid,
}

/// A webhook was disabled after a run of failed deliveries; its deliveries wait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookDisabled {
    /// The webhook.
    pub webhook_id: Uuid,
    /// Why, for its owners.
    pub reason: String,
}

/// A disabled webhook was turned on again; its waiting deliveries go out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookEnabled {
    /// The webhook.
    pub webhook_id: Uuid,
}

/// An asset collection was created.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CollectionCreated {
    /// The collection.
    pub collection_id: Uuid,
    /// Its name, unique in the workspace.
    pub name: String,
    /// Who created it.
    pub by: UserId,
}

/// An asset collection was renamed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CollectionRenamed {
    /// The collection.
    pub collection_id: Uuid,
    /// Its new name.
    pub name: String,
}

/// An asset collection was deleted; its files stay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CollectionDeleted {
    /// The collection.
    pub collection_id: Uuid,
}

/// A workspace (tenant) was created. Always followed by `MemberAdded` for its owner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkspaceCreated {
    /// The new workspace.
    pub workspace_id: WorkspaceId,
    /// Its name as given.
    pub name: String,
    /// The user who created it and owns it.
    pub owner: UserId,
}

/// The workspace got a new name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkspaceRenamed {
    /// The new name.
    pub name: String,
}

/// A user joined the workspace with a role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemberAdded {
    /// The new member.
    pub user_id: UserId,
    /// Their workspace role.
    pub role: WorkspaceRole,
}

/// A member's workspace role changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemberRoleChanged {
    /// The member.
    pub user_id: UserId,
    /// Their new workspace role.
    pub role: WorkspaceRole,
}

/// A member left or was removed; their access to the workspace ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemberRemoved {
    /// The former member.
    pub user_id: UserId,
}

/// The role members get on documents not shared with them changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DefaultDocumentRoleChanged {
    /// The new default document role; absent: members get no access by default.
    pub role: Option<DocumentRole>,
}

/// A service account (an API key for an integration) was created.
#[serde_as]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceAccountCreated {
    /// The account; API keys name it.
    pub account_id: Uuid,
    /// Its name as given.
    pub name: String,
    /// What its key may do.
    pub scopes: Vec<Scope>,
    /// SHA-256 of the key's secret; the key itself is shown once and never stored.
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub key_hash: [u8; 32],
}

/// A service account was revoked; its key stops working at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServiceAccountRevoked {
    /// The revoked account.
    pub account_id: Uuid,
}

/// A live service account of the workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub key_hash: [u8; 32],
}

event_enum!(
    /// Events of a workspace stream.
    WorkspaceEvent in Workspace {
        WorkspaceCreated = 1,
        WorkspaceRenamed = 1,
        MemberAdded = 1,
        MemberRoleChanged = 1,
        MemberRemoved = 1,
        DefaultDocumentRoleChanged = 1,
        ServiceAccountCreated = 1,
        ServiceAccountRevoked = 1,
        WebhookCreated = 1,
        WebhookDeleted = 1,
        WebhookDisabled = 1,
        WebhookEnabled = 1,
        CollectionCreated = 1,
        CollectionRenamed = 1,
        CollectionDeleted = 1,
    }
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    #[error("workspace already exists")]
    AlreadyExists,
    /// Also what a non-member gets, so a workspace's existence is not revealed.
    #[error("workspace not found")]
    NotFound,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} is already a member")]
    AlreadyMember(UserId),
    #[error("{0} is not a member")]
    NotMember(UserId),
    #[error("a workspace must keep at least one owner")]
    LastOwner,
    #[error("service account not found")]
    ServiceAccountNotFound,
    #[error("webhook not found")]
    WebhookNotFound,
    #[error("a workspace has at most {0} webhooks")]
    TooManyWebhooks(usize),
    #[error("collection not found")]
    CollectionNotFound,
    #[error("this workspace already has a collection named '{0}'")]
    CollectionNameTaken(String),
    #[error("a workspace has at most {0} collections")]
    TooManyCollections(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    id: Option<WorkspaceId>,
    name: String,
    members: BTreeMap<UserId, WorkspaceRole>,
    default_document_role: Option<DocumentRole>,
    service_accounts: BTreeMap<Uuid, ServiceAccount>,
    /// Webhooks, and whether each is enabled.
    #[serde(default)]
    webhooks: BTreeMap<Uuid, bool>,
    /// Asset collections: id → name.
    #[serde(default)]
    collections: BTreeMap<Uuid, String>,
}

impl Default for Workspace {
    fn default() -> Self {
        Self {
            id: None,
            name: String::new(),
            members: BTreeMap::new(),
            default_document_role: Some(DocumentRole::Editor),
            service_accounts: BTreeMap::new(),
            webhooks: BTreeMap::new(),
            collections: BTreeMap::new(),
        }
    }
}

impl Workspace {
    pub fn id(&self) -> Option<WorkspaceId> {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn service_account(&self, id: Uuid) -> Option<&ServiceAccount> {
        self.service_accounts.get(&id)
    }

    pub fn service_accounts(&self) -> &BTreeMap<Uuid, ServiceAccount> {
        &self.service_accounts
    }

    /// The most webhooks a workspace has.
    pub const MAX_WEBHOOKS: usize = 20;
    pub const MAX_COLLECTIONS: usize = 1_000;

    /// Whether the webhook exists, and is enabled.
    pub fn webhook(&self, id: Uuid) -> Option<bool> {
        self.webhooks.get(&id).copied()
    }

    pub fn default_document_role(&self) -> Option<DocumentRole> {
        self.default_document_role
    }

    /// Whether the asset collection exists.
    pub fn has_collection(&self, collection: &Uuid) -> bool {
        self.collections.contains_key(collection)
    }

    fn require_editor(&self, by: &UserId) -> Result<(), WorkspaceError> {
        if self.actor_role(by)?.edits_documents() {
            Ok(())
        } else {
            Err(WorkspaceError::Forbidden(
                "only owners, admins and members organise assets",
            ))
        }
    }

    fn name_free(&self, name: &Title, except: Option<Uuid>) -> Result<(), WorkspaceError> {
        let taken = self
            .collections
            .iter()
            .any(|(id, n)| Some(*id) != except && n.to_lowercase() == name.as_str().to_lowercase());
        if taken {
            Err(WorkspaceError::CollectionNameTaken(
                name.as_str().to_owned(),
            ))
        } else {
            Ok(())
        }
    }

    pub fn role_of(&self, user: &UserId) -> Option<WorkspaceRole> {
        self.members.get(user).copied()
    }

    fn owners(&self) -> usize {
        self.members
            .values()
            .filter(|role| **role == WorkspaceRole::Owner)
            .count()
    }

    /// The acting member's role; non-members (and a missing workspace) see "not found".
    fn actor_role(&self, by: &UserId) -> Result<WorkspaceRole, WorkspaceError> {
        self.id.ok_or(WorkspaceError::NotFound)?;
        self.role_of(by).ok_or(WorkspaceError::NotFound)
    }

    fn require_manager(&self, by: &UserId) -> Result<WorkspaceRole, WorkspaceError> {
        let role = self.actor_role(by)?;
        if role.manages_workspace() {
            Ok(role)
        } else {
            Err(WorkspaceError::Forbidden(
                "only owners and admins manage a workspace",
            ))
        }
    }

    /// Decides `command` against the current state: the events it yields, or why not
    /// (pure; `Aggregate::handle` wraps it).
    pub fn decide(&self, command: WorkspaceCommand) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        use WorkspaceEvent as E;
        match command {
            WorkspaceCommand::CreateWorkspace { id, name, owner } => {
                if self.id.is_some() {
                    return Err(WorkspaceError::AlreadyExists);
                }
                Ok(vec![
                    E::WorkspaceCreated(WorkspaceCreated {
                        workspace_id: id,
                        name: name.into(),
                        owner: owner.clone(),
                    }),
                    E::MemberAdded(MemberAdded {
                        user_id: owner,
                        role: WorkspaceRole::Owner,
                    }),
                ])
            }
            WorkspaceCommand::RenameWorkspace { by, name } => {
                self.require_manager(&by)?;
                if name.as_str() == self.name {
                    return Ok(vec![]);
                }
                Ok(vec![E::WorkspaceRenamed(WorkspaceRenamed {
                    name: name.into(),
                })])
            }
            WorkspaceCommand::AddMember { by, user, role } => {
                let by_role = self.require_manager(&by)?;
                if role == WorkspaceRole::Owner && by_role != WorkspaceRole::Owner {
                    return Err(WorkspaceError::Forbidden("only owners can add owners"));
                }
                if self.members.contains_key(&user) {
                    return Err(WorkspaceError::AlreadyMember(user));
                }
                Ok(vec![E::MemberAdded(MemberAdded {
                    user_id: user,
                    role,
                })])
            }
            WorkspaceCommand::ChangeMemberRole { by, user, role } => {
                let by_role = self.require_manager(&by)?;
                let current = self
                    .role_of(&user)
                    .ok_or_else(|| WorkspaceError::NotMember(user.clone()))?;
                let touches_owner = current == WorkspaceRole::Owner || role == WorkspaceRole::Owner;
                if touches_owner && by_role != WorkspaceRole::Owner {
                    return Err(WorkspaceError::Forbidden(
                        "only owners can grant or take the owner role",
                    ));
                }
                if current == role {
                    return Ok(vec![]);
                }
                if current == WorkspaceRole::Owner && self.owners() == 1 {
                    return Err(WorkspaceError::LastOwner);
                }
                Ok(vec![E::MemberRoleChanged(MemberRoleChanged {
                    user_id: user,
                    role,
                })])
            }
            WorkspaceCommand::SetDefaultDocumentRole { by, role } => {
                self.require_manager(&by)?;
                if role == self.default_document_role {
                    return Ok(vec![]);
                }
                Ok(vec![E::DefaultDocumentRoleChanged(
                    DefaultDocumentRoleChanged { role },
                )])
            }
            WorkspaceCommand::CreateServiceAccount {
                by,
                account_id,
                name,
                scopes,
                key_hash,
            } => {
                self.require_manager(&by)?;
                if self.service_accounts.contains_key(&account_id) {
                    return Err(WorkspaceError::AlreadyExists);
                }
                let mut scopes = scopes;
                scopes.sort();
                scopes.dedup();
                Ok(vec![E::ServiceAccountCreated(ServiceAccountCreated {
                    account_id,
                    name: name.into(),
                    scopes,
                    key_hash,
                })])
            }
            WorkspaceCommand::RevokeServiceAccount { by, account_id } => {
                self.require_manager(&by)?;
                if !self.service_accounts.contains_key(&account_id) {
                    return Err(WorkspaceError::ServiceAccountNotFound);
                }
                Ok(vec![E::ServiceAccountRevoked(ServiceAccountRevoked {
                    account_id,
                })])
            }
            WorkspaceCommand::CreateWebhook {
                by,
                webhook_id,
                url,
                events,
                format,
            } => {
                self.require_manager(&by)?;
                if self.webhooks.contains_key(&webhook_id) {
                    return Err(WorkspaceError::AlreadyExists);
                }
                if self.webhooks.len() >= Self::MAX_WEBHOOKS {
                    return Err(WorkspaceError::TooManyWebhooks(Self::MAX_WEBHOOKS));
                }
                Ok(vec![E::WebhookCreated(WebhookCreated {
                    webhook_id,
                    url,
                    events,
                    format,
                })])
            }
            WorkspaceCommand::DeleteWebhook { by, webhook_id } => {
                self.require_manager(&by)?;
                self.webhooks
                    .get(&webhook_id)
                    .ok_or(WorkspaceError::WebhookNotFound)?;
                Ok(vec![E::WebhookDeleted(WebhookDeleted { webhook_id })])
            }
            WorkspaceCommand::EnableWebhook { by, webhook_id } => {
                self.require_manager(&by)?;
                let enabled = self
                    .webhooks
                    .get(&webhook_id)
                    .ok_or(WorkspaceError::WebhookNotFound)?;
                if *enabled {
                    return Ok(vec![]);
                }
                Ok(vec![E::WebhookEnabled(WebhookEnabled { webhook_id })])
            }
            WorkspaceCommand::DisableWebhook { webhook_id, reason } => {
                self.id.ok_or(WorkspaceError::NotFound)?;
                match self.webhooks.get(&webhook_id) {
                    None => Err(WorkspaceError::WebhookNotFound),
                    Some(false) => Ok(vec![]),
                    Some(true) => Ok(vec![E::WebhookDisabled(WebhookDisabled {
                        webhook_id,
                        reason,
                    })]),
                }
            }
            WorkspaceCommand::CreateCollection {
                by,
                collection_id,
                name,
            } => {
                self.require_editor(&by)?;
                if self.collections.contains_key(&collection_id) {
                    return Err(WorkspaceError::AlreadyExists);
                }
                if self.collections.len() >= Self::MAX_COLLECTIONS {
                    return Err(WorkspaceError::TooManyCollections(Self::MAX_COLLECTIONS));
                }
                self.name_free(&name, None)?;
                Ok(vec![E::CollectionCreated(CollectionCreated {
                    collection_id,
                    name: name.into(),
                    by,
                })])
            }
            WorkspaceCommand::RenameCollection {
                by,
                collection_id,
                name,
            } => {
                self.require_editor(&by)?;
                let current = self
                    .collections
                    .get(&collection_id)
                    .ok_or(WorkspaceError::CollectionNotFound)?;
                if current == name.as_str() {
                    return Ok(vec![]);
                }
                self.name_free(&name, Some(collection_id))?;
                Ok(vec![E::CollectionRenamed(CollectionRenamed {
                    collection_id,
                    name: name.into(),
                })])
            }
            WorkspaceCommand::DeleteCollection { by, collection_id } => {
                self.require_editor(&by)?;
                if !self.collections.contains_key(&collection_id) {
                    return Err(WorkspaceError::CollectionNotFound);
                }
                Ok(vec![E::CollectionDeleted(CollectionDeleted {
                    collection_id,
                })])
            }
            WorkspaceCommand::RemoveMember { by, user } => {
                // Anyone may leave; removing someone else takes a manager.
                let by_role = if by == user {
                    self.actor_role(&by)?
                } else {
                    self.require_manager(&by)?
                };
                let current = self
                    .role_of(&user)
                    .ok_or_else(|| WorkspaceError::NotMember(user.clone()))?;
                if current == WorkspaceRole::Owner {
                    if by_role != WorkspaceRole::Owner {
                        return Err(WorkspaceError::Forbidden("only owners can remove owners"));
                    }
                    if self.owners() == 1 {
                        return Err(WorkspaceError::LastOwner);
                    }
                }
                Ok(vec![E::MemberRemoved(MemberRemoved { user_id: user })])
            }
        }
    }
}

impl Aggregate for Workspace {
    const TYPE: &'static str = "workspace";
    type Command = WorkspaceCommand;
    type Event = WorkspaceEvent;
    type Error = WorkspaceError;
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
            WorkspaceEvent::WorkspaceCreated(e) => {
                self.id = Some(e.workspace_id);
                self.name = e.name;
            }
            WorkspaceEvent::WorkspaceRenamed(e) => self.name = e.name,
            WorkspaceEvent::MemberAdded(e) => {
                self.members.insert(e.user_id, e.role);
            }
            WorkspaceEvent::MemberRoleChanged(e) => {
                self.members.insert(e.user_id, e.role);
            }
            WorkspaceEvent::MemberRemoved(e) => {
                self.members.remove(&e.user_id);
            }
            WorkspaceEvent::DefaultDocumentRoleChanged(e) => {
                self.default_document_role = e.role;
            }
            WorkspaceEvent::ServiceAccountCreated(e) => {
                self.service_accounts.insert(
                    e.account_id,
                    ServiceAccount {
                        name: e.name,
                        scopes: e.scopes,
                        key_hash: e.key_hash,
                    },
                );
            }
            WorkspaceEvent::ServiceAccountRevoked(e) => {
                self.service_accounts.remove(&e.account_id);
            }
            WorkspaceEvent::WebhookCreated(e) => {
                self.webhooks.insert(e.webhook_id, true);
            }
            WorkspaceEvent::WebhookDeleted(e) => {
                self.webhooks.remove(&e.webhook_id);
            }
            WorkspaceEvent::WebhookDisabled(e) => {
                self.webhooks.insert(e.webhook_id, false);
            }
            WorkspaceEvent::WebhookEnabled(e) => {
                self.webhooks.insert(e.webhook_id, true);
            }
            WorkspaceEvent::CollectionCreated(e) => {
                self.collections.insert(e.collection_id, e.name);
            }
            WorkspaceEvent::CollectionRenamed(e) => {
                self.collections.insert(e.collection_id, e.name);
            }
            WorkspaceEvent::CollectionDeleted(e) => {
                self.collections.remove(&e.collection_id);
            }
        }
    }
}

impl EventSourced for Workspace {
    const CATEGORY: StreamCategory = StreamCategory::Workspace;
    const SNAPSHOT_VERSION: i32 = 5;

    fn workspace_id(&self) -> Option<WorkspaceId> {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::catalogue::EventCodec;

    type Given = TestFramework<Workspace>;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    fn created(id: WorkspaceId) -> Vec<WorkspaceEvent> {
        vec![
            WorkspaceEvent::WorkspaceCreated(WorkspaceCreated {
                workspace_id: id,
                name: "Acme".into(),
                owner: user("alice"),
            }),
            WorkspaceEvent::MemberAdded(MemberAdded {
                user_id: user("alice"),
                role: WorkspaceRole::Owner,
            }),
        ]
    }

    fn member(name: &str, role: WorkspaceRole) -> WorkspaceEvent {
        WorkspaceEvent::MemberAdded(MemberAdded {
            user_id: user(name),
            role,
        })
    }

    #[test]
    fn managers_keep_webhooks_and_the_worker_disables_them() {
        let id = WorkspaceId::new();
        let hook = Uuid::from_u128(7);
        let create = |by: &str| WorkspaceCommand::CreateWebhook {
            by: user(by),
            webhook_id: hook,
            url: "https://example.com/hook".into(),
            events: vec!["*".into()],
            format: WebhookFormat::Standard,
        };
        let mut given = created(id);
        given.push(member("bob", WorkspaceRole::Member));
        Given::with(())
            .given(given.clone())
            .when(create("bob"))
            .then_expect_error(WorkspaceError::Forbidden(
                "only owners and admins manage a workspace",
            ));
        let made = WorkspaceEvent::WebhookCreated(WebhookCreated {
            webhook_id: hook,
            url: "https://example.com/hook".into(),
            events: vec!["*".into()],
            format: WebhookFormat::Standard,
        });
        Given::with(())
            .given(given.clone())
            .when(create("alice"))
            .then_expect_events(vec![made.clone()]);
        let disabled = WorkspaceEvent::WebhookDisabled(WebhookDisabled {
            webhook_id: hook,
            reason: "down".into(),
        });
        let disable = || WorkspaceCommand::DisableWebhook {
            webhook_id: hook,
            reason: "down".into(),
        };
        Given::with(())
            .given([given.clone(), vec![made.clone()]].concat())
            .when(disable())
            .then_expect_events(vec![disabled.clone()]);
        // Disabling twice changes nothing; enabling brings it back.
        Given::with(())
            .given([given.clone(), vec![made.clone(), disabled.clone()]].concat())
            .when(disable())
            .then_expect_events(vec![]);
        Given::with(())
            .given([given.clone(), vec![made, disabled]].concat())
            .when(WorkspaceCommand::EnableWebhook {
                by: user("alice"),
                webhook_id: hook,
            })
            .then_expect_events(vec![WorkspaceEvent::WebhookEnabled(WebhookEnabled {
                webhook_id: hook,
            })]);
        Given::with(())
            .given(given)
            .when(WorkspaceCommand::DeleteWebhook {
                by: user("alice"),
                webhook_id: hook,
            })
            .then_expect_error(WorkspaceError::WebhookNotFound);
    }

    #[test]
    fn creating_makes_the_creator_owner() {
        let id = WorkspaceId::new();
        Given::with(())
            .given_no_previous_events()
            .when(WorkspaceCommand::CreateWorkspace {
                id,
                name: Title::parse("name", "Acme").unwrap(),
                owner: user("alice"),
            })
            .then_expect_events(created(id));
    }

    #[test]
    fn creating_twice_is_refused() {
        let id = WorkspaceId::new();
        Given::with(())
            .given(created(id))
            .when(WorkspaceCommand::CreateWorkspace {
                id,
                name: Title::parse("name", "Acme").unwrap(),
                owner: user("alice"),
            })
            .then_expect_error(WorkspaceError::AlreadyExists);
    }

    #[test]
    fn outsiders_do_not_learn_the_workspace_exists() {
        Given::with(())
            .given(created(WorkspaceId::new()))
            .when(WorkspaceCommand::RenameWorkspace {
                by: user("mallory"),
                name: Title::parse("name", "Pwned").unwrap(),
            })
            .then_expect_error(WorkspaceError::NotFound);
    }

    #[test]
    fn members_cannot_manage_and_admins_cannot_make_owners() {
        let mut events = created(WorkspaceId::new());
        events.push(member("bob", WorkspaceRole::Member));
        events.push(member("carol", WorkspaceRole::Admin));
        Given::with(())
            .given(events.clone())
            .when(WorkspaceCommand::AddMember {
                by: user("bob"),
                user: user("dave"),
                role: WorkspaceRole::Guest,
            })
            .then_expect_error(WorkspaceError::Forbidden(
                "only owners and admins manage a workspace",
            ));
        Given::with(())
            .given(events)
            .when(WorkspaceCommand::ChangeMemberRole {
                by: user("carol"),
                user: user("bob"),
                role: WorkspaceRole::Owner,
            })
            .then_expect_error(WorkspaceError::Forbidden(
                "only owners can grant or take the owner role",
            ));
    }

    #[test]
    fn the_last_owner_cannot_leave_or_be_demoted() {
        Given::with(())
            .given(created(WorkspaceId::new()))
            .when(WorkspaceCommand::RemoveMember {
                by: user("alice"),
                user: user("alice"),
            })
            .then_expect_error(WorkspaceError::LastOwner);
        Given::with(())
            .given(created(WorkspaceId::new()))
            .when(WorkspaceCommand::ChangeMemberRole {
                by: user("alice"),
                user: user("alice"),
                role: WorkspaceRole::Member,
            })
            .then_expect_error(WorkspaceError::LastOwner);
    }

    #[test]
    fn anyone_may_leave_and_renaming_to_the_same_name_is_a_no_op() {
        let mut events = created(WorkspaceId::new());
        events.push(member("bob", WorkspaceRole::Guest));
        Given::with(())
            .given(events.clone())
            .when(WorkspaceCommand::RemoveMember {
                by: user("bob"),
                user: user("bob"),
            })
            .then_expect_events(vec![WorkspaceEvent::MemberRemoved(MemberRemoved {
                user_id: user("bob"),
            })]);
        Given::with(())
            .given(events)
            .when(WorkspaceCommand::RenameWorkspace {
                by: user("alice"),
                name: Title::parse("name", "Acme").unwrap(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn adding_an_existing_member_is_a_conflict() {
        Given::with(())
            .given(created(WorkspaceId::new()))
            .when(WorkspaceCommand::AddMember {
                by: user("alice"),
                user: user("alice"),
                role: WorkspaceRole::Member,
            })
            .then_expect_error(WorkspaceError::AlreadyMember(user("alice")));
    }

    #[test]
    fn events_round_trip_through_the_catalogue() {
        for event in created(WorkspaceId::new()) {
            let bytes = event.encode();
            let back =
                WorkspaceEvent::decode(event.event_type(), event.schema_version(), &bytes).unwrap();
            assert_eq!(back, event);
        }
        assert!(WorkspaceEvent::decode("WorkspaceCreated", 99, &[]).is_err());
    }
}
