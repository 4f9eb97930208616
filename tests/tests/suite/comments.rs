//! Comment threads (issue 14, item 3): threads anchored in the text by stock Yjs clients
//! (relative positions) and by HTTP clients (offsets), the passage following the text as
//! two people edit through two instances, replies, mentions, edits, deletion, resolution,
//! reactions, who may do what, bad input, and a rebuild that equals the live fold.

use std::time::Duration;

use collab_tests::{
    collab_bin, eventually, log_head, mint, CollabProcess, Http, NodeClient, TestEnv,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn threads(http: &Http, doc: &str, user: &str, status: &str, at: i64) -> Value {
    let response = http
        .client
        .get(format!(
            "{}/v1/documents/{doc}/threads?status={status}",
            http.base
        ))
        .bearer_auth(mint(user, 600))
        .header("X-Collab-Min-Position", at.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["threads"].clone()
}

/// The thread `id` in a listing.
fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["thread_id"] == id)
        .unwrap_or_else(|| panic!("thread {id} in {list}"))
}

/// Waits until the anchor of `thread` (as instance `http` resolves it) quotes `quote`.
async fn anchored(http: &Http, doc: &str, thread: &str, quote: Value, at: i64) -> Value {
    eventually(
        &format!("thread {thread} to quote {quote}"),
        Duration::from_secs(20),
        || async {
            let list = threads(http, doc, "alice", "all", at).await;
            let anchor = find(&list, thread)["anchor"].clone();
            (anchor["quote"] == quote).then_some(anchor)
        },
    )
    .await
}

async fn events_of(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_category = 'thread'")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_follows_its_passage_while_two_people_edit_through_two_instances() {
    let env = TestEnv::new().await;
    let one = CollabProcess::start(&env, &[]).await;
    let two = CollabProcess::start(&env, &[]).await;
    let http = Http::new(one.http());
    let http_two = Http::new(two.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;

    let mut a = NodeClient::open(&one.ws(), &doc, &mint("alice", 3600)).await;
    let mut b = NodeClient::open(&two.ws(), &doc, &mint("bob", 3600)).await;
    let text = "The quick brown fox jumps over the lazy dog.";
    a.insert(Some(0), text).await;
    b.wait_text(text).await;
    eventually(
        "both instances hold the text",
        Duration::from_secs(20),
        || {
            let (one, two) = (&http, &http_two);
            let doc = &doc;
            async move {
                (one.content_text(doc, "alice").await == text
                    && two.content_text(doc, "alice").await == text)
                    .then_some(())
            }
        },
    )
    .await;

    // An HTTP client anchors by offsets; a Yjs client by its own relative positions.
    let opened = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/threads"),
            "alice",
            Some(json!({"anchor": {"root": "text", "from": 4, "to": 15}, "body": "Too **fast**?"})),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(
        (
            &opened.body["anchor"]["quote"],
            &opened.body["anchor"]["from"]
        ),
        (&json!("quick brown"), &json!(4))
    );
    let quick = opened.body["thread_id"].as_str().unwrap().to_owned();
    let range = b
        .call(json!({"op": "relativeRange", "from": 16, "to": 19}))
        .await;
    let opened = http_two
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/threads"),
            "bob",
            Some(json!({
                "anchor": {"root": "text", "start": range["start"], "end": range["end"]},
                "body": "A fox? <@alice> <@nobody-here>",
            })),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["anchor"]["quote"], "fox");
    assert_eq!(
        opened.body["mentions_without_access"],
        json!(["nobody-here"])
    );
    let fox = opened.body["thread_id"].as_str().unwrap().to_owned();
    let at = opened.position();

    // Typed before, inside, and right after the passages, concurrently on both instances.
    a.insert(Some(0), "Very ").await;
    b.call(json!({"op": "insertNear", "before": "brown", "text": "(red) "}))
        .await;
    b.call(json!({"op": "insertNear", "after": "fox", "text": "!"}))
        .await;
    let expected = "Very The quick (red) brown fox! jumps over the lazy dog.";
    a.wait_text(expected).await;
    b.wait_text(expected).await;
    let anchor = anchored(&http, &doc, &quick, json!("quick (red) brown"), at).await;
    assert_eq!((&anchor["from"], &anchor["to"]), (&json!(9), &json!(26)));
    let anchor = anchored(&http_two, &doc, &fox, json!("fox"), at).await;
    assert_eq!((&anchor["from"], &anchor["to"]), (&json!(27), &json!(30)));

    // Partly deleted: the passage narrows; wholly deleted: the thread is orphaned, kept.
    a.call(json!({"op": "deleteText", "text": "quick "})).await;
    b.call(json!({"op": "deleteText", "text": " fox!"})).await;
    let expected = "Very The (red) brown jumps over the lazy dog.";
    a.wait_text(expected).await;
    b.wait_text(expected).await;
    anchored(&http, &doc, &quick, json!("(red) brown"), at).await;
    let orphan = anchored(&http, &doc, &fox, Value::Null, at).await;
    assert_eq!(
        (&orphan["orphaned"], &orphan["original_quote"]),
        (&json!(true), &json!("fox"))
    );

    // Replies, edits (authors only), reactions (once per person), deletion (tombstone).
    let reply = http_two
        .call(
            Method::POST,
            &format!("/v1/threads/{quick}/comments"),
            "bob",
            Some(json!({"body": "Agreed, <@alice>."})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["mentions_without_access"], json!([]));
    let bobs = reply.body["comment_id"].as_str().unwrap().to_owned();
    let edit = |user: &'static str, body: &'static str| {
        let (http, bobs) = (&http, &bobs);
        async move {
            http.call(
                Method::PATCH,
                &format!("/v1/comments/{bobs}"),
                user,
                Some(json!({ "body": body })),
            )
            .await
        }
    };
    assert_eq!(
        edit("alice", "mine now").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(edit("bob", "Agreed.").await.status, StatusCode::OK);
    let thumbs = "%F0%9F%91%8D";
    for user in ["alice", "alice", "bob"] {
        let r = http
            .call(
                Method::PUT,
                &format!("/v1/comments/{bobs}/reactions/{thumbs}"),
                user,
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = http
        .call(
            Method::DELETE,
            &format!("/v1/comments/{bobs}/reactions/{thumbs}"),
            "bob",
            None,
        )
        .await;
    let list = threads(&http, &doc, "bob", "open", r.position()).await;
    let comments = &find(&list, &quick)["comments"];
    assert_eq!(comments.as_array().unwrap().len(), 2, "{comments}");
    assert_eq!(comments[1]["body"], "Agreed.");
    assert!(comments[1]["edited_at"].is_string());
    assert_eq!(
        comments[1]["reactions"],
        json!([{"emoji": "👍", "count": 1, "users": ["alice"]}])
    );
    // The document's owner deletes someone else's comment; its text leaves, a tombstone stays.
    let r = http
        .call(
            Method::DELETE,
            &format!("/v1/comments/{bobs}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = threads(&http, &doc, "bob", "open", r.position()).await;
    let deleted = &find(&list, &quick)["comments"][1];
    assert_eq!(
        (&deleted["deleted"], &deleted["body"], &deleted["reactions"]),
        (&json!(true), &Value::Null, &json!([]))
    );

    // Resolve and reopen; the listing filters by status.
    let r = http_two
        .call(
            Method::POST,
            &format!("/v1/threads/{fox}/resolve"),
            "bob",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let open = threads(&http, &doc, "alice", "open", r.position()).await;
    let resolved = threads(&http, &doc, "alice", "resolved", r.position()).await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(find(&resolved, &fox)["resolved_by"], "bob");
    // With If-Match: a stale version is refused, the current one accepted.
    let version = find(&resolved, &fox)["version"].as_i64().unwrap();
    for (seen, status) in [(version - 1, 409), (version, 200)] {
        let r = http
            .client
            .post(format!("{}/v1/threads/{fox}/reopen", http.base))
            .bearer_auth(mint("alice", 600))
            .header("If-Match", format!("\"{seen}\""))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
    }

    // Viewers read; people without access see nothing.
    http.call(
        Method::PUT,
        &format!("/v1/documents/{doc}/permissions/vic"),
        "alice",
        Some(json!({"role": "viewer"})),
    )
    .await;
    let r = http
        .call(
            Method::GET,
            &format!("/v1/documents/{doc}/threads"),
            "vic",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = events_of(&env.pool).await;
    let refusals = [
        (
            "vic",
            Method::POST,
            format!("/v1/threads/{quick}/comments"),
            Some(json!({"body": "hi"})),
            403,
        ),
        (
            "vic",
            Method::POST,
            format!("/v1/threads/{quick}/resolve"),
            None,
            403,
        ),
        (
            "dan",
            Method::GET,
            format!("/v1/threads/{quick}"),
            None,
            404,
        ),
        (
            "dan",
            Method::GET,
            format!("/v1/documents/{doc}/threads"),
            None,
            404,
        ),
        (
            "dan",
            Method::POST,
            format!("/v1/threads/{quick}/comments"),
            Some(json!({"body": "hi"})),
            404,
        ),
        (
            "dan",
            Method::PUT,
            format!("/v1/comments/{bobs}/reactions/{thumbs}"),
            None,
            404,
        ),
        // Bad input changes nothing.
        (
            "alice",
            Method::POST,
            format!("/v1/threads/{quick}/comments"),
            Some(json!({"body": "x".repeat(10_001)})),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/threads/{quick}/comments"),
            Some(json!({"body": (0..51).map(|n| format!("<@u{n}>")).collect::<String>()})),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/threads/{quick}/comments"),
            Some(json!({"body": " \n "})),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/threads/{quick}/comments"),
            Some(json!({"body": "a", "extra": 1})),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/documents/{doc}/threads"),
            Some(json!({"anchor": {"root": "text", "from": 3, "to": 999}, "body": "x"})),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/documents/{doc}/threads"),
            Some(json!({"anchor": {"root": "text", "from": 3, "to": 3}, "body": "x"})),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/documents/{doc}/threads"),
            Some(json!({"anchor": {"root": "nope", "from": 0, "to": 1}, "body": "x"})),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/documents/{doc}/threads"),
            Some(
                json!({"anchor": {"root": "text", "from": 0, "to": 1, "start": "AA=="}, "body": "x"}),
            ),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/documents/{doc}/threads"),
            Some(
                json!({"anchor": {"root": "text", "start": "not base64!", "end": "AA=="}, "body": "x"}),
            ),
            422,
        ),
        (
            "alice",
            Method::POST,
            format!("/v1/documents/{doc}/threads"),
            Some(
                json!({"anchor": {"root": "text", "start": "/////w==", "end": "AA=="}, "body": "x"}),
            ),
            422,
        ),
        (
            "alice",
            Method::PUT,
            format!("/v1/comments/{bobs}/reactions/x"),
            None,
            400,
        ),
        (
            "alice",
            Method::PUT,
            format!("/v1/comments/{bobs}/reactions/{thumbs}"),
            None,
            404,
        ),
        (
            "alice",
            Method::POST,
            "/v1/threads/0192d3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d/comments".into(),
            Some(json!({"body": "hi"})),
            404,
        ),
        (
            "alice",
            Method::PATCH,
            "/v1/comments/0192d3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d".into(),
            Some(json!({"body": "hi"})),
            404,
        ),
        (
            "alice",
            Method::GET,
            "/v1/threads/not-a-uuid".into(),
            None,
            400,
        ),
        (
            "alice",
            Method::GET,
            format!("/v1/documents/{doc}/threads?status=maybe"),
            None,
            400,
        ),
    ];
    for (user, method, path, body, status) in refusals {
        let r = http.call(method.clone(), &path, user, body).await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{user} {method} {path}: {}",
            r.body
        );
    }
    assert_eq!(
        events_of(&env.pool).await,
        before,
        "refusals changed nothing"
    );

    // A rebuild of the read model from the log equals the live fold.
    let head = log_head(&env.pool).await;
    let live = threads(&http, &doc, "alice", "all", head).await;
    let output = std::process::Command::new(collab_bin())
        .args(["projections", "rebuild", "comments"])
        .env("COLLAB_DATABASE_URL", &env.database_url)
        .env("COLLAB_NATS_URL", &env.nats_url)
        .env("COLLAB_SUBJECT_PREFIX", &env.prefix)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(threads(&http, &doc, "alice", "all", 0).await, live);
}

/// Opens a document's live feed as `user` on `http` (resuming after `last`).
async fn feed(http: &Http, doc: &str, user: &str, last: Option<&str>) -> reqwest::Response {
    let mut request = http
        .client
        .get(format!("{}/v1/documents/{doc}/events/live", http.base))
        .bearer_auth(mint(user, 600));
    if let Some(last) = last {
        request = request.header("Last-Event-ID", last);
    }
    request.send().await.unwrap()
}

/// The next `n` events of a feed, each within a bounded wait.
async fn next_events(
    stream: &mut (impl futures::Stream<
        Item = Result<
            eventsource_stream::Event,
            eventsource_stream::EventStreamError<reqwest::Error>,
        >,
    > + Unpin),
    n: usize,
) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let mut out = vec![];
    while out.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("an event within 20 s")
            .expect("the stream goes on")
            .unwrap();
        if event.event == "message" {
            out.push((event.id, serde_json::from_str(&event.data).unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_documents_comment_events_are_pushed_live_to_its_readers_and_resume() {
    use eventsource_stream::Eventsource;
    let env = TestEnv::new().await;
    let one = CollabProcess::start(&env, &[]).await;
    let two = CollabProcess::start(&env, &[]).await;
    let http = Http::new(one.http());
    let http_two = Http::new(two.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    let other = http
        .call(
            Method::POST,
            &format!("/v1/workspaces/{ws}/documents"),
            "alice",
            Some(json!({"title": "Other"})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut writer = NodeClient::open(&one.ws(), &doc, &mint("alice", 600)).await;
    writer.insert(Some(0), "Hello world").await;
    let mut other_writer = NodeClient::open(&one.ws(), &other, &mint("alice", 600)).await;
    other_writer.insert(Some(0), "Elsewhere").await;
    eventually("the text on the server", Duration::from_secs(20), || {
        let (http, doc, other) = (&http_two, &doc, &other);
        async move {
            (http.content_text(doc, "alice").await == "Hello world"
                && http.content_text(other, "alice").await == "Elsewhere")
                .then_some(())
        }
    })
    .await;

    // Bob listens on instance one; Alice comments through instance two.
    let response = feed(&http, &doc, "bob", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut live = response.bytes_stream().eventsource();
    let open = |doc: &str, body: &str| {
        let (http, path, body) = (
            &http_two,
            format!("/v1/documents/{doc}/threads"),
            json!({"anchor": {"root": "text", "from": 0, "to": 5}, "body": body}),
        );
        async move {
            let r = http.call(Method::POST, &path, "alice", Some(body)).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body
        }
    };
    let opened = open(&doc, "First!").await;
    let thread = opened["thread_id"].as_str().unwrap().to_owned();
    let first = next_events(&mut live, 1).await;
    assert_eq!(first[0].1["type"], "ThreadOpened");
    assert_eq!(first[0].1["data"]["body"], "First!");
    assert_eq!(first[0].1["data"]["document_id"], json!(doc));
    // Another document's thread is not this feed's; the next reply is.
    open(&other, "Not here").await;
    let reply = http_two
        .call(
            Method::POST,
            &format!("/v1/threads/{thread}/comments"),
            "alice",
            Some(json!({"body": "Second"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let second = next_events(&mut live, 1).await;
    assert_eq!(
        (&second[0].1["type"], &second[0].1["data"]["body"]),
        (&json!("CommentAdded"), &json!("Second"))
    );
    assert_eq!(second[0].0, reply.position().to_string());

    // A reconnect with Last-Event-ID resumes right after it, nothing lost or repeated.
    drop(live);
    let response = feed(&http_two, &doc, "bob", Some(&first[0].0)).await;
    let mut resumed = response.bytes_stream().eventsource();
    let again = next_events(&mut resumed, 1).await;
    assert_eq!(again[0].0, second[0].0);

    // People who cannot read the document get nothing; bad input is refused.
    assert_eq!(feed(&http, &doc, "mallory", None).await.status(), 404);
    assert_eq!(
        feed(&http, &doc, "bob", Some("minus one")).await.status(),
        400
    );
    let r = http
        .client
        .get(format!(
            "{}/v1/documents/{doc}/events/live?category=document",
            http.base
        ))
        .bearer_auth(mint("bob", 600))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// What `change` does to `doc` (a copy of the server's state), as one update.
fn edit_of(
    doc: &yrs::Doc,
    change: impl FnOnce(&yrs::XmlFragmentRef, &mut yrs::TransactionMut<'_>),
) -> Vec<u8> {
    use yrs::{ReadTxn, Transact};
    let before = doc.transact().state_vector();
    let fragment = doc.get_or_insert_xml_fragment("default");
    change(&fragment, &mut doc.transact_mut());
    let update = doc.transact().encode_state_as_update_v1(&before);
    update
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_in_a_tiptap_document_follow_its_paragraphs() {
    use yrs::updates::decoder::Decode;
    use yrs::{XmlElementPrelim, XmlFragment, XmlTextPrelim};
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (_, doc) = http.workspace_with_document("alice").await;

    // Two paragraphs, as TipTap holds them (fragment `default`).
    let local = yrs::Doc::new();
    let update = edit_of(&local, |fragment, txn| {
        for (i, text) in ["Plans for spring", "Budget and hiring"].iter().enumerate() {
            let p = fragment.insert(txn, i as u32, XmlElementPrelim::empty("paragraph"));
            p.insert(txn, 0, XmlTextPrelim::new(*text));
        }
    });
    let at = http.post_update(&doc, "alice", update).await;

    // Offsets count the text nodes one per line: a passage across the two paragraphs.
    let opened = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/threads"),
            "alice",
            Some(json!({"anchor": {"root": "default", "from": 10, "to": 23}, "body": "Which spring?"})),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["anchor"]["quote"], "spring\nBudget");
    let thread = opened.body["thread_id"].as_str().unwrap().to_owned();
    let listed = threads(&http, &doc, "alice", "open", opened.position().max(at)).await;
    let anchor = &find(&listed, &thread)["anchor"];
    // The positions come back for a Yjs editor to place the passage itself.
    for end in ["start", "end"] {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(anchor[end].as_str().unwrap())
            .unwrap();
        yrs::StickyIndex::decode_v1(&bytes).expect("a relative position");
    }

    // A heading typed above and words inside (at the start of its second line): the
    // passage follows.
    let update = edit_of(&local, |fragment, txn| {
        let p = fragment.insert(txn, 0, XmlElementPrelim::empty("heading"));
        p.insert(txn, 0, XmlTextPrelim::new("Q3"));
    });
    http.post_update(&doc, "alice", update).await;
    let update = edit_of(&local, |fragment, txn| {
        use yrs::Text;
        let Some(yrs::XmlOut::Element(second)) = fragment.get(txn, 2) else {
            panic!("the second paragraph")
        };
        let Some(yrs::XmlOut::Text(text)) = second.get(txn, 0) else {
            panic!("its text")
        };
        text.insert(txn, 0, "(new) ");
    });
    let at = http.post_update(&doc, "alice", update).await;
    let anchor = anchored(&http, &doc, &thread, json!("spring\n(new) Budget"), at).await;
    assert_eq!((&anchor["from"], &anchor["to"]), (&json!(13), &json!(32)));

    // A passage in one paragraph, which is then deleted: the thread is orphaned.
    let opened = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/threads"),
            "alice",
            Some(json!({"anchor": {"root": "default", "from": 0, "to": 2}, "body": "Q3 or Q4?"})),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["anchor"]["quote"], "Q3");
    let q3 = opened.body["thread_id"].as_str().unwrap().to_owned();
    let update = edit_of(&local, |fragment, txn| fragment.remove_range(txn, 0, 1));
    let at = http.post_update(&doc, "alice", update).await;
    eventually(
        "the heading's thread to be orphaned",
        Duration::from_secs(20),
        || async {
            let list = threads(&http, &doc, "alice", "all", at).await;
            let anchor = find(&list, &q3)["anchor"].clone();
            (anchor["orphaned"] == true && anchor["original_quote"] == "Q3").then_some(())
        },
    )
    .await;
    // The other thread is where it was, one line up.
    let anchor = anchored(&http, &doc, &thread, json!("spring\n(new) Budget"), at).await;
    assert_eq!(anchor["from"], 10);
}
