//! The HTTP API end to end (in process, real Postgres and NATS): every route, read-your-
//! writes, authentication, visibility, roles, bad input and concurrency.

use std::time::Duration;

use collab_tests::{eventually, mint, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn ids(listing: &Value, key: &str) -> Vec<String> {
    listing[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_members_and_documents_through_their_whole_lifecycle() {
    let app = TestApp::spawn().await;
    let (ws, position) = app.create_workspace("alice", "  Acme  ").await;

    let listing = app.get_at("/v1/workspaces", "alice", position).await;
    assert_eq!(listing.status, 200);
    assert_eq!(
        listing.body["workspaces"][0]["name"], "Acme",
        "names are trimmed"
    );
    assert_eq!(listing.body["workspaces"][0]["role"], "owner");

    let renamed = app
        .patch(
            &format!("/v1/workspaces/{ws}"),
            "alice",
            json!({"name": "Acme Inc"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    let added = app
        .post(
            &format!("/v1/workspaces/{ws}/members"),
            "alice",
            json!({"user_id": "bob", "role": "member"}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let bobs = app.get_at("/v1/workspaces", "bob", added.position()).await;
    assert_eq!(bobs.body["workspaces"][0]["name"], "Acme Inc");
    assert_eq!(bobs.body["workspaces"][0]["role"], "member");
    let members = app
        .get(&format!("/v1/workspaces/{ws}/members"), "bob")
        .await;
    let roles: Vec<(String, String)> = members.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap().into(),
                m["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            ("alice".into(), "owner".into()),
            ("bob".into(), "member".into())
        ]
    );

    // Documents: create, read, rename + move, archive, restore, delete.
    let created = app
        .post(
            &format!("/v1/workspaces/{ws}/documents"),
            "bob",
            json!({"title": "Plan", "folder": "/q1/"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let doc = created.body["id"].as_str().unwrap().to_owned();
    let fetched = app
        .get_at(&format!("/v1/documents/{doc}"), "alice", created.position())
        .await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["folder"], "/q1");
    assert_eq!(fetched.body["created_by"], "bob");
    let updated = app
        .patch(
            &format!("/v1/documents/{doc}"),
            "bob",
            json!({"title": "Plan v2", "folder": "/q2"}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["version"], 3);
    let archived = app
        .post(&format!("/v1/documents/{doc}/archive"), "bob", json!({}))
        .await;
    assert_eq!(archived.status, 200);
    let again = app
        .post(&format!("/v1/documents/{doc}/archive"), "bob", json!({}))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["code"], "already_archived");
    let frozen = app
        .patch(
            &format!("/v1/documents/{doc}"),
            "bob",
            json!({"title": "x"}),
        )
        .await;
    assert_eq!(frozen.status, 409);
    let docs = |filter: &'static str| format!("/v1/workspaces/{ws}/documents{filter}");
    let p = archived.position();
    assert!(ids(&app.get_at(&docs(""), "bob", p).await.body, "documents").is_empty());
    assert_eq!(
        ids(
            &app.get_at(&docs("?archived=only"), "bob", p).await.body,
            "documents"
        ),
        vec![doc.clone()]
    );
    assert_eq!(
        ids(
            &app.get_at(&docs("?archived=include"), "bob", p).await.body,
            "documents"
        ),
        vec![doc.clone()]
    );
    let restored = app
        .post(&format!("/v1/documents/{doc}/restore"), "bob", json!({}))
        .await;
    assert_eq!(restored.status, 200);
    let view = app
        .get_at(&format!("/v1/documents/{doc}"), "bob", restored.position())
        .await;
    assert_eq!(
        (view.body["title"].clone(), view.body["archived"].clone()),
        (json!("Plan v2"), json!(false))
    );

    // Members delete only their own documents; owners any.
    let alices = app
        .post(&docs(""), "alice", json!({"title": "Alice's"}))
        .await;
    let alices = alices.body["id"].as_str().unwrap().to_owned();
    let refused = app.delete(&format!("/v1/documents/{alices}"), "bob").await;
    assert_eq!(refused.status, 403);
    let deleted = app.delete(&format!("/v1/documents/{doc}"), "alice").await;
    assert_eq!(deleted.status, 200);
    let gone = app
        .get_at(&format!("/v1/documents/{doc}"), "alice", deleted.position())
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        app.post(&format!("/v1/documents/{doc}/restore"), "alice", json!({}))
            .await
            .status,
        404
    );

    // Role changes and removal.
    let promoted = app
        .patch(
            &format!("/v1/workspaces/{ws}/members/bob"),
            "alice",
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(promoted.status, 200);
    let left = app
        .delete(&format!("/v1/workspaces/{ws}/members/bob"), "bob")
        .await;
    assert_eq!(left.status, 200, "anyone may leave");
    let after = app.get_at("/v1/workspaces", "bob", left.position()).await;
    assert!(after.body["workspaces"].as_array().unwrap().is_empty());
    let last_owner = app
        .delete(&format!("/v1/workspaces/{ws}/members/alice"), "alice")
        .await;
    assert_eq!(last_owner.status, 409);
    assert_eq!(last_owner.body["code"], "last_owner");
}

#[tokio::test]
async fn document_listings_page_newest_first() {
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let mut created = vec![];
    let mut last = 0;
    for n in 0..5 {
        let r = app
            .post(
                &format!("/v1/workspaces/{ws}/documents"),
                "alice",
                json!({"title": format!("D{n}")}),
            )
            .await;
        last = r.position();
        created.push(r.body["id"].as_str().unwrap().to_owned());
    }
    created.reverse();
    let mut seen = vec![];
    let mut path = format!("/v1/workspaces/{ws}/documents?limit=2");
    loop {
        let page = app.get_at(&path, "alice", last).await;
        assert_eq!(page.status, 200, "{}", page.body);
        seen.extend(ids(&page.body, "documents"));
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/workspaces/{ws}/documents?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created);
    for bad in [
        "?limit=0",
        "?limit=201",
        "?limit=x",
        "?cursor=nope",
        "?archived=maybe",
    ] {
        let r = app
            .get(&format!("/v1/workspaces/{ws}/documents{bad}"), "alice")
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.body["code"], "invalid_parameter");
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let app = TestApp::spawn().await;
    let anonymous = app.call(Method::GET, "/v1/workspaces", None, None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    assert_eq!(anonymous.body["code"], "unauthenticated");
    let send = |token: String| {
        let request = app.http.get(app.url("/v1/workspaces")).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let expired = send(mint("alice", -3600)).await;
    assert_eq!(expired.status(), 401);
    assert_eq!(
        expired.json::<Value>().await.unwrap()["code"],
        "token_expired"
    );
    assert_eq!(send("not.a.jwt".into()).await.status(), 401);
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"someone else's secret"),
    )
    .unwrap();
    assert_eq!(send(forged).await.status(), 401);
    // alg:none with a valid-looking payload.
    let unsigned =
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6NDAwMDAwMDAwMH0.";
    assert_eq!(send(unsigned.into()).await.status(), 401);
    let created = app
        .call(
            Method::POST,
            "/v1/workspaces",
            None,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(created.status, 401);
    assert_eq!(app.env.count_events().await, 0);
}

#[tokio::test]
async fn outsiders_see_nothing_and_roles_limit_what_members_do() {
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    app.add_member(&ws, "alice", "gus", "guest").await;
    app.add_member(&ws, "alice", "bob", "member").await;
    let doc = app
        .post(
            &format!("/v1/workspaces/{ws}/documents"),
            "alice",
            json!({"title": "Secret"}),
        )
        .await;
    let synced = app.get_at("/v1/workspaces", "alice", doc.position()).await;
    let doc = doc.body["id"].as_str().unwrap().to_owned();
    assert_eq!(synced.status, 200);
    let before = app.env.count_events().await;

    // Mallory is not a member: every route answers 404, never the data.
    for (method, path, body) in [
        (Method::GET, format!("/v1/workspaces/{ws}"), None),
        (
            Method::PATCH,
            format!("/v1/workspaces/{ws}"),
            Some(json!({"name": "Pwned"})),
        ),
        (Method::GET, format!("/v1/workspaces/{ws}/members"), None),
        (
            Method::POST,
            format!("/v1/workspaces/{ws}/members"),
            Some(json!({"user_id": "mallory", "role": "owner"})),
        ),
        (
            Method::PATCH,
            format!("/v1/workspaces/{ws}/members/bob"),
            Some(json!({"role": "guest"})),
        ),
        (
            Method::DELETE,
            format!("/v1/workspaces/{ws}/members/bob"),
            None,
        ),
        (Method::GET, format!("/v1/workspaces/{ws}/documents"), None),
        (
            Method::POST,
            format!("/v1/workspaces/{ws}/documents"),
            Some(json!({"title": "x"})),
        ),
        (Method::GET, format!("/v1/documents/{doc}"), None),
        (
            Method::PATCH,
            format!("/v1/documents/{doc}"),
            Some(json!({"title": "x"})),
        ),
        (Method::DELETE, format!("/v1/documents/{doc}"), None),
        (Method::POST, format!("/v1/documents/{doc}/archive"), None),
        (Method::POST, format!("/v1/documents/{doc}/restore"), None),
        (
            Method::GET,
            format!("/v1/documents/{doc}/permissions"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/documents/{doc}/permissions/user:mallory"),
            Some(json!({"role": "owner"})),
        ),
        (
            Method::DELETE,
            format!("/v1/documents/{doc}/permissions/user:bob"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/documents/{doc}/links"),
            Some(json!({"role": "editor"})),
        ),
        (
            Method::DELETE,
            format!("/v1/documents/{doc}/links/{}", uuid::Uuid::now_v7()),
            None,
        ),
        (Method::GET, format!("/v1/documents/{doc}/content"), None),
        (Method::GET, format!("/v1/documents/{doc}/state"), None),
        (Method::GET, format!("/v1/documents/{doc}/presence"), None),
        (
            Method::GET,
            format!("/v1/workspaces/{ws}/service-accounts"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/workspaces/{ws}/service-accounts"),
            Some(json!({"name": "x", "scopes": ["documents:write"]})),
        ),
    ] {
        let r = app.call(method.clone(), &path, Some("mallory"), body).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.body);
        assert_eq!(r.body["code"], "not_found");
        assert!(!r.body.to_string().contains("Secret"));
    }
    assert!(
        app.get("/v1/workspaces", "mallory").await.body["workspaces"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        app.env.count_events().await,
        before,
        "outsiders changed nothing"
    );

    // Guests see only what is shared with them, and viewers do not write.
    assert_eq!(
        app.get(&format!("/v1/documents/{doc}"), "gus").await.status,
        404
    );
    let shared = app
        .call(
            Method::PUT,
            &format!("/v1/documents/{doc}/permissions/user:gus"),
            Some("alice"),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(shared.status, 200, "{}", shared.body);
    let before = app.env.count_events().await;
    let seen = app
        .get_at(&format!("/v1/documents/{doc}"), "gus", shared.position())
        .await;
    assert_eq!(
        (seen.status, seen.body["role"].clone()),
        (StatusCode::OK, json!("viewer"))
    );
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/documents"),
            "gus",
            json!({"title": "x"}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["code"], "forbidden");
    assert_eq!(
        app.patch(
            &format!("/v1/documents/{doc}"),
            "gus",
            json!({"title": "x"})
        )
        .await
        .status,
        403
    );
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/members"),
            "bob",
            json!({"user_id": "eve", "role": "guest"}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        app.patch(
            &format!("/v1/workspaces/{ws}"),
            "bob",
            json!({"name": "Mine"})
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.env.count_events().await,
        before,
        "refused commands store nothing"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let app = TestApp::spawn_with(collab_tests::TestEnv::new().await, |s| {
        s.max_body_bytes = 4096
    })
    .await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let doc = app.create_document(&ws, "alice", "Plan").await;
    let before = app.env.count_events().await;
    let raw = |method: Method, path: String, content_type: &'static str, body: String| {
        let request = app
            .http
            .request(method, app.url(&path))
            .bearer_auth(TestApp::token("alice"))
            .header("content-type", content_type)
            .body(body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let cases: Vec<(Method, String, &str, String, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/v1/workspaces".into(),
            "application/json",
            "{\"name\":".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            Method::POST,
            "/v1/workspaces".into(),
            "application/json",
            "[]".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/workspaces".into(),
            "application/json",
            "{\"name\":\"x\",\"admin\":true}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/workspaces".into(),
            "application/json",
            "{\"name\":\"   \"}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Method::POST,
            "/v1/workspaces".into(),
            "application/json",
            json!({"name": "n".repeat(201)}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Method::POST,
            "/v1/workspaces".into(),
            "text/plain",
            "{\"name\":\"x\"}".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/v1/workspaces".into(),
            "application/json",
            json!({"name": "x".repeat(5000)}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Method::POST,
            format!("/v1/workspaces/{ws}/members"),
            "application/json",
            json!({"user_id": "bob", "role": "emperor"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Method::POST,
            format!("/v1/workspaces/{ws}/members"),
            "application/json",
            json!({"user_id": "", "role": "guest"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Method::POST,
            format!("/v1/workspaces/{ws}/documents"),
            "application/json",
            json!({"title": "x", "folder": "/a/../b"}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            Method::POST,
            format!("/v1/workspaces/{ws}/documents"),
            "application/json",
            json!({"title": 7}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::POST,
            "/v1/workspaces/not-a-uuid/documents".into(),
            "application/json",
            json!({"title": "x"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        ),
        (
            Method::PATCH,
            format!("/v1/documents/{ws}"),
            "application/json",
            json!({}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::GET,
            "/v1/nothing-here".into(),
            "application/json",
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        // Refusals made below the handlers are our JSON too (they were plain text or
        // empty): the body limit on binary updates, a method the route lacks.
        (
            Method::POST,
            format!("/v1/documents/{doc}/updates"),
            "application/octet-stream",
            "x".repeat(5000),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            Method::DELETE,
            "/v1/workspaces".into(),
            "application/json",
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (method, path, content_type, body, status, code) in cases {
        let (got, error) = raw(method.clone(), path.clone(), content_type, body).await;
        assert_eq!(got, status, "{method} {path}: {error}");
        assert_eq!(error["code"], code, "{method} {path}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error.get("details").is_some());
    }
    let bad_position = app
        .http
        .get(app.url("/v1/workspaces"))
        .bearer_auth(TestApp::token("alice"))
        .header("X-Collab-Min-Position", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_position.status(), 400);
    // A position beyond the log head was never handed out: 400 at once, with the head.
    let started = std::time::Instant::now();
    let ahead = app
        .http
        .get(app.url("/v1/workspaces"))
        .bearer_auth(TestApp::token("alice"))
        .header("X-Collab-Min-Position", (before + 1000).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(ahead.status(), 400);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "no waiting"
    );
    let ahead: Value = ahead.json().await.unwrap();
    assert_eq!(ahead["code"], "position_beyond_head");
    assert_eq!(ahead["details"]["head"], before);
    assert_eq!(app.env.count_events().await, before);
}

/// An early refusal of a request with a body (401 before the body is read) must not
/// leave the connection in a state where the next request on it gets no answer.
#[tokio::test]
async fn a_refused_request_with_a_body_leaves_the_connection_usable_or_cleanly_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let body = "{\"name\":\"".to_owned() + &"x".repeat(200_000) + "\"}";
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let first = format!(
        "POST /v1/workspaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer forged\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    socket.write_all(first.as_bytes()).await.unwrap();
    // The server may answer before reading the body, and stop reading: a write error
    // here is the server closing, which the response must have announced.
    let _ = socket.write_all(body.as_bytes()).await;
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buffer))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "connection closed without a response");
        response.extend_from_slice(&buffer[..n]);
        if let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&response[..head_end]).to_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    if !head.contains("connection: close") {
        // Kept alive: then the next request on it must be answered.
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.read_to_end(&mut rest),
        )
        .await
        .unwrap_or(Ok(0))
        .unwrap_or(0);
        assert!(
            String::from_utf8_lossy(&rest[..n]).contains("HTTP/1.1 200"),
            "the kept-alive connection answered nothing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimistic_concurrency_lets_exactly_one_of_two_racing_writers_win() {
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let patch = |name: &'static str| {
        let request = app
            .http
            .patch(app.url(&format!("/v1/workspaces/{ws}")))
            .bearer_auth(TestApp::token("alice"))
            .header("If-Match", "\"2\"")
            .json(&json!({ "name": name }));
        async move { request.send().await.unwrap().status() }
    };
    let (a, b) = tokio::join!(patch("From A"), patch("From B"));
    let mut statuses = [a.as_u16(), b.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    // A stale version is refused outright.
    assert_eq!(patch("Late").await, StatusCode::CONFLICT);
    // Without If-Match, concurrent commands are re-decided on fresh state and all land.
    let path = format!("/v1/workspaces/{ws}");
    let renames: Vec<_> = (0..6)
        .map(|n| app.patch(&path, "alice", json!({"name": format!("N{n}")})))
        .collect();
    for r in futures::future::join_all(renames).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(app.env.count_events().await, 2 + 1 + 6);
}

#[tokio::test]
async fn reads_wait_for_a_requested_position_then_give_up_with_503() {
    // The default wait (5 s: a loaded machine may need more than a moment to fold).
    let app = TestApp::spawn().await;
    let (_, position) = app.create_workspace("alice", "Acme").await;
    let query = format!("/v1/workspaces?min_position={position}");
    let r = app.get(&query, "alice").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["workspaces"].as_array().unwrap().len(),
        1,
        "the write is visible"
    );
    // A committed position no read model will fold in time (no projector runs here).
    let stalled = TestApp::spawn_with(collab_tests::TestEnv::new().await, |s| {
        s.read_wait = Duration::from_millis(300);
        s.roles.projector = false;
    })
    .await;
    let (_, position) = stalled.create_workspace("alice", "Acme").await;
    let r = stalled.get_at("/v1/workspaces", "alice", position).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.body["code"], "not_yet_consistent");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    let (_, position) = app.create_workspace("alice", "Acme").await;
    assert_eq!(
        app.get_at("/v1/workspaces", "alice", position).await.status,
        200
    );
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (health.status, health.body["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.body["checks"],
        json!({"postgres": "ok", "nats": "ok"})
    );
    let metrics = app.metrics_text().await;
    for name in [
        "collab_http_request_duration_seconds_bucket",
        "collab_events_appended_total",
        "collab_relay_lag_events",
        "collab_projector_lag_events{projector=\"workspaces\"}",
        "collab_projector_lag_events{projector=\"documents\"}",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    assert!(
        metrics.contains("route=\"/v1/workspaces\""),
        "routes are labelled by pattern"
    );
}

/// Lag is what a read model has not folded of its own categories: content edits, which no
/// standard read model folds, are not lag (they were: "lag 39" on an idle, caught-up system).
#[tokio::test]
async fn content_edits_are_not_read_model_lag() {
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let doc = app.create_document(&ws, "alice", "Plan").await;
    for text in ["a", "b", "c"] {
        let r = app
            .http
            .post(app.url(&format!("/v1/documents/{doc}/updates")))
            .bearer_auth(TestApp::token("alice"))
            .header("content-type", "application/octet-stream")
            .body(crate::live::text_update(text))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let app = &app;
    eventually(
        "both read models caught up",
        Duration::from_secs(10),
        || async move {
            let metrics = app.metrics_text().await;
            let caught_up = ["workspaces", "documents"].iter().all(|name| {
                metrics.contains(&format!(
                    "collab_projector_lag_events{{projector=\"{name}\"}} 0\n"
                ))
            });
            caught_up.then_some(())
        },
    )
    .await;
}

/// Authorisation is decided in the command path from the aggregates it loads anyway: a
/// PATCH that renames and moves a document loads the document once and its workspace once
/// — with a user's token or a service account's key (whose verification loaded the
/// workspace already) — and appends both changes together.
#[tokio::test]
async fn a_document_command_loads_each_aggregate_once() {
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let doc = app.create_document(&ws, "alice", "Plan").await;
    let key = app
        .post(
            &format!("/v1/workspaces/{ws}/service-accounts"),
            "alice",
            json!({"name": "importer", "scopes": ["documents:write"]}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.body["key"].as_str().unwrap().to_owned();
    let loads = || {
        let counts = app.aggregates.loads();
        (counts.of("document"), counts.of("workspace"))
    };
    for (bearer, n) in [(TestApp::token("alice"), 1), (key, 2)] {
        let before = loads();
        let r = app
            .http
            .patch(app.url(&format!("/v1/documents/{doc}")))
            .bearer_auth(bearer)
            .json(&json!({"title": format!("Plan {n}"), "folder": format!("/f{n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        // Both changes in one append: the document was at 1, then at 3.
        assert_eq!(body["version"], 1 + 2 * n, "{body}");
        let after = loads();
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 1),
            "document and workspace loads of PATCH #{n}"
        );
    }
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT stream_version FROM events WHERE stream_id = $1 ORDER BY stream_version",
    )
    .bind(format!("document-{doc}"))
    .fetch_all(&app.env.pool)
    .await
    .unwrap();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
}
