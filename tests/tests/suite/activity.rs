//! Activity feeds (issue 14, item 8): a document's and a workspace's entries in sentences —
//! created, renamed, moved, shared, edited (grouped by author and burst), commented,
//! resolved —, pages that add up to the whole, only what the caller may open (roles,
//! shares, revocations), bad input, and a rebuild that equals the live fold.

use collab_tests::{collab_bin, mint, CollabProcess, Http, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn feed(http: &Http, path: &str, user: &str, at: i64) -> (StatusCode, Value) {
    let response = http
        .client
        .get(format!("{}{path}", http.base))
        .bearer_auth(mint(user, 600))
        .header("X-Collab-Min-Position", at.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// `(kind, actor, document title)` of each entry, newest first.
fn entries(page: &Value) -> Vec<(String, String, String)> {
    page["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("a feed: {page}"))
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["actor"]["id"].as_str().unwrap().to_owned(),
                e["document_title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn e(kind: &str, actor: &str, title: &str) -> (String, String, String) {
    (kind.into(), actor.into(), title.into())
}

async fn command(http: &Http, method: Method, path: &str, user: &str, body: Option<Value>) -> i64 {
    let r = http.call(method.clone(), path, user, body).await;
    assert!(r.status.is_success(), "{user} {method} {path}: {}", r.body);
    r.position()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_tell_what_happened_to_what_the_caller_may_open() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, plan) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    http.add_member(&ws, "alice", "gina", "guest").await;
    let secret = http
        .call(
            Method::POST,
            &format!("/v1/workspaces/{ws}/documents"),
            "alice",
            Some(json!({"title": "Secret"})),
        )
        .await;
    let secret_id = secret.body["id"].as_str().unwrap().to_owned();
    command(
        &http,
        Method::PATCH,
        &format!("/v1/documents/{plan}"),
        "alice",
        Some(json!({"title": "Plan"})),
    )
    .await;
    command(
        &http,
        Method::PATCH,
        &format!("/v1/documents/{plan}"),
        "alice",
        Some(json!({"folder": "/projects"})),
    )
    .await;
    // Two edits by alice in one burst are one entry; bob's are his own.
    http.write_text(&plan, "alice", "First lines. ").await;
    http.write_text(&plan, "alice", "More. ").await;
    http.write_text(&plan, "bob", "Bob was here. ").await;
    let opened = http
        .call(
            Method::POST,
            &format!("/v1/documents/{plan}/threads"),
            "bob",
            Some(json!({"anchor": {"root": "text", "from": 0, "to": 3}, "body": "Is this the final plan?"})),
        )
        .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let thread = opened.body["thread_id"].as_str().unwrap();
    let at = command(
        &http,
        Method::POST,
        &format!("/v1/threads/{thread}/resolve"),
        "alice",
        None,
    )
    .await;

    let (status, page) = feed(&http, &format!("/v1/documents/{plan}/activity"), "bob", at).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        entries(&page),
        vec![
            e("resolved", "alice", "Plan"),
            e("commented", "bob", "Plan"),
            e("edited", "bob", "Plan"),
            e("edited", "alice", "Plan"),
            e("moved", "alice", "Plan"),
            e("renamed", "alice", "Plan"),
            e("created", "alice", "Plan"),
        ]
    );
    let list = page["entries"].as_array().unwrap();
    assert_eq!(list[1]["excerpt"], "Is this the final plan?");
    assert_eq!(
        list[3]["edits"],
        json!({"edits": 2, "inserted": 19, "deleted": 0})
    );
    assert_eq!(
        list[3]["summary"],
        "alice edited the document (2 edits, +19 −0 characters)"
    );
    assert_eq!(list[4]["summary"], "alice moved the document to /projects");
    assert_eq!(list[5]["summary"], "alice renamed the document to “Plan”");
    assert_eq!(list[6]["summary"], "alice created “Notes”");

    // The workspace feed: both documents, titled.
    let (_, all) = feed(&http, &format!("/v1/workspaces/{ws}/activity"), "alice", at).await;
    assert_eq!(entries(&all).len(), 8);
    assert!(entries(&all).contains(&e("created", "alice", "Secret")));
    assert_eq!(
        all["entries"][0]["summary"],
        "alice resolved a thread on “Plan”"
    );
    // Pages of two add up to the whole, newest first, without repeats.
    let mut paged = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.map_or("?limit=2".to_owned(), |c| format!("?limit=2&cursor={c}"));
        let (_, page) = feed(
            &http,
            &format!("/v1/workspaces/{ws}/activity{query}"),
            "alice",
            0,
        )
        .await;
        paged.extend(entries(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, entries(&all));

    // Who sees what: a guest nothing until a share, then that document only, and nothing
    // of it once unshared; a member without the workspace's default role, only documents
    // they made or were given; an outsider, no feed at all.
    let (_, gina) = feed(&http, &format!("/v1/workspaces/{ws}/activity"), "gina", at).await;
    assert_eq!(entries(&gina), vec![]);
    let at = command(
        &http,
        Method::PUT,
        &format!("/v1/documents/{plan}/permissions/gina"),
        "alice",
        Some(json!({"role": "viewer"})),
    )
    .await;
    let (_, gina) = feed(&http, &format!("/v1/workspaces/{ws}/activity"), "gina", at).await;
    assert!(
        entries(&gina).iter().all(|(_, _, title)| title == "Plan"),
        "{gina}"
    );
    assert_eq!(entries(&gina)[0], e("shared", "alice", "Plan"));
    assert_eq!(
        gina["entries"][0]["summary"],
        "alice shared “Plan” with gina as viewer"
    );
    let at = command(
        &http,
        Method::DELETE,
        &format!("/v1/documents/{plan}/permissions/gina"),
        "alice",
        None,
    )
    .await;
    let (_, gina) = feed(&http, &format!("/v1/workspaces/{ws}/activity"), "gina", at).await;
    assert_eq!(entries(&gina), vec![]);
    let (status, _) = feed(&http, &format!("/v1/documents/{plan}/activity"), "gina", at).await;
    assert_eq!(status, 404);
    let at = command(
        &http,
        Method::PATCH,
        &format!("/v1/workspaces/{ws}"),
        "alice",
        Some(json!({"default_document_role": "none"})),
    )
    .await;
    let (_, bob) = feed(&http, &format!("/v1/workspaces/{ws}/activity"), "bob", at).await;
    assert_eq!(entries(&bob), vec![]);
    let (status, _) = feed(
        &http,
        &format!("/v1/documents/{secret_id}/activity"),
        "bob",
        at,
    )
    .await;
    assert_eq!(status, 404);
    for path in [
        format!("/v1/workspaces/{ws}/activity"),
        format!("/v1/documents/{plan}/activity"),
    ] {
        let (status, _) = feed(&http, &path, "mallory", at).await;
        assert_eq!(status, 404, "{path}");
    }
    for path in [
        format!("/v1/workspaces/{ws}/activity?cursor=nope"),
        format!("/v1/workspaces/{ws}/activity?limit=0"),
        "/v1/workspaces/not-a-uuid/activity".to_owned(),
        "/v1/documents/not-a-uuid/activity".to_owned(),
    ] {
        let (status, body) = feed(&http, &path, "alice", 0).await;
        assert_eq!(status, 400, "{path}: {body}");
    }

    // A rebuild of the read model (and of the history it reads) gives the same feed.
    let (_, live) = feed(&http, &format!("/v1/workspaces/{ws}/activity"), "alice", at).await;
    for model in ["activity", "history"] {
        let output = std::process::Command::new(collab_bin())
            .args(["projections", "rebuild", model])
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
    }
    let (_, rebuilt) = feed(&http, &format!("/v1/workspaces/{ws}/activity"), "alice", at).await;
    assert_eq!(rebuilt, live);
}
