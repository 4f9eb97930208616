//! Live editing end to end: the real `collab` binary, real Postgres and NATS, and stock
//! Yjs clients (npm `yjs` + `y-websocket` under Node).

use std::time::Duration;

use collab_tests::{
    edit_count, eventually, mint, mint_read_only, CollabProcess, Http, NodeClient, TestEnv,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_clients_converge_late_joiners_catch_up_and_read_only_edits_are_not_stored() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    let added = http
        .call(
            reqwest::Method::POST,
            &format!("/v1/workspaces/{ws}/members"),
            "alice",
            Some(json!({"user_id": "bob", "role": "member"})),
        )
        .await;
    assert_eq!(added.status, 201);

    let mut a = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    let mut b = NodeClient::open(&server.ws(), &doc, &mint("bob", 3600)).await;
    // Concurrent typing: each insert is one Yjs transaction, so one update.
    for n in 0..25 {
        a.insert(Some(0), &format!("a{n} ")).await;
        b.insert(None, &format!("b{n} ")).await;
    }
    let total: usize = (0..25)
        .map(|n| format!("a{n} ").len() + format!("b{n} ").len())
        .sum();
    a.call(json!({"op": "waitLength", "length": total, "timeoutMs": 30000}))
        .await;
    b.call(json!({"op": "waitLength", "length": total, "timeoutMs": 30000}))
        .await;
    let text = a.text().await;
    assert_eq!(b.text().await, text, "both replicas converge");
    assert!(text.contains("a24 ") && text.contains("b24 "));

    // The server holds exactly that, and a late joiner receives everything.
    let server_text = eventually("server content", Duration::from_secs(10), || {
        let (http, doc, text) = (&http, &doc, &text);
        async move {
            let content = http.content_text(doc, "alice").await;
            (content == *text).then_some(content)
        }
    })
    .await;
    assert_eq!(server_text, text);
    let mut late = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    late.wait_text(&text).await;

    // Every update sent is an event: 50 edits, nothing else.
    assert_eq!(edit_count(&env.pool, &doc).await, 50);

    // A read-only socket's edits are refused and never stored.
    let mut viewer = NodeClient::open(&server.ws(), &doc, &mint_read_only("bob")).await;
    viewer.wait_text(&text).await;
    viewer.insert(Some(0), "VIEWER WAS HERE ").await;
    a.insert(None, "!").await;
    let expected = format!("{text}!");
    viewer
        .wait_text(&format!("VIEWER WAS HERE {expected}"))
        .await;
    b.wait_text(&expected).await;
    assert_eq!(http.content_text(&doc, "alice").await, expected);
    assert_eq!(edit_count(&env.pool, &doc).await, 51);
    let seen = viewer.call(json!({"op": "closes"})).await;
    assert!(
        seen["denied"].to_string().contains("read-only"),
        "the viewer is told its edits are refused: {seen}"
    );
}
