//! Document history (issue 13): the document at any point, blame and diff attributed to
//! real Yjs clients under two users, named versions, restore as a forward edit seen by
//! live stock clients, the history list, the history read model's rebuild, the
//! `DocumentEdited` v1 upcaster, and bad input.

use std::sync::Arc;
use std::time::Duration;

use collab_domain::catalogue::EventCodec;
use collab_domain::content::{ContentEvent, DocumentEdited, DocumentEditedV1, EditOrigin};
use collab_projections::history::{History, HistoryConfig};
use collab_tests::{eventually, mint, CollabProcess, Http, NodeClient, TestApp, TestEnv};
use reqwest::Method;
use serde_json::{json, Value};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact};

use collab_projections::ReadModel;

/// One client's step: insert `text` at a character index, or delete a range.
enum Step {
    Insert(&'static str, usize, &'static str),
    Delete(&'static str, usize, usize),
}

/// A point reached, as the server reported it, with the text and who wrote each char.
#[derive(Clone)]
struct Seen {
    version: i64,
    position: i64,
    recorded_at: String,
    chars: Vec<(char, String)>,
}

impl Seen {
    fn text(&self) -> String {
        self.chars.iter().map(|(c, _)| c).collect()
    }
}

fn header(response: &collab_tests::Response, name: &str) -> String {
    response.headers[name].to_str().unwrap().to_owned()
}

async fn get(http: &Http, path: &str, user: &str) -> collab_tests::Response {
    http.call(Method::GET, path, user, None).await
}

/// Flattens blame spans into (char, actor) pairs.
fn flatten(spans: &Value) -> Vec<(char, String)> {
    spans
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|span| {
            let actor = span["actor"].as_str().unwrap_or("unknown").to_owned();
            span["text"]
                .as_str()
                .unwrap()
                .chars()
                .map(move |c| (c, actor.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_point_blame_and_diff_follow_two_live_authors() {
    let env = TestEnv::new().await;
    // A history snapshot every 3 versions: points are materialised from snapshots + tails.
    let server = CollabProcess::start(&env, &[("COLLAB_HISTORY_SNAPSHOT_EVERY", "3")]).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    let added = http
        .call(
            Method::POST,
            &format!("/v1/workspaces/{ws}/members"),
            "alice",
            Some(json!({"user_id": "bob", "role": "member"})),
        )
        .await;
    assert_eq!(added.status, 201);
    let mut alice = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    let mut bob = NodeClient::open(&server.ws(), &doc, &mint("bob", 3600)).await;

    let steps = [
        Step::Insert("alice", 0, "Hello"),
        Step::Insert("bob", 5, " world"),
        Step::Insert("alice", 11, "!"),
        Step::Insert("bob", 0, ">> "),
        Step::Delete("alice", 3, 5),
        Step::Insert("alice", 3, "Goodbye"),
        Step::Insert("bob", 10, "cruel "),
        Step::Insert("alice", 3, "Well, "),
        Step::Delete("bob", 0, 3),
        Step::Insert("bob", 0, "ünï "),
        Step::Insert("alice", 4, "and "),
    ];
    let mut chars: Vec<(char, String)> = vec![];
    let mut seen: Vec<Seen> = vec![];
    for step in &steps {
        let (who, command) = match *step {
            Step::Insert(who, index, text) => {
                let actor = format!("user:{who}");
                for (i, c) in text.chars().enumerate() {
                    chars.insert(index + i, (c, actor.clone()));
                }
                (who, json!({"op": "insert", "index": index, "text": text}))
            }
            Step::Delete(who, index, length) => {
                chars.drain(index..index + length);
                (
                    who,
                    json!({"op": "delete", "index": index, "length": length}),
                )
            }
        };
        let client = if who == "alice" { &mut alice } else { &mut bob };
        client.call(command).await;
        let text: String = chars.iter().map(|(c, _)| c).collect();
        alice.wait_text(&text).await;
        bob.wait_text(&text).await;
        let response = eventually("server content", Duration::from_secs(10), || {
            let (http, doc, text) = (&http, &doc, &text);
            async move {
                let r = get(http, &format!("/v1/documents/{doc}/content"), "alice").await;
                (r.body.as_str() == Some(text.as_str())).then_some(r)
            }
        })
        .await;
        let version: i64 = header(&response, "x-collab-content-version")
            .parse()
            .unwrap();
        let position: i64 = header(&response, "x-collab-position").parse().unwrap();
        let recorded_at: String = sqlx::query_scalar(
            "SELECT to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
             FROM events WHERE position = $1",
        )
        .bind(position)
        .fetch_one(&env.pool)
        .await
        .unwrap();
        seen.push(Seen {
            version,
            position,
            recorded_at,
            chars: chars.clone(),
        });
    }
    assert_eq!(seen.last().unwrap().version, steps.len() as i64);

    // Every point, by version, position and time, as text and as a Yjs state.
    for point in &seen {
        for query in [
            format!("at_version={}", point.version),
            format!("at_position={}", point.position),
            format!("at_time={}", point.recorded_at),
        ] {
            let r = get(
                &http,
                &format!("/v1/documents/{doc}/content?{query}"),
                "bob",
            )
            .await;
            assert_eq!(r.status, 200, "{query}: {}", r.body);
            assert_eq!(r.body.as_str(), Some(point.text().as_str()), "{query}");
            assert_eq!(
                header(&r, "x-collab-content-version"),
                point.version.to_string()
            );
            assert_eq!(header(&r, "x-collab-position"), point.position.to_string());
        }
        let state = reqwest::Client::new()
            .get(format!(
                "{}/v1/documents/{doc}/state?at_version={}",
                server.http(),
                point.version
            ))
            .bearer_auth(mint("bob", 3600))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let replica = yrs::Doc::new();
        let text = replica.get_or_insert_text("text");
        replica
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(&state).unwrap())
            .unwrap();
        assert_eq!(text.get_string(&replica.transact()), point.text());
    }
    // Version 0 is the empty document; a time before it too.
    let empty = get(
        &http,
        &format!("/v1/documents/{doc}/content?at_version=0"),
        "bob",
    )
    .await;
    assert_eq!(
        (empty.status.as_u16(), empty.body.as_str()),
        (200, Some(""))
    );
    let before = get(
        &http,
        &format!("/v1/documents/{doc}/content?at_time=2020-01-01T00:00:00Z"),
        "bob",
    )
    .await;
    assert_eq!(before.body.as_str(), Some(""));

    // Blame: every character of every point, attributed to the user who typed it.
    for point in [&seen[4], &seen[7], seen.last().unwrap()] {
        let r = get(
            &http,
            &format!("/v1/documents/{doc}/blame?at_version={}", point.version),
            "bob",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            flatten(&r.body["spans"]),
            point.chars,
            "blame at {}",
            point.version
        );
    }
    let now = get(&http, &format!("/v1/documents/{doc}/blame"), "alice").await;
    assert_eq!(flatten(&now.body["spans"]), chars);
    let authors = now.body["authors"].as_array().unwrap();
    let alice_chars = chars.iter().filter(|(_, a)| a == "user:alice").count();
    assert!(authors.contains(&json!({"actor": "user:alice", "characters": alice_chars})));

    // Diff: what changed between two points, and who wrote each inserted character.
    let (from, to) = (&seen[2], seen.last().unwrap());
    let r = get(
        &http,
        &format!(
            "/v1/documents/{doc}/diff?from={}&to={}",
            from.version, to.version
        ),
        "bob",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut new_index = 0;
    let (mut rebuilt_old, mut rebuilt_new) = (String::new(), String::new());
    for change in r.body["changes"].as_array().unwrap() {
        let text = change["text"].as_str().unwrap();
        match change["op"].as_str().unwrap() {
            "equal" => {
                rebuilt_old.push_str(text);
                rebuilt_new.push_str(text);
                new_index += text.chars().count();
            }
            "delete" => rebuilt_old.push_str(text),
            "insert" => {
                rebuilt_new.push_str(text);
                let attributed = flatten(&change["authors"]);
                assert_eq!(
                    attributed,
                    to.chars[new_index..new_index + text.chars().count()].to_vec(),
                    "inserted {text:?} is attributed char by char"
                );
                new_index += text.chars().count();
            }
            other => panic!("unexpected op {other}"),
        }
    }
    assert_eq!((rebuilt_old, rebuilt_new), (from.text(), to.text()));
    let unified = get(
        &http,
        &format!(
            "/v1/documents/{doc}/diff?from=0&to={}&format=unified",
            to.version
        ),
        "bob",
    )
    .await;
    let body = unified.body.as_str().unwrap();
    assert!(
        body.starts_with(&format!("--- version 0\n+++ version {}\n", to.version)),
        "{body}"
    );
    assert!(body.contains(&format!("+{}", to.text())), "{body}");

    // The history list: one session per author (no pause longer than five minutes),
    // newest first, after the document's creation.
    let history = get(&http, &format!("/v1/documents/{doc}/history"), "bob").await;
    let entries = history.body["entries"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("edits", "user:alice"),
            ("edits", "user:bob"),
            ("DocumentCreated", "user:alice")
        ]
    );
    let alice_session = &entries[0];
    assert_eq!(alice_session["last_version"], steps.len() as i64);
    assert_eq!(alice_session["first_version"], 1);
    assert_eq!(alice_session["edits"], 6);
    // Inserted: "Hello" + "!" + "Goodbye" + "Well, " + "and " = 23; deleted 5.
    assert_eq!(
        (
            alice_session["inserted"].as_i64(),
            alice_session["deleted"].as_i64()
        ),
        (Some(23), Some(5))
    );
    alice.kill().await;
    bob.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_versions_and_a_restore_reach_every_live_client() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    for (user, role) in [("bob", "member"), ("vera", "auditor")] {
        let added = http
            .call(
                Method::POST,
                &format!("/v1/workspaces/{ws}/members"),
                "alice",
                Some(json!({"user_id": user, "role": role})),
            )
            .await;
        assert_eq!(added.status, 201);
    }
    let mut alice = NodeClient::open(&server.ws(), &doc, &mint("alice", 3600)).await;
    let mut bob = NodeClient::open(&server.ws(), &doc, &mint("bob", 3600)).await;
    alice.insert(Some(0), "First draft.").await;
    bob.wait_text("First draft.").await;
    eventually("draft stored", Duration::from_secs(10), || {
        let (http, doc) = (&http, &doc);
        async move { (http.content_text(doc, "alice").await == "First draft.").then_some(()) }
    })
    .await;

    let versions = format!("/v1/documents/{doc}/versions");
    let named = http
        .call(
            Method::POST,
            &versions,
            "alice",
            Some(json!({"name": "Draft 1"})),
        )
        .await;
    assert_eq!(named.status, 201, "{}", named.body);
    assert_eq!(named.body["content_version"], 1);
    let draft_id = named.body["version_id"].as_str().unwrap().to_owned();
    // Names are unique per document, 1–100 characters; versions exist; viewers only read.
    let taken = http
        .call(
            Method::POST,
            &versions,
            "bob",
            Some(json!({"name": "Draft 1"})),
        )
        .await;
    assert_eq!(
        (taken.status.as_u16(), taken.body["code"].as_str()),
        (409, Some("version_name_taken"))
    );
    for bad in [
        json!({"name": "  "}),
        json!({"name": "x".repeat(101)}),
        json!({"name": "ok", "at_version": 99}),
    ] {
        let r = http
            .call(Method::POST, &versions, "alice", Some(bad.clone()))
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    let viewer = http
        .call(
            Method::POST,
            &versions,
            "vera",
            Some(json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(viewer.status, 403);
    let zero = http
        .call(
            Method::POST,
            &versions,
            "bob",
            Some(json!({"name": "Empty", "at_version": 0})),
        )
        .await;
    assert_eq!(zero.status, 201);
    let listed = eventually("versions listed", Duration::from_secs(10), || {
        let (http, versions) = (&http, &versions);
        async move {
            let r = get(http, versions, "vera").await;
            (r.body["versions"].as_array().map(Vec::len) == Some(2)).then_some(r)
        }
    })
    .await;
    assert_eq!(listed.body["versions"][0]["name"], "Draft 1");
    assert_eq!(listed.body["versions"][0]["created_by"], "user:alice");

    // More edits by both, then a restore of "Draft 1" for everyone in the room.
    alice.insert(None, " More from alice.").await;
    bob.wait_text("First draft. More from alice.").await;
    bob.call(json!({"op": "delete", "index": 0, "length": 6}))
        .await;
    alice.wait_text("draft. More from alice.").await;
    let restored = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/history/restore"),
            "bob",
            Some(json!({"version_id": draft_id})),
        )
        .await;
    assert_eq!(restored.status, 200, "{}", restored.body);
    assert_eq!(
        (
            restored.body["restored_from"].as_i64(),
            restored.body["changed"].as_bool()
        ),
        (Some(1), Some(true))
    );
    alice.wait_text("First draft.").await;
    bob.wait_text("First draft.").await;
    assert_eq!(http.content_text(&doc, "vera").await, "First draft.");
    // Restoring what is already there changes nothing; viewers cannot restore.
    let again = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/history/restore"),
            "alice",
            Some(json!({"at_version": 1})),
        )
        .await;
    assert_eq!(again.body["changed"], false);
    let denied = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/history/restore"),
            "vera",
            Some(json!({"at_version": 0})),
        )
        .await;
    assert_eq!(denied.status, 403);
    // Edits after the restore keep working for everyone.
    bob.insert(None, " Then bob.").await;
    alice.wait_text("First draft. Then bob.").await;
    alice.insert(Some(0), "> ").await;
    bob.wait_text("> First draft. Then bob.").await;

    // The restore is one event with its origin, and one entry of the history list.
    let restore_event: Value = sqlx::query_scalar::<_, Vec<u8>>(
        "SELECT payload FROM events WHERE stream_id = $1 AND stream_version = $2",
    )
    .bind(format!("content-{doc}"))
    .bind(restored.body["version"].as_i64().unwrap())
    .fetch_one(&env.pool)
    .await
    .map(|payload| {
        ContentEvent::decode("DocumentEdited", 2, &payload)
            .unwrap()
            .to_json()
    })
    .unwrap();
    assert_eq!(
        restore_event["origin"],
        json!({"restore": {"from_version": 1}})
    );
    let history = eventually("restore in history", Duration::from_secs(10), || {
        let (http, doc) = (&http, &doc);
        async move {
            let r = get(http, &format!("/v1/documents/{doc}/history"), "vera").await;
            let entries = r.body["entries"].as_array()?.clone();
            // Folded up to alice's last edit (content version 6).
            let folded = entries
                .iter()
                .any(|e| e["kind"] == "edits" && e["last_version"] == 6);
            folded.then_some(entries)
        }
    })
    .await;
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        // Alice's session runs from version 1 to 6 (a session is per author); Bob's restore
        // ended his, so his edit after it opened another.
        vec![
            "edits",
            "edits",
            "restored",
            "edits",
            "VersionNamed",
            "VersionNamed",
            "DocumentCreated"
        ],
        "{history:#?}"
    );
    let restore_entry = history.iter().find(|e| e["kind"] == "restored").unwrap();
    assert_eq!(restore_entry["actor"], "user:bob");
    assert_eq!(restore_entry["details"]["from_version"], 1);
    // Paging: one entry at a time, newest first, reaches every entry once.
    let mut paged = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/documents/{doc}/history?limit=2&cursor={c}"),
            None => format!("/v1/documents/{doc}/history?limit=2"),
        };
        let page = get(&http, &path, "alice").await;
        paged.extend(page.body["entries"].as_array().unwrap().clone());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, history);

    // Deleting a named version: gone from the list and by id; the history says so.
    let gone = http
        .call(
            Method::DELETE,
            &format!("{versions}/{draft_id}"),
            "bob",
            None,
        )
        .await;
    assert_eq!(gone.status, 200);
    let missing = http
        .call(
            Method::DELETE,
            &format!("{versions}/{draft_id}"),
            "bob",
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
    eventually("version deleted", Duration::from_secs(10), || {
        let (http, versions, draft_id) = (&http, &versions, &draft_id);
        async move {
            let r = get(http, &format!("{versions}/{draft_id}"), "alice").await;
            (r.status == 404).then_some(())
        }
    })
    .await;
    alice.kill().await;
    bob.kill().await;
}

fn update_inserting(client: u64, at: u32, text: &str, base: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let doc = yrs::Doc::with_client_id(client);
    let root = doc.get_or_insert_text("content");
    if !base.is_empty() {
        doc.transact_mut()
            .apply_update(yrs::Update::decode_v1(base).unwrap())
            .unwrap();
    }
    let update = {
        let mut txn = doc.transact_mut();
        root.insert(&mut txn, at, text);
        txn.encode_update_v1()
    };
    let state = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    (update, state)
}

async fn post_update(app: &TestApp, document: &str, user: &str, update: Vec<u8>) -> Value {
    app.post_update(document, user, update).await
}

async fn dump_history(pool: &sqlx::PgPool) -> Value {
    collab_tests::tables_as_json(pool, History::default().tables()).await
}

#[tokio::test]
async fn the_history_read_model_rebuilds_identically_and_stored_v1_edits_are_upcast() {
    let app = TestApp::spawn_with_registry(
        TestEnv::new().await,
        |_| {},
        collab_projections::Registry::standard_with(HistoryConfig {
            snapshot_every: 4,
            ..HistoryConfig::default()
        }),
    )
    .await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    app.add_member(&ws, "alice", "bob", "member").await;
    let doc = app.create_document(&ws, "alice", "Notes").await;
    // A v1 row, as builds before schema version 2 stored it (client 0: over HTTP).
    let (first, mut state) = update_inserting(11, 0, "old ", &[]);
    let v1 = DocumentEditedV1 {
        client_id: 0,
        update: first,
    };
    let store = collab_store::EventStore::new(app.env.pool.clone());
    store
        .append(
            collab_domain::StreamId::new(
                collab_domain::StreamCategory::Content,
                uuid::Uuid::parse_str(&doc).unwrap(),
            ),
            collab_store::ExpectedVersion::Any,
            &collab_store::AppendContext {
                workspace_id: collab_domain::WorkspaceId::parse(&ws).unwrap(),
                actor: collab_domain::Actor::User(collab_domain::UserId::parse("alice").unwrap()),
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: None,
            },
            vec![collab_store::NewEvent {
                event_type: "DocumentEdited".into(),
                schema_version: 1,
                payload: postcard::to_allocvec(&v1).unwrap(),
            }],
        )
        .await
        .unwrap();
    let mut position = 0;
    for (i, (user, text)) in [
        ("alice", "a"),
        ("bob", "b"),
        ("alice", "c"),
        ("bob", "d"),
        ("bob", "e"),
        ("alice", "f"),
        ("bob", "g"),
        ("alice", "h"),
        ("alice", "i"),
    ]
    .into_iter()
    .enumerate()
    {
        let (update, next) = update_inserting(
            if user == "alice" { 21 } else { 22 },
            4 + i as u32,
            text,
            &state,
        );
        state = next;
        position = post_update(&app, &doc, user, update).await["position"]
            .as_i64()
            .unwrap();
    }
    let named = app
        .post(
            &format!("/v1/documents/{doc}/versions"),
            "bob",
            json!({"name": "Nine", "at_version": 9}),
        )
        .await;
    assert_eq!(named.status, 201);
    let position = position.max(named.position());

    // Every reader sees the v1 row as v2: the room, the replay API, the history list.
    let content = app
        .get(&format!("/v1/documents/{doc}/content?at_version=1"), "bob")
        .await;
    assert_eq!(content.body, "old ");
    let replay = app
        .get(
            &format!("/v1/workspaces/{ws}/events?category=content&limit=1"),
            "alice",
        )
        .await;
    // One NDJSON line parses as one JSON value.
    let line = replay.body;
    assert_eq!(
        (line["schema_version"].as_i64(), &line["data"]["origin"]),
        (Some(1), &json!("http"))
    );
    let decoded =
        ContentEvent::decode("DocumentEdited", 1, &postcard::to_allocvec(&v1).unwrap()).unwrap();
    assert_eq!(
        decoded,
        ContentEvent::DocumentEdited(DocumentEdited {
            client_id: 0,
            update: v1.update.clone(),
            origin: EditOrigin::Http
        })
    );
    let history = app
        .get_at(&format!("/v1/documents/{doc}/history"), "alice", position)
        .await;
    let _ = app
        .get_at(&format!("/v1/documents/{doc}/versions"), "alice", position)
        .await;
    eventually("history folded", Duration::from_secs(10), || {
        let app = &app;
        let doc = &doc;
        async move {
            let r = app
                .get(&format!("/v1/documents/{doc}/history"), "alice")
                .await;
            let edits: i64 = r.body["entries"]
                .as_array()?
                .iter()
                .filter(|e| e["kind"] == "edits")
                .map(|e| e["edits"].as_i64().unwrap())
                .sum();
            (edits == 10).then_some(())
        }
    })
    .await;
    assert_eq!(history.status, 200);
    let snapshots: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_history_snapshots")
        .fetch_one(&app.env.pool)
        .await
        .unwrap();
    assert_eq!(snapshots, 2, "versions 4 and 8");

    // A rebuild from the log gives the same rows; a different session gap, different ones.
    let live = dump_history(&app.env.pool).await;
    let pool = app.env.pool.clone();
    let rebuild_with = |config| {
        let pool = pool.clone();
        async move {
            let model: Arc<dyn collab_projections::ReadModel> = Arc::new(History::new(config));
            collab_projections::rebuild(&pool, &[model], |_, _, _| {}).await
        }
    };
    let config = HistoryConfig {
        snapshot_every: 4,
        ..HistoryConfig::default()
    };
    rebuild_with(config).await.unwrap();
    assert_eq!(dump_history(&app.env.pool).await, live);
    let split = HistoryConfig {
        session_gap: Duration::ZERO,
        ..config
    };
    rebuild_with(split).await.unwrap();
    let sessions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM rm_history_entries WHERE kind = 'edits'")
            .fetch_one(&app.env.pool)
            .await
            .unwrap();
    assert_eq!(sessions, 10, "no pause is short enough to join two edits");
    rebuild_with(config).await.unwrap();
    assert_eq!(dump_history(&app.env.pool).await, live);
}

#[tokio::test]
async fn bad_points_and_bodies_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let doc = app.create_document(&ws, "alice", "Notes").await;
    let (update, _) = update_inserting(5, 0, "text", &[]);
    post_update(&app, &doc, "alice", update).await;
    app.create_workspace("mallory", "Evil").await;
    for (path, status) in [
        (format!("/v1/documents/{doc}/content?at_version=abc"), 400),
        (format!("/v1/documents/{doc}/content?at_version=-1"), 400),
        (format!("/v1/documents/{doc}/content?at_version=2"), 400),
        (
            format!("/v1/documents/{doc}/content?at_version=1&at_time=2026-01-01T00:00:00Z"),
            400,
        ),
        (
            format!("/v1/documents/{doc}/content?at_time=yesterday"),
            400,
        ),
        (
            format!("/v1/documents/{doc}/content?at_position=999999999"),
            400,
        ),
        (format!("/v1/documents/{doc}/content?at_versoin=1"), 400),
        (format!("/v1/documents/{doc}/state?format=json"), 400),
        (format!("/v1/documents/{doc}/diff"), 400),
        (format!("/v1/documents/{doc}/diff?from=0&format=html"), 400),
        (
            format!("/v1/documents/{doc}/diff?from=0&root=nothing&format=json&extra=1"),
            400,
        ),
        (format!("/v1/documents/{doc}/history?limit=0"), 400),
        (format!("/v1/documents/{doc}/history?cursor=bogus"), 400),
        (format!("/v1/documents/{doc}/versions/not-a-uuid"), 400),
        (
            format!("/v1/documents/{doc}/versions/{}", uuid::Uuid::now_v7()),
            404,
        ),
        (
            format!("/v1/documents/{}/history", uuid::Uuid::now_v7()),
            404,
        ),
    ] {
        let r = app.get(&path, "alice").await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.body);
    }
    // Someone else's document is not found, whatever the route.
    for path in [
        format!("/v1/documents/{doc}/content?at_version=1"),
        format!("/v1/documents/{doc}/history"),
        format!("/v1/documents/{doc}/versions"),
        format!("/v1/documents/{doc}/blame"),
        format!("/v1/documents/{doc}/diff?from=0"),
    ] {
        assert_eq!(app.get(&path, "mallory").await.status, 404, "{path}");
    }
    let before = app.env.count_events().await;
    let restore = format!("/v1/documents/{doc}/history/restore");
    for (body, status) in [
        (json!({}), 422),
        (
            json!({"at_version": 1, "version_id": uuid::Uuid::now_v7()}),
            422,
        ),
        (json!({"at_version": -3}), 422),
        (json!({"at_version": 7}), 400),
        (json!({"version_id": uuid::Uuid::now_v7()}), 404),
        (json!({"at_version": 0, "extra": true}), 422),
    ] {
        let r = app.post(&restore, "alice", body.clone()).await;
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.body);
    }
    assert_eq!(
        app.post(&restore, "mallory", json!({"at_version": 0}))
            .await
            .status,
        404
    );
    // Naming a version of someone else's document says nothing about it, not even its
    // length.
    let named = app
        .post(
            &format!("/v1/documents/{doc}/versions"),
            "mallory",
            json!({"name": "x", "at_version": 999_999}),
        )
        .await;
    assert_eq!(named.status, 404, "{}", named.body);
    let malformed = app
        .http
        .post(app.url(&restore))
        .bearer_auth(TestApp::token("alice"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(app.env.count_events().await, before, "nothing was appended");
    // Restoring version 0 of a text document empties it (one forward edit).
    let emptied = app.post(&restore, "alice", json!({"at_version": 0})).await;
    assert_eq!(
        (emptied.status.as_u16(), emptied.body["changed"].as_bool()),
        (200, Some(true))
    );
    let content = app
        .get(&format!("/v1/documents/{doc}/content"), "alice")
        .await;
    assert_eq!(content.body, "");
}

/// Runs tests/node/tiptap.mjs with one command; its JSON answer.
async fn tiptap(command: Value) -> Value {
    use tokio::io::AsyncWriteExt;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    let mut child = tokio::process::Command::new("node")
        .arg("tiptap.mjs")
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(command.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the TipTap helper answers")
        .unwrap();
    let answer: Value = serde_json::from_slice(&output.stdout).expect("one JSON answer");
    assert_eq!(answer["ok"], true, "{}", answer["error"]);
    answer
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

fn marked(t: &str, marks: Value) -> Value {
    json!({"type": "text", "text": t, "marks": marks})
}

fn block(kind: &str, content: Vec<Value>) -> Value {
    json!({"type": kind, "content": content})
}

/// Every node and mark the export promises, as TipTap's JSON.
fn rich_document() -> Value {
    let li = |t: &str| block("listItem", vec![block("paragraph", vec![text(t)])]);
    json!({"type": "doc", "content": [
        {"type": "heading", "attrs": {"level": 1}, "content": [text("Release notes")]},
        {"type": "heading", "attrs": {"level": 3}, "content": [text("Small # heading")]},
        block("paragraph", vec![
            text("Plain, "), marked("bold", json!([{"type": "bold"}])), text(", "),
            marked("italic", json!([{"type": "italic"}])), text(", "),
            marked("gone", json!([{"type": "strike"}])), text(", "),
            marked("x < y && `z`", json!([{"type": "code"}])), text(" and "),
            marked("a link", json!([{"type": "link", "attrs": {"href": "https://example.com/a?b=1&c=2"}}])),
            json!({"type": "hardBreak"}),
            text("after a break <script>alert(1)</script> * not emphasis * [not a link](x) 1. not a list"),
        ]),
        block("paragraph", vec![
            marked("bold ", json!([{"type": "bold"}])),
            marked("both", json!([{"type": "bold"}, {"type": "italic"}])),
            text(" then "),
            marked("linked bold", json!([{"type": "link", "attrs": {"href": "/docs/page"}}, {"type": "bold"}])),
        ]),
        block("bulletList", vec![
            block("listItem", vec![
                block("paragraph", vec![text("one")]),
                block("bulletList", vec![li("nested"), li("nested too")]),
            ]),
            li("two"),
        ]),
        {"type": "orderedList", "attrs": {"start": 3}, "content": [li("third"), li("fourth")]},
        block("taskList", vec![
            json!({"type": "taskItem", "attrs": {"checked": true}, "content": [block("paragraph", vec![text("done")])]}),
            json!({"type": "taskItem", "attrs": {"checked": false}, "content": [
                block("paragraph", vec![text("todo")]),
                block("taskList", vec![json!({"type": "taskItem", "attrs": {"checked": true}, "content": [block("paragraph", vec![text("sub-task")])]})]),
            ]}),
        ]),
        block("blockquote", vec![block("paragraph", vec![text("quoted")]), block("paragraph", vec![text("twice")])]),
        {"type": "codeBlock", "attrs": {"language": "rust"}, "content": [text("fn main() {\n    println!(\"<hi> ```\");\n}")]},
        {"type": "horizontalRule"},
        block("paragraph", vec![json!({"type": "image", "attrs": {"src": "https://example.com/cat.png", "alt": "a cat", "title": "Cat"}})]),
        block("table", vec![
            block("tableRow", vec![
                block("tableHeader", vec![block("paragraph", vec![text("Name")])]),
                block("tableHeader", vec![block("paragraph", vec![text("Value")])]),
            ]),
            block("tableRow", vec![
                block("tableCell", vec![block("paragraph", vec![text("a | b")])]),
                block("tableCell", vec![block("paragraph", vec![marked("1", json!([{"type": "bold"}]))])]),
            ]),
        ]),
        block("paragraph", vec![marked("evil", json!([{"type": "link", "attrs": {"href": "javascript:alert(1)"}}]))]),
    ]})
}

async fn export(app: &TestApp, path: &str, user: &str) -> (u16, String, String) {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(TestApp::token(user))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let disposition = response
        .headers()
        .get("content-disposition")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, disposition, response.text().await.unwrap())
}

#[tokio::test]
async fn tiptap_documents_export_to_the_html_and_markdown_tiptap_itself_renders() {
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let doc = app
        .create_document(&ws, "alice", "Release notes: Q1/Q2")
        .await;
    let built = tiptap(json!({"op": "build", "doc": rich_document()})).await;
    use base64::Engine;
    let update = base64::engine::general_purpose::STANDARD
        .decode(built["update"].as_str().unwrap())
        .unwrap();
    post_update(&app, &doc, "alice", update).await;

    let (status, disposition, html) = export(
        &app,
        &format!("/v1/documents/{doc}/export?format=html"),
        "alice",
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(
        disposition,
        "attachment; filename=\"Release notes_ Q1_Q2.html\"; filename*=UTF-8''Release%20notes_%20Q1_Q2.html"
    );
    assert!(
        !html.contains("<script") && !html.contains("javascript:"),
        "{html}"
    );
    let (_, _, markdown) = export(&app, &format!("/v1/documents/{doc}/export"), "alice").await;
    let compared = tiptap(json!({
        "op": "compare",
        "tiptap_html": built["html"],
        "our_html": html,
        "our_markdown": markdown,
    }))
    .await;
    assert_eq!(
        compared["html_equal"], true,
        "HTML differs from TipTap's:\nours   {}\ntiptap {}",
        compared["ours"], compared["tiptap"]
    );
    assert_eq!(
        compared["markdown_equal"], true,
        "Markdown reads differently:\n{markdown}\nread  {}\ntiptap {}",
        compared["markdown"], compared["tiptap_as_markdown"]
    );

    // Blame and diff read a TipTap document's text nodes, one per line.
    let blame = app
        .get(&format!("/v1/documents/{doc}/blame"), "alice")
        .await;
    assert_eq!(blame.status, 200, "{}", blame.body);
    assert_eq!(blame.body["root"], "default");
    let spans = blame.body["spans"].as_array().unwrap();
    assert!(
        spans[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Release notes"),
        "{spans:?}"
    );
    assert_eq!(spans[1], json!({"text": "\n", "actor": null}));
    assert!(
        spans
            .iter()
            .all(|s| s["actor"] == "user:alice" || s["text"] == "\n"),
        "{spans:?}"
    );
    let diff = app
        .get(&format!("/v1/documents/{doc}/diff?from=0"), "alice")
        .await;
    assert_eq!(diff.status, 200, "{}", diff.body);
    let changes = diff.body["changes"].as_array().unwrap();
    assert!(changes.iter().all(|c| c["op"] == "insert"), "{changes:?}");
    let (_, _, plain) = export(
        &app,
        &format!("/v1/documents/{doc}/export?format=txt"),
        "alice",
    )
    .await;
    assert!(
        plain.starts_with("Release notes\n\nSmall # heading\n\nPlain, bold"),
        "{plain}"
    );
    assert!(
        plain.contains("[x] done") && plain.contains("3. third"),
        "{plain}"
    );
    let (_, _, prosemirror) = export(
        &app,
        &format!("/v1/documents/{doc}/export?format=json"),
        "alice",
    )
    .await;
    let prosemirror: Value = serde_json::from_str(&prosemirror).unwrap();
    assert_eq!(prosemirror["type"], "doc");
    assert_eq!(
        prosemirror["content"][0],
        json!({"type": "heading", "attrs": {"level": 1}, "content": [text("Release notes")]})
    );
    // Any point of history exports too; version 0 is empty.
    let (status, _, empty) = export(
        &app,
        &format!("/v1/documents/{doc}/export?format=md&at_version=0"),
        "alice",
    )
    .await;
    assert_eq!((status, empty.trim()), (200, ""));
    // A plain Y.Text document exports its text (Markdown as is).
    let notes = app.create_document(&ws, "alice", "Notes").await;
    let (update, _) = update_inserting(9, 0, "# Title\n\n*as typed*", &[]);
    post_update(&app, &notes, "alice", update).await;
    let (_, disposition, md) = export(
        &app,
        &format!("/v1/documents/{notes}/export?format=md"),
        "alice",
    )
    .await;
    assert_eq!(md, "# Title\n\n*as typed*");
    assert!(disposition.contains("filename=\"Notes.md\""));
    let (_, _, html) = export(
        &app,
        &format!("/v1/documents/{notes}/export?format=html"),
        "alice",
    )
    .await;
    assert!(html.contains("<p># Title</p><p>*as typed*</p>"), "{html}");

    // Bad input, and someone else's document.
    for (path, status) in [
        (format!("/v1/documents/{doc}/export?format=pdf"), 400),
        (
            format!("/v1/documents/{doc}/export?root=nothing&format=md&x=1"),
            400,
        ),
        (format!("/v1/documents/{doc}/export?at_version=99"), 400),
    ] {
        assert_eq!(export(&app, &path, "alice").await.0, status, "{path}");
    }
    app.create_workspace("mallory", "Evil").await;
    assert_eq!(
        export(&app, &format!("/v1/documents/{doc}/export"), "mallory")
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_workspace_exports_as_a_zip_in_its_folders() {
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    app.add_member(&ws, "alice", "bob", "member").await;
    let top = app.create_document(&ws, "alice", "Overview").await;
    let nested = app
        .post(
            &format!("/v1/workspaces/{ws}/documents"),
            "alice",
            json!({"title": "Q1 plan", "folder": "/plans/2027"}),
        )
        .await;
    assert_eq!(nested.status, 201);
    let nested = nested.body["id"].as_str().unwrap().to_owned();
    let twin = app.create_document(&ws, "alice", "Overview").await;
    let odd = app
        .post(
            &format!("/v1/workspaces/{ws}/documents"),
            "alice",
            json!({"title": "Odd", "folder": "/we\\ird:name"}),
        )
        .await;
    assert_eq!(odd.status, 201, "{}", odd.body);
    for (document, words) in [
        (&top, "top level"),
        (&nested, "in a folder"),
        (&twin, "same title"),
    ] {
        let built = tiptap(json!({"op": "build", "doc": {"type": "doc", "content": [block("paragraph", vec![text(words)])]}})).await;
        use base64::Engine;
        let update = base64::engine::general_purpose::STANDARD
            .decode(built["update"].as_str().unwrap())
            .unwrap();
        post_update(&app, document, "alice", update).await;
    }
    // As of the last command (the odd one; the edits are content, not read models).
    let response = app
        .http
        .get(app.url(&format!("/v1/workspaces/{ws}/export?format=md")))
        .bearer_auth(TestApp::token("bob"))
        .header("X-Collab-Min-Position", odd.position().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let bytes = response.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut body = String::new();
        std::io::Read::read_to_string(&mut file, &mut body).unwrap();
        files.insert(file.name().to_owned(), body);
    }
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    // Folder segments are plain names too (an empty document exports empty).
    assert_eq!(
        names,
        vec![
            "Overview (2).md",
            "Overview.md",
            "plans/2027/Q1 plan.md",
            "we_ird_name/Odd.md"
        ]
    );
    assert_eq!(files["plans/2027/Q1 plan.md"], "in a folder\n");
    assert!(
        files.values().any(|b| b == "top level\n") && files.values().any(|b| b == "same title\n")
    );
    // Outsiders get nothing; formats other than md and html are refused.
    let outsider = export(&app, &format!("/v1/workspaces/{ws}/export"), "mallory").await;
    assert_eq!(outsider.0, 404);
    assert_eq!(
        export(
            &app,
            &format!("/v1/workspaces/{ws}/export?format=json"),
            "alice"
        )
        .await
        .0,
        400
    );
}

#[tokio::test]
async fn a_restore_keeps_to_the_update_size_limit() {
    let app = TestApp::spawn_with(TestEnv::new().await, |settings| {
        settings.live.max_update_bytes = 120;
    })
    .await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let doc = app.create_document(&ws, "alice", "Notes").await;
    // Five small edits make 200 characters; then one deletes them all.
    let mut state = vec![];
    for i in 0..5 {
        let (update, next) = update_inserting(3, i * 40, &"abcdefgh".repeat(5), &state);
        state = next;
        post_update(&app, &doc, "alice", update).await;
    }
    let cleared = {
        let d = yrs::Doc::with_client_id(4);
        let root = d.get_or_insert_text("content");
        d.transact_mut()
            .apply_update(yrs::Update::decode_v1(&state).unwrap())
            .unwrap();
        let mut txn = d.transact_mut();
        root.remove_range(&mut txn, 0, 200);
        txn.encode_update_v1()
    };
    post_update(&app, &doc, "alice", cleared).await;
    let before = app.env.count_events().await;
    // Bringing the 200 characters back takes one update over the limit: refused, nothing
    // stored.
    let restored = app
        .post(
            &format!("/v1/documents/{doc}/history/restore"),
            "alice",
            json!({"at_version": 5}),
        )
        .await;
    assert_eq!(restored.status, 413, "{}", restored.body);
    assert_eq!(app.env.count_events().await, before);
}
