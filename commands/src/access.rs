//! Resolving what a user (and the share link they hold, if any) may do with a document,
//! from the aggregates — consistent with the commands that change it.

use chrono::Utc;
use collab_store::StoreError;

use std::collections::HashMap;
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

/// The aggregates an access decision reads, as one load found them (`None`: the load
/// failed; whoever needs the error loads again).
type AccessState = Option<Arc<(Document, Option<Arc<Workspace>>)>>;

/// A document's last load for access: its ticket and what it found.
type LastLoad = Arc<tokio::sync::Mutex<(u64, AccessState)>>;

/// Access checks of many callers arriving together at one document (a crowd of sockets
/// opening it at once) share the loads of its two aggregates instead of each making its
/// own: the database sees a few loads, not one per caller, and is left for everyone else.
///
/// Never staler than a caller's own load would be: a caller takes only a load that
/// *started after it arrived* (a load started earlier may predate a change the caller
/// must see — a revocation it read as handled). Loads of one document run one at a time;
/// whoever arrives while one runs waits for the next, which serves all of them, so a
/// caller waits at most about two loads.
#[derive(Default)]
pub struct SharedAccessLoads {
    /// Loads started so far (a load's ticket is its number).
    started: std::sync::atomic::AtomicU64,
    documents: std::sync::Mutex<HashMap<DocumentId, LastLoad>>,
}

impl SharedAccessLoads {
    /// What `caller` may do with `document`, as `resolve` answers it.
    pub async fn resolve(
        &self,
        aggregates: &AggregateStore,
        document: DocumentId,
        caller: &Caller,
    ) -> Result<Option<DocumentAccess>, StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        if caller.loaded_workspace.is_some() {
            return resolve(aggregates, document, caller).await;
        }
        let arrived = self.started.load(SeqCst);
        let slot = self
            .lock()
            .entry(document)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new((0, None))))
            .clone();
        let state = {
            let mut last = slot.lock().await;
            if last.0 > arrived {
                metrics::counter!("collab_access_loads_shared_total").increment(1);
            } else {
                let ticket = self.started.fetch_add(1, SeqCst) + 1;
                *last = (ticket, load_for_access(aggregates, document).await.ok());
            }
            last.1.clone()
        };
        {
            // Cloned and dropped only under the map's lock: the last one out removes it.
            let mut documents = self.lock();
            drop(slot);
            if documents
                .get(&document)
                .is_some_and(|slot| Arc::strong_count(slot) == 1)
            {
                documents.remove(&document);
            }
        }
        let Some(state) = state else {
            return resolve(aggregates, document, caller).await;
        };
        let (document, workspace) = &*state;
        Ok(workspace.as_ref().and_then(|workspace| {
            access_to(document, workspace, caller, Utc::now().timestamp_micros())
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DocumentId, LastLoad>> {
        self.documents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The document and, if it is live, its workspace.
async fn load_for_access(
    aggregates: &AggregateStore,
    document: DocumentId,
) -> Result<Arc<(Document, Option<Arc<Workspace>>)>, StoreError> {
    let document = aggregates
        .load::<Document>(document.as_uuid())
        .await?
        .aggregate;
    let workspace = match document.live_workspace() {
        Some(id) => Some(Arc::new(
            aggregates.load::<Workspace>(id.as_uuid()).await?.aggregate,
        )),
        None => None,
    };
    Ok(Arc::new((document, workspace)))
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

    /// The command-side access rule against a model of its own: for any history of
    /// memberships, default roles, shares, share links (expired, revoked, forged) and any
    /// caller (a user, a link they hold, a service account of this or another workspace),
    /// `access_to` grants exactly the greatest of the three parts, each part is what the
    /// model says it is, and a deleted document grants nothing to anyone.
    mod properties {
        use super::*;
        use collab_domain::document::ActingMember;
        use collab_domain::values::{FolderPath, Title};
        use collab_domain::workspace::WorkspaceCommand;
        use cqrs_es::Aggregate;
        use proptest::prelude::*;
        use std::collections::HashMap;

        const PEOPLE: [&str; 5] = ["ann", "bob", "cat", "dan", "eve"];
        const NOW: i64 = 1_000_000;
        const SECRETS: [[u8; 32]; 2] = [[1; 32], [2; 32]];

        fn person(i: usize) -> UserId {
            UserId::parse(PEOPLE[i]).unwrap()
        }

        #[derive(Debug, Clone)]
        enum Step {
            Member(usize, WorkspaceRole),
            Remove(usize),
            DefaultRole(Option<DocumentRole>),
            Share(usize, DocumentRole),
            Unshare(usize),
            Link {
                id: u128,
                role: DocumentRole,
                secret: usize,
                expires: Option<i64>,
            },
            Revoke(u128),
            Delete,
        }

        fn role() -> impl Strategy<Value = DocumentRole> {
            prop::sample::select(DocumentRole::ALL.to_vec())
        }

        fn step() -> impl Strategy<Value = Step> {
            // ann (0) stays the workspace's owner; everyone else comes and goes.
            prop_oneof![
                (1..5usize, prop::sample::select(WorkspaceRole::ALL.to_vec()))
                    .prop_map(|(p, r)| Step::Member(p, r)),
                (1..5usize).prop_map(Step::Remove),
                prop::option::of(role()).prop_map(Step::DefaultRole),
                (0..5usize, role()).prop_map(|(p, r)| Step::Share(p, r)),
                (0..5usize).prop_map(Step::Unshare),
                (
                    1..4u128,
                    role(),
                    0..2usize,
                    prop::sample::select(vec![None, Some(NOW - 1), Some(NOW), Some(NOW + 1)])
                )
                    .prop_map(|(id, role, secret, expires)| Step::Link {
                        id,
                        role,
                        secret,
                        expires
                    }),
                (1..4u128).prop_map(Step::Revoke),
                Just(Step::Delete),
            ]
        }

        /// What the model knows, kept apart from the aggregates.
        #[derive(Default)]
        struct Model {
            members: HashMap<usize, WorkspaceRole>,
            default_role: Option<DocumentRole>,
            shares: HashMap<usize, DocumentRole>,
            links: HashMap<u128, (DocumentRole, usize, Option<i64>)>,
            deleted: bool,
        }

        impl Model {
            /// The rule as written in the domain's documentation.
            fn user_part(&self, user: usize, creator: usize) -> Option<DocumentRole> {
                let from_workspace = match self.members.get(&user) {
                    Some(WorkspaceRole::Owner | WorkspaceRole::Admin) => Some(DocumentRole::Owner),
                    Some(WorkspaceRole::Member) if user == creator => Some(DocumentRole::Owner),
                    Some(WorkspaceRole::Member) => self.default_role,
                    Some(WorkspaceRole::Auditor) => Some(DocumentRole::Viewer),
                    Some(WorkspaceRole::Guest) | None => None,
                };
                from_workspace.max(self.shares.get(&user).copied())
            }

            fn link_part(&self, link: Option<(u128, usize)>) -> Option<DocumentRole> {
                let (id, secret) = link?;
                let (role, real, expires) = self.links.get(&id)?;
                (secret == *real && expires.is_none_or(|at| at > NOW)).then_some(*role)
            }
        }

        /// Decides on `state` and applies what was decided; whether it was accepted.
        fn run<A: Aggregate, E>(
            state: &mut A,
            decide: impl FnOnce(&A) -> Result<Vec<A::Event>, E>,
        ) -> bool {
            match decide(state) {
                Ok(events) => {
                    events.into_iter().for_each(|e| state.apply(e));
                    true
                }
                Err(_) => false,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

            #[test]
            fn access_is_the_greatest_of_user_link_and_service_and_each_part_is_the_models(
                creator in 0..4usize,
                steps in prop::collection::vec(step(), 0..30),
                user in 0..5usize,
                link in prop::option::of((1..4u128, 0..2usize)),
                service in prop::option::of((any::<bool>(), prop::sample::subsequence(Scope::ALL.to_vec(), 0..=4))),
            ) {
                let ws = WorkspaceId::from_uuid(Uuid::from_u128(9));
                let ann = person(0);
                let owner = Acting { user: ann.clone(), role: DocumentRole::Owner };
                let mut model = Model::default();
                let mut workspace = Workspace::default();
                let accepted = run(&mut workspace, |a| a.decide(WorkspaceCommand::CreateWorkspace {
                    id: ws,
                    name: Title::parse("name", "Acme").unwrap(),
                    owner: ann.clone(),
                }));
                prop_assert!(accepted);
                model.members.insert(0, WorkspaceRole::Owner);
                // Members edit every document until the workspace says otherwise.
                model.default_role = Some(DocumentRole::Editor);
                if creator != 0 {
                    let accepted = run(&mut workspace, |a| a.decide(WorkspaceCommand::AddMember {
                        by: ann.clone(),
                        user: person(creator),
                        role: WorkspaceRole::Member,
                    }));
                prop_assert!(accepted);
                    model.members.insert(creator, WorkspaceRole::Member);
                }
                let mut document = Document::default();
                let accepted = run(&mut document, |a| a.decide(DocumentCommand::CreateDocument {
                    by: ActingMember { user: person(creator), role: model.members[&creator] },
                    id: DocumentId::from_uuid(Uuid::from_u128(5)),
                    workspace_id: ws,
                    title: Title::parse("title", "Plan").unwrap(),
                    folder: FolderPath::root(),
                }));
                prop_assert!(accepted);
                for step in steps {
                    match step {
                        Step::Member(p, role) => {
                            let command = if model.members.contains_key(&p) {
                                WorkspaceCommand::ChangeMemberRole { by: ann.clone(), user: person(p), role }
                            } else {
                                WorkspaceCommand::AddMember { by: ann.clone(), user: person(p), role }
                            };
                            if run(&mut workspace, |a| a.decide(command)) {
                                model.members.insert(p, role);
                            }
                        }
                        Step::Remove(p) => {
                            let command = WorkspaceCommand::RemoveMember { by: ann.clone(), user: person(p) };
                            if run(&mut workspace, |a| a.decide(command)) {
                                model.members.remove(&p);
                            }
                        }
                        Step::DefaultRole(role) => {
                            let command = WorkspaceCommand::SetDefaultDocumentRole { by: ann.clone(), role };
                            if run(&mut workspace, |a| a.decide(command)) {
                                model.default_role = role;
                            }
                        }
                        Step::Share(p, role) => {
                            let command = DocumentCommand::ShareDocument { by: owner.clone(), user: person(p), role };
                            if run(&mut document, |a| a.decide(command)) {
                                model.shares.insert(p, role);
                            }
                        }
                        Step::Unshare(p) => {
                            let command = DocumentCommand::UnshareDocument { by: owner.clone(), user: person(p) };
                            if run(&mut document, |a| a.decide(command)) {
                                model.shares.remove(&p);
                            }
                        }
                        Step::Link { id, role, secret, expires } => {
                            let command = DocumentCommand::CreateShareLink {
                                by: owner.clone(),
                                link_id: Uuid::from_u128(id),
                                role,
                                secret_hash: SECRETS[secret],
                                expires_at_micros: expires,
                            };
                            if run(&mut document, |a| a.decide(command)) {
                                model.links.insert(id, (role, secret, expires));
                            }
                        }
                        Step::Revoke(id) => {
                            let command = DocumentCommand::RevokeShareLink { by: owner.clone(), link_id: Uuid::from_u128(id) };
                            if run(&mut document, |a| a.decide(command)) {
                                model.links.remove(&id);
                            }
                        }
                        Step::Delete => {
                            let command = DocumentCommand::DeleteDocument { by: owner.clone() };
                            model.deleted |= run(&mut document, |a| a.decide(command));
                        }
                    }
                }
                let other = WorkspaceId::from_uuid(Uuid::from_u128(10));
                let service = service.map(|(own, scopes)| ServiceIdentity {
                    workspace: if own { ws } else { other },
                    account: Uuid::from_u128(7),
                    scopes,
                });
                let caller = |user: UserId, link: Option<(u128, usize)>, service: Option<ServiceIdentity>| Caller {
                    user,
                    link: link.map(|(id, secret)| LinkKey { link_id: Uuid::from_u128(id), secret_hash: SECRETS[secret] }),
                    service,
                    loaded_workspace: None,
                };
                // Someone who is nobody: no membership, share, link or key.
                let nobody = UserId::parse("mallory").unwrap();
                let part = |c: Caller| access_to(&document, &workspace, &c, NOW).map(|a| a.role);
                let whole = access_to(&document, &workspace, &caller(person(user), link, service.clone()), NOW);
                let from_user = part(caller(person(user), None, None));
                let from_link = part(caller(nobody.clone(), link, None));
                let from_service = part(caller(nobody.clone(), None, service.clone()));
                prop_assert_eq!(part(caller(nobody, None, None)), None);
                if model.deleted {
                    prop_assert_eq!(whole, None);
                    prop_assert_eq!(from_user.or(from_link).or(from_service), None);
                    return Ok(());
                }
                prop_assert_eq!(whole.map(|a| a.role), from_user.max(from_link).max(from_service));
                prop_assert_eq!(from_user, model.user_part(user, creator));
                prop_assert_eq!(from_link, model.link_part(link));
                let expected_service = service.as_ref().filter(|s| s.workspace == ws).and_then(|s| {
                    if s.scopes.contains(&Scope::DocumentsWrite) {
                        Some(DocumentRole::Editor)
                    } else if s.scopes.contains(&Scope::DocumentsRead) {
                        Some(DocumentRole::Viewer)
                    } else {
                        None
                    }
                });
                prop_assert_eq!(from_service, expected_service);
                if let Some(access) = whole {
                    prop_assert_eq!(access.workspace, ws);
                    prop_assert_eq!(access.workspace_role, model.members.get(&user).copied());
                }
            }
        }
    }
}
