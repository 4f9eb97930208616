//! `collab-bench append`: durable events/s through the event store (group commit batches,
//! concurrent writers) and through the relay to JetStream, beside the raw limits of the
//! same machine: a bare multi-row INSERT of rows of the same size into the same Postgres,
//! and a bare JetStream publish of messages of the same size.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use collab_domain::catalogue::EventCodec;
use collab_domain::content::{ContentEvent, DocumentEdited, EditOrigin};
use collab_domain::{Actor, StreamCategory, StreamId, UserId, WorkspaceId};
use collab_store::event_store::AppendContext;
use collab_store::{BatchAppend, EventStore, ExpectedVersion, NewEvent, Relay, RelayConfig};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, QueryBuilder};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A keystroke-sized edit, as the trace produces them.
fn edit() -> NewEvent {
    let event = ContentEvent::DocumentEdited(DocumentEdited {
        client_id: 1_234_567,
        update: vec![
            1, 1, 135, 173, 226, 9, 0, 132, 135, 173, 226, 9, 4, 1, 120, 0,
        ],
        origin: EditOrigin::Socket,
    });
    NewEvent {
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        payload: event.encode(),
    }
}

async fn store_rate(pool: &PgPool, writers: usize, batch: usize, total: usize) -> f64 {
    let store = EventStore::new(pool.clone());
    let workspace = WorkspaceId::new();
    let per_writer = total / writers;
    let started = Instant::now();
    let mut tasks = vec![];
    for _ in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::new(StreamCategory::Content, Uuid::now_v7());
            let context = AppendContext {
                workspace_id: workspace,
                actor: Actor::User(UserId::parse("bench").unwrap()),
                correlation_id: Uuid::now_v7(),
                causation_id: None,
            };
            let mut written = 0;
            while written < per_writer {
                // One transaction per batch of `batch` single-event requests: what the
                // live appender does with edits that queue up during a commit.
                let requests = (0..batch.min(per_writer - written))
                    .map(|_| BatchAppend {
                        stream,
                        expected: ExpectedVersion::Any,
                        context: context.clone(),
                        events: vec![edit()],
                    })
                    .collect::<Vec<_>>();
                written += requests.len();
                store.append_batch(requests).await.expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (per_writer * writers) as f64 / started.elapsed().as_secs_f64()
}

/// The same rows (same columns and sizes, no ordering lock, no hash computation) with a
/// bare multi-row INSERT.
async fn raw_rate(pool: &PgPool, writers: usize, batch: usize, total: usize) -> f64 {
    sqlx::query("DROP TABLE IF EXISTS bench_raw_events")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE bench_raw_events (LIKE events INCLUDING ALL)")
        .execute(pool)
        .await
        .unwrap();
    let per_writer = total / writers;
    let started = Instant::now();
    let mut tasks = vec![];
    let base = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1));
    for _ in 0..writers {
        let pool = pool.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("content-{}", Uuid::now_v7());
            let payload = edit().payload;
            let mut written = 0;
            while written < per_writer {
                let n = batch.min(per_writer - written);
                let first = base.fetch_add(n as i64, std::sync::atomic::Ordering::Relaxed);
                let mut insert: QueryBuilder<'_, Postgres> = QueryBuilder::new(
                    "INSERT INTO bench_raw_events (position, event_id, stream_id, stream_category, stream_version, \
                     workspace_id, event_type, schema_version, payload, actor, correlation_id, causation_id, \
                     recorded_at, prev_hash, hash) ",
                );
                insert.push_values(0..n, |mut row, i| {
                    let position = first + i as i64;
                    row.push_bind(position)
                        .push_bind(Uuid::now_v7())
                        .push_bind(&stream)
                        .push_bind("content")
                        .push_bind(position)
                        .push_bind(Uuid::nil())
                        .push_bind("DocumentEdited")
                        .push_bind(1)
                        .push_bind(&payload)
                        .push_bind("user:bench")
                        .push_bind(Uuid::nil())
                        .push_bind(None::<Uuid>)
                        .push_bind(chrono::Utc::now())
                        .push_bind(vec![0u8; 32])
                        .push_bind(vec![0u8; 32]);
                });
                insert.build().execute(&pool).await.expect("raw insert");
                written += n;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = (per_writer * writers) as f64 / started.elapsed().as_secs_f64();
    sqlx::query("DROP TABLE bench_raw_events")
        .execute(pool)
        .await
        .unwrap();
    rate
}

async fn jetstream_rate(js: &jetstream::Context, prefix: &str, total: usize, size: usize) -> f64 {
    let name = format!("{}_RAW", prefix.to_uppercase());
    let _ = js.delete_stream(&name).await;
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.raw.>")],
        ..Default::default()
    })
    .await
    .expect("stream");
    let body = bytes::Bytes::from(vec![7u8; size]);
    let started = Instant::now();
    let mut acks = Vec::with_capacity(1000);
    for n in 0..total {
        acks.push(
            js.send_publish(
                format!("{prefix}.raw.x"),
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(body.clone())
                    .message_id(n.to_string()),
            )
            .await
            .expect("publish"),
        );
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.expect("ack");
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await.expect("ack");
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let _ = js.delete_stream(&name).await;
    rate
}

/// Publishes everything in the log with a fresh relay; events/s until JetStream holds it all.
async fn relay_rate(pool: &PgPool, js: &jetstream::Context, prefix: &str) -> (f64, i64) {
    let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
        .fetch_one(pool)
        .await
        .unwrap();
    let config = RelayConfig::new(prefix.to_owned());
    let name = config.stream_name();
    let _ = js.delete_stream(&name).await;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let relay = tokio::spawn(
        Relay::new(EventStore::new(pool.clone()), js.clone(), config).run(stop.clone()),
    );
    loop {
        if let Ok(mut stream) = js.get_stream(&name).await {
            if let Ok(info) = stream.info().await {
                if info.state.messages as i64 >= head {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = head as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    let _ = relay.await;
    let _ = js.delete_stream(&name).await;
    (rate, head)
}

pub(crate) async fn run(database_url: &str, nats_url: &str, total: usize) -> Value {
    let admin_url = database_url
        .rsplit_once('/')
        .map(|(base, _)| format!("{base}/postgres"))
        .unwrap();
    let db = format!("collab_append_bench_{}", Uuid::new_v4().simple());
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .expect("postgres");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("{}/{db}", database_url.rsplit_once('/').unwrap().0);
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .unwrap();
    collab_migrations::run(&pool).await.unwrap();
    let js = jetstream::new(async_nats::connect(nats_url).await.expect("nats"));
    let prefix = format!("appendbench{}", &Uuid::new_v4().simple().to_string()[..8]);

    let mut rows = vec![];
    for &(writers, batch) in &[(1, 1), (1, 10), (1, 100), (4, 100), (8, 100), (4, 500)] {
        let n = if batch == 1 { total / 20 } else { total };
        let store = store_rate(&pool, writers, batch, n).await;
        let raw = raw_rate(&pool, writers, batch, n).await;
        rows.push(json!({ "writers": writers, "batch": batch, "events": n, "store_per_second": store, "raw_insert_per_second": raw, "ratio": store / raw }));
    }
    let (relay, relayed) = relay_rate(&pool, &js, &prefix).await;
    let envelope_size = 200;
    let jetstream = jetstream_rate(&js, &prefix, total, envelope_size).await;
    drop(pool);
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
    json!({
        "scenario": "append",
        "rows": rows,
        "relay_per_second": relay,
        "relayed_events": relayed,
        "jetstream_publish_per_second": jetstream,
        "jetstream_message_bytes": envelope_size,
    })
}
