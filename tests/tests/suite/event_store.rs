//! The event store and aggregate store against the real Postgres: positions, versions,
//! optimistic concurrency, the hash chain, immutability and snapshots.

use std::time::Duration;

use collab_commands::{AggregateStore, CommandError, CommandMeta};
use collab_domain::workspace::{Workspace, WorkspaceCommand};
use collab_domain::{Actor, RecordedEvent, StreamCategory, StreamId, Title, UserId, WorkspaceId};
use collab_store::event_store::{AppendContext, COPY_MIN_EVENTS, EVENTS_CHANNEL};
use collab_store::{BatchAppend, EventStore, ExpectedVersion, NewEvent, StoreError};
use collab_tests::TestEnv;
use uuid::Uuid;

fn alice() -> UserId {
    UserId::parse("alice").unwrap()
}

fn alice_in_a_new_workspace() -> AppendContext {
    AppendContext {
        workspace_id: WorkspaceId::new(),
        actor: Actor::User(alice()),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
    }
}

fn meta() -> CommandMeta {
    CommandMeta {
        actor: Actor::User(alice()),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
    }
}

fn rename(name: &str) -> WorkspaceCommand {
    WorkspaceCommand::RenameWorkspace {
        by: alice(),
        name: Title::parse("name", name).unwrap(),
    }
}

/// Each event links to the one before it, and its hash recomputes from its content.
fn assert_chain_verifies(chain: &[RecordedEvent]) {
    let mut prev = None;
    for event in chain {
        assert_eq!(event.prev_hash, prev);
        assert_eq!(
            event.expected_hash(prev.as_ref()),
            event.hash,
            "hash chain verifies"
        );
        prev = Some(event.hash);
    }
}

async fn create_workspace(store: &AggregateStore) -> WorkspaceId {
    let id = WorkspaceId::new();
    store
        .execute::<Workspace>(
            id.as_uuid(),
            WorkspaceCommand::CreateWorkspace {
                id,
                name: Title::parse("name", "Acme").unwrap(),
                owner: alice(),
            },
            &meta(),
            None,
        )
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn appends_get_gap_free_positions_versions_and_a_verifiable_hash_chain() {
    let env = TestEnv::new().await;
    let store = AggregateStore::new(EventStore::new(env.pool.clone()), 50);
    let a = create_workspace(&store).await;
    let b = create_workspace(&store).await;
    for n in 0..3 {
        store
            .execute::<Workspace>(a.as_uuid(), rename(&format!("A{n}")), &meta(), None)
            .await
            .unwrap();
        store
            .execute::<Workspace>(b.as_uuid(), rename(&format!("B{n}")), &meta(), None)
            .await
            .unwrap();
    }
    let events = store.events().read_all(0, 100).await.unwrap();
    assert_eq!(events.len(), 10);
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.position, index as i64 + 1);
    }
    let stream = StreamId::new(StreamCategory::Workspace, a.as_uuid());
    let chain = store.events().read_stream(stream, 0).await.unwrap();
    assert_eq!(
        chain.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_chain_verifies(&chain);
    // Tampering is detectable: the stored hash no longer matches the content.
    let mut tampered = chain[2].clone();
    tampered.payload.push(0);
    assert_ne!(tampered.expected_hash(Some(&chain[1].hash)), tampered.hash);
}

#[tokio::test]
async fn the_log_refuses_updates_and_deletes() {
    let env = TestEnv::new().await;
    let store = AggregateStore::new(EventStore::new(env.pool.clone()), 50);
    create_workspace(&store).await;
    let update = sqlx::query("UPDATE events SET actor = 'user:mallory'")
        .execute(&env.pool)
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM events").execute(&env.pool).await;
    assert!(delete.is_err());
    assert_eq!(env.count_events().await, 2);
}

#[tokio::test]
async fn stale_expected_versions_conflict_and_change_nothing() {
    let env = TestEnv::new().await;
    let events = EventStore::new(env.pool.clone());
    let stream = StreamId::new(StreamCategory::Document, Uuid::now_v7());
    let context = alice_in_a_new_workspace();
    let new = || NewEvent {
        event_type: "DocumentArchived".into(),
        schema_version: 1,
        payload: vec![],
    };
    events
        .append(stream, ExpectedVersion::NoStream, &context, vec![new()])
        .await
        .unwrap();
    let conflict = events
        .append(stream, ExpectedVersion::NoStream, &context, vec![new()])
        .await;
    assert!(matches!(
        conflict,
        Err(StoreError::Conflict { actual: 1, .. })
    ));
    let stale = events
        .append(
            stream,
            ExpectedVersion::Exact(0),
            &context,
            vec![new(), new()],
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })));
    // The failed appends left no trace, not even a hole in the positions.
    events
        .append(stream, ExpectedVersion::Exact(1), &context, vec![new()])
        .await
        .unwrap();
    let positions: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(positions, vec![1, 2]);

    // Through the aggregate store: a pinned version that is stale is a conflict.
    let store = AggregateStore::new(events, 50);
    let workspace = create_workspace(&store).await;
    let refused = store
        .execute::<Workspace>(workspace.as_uuid(), rename("Pinned"), &meta(), Some(1))
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Conflict {
            expected: 1,
            actual: 2,
            ..
        })
    ));
    let accepted = store
        .execute::<Workspace>(workspace.as_uuid(), rename("Pinned"), &meta(), Some(2))
        .await
        .unwrap();
    assert_eq!(accepted.version, 3);
}

#[tokio::test]
async fn long_streams_load_from_a_snapshot_and_survive_a_broken_one() {
    let env = TestEnv::new().await;
    let store = AggregateStore::new(EventStore::new(env.pool.clone()), 10);
    let id = create_workspace(&store).await;
    for n in 0..25 {
        store
            .execute::<Workspace>(id.as_uuid(), rename(&format!("Name {n}")), &meta(), None)
            .await
            .unwrap();
    }
    let (snapshot_version,): (i64,) =
        sqlx::query_as("SELECT stream_version FROM aggregate_snapshots WHERE stream_id = $1")
            .bind(format!("workspace-{id}"))
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(snapshot_version, 20, "a snapshot every 10 versions");
    let loaded = store.load::<Workspace>(id.as_uuid()).await.unwrap();
    assert_eq!(loaded.version, 27);
    assert_eq!(loaded.aggregate.name(), "Name 24");

    // A snapshot is only an optimisation: garbage in it falls back to the full stream.
    sqlx::query("UPDATE aggregate_snapshots SET state = '\\x00ff'::bytea")
        .execute(&env.pool)
        .await
        .unwrap();
    let reloaded = store.load::<Workspace>(id.as_uuid()).await.unwrap();
    assert_eq!(reloaded.aggregate, loaded.aggregate);
    assert_eq!(reloaded.version, 27);
}

#[tokio::test]
async fn a_stale_cached_head_costs_a_retry_not_an_edit_or_the_chain() {
    // Two stores stand for two instances: each remembers the heads it appended last, so
    // each in turn appends on a head the other has moved past.
    let env = TestEnv::new().await;
    let first = EventStore::new(env.pool.clone());
    let second = EventStore::new(env.pool.clone());
    let stream = StreamId::new(StreamCategory::Content, Uuid::now_v7());
    let context = alice_in_a_new_workspace();
    let edit = |n: u8| NewEvent {
        event_type: "DocumentEdited".into(),
        schema_version: 1,
        payload: vec![n],
    };
    for n in 0..6u8 {
        let store = if n % 2 == 0 { &first } else { &second };
        let appended = store
            .append(stream, ExpectedVersion::Any, &context, vec![edit(n)])
            .await
            .expect("an unpinned append is never refused");
        assert_eq!(appended.stream_version(), i64::from(n) + 1);
        assert_eq!(appended.last_position(), i64::from(n) + 1);
    }
    // A pinned append judged on a head the other store moved is a conflict, reported
    // with the version the stream really is at.
    let stale = first
        .append(stream, ExpectedVersion::Exact(5), &context, vec![edit(9)])
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict { actual: 6, .. })));

    let chain = first.read_stream(stream, 0).await.unwrap();
    assert_eq!(
        chain.iter().map(|e| e.payload[0]).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    assert_chain_verifies(&chain);
    let positions: Vec<i64> = sqlx::query_scalar("SELECT position FROM events ORDER BY position")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(positions, (1..=6).collect::<Vec<_>>());
}

#[tokio::test]
async fn large_batches_are_copied_with_every_field_the_order_and_the_chain_intact() {
    // Large batches take the COPY path; one store's cached head goes stale in between, so
    // the second large batch is refused by the version key and retried on the locked path.
    let env = TestEnv::new().await;
    let first = EventStore::new(env.pool.clone());
    let second = EventStore::new(env.pool.clone());
    let mut listener = sqlx::postgres::PgListener::connect_with(&env.pool)
        .await
        .unwrap();
    listener.listen(EVENTS_CHANNEL).await.unwrap();
    let streams: Vec<StreamId> = (0..3)
        .map(|_| StreamId::new(StreamCategory::Content, Uuid::now_v7()))
        .collect();
    let context = alice_in_a_new_workspace();
    let batch = |from: usize, size: usize| -> Vec<BatchAppend> {
        (from..from + size)
            .map(|n| BatchAppend {
                stream: streams[n % streams.len()],
                expected: ExpectedVersion::Any,
                context: AppendContext {
                    // Both a NULL and a set causation id go through the binary rows.
                    causation_id: (n % 2 == 0).then(Uuid::now_v7),
                    ..context.clone()
                },
                events: vec![NewEvent {
                    event_type: "DocumentEdited".into(),
                    schema_version: 1,
                    payload: (n as u32).to_be_bytes().to_vec(),
                }],
            })
            .collect()
    };
    let large = 2 * COPY_MIN_EVENTS as usize;
    let mut appended: Vec<RecordedEvent> = first
        .append_batch(batch(0, large))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|a| a.events)
        .collect();
    let notified = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("the commit notifies")
        .unwrap();
    assert_eq!(notified.payload(), large.to_string());
    appended.extend(
        second
            .append(
                streams[0],
                ExpectedVersion::Any,
                &context,
                vec![NewEvent {
                    event_type: "DocumentEdited".into(),
                    schema_version: 1,
                    payload: b"between".to_vec(),
                }],
            )
            .await
            .unwrap()
            .events,
    );
    appended.extend(
        first
            .append_batch(batch(large, large))
            .await
            .expect("a stale head costs a retry, not the batch")
            .into_iter()
            .flat_map(|a| a.events),
    );

    // What was returned is exactly what is stored, field by field, at gap-free positions.
    let stored = first.read_all(0, 10_000).await.unwrap();
    let total = 2 * large as i64 + 1;
    assert_eq!(stored.len() as i64, total);
    assert_eq!(
        stored.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(stored, appended);
    for stream in &streams {
        let chain = first.read_stream(*stream, 0).await.unwrap();
        for (index, event) in chain.iter().enumerate() {
            assert_eq!(event.stream_version, index as i64 + 1);
        }
        assert_chain_verifies(&chain);
    }
}
