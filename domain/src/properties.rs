//! Property tests of the aggregates (proptest): any sequence of commands, decided one
//! after the other, leaves the same state as replaying the events it produced — each one
//! encoded and decoded as the store does — and as restoring a snapshot of it; refused
//! commands change nothing; the invariants each aggregate promises hold after every
//! step; and the access rule grants exactly the greatest of its parts.

use cqrs_es::Aggregate;
use proptest::prelude::*;
use uuid::Uuid;

use crate::access::{document_role, AccessFacts};
use crate::catalogue::EventCodec;
use crate::document::{Acting, ActingMember, Document, DocumentCommand};
use crate::file::{Arrived, File, FileCommand, FileName, FileState, Tag};
use crate::ids::{DocumentId, UserId, WorkspaceId};
use crate::role::{DocumentRole, WorkspaceRole};
use crate::values::{FolderPath, Title, VersionName};
use crate::workspace::{Workspace, WorkspaceCommand};

const PEOPLE: [&str; 4] = ["ann", "bob", "cat", "dan"];

fn person() -> impl Strategy<Value = UserId> {
    (0..PEOPLE.len()).prop_map(|i| UserId::parse(PEOPLE[i]).unwrap())
}

fn workspace_role() -> impl Strategy<Value = WorkspaceRole> {
    prop::sample::select(WorkspaceRole::ALL.to_vec())
}

fn document_role_any() -> impl Strategy<Value = DocumentRole> {
    prop::sample::select(DocumentRole::ALL.to_vec())
}

/// One of a few ids, so that commands meet the same collections and versions again.
fn small_id() -> impl Strategy<Value = Uuid> {
    (1u128..4).prop_map(Uuid::from_u128)
}

fn title() -> impl Strategy<Value = Title> {
    prop::sample::select(vec!["Logos", "logos", "Plans", "Q3"])
        .prop_map(|t| Title::parse("name", t).unwrap())
}

/// Decides `command` on `state`: a refused command must leave no trace; accepted events
/// are applied, and kept (through the codec) for the replay.
fn step<A>(state: &mut A, log: &mut Vec<A::Event>, decided: Result<Vec<A::Event>, A::Error>)
where
    A: Aggregate,
    A::Event: EventCodec + Clone + PartialEq + std::fmt::Debug,
{
    let Ok(events) = decided else { return };
    for event in events {
        let stored = A::Event::decode(event.event_type(), event.schema_version(), &event.encode())
            .expect("every event decodes as itself");
        assert_eq!(stored, event);
        state.apply(event);
        log.push(stored);
    }
}

/// The state a replay of `log` gives, and the state restored from a snapshot of `live`.
fn replayed<A>(log: &[A::Event], live: &A) -> (A, A)
where
    A: Aggregate + Default + serde::Serialize + serde::de::DeserializeOwned,
    A::Event: Clone,
{
    let mut replay = A::default();
    for event in log {
        replay.apply(event.clone());
    }
    let snapshot: A = postcard::from_bytes(&postcard::to_allocvec(live).unwrap()).unwrap();
    (replay, snapshot)
}

fn workspace_command() -> impl Strategy<Value = WorkspaceCommand> {
    prop_oneof![
        (person(), person(), workspace_role())
            .prop_map(|(by, user, role)| WorkspaceCommand::AddMember { by, user, role }),
        (person(), person(), workspace_role())
            .prop_map(|(by, user, role)| WorkspaceCommand::ChangeMemberRole { by, user, role }),
        (person(), person()).prop_map(|(by, user)| WorkspaceCommand::RemoveMember { by, user }),
        (person(), prop::option::of(document_role_any()))
            .prop_map(|(by, role)| WorkspaceCommand::SetDefaultDocumentRole { by, role }),
        (person(), small_id(), title()).prop_map(|(by, collection_id, name)| {
            WorkspaceCommand::CreateCollection {
                by,
                collection_id,
                name,
            }
        }),
        (person(), small_id(), title()).prop_map(|(by, collection_id, name)| {
            WorkspaceCommand::RenameCollection {
                by,
                collection_id,
                name,
            }
        }),
        (person(), small_id()).prop_map(|(by, collection_id)| WorkspaceCommand::DeleteCollection {
            by,
            collection_id
        }),
        (person(), title()).prop_map(|(by, name)| WorkspaceCommand::RenameWorkspace { by, name }),
    ]
}

fn acting() -> impl Strategy<Value = Acting> {
    (person(), document_role_any()).prop_map(|(user, role)| Acting { user, role })
}

fn document_command() -> impl Strategy<Value = DocumentCommand> {
    prop_oneof![
        (acting(), title()).prop_map(|(by, title)| DocumentCommand::RenameDocument { by, title }),
        (acting(), prop::sample::select(vec!["/", "/a", "/a/b"])).prop_map(|(by, f)| {
            DocumentCommand::MoveDocument {
                by,
                folder: FolderPath::parse(f).unwrap(),
            }
        }),
        acting().prop_map(|by| DocumentCommand::ArchiveDocument { by }),
        acting().prop_map(|by| DocumentCommand::RestoreDocument { by }),
        (acting(), person(), document_role_any())
            .prop_map(|(by, user, role)| DocumentCommand::ShareDocument { by, user, role }),
        (acting(), person()).prop_map(|(by, user)| DocumentCommand::UnshareDocument { by, user }),
        (
            acting(),
            small_id(),
            prop::sample::select(vec!["v1", "v2"]),
            0i64..5
        )
            .prop_map(|(by, version_id, name, content_version)| {
                DocumentCommand::NameVersion {
                    by,
                    version_id,
                    name: VersionName::parse("name", name).unwrap(),
                    content_version,
                }
            }),
        (acting(), small_id())
            .prop_map(|(by, version_id)| DocumentCommand::DeleteVersion { by, version_id }),
        (acting(), any::<bool>())
            .prop_map(|(by, template)| DocumentCommand::SetTemplate { by, template }),
        acting().prop_map(|by| DocumentCommand::DeleteDocument { by }),
    ]
}

fn file_command() -> impl Strategy<Value = FileCommand> {
    let arrived = (
        prop::option::of(0u64..20),
        prop::sample::select(vec![
            None,
            Some("image/png"),
            Some("application/x-executable"),
        ]),
    )
        .prop_map(|(size, sniffed)| Arrived {
            size,
            sniffed: sniffed.map(str::to_owned),
            text: false,
        });
    prop_oneof![
        (person(), arrived).prop_map(|(by, arrived)| FileCommand::Complete {
            by,
            arrived,
            max_bytes: 15
        }),
        Just(FileCommand::Abandon),
        (person(), any::<bool>()).prop_map(|(by, manager)| FileCommand::Delete { by, manager }),
        prop::sample::select(vec![256u32, 1024]).prop_map(|max_px| FileCommand::RecordThumbnail {
            max_px,
            width: max_px,
            height: max_px / 2,
            key: format!("k-{max_px}"),
            content_type: "image/jpeg".into(),
        }),
        Just(FileCommand::RecordThumbnailFailure {
            reason: "corrupt".into()
        }),
        (person(), small_id()).prop_map(|(by, d)| FileCommand::Attach {
            by,
            document_id: DocumentId::from_uuid(d)
        }),
        (person(), small_id()).prop_map(|(by, d)| FileCommand::Detach {
            by,
            document_id: DocumentId::from_uuid(d)
        }),
        (
            person(),
            prop::collection::vec(prop::sample::select(vec!["a", "B", "c"]), 0..4)
        )
            .prop_map(|(by, tags)| {
                FileCommand::SetTags {
                    by,
                    tags: tags.into_iter().map(|t| Tag::parse(t).unwrap()).collect(),
                }
            }),
        (person(), small_id())
            .prop_map(|(by, collection_id)| FileCommand::AddToCollection { by, collection_id }),
        (person(), small_id()).prop_map(|(by, collection_id)| FileCommand::RemoveFromCollection {
            by,
            collection_id
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn a_workspace_replayed_equals_the_workspace_decided(commands in prop::collection::vec(workspace_command(), 0..40)) {
        let mut live = Workspace::default();
        let mut log = Vec::new();
        let id = WorkspaceId::from_uuid(Uuid::from_u128(9));
        let ann = UserId::parse("ann").unwrap();
        let create = WorkspaceCommand::CreateWorkspace { id, name: Title::parse("name", "Acme").unwrap(), owner: ann };
        let decided = live.decide(create);
        step(&mut live, &mut log, decided);
        for command in commands {
            let before = live.clone();
            let by = match &command {
                WorkspaceCommand::AddMember { by, .. }
                | WorkspaceCommand::ChangeMemberRole { by, .. }
                | WorkspaceCommand::RemoveMember { by, .. }
                | WorkspaceCommand::SetDefaultDocumentRole { by, .. }
                | WorkspaceCommand::CreateCollection { by, .. }
                | WorkspaceCommand::RenameCollection { by, .. }
                | WorkspaceCommand::DeleteCollection { by, .. }
                | WorkspaceCommand::RenameWorkspace { by, .. } => by.clone(),
                _ => unreachable!("not generated"),
            };
            let decided = live.decide(command);
            // Nobody outside the workspace changes anything in it.
            if before.role_of(&by).is_none() {
                prop_assert!(decided.is_err());
            }
            step(&mut live, &mut log, decided);
            // A workspace always keeps an owner.
            prop_assert!(PEOPLE.iter().any(|p| live.role_of(&UserId::parse(*p).unwrap()) == Some(WorkspaceRole::Owner)));
        }
        let (replay, snapshot) = replayed(&log, &live);
        prop_assert_eq!(&replay, &live);
        prop_assert_eq!(&snapshot, &live);
    }

    #[test]
    fn a_document_replayed_equals_the_document_decided(commands in prop::collection::vec(document_command(), 0..40)) {
        let mut live = Document::default();
        let mut log = Vec::new();
        let create = DocumentCommand::CreateDocument {
            by: ActingMember { user: UserId::parse("ann").unwrap(), role: WorkspaceRole::Member },
            id: DocumentId::from_uuid(Uuid::from_u128(5)),
            workspace_id: WorkspaceId::from_uuid(Uuid::from_u128(9)),
            title: Title::parse("title", "Notes").unwrap(),
            folder: FolderPath::root(),
        };
        let decided = live.decide(create);
        step(&mut live, &mut log, decided);
        for command in commands {
            let before = live.clone();
            let role = match &command {
                DocumentCommand::RenameDocument { by, .. }
                | DocumentCommand::MoveDocument { by, .. }
                | DocumentCommand::ArchiveDocument { by }
                | DocumentCommand::RestoreDocument { by }
                | DocumentCommand::ShareDocument { by, .. }
                | DocumentCommand::UnshareDocument { by, .. }
                | DocumentCommand::NameVersion { by, .. }
                | DocumentCommand::DeleteVersion { by, .. }
                | DocumentCommand::SetTemplate { by, .. }
                | DocumentCommand::DeleteDocument { by } => by.role,
                _ => unreachable!("not generated"),
            };
            let decided = live.decide(command);
            // Viewers and commenters change nothing; a deleted document refuses everything.
            if role < DocumentRole::Editor || before.live_workspace().is_none() {
                prop_assert!(decided.is_err());
            }
            step(&mut live, &mut log, decided);
        }
        let (replay, snapshot) = replayed(&log, &live);
        prop_assert_eq!(&replay, &live);
        prop_assert_eq!(&snapshot, &live);
    }

    #[test]
    fn a_file_replayed_equals_the_file_decided(commands in prop::collection::vec(file_command(), 0..30)) {
        let mut live = File::default();
        let mut log = Vec::new();
        let start = FileCommand::Start {
            by: UserId::parse("ann").unwrap(),
            workspace_id: WorkspaceId::from_uuid(Uuid::from_u128(9)),
            filename: FileName::sanitise("logo.png").unwrap(),
            declared_type: "image/png".into(),
            size: 10,
            document_id: None,
            key: "k".into(),
            upload_id: None,
            max_bytes: 15,
        };
        let decided = live.decide(start);
        step(&mut live, &mut log, decided);
        let mut thumbnails = 0;
        for command in commands {
            let before = live.state();
            let decided = live.decide(command);
            if let Ok(events) = &decided {
                thumbnails += events.iter().filter(|e| e.event_type() == "ThumbnailCreated").count();
            }
            // Only a pending upload completes, only an uploaded file is organised, nothing
            // comes back from deletion.
            if before == FileState::Deleted {
                prop_assert!(decided.as_ref().map(|e| e.is_empty()).unwrap_or(true));
            }
            step(&mut live, &mut log, decided);
            // Never two thumbnails of one size.
            prop_assert!(thumbnails <= 2);
        }
        let (replay, snapshot) = replayed(&log, &live);
        prop_assert_eq!(&replay, &live);
        prop_assert_eq!(&snapshot, &live);
    }

    /// No combination of a workspace role, a default role, authorship and a share grants
    /// more than the greatest of its parts, and each part alone grants no more than the
    /// whole.
    #[test]
    fn access_grants_exactly_the_greatest_of_its_parts(
        workspace_role in prop::option::of(workspace_role()),
        default_role in prop::option::of(document_role_any()),
        creator in any::<bool>(),
        shared in prop::option::of(document_role_any()),
    ) {
        let user = UserId::parse("ann").unwrap();
        let other = UserId::parse("bob").unwrap();
        let created_by = Some(if creator { &user } else { &other });
        let facts = |workspace_role, shared_role| AccessFacts {
            user: &user,
            workspace_role,
            default_member_role: default_role,
            created_by,
            shared_role,
        };
        let whole = document_role(facts(workspace_role, shared));
        let from_workspace = document_role(facts(workspace_role, None));
        let from_share = document_role(facts(None, shared));
        prop_assert_eq!(whole, from_workspace.max(from_share));
        prop_assert_eq!(from_share, shared);
        // A guest gets only what is shared; only owners, admins and authors own.
        if workspace_role == Some(WorkspaceRole::Guest) {
            prop_assert_eq!(whole, shared);
        }
        if whole == Some(DocumentRole::Owner) && shared != Some(DocumentRole::Owner) {
            prop_assert!(matches!(workspace_role, Some(WorkspaceRole::Owner | WorkspaceRole::Admin))
                || (workspace_role == Some(WorkspaceRole::Member) && (creator || default_role == Some(DocumentRole::Owner))));
        }
    }
}
