//! Adding a read model or a worker is one type plus one registration: these test-only
//! ones are registered in the test's own registry and nothing else in the product knows
//! them — yet they get the durable consumer, checkpoints, read-your-writes, rebuild,
//! status and metrics (read model), and idempotency records, retries, parking and
//! requeueing (worker).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use collab_domain::document::DocumentEvent;
use collab_domain::{EventCodec, RecordedEvent, StreamCategory};
use collab_projections::worker::{parked, requeue_parked};
use collab_projections::{
    rebuild, status, ProjectionError, ReadModel, Registry, RetryPolicy, Worker, WorkerError,
};
use collab_tests::{eventually, TestApp, TestEnv};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

/// Counts events per workspace and category, across two categories.
struct EventCounts;

#[async_trait]
impl ReadModel for EventCounts {
    fn name(&self) -> &'static str {
        "test-event-counts"
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Workspace, StreamCategory::Document]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["test_event_counts"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        sqlx::query(
            "INSERT INTO test_event_counts (workspace_id, category, events, last_position) \
             VALUES ($1, $2, 1, $3) ON CONFLICT (workspace_id, category) \
             DO UPDATE SET events = test_event_counts.events + 1, last_position = $3",
        )
        .bind(event.metadata.workspace_id.as_uuid())
        .bind(event.stream_id.category.as_str())
        .bind(event.position)
        .execute(conn)
        .await?;
        Ok(())
    }
}

async fn counts(pool: &PgPool) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT category, events, last_position FROM test_event_counts ORDER BY category",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_read_model_registered_by_a_test_gets_the_whole_runtime() {
    let env = TestEnv::new().await;
    sqlx::query(
        "CREATE TABLE test_event_counts (workspace_id uuid, category text, events bigint, \
         last_position bigint, PRIMARY KEY (workspace_id, category))",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let app =
        TestApp::spawn_with_registry(env, |_| {}, Registry::standard().read_model(EventCounts))
            .await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let created = app
        .post(
            &format!("/v1/workspaces/{workspace}/documents"),
            "alice",
            json!({"title": "Plan"}),
        )
        .await;
    assert_eq!(created.status, 201);
    // Read-your-writes waits for every registered read model, this one included.
    let document = created.body["id"].as_str().unwrap().to_owned();
    let read = app
        .get_at(
            &format!("/v1/documents/{document}"),
            "alice",
            created.position(),
        )
        .await;
    assert_eq!(read.status, 200);
    let live = counts(&app.env.pool).await;
    assert_eq!(
        live,
        vec![
            ("document".into(), 1, created.position()),
            ("workspace".into(), 2, 2)
        ]
    );

    // Status knows it, with no lag once caught up (content edits are not its lag).
    let update = yrs_update("hello");
    let edit = app
        .http
        .post(app.url(&format!("/v1/documents/{document}/updates")))
        .bearer_auth(TestApp::token("alice"))
        .header("content-type", "application/octet-stream")
        .body(update)
        .send()
        .await
        .unwrap();
    assert_eq!(edit.status(), 200);
    let registry = Registry::standard().read_model(EventCounts);
    let report = status(&app.env.pool, &registry).await.unwrap();
    let ours = report
        .iter()
        .find(|s| s.name == "test-event-counts")
        .expect("in the status");
    assert_eq!((ours.kind, ours.lag), ("read model", 0));
    assert!(ours.position >= created.position());

    // A rebuild gives exactly the live result.
    let rebuilt = rebuild(&app.env.pool, &[Arc::new(EventCounts)], |_, _, _| {})
        .await
        .unwrap()
        .position;
    assert!(rebuilt > created.position(), "rebuilt up to the head");
    assert_eq!(counts(&app.env.pool).await, live);
}

fn yrs_update(text: &str) -> Vec<u8> {
    use yrs::{GetString, ReadTxn, Text, Transact};
    let doc = yrs::Doc::new();
    let root = doc.get_or_insert_text("content");
    root.insert(&mut doc.transact_mut(), 0, text);
    assert_eq!(root.get_string(&doc.transact()), text);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    update
}

/// "Sends" an email per document title: the effect lands in `sent`, outside Postgres.
/// Titles starting with `flaky` fail twice before succeeding; `poison` fails for good
/// until `cured`.
#[derive(Clone, Default)]
struct Mailer {
    sent: Arc<Mutex<Vec<String>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    cured: Arc<Mutex<bool>>,
}

#[async_trait]
impl Worker for Mailer {
    fn name(&self) -> &'static str {
        "test-mailer"
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Document]
    }

    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        }
    }

    async fn handle(&self, event: &RecordedEvent) -> Result<(), WorkerError> {
        let DocumentEvent::DocumentCreated(created) = DocumentEvent::decode_recorded(event)
            .map_err(|e| WorkerError::Permanent(e.to_string()))?
        else {
            return Ok(());
        };
        let title = created.title;
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(title.clone()).or_default();
            *n += 1;
            *n
        };
        if title.starts_with("flaky") && attempt <= 2 {
            return Err(WorkerError::Transient(format!("try {attempt} timed out")));
        }
        if title.starts_with("poison") && !*self.cured.lock().unwrap() {
            return Err(WorkerError::Permanent("mailbox does not exist".into()));
        }
        self.sent.lock().unwrap().push(title);
        Ok(())
    }
}

#[tokio::test]
async fn a_worker_registered_by_a_test_retries_parks_and_never_repeats_an_effect() {
    let env = TestEnv::new().await;
    let mailer = Mailer::default();
    let app =
        TestApp::spawn_with_registry(env, |_| {}, Registry::standard().worker(mailer.clone()))
            .await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    for title in ["one", "flaky two", "poison three", "four"] {
        let r = app
            .post(
                &format!("/v1/workspaces/{workspace}/documents"),
                "alice",
                json!({ "title": title }),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let sent = mailer.sent.clone();
    eventually("three mails sent", Duration::from_secs(20), || {
        let sent = sent.clone();
        async move { (sent.lock().unwrap().len() == 3).then_some(()) }
    })
    .await;
    assert_eq!(
        *mailer.sent.lock().unwrap(),
        vec!["one", "flaky two", "four"],
        "in log order, the flaky one after its retries, the poisoned one skipped"
    );
    assert_eq!(mailer.attempts.lock().unwrap()["flaky two"], 3);
    assert_eq!(
        mailer.attempts.lock().unwrap()["poison three"],
        1,
        "permanent: no retry"
    );

    // Parked with its reason, in status and in metrics.
    let stuck = parked(&app.env.pool, "test-mailer").await.unwrap();
    assert_eq!(stuck.len(), 1);
    assert_eq!(stuck[0].reason.as_deref(), Some("mailbox does not exist"));
    let registry = Registry::standard().worker(mailer.clone());
    let report = status(&app.env.pool, &registry).await.unwrap();
    let ours = report.iter().find(|s| s.name == "test-mailer").unwrap();
    assert_eq!(ours.kind, "worker");
    assert_eq!(
        ours.parked,
        Some((1, Some("mailbox does not exist".to_owned())))
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("collab_worker_parked_events{worker=\"test-mailer\"} 1"),
        "{metrics}"
    );

    // Requeued once the cause is fixed: only the parked event is handled again; the
    // events recorded done in between are not repeated.
    *mailer.cured.lock().unwrap() = true;
    assert_eq!(
        requeue_parked(&app.env.pool, "test-mailer").await.unwrap(),
        1
    );
    eventually("the requeued mail sent", Duration::from_secs(30), || {
        let sent = sent.clone();
        async move { (sent.lock().unwrap().len() == 4).then_some(()) }
    })
    .await;
    assert_eq!(
        *mailer.sent.lock().unwrap(),
        vec!["one", "flaky two", "four", "poison three"]
    );
    // The record is committed just after the effect: wait for it.
    let pool = app.env.pool.clone();
    eventually(
        "one done record per document event",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            async move {
                let done: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM worker_events \
                     WHERE worker = 'test-mailer' AND status = 'done'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                (done == 4).then_some(())
            }
        },
    )
    .await;
    assert!(parked(&app.env.pool, "test-mailer")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(mailer.sent.lock().unwrap().len(), 4, "nothing sent twice");
}
