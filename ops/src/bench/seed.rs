//! `collab-bench seed`: a realistic log of workspace and document events (no content), for
//! measuring read-model rebuilds and a projector catching up from far behind. Workspaces
//! with members; documents created, renamed, moved and shared — appended through the event
//! store (hash chains and all), many streams per transaction.

use std::time::Instant;

use collab_domain::catalogue::EventCodec;
use collab_domain::document::{
    DocumentCreated, DocumentEvent, DocumentMoved, DocumentRenamed, DocumentShared,
};
use collab_domain::workspace::{MemberAdded, WorkspaceCreated, WorkspaceEvent};
use collab_domain::{
    Actor, DocumentId, DocumentRole, StreamCategory, StreamId, UserId, WorkspaceId, WorkspaceRole,
};
use collab_store::event_store::AppendContext;
use collab_store::{BatchAppend, EventStore, ExpectedVersion, NewEvent};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

fn new_event<E: EventCodec>(event: E) -> NewEvent {
    NewEvent {
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        payload: event.encode(),
    }
}

fn user(name: &str) -> UserId {
    UserId::parse(name).expect("a valid user id")
}

pub(crate) async fn run(
    database_url: &str,
    workspaces: usize,
    documents: usize,
    renames: usize,
) -> Value {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(database_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {database_url}: {e}"));
    collab_migrations::run(&pool).await.expect("migrations");
    let store = EventStore::new(pool);
    let started = Instant::now();
    let mut appended = 0usize;
    for w in 0..workspaces {
        let workspace = WorkspaceId::new();
        let owner = user(&format!("owner-{w}"));
        let context = AppendContext {
            workspace_id: workspace,
            actor: Actor::User(owner.clone()),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        };
        let mut events = vec![
            new_event(WorkspaceEvent::WorkspaceCreated(WorkspaceCreated {
                workspace_id: workspace,
                name: format!("Workspace {w}"),
                owner: owner.clone(),
            })),
            new_event(WorkspaceEvent::MemberAdded(MemberAdded {
                user_id: owner.clone(),
                role: WorkspaceRole::Owner,
            })),
        ];
        for m in 0..4 {
            events.push(new_event(WorkspaceEvent::MemberAdded(MemberAdded {
                user_id: user(&format!("member-{w}-{m}")),
                role: WorkspaceRole::Member,
            })));
        }
        let mut requests = vec![BatchAppend {
            stream: StreamId::new(StreamCategory::Workspace, workspace.as_uuid()),
            expected: ExpectedVersion::Any,
            context: context.clone(),
            events,
        }];
        for d in 0..documents {
            let document = DocumentId::new();
            let mut events = vec![new_event(DocumentEvent::DocumentCreated(DocumentCreated {
                document_id: document,
                workspace_id: workspace,
                title: format!("Document {d}"),
                folder: "/".into(),
                created_by: owner.clone(),
            }))];
            for r in 0..renames {
                events.push(new_event(DocumentEvent::DocumentRenamed(DocumentRenamed {
                    title: format!("Document {d}, draft {r}"),
                })));
            }
            events.push(new_event(DocumentEvent::DocumentMoved(DocumentMoved {
                folder: format!("/team-{}", d % 7),
            })));
            events.push(new_event(DocumentEvent::DocumentShared(DocumentShared {
                user_id: user(&format!("guest-{w}-{d}")),
                role: DocumentRole::Viewer,
            })));
            requests.push(BatchAppend {
                stream: StreamId::new(StreamCategory::Document, document.as_uuid()),
                expected: ExpectedVersion::Any,
                context: context.clone(),
                events,
            });
        }
        appended += requests.iter().map(|r| r.events.len()).sum::<usize>();
        store.append_batch(requests).await.expect("append");
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "scenario": "seed",
        "workspaces": workspaces,
        "documents": workspaces * documents,
        "events": appended,
        "seconds": seconds,
        "events_per_second": appended as f64 / seconds,
    })
}
