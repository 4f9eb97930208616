//! Search (issue 16): what people may read and nothing else (membership, roles, shares,
//! guests; an unshare counts at once), web-search syntax, accents, prefixes while typing,
//! snippets, filters, a live stock Yjs client's words becoming findable, archive, bad
//! input; the index kept by every serving instance, resumed after a restart and rebuilt
//! from the log to the same entries.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use collab_tests::{eventually, mint, CollabProcess, Http, NodeClient, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use yrs::{ReadTxn, Text, Transact, WriteTxn, XmlFragment};

/// A Yjs update holding `text` in a text root, or as paragraphs of an XML fragment (as a
/// TipTap editor writes it).
fn update(text: &str, xml: bool) -> Vec<u8> {
    let doc = yrs::Doc::new();
    {
        let mut txn = doc.transact_mut();
        if xml {
            let fragment = txn.get_or_insert_xml_fragment("default");
            for (i, line) in text.split('\n').enumerate() {
                let paragraph = fragment.insert(
                    &mut txn,
                    i as u32,
                    yrs::XmlElementPrelim::empty("paragraph"),
                );
                paragraph.insert(&mut txn, 0, yrs::XmlTextPrelim::new(line));
            }
        } else {
            txn.get_or_insert_text("text").push(&mut txn, text);
        }
    }
    let update = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    update
}

struct Fixture {
    http: Http,
    client: reqwest::Client,
}

impl Fixture {
    async fn call(&self, method: Method, path: &str, user: &str, body: Option<Value>) -> Value {
        let response = self.http.call(method, path, user, body).await;
        assert!(
            response.status.is_success(),
            "{path}: {} {}",
            response.status,
            response.body
        );
        response.body
    }

    async fn document(&self, ws: &str, user: &str, title: &str, folder: &str) -> String {
        self.call(
            Method::POST,
            &format!("/v1/workspaces/{ws}/documents"),
            user,
            Some(json!({"title": title, "folder": folder})),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A command as `user`; its position.
    async fn command(&self, method: Method, path: &str, user: &str, body: Option<Value>) -> i64 {
        self.call(method, path, user, body).await["position"]
            .as_i64()
            .unwrap()
    }

    /// Appends content; returns the position.
    async fn write(&self, document: &str, user: &str, text: &str, xml: bool) -> i64 {
        let response = self
            .client
            .post(format!(
                "{}/v1/documents/{document}/updates",
                self.http.base
            ))
            .bearer_auth(mint(user, 3600))
            .header("content-type", "application/octet-stream")
            .body(update(text, xml))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let body: Value = response.json().await.unwrap();
        body["position"].as_i64().unwrap()
    }

    /// A search as `user`, waiting for `position` to be reflected.
    async fn search_raw(&self, user: &str, query: &str, position: i64) -> (StatusCode, Value) {
        let response = self
            .client
            .get(format!("{}/v1/search?{query}", self.http.base))
            .bearer_auth(mint(user, 3600))
            .header("x-collab-min-position", position.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn search(&self, user: &str, query: &str, position: i64) -> Value {
        let (status, body) = self.search_raw(user, query, position).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        body
    }

    /// The titles found for `q` (URL-encoded here).
    async fn titles(&self, user: &str, q: &str, position: i64) -> BTreeSet<String> {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .finish();
        titles(&self.search(user, &query, position).await)
    }
}

fn titles(body: &Value) -> BTreeSet<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["title"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn position(body: &Value) -> i64 {
    body["position"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_what_each_person_may_read() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let f = Fixture {
        http: Http::new(server.http()),
        client: reqwest::Client::new(),
    };
    let ws = f
        .call(
            Method::POST,
            "/v1/workspaces",
            "alice",
            Some(json!({"name": "Acme"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let plan = f.document(&ws, "alice", "Quarterly plan", "/").await;
    let roadmap = f.document(&ws, "alice", "Roadmap", "/").await;
    let design = f
        .document(&ws, "alice", "Design notes", "/eng/protocols")
        .await;
    f.write(
        &plan,
        "alice",
        "The café budget for the collaboration offsite.\nEverything else waits.",
        false,
    )
    .await;
    f.write(&roadmap, "alice", "Launch checklist and dates", true)
        .await;
    let mut at = f
        .write(
            &design,
            "alice",
            "A collaboration protocol\nwith a budget of messages",
            true,
        )
        .await;

    // Words, phrases, exclusions, OR, accents, prefixes, title matches.
    assert_eq!(
        f.titles("alice", "collaboration", at).await,
        set(&["Quarterly plan", "Design notes"])
    );
    assert_eq!(
        f.titles("alice", "\"budget for\" ", at).await,
        set(&["Quarterly plan"])
    );
    assert_eq!(
        f.titles("alice", "collaboration -protocol ", at).await,
        set(&["Quarterly plan"])
    );
    assert_eq!(
        f.titles("alice", "launch OR messages ", at).await,
        set(&["Roadmap", "Design notes"])
    );
    assert_eq!(
        f.titles("alice", "CAFE ", at).await,
        set(&["Quarterly plan"])
    );
    assert_eq!(
        f.titles("alice", "Café", at).await,
        set(&["Quarterly plan"])
    );
    assert_eq!(
        f.titles("alice", "colla", at).await,
        set(&["Quarterly plan", "Design notes"])
    );
    // A finished word (space after it) is not a prefix.
    assert!(f.titles("alice", "colla ", at).await.is_empty());
    assert_eq!(f.titles("alice", "roadm", at).await, set(&["Roadmap"]));
    // A word in the title ranks above the same word in the text.
    let budget = f.search("alice", "q=design%20OR%20budget%20", at).await;
    assert_eq!(budget["results"][0]["title"], "Design notes", "{budget}");
    // Filters: folder (and below), workspace, kind.
    let eng = f.search("alice", "q=budget&folder=/eng", at).await;
    assert_eq!(titles(&eng), set(&["Design notes"]));
    assert_eq!(eng["results"][0]["folder"], "/eng/protocols");
    let other = "00000000-0000-7000-8000-000000000000";
    assert_eq!(
        f.search("alice", &format!("q=budget&workspace={other}"), at)
            .await["total"],
        0
    );
    assert_eq!(
        f.search("alice", &format!("q=budget&workspace={ws}"), at)
            .await["total"],
        2
    );
    assert_eq!(
        f.search("alice", "q=budget&kind=comment", at).await["total"],
        0
    );

    // Snippets highlight the matched words in the document's own text.
    let hit = f.search("alice", "q=offsite", at).await["results"][0].clone();
    let pieces = hit["snippet"].as_array().unwrap();
    let text: String = pieces.iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert!(text.contains("collaboration offsite"), "{hit}");
    let marked: Vec<&str> = pieces
        .iter()
        .filter(|p| p["highlight"] == true)
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(marked, vec!["offsite"]);
    assert_eq!(hit["document_id"], plan.as_str());
    // Prefix expansions are highlighted too; the title's match as well.
    let hit = f.search("alice", "q=roadm", at).await["results"][0].clone();
    assert_eq!(
        hit["title_highlight"],
        json!([{"text": "Roadmap", "highlight": true}])
    );

    // Paging: one result a page, the cursor leads to the other.
    let first = f.search("alice", "q=collaboration&limit=1", at).await;
    assert_eq!(first["total"], 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = f
        .search(
            "alice",
            &format!("q=collaboration&limit=1&cursor={cursor}"),
            at,
        )
        .await;
    assert!(second["next_cursor"].is_null());
    assert_ne!(first["results"][0]["title"], second["results"][0]["title"]);

    // Outsiders see nothing; a share grants exactly that document, an unshare takes it
    // away at once (read-your-writes on the unshare's position).
    assert!(f.titles("bob", "collaboration", at).await.is_empty());
    at = f
        .command(
            Method::PUT,
            &format!("/v1/documents/{plan}/permissions/bob"),
            "alice",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(
        f.titles("bob", "collaboration", at).await,
        set(&["Quarterly plan"])
    );
    at = f
        .command(
            Method::DELETE,
            &format!("/v1/documents/{plan}/permissions/bob"),
            "alice",
            None,
        )
        .await;
    assert!(f.titles("bob", "collaboration", at).await.is_empty());

    // A guest sees only what is shared with them; a member everything (default role).
    f.http.add_member(&ws, "alice", "gina", "guest").await;
    at = f.http.add_member(&ws, "alice", "mark", "member").await;
    assert!(f.titles("gina", "collaboration", at).await.is_empty());
    assert_eq!(
        f.titles("mark", "collaboration", at).await,
        set(&["Quarterly plan", "Design notes"])
    );
    at = f
        .command(
            Method::PUT,
            &format!("/v1/documents/{design}/permissions/gina"),
            "alice",
            Some(json!({"role": "commenter"})),
        )
        .await;
    assert_eq!(
        f.titles("gina", "collaboration", at).await,
        set(&["Design notes"])
    );
    // Members without a default document role find only their own documents.
    at = f
        .command(
            Method::PATCH,
            &format!("/v1/workspaces/{ws}"),
            "alice",
            Some(json!({"default_document_role": "none"})),
        )
        .await;
    assert!(f.titles("mark", "collaboration", at).await.is_empty());
    at = f
        .command(
            Method::POST,
            &format!("/v1/workspaces/{ws}/documents"),
            "mark",
            Some(json!({"title": "Mark's collaboration ideas"})),
        )
        .await;
    let found = f.search("mark", "q=collaboration%20", at).await;
    assert_eq!(titles(&found), set(&["Mark's collaboration ideas"]));
    assert!(position(&found) >= at);

    // Renamed: found by the new title; archived: not found; restored: found again.
    at = f
        .command(
            Method::PATCH,
            &format!("/v1/documents/{roadmap}"),
            "alice",
            Some(json!({"title": "Launch calendar"})),
        )
        .await;
    assert_eq!(
        f.titles("alice", "calendar", at).await,
        set(&["Launch calendar"])
    );
    at = f
        .command(
            Method::POST,
            &format!("/v1/documents/{roadmap}/archive"),
            "alice",
            None,
        )
        .await;
    assert!(f.titles("alice", "calendar", at).await.is_empty());
    at = f
        .command(
            Method::POST,
            &format!("/v1/documents/{roadmap}/restore"),
            "alice",
            None,
        )
        .await;
    assert_eq!(
        f.titles("alice", "calendar", at).await,
        set(&["Launch calendar"])
    );

    // A stock Yjs client's words become findable within seconds of being typed.
    let mut client = NodeClient::open(&server.ws(), &plan, &mint("alice", 3600)).await;
    client.insert(None, " Zephyrs arrive on Friday.").await;
    let typed = Instant::now();
    eventually(
        "a typed word to be findable",
        Duration::from_secs(10),
        || {
            let f = &f;
            async move { (!f.titles("alice", "zephyrs", 0).await.is_empty()).then_some(()) }
        },
    )
    .await;
    let findable = typed.elapsed();
    assert!(findable < Duration::from_secs(5), "{findable:?}");
    client.kill().await;

    // Bad input: a clear 400 (or 401), nothing else.
    for (query, name) in [
        ("", "q"),
        ("q=", "q"),
        ("q=-only", "q"),
        ("q=a&kind=page", "kind"),
        ("q=a&folder=eng", "folder"),
        ("q=a&workspace=nope", "workspace"),
        ("q=a&cursor=garbage", "cursor"),
        // A well-formed cursor past the first 1,000 results: not paged.
        ("q=a&cursor=czEwMDA", "cursor"),
        ("q=a&limit=0", "limit"),
    ] {
        let (status, body) = f.search_raw("alice", query, 0).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "invalid_parameter", "{query}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(name),
            "{query}: {body}"
        );
    }
    let long = format!("q={}", "a".repeat(501));
    assert_eq!(
        f.search_raw("alice", &long, 0).await.0,
        StatusCode::BAD_REQUEST
    );
    let anonymous = f
        .client
        .get(format!("{}/v1/search?q=budget", f.http.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_keeps_its_index_which_restarts_and_rebuilds_identically() {
    let env = TestEnv::new().await;
    let dir = tempdir("search-a");
    let other_dir = tempdir("search-b");
    let rebuilt_dir = tempdir("search-rebuilt");
    let dir_env = dir.to_str().unwrap().to_owned();
    let mut server = CollabProcess::start(&env, &[("COLLAB_SEARCH_DIR", &dir_env)]).await;
    // A second instance serving the API only, with an index of its own.
    let other_env = other_dir.to_str().unwrap().to_owned();
    let other = CollabProcess::start(
        &env,
        &[("COLLAB_SEARCH_DIR", &other_env), ("COLLAB_ROLES", "api")],
    )
    .await;
    let f = Fixture {
        http: Http::new(server.http()),
        client: reqwest::Client::new(),
    };
    let g = Fixture {
        http: Http::new(other.http()),
        client: reqwest::Client::new(),
    };
    let (ws, doc) = f.http.workspace_with_document("alice").await;
    let mut at = f
        .write(&doc, "alice", "Sourdough starter notes", true)
        .await;
    for i in 0..5 {
        let id = f
            .document(&ws, "alice", &format!("Bread {i}"), "/bread")
            .await;
        at = f
            .write(
                &id,
                "alice",
                &format!("Rye and spelt, batch {i}"),
                i % 2 == 0,
            )
            .await;
    }
    assert_eq!(f.titles("alice", "sourdough", at).await, set(&["Notes"]));
    assert_eq!(f.search("alice", "q=spelt", at).await["total"], 5);
    // The other instance's own index has the same.
    assert_eq!(g.titles("alice", "sourdough", at).await, set(&["Notes"]));
    assert_eq!(g.search("alice", "q=spelt", at).await["total"], 5);

    // Restart: the index resumes from its checkpoint, and follows new edits.
    assert!(server.terminate().await, "collab exits cleanly");
    server.restart().await;
    assert_eq!(f.search("alice", "q=spelt", at).await["total"], 5);
    at = f.write(&doc, "alice", " and levain", true).await;
    assert_eq!(f.titles("alice", "levain", at).await, set(&["Notes"]));

    // A rebuild from the log gives the same entries, entry for entry.
    assert!(server.terminate().await, "collab exits cleanly");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(collab_tests::collab_bin())
            .args(args)
            .env("COLLAB_DATABASE_URL", &env.database_url)
            .env("COLLAB_LOG", "warn")
            .output()
            .expect("collab runs");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let live = run(&["search", "dump", "--dir", &dir_env]);
    let rebuilt_env = rebuilt_dir.to_str().unwrap().to_owned();
    let report = run(&["search", "rebuild", "--dir", &rebuilt_env]);
    assert!(report.contains("rebuilt to position"), "{report}");
    let rebuilt = run(&["search", "dump", "--dir", &rebuilt_env]);
    assert_eq!(live.lines().count(), 6, "{live}");
    assert!(live.contains("levain"));
    assert_eq!(live, rebuilt);
    // The same directory given to a server of another database: the index is refilled
    // from that log, never served stale.
    let elsewhere = TestEnv::new().await;
    let mut moved = CollabProcess::start(&elsewhere, &[("COLLAB_SEARCH_DIR", &dir_env)]).await;
    let h = Fixture {
        http: Http::new(moved.http()),
        client: reqwest::Client::new(),
    };
    let (_, fresh) = h.http.workspace_with_document("alice").await;
    let at = h.write(&fresh, "alice", "Only here", false).await;
    assert_eq!(h.titles("alice", "here", at).await, set(&["Notes"]));
    assert_eq!(h.search("alice", "q=spelt", at).await["total"], 0);
    assert!(moved.terminate().await, "collab exits cleanly");
    let dumped = run(&["search", "dump", "--dir", &dir_env]);
    assert_eq!(dumped.lines().count(), 1, "{dumped}");
    drop(other);
    for dir in [dir, other_dir, rebuilt_dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("collab-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_found_by_those_who_may_read_their_document() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let f = Fixture {
        http: Http::new(server.http()),
        client: reqwest::Client::new(),
    };
    let ws = f
        .call(
            Method::POST,
            "/v1/workspaces",
            "alice",
            Some(json!({"name": "Acme"})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let doc = f.document(&ws, "alice", "Budget review", "/fin").await;
    f.write(&doc, "alice", "Totals for the year", false).await;
    let opened = f
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/threads"),
            "alice",
            Some(json!({"anchor": {"root": "text", "from": 0, "to": 6},
                        "body": "Please check the zephyrine totals"})),
        )
        .await;
    let (thread, comment) = (&opened["thread_id"], &opened["comment_id"]);
    let at = opened["position"].as_i64().unwrap();
    let found = |body: &Value| body["results"].as_array().unwrap().len();

    let hits = f.search("alice", "q=zephyrine&kind=comment", at).await;
    let hit = &hits["results"][0];
    assert_eq!(found(&hits), 1, "{hits}");
    assert_eq!(
        (&hit["kind"], &hit["title"], &hit["folder"]),
        (&json!("comment"), &json!("Budget review"), &json!("/fin"))
    );
    assert_eq!(
        (&hit["thread_id"], &hit["comment_id"], &hit["document_id"]),
        (thread, comment, &json!(doc))
    );
    let highlighted: Vec<&Value> = hit["snippet"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["highlight"] == true)
        .map(|p| &p["text"])
        .collect();
    assert_eq!(highlighted, vec!["zephyrine"]);
    assert_eq!(found(&f.search("alice", "q=zephyrine", at).await), 1);
    assert_eq!(
        found(&f.search("alice", "q=zephyrine&kind=document", at).await),
        0
    );
    // The document's title finds the document, not its comments.
    assert_eq!(
        found(&f.search("alice", "q=budget&kind=comment", at).await),
        0
    );

    // Someone who cannot read the document finds nothing; a share grants it, an unshare
    // takes it away at once.
    assert_eq!(found(&f.search("gus", "q=zephyrine", at).await), 0);
    let shared = f
        .command(
            Method::PUT,
            &format!("/v1/documents/{doc}/permissions/gus"),
            "alice",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(found(&f.search("gus", "q=zephyrine", shared).await), 1);
    let unshared = f
        .command(
            Method::DELETE,
            &format!("/v1/documents/{doc}/permissions/gus"),
            "alice",
            None,
        )
        .await;
    assert_eq!(found(&f.search("gus", "q=zephyrine", unshared).await), 0);

    // Edits replace the entry; a rename shows in it; deletion and archiving remove it.
    let edited = f
        .command(
            Method::PATCH,
            &format!("/v1/comments/{}", comment.as_str().unwrap()),
            "alice",
            Some(json!({"body": "Please check the quorvex totals"})),
        )
        .await;
    assert_eq!(found(&f.search("alice", "q=zephyrine", edited).await), 0);
    assert_eq!(found(&f.search("alice", "q=quorvex", edited).await), 1);
    let renamed = f
        .command(
            Method::PATCH,
            &format!("/v1/documents/{doc}"),
            "alice",
            Some(json!({"title": "Budget final"})),
        )
        .await;
    let hits = f.search("alice", "q=quorvex", renamed).await;
    assert_eq!(hits["results"][0]["title"], "Budget final", "{hits}");
    let reply = f
        .call(
            Method::POST,
            &format!("/v1/threads/{}/comments", thread.as_str().unwrap()),
            "alice",
            Some(json!({"body": "quorvex again"})),
        )
        .await;
    let at = reply["position"].as_i64().unwrap();
    assert_eq!(found(&f.search("alice", "q=quorvex", at).await), 2);
    let deleted = f
        .command(
            Method::DELETE,
            &format!("/v1/comments/{}", comment.as_str().unwrap()),
            "alice",
            None,
        )
        .await;
    assert_eq!(found(&f.search("alice", "q=quorvex", deleted).await), 1);
    let archived = f
        .command(
            Method::POST,
            &format!("/v1/documents/{doc}/archive"),
            "alice",
            None,
        )
        .await;
    assert_eq!(found(&f.search("alice", "q=quorvex", archived).await), 0);
}
