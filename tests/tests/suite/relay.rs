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

/// A new user dropped the database to start fresh while the JetStream stream survived:
/// the relay must not resume from the old stream's position (the new log's first events
/// would never be published, and the stream would mix two logs). It refuses, naming the
/// fix, publishes nothing, and carries on by itself once the stream is deleted.
#[tokio::test]
async fn a_stream_of_another_log_is_refused_not_resumed() {
    let old = TestEnv::new().await;
    let js = old.jetstream().await;
    let old_store = EventStore::new(old.pool.clone());
    let workspace = WorkspaceId::new();
    for n in 0..5 {
        let stream = StreamId::new(StreamCategory::Document, Uuid::now_v7());
        old_store
            .append(
                stream,
                ExpectedVersion::Exact(0),
                &context(workspace),
                vec![event(n)],
            )
            .await
            .unwrap();
    }
    let shutdown = CancellationToken::new();
    let old_relay = tokio::spawn(
        Relay::new(old_store, js.clone(), RelayConfig::new(old.prefix.clone()))
            .run(shutdown.clone()),
    );
    let name = old.stream_name();
    eventually("the old log on JetStream", Duration::from_secs(10), || {
        let (js, name) = (js.clone(), name.clone());
        async move { (stream_len(&js, &name).await? == 5).then_some(()) }
    })
    .await;
    shutdown.cancel();
    old_relay.await.unwrap();

    // A fresh database under the same prefix, with fewer events (the stream is ahead)...
    let mut fresh = TestEnv::new().await;
    fresh.prefix = old.prefix.clone();
    let fresh_store = EventStore::new(fresh.pool.clone());
    let stream = StreamId::new(StreamCategory::Document, Uuid::now_v7());
    fresh_store
        .append(
            stream,
            ExpectedVersion::Exact(0),
            &context(workspace),
            vec![event(0), event(1)],
        )
        .await
        .unwrap();
    let relay = Relay::new(
        fresh_store.clone(),
        js.clone(),
        RelayConfig::new(old.prefix.clone()),
    );
    let refusal = relay.resume_position().await.unwrap_err().to_string();
    assert!(
        refusal.contains("beyond this database's event log"),
        "{refusal}"
    );
    assert!(
        refusal.contains(&format!("nats stream rm {name}")),
        "{refusal}"
    );
    // ...or as many events, but other ones: refused too.
    for n in 2..5 {
        fresh_store
            .append(
                stream,
                ExpectedVersion::Any,
                &context(workspace),
                vec![event(n)],
            )
            .await
            .unwrap();
    }
    let refusal = relay.resume_position().await.unwrap_err().to_string();
    assert!(refusal.contains("another event log"), "{refusal}");

    // Running, it publishes nothing; once the stream is deleted it publishes the new log
    // from the start, without a restart.
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    // Through more than one of its checks (its first at once, then every 5 s): the stream
    // must stay as it was.
    let moved = tokio::time::timeout(Duration::from_secs(6), async {
        loop {
            if stream_len(&js, &name).await != Some(5) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        moved.is_err(),
        "the refusing relay published to the old stream"
    );
    let before = published(&old, &js).await;
    assert_eq!(before.len(), 5);
    js.delete_stream(&name).await.unwrap();
    eventually("the new log on JetStream", Duration::from_secs(20), || {
        let (js, name) = (js.clone(), name.clone());
        async move { (stream_len(&js, &name).await? == 5).then_some(()) }
    })
    .await;
    let after = published(&fresh, &js).await;
    let ours: Vec<Uuid> = fresh_store
        .read_all(0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.metadata.event_id.as_uuid())
        .collect();
    assert_eq!(after.iter().map(|m| m.2).collect::<Vec<_>>(), ours);
    shutdown.cancel();
    running.await.unwrap();
}

/// One listener per process hears the appends: a server's relay, log tail and search
/// indexer share one listening connection, and every waiter wakes at an append with the
/// head it announced, long before its idle poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_listener_wakes_every_waiter_at_each_append() {
    let app = TestApp::spawn().await;
    let listening = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND query = 'LISTEN \"collab_events\"'",
        )
        .fetch_one(&app.env.pool)
        .await
        .unwrap()
    };
    eventually(
        "the server's append listener",
        Duration::from_secs(10),
        || async { (listening().await >= 1).then_some(()) },
    )
    .await;
    assert_eq!(
        listening().await,
        1,
        "one listener for the relay, tail and search"
    );

    let store = EventStore::new(app.env.pool.clone());
    let appends = store.appends().await;
    let idle = Duration::from_secs(600);
    let (mut first, mut second) = (appends.signal(idle), appends.signal(idle));
    let stream = StreamId::new(StreamCategory::Document, Uuid::now_v7());
    let appended = store
        .append(
            stream,
            ExpectedVersion::Exact(0),
            &context(WorkspaceId::new()),
            vec![event(0)],
        )
        .await
        .unwrap();
    let position = appended.last_position();
    let never = CancellationToken::new();
    for signal in [&mut first, &mut second] {
        let heard = tokio::time::timeout(Duration::from_secs(10), signal.wait(&never))
            .await
            .expect("woken by the append, not the idle poll");
        // The server's own background appends may have come after it.
        assert!(heard.is_some_and(|head| head >= position), "{heard:?}");
    }
}
