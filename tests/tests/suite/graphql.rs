//! GraphQL (issue 16): queries and mutations over HTTP under the same rules as REST (the
//! same errors, as `extensions.code`/`status`), search, federation entities, depth and
//! complexity limits, the committed SDL, and subscriptions from the stock npm `graphql-ws`
//! client against the real binary.

use std::path::PathBuf;

use collab_tests::{mint, CollabProcess, Http, TestEnv};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

struct Gql {
    url: String,
    client: reqwest::Client,
}

impl Gql {
    /// Runs a GraphQL request as `user`, waiting for `position` (read-your-writes).
    async fn run(&self, user: &str, query: &str, variables: Value, position: i64) -> Value {
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(mint(user, 3600))
            .header("x-collab-min-position", position.to_string())
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

fn error_code(body: &Value) -> (&str, u64) {
    let error = &body["errors"][0]["extensions"];
    (
        error["code"].as_str().unwrap_or("none"),
        error["status"].as_u64().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_queries_and_mutations_follow_the_rest_rules() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let gql = Gql {
        url: format!("{}/v1/graphql", server.http()),
        client: reqwest::Client::new(),
    };
    // Mutations: a workspace, a document, a rename and a move.
    let created = gql
        .run(
            "alice",
            "mutation { createWorkspace(name: \"Acme\") { id name role position } }",
            json!({}),
            0,
        )
        .await;
    let ws = created["data"]["createWorkspace"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(created["data"]["createWorkspace"]["role"], "owner");
    let doc = gql
        .run(
            "alice",
            "mutation ($ws: ID!) { createDocument(workspaceId: $ws, title: \"Plan\", folder: \"/q3\") { id version position } }",
            json!({"ws": ws}),
            0,
        )
        .await;
    let id = doc["data"]["createDocument"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let renamed = gql
        .run(
            "alice",
            "mutation ($id: ID!) { renameDocument(id: $id, title: \"Quarterly plan\") { title version position } }",
            json!({"id": id}),
            0,
        )
        .await;
    assert_eq!(renamed["data"]["renameDocument"]["title"], "Quarterly plan");
    let at = renamed["data"]["renameDocument"]["position"]
        .as_i64()
        .unwrap();

    // Queries: the caller, their workspaces and documents, a document with its role and
    // history — the rename is there (read-your-writes with the mutation's position).
    let me = gql
        .run(
            "alice",
            "{ me { id workspaces { name role documents(limit: 10) { documents { id title folder role } nextCursor } members { userId role } } } }",
            json!({}),
            at,
        )
        .await;
    assert!(me["errors"].is_null(), "{me}");
    assert_eq!(me["data"]["me"]["id"], "alice");
    let workspace = &me["data"]["me"]["workspaces"][0];
    assert_eq!(workspace["name"], "Acme");
    assert_eq!(
        workspace["documents"]["documents"][0],
        json!({"id": id, "title": "Quarterly plan", "folder": "/q3", "role": "owner"})
    );
    assert_eq!(
        workspace["members"],
        json!([{"userId": "alice", "role": "owner"}])
    );
    let document = gql
        .run(
            "alice",
            "query ($id: ID!) { document(id: $id) { title history { entries { kind actor } } } }",
            json!({"id": id}),
            at,
        )
        .await;
    let kinds: Vec<&str> = document["data"]["document"]["history"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"DocumentRenamed"), "{document}");

    // Search, with the same syntax and access rules as GET /v1/search.
    let found = gql
        .run(
            "alice",
            "{ search(q: \"quarterly\") { total results { title titleHighlight { text highlight } } } }",
            json!({}),
            at,
        )
        .await;
    assert_eq!(found["data"]["search"]["total"], 1, "{found}");
    assert_eq!(
        found["data"]["search"]["results"][0]["titleHighlight"][0],
        json!({"text": "Quarterly", "highlight": true})
    );
    let bad = gql
        .run("alice", "{ search(q: \"\") { total } }", json!({}), 0)
        .await;
    assert_eq!(error_code(&bad), ("invalid_parameter", 400));

    // Someone else: the document is not visible (null, as REST's 404), and a command on
    // it is refused with REST's error; shared as viewer, they read it but cannot rename.
    let hidden = gql
        .run(
            "bob",
            "query ($id: ID!) { document(id: $id) { title } }",
            json!({"id": id}),
            at,
        )
        .await;
    assert!(hidden["data"]["document"].is_null(), "{hidden}");
    let refused = gql
        .run(
            "bob",
            "mutation ($id: ID!) { renameDocument(id: $id, title: \"Mine\") { title } }",
            json!({"id": id}),
            0,
        )
        .await;
    assert_eq!(error_code(&refused), ("not_found", 404), "{refused}");
    let shared = gql
        .run(
            "alice",
            "mutation ($id: ID!) { shareDocument(id: $id, userId: \"bob\", role: \"viewer\") { principal role position } }",
            json!({"id": id}),
            0,
        )
        .await;
    let at = shared["data"]["shareDocument"]["position"]
        .as_i64()
        .unwrap();
    let visible = gql
        .run(
            "bob",
            "query ($id: ID!) { document(id: $id) { title role } }",
            json!({"id": id}),
            at,
        )
        .await;
    assert_eq!(
        visible["data"]["document"],
        json!({"title": "Quarterly plan", "role": "viewer"})
    );
    let forbidden = gql
        .run(
            "bob",
            "mutation ($id: ID!) { renameDocument(id: $id, title: \"Mine\") { title } }",
            json!({"id": id}),
            0,
        )
        .await;
    assert_eq!(error_code(&forbidden).1, 403, "{forbidden}");
    let bad_title = gql
        .run(
            "alice",
            "mutation ($id: ID!) { renameDocument(id: $id, title: \"\") { title } }",
            json!({"id": id}),
            0,
        )
        .await;
    assert_eq!(error_code(&bad_title).1, 422, "{bad_title}");

    // Federation: the subgraph's SDL and entity references.
    let service = gql.run("alice", "{ _service { sdl } }", json!({}), 0).await;
    let sdl = service["data"]["_service"]["sdl"].as_str().unwrap();
    assert!(sdl.contains("documentEvents(documentId: ID!)"), "{sdl}");
    for entity in ["Workspace", "Document", "User"] {
        assert!(
            sdl.contains(&format!("type {entity} @key(fields: \"id\")")),
            "{entity} is not an entity:\n{sdl}"
        );
    }
    let entities = "query ($r: [_Any!]!) { _entities(representations: $r) { ... on Document { title } ... on User { id } } }";
    let representations =
        json!({"r": [{"__typename": "Document", "id": id}, {"__typename": "User", "id": "carol"}]});
    let resolved = gql.run("alice", entities, representations.clone(), 0).await;
    assert_eq!(
        resolved["data"]["_entities"],
        json!([{"title": "Quarterly plan"}, {"id": "carol"}])
    );
    let resolved = gql.run("carol", entities, representations, 0).await;
    assert!(resolved["data"]["_entities"][0].is_null(), "{resolved}");

    // Abusive queries are refused before they run.
    let too_deep = gql
        .run(
            "alice",
            "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } }",
            json!({}),
            0,
        )
        .await;
    assert!(
        too_deep["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{too_deep}"
    );
    let aliases: String = (0..600).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let too_costly = gql
        .run("alice", &format!("{{ {aliases} }}"), json!({}), 0)
        .await;
    assert!(
        too_costly["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{too_costly}"
    );

    // No token: the same 401 as every route.
    let anonymous = gql
        .client
        .post(&gql.url)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let garbage = gql
        .client
        .post(&gql.url)
        .bearer_auth(mint("alice", 3600))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn the_committed_sdl_is_the_schema() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/schema.graphql");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        committed,
        collab_api::graphql::sdl(),
        "docs/schema.graphql is out of date: run `collab graphql sdl > docs/schema.graphql`"
    );
}

/// Runs tests/node/graphql.mjs: a stock graphql-ws client subscribing to a document's
/// events and renaming it over the same socket.
async fn graphql_ws(server: &CollabProcess, token: &str, document: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        dir.join("node_modules/graphql-ws").exists(),
        "run `npm ci --prefix tests/node` first (ops/dev/test.sh does)"
    );
    let output = tokio::process::Command::new("node")
        .arg("graphql.mjs")
        .arg(format!("{}/v1/graphql", server.ws()))
        .arg(token)
        .arg(document)
        .arg("Renamed live")
        .current_dir(&dir)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "graphql.mjs: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_reach_a_stock_graphql_ws_client() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (_, document) = http.workspace_with_document("alice").await;

    let seen = graphql_ws(&server, &mint("alice", 3600), &document).await;
    assert!(seen["error"].is_null(), "{seen}");
    let rename = seen["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "DocumentRenamed")
        .unwrap_or_else(|| panic!("{seen}"))
        .clone();
    assert_eq!(rename["actor"], "user:alice");
    assert!(
        rename["data"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Renamed live"),
        "{rename}"
    );
    // The event is the one a mutation of this socket committed.
    let positions: Vec<i64> = seen["mutations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"]["renameDocument"]["position"].as_i64().unwrap())
        .collect();
    assert!(
        positions.contains(&rename["position"].as_i64().unwrap()),
        "{seen}"
    );

    // Someone who cannot read the document gets an error, not its events.
    let outsider = graphql_ws(&server, &mint("mallory", 3600), &document).await;
    assert!(
        outsider["events"].as_array().unwrap().is_empty(),
        "{outsider}"
    );
    assert!(
        outsider["error"].to_string().contains("not found"),
        "{outsider}"
    );
    // No token: the connection is refused.
    let anonymous = graphql_ws(&server, "", &document).await;
    assert!(
        anonymous["events"].as_array().unwrap().is_empty(),
        "{anonymous}"
    );
    assert!(!anonymous["error"].is_null(), "{anonymous}");
}

type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// A stock graphql-ws client watching `document`'s events as `token`: its process and the
/// lines it prints (tests/node/graphql.mjs --watch).
async fn watch(
    server: &CollabProcess,
    token: &str,
    document: &str,
) -> (tokio::process::Child, Lines) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    let mut watcher = tokio::process::Command::new("node")
        .arg("graphql.mjs")
        .arg(format!("{}/v1/graphql", server.ws()))
        .arg(token)
        .arg(document)
        .arg("--watch")
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let lines = tokio::io::BufReader::new(watcher.stdout.take().unwrap()).lines();
    (watcher, lines)
}

/// Alice renames the document (REST).
async fn rename(http: &Http, document: &str, title: String) {
    let response = http
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/documents/{document}"),
            "alice",
            Some(json!({"title": title})),
        )
        .await;
    assert!(response.status.is_success(), "{}", response.body);
}

/// Makes events (`poke(round)`) until the watcher prints one: the subscription is in
/// place (the protocol does not say when). A bounded poll; the first line.
async fn subscribed<F, Fut>(lines: &mut Lines, poke: F) -> Value
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for round in 1..50 {
        poke(round).await;
        if let Ok(line) =
            tokio::time::timeout(std::time::Duration::from_millis(300), lines.next_line()).await
        {
            return serde_json::from_str(&line.unwrap().expect("a line")).unwrap();
        }
    }
    panic!("the subscription never delivered an event");
}

/// The watcher's next line (bounded).
async fn next(lines: &mut Lines) -> Value {
    let line = tokio::time::timeout(std::time::Duration::from_secs(25), lines.next_line())
        .await
        .expect("a line from the watcher")
        .unwrap()
        .expect("the watcher printed a line");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_hides_owner_events_and_ends_when_access_ends() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, document) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    // Bob (an editor through the default role, not an owner) watches the document.
    let (_watcher, mut lines) = watch(&server, &mint("bob", 3600), &document).await;
    let rename = |title: String| rename(&http, &document, title);
    let first = subscribed(&mut lines, |round| rename(format!("Warm-up {round}"))).await;
    assert_eq!(first["event"]["type"], "DocumentRenamed", "{first}");
    // Drain renames already in flight, then: a share link (owners only) and a rename.
    let link = http
        .call(
            reqwest::Method::POST,
            &format!("/v1/documents/{document}/links"),
            "alice",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert!(link.status.is_success(), "{}", link.body);
    rename("After the link".into()).await;
    loop {
        let line = next(&mut lines).await;
        let kind = line["event"]["type"].as_str().unwrap_or("").to_owned();
        assert_ne!(
            kind, "ShareLinkCreated",
            "a non-owner saw a share link: {line}"
        );
        assert!(line["error"].is_null(), "{line}");
        if line["event"]["data"]["title"] == "After the link" {
            break;
        }
        assert_eq!(kind, "DocumentRenamed", "{line}");
    }
    // Bob is removed from the workspace: the subscription ends.
    let removed = http
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/workspaces/{ws}/members/bob"),
            "alice",
            None,
        )
        .await;
    assert!(removed.status.is_success(), "{}", removed.body);
    let end = next(&mut lines).await;
    assert_ne!(end["error"], "still subscribed after 20 s");
    assert!(
        end["completed"] == true || !end["error"].is_null(),
        "the subscription outlived the membership: {end}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_working_on_an_open_socket() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, document) = http.workspace_with_document("alice").await;
    let account = http
        .call(
            reqwest::Method::POST,
            &format!("/v1/workspaces/{ws}/service-accounts"),
            "alice",
            Some(json!({"name": "Indexer", "scopes": ["documents:read"]})),
        )
        .await;
    assert!(account.status.is_success(), "{}", account.body);
    let key = account.body["key"].as_str().unwrap().to_owned();
    let id = account.body["id"].as_str().unwrap().to_owned();
    let (_watcher, mut lines) = watch(&server, &key, &document).await;
    let first = subscribed(&mut lines, |round| {
        rename(&http, &document, format!("Seen {round}"))
    })
    .await;
    assert_eq!(first["event"]["type"], "DocumentRenamed", "{first}");
    let revoked = http
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/workspaces/{ws}/service-accounts/{id}"),
            "alice",
            None,
        )
        .await;
    assert!(revoked.status.is_success(), "{}", revoked.body);
    rename(&http, &document, "After the revocation".into()).await;
    loop {
        let line = next(&mut lines).await;
        assert_ne!(
            line["event"]["data"]["title"], "After the revocation",
            "a revoked key still receives events: {line}"
        );
        assert_ne!(line["error"], "still subscribed after 20 s");
        if line["completed"] == true || !line["error"].is_null() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_graphql_body_is_refused() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[("COLLAB_MAX_BODY_BYTES", "4096")]).await;
    let padding = "x".repeat(10_000);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/graphql", server.http()))
        .bearer_auth(mint("alice", 3600))
        .json(&json!({"query": format!("{{ me {{ id }} }} # {padding}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_root_field_counts_against_the_rate_limit() {
    let env = TestEnv::new().await;
    // The harness turns limits off; here a user may make 3 requests at once, then 1/s.
    let server = CollabProcess::start(
        &env,
        &[
            ("COLLAB_RATE_LIMIT_USER_PER_SECOND", "1"),
            ("COLLAB_RATE_LIMIT_USER_BURST", "3"),
        ],
    )
    .await;
    let gql = Gql {
        url: format!("{}/v1/graphql", server.http()),
        client: reqwest::Client::new(),
    };
    // One request, six root fields: the request and its first field count once, the
    // others each once more, so the burst runs out inside the request.
    let aliases: String = (0..6).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let body = gql
        .run("alice", &format!("{{ {aliases} }}"), json!({}), 0)
        .await;
    let limited = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter(|e| e["extensions"]["code"] == "rate_limited")
                .count()
        })
        .unwrap_or(0);
    assert!(limited >= 3, "{body}");
    assert_eq!(body["data"]["a0"]["id"], "alice", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_threads_through_graphql_follow_the_rest_rules_and_reach_subscribers() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let gql = Gql {
        url: format!("{}/v1/graphql", server.http()),
        client: reqwest::Client::new(),
    };
    let (ws, document) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    let update = http
        .client
        .post(format!("{}/v1/documents/{document}/updates", http.base))
        .bearer_auth(mint("alice", 600))
        .header("content-type", "application/octet-stream")
        .body({
            use yrs::{ReadTxn, Text, Transact};
            let doc = yrs::Doc::new();
            let text = doc.get_or_insert_text("text");
            text.insert(&mut doc.transact_mut(), 0, "Meet at noon on Friday");
            let update = doc
                .transact()
                .encode_state_as_update_v1(&yrs::StateVector::default());
            update
        })
        .send()
        .await
        .unwrap();
    assert!(update.status().is_success());

    // Bob watches the document's events with a stock graphql-ws client.
    let (_watcher, mut lines) = watch(&server, &mint("bob", 600), &document).await;
    let open = "mutation ($d: ID!, $b: String!) { openThread(documentId: $d, root: \"text\", from: 8, to: 12, body: $b) { threadId commentId anchor { quote from to } mentionsWithoutAccess position } }";
    let first = subscribed(&mut lines, |round| {
        let (gql, document) = (&gql, &document);
        async move {
            let opened = gql
                .run(
                    "alice",
                    open,
                    json!({"d": document, "b": format!("Noon? <@nobody> ({round})")}),
                    0,
                )
                .await;
            assert!(opened["errors"].is_null(), "{opened}");
            assert_eq!(opened["data"]["openThread"]["anchor"]["quote"], "noon");
            assert_eq!(
                opened["data"]["openThread"]["mentionsWithoutAccess"],
                json!(["nobody"])
            );
        }
    })
    .await;
    assert_eq!(first["event"]["type"], "ThreadOpened", "{first}");
    let thread = gql
        .run(
            "bob",
            "query ($d: ID!) { document(id: $d) { threads { id } } }",
            json!({"d": document}),
            first["event"]["position"].as_i64().unwrap(),
        )
        .await["data"]["document"]["threads"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A reply and a resolution reach the subscriber; the query shows them.
    let reply = gql
        .run(
            "bob",
            "mutation ($t: ID!) { replyToThread(threadId: $t, body: \"Fine by me\") { commentId position } }",
            json!({"t": thread}),
            0,
        )
        .await;
    assert!(reply["errors"].is_null(), "{reply}");
    let mut seen = vec![];
    while !seen
        .iter()
        .any(|e: &Value| e["event"]["type"] == "CommentAdded")
    {
        seen.push(next(&mut lines).await);
    }
    let resolved = gql
        .run(
            "bob",
            "mutation ($t: ID!) { resolveThread(id: $t) { version position } }",
            json!({"t": thread}),
            0,
        )
        .await;
    let at = resolved["data"]["resolveThread"]["position"]
        .as_i64()
        .unwrap();
    while !seen
        .iter()
        .any(|e: &Value| e["event"]["type"] == "ThreadResolved")
    {
        seen.push(next(&mut lines).await);
    }
    let listed = gql
        .run(
            "bob",
            "query ($d: ID!) { document(id: $d) { threads(status: \"resolved\") { id status anchor { quote orphaned } comments { body author } } } }",
            json!({"d": document}),
            at,
        )
        .await;
    let threads = &listed["data"]["document"]["threads"];
    let ours = threads
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == thread.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(ours["status"], "resolved");
    assert_eq!(
        ours["comments"][1],
        json!({"body": "Fine by me", "author": "bob"})
    );

    // The same rules as REST: only authors edit; outsiders see no document.
    let comment = reply["data"]["replyToThread"]["commentId"]
        .as_str()
        .unwrap();
    let edit = gql
        .run(
            "alice",
            "mutation ($c: ID!) { editComment(id: $c, body: \"mine\") { position } }",
            json!({"c": comment}),
            0,
        )
        .await;
    assert_eq!(error_code(&edit), ("forbidden", 403), "{edit}");
    let outsider = gql
        .run(
            "mallory",
            "mutation ($t: ID!) { replyToThread(threadId: $t, body: \"hi\") { position } }",
            json!({"t": thread}),
            0,
        )
        .await;
    assert_eq!(error_code(&outsider).1, 404, "{outsider}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_through_graphql_are_the_callers_own_and_are_marked_read() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let gql = Gql {
        url: format!("{}/v1/graphql", server.http()),
        client: reqwest::Client::new(),
    };
    let (ws, document) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    http.write_text(&document, "alice", "Agenda for Monday")
        .await;
    let opened = gql
        .run(
            "alice",
            "mutation ($d: ID!) { openThread(documentId: $d, root: \"text\", from: 0, to: 6, body: \"<@bob> yours?\") { position } }",
            json!({"d": document}),
            0,
        )
        .await;
    let at = opened["data"]["openThread"]["position"].as_i64().unwrap();
    let list = "query ($u: Boolean) { notifications(unread: $u) { unreadCount notifications { id kind read excerpt actorId documentTitle emailMode } } }";
    let bobs = gql.run("bob", list, json!({"u": true}), at).await;
    let page = &bobs["data"]["notifications"];
    assert_eq!(page["unreadCount"], 1, "{bobs}");
    let mention = &page["notifications"][0];
    assert_eq!(mention["kind"], "mention");
    assert_eq!(mention["excerpt"], "<@bob> yours?");
    assert_eq!(mention["actorId"], "alice");
    assert_eq!(mention["documentTitle"], "Notes");
    assert_eq!(mention["emailMode"], "immediate");
    let id = mention["id"].as_str().unwrap().to_owned();
    // Alice has none, and cannot mark bob's.
    let alices = gql.run("alice", list, json!({}), at).await;
    assert_eq!(alices["data"]["notifications"]["notifications"], json!([]));
    let mark =
        "mutation ($ids: [ID!]) { markNotificationsRead(ids: $ids) { unreadCount position } }";
    let refused = gql.run("alice", mark, json!({"ids": [id]}), 0).await;
    assert_eq!(error_code(&refused), ("not_found", 404), "{refused}");
    let refused = gql.run("bob", mark, json!({"ids": ["nope"]}), 0).await;
    assert_eq!(error_code(&refused).1, 422, "{refused}");
    let read = gql.run("bob", mark, json!({"ids": [id]}), 0).await;
    assert_eq!(
        read["data"]["markNotificationsRead"]["unreadCount"], 0,
        "{read}"
    );
    let at = read["data"]["markNotificationsRead"]["position"]
        .as_i64()
        .unwrap();
    let bobs = gql.run("bob", list, json!({"u": false}), at).await;
    assert_eq!(
        bobs["data"]["notifications"]["notifications"][0]["read"],
        true
    );
}
