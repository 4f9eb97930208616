//! The outbox relay: every committed event reaches JetStream, in position order, once —
//! under concurrent writers, and across a NATS outage.

use std::collections::HashMap;
use std::time::Duration;

use collab_domain::{Actor, StreamCategory, StreamId, UserId, WireEnvelope, WorkspaceId};
use collab_store::event_store::AppendContext;
use collab_store::{EventStore, ExpectedVersion, NewEvent, Relay, RelayConfig};
use collab_tests::{eventually, OwnNats, TestApp, TestEnv};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn context(workspace: WorkspaceId) -> AppendContext {
    AppendContext {
        workspace_id: workspace,
        actor: Actor::User(UserId::parse("writer").unwrap()),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
    }
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_type: "DocumentRenamed".into(),
        schema_version: 1,
        payload: postcard_title(&format!("title {n}")),
    }
}

fn postcard_title(title: &str) -> Vec<u8> {
    use collab_domain::catalogue::EventCodec;
    collab_domain::document::DocumentEvent::DocumentRenamed(
        collab_domain::document::DocumentRenamed {
            title: title.into(),
        },
    )
    .encode()
}

/// Reads the whole events stream back, message by message, in stream order.
async fn published(env: &TestEnv, js: &async_nats::jetstream::Context) -> Vec<(u64, i64, Uuid)> {
    let stream = js.get_stream(env.stream_name()).await.unwrap();
    let mut out = vec![];
    let mut sequence = 1;
    while let Ok(message) = stream.get_raw_message(sequence).await {
        let event = WireEnvelope::decode(&message.payload).expect("envelope decodes");
        let header: i64 = message
            .headers
            .get("Collab-Position")
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        assert_eq!(header, event.position);
        out.push((
            message.sequence,
            event.position,
            event.metadata.event_id.as_uuid(),
        ));
        sequence += 1;
    }
    out
}

async fn stream_len(js: &async_nats::jetstream::Context, name: &str) -> Option<u64> {
    let mut stream = js.get_stream(name).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_reach_jetstream_in_order_without_gaps_or_duplicates() {
    let env = TestEnv::new().await;
    let js = env.jetstream().await;
    let store = EventStore::new(env.pool.clone());
    let shutdown = CancellationToken::new();
    let relay = tokio::spawn(
        Relay::new(
            store.clone(),
            js.clone(),
            RelayConfig::new(env.prefix.clone()),
        )
        .run(shutdown.clone()),
    );

    // 8 writers commit concurrently while the relay publishes: some streams private to a
    // writer (exact versions), one stream shared by all (appends anywhere).
    let shared = StreamId::new(StreamCategory::Document, Uuid::now_v7());
    let workspace = WorkspaceId::new();
    let mut writers = vec![];
    for writer in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let own = StreamId::new(StreamCategory::Document, Uuid::now_v7());
            let mut version = 0;
            for n in 0..40 {
                let batch: Vec<NewEvent> = (0..1 + (n + writer) % 3).map(event).collect();
                let appended = store
                    .append(
                        own,
                        ExpectedVersion::Exact(version),
                        &context(workspace),
                        batch,
                    )
                    .await
                    .expect("private stream append");
                version = appended.stream_version();
                store
                    .append(
                        shared,
                        ExpectedVersion::Any,
                        &context(workspace),
                        vec![event(n)],
                    )
                    .await
                    .expect("shared stream append");
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let committed = env.count_events().await;
    assert!(committed > 8 * 40 * 2, "writers committed {committed}");

    let name = env.stream_name();
    eventually(
        "JetStream to hold every committed event",
        Duration::from_secs(30),
        || {
            let js = js.clone();
            let name = name.clone();
            async move { (stream_len(&js, &name).await? == committed as u64).then_some(()) }
        },
    )
    .await;

    let messages = published(&env, &js).await;
    assert_eq!(messages.len() as i64, committed);
    for (index, (sequence, position, _)) in messages.iter().enumerate() {
        assert_eq!(*sequence, index as u64 + 1);
        assert_eq!(
            *position,
            index as i64 + 1,
            "JetStream order is position order, gap-free"
        );
    }
    // Exactly the committed events, by id.
    let ids: Vec<(i64, Uuid)> =
        sqlx::query_as("SELECT position, event_id FROM events ORDER BY position")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    let published_ids: Vec<(i64, Uuid)> = messages.iter().map(|(_, p, id)| (*p, *id)).collect();
    assert_eq!(published_ids, ids);

    // The relay stops when asked, and a new one publishes nothing twice.
    shutdown.cancel();
    relay.await.unwrap();
    let again = CancellationToken::new();
    let second = tokio::spawn(
        Relay::new(
            store.clone(),
            js.clone(),
            RelayConfig::new(env.prefix.clone()),
        )
        .run(again.clone()),
    );
    store
        .append(
            shared,
            ExpectedVersion::Any,
            &context(workspace),
            vec![event(999)],
        )
        .await
        .unwrap();
    eventually(
        "the new event after a relay restart",
        Duration::from_secs(15),
        || {
            let js = js.clone();
            let name = name.clone();
            async move { (stream_len(&js, &name).await? == committed as u64 + 1).then_some(()) }
        },
    )
    .await;
    again.cancel();
    second.await.unwrap();
    let messages = published(&env, &js).await;
    assert_eq!(messages.len() as i64, committed + 1);
    assert_eq!(messages.last().unwrap().1, committed + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_outage_delays_publication_but_blocks_no_command_and_loses_nothing() {
    let mut nats = OwnNats::start().await;
    let env = TestEnv::with_nats(nats.url()).await;
    let app = TestApp::spawn_in(env).await;
    let (workspace, _) = app.create_workspace("alice", "Before the outage").await;

    nats.stop();
    let mut last = 0;
    for n in 0..5 {
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            app.post(
                &format!("/v1/workspaces/{workspace}/documents"),
                "alice",
                serde_json::json!({ "title": format!("written while NATS is down {n}") }),
            ),
        )
        .await
        .expect("a command does not wait for NATS");
        assert_eq!(response.status, 201, "{}", response.body);
        last = response.position();
    }
    let committed = app.env.count_events().await;
    assert_eq!(committed, last);

    nats.resume().await;
    let js = app.env.jetstream().await;
    let name = app.env.stream_name();
    eventually(
        "the relay to publish what was committed during the outage",
        Duration::from_secs(30),
        || {
            let js = js.clone();
            let name = name.clone();
            async move { (stream_len(&js, &name).await? == committed as u64).then_some(()) }
        },
    )
    .await;
    let positions: Vec<i64> = published(&app.env, &js)
        .await
        .into_iter()
        .map(|(_, p, _)| p)
        .collect();
    assert_eq!(positions, (1..=committed).collect::<Vec<_>>());

    // The projectors reconnect by themselves and the read model catches up.
    let path = format!("/v1/workspaces/{workspace}/documents");
    let listing = eventually(
        "the read model to catch up after the outage",
        Duration::from_secs(30),
        || {
            let (app, path) = (&app, &path);
            async move {
                let listing = app.get_at(path, "alice", last).await;
                (listing.status == 200).then_some(listing)
            }
        },
    )
    .await;
    assert_eq!(listing.body["documents"].as_array().unwrap().len(), 5);
    let titles: HashMap<String, bool> = listing.body["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["title"].as_str().unwrap().to_owned(), true))
        .collect();
    assert!(titles.contains_key("written while NATS is down 4"));
    app.stop().await;
}
