//! Analytics consumers and auditors: replay (NDJSON), live tail (SSE), the catalogue,
//! the audit trail, online verification against every kind of tampering, and signed
//! checkpoints.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use collab_domain::audit::Report;
use collab_projections::audit::Audit;
use collab_tests::{eventually, TestApp, TestEnv};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn edit(app: &TestApp, document: &str, user: &str, text: &str) -> i64 {
    app.write_text(document, user, text).await
}

/// GET with a bearer (a user's token or an API key); the body's NDJSON lines.
async fn ndjson(app: &TestApp, path: &str, bearer: &str) -> (StatusCode, Vec<Value>, String) {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let lines = if status == StatusCode::OK {
        text.lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    } else {
        vec![]
    };
    (status, lines, text)
}

fn positions(lines: &[Value]) -> Vec<i64> {
    lines
        .iter()
        .map(|l| l["position"].as_i64().unwrap())
        .collect()
}

async fn service_key(app: &TestApp, workspace: &str, scopes: &[&str]) -> String {
    let created = app
        .post(
            &format!("/v1/workspaces/{workspace}/service-accounts"),
            "alice",
            json!({ "name": "consumer", "scopes": scopes }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn replay_streams_one_workspaces_events_in_order_with_every_envelope_field() {
    let app = TestApp::spawn().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let document = app
        .create_document(&workspace, "alice", "Budget 2026")
        .await;
    edit(&app, &document, "alice", "hello").await;
    app.add_member(&workspace, "alice", "carol", "member").await;
    app.add_member(&workspace, "alice", "audrey", "auditor")
        .await;
    // Another tenant, interleaved.
    let (other, _) = app.create_workspace("bob", "Other").await;
    let other_doc = app.create_document(&other, "bob", "Secret").await;
    edit(&app, &other_doc, "bob", "secret").await;
    let last = edit(&app, &document, "alice", "again").await;

    let token = TestApp::token("alice");
    let base = format!("/v1/workspaces/{workspace}/events");
    let (status, lines, _) = ndjson(&app, &base, &token).await;
    assert_eq!(status, 200);
    let all = positions(&lines);
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "in position order: {all:?}"
    );
    assert_eq!(*all.last().unwrap(), last);
    assert_eq!(
        lines.len(),
        7,
        "workspace + owner, document, 2 edits, 2 members: {lines:?}"
    );
    for line in &lines {
        assert_eq!(
            line["workspace_id"],
            workspace.as_str(),
            "only this workspace"
        );
        for field in [
            "position",
            "event_id",
            "stream_id",
            "stream_version",
            "workspace_id",
            "type",
            "schema_version",
            "actor",
            "correlation_id",
            "causation_id",
            "recorded_at",
            "prev_hash",
            "hash",
            "data",
        ] {
            assert!(line.get(field).is_some(), "{field} missing from {line}");
        }
        assert_eq!(line["hash"].as_str().unwrap().len(), 64);
        let at = line["recorded_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(at).is_ok() && at.len() == 27,
            "{at}"
        );
    }
    let edit_line = lines
        .iter()
        .find(|l| l["type"] == "DocumentEdited")
        .unwrap();
    let bytes = base64_decode(edit_line["data"]["update"].as_str().unwrap());
    assert!(
        bytes.windows(5).any(|w| w == b"hello"),
        "Yjs updates as base64: {bytes:?}"
    );
    assert_eq!(lines[0]["prev_hash"], Value::Null);
    assert_eq!(lines[0]["data"]["name"], "Acme");

    // Raw payloads, resumption, limits, filters.
    let (_, raw, _) = ndjson(&app, &format!("{base}?payload=raw&limit=2"), &token).await;
    assert_eq!(raw.len(), 2);
    assert!(raw[0].get("data").is_none() && raw[0]["payload"].is_string());
    let (_, after, _) = ndjson(&app, &format!("{base}?after={}", all[3]), &token).await;
    assert_eq!(positions(&after), all[4..].to_vec());
    let (_, edits, _) = ndjson(&app, &format!("{base}?type=DocumentEdited"), &token).await;
    assert_eq!(edits.len(), 2);
    let (_, content, _) = ndjson(
        &app,
        &format!("{base}?category=content&actor=user:alice"),
        &token,
    )
    .await;
    assert_eq!(positions(&content), positions(&edits));
    let (_, members, _) = ndjson(
        &app,
        &format!("{base}?type=MemberAdded&type=WorkspaceRenamed&stream=workspace-{workspace}"),
        &token,
    )
    .await;
    assert_eq!(members.len(), 3, "owner, carol, audrey");
    // Another workspace's stream named as a filter: nothing leaks.
    let (status, leaked, _) =
        ndjson(&app, &format!("{base}?stream=content-{other_doc}"), &token).await;
    assert_eq!((status, leaked.len()), (StatusCode::OK, 0));

    // Bad filters are refused, not silently empty.
    for bad in [
        "type=Nope",
        "category=nope",
        "actor=alice",
        "stream=x",
        "after=-1",
        "limit=0",
        "payload=xml",
        "colour=red",
    ] {
        let (status, _, text) = ndjson(&app, &format!("{base}?{bad}"), &token).await;
        assert_eq!(status, 400, "{bad}: {text}");
        assert!(text.contains("invalid_parameter"), "{text}");
    }

    // Who may read: owners, admins, auditors and keys with events:read; everyone else 404.
    let (status, _, _) = ndjson(&app, &base, &TestApp::token("audrey")).await;
    assert_eq!(status, 200);
    for outsider in ["carol", "bob", "mallory"] {
        let (status, _, _) = ndjson(&app, &base, &TestApp::token(outsider)).await;
        assert_eq!(status, 404, "{outsider}");
    }
    let reader = service_key(&app, &workspace, &["events:read"]).await;
    let (status, by_key, _) = ndjson(&app, &base, &reader).await;
    assert_eq!(
        (status, by_key.len()),
        (StatusCode::OK, 8),
        "its own creation is an event too"
    );
    let docs_only = service_key(&app, &workspace, &["documents:read"]).await;
    assert_eq!(ndjson(&app, &base, &docs_only).await.0, 404);
    let (status, _, _) = ndjson(&app, &format!("/v1/workspaces/{other}/events"), &reader).await;
    assert_eq!(status, 404, "a key reads only its own workspace");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn the_catalogue_lists_every_event_type_with_described_fields() {
    let app = TestApp::spawn().await;
    let response = app
        .call(reqwest::Method::GET, "/v1/events/catalogue", None, None)
        .await;
    assert_eq!(response.status, 200);
    let events = response.body["events"].as_array().unwrap();
    let names: BTreeSet<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for expected in [
        "WorkspaceCreated",
        "DocumentShared",
        "DocumentEdited",
        "AuditCheckpointSigned",
    ] {
        assert!(names.contains(expected), "{expected} missing");
    }
    let edited = events
        .iter()
        .find(|e| e["type"] == "DocumentEdited")
        .unwrap();
    assert_eq!(edited["category"], "content");
    assert_eq!(edited["fields"][1]["name"], "update");
    assert_eq!(edited["fields"][1]["type"], "base64 bytes");
    assert!(edited["schema"]["properties"]["update"].is_object());
}

/// Reads an SSE response until `done` says so (bounded by `timeout`); returns the events.
async fn read_sse(
    response: reqwest::Response,
    timeout: Duration,
    mut done: impl FnMut(&[eventsource_stream::Event]) -> bool,
) -> Vec<eventsource_stream::Event> {
    let mut stream = response.bytes_stream().eventsource();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&seen) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(event))) => seen.push(event),
            Ok(_) => break,
            Err(_) => panic!("timed out after {} events: {:?}", seen.len(), seen.last()),
        }
    }
    seen
}

async fn open_live(
    app: &TestApp,
    workspace: &str,
    user: &str,
    last_event_id: Option<i64>,
) -> reqwest::Response {
    let mut request = app
        .http
        .get(app.url(&format!("/v1/workspaces/{workspace}/events/live")))
        .bearer_auth(TestApp::token(user));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    response
}

#[tokio::test]
async fn a_live_tail_joining_during_writes_gets_every_position_once_in_order() {
    let app = TestApp::spawn().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let (other, _) = app.create_workspace("bob", "Other").await;
    let mut documents = vec![];
    for i in 0..4 {
        documents.push(
            app.create_document(&workspace, "alice", &format!("Doc {i}"))
                .await,
        );
    }
    let noise = app.create_document(&other, "bob", "Noise").await;

    // Eight writers append while the subscriber connects mid-way.
    let app = std::sync::Arc::new(app);
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..8 {
        let app = app.clone();
        let document = if writer == 7 {
            noise.clone()
        } else {
            documents[writer % 4].clone()
        };
        let user = if writer == 7 { "bob" } else { "alice" };
        writers.spawn(async move {
            for i in 0..25 {
                edit(&app, &document, user, &format!("w{writer}-{i} ")).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(50)).await; // let some writes land first
    let response = open_live(&app, &workspace, "alice", Some(0)).await;
    while writers.join_next().await.is_some() {}
    let (_, expected, _) = ndjson(
        &app,
        &format!("/v1/workspaces/{workspace}/events"),
        &TestApp::token("alice"),
    )
    .await;
    let expected = positions(&expected);
    let last = *expected.last().unwrap();
    let events = read_sse(response, Duration::from_secs(30), |seen| {
        seen.last().is_some_and(|e| e.id == last.to_string())
    })
    .await;
    let got: Vec<i64> = events.iter().map(|e| e.id.parse().unwrap()).collect();
    assert_eq!(
        got, expected,
        "every committed position of the workspace, once, in order"
    );
    for event in &events {
        let line: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(line["workspace_id"], workspace.as_str());
        assert_eq!(line["position"].to_string(), event.id);
    }
}

#[tokio::test]
async fn a_slow_live_tail_is_told_it_lagged_and_resumes_exactly_with_last_event_id() {
    let env = TestEnv::new().await;
    let app = TestApp::spawn_with(env, |s| s.live_tail_buffer = 4).await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let document = app.create_document(&workspace, "alice", "Doc").await;
    let first = edit(&app, &document, "alice", "a").await;
    let response = open_live(&app, &workspace, "alice", None).await;
    let mut stream = response.bytes_stream().eventsource();
    // Caught up and following: the next edit arrives live.
    let mut seen = vec![];
    let probe = edit(&app, &document, "alice", "b").await;
    while seen.last() != Some(&probe) {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("live event in time")
            .unwrap()
            .unwrap();
        seen.push(event.id.parse::<i64>().unwrap());
    }
    assert!(seen.contains(&first));

    // A burst far larger than the buffer, committed at once.
    let burst = collab_store::BatchAppend {
        stream: collab_domain::StreamId::new(
            collab_domain::StreamCategory::Content,
            uuid::Uuid::parse_str(&document).unwrap(),
        ),
        expected: collab_store::ExpectedVersion::Any,
        context: collab_store::AppendContext {
            workspace_id: collab_domain::WorkspaceId::parse(&workspace).unwrap(),
            actor: collab_domain::Actor::Service("test".into()),
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: None,
        },
        events: (0..2000)
            .map(|i| {
                use collab_domain::EventCodec;
                let event = collab_domain::content::ContentEvent::DocumentEdited(
                    collab_domain::content::DocumentEdited {
                        client_id: 1,
                        update: vec![i as u8],
                        origin: collab_domain::content::EditOrigin::Http,
                    },
                );
                collab_store::NewEvent {
                    event_type: event.event_type().into(),
                    schema_version: event.schema_version(),
                    payload: event.encode(),
                }
            })
            .collect(),
    };
    let appended = app
        .aggregates
        .events()
        .append_batch(vec![burst])
        .await
        .unwrap();
    let burst_last = appended[0].last_position();
    let mut delivered = *seen.last().unwrap();
    let lagged = loop {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("events or lagged in time")
            .expect("the stream ends only after lagged")
            .unwrap();
        if event.event == "lagged" {
            break event;
        }
        let position: i64 = event.id.parse().unwrap();
        assert_eq!(position, delivered + 1, "no gap before lagging");
        delivered = position;
    };
    let body: Value = serde_json::from_str(&lagged.data).unwrap();
    assert_eq!(body["resume_after"], delivered);
    assert_eq!(lagged.id, delivered.to_string());
    assert!(
        stream.next().await.is_none(),
        "the stream closes after lagged"
    );
    assert!(
        delivered < burst_last,
        "it lagged before the end of the burst"
    );

    // Reconnecting with Last-Event-ID resumes exactly after the last delivered event.
    let response = open_live(&app, &workspace, "alice", Some(delivered)).await;
    let events = read_sse(response, Duration::from_secs(30), |seen| {
        seen.last().is_some_and(|e| e.id == burst_last.to_string())
    })
    .await;
    let got: Vec<i64> = events.iter().map(|e| e.id.parse().unwrap()).collect();
    assert_eq!(got, ((delivered + 1)..=burst_last).collect::<Vec<_>>());
    assert!(app
        .metrics_text()
        .await
        .contains("collab_live_tail_lagged_total"));
}

async fn audit(app: &TestApp, workspace: &str, query: &str, position: i64) -> Vec<Value> {
    let response = app
        .get_at(
            &format!("/v1/workspaces/{workspace}/audit?{query}"),
            "alice",
            position,
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body["entries"].as_array().unwrap().clone()
}

fn summaries(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect()
}

async fn audit_rows(pool: &sqlx::PgPool) -> Vec<(i64, String, String, i32, i64, i64)> {
    sqlx::query_as(
        "SELECT position, actor, summary, edits, first_version, last_version \
         FROM rm_audit_entries ORDER BY position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_audit_trail_says_who_did_what_and_groups_edits() {
    let app = TestApp::spawn().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let document = app
        .create_document(&workspace, "alice", "Budget 2026")
        .await;
    let share = app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/documents/{document}/permissions/user:bob"),
            Some("alice"),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(share.status.as_u16() / 100, 2, "{}", share.body);
    for text in ["a", "b", "c"] {
        edit(&app, &document, "alice", text).await;
    }
    app.add_member(&workspace, "alice", "bob", "member").await;
    let last = edit(&app, &document, "bob", "d").await;

    let entries = audit(&app, &workspace, "", last).await;
    assert_eq!(
        summaries(&entries),
        vec![
            "bob edited Budget 2026 (1 edit, version 4)",
            "alice added bob as member",
            "alice edited Budget 2026 (3 edits, versions 1–3)",
            "alice shared Budget 2026 with bob as viewer",
            "alice created Budget 2026 in /",
            "alice added alice as owner",
            "alice created workspace Acme",
        ],
        "newest first, edits grouped per actor and burst"
    );
    let grouped = &entries[2];
    assert_eq!(
        (
            grouped["edits"].as_i64(),
            grouped["first_version"].as_i64(),
            grouped["last_version"].as_i64()
        ),
        (Some(3), Some(1), Some(3))
    );
    assert_eq!(grouped["document_id"], document.as_str());
    assert_eq!(entries[3]["member"], "bob");

    // Filters and paging.
    assert_eq!(audit(&app, &workspace, "actor=bob", last).await.len(), 1);
    assert_eq!(
        audit(
            &app,
            &workspace,
            "actor=user:alice&type=DocumentShared",
            last
        )
        .await
        .len(),
        1
    );
    assert_eq!(
        audit(&app, &workspace, &format!("document={document}"), last)
            .await
            .len(),
        4
    );
    let page = app
        .get(
            &format!("/v1/workspaces/{workspace}/audit?limit=3"),
            "alice",
        )
        .await;
    let cursor = page.body["next_cursor"].as_i64().expect("more pages");
    let rest = audit(&app, &workspace, &format!("cursor={cursor}&limit=10"), last).await;
    assert_eq!(rest.len(), 4);
    assert_eq!(
        audit(&app, &workspace, "from=2999-01-01T00:00:00Z", last)
            .await
            .len(),
        0
    );
    assert_eq!(
        audit(&app, &workspace, "to=2000-01-01T00:00:00Z", last)
            .await
            .len(),
        0
    );
    for bad in [
        "type=Nope",
        "from=yesterday",
        "limit=9999",
        "cursor=x",
        "who=alice",
    ] {
        let r = app
            .get(&format!("/v1/workspaces/{workspace}/audit?{bad}"), "alice")
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // Only owners, admins, auditors (and audit:read keys).
    assert_eq!(
        app.get(&format!("/v1/workspaces/{workspace}/audit"), "bob")
            .await
            .status,
        404
    );

    // A rebuild gives exactly the live rows.
    let live = audit_rows(&app.env.pool).await;
    collab_projections::rebuild(&app.env.pool, &[Arc::new(Audit::default())], |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(audit_rows(&app.env.pool).await, live);
}

async fn verify(app: &TestApp, workspace: &str) -> Report {
    let response = app
        .get(&format!("/v1/workspaces/{workspace}/audit/verify"), "alice")
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let body = &response.body;
    Report {
        streams: body["streams"].as_u64().unwrap() as usize,
        events: body["events"].as_u64().unwrap(),
        checkpoints: body["checkpoints"].as_u64().unwrap(),
        ok: body["ok"].as_bool().unwrap(),
        first_break: body["first_break"]
            .as_object()
            .map(|b| collab_domain::audit::Break {
                stream_id: b["stream_id"].as_str().map(str::to_owned),
                stream_version: b["stream_version"].as_i64(),
                position: b["position"].as_i64().unwrap(),
                reason: b["reason"].as_str().unwrap().to_owned(),
                missing_after: None,
            }),
    }
}

/// A workspace with a document edited several times, folded by the audit model.
/// Returns (workspace, document, positions of the content stream's events).
async fn history_to_tamper(app: &TestApp) -> (String, String, Vec<i64>) {
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let document = app.create_document(&workspace, "alice", "Doc").await;
    let mut content = vec![];
    for text in ["one", "two", "three", "four"] {
        content.push(edit(app, &document, "alice", text).await);
    }
    // Something after, so deleting the content stream's last event leaves a hole.
    let renamed = app
        .patch(
            &format!("/v1/documents/{document}"),
            "alice",
            json!({ "title": "Doc 2" }),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    // Read models are eventually consistent: ask for the workspace as of the rename.
    let last = app
        .get_at(
            &format!("/v1/workspaces/{workspace}"),
            "alice",
            renamed.position(),
        )
        .await;
    assert_eq!(last.status, 200, "{}", last.body);
    let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
        .fetch_one(&app.env.pool)
        .await
        .unwrap();
    audit(app, &workspace, "", head).await; // the audit model has folded everything
    let report = verify(app, &workspace).await;
    assert!(report.ok, "an untouched log verifies: {report:?}");
    assert_eq!(report.events, 8);
    (workspace, document, content)
}

/// Runs `sql` as a superuser with the append-only triggers off, as an insider could.
async fn tamper(app: &TestApp, sql: &str) {
    let mut tx = app.env.pool.begin().await.unwrap();
    sqlx::query("ALTER TABLE events DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(statement).execute(&mut *tx).await.unwrap();
    }
    sqlx::query("ALTER TABLE events ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn assert_broken(
    app: &TestApp,
    workspace: &str,
    stream: &str,
    version: i64,
    position: i64,
    reason: &str,
) {
    let report = verify(app, workspace).await;
    assert!(!report.ok, "{report:?}");
    let found = report.first_break.expect("a break is located");
    assert_eq!(found.stream_id.as_deref(), Some(stream), "{found:?}");
    assert_eq!(found.stream_version, Some(version), "{found:?}");
    assert_eq!(found.position, position, "{found:?}");
    assert!(found.reason.contains(reason), "{found:?}");
}

/// Tampers with a fresh history (`change` gets the content stream's positions) and checks
/// that verification names the content stream, `version` and the position `at` picks.
async fn caught(
    change: impl Fn(&[i64]) -> String,
    version: i64,
    at: impl Fn(&[i64]) -> i64,
    reason: &str,
) {
    let app = TestApp::spawn().await;
    let (workspace, document, content) = history_to_tamper(&app).await;
    tamper(&app, &change(&content)).await;
    let stream = format!("content-{document}");
    assert_broken(&app, &workspace, &stream, version, at(&content), reason).await;
}

#[tokio::test]
async fn verification_catches_an_altered_payload_actor_or_timestamp() {
    for (i, change) in [
        "payload = payload || '\\x00'::bytea",
        "actor = 'user:mallory'",
        "recorded_at = recorded_at - interval '1 day'",
    ]
    .into_iter()
    .enumerate()
    {
        let index = 1 + i % 2;
        let update =
            move |c: &[i64]| format!("UPDATE events SET {change} WHERE position = {}", c[index]);
        caught(update, index as i64 + 1, move |c| c[index], "altered").await;
    }
}

#[tokio::test]
async fn verification_catches_a_deleted_event_in_the_middle_of_a_stream() {
    let delete = |c: &[i64]| format!("DELETE FROM events WHERE position = {}", c[1]);
    caught(delete, 2, |c| c[1], "missing").await;
}

#[tokio::test]
async fn verification_catches_a_deleted_last_event_of_a_stream() {
    let delete = |c: &[i64]| format!("DELETE FROM events WHERE position = {}", c[3]);
    caught(delete, 4, |c| c[3], "deleted").await;
}

#[tokio::test]
async fn verification_catches_two_swapped_events() {
    let swap = |c: &[i64]| {
        let (a, b) = (c[1], c[2]);
        format!(
            "UPDATE events SET position = 999999999 WHERE position = {a}; \
             UPDATE events SET position = {a} WHERE position = {b}; \
             UPDATE events SET position = {b} WHERE position = 999999999"
        )
    };
    caught(swap, 2, |c| c[1], "missing").await;
}

#[tokio::test]
async fn verification_of_the_whole_log_covers_every_workspace() {
    let app = TestApp::spawn().await;
    let (_, _, content) = history_to_tamper(&app).await;
    history_to_tamper(&app).await;
    let report = collab_projections::verify::verify(&app.env.pool, None, None)
        .await
        .unwrap();
    assert!(report.ok && report.events == 16, "{report:?}");
    tamper(
        &app,
        &format!(
            "UPDATE events SET actor = 'user:x' WHERE position = {}",
            content[0]
        ),
    )
    .await;
    let report = collab_projections::verify::verify(&app.env.pool, None, None)
        .await
        .unwrap();
    assert_eq!(report.first_break.map(|b| b.position), Some(content[0]));
}

/// Runs the `collab` binary (without blocking the runtime the app under test runs on).
async fn collab<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    tokio::process::Command::new(collab_tests::collab_bin())
        .args(args)
        .env_remove("COLLAB_AUDIT_PUBLIC_KEY")
        .output()
        .await
        .expect("collab runs")
}

/// Runs `collab audit verify --file` on `lines`; returns (success, combined output).
async fn verify_offline(
    dir: &std::path::Path,
    name: &str,
    lines: &[String],
    public_key: &str,
) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = collab(&[
        "audit",
        "verify",
        "--file",
        path.to_str().unwrap(),
        "--public-key",
        public_key,
    ])
    .await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn signed_checkpoints_and_sealed_exports_verify_offline_and_catch_tampering() {
    use collab_domain::audit::encode_key;
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let public = encode_key(&key.verifying_key().to_bytes());
    let env = TestEnv::new().await;
    let signing = key.clone();
    let app = TestApp::spawn_with(env, move |s| {
        s.audit.signing_key = Some(signing);
        s.audit.checkpoint_every = 3;
        s.audit.checkpoint_interval = Duration::from_secs(1);
    })
    .await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let document = app.create_document(&workspace, "alice", "Doc").await;
    let mut last = 0;
    for text in ["one", "two", "three", "four"] {
        last = edit(&app, &document, "alice", text).await;
    }
    // A checkpoint covering every edit is signed and appended to the workspace's audit stream.
    let token = TestApp::token("alice");
    let checkpoints_path = format!("/v1/workspaces/{workspace}/events?type=AuditCheckpointSigned");
    eventually(
        "a checkpoint covering the edits",
        Duration::from_secs(20),
        || async {
            let (_, lines, _) = ndjson(&app, &checkpoints_path, &token).await;
            lines
                .iter()
                .any(|l| l["data"]["covers_position"].as_i64() >= Some(last))
                .then_some(())
        },
    )
    .await;
    let (_, checkpoints, _) = ndjson(&app, &checkpoints_path, &token).await;
    assert_eq!(checkpoints[0]["actor"], "service:audit");
    assert_eq!(checkpoints[0]["stream_id"], format!("audit-{workspace}"));
    assert_eq!(checkpoints[0]["data"]["public_key"], public.as_str());
    let report = verify(&app, &workspace).await;
    assert!(report.ok && report.checkpoints >= 1, "{report:?}");

    // The export: events (checkpoints included), then a seal.
    let (status, _, text) = ndjson(
        &app,
        &format!("/v1/workspaces/{workspace}/audit/export"),
        &token,
    )
    .await;
    assert_eq!(status, 200);
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(
        lines.last().unwrap().starts_with("{\"seal\":"),
        "{}",
        lines.last().unwrap()
    );
    let dir = tempdir();
    let (ok, out) = verify_offline(&dir, "clean.ndjson", &lines, &public).await;
    assert!(ok, "a clean export verifies: {out}");
    assert!(out.contains("\"ok\": true"), "{out}");

    // Every way of tampering with the file fails, naming why.
    let n = lines.len();
    let truncated = &lines[..n - 3];
    let (ok, out) = verify_offline(&dir, "truncated.ndjson", truncated, &public).await;
    assert!(!ok && out.contains("not sealed"), "{out}");
    let mut cut = lines[..n - 2].to_vec();
    cut.push(lines[n - 1].clone()); // drop the last event, keep the seal
    let (ok, out) = verify_offline(&dir, "cut.ndjson", &cut, &public).await;
    assert!(!ok && out.contains("the seal covers"), "{out}");
    let mut altered = lines.clone();
    let i = altered
        .iter()
        .position(|l| l.contains("\"DocumentEdited\""))
        .unwrap();
    let mut event: Value = serde_json::from_str(&altered[i]).unwrap();
    event["actor"] = json!("user:mallory");
    altered[i] = event.to_string();
    let (ok, out) = verify_offline(&dir, "altered.ndjson", &altered, &public).await;
    assert!(!ok && out.contains("altered"), "{out}");
    let mut forged = lines.clone();
    let mut seal: Value = serde_json::from_str(&forged[n - 1]).unwrap();
    seal["seal"]["covers_position"] = json!(1);
    forged[n - 1] = seal.to_string();
    let (ok, out) = verify_offline(&dir, "forged.ndjson", &forged, &public).await;
    assert!(!ok && out.contains("does not hold"), "{out}");
    // A checkpoint passed off as the seal of a file cut at its position: refused.
    let checkpoint: collab_domain::audit::AuditCheckpointSigned =
        serde_json::from_value(checkpoints[0]["data"].clone()).unwrap();
    let covers = checkpoint.covers_position;
    let checkpoint = collab_domain::audit::Checkpoint::from_event(
        uuid::Uuid::parse_str(&workspace).unwrap(),
        &checkpoint,
    );
    let mut passed_off: Vec<String> = lines[..n - 1]
        .iter()
        .filter(|l| {
            let event: Value = serde_json::from_str(l).unwrap();
            event["position"].as_i64().unwrap() <= covers
                && event["type"] != "AuditCheckpointSigned"
        })
        .cloned()
        .collect();
    passed_off.push(json!({ "seal": checkpoint }).to_string());
    let (ok, out) = verify_offline(&dir, "passed-off.ndjson", &passed_off, &public).await;
    assert!(!ok && out.contains("not an export seal"), "{out}");
    let other = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let (ok, out) = verify_offline(
        &dir,
        "clean.ndjson",
        &lines,
        &encode_key(&other.verifying_key().to_bytes()),
    )
    .await;
    assert!(
        !ok && out.contains("not the trusted one"),
        "another key proves nothing: {out}"
    );
    let out = collab(&[
        "audit",
        "verify",
        "--file",
        dir.join("clean.ndjson").to_str().unwrap(),
    ])
    .await;
    assert!(
        !out.status.success(),
        "a file is never verified without a key"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("collab-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_cli_exports_ndjson_and_csv_and_tails_through_the_http_api() {
    let app = TestApp::spawn().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let document = app.create_document(&workspace, "alice", "Doc").await;
    for text in ["one", "two", "three"] {
        edit(&app, &document, "alice", text).await;
    }
    let token = TestApp::token("alice");
    let url = app.url("");
    let dir = tempdir();
    let ndjson_path = dir.join("events.ndjson");
    let base = [
        "events",
        "export",
        "--workspace",
        &workspace,
        "--url",
        &url,
        "--token",
        &token,
    ];
    let export = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    let out = collab(&export(&["--output", ndjson_path.to_str().unwrap()])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, replay, _) = ndjson(&app, &format!("/v1/workspaces/{workspace}/events"), &token).await;
    let exported: Vec<Value> = std::fs::read_to_string(&ndjson_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported, replay);
    assert!(String::from_utf8_lossy(&out.stderr).contains("exported 6 events"));

    let csv_path = dir.join("edits.csv");
    let out = collab(&export(&[
        "--type",
        "DocumentEdited",
        "--format",
        "csv",
        "--output",
        csv_path.to_str().unwrap(),
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("position,event_id,stream_id"));
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows[1].contains(",DocumentEdited,"));
    let bad = collab(&[
        "events",
        "export",
        "--workspace",
        &workspace,
        "--url",
        &url,
        "--token",
        "nope",
    ])
    .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401"));

    // `tail` follows live: what is appended after it started comes out on stdout.
    let mut tail = tokio::process::Command::new(collab_tests::collab_bin())
        .args([
            "events",
            "tail",
            "--workspace",
            &workspace,
            "--url",
            &url,
            "--token",
            &token,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(tail.stdout.take().unwrap());
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    let mut seen = 0;
    while seen < 6 {
        line.clear();
        tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        seen += 1;
    }
    let live = edit(&app, &document, "alice", "live").await;
    line.clear();
    tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["position"], live);
    tail.kill().await.ok();
    std::fs::remove_dir_all(&dir).ok();
}

/// The consumer program of docs/consumers.md reads JetStream directly and sees exactly
/// what the HTTP replay serves, from any position, with a subject filter.
#[tokio::test]
async fn a_jetstream_consumer_sees_the_same_events_as_the_http_replay() {
    let app = TestApp::spawn().await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let document = app.create_document(&workspace, "alice", "Doc").await;
    let (other, _) = app.create_workspace("bob", "Other").await;
    let noise = app.create_document(&other, "bob", "Noise").await;
    let mut middle = 0;
    for i in 0..6 {
        let at = edit(&app, &document, "alice", &format!("e{i} ")).await;
        edit(&app, &noise, "bob", "x").await;
        if i == 2 {
            middle = at;
        }
    }
    let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head")
        .fetch_one(&app.env.pool)
        .await
        .unwrap();
    let js = app.env.jetstream().await;
    let name = app.env.stream_name();
    eventually(
        "the relay to publish everything",
        Duration::from_secs(20),
        || {
            let js = js.clone();
            let name = name.clone();
            async move {
                let mut stream = js.get_stream(&name).await.ok()?;
                let last = stream.info().await.ok()?.state.last_sequence;
                (last >= head as u64).then_some(())
            }
        },
    )
    .await;

    let token = TestApp::token("alice");
    for (after, category) in [(middle, Some("content")), (0, None)] {
        let mut args = vec![
            "--nats".to_owned(),
            app.env.nats_url.clone(),
            "--prefix".into(),
            app.env.prefix.clone(),
            "--workspace".into(),
            workspace.clone(),
            "--after".into(),
            after.to_string(),
        ];
        let mut query = format!("after={after}");
        if let Some(category) = category {
            args.extend(["--category".into(), category.to_owned()]);
            query.push_str(&format!("&category={category}"));
        }
        let out = tokio::process::Command::new(collab_tests::example_bin("jetstream_consumer"))
            .args(&args)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let consumed: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let (_, replayed, _) = ndjson(
            &app,
            &format!("/v1/workspaces/{workspace}/events?{query}"),
            &token,
        )
        .await;
        assert!(!replayed.is_empty());
        assert_eq!(consumed, replayed, "after {after}, category {category:?}");
    }
}

/// Bursts end at a pause longer than the gap: with no gap at all, every edit is its own
/// entry (the default groups them, see above).
#[tokio::test]
async fn edits_after_a_pause_longer_than_the_gap_are_a_new_entry() {
    use collab_projections::{documents::Documents, workspaces::Workspaces, Registry};
    let registry = Registry::default()
        .read_model(Workspaces)
        .read_model(Documents)
        .read_model(Audit {
            edit_gap: Duration::ZERO,
        });
    let app = TestApp::spawn_with_registry(TestEnv::new().await, |_| {}, registry).await;
    let (workspace, _) = app.create_workspace("alice", "Acme").await;
    let document = app.create_document(&workspace, "alice", "Notes").await;
    let mut last = 0;
    for text in ["a", "b", "c"] {
        last = edit(&app, &document, "alice", text).await;
    }
    let edits = audit(&app, &workspace, "type=DocumentEdited", last).await;
    assert_eq!(
        summaries(&edits),
        vec![
            "alice edited Notes (1 edit, version 3)",
            "alice edited Notes (1 edit, version 2)",
            "alice edited Notes (1 edit, version 1)",
        ]
    );
}

/// A live tail never ends by itself; shutting down ends it (with where to resume)
/// instead of waiting for its client.
#[tokio::test]
async fn shutting_down_ends_live_tails_with_the_resume_position() {
    let app = TestApp::spawn().await;
    let (workspace, position) = app.create_workspace("alice", "Acme").await;
    let response = open_live(&app, &workspace, "alice", None).await;
    let mut stream = response.bytes_stream().eventsource();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if event.id == position.to_string() {
            break;
        }
    }
    let stopping = tokio::spawn(app.stop());
    let closing = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the tail is told in time")
        .unwrap()
        .unwrap();
    assert_eq!(closing.event, "closing");
    let body: Value = serde_json::from_str(&closing.data).unwrap();
    assert_eq!(body["resume_after"], position);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stops without waiting for the tail's client")
        .unwrap();
}
