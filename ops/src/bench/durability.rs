//! `collab-bench durability`: after a run against collab, is every edit the load generator
//! sent in Postgres, and has the relay put the whole log on JetStream, in order?

use std::time::{Duration, Instant};

use async_nats::jetstream;
use collab_domain::envelope::events_stream_name;
use collab_store::relay::POSITION_HEADER;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;

pub(crate) async fn run(
    database_url: &str,
    nats_url: &str,
    prefix: &str,
    edits_sent: i64,
    timeout: Duration,
) -> Value {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach Postgres at {database_url}: {e}"));
    let (edits, events, last_position): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'DocumentEdited'), count(*), \
         coalesce(max(position), 0)::bigint FROM events",
    )
    .fetch_one(&pool)
    .await
    .expect("the events table is readable");
    pool.close().await;

    let client = async_nats::connect(nats_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach NATS at {nats_url}: {e}"));
    let js = jetstream::new(client);
    let mut stream = js
        .get_stream(events_stream_name(prefix))
        .await
        .unwrap_or_else(|e| panic!("no events stream for prefix {prefix}: {e}"));
    // The relay may still be publishing the tail: wait (bounded) until it has it all.
    let started = Instant::now();
    let (messages, last_sequence) = loop {
        let state = &stream.info().await.expect("stream info").state;
        if state.messages as i64 >= events || started.elapsed() > timeout {
            break (state.messages as i64, state.last_sequence);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let caught_up = started.elapsed().as_secs_f64();
    // The relay publishes in position order, so the last message carries the last position.
    let last_published = if last_sequence == 0 {
        0
    } else {
        stream
            .get_raw_message(last_sequence)
            .await
            .ok()
            .and_then(|m| m.headers.get(POSITION_HEADER)?.as_str().parse::<i64>().ok())
            .unwrap_or(-1)
    };
    json!({
        "scenario": "durability",
        "edits_sent": edits_sent,
        "edits_in_postgres": edits,
        "events_in_postgres": events,
        "events_on_jetstream": messages,
        "last_position": last_position,
        "last_position_on_jetstream": last_published,
        "jetstream_caught_up_seconds": caught_up,
        "durable": edits == edits_sent && messages == events && last_published == last_position,
    })
}
