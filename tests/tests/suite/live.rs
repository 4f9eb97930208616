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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_editing_loses_nothing_clients_reconnect_and_converge() {
    let env = TestEnv::new().await;
    let mut server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (_, doc) = http.workspace_with_document("alice").await;
    let mut a = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    let mut b = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    for n in 0..100 {
        a.insert(None, &format!("{n},")).await;
    }
    // Kill while edits are still streaming in.
    server.kill();
    for n in 100..120 {
        a.insert(None, &format!("{n},")).await;
    }
    server.restart().await;
    for n in 120..150 {
        b.insert(Some(0), &format!("[{n}]")).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let (ta, tb) = (a.text().await, b.text().await);
        if ta == tb && ta.contains("119,") && ta.contains("[149]") {
            break ta;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replicas did not converge: {ta:?} vs {tb:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for n in 0..120 {
        assert!(text.contains(&format!("{n},")), "edit {n} survived");
    }
    eventually(
        "the server to hold everything",
        Duration::from_secs(15),
        || {
            let (http, doc, text) = (&http, &doc, &text);
            async move { (http.content_text(doc, "alice").await == *text).then_some(()) }
        },
    )
    .await;
    let mut fresh = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    fresh.wait_text(&text).await;
}

fn trace_path() -> Option<std::path::PathBuf> {
    let shared = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/traces/automerge-paper.json.gz");
    shared.exists().then_some(shared)
}

/// Writes a small generated trace in the shared format (for machines without ../shared).
fn generated_trace() -> std::path::PathBuf {
    use std::io::Write;
    let mut text: Vec<char> = vec![];
    let mut txns = vec![];
    let mut seed: u64 = 42;
    for n in 0..3000 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let position = (seed >> 33) as usize % (text.len() + 1);
        let patch = if n % 7 == 6 && position < text.len() {
            text.remove(position);
            json!([position, 1, ""])
        } else {
            let c = ['a', 'b', 'é', ' ', '文', '\n'][(seed >> 20) as usize % 6];
            text.insert(position, c);
            json!([position, 0, c.to_string()])
        };
        txns.push(json!({"time": "", "patches": [patch]}));
    }
    let trace =
        json!({"startContent": "", "endContent": text.iter().collect::<String>(), "txns": txns});
    let path = std::env::temp_dir().join(format!("collab-trace-{}.json.gz", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    gz.write_all(trace.to_string().as_bytes()).unwrap();
    gz.finish().unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_editing_trace_through_a_stock_client_gives_exactly_its_final_text() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (_, doc) = http.workspace_with_document("alice").await;
    let path = trace_path().unwrap_or_else(generated_trace);
    let mut writer = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    let replay = writer
        .call(json!({"op": "replay", "path": path.display().to_string()}))
        .await;
    assert_eq!(
        replay["matches"], true,
        "the client's own replay is correct"
    );
    let expected = replay["expected"].as_str().unwrap().to_owned();
    let sent = replay["count"].as_i64().unwrap();
    writer
        .call(json!({"op": "bufferedDrain", "timeoutMs": 120000}))
        .await;
    // Each transaction is one update, and the log holds each once — unless the stock client
    // reconnected (it does after 30 s without a message from the server, and then resends its
    // state as one update), which the server's keepalive exists to prevent.
    let mut durable = 0;
    for _ in 0..480 {
        durable = edit_count(&env.pool, &doc).await;
        let connections = writer.call(json!({"op": "connections"})).await;
        assert_eq!(
            connections["connects"], 1,
            "the stock client reconnected while the server read its updates: {connections}"
        );
        if durable >= sent {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(durable, sent, "every update durable, each once");
    assert_eq!(http.content_text(&doc, "alice").await, expected);
    let mut reader = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    reader
        .call(json!({"op": "waitText", "text": expected, "timeoutMs": 60000}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_socket_gets_keepalives_and_only_when_quiet() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[("COLLAB_WS_KEEPALIVE_SECS", "2")]).await;
    let http = Http::new(server.http());
    let (_, doc) = http.workspace_with_document("alice").await;
    let path = format!("/v1/sync/{doc}?token={}", mint("alice", 3600));
    let mut socket = raw_socket(&server.ws(), &path).await;
    // An empty awareness update: a message for the client's silence timer, a change to nothing.
    let keepalive = [1u8, 1, 0];
    let next_keepalive = async |socket: &mut _| -> std::time::Instant {
        let read = async {
            loop {
                match StreamExt::next(socket).await {
                    Some(Ok(Message::Binary(frame))) if frame[..] == keepalive => {
                        return std::time::Instant::now()
                    }
                    Some(Ok(_)) => {}
                    other => panic!("the socket ended: {other:?}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a keepalive within 10 s of silence")
    };
    let first = next_keepalive(&mut socket).await;
    let second = next_keepalive(&mut socket).await;
    assert!(
        second - first >= Duration::from_millis(1800),
        "one per quiet period, not a stream: {:?}",
        second - first
    );
    // While the server has something to send, it sends that instead: with another client
    // typing every 100 ms, this socket gets its updates and, from the first one, no keepalive.
    let mut typist = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    let typing = async {
        for n in 0..40 {
            typist.insert(None, &n.to_string()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let watching = async {
        let (mut updates, mut keepalives) = (0, 0);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout_at(deadline, StreamExt::next(&mut socket)).await
        {
            if let Message::Binary(frame) = message {
                match frame[..] {
                    [1, 1, 0] if updates > 0 => keepalives += 1,
                    [0, 2, ..] => updates += 1,
                    _ => {}
                }
            }
        }
        (updates, keepalives)
    };
    let ((), (updates, keepalives)) = tokio::join!(typing, watching);
    assert!(updates >= 10, "the typist's updates arrived: {updates}");
    assert_eq!(keepalives, 0, "no keepalive while updates flow");
    socket.close(None).await.ok();
    let _ = SinkExt::<Message>::flush(&mut socket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_two_instances_converge_through_nats() {
    let env = TestEnv::new().await;
    let one = CollabProcess::start(&env, &[]).await;
    let two = CollabProcess::start(&env, &[]).await;
    let http = Http::new(one.http());
    let (_, doc) = http.workspace_with_document("alice").await;
    let mut a = NodeClient::open(&one.ws(), &doc, &mint("alice", 3600)).await;
    let mut b = NodeClient::open(&two.ws(), &doc, &mint("alice", 3600)).await;
    for n in 0..30 {
        a.insert(Some(0), &format!("<{n}>")).await;
        b.insert(None, &format!("({n})")).await;
    }
    let total: usize = (0..30)
        .map(|n| format!("<{n}>").len() + format!("({n})").len())
        .sum();
    a.call(json!({"op": "waitLength", "length": total, "timeoutMs": 30000}))
        .await;
    b.call(json!({"op": "waitLength", "length": total, "timeoutMs": 30000}))
        .await;
    let text = a.text().await;
    assert_eq!(b.text().await, text);
    // Both instances hold the same state, and the log holds each update once.
    assert_eq!(
        Http::new(two.http()).content_text(&doc, "alice").await,
        text
    );
    assert_eq!(edit_count(&env.pool, &doc).await, 60);
}

pub(crate) async fn raw_socket(
    base_ws: &str,
    path: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("{base_ws}{path}"))
        .await
        .expect("the upgrade succeeds");
    socket
}

/// Reads until the server closes; returns (code, reason).
pub(crate) async fn close_of(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> (u16, String) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let read = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Ok(Message::Close(None)) | Err(_) => return (0, String::new()),
                Ok(_) => {}
            }
        }
        (0, String::new())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closes the socket")
}

pub(crate) fn update_frame(update: &[u8]) -> Vec<u8> {
    // messageSync, messageYjsUpdate, varUint length, bytes (lengths < 128 here)
    let mut frame = vec![0, 2];
    let mut length = update.len();
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            frame.push(byte);
            break;
        }
        frame.push(byte | 0x80);
    }
    frame.extend_from_slice(update);
    frame
}

pub(crate) fn text_update(text: &str) -> Vec<u8> {
    use yrs::{ReadTxn, Text, Transact};
    let doc = yrs::Doc::new();
    let root = doc.get_or_insert_text("text");
    root.insert(&mut doc.transact_mut(), 0, text);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    update
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sockets_are_refused_with_a_reason_and_store_nothing() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[("COLLAB_MAX_UPDATE_BYTES", "2000")]).await;
    let http = Http::new(server.http());
    let (_, doc) = http.workspace_with_document("alice").await;
    let token = mint("alice", 3600);

    let mut anonymous = raw_socket(&server.ws(), &format!("/v1/sync/{doc}")).await;
    let (code, reason) = close_of(&mut anonymous).await;
    assert_eq!(code, 4401, "{reason}");
    assert!(reason.contains("token"));
    let mut forged = raw_socket(&server.ws(), &format!("/v1/sync/{doc}?token=abc.def.ghi")).await;
    assert_eq!(close_of(&mut forged).await.0, 4401);
    let mut expired = raw_socket(
        &server.ws(),
        &format!("/v1/sync/{doc}?token={}", mint("alice", -3600)),
    )
    .await;
    assert_eq!(
        close_of(&mut expired).await,
        (4401, "token has expired".into())
    );
    let mut unknown = raw_socket(
        &server.ws(),
        &format!("/v1/sync/{}?token={token}", uuid::Uuid::now_v7()),
    )
    .await;
    assert_eq!(
        close_of(&mut unknown).await,
        (4404, "document not found".into())
    );
    let mut outsider = raw_socket(
        &server.ws(),
        &format!("/v1/sync/{doc}?token={}", mint("mallory", 3600)),
    )
    .await;
    assert_eq!(
        close_of(&mut outsider).await.0,
        4404,
        "no access looks like no document"
    );

    let path = format!("/v1/sync/{doc}?token={token}");
    let mut garbage = raw_socket(&server.ws(), &path).await;
    garbage
        .send(Message::Binary(
            update_frame(&[0xff, 0xff, 0xff, 0x01, 0x07]).into(),
        ))
        .await
        .unwrap();
    let (code, reason) = close_of(&mut garbage).await;
    assert_eq!(code, 1007, "{reason}");
    let mut oversized = raw_socket(&server.ws(), &path).await;
    let big = text_update(&"x".repeat(5000));
    let mut frame = vec![0, 2];
    frame.extend_from_slice(&[0x80 | (big.len() & 0x7f) as u8, (big.len() >> 7) as u8]);
    frame.extend_from_slice(&big);
    oversized.send(Message::Binary(frame.into())).await.unwrap();
    let (code, reason) = close_of(&mut oversized).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("2000"), "{reason}");
    let mut text_frames = raw_socket(&server.ws(), &path).await;
    text_frames
        .send(Message::Text("hello".into()))
        .await
        .unwrap();
    assert_eq!(close_of(&mut text_frames).await.0, 1003);
    assert_eq!(edit_count(&env.pool, &doc).await, 0, "nothing was stored");

    // Several messages in one inbound frame are all handled; a good update is stored.
    let mut good = raw_socket(&server.ws(), &path).await;
    let mut frame = update_frame(&text_update("hi"));
    frame.extend_from_slice(&[3]); // query awareness, in the same frame
    good.send(Message::Binary(frame.into())).await.unwrap();
    eventually(
        "the good update to be stored",
        Duration::from_secs(10),
        || {
            let (pool, doc) = (&env.pool, &doc);
            async move { (edit_count(pool, doc).await == 1).then_some(()) }
        },
    )
    .await;
    assert_eq!(http.content_text(&doc, "alice").await, "hi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_and_closing_a_thousand_documents_leaves_no_room_behind() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;
    let mut documents = vec![];
    for n in 0..1000 {
        let created = http
            .call(
                reqwest::Method::POST,
                &format!("/v1/workspaces/{ws}/documents"),
                "alice",
                Some(json!({"title": format!("D{n}")})),
            )
            .await;
        documents.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let token = mint("alice", 3600);
    let base = server.ws();
    let opened = futures::stream::iter(documents)
        .map(|doc| {
            let (base, token) = (base.clone(), token.clone());
            async move {
                let mut socket = raw_socket(&base, &format!("/v1/sync/{doc}?token={token}")).await;
                // The greeting (sync step 1) proves the room was loaded.
                let first = socket.next().await.unwrap().unwrap();
                assert!(matches!(first, Message::Binary(ref b) if b[0] == 0 && b[1] == 0));
                socket.send(Message::Close(None)).await.unwrap();
                while socket.next().await.is_some() {}
            }
        })
        .buffer_unordered(50)
        .count()
        .await;
    assert_eq!(opened, 1000);
    let rooms = |metrics: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with("collab_live_rooms "))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    };
    eventually("every room to unload", Duration::from_secs(30), || {
        let url = format!("{}/metrics", server.http());
        async move {
            let metrics = reqwest::get(url).await.ok()?.text().await.ok()?;
            (rooms(&metrics)? == 0.0).then_some(())
        }
    })
    .await;
    let loads: f64 = reqwest::get(format!("{}/metrics", server.http()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .find(|l| l.starts_with("collab_room_load_seconds_count"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap();
    assert!(loads >= 1000.0, "each document was loaded ({loads})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_can_be_read_and_updated_over_http_and_live_sessions_see_it() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    let mut live = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    live.insert(None, "typed live").await;
    // Stored by the server (what follows counts edits), not only in the client's own copy.
    eventually(
        "the live edit to be stored",
        Duration::from_secs(20),
        || async { (http.content_text(&doc, "alice").await == "typed live").then_some(()) },
    )
    .await;

    // A binary update over HTTP reaches the live session.
    let post = |user: &str, body: Vec<u8>, content_type: &str| {
        http.client
            .post(format!("{}/v1/documents/{doc}/updates", http.base))
            .bearer_auth(mint(user, 3600))
            .header("content-type", content_type.to_owned())
            .body(body)
            .send()
    };
    let update = {
        use yrs::{ReadTxn, Text, Transact};
        let remote = yrs::Doc::new();
        remote.get_or_insert_text("notes").insert(
            &mut remote.transact_mut(),
            0,
            "from an integration",
        );
        let bytes = remote
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        bytes
    };
    let response = post("alice", update, "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["position"].as_i64().unwrap() > 0);
    live.call(json!({"op": "waitText", "root": "notes", "text": "from an integration"}))
        .await;

    // Bad bytes, wrong content type, or a guest: refused, nothing stored.
    let before = edit_count(&env.pool, &doc).await;
    let bad = post(
        "alice",
        vec![0xff, 0xff, 0xff, 0x01, 0x07],
        "application/octet-stream",
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(
        bad.json::<serde_json::Value>().await.unwrap()["code"],
        "invalid_update"
    );
    assert_eq!(
        post("alice", vec![0, 0], "application/json")
            .await
            .unwrap()
            .status(),
        415
    );
    let guest = http
        .call(
            reqwest::Method::POST,
            &format!("/v1/workspaces/{ws}/members"),
            "alice",
            Some(json!({"user_id": "gus", "role": "guest"})),
        )
        .await;
    assert_eq!(guest.status, 201);
    let status = post("gus", text_update("guest"), "application/octet-stream")
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404, "guests see only what is shared with them");
    let shared = http
        .call(
            reqwest::Method::PUT,
            &format!("/v1/documents/{doc}/permissions/gus"),
            "alice",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(shared.status, 200, "{}", shared.body);
    let status = post("gus", text_update("guest"), "application/octet-stream")
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403, "viewers do not write");
    assert_eq!(
        post("mallory", text_update("x"), "application/octet-stream")
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(edit_count(&env.pool, &doc).await, before);

    // Text, JSON and binary state.
    let get = |path: String| {
        http.client
            .get(format!("{}{path}", http.base))
            .bearer_auth(mint("gus", 3600))
            .send()
    };
    let json: serde_json::Value = get(format!("/v1/documents/{doc}/content?format=json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        json,
        json!({"notes": "from an integration", "text": "typed live"})
    );
    let text = get(format!(
        "/v1/documents/{doc}/content?format=text&root=notes"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(text, "from an integration");
    assert_eq!(
        get(format!("/v1/documents/{doc}/content?format=xml"))
            .await
            .unwrap()
            .status(),
        400
    );
    let state = get(format!("/v1/documents/{doc}/state")).await.unwrap();
    assert_eq!(state.headers()["content-type"], "application/octet-stream");
    let bytes = state.bytes().await.unwrap();
    let replica = yrs::Doc::new();
    {
        use yrs::updates::decoder::Decode;
        use yrs::{GetString, Transact};
        replica
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(&bytes).unwrap())
            .unwrap();
        let text = replica.get_or_insert_text("text");
        assert_eq!(text.get_string(&replica.transact()), "typed live");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_relayed_logged_and_expires_without_renewal() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[("COLLAB_AWARENESS_TIMEOUT_SECS", "1")]).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    http.call(
        reqwest::Method::POST,
        &format!("/v1/workspaces/{ws}/members"),
        "alice",
        Some(json!({"user_id": "bob", "role": "member"})),
    )
    .await;
    let mut a = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    let mut b = NodeClient::open(&server.ws(), &doc, &mint("bob", 3600)).await;
    a.call(json!({"op": "awareness", "state": {"user": {"name": "Alice"}, "cursor": 3}}))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let peers = b.call(json!({"op": "peers"})).await;
        if peers["states"].to_string().contains("Alice") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never saw alice's cursor: {peers}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let present = eventually("both users to be listed", Duration::from_secs(10), || {
        let http = &http;
        let doc = &doc;
        async move {
            let r = http
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/documents/{doc}/presence"),
                    "alice",
                    None,
                )
                .await;
            (r.body["users"] == json!(["alice", "bob"])).then_some(r.body)
        }
    })
    .await;
    assert_eq!(present["sessions"].as_array().unwrap().len(), 2);

    // A raw client announces itself once and then goes silent: the server removes it.
    let mut ghost = raw_socket(
        &server.ws(),
        &format!("/v1/sync/{doc}?token={}", mint("alice", 3600)),
    )
    .await;
    let state = r#"{"user":{"name":"Ghost"}}"#;
    let mut awareness = vec![1u8, 0, 1]; // messageAwareness, length (patched below), 1 client
    awareness.extend_from_slice(&[0xb9, 0x60]); // client id 12345
    awareness.push(1); // clock
    awareness.push(state.len() as u8);
    awareness.extend_from_slice(state.as_bytes());
    awareness[1] = (awareness.len() - 2) as u8;
    ghost.send(Message::Binary(awareness.into())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = false;
    loop {
        let peers = b.call(json!({"op": "peers"})).await.to_string();
        if peers.contains("Ghost") {
            seen = true;
        } else if seen {
            break; // removed after the timeout, with the socket still open
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ghost state was not {} : {peers}",
            if seen { "removed" } else { "relayed" }
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Leaving removes alice from the list; the log has joined, changed, timed-out, left.
    a.kill().await;
    drop(ghost);
    eventually(
        "alice to leave the presence list",
        Duration::from_secs(15),
        || {
            let http = &http;
            let doc = &doc;
            async move {
                let r = http
                    .call(
                        reqwest::Method::GET,
                        &format!("/v1/documents/{doc}/presence"),
                        "bob",
                        None,
                    )
                    .await;
                (r.body["users"] == json!(["bob"])).then_some(())
            }
        },
    )
    .await;
    let kinds: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT kind FROM presence_log WHERE document_id = $1::uuid ORDER BY kind",
    )
    .bind(&doc)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(kinds, vec!["changed", "joined", "left", "timed_out"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_compact_the_history_inline_or_in_the_blob_store_and_loading_uses_them() {
    let env = TestEnv::new().await;
    let blob_dir =
        std::env::temp_dir().join(format!("collab-snapshot-blobs-{}", uuid::Uuid::new_v4()));
    let blob_dir_text = blob_dir.display().to_string();
    let mut server = CollabProcess::start(
        &env,
        &[
            ("COLLAB_CONTENT_SNAPSHOT_EVERY", "40"),
            ("COLLAB_SNAPSHOT_INLINE_MAX_BYTES", "300"),
            ("COLLAB_BLOB_DIR", &blob_dir_text),
        ],
    )
    .await;
    let http = Http::new(server.http());
    let (_, doc) = http.workspace_with_document("alice").await;
    let mut a = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    for n in 0..100 {
        a.insert(None, &format!("{n} ")).await;
    }
    let text = a.text().await;
    // The last snapshot (at version 100, every 40 or once quiet): an earlier one's blob
    // is deleted when the next replaces it, so only the last can be checked on disk.
    let snapshot = eventually("a snapshot at version 100", Duration::from_secs(20), || {
        let pool = &env.pool;
        let doc = &doc;
        async move {
            let row: Option<(i64, Option<String>, i64)> = sqlx::query_as(
                "SELECT version, blob_key, size_bytes FROM document_snapshots WHERE document_id = $1::uuid",
            )
            .bind(doc)
            .fetch_optional(pool)
            .await
            .unwrap();
            row.filter(|(version, _, _)| *version == 100)
        }
    })
    .await;
    let (_, blob_key, size) = snapshot;
    assert!(size > 300);
    let key = blob_key.expect("a large snapshot lives in the blob store");
    assert!(blob_dir.join(&key).exists(), "blob {key} is on disk");
    // The history stays: every edit is still an event.
    assert_eq!(edit_count(&env.pool, &doc).await, 100);

    // A restarted server loads snapshot + tail and serves the same text.
    a.kill().await;
    assert!(server.terminate().await, "clean shutdown");
    server.restart().await;
    assert_eq!(http.content_text(&doc, "alice").await, text);
    let mut fresh = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    fresh.wait_text(&text).await;
    std::fs::remove_dir_all(blob_dir).ok();
}

/// The README's live-editing example runs as written against the real binary, and the
/// README shows exactly the file that ran.
#[tokio::test]
async fn the_readme_example_runs_as_written() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let example = std::fs::read_to_string(root.join("tests/node/readme_example.mjs")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```js\n{}```", example)),
        "README.md shows tests/node/readme_example.mjs verbatim"
    );
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let output = tokio::process::Command::new("node")
        .arg("tests/node/readme_example.mjs")
        .current_dir(&root)
        .env("COLLAB_URL", server.http())
        .env("COLLAB_TOKEN", mint("alice", 3600))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the example finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.starts_with("ok: document "),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let edits: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'DocumentEdited'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(edits, 1, "the one insert is stored, once");
}

/// A document's content at a past content version: the newest snapshot at or below it
/// plus the updates up to it (what history will serve).
#[tokio::test]
async fn a_document_loads_as_it_was_at_a_past_version() {
    let app = collab_tests::TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let doc = app.create_document(&ws, "alice", "Plan").await;
    // Three edits by one client, each on top of the previous.
    let ydoc = yrs::Doc::with_client_id(42);
    let text = ydoc.get_or_insert_text("text");
    for word in ["one ", "two ", "three"] {
        use yrs::{ReadTxn, Text, Transact};
        let before = ydoc.transact().state_vector();
        let len = text.len(&ydoc.transact());
        text.insert(&mut ydoc.transact_mut(), len, word);
        let update = ydoc.transact().encode_state_as_update_v1(&before);
        let r = app
            .http
            .post(app.url(&format!("/v1/documents/{doc}/updates")))
            .bearer_auth(collab_tests::TestApp::token("alice"))
            .header("content-type", "application/octet-stream")
            .body(update)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let document = collab_domain::DocumentId::parse(&doc).unwrap();
    let deps = app.live.rooms.deps();
    for (version, expected) in [(1, "one "), (2, "one two "), (3, "one two three")] {
        let loaded = collab_live::rooms::load_state(deps, document, Some(version))
            .await
            .unwrap();
        assert_eq!(loaded.version, version);
        let text = {
            use yrs::{GetString, Transact};
            loaded
                .doc
                .get_or_insert_text("text")
                .get_string(&loaded.doc.transact())
        };
        assert_eq!(text, expected, "at version {version}");
    }
}

/// y-websocket closes a connection on which nothing arrived for 30 s (and resends its state
/// on the next): a lone editor on a quiet document hit that every 30 s until the server
/// sent keepalives. Takes 35 s, most of it waiting for a reconnect that must not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_stock_client_on_a_quiet_document_stays_connected() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (_, doc) = http.workspace_with_document("alice").await;
    let mut client = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(35);
    while tokio::time::Instant::now() < quiet_until {
        let connections = client.call(json!({"op": "connections"})).await;
        assert_eq!(
            connections["connects"], 1,
            "the client reconnected on a quiet socket: {connections}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
