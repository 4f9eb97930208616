//! Webhooks (issue 14, item 7): Standard Webhooks and Slack deliveries checked by an
//! independent verifier (npm `standardwebhooks`), retries after 500s with one id, every
//! attempt recorded, a stopped receiver getting its deliveries once back, an endpoint
//! disabled after a run of failures (owners see why) and enabled again, a manual retry,
//! who may manage webhooks, bad input, and URLs pointing inside refused.

use std::time::Duration;

use collab_tests::{
    eventually, read_models_caught_up, rebuild_all, CollabProcess, Http, TestEnv, WebhookReceiver,
};
use reqwest::Method;
use serde_json::{json, Value};

async fn call(
    http: &Http,
    method: Method,
    path: &str,
    user: &str,
    body: Option<Value>,
    status: u16,
) -> collab_tests::Response {
    http.expect(method, path, user, body, status).await
}

/// The verified deliveries to `path`, once there are at least `n`.
async fn delivered(receiver: &WebhookReceiver, path: &str, n: usize) -> Vec<Value> {
    eventually(
        &format!("{n} deliveries to {path}"),
        Duration::from_secs(30),
        || async {
            let got: Vec<Value> = receiver
                .received()
                .await
                .into_iter()
                .filter(|r| r["path"] == path)
                .collect();
            (got.len() >= n).then_some(got)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_are_retried_recorded_and_resumed_after_an_outage() {
    let env = TestEnv::new().await;
    let mut receiver = WebhookReceiver::start().await;
    let server = CollabProcess::start(
        &env,
        &[
            ("COLLAB_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("COLLAB_WEBHOOK_RETRY_SCHEDULE", "1,1,1,1,1,1,1,1"),
            ("COLLAB_WEBHOOK_POLL_MS", "100"),
            ("COLLAB_WEBHOOK_DISABLE_AFTER", "4"),
            ("COLLAB_WEBHOOK_TIMEOUT_SECS", "2"),
        ],
    )
    .await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    let hooks = format!("/v1/workspaces/{ws}/webhooks");

    let standard = call(
        &http,
        Method::POST,
        &hooks,
        "alice",
        Some(json!({"url": receiver.url("/std"), "events": ["Document*", "ThreadOpened"]})),
        201,
    )
    .await;
    let secret = standard.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(standard.body["format"], "standard");
    let std_id = standard.body["id"].as_str().unwrap().to_owned();
    receiver.secret("/std", secret).await;
    let slack = call(
        &http,
        Method::POST,
        &hooks,
        "alice",
        Some(json!({"url": receiver.url("/slack"), "events": ["DocumentRenamed"], "format": "slack"})),
        201,
    )
    .await;
    receiver
        .secret("/slack", slack.body["secret"].as_str().unwrap())
        .await;
    // A slow receiver is given up on after the timeout (2 s here) and tried again.
    let slow = call(
        &http,
        Method::POST,
        &hooks,
        "alice",
        Some(json!({"url": receiver.url("/slow"), "events": ["DocumentRenamed"]})),
        201,
    )
    .await;
    let slow_id = slow.body["id"].as_str().unwrap().to_owned();
    receiver
        .secret("/slow", slow.body["secret"].as_str().unwrap())
        .await;
    receiver.slow("/slow", 1, 5000).await;
    // The first two attempts at the standard endpoint get a 500.
    receiver.fail("/std", 2, 500).await;

    call(
        &http,
        Method::PATCH,
        &format!("/v1/documents/{doc}"),
        "alice",
        Some(json!({"title": "Launch plan"})),
        200,
    )
    .await;
    let std = delivered(&receiver, "/std", 3).await;
    assert!(std.iter().all(|d| d["verified"] == true), "{std:?}");
    assert_eq!(
        std.iter()
            .map(|d| d["answered"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [500, 500, 204]
    );
    assert!(
        std.iter().all(|d| d["id"] == std[0]["id"]),
        "one id across attempts"
    );
    let body = &std[2]["body"];
    assert_eq!(body["type"], "DocumentRenamed");
    assert_eq!(body["data"]["data"]["title"], "Launch plan");
    assert_eq!(body["data"]["stream_id"], format!("document-{doc}"));
    let to_slack = delivered(&receiver, "/slack", 1).await;
    assert_eq!(to_slack[0]["verified"], true);
    let text = to_slack[0]["body"]["text"].as_str().unwrap();
    assert!(
        text.contains("DocumentRenamed") && text.contains("Launch plan"),
        "{text}"
    );

    let timed_out = eventually(
        "the slow delivery to succeed on its second attempt",
        Duration::from_secs(30),
        || async {
            let page = call(
                &http,
                Method::GET,
                &format!("{hooks}/{slow_id}/deliveries"),
                "alice",
                None,
                200,
            )
            .await
            .body;
            (page["deliveries"][0]["state"] == "succeeded").then_some(page)
        },
    )
    .await;
    let attempts = timed_out["deliveries"][0]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempts.len(), 2, "{timed_out}");
    assert!(attempts[0]["status"].is_null(), "{timed_out}");
    let why = attempts[0]["error"].as_str().unwrap();
    assert!(
        why.contains("timed out") || why.contains("timeout"),
        "{why}"
    );
    assert!(
        attempts[0]["duration_ms"].as_i64().unwrap() < 4000,
        "given up at the timeout"
    );
    assert_eq!(attempts[1]["status"], 204);

    // Every attempt is recorded.
    let deliveries = eventually(
        "the delivery to be recorded as succeeded",
        Duration::from_secs(20),
        || async {
            let page = call(
                &http,
                Method::GET,
                &format!("{hooks}/{std_id}/deliveries"),
                "alice",
                None,
                200,
            )
            .await
            .body;
            (page["deliveries"][0]["state"] == "succeeded").then_some(page)
        },
    )
    .await;
    let first = &deliveries["deliveries"][0];
    assert_eq!(first["id"], std[0]["id"]);
    assert_eq!(first["event_type"], "DocumentRenamed");
    let statuses: Vec<i64> = first["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 204]);

    // A manual retry sends it again, with the same id.
    let delivery = first["id"].as_str().unwrap().to_owned();
    call(
        &http,
        Method::POST,
        &format!("{hooks}/{std_id}/deliveries/{delivery}/retry"),
        "alice",
        None,
        202,
    )
    .await;
    let std = delivered(&receiver, "/std", 4).await;
    assert_eq!(std[3]["id"], delivery.as_str());

    // The receiver stops: attempts fail until, after four in a row, the endpoint is
    // disabled and says why; back up and enabled again, the waiting delivery arrives.
    receiver.stop().await;
    call(
        &http,
        Method::PATCH,
        &format!("/v1/documents/{doc}"),
        "alice",
        Some(json!({"folder": "/launch"})),
        200,
    )
    .await;
    let disabled = eventually(
        "the endpoint to be disabled",
        Duration::from_secs(30),
        || async {
            let hook = call(
                &http,
                Method::GET,
                &format!("{hooks}/{std_id}"),
                "alice",
                None,
                200,
            )
            .await
            .body;
            (hook["enabled"] == false).then_some(hook)
        },
    )
    .await;
    let reason = disabled["disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("4 delivery attempts in a row failed"),
        "{reason}"
    );
    receiver.resume().await;
    receiver.secret("/std", secret).await;
    call(
        &http,
        Method::POST,
        &format!("{hooks}/{std_id}/enable"),
        "alice",
        None,
        200,
    )
    .await;
    let moved = delivered(&receiver, "/std", 1).await;
    assert_eq!(moved[0]["verified"], true);
    assert_eq!(moved[0]["body"]["type"], "DocumentMoved");
    // The audit trail and the catalogue's consumers see the webhook's life as events.
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE event_type LIKE 'Webhook%' ORDER BY position",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        types,
        [
            "WebhookCreated",
            "WebhookCreated",
            "WebhookCreated",
            "WebhookDisabled",
            "WebhookEnabled"
        ]
    );

    // Who manages webhooks, and bad input.
    call(&http, Method::GET, &hooks, "bob", None, 403).await;
    call(&http, Method::GET, &hooks, "mallory", None, 404).await;
    call(
        &http,
        Method::POST,
        &hooks,
        "bob",
        Some(json!({"url": receiver.url("/x"), "events": ["*"]})),
        403,
    )
    .await;
    for body in [
        json!({"url": "ftp://example.com/x", "events": ["*"]}),
        json!({"url": receiver.url("/x"), "events": []}),
        json!({"url": receiver.url("/x"), "events": ["Nope"]}),
        json!({"url": receiver.url("/x"), "events": ["DocumentEdited"]}),
        json!({"url": receiver.url("/x"), "events": ["*"], "format": "xml"}),
        json!({"url": receiver.url("/x"), "events": ["*"], "secret": "mine"}),
        json!({"url": "http://user:pw@example.com/", "events": ["*"]}),
    ] {
        call(&http, Method::POST, &hooks, "alice", Some(body), 422).await;
    }
    call(
        &http,
        Method::GET,
        &format!("{hooks}/{}", uuid::Uuid::now_v7()),
        "alice",
        None,
        404,
    )
    .await;
    call(
        &http,
        Method::GET,
        &format!("{hooks}/not-a-uuid"),
        "alice",
        None,
        400,
    )
    .await;
    let listed = call(&http, Method::GET, &hooks, "alice", None, 200)
        .await
        .body;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 3);
    assert!(
        listed.to_string().find("whsec_").is_none(),
        "secrets are shown once"
    );
    call(
        &http,
        Method::DELETE,
        &format!("{hooks}/{std_id}"),
        "alice",
        None,
        200,
    )
    .await;

    // A rebuild from the log writes the same deliveries: the fold a page at a time sees
    // each webhook created, disabled, enabled and deleted where the log has it.
    read_models_caught_up(&env.pool).await;
    let deliveries = || async {
        sqlx::query_as::<_, (uuid::Uuid, uuid::Uuid, i64, String)>(
            "SELECT delivery_id, webhook_id, position, event_type FROM webhook_deliveries \
             ORDER BY delivery_id",
        )
        .fetch_all(&env.pool)
        .await
        .unwrap()
    };
    let live = deliveries().await;
    let hooks_with_deliveries: std::collections::BTreeSet<_> = live.iter().map(|d| d.1).collect();
    assert!(
        live.len() >= 4 && hooks_with_deliveries.len() >= 3,
        "{live:?}"
    );
    sqlx::query("DELETE FROM webhook_deliveries")
        .execute(&env.pool)
        .await
        .unwrap();
    let report = rebuild_all(&env.database_url);
    assert!(report.contains("webhooks: rebuilt to position"), "{report}");
    assert_eq!(deliveries().await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_pointing_inside_are_refused() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://192.168.1.10/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ] {
        let r = call(
            &http,
            Method::POST,
            &format!("/v1/workspaces/{ws}/webhooks"),
            "alice",
            Some(json!({"url": url, "events": ["*"]})),
            422,
        )
        .await;
        assert!(
            r.body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("url"),
            "{url}: {}",
            r.body
        );
    }
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'WebhookCreated'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(count, 0);
}
