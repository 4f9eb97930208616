//! Projectors: redelivery is a no-op, gaps are filled from the log, and a rebuild from
//! position 0 gives exactly the live read model.

use collab_commands::AggregateStore;
use collab_domain::RecordedEvent;
use collab_projections::runtime::fold_batch;
use collab_projections::{ReadModel, Registry};
use collab_store::EventStore;
use collab_tests::{read_models, read_models_caught_up, rebuild_all, TestApp, TestEnv};
use serde_json::json;
use sqlx::PgPool;

/// An app whose relay and projectors are off: the test drives the folds itself.
async fn without_consumers() -> TestApp {
    TestApp::spawn_with(TestEnv::new().await, |s| {
        s.roles.relay = false;
        s.roles.projector = false;
        s.roles.thumbnailer = false;
    })
    .await
}

/// Folds a delivered batch: its highest position is the signal.
async fn fold(pool: &PgPool, model: &dyn ReadModel, delivered: &[RecordedEvent]) -> i64 {
    let target = delivered.iter().map(|e| e.position).max().unwrap();
    fold_batch(pool, model, target).await.unwrap()
}

/// The read models' checkpoints (workers such as the thumbnailer keep theirs in the same
/// table, moving on their own time; a rebuild leaves them alone).
async fn checkpoints(pool: &PgPool) -> Vec<(String, i64)> {
    let models: Vec<&str> = Registry::standard()
        .read_models()
        .map(|m| m.name())
        .collect();
    sqlx::query_as(
        "SELECT name, position FROM projector_checkpoints WHERE name = ANY($1) ORDER BY name",
    )
    .bind(&models)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn delivering_the_same_events_twice_changes_nothing() {
    // No relay or live projector here: the test drives the projector's fold directly.
    let app = without_consumers().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    app.add_member(&workspace, "alice", "bob", "member").await;
    let doc = app
        .post(
            &format!("/v1/workspaces/{workspace}/documents"),
            "bob",
            json!({"title": "Plan"}),
        )
        .await;
    assert_eq!(doc.status, 201);
    let store = AggregateStore::new(EventStore::new(app.env.pool.clone()), 50);
    let events = store.events().read_all(0, 100).await.unwrap();
    assert_eq!(events.len(), 4);

    for model in Registry::standard().read_models() {
        assert_eq!(fold(&app.env.pool, model.as_ref(), &events).await, 4);
    }
    let once = read_models(&app.env.pool).await;
    assert_eq!(once["rm_workspace_members"].as_array().unwrap().len(), 2);
    assert_eq!(once["rm_documents"].as_array().unwrap().len(), 1);

    // Redelivery of everything, and of one event alone: no change, no error.
    for model in Registry::standard().read_models() {
        assert_eq!(fold(&app.env.pool, model.as_ref(), &events).await, 4);
        assert_eq!(fold(&app.env.pool, model.as_ref(), &events[1..2]).await, 4);
    }
    assert_eq!(read_models(&app.env.pool).await, once);
    assert_eq!(
        checkpoints(&app.env.pool).await,
        vec![
            ("activity".into(), 4),
            ("audit".into(), 4),
            ("comments".into(), 4),
            ("documents".into(), 4),
            ("files".into(), 4),
            ("history".into(), 4),
            ("notifications".into(), 4),
            ("profiles".into(), 4),
            ("webhooks".into(), 4),
            ("workspaces".into(), 4)
        ]
    );
}

#[tokio::test]
async fn a_gap_in_delivery_is_filled_from_the_postgres_log() {
    let app = without_consumers().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    for title in ["One", "Two", "Three"] {
        let r = app
            .post(
                &format!("/v1/workspaces/{workspace}/documents"),
                "alice",
                json!({"title": title}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let store = AggregateStore::new(EventStore::new(app.env.pool.clone()), 50);
    let events = store.events().read_all(0, 100).await.unwrap();
    // Only the newest event is delivered; the three before it must not be skipped.
    let position = fold(
        &app.env.pool,
        &collab_projections::documents::Documents,
        &events[4..],
    )
    .await;
    assert_eq!(position, 5);
    let titles: Vec<String> =
        sqlx::query_scalar("SELECT title FROM rm_documents ORDER BY created_position")
            .fetch_all(&app.env.pool)
            .await
            .unwrap();
    assert_eq!(titles, vec!["One", "Two", "Three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_from_the_log_equals_the_live_read_models() {
    let app = TestApp::spawn().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let (other, _) = app.create_workspace("bob", "Bobs").await;
    let ws = |p: &str| format!("/v1/workspaces/{workspace}{p}");
    assert_eq!(
        app.post(
            &ws("/members"),
            "alice",
            json!({"user_id": "bob", "role": "admin"})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        app.post(
            &ws("/members"),
            "alice",
            json!({"user_id": "carol", "role": "guest"})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        app.patch(&ws("/members/carol"), "bob", json!({"role": "member"}))
            .await
            .status,
        200
    );
    assert_eq!(
        app.patch(&ws(""), "alice", json!({"name": "Acme Inc"}))
            .await
            .status,
        200
    );
    let mut documents = vec![];
    for n in 0..6 {
        let r = app
            .post(
                &ws("/documents"),
                "carol",
                json!({"title": format!("Doc {n}"), "folder": "/drafts"}),
            )
            .await;
        assert_eq!(r.status, 201);
        documents.push(r.body["id"].as_str().unwrap().to_owned());
    }
    // Edits: bursts in the audit trail and sessions in the history. The rebuild folds them
    // in one page with the rename below, so a burst is written before the rename and again
    // after it; live, they fold in several batches.
    for user in ["carol", "bob", "carol"] {
        app.write_text(&documents[0], user, "hi ").await;
    }
    app.write_text(&documents[4], "bob", "x").await;
    // Live, the rename and the edit after it fold in a later batch.
    read_models_caught_up(&app.env.pool).await;
    let doc = |id: &str, p: &str| format!("/v1/documents/{id}{p}");
    assert_eq!(
        app.patch(
            &doc(&documents[0], ""),
            "carol",
            json!({"title": "Renamed", "folder": "/final"})
        )
        .await
        .status,
        200
    );
    app.write_text(&documents[0], "carol", "more ").await;
    assert_eq!(
        app.post(&doc(&documents[1], "/archive"), "carol", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        app.post(&doc(&documents[2], "/archive"), "bob", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        app.post(&doc(&documents[2], "/restore"), "bob", json!({}))
            .await
            .status,
        200
    );
    assert_eq!(
        app.delete(&doc(&documents[3], ""), "alice").await.status,
        200
    );
    let removed = app
        .delete(
            &format!("/v1/workspaces/{workspace}/members/carol"),
            "alice",
        )
        .await;
    assert_eq!(removed.status, 200);
    let last = app
        .post(
            &format!("/v1/workspaces/{other}/documents"),
            "bob",
            json!({"title": "Elsewhere"}),
        )
        .await
        .position();

    // Wait for the live projectors, then compare with a rebuild by the real binary.
    assert_eq!(
        app.get_at("/v1/workspaces", "alice", last).await.status,
        200
    );
    read_models_caught_up(&app.env.pool).await;
    let live = read_models(&app.env.pool).await;
    assert_eq!(live["rm_documents"].as_array().unwrap().len(), 6);
    assert_eq!(live["rm_workspace_members"].as_array().unwrap().len(), 3);
    let bursts = live["rm_audit_entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "DocumentEdited")
        .count();
    assert_eq!(bursts, 3, "{}", live["rm_audit_entries"]);
    // A burst's entry names the document as it was called at its last edit.
    let summaries = live["rm_audit_entries"].to_string();
    assert!(
        summaries.contains("carol edited Renamed (3 edits, versions 1–4)"),
        "{summaries}"
    );

    let stdout = rebuild_all(&app.env.database_url);
    assert!(
        stdout.contains(&format!("documents: rebuilt to position {last}")),
        "{stdout}"
    );
    let rebuilt = read_models(&app.env.pool).await;
    assert_eq!(rebuilt, live);
    assert_eq!(
        checkpoints(&app.env.pool).await,
        vec![
            ("activity".into(), last),
            ("audit".into(), last),
            ("comments".into(), last),
            ("documents".into(), last),
            ("files".into(), last),
            ("history".into(), last),
            ("notifications".into(), last),
            ("profiles".into(), last),
            ("webhooks".into(), last),
            ("workspaces".into(), last)
        ]
    );

    // The live projectors carry on from the rebuilt position.
    let after = app
        .patch(&ws(""), "alice", json!({"name": "After rebuild"}))
        .await
        .position();
    let seen = app
        .get_at(&format!("/v1/workspaces/{workspace}"), "alice", after)
        .await;
    assert_eq!(seen.body["name"], "After rebuild");
}

/// A delivered position beyond this log's head (a message of another log: a recreated
/// database under the same prefix) must not move a checkpoint past events never folded.
#[tokio::test]
async fn a_position_beyond_the_log_head_does_not_move_the_checkpoint_past_it() {
    let app = without_consumers().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let documents = collab_projections::documents::Documents;
    // Head is 2 (the workspace); a stale message says 1000.
    assert_eq!(
        fold_batch(&app.env.pool, &documents, 1000).await.unwrap(),
        2
    );
    let created = app
        .post(
            &format!("/v1/workspaces/{workspace}/documents"),
            "alice",
            json!({"title": "After"}),
        )
        .await;
    assert_eq!(created.position(), 3);
    // The new document (position 3, below the stale 1000) is still folded.
    assert_eq!(fold_batch(&app.env.pool, &documents, 3).await.unwrap(), 3);
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM rm_documents")
        .fetch_all(&app.env.pool)
        .await
        .unwrap();
    assert_eq!(titles, vec!["After"]);
}

/// A read model behind the log when its projector starts folds to the head from the log
/// at once. Here nothing was ever published (no relay), so no delivery will come: before,
/// the read model stayed behind until the next event of its categories.
#[tokio::test]
async fn a_read_model_behind_the_log_at_start_folds_to_the_head_without_a_delivery() {
    let app = without_consumers().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    for title in ["One", "Two", "Three"] {
        app.create_document(&workspace, "alice", title).await;
    }
    let head = collab_tests::log_head(&app.env.pool).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let documents = Registry::standard().read_model_named("documents").unwrap();
    let consumer = tokio::spawn(collab_projections::run_consumer(
        app.env.pool.clone(),
        app.env.jetstream().await,
        app.env.prefix.clone(),
        collab_projections::Consumer::ReadModel(documents),
        shutdown.clone(),
    ));
    let pool = &app.env.pool;
    collab_tests::eventually(
        "the documents read model to reach the head",
        std::time::Duration::from_secs(20),
        || async move {
            let position = collab_projections::checkpoint::position(pool, "documents")
                .await
                .ok()?;
            (position >= head).then_some(())
        },
    )
    .await;
    let mut titles: Vec<String> = sqlx::query_scalar("SELECT title FROM rm_documents")
        .fetch_all(pool)
        .await
        .unwrap();
    titles.sort();
    assert_eq!(titles, vec!["One", "Three", "Two"]);
    shutdown.cancel();
    consumer.await.unwrap();
}
