//! Roles and sharing end to end: the role model over HTTP, share links, and live sockets
//! closed within a second when access is revoked.

use std::time::{Duration, Instant};

use collab_tests::{eventually, mint, CollabProcess, Http, TestEnv};
use reqwest::Method;
use serde_json::json;

use crate::live::{close_of, raw_socket};

async fn setup() -> (TestEnv, CollabProcess, Http, String, String) {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    for (user, role) in [("bob", "member"), ("gus", "guest"), ("aud", "auditor")] {
        let r = http
            .call(
                Method::POST,
                &format!("/v1/workspaces/{ws}/members"),
                "alice",
                Some(json!({"user_id": user, "role": role})),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    (env, server, http, ws, doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_model_decides_who_sees_and_changes_what() {
    let (env, _server, http, ws, doc) = setup().await;
    let role_of = |user: &'static str| {
        let (http, doc) = (&http, &doc);
        async move {
            let r = http
                .call(
                    Method::GET,
                    &format!("/v1/documents/{doc}/permissions"),
                    user,
                    None,
                )
                .await;
            (
                r.status.as_u16(),
                r.body["role"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    assert_eq!(role_of("alice").await, (200, "owner".into()));
    assert_eq!(
        role_of("bob").await,
        (200, "editor".into()),
        "members get the default role"
    );
    assert_eq!(role_of("aud").await, (200, "viewer".into()));
    assert_eq!(role_of("gus").await.0, 404);
    assert_eq!(role_of("mallory").await.0, 404);

    // No default access: members see only their own and shared documents.
    let r = http
        .call(
            Method::PATCH,
            &format!("/v1/workspaces/{ws}"),
            "alice",
            Some(json!({"default_document_role": "none"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(role_of("bob").await.0, 404);
    let r = http
        .call(
            Method::PATCH,
            &format!("/v1/workspaces/{ws}"),
            "bob",
            Some(json!({"default_document_role": "editor"})),
        )
        .await;
    assert_eq!(r.status, 403, "members do not manage the workspace");
    let shared = http
        .call(
            Method::PUT,
            &format!("/v1/documents/{doc}/permissions/user:bob"),
            "alice",
            Some(json!({"role": "commenter"})),
        )
        .await;
    assert_eq!(shared.status, 200, "{}", shared.body);
    let shared_gus = http
        .call(
            Method::PUT,
            &format!("/v1/documents/{doc}/permissions/gus"),
            "alice",
            Some(json!({"role": "editor"})),
        )
        .await;
    assert_eq!(role_of("bob").await, (200, "commenter".into()));
    assert_eq!(role_of("gus").await, (200, "editor".into()));
    let r = http
        .call(
            Method::PATCH,
            &format!("/v1/documents/{doc}"),
            "bob",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(r.status, 403, "commenters do not edit");
    let r = http
        .call(
            Method::PATCH,
            &format!("/v1/documents/{doc}"),
            "gus",
            Some(json!({"title": "By gus"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http
        .call(Method::DELETE, &format!("/v1/documents/{doc}"), "gus", None)
        .await;
    assert_eq!(r.status, 403, "only owners delete");
    let r = http
        .call(
            Method::PUT,
            &format!("/v1/documents/{doc}/permissions/eve"),
            "gus",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, 403, "only owners share");

    // Listings follow the same rule.
    let position = shared_gus.position().max(shared.position());
    for (user, count) in [("alice", 1), ("bob", 1), ("gus", 1), ("aud", 1)] {
        let r = http
            .client
            .get(format!("{}/v1/workspaces/{ws}/documents", http.base))
            .bearer_auth(mint(user, 3600))
            .header("X-Collab-Min-Position", position.to_string())
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body["documents"].as_array().unwrap().len(),
            count,
            "{user}: {body}"
        );
    }
    let unshared = http
        .call(
            Method::DELETE,
            &format!("/v1/documents/{doc}/permissions/user:bob"),
            "alice",
            None,
        )
        .await;
    assert_eq!(unshared.status, 200);
    let r = http
        .client
        .get(format!("{}/v1/workspaces/{ws}/documents", http.base))
        .bearer_auth(mint("bob", 3600))
        .header("X-Collab-Min-Position", unshared.position().to_string())
        .send()
        .await
        .unwrap();
    assert!(r.json::<serde_json::Value>().await.unwrap()["documents"]
        .as_array()
        .unwrap()
        .is_empty());
    let again = http
        .call(
            Method::DELETE,
            &format!("/v1/documents/{doc}/permissions/user:bob"),
            "alice",
            None,
        )
        .await;
    assert_eq!(again.status, 404);

    // Every permission change is an event.
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE event_type IN ('DocumentShared', 'DocumentUnshared', 'DefaultDocumentRoleChanged') ORDER BY position",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        types,
        vec![
            "DefaultDocumentRoleChanged",
            "DocumentShared",
            "DocumentShared",
            "DocumentUnshared"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_links_grant_their_role_until_revoked_or_expired() {
    let (_env, server, http, _ws, doc) = setup().await;
    let created = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/links"),
            "alice",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let token = created.body["token"].as_str().unwrap().to_owned();
    let link_id = created.body["id"].as_str().unwrap().to_owned();
    let content = |link: Option<&str>| {
        let mut request = http
            .client
            .get(format!("{}/v1/documents/{doc}/content", http.base))
            .bearer_auth(mint("eve", 3600));
        if let Some(link) = link {
            request = request.header("X-Collab-Link", link);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(content(None).await, 404, "eve has no access of her own");
    assert_eq!(content(Some(&token)).await, 200);
    assert_eq!(
        content(Some(&format!("{}x", &token[..token.len() - 1]))).await,
        404,
        "a wrong secret grants nothing"
    );
    assert_eq!(content(Some("not-a-link")).await, 400);
    // The document itself reads with the link too (it answered 404), header or query.
    for (path, header) in [
        (format!("/v1/documents/{doc}"), Some(token.as_str())),
        (format!("/v1/documents/{doc}?link={token}"), None),
    ] {
        // As of the link's creation (the document's row is a read model).
        let mut request = http
            .client
            .get(format!("{}{path}", http.base))
            .bearer_auth(mint("eve", 3600))
            .header("X-Collab-Min-Position", created.position().to_string());
        if let Some(link) = header {
            request = request.header("X-Collab-Link", link);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["id"], doc.as_str());
        assert_eq!(body["role"], "viewer");
    }
    // The link's holder may not write, nor see the links.
    let perms = http
        .call(
            Method::GET,
            &format!("/v1/documents/{doc}/permissions?link={token}"),
            "eve",
            None,
        )
        .await;
    assert_eq!(perms.body["role"], "viewer");
    assert_eq!(perms.body["links"], json!([]));
    let owner_view = http
        .call(
            Method::GET,
            &format!("/v1/documents/{doc}/permissions"),
            "alice",
            None,
        )
        .await;
    assert_eq!(owner_view.body["links"][0]["id"], link_id.as_str());
    assert!(
        !owner_view.body.to_string().contains(&token),
        "the secret is never shown again"
    );

    // A socket opened with the link is read-only; revoking the link closes it.
    let mut socket = raw_socket(
        &server.ws(),
        &format!("/v1/sync/{doc}?token={}&link={token}", mint("eve", 3600)),
    )
    .await;
    {
        use futures::StreamExt;
        let greeting = socket.next().await.unwrap().unwrap();
        assert!(greeting.is_binary());
    }
    // The link's holder sees who is there (row-level security had hidden the document's
    // presence from someone outside its workspace: an empty list).
    let presence_path = format!("/v1/documents/{doc}/presence?link={token}");
    eventually(
        "eve's presence, seen with the link",
        Duration::from_secs(10),
        || {
            let (http, path) = (&http, &presence_path);
            async move {
                let r = http.call(Method::GET, path, "eve", None).await;
                assert_eq!(r.status, 200, "{}", r.body);
                (r.body["users"] == json!(["eve"])).then_some(())
            }
        },
    )
    .await;
    let revoked_at = Instant::now();
    let revoked = http
        .call(
            Method::DELETE,
            &format!("/v1/documents/{doc}/links/{link_id}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(revoked.status, 200);
    let (code, reason) = close_of(&mut socket).await;
    assert_eq!(code, 4403, "{reason}");
    assert!(
        revoked_at.elapsed() < Duration::from_secs(1),
        "closed within a second"
    );
    assert_eq!(content(Some(&token)).await, 404);

    // An expiring link stops working by itself.
    let short = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/links"),
            "alice",
            Some(json!({"role": "editor", "expires_in_seconds": 1})),
        )
        .await;
    let short = short.body["token"].as_str().unwrap().to_owned();
    assert_eq!(content(Some(&short)).await, 200);
    collab_tests::eventually("the link to expire", Duration::from_secs(10), || {
        let status = content(Some(&short));
        async move { (status.await == 404).then_some(()) }
    })
    .await;
    let owner_link = http
        .call(
            Method::POST,
            &format!("/v1/documents/{doc}/links"),
            "alice",
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(owner_link.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_access_closes_live_sockets_within_a_second_on_every_instance() {
    let (_env, server, http, ws, doc) = setup().await;
    let other = CollabProcess::start(&_env, &[]).await;
    let path = format!("/v1/sync/{doc}?token={}", mint("bob", 3600));
    let mut here = raw_socket(&server.ws(), &path).await;
    let mut there = raw_socket(&other.ws(), &path).await;
    {
        use futures::StreamExt;
        assert!(here.next().await.unwrap().unwrap().is_binary());
        assert!(there.next().await.unwrap().unwrap().is_binary());
    }
    let started = Instant::now();
    let removed = http
        .call(
            Method::DELETE,
            &format!("/v1/workspaces/{ws}/members/bob"),
            "alice",
            None,
        )
        .await;
    assert_eq!(removed.status, 200);
    let (code, reason) = close_of(&mut here).await;
    assert_eq!(code, 4403, "{reason}");
    let (code, _) = close_of(&mut there).await;
    assert_eq!(code, 4403, "the other instance closes its socket too");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A downgrade to viewer closes a writing socket too (it reconnects read-only).
    let r = http
        .call(
            Method::POST,
            &format!("/v1/workspaces/{ws}/members"),
            "alice",
            Some(json!({"user_id": "bob", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, 201);
    let mut writer = raw_socket(&server.ws(), &path).await;
    {
        use futures::StreamExt;
        assert!(writer.next().await.unwrap().unwrap().is_binary());
    }
    let r = http
        .call(
            Method::PATCH,
            &format!("/v1/workspaces/{ws}"),
            "alice",
            Some(json!({"default_document_role": "viewer"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let (code, reason) = close_of(&mut writer).await;
    assert_eq!(code, 4403);
    assert!(reason.contains("read-only"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_act_within_their_scopes_until_revoked() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (env, server, http, ws, doc) = setup().await;
    let create = |user: &'static str, name: &'static str, scopes: serde_json::Value| {
        let (http, ws) = (&http, &ws);
        async move {
            http.call(
                Method::POST,
                &format!("/v1/workspaces/{ws}/service-accounts"),
                user,
                Some(json!({"name": name, "scopes": scopes})),
            )
            .await
        }
    };
    assert_eq!(
        create("bob", "x", json!(["documents:read"])).await.status,
        403
    );
    assert_eq!(
        create("alice", "x", json!(["documents:admin"]))
            .await
            .status,
        422
    );
    assert_eq!(create("alice", "x", json!([])).await.status, 422);
    let reader = create("alice", "Search indexer", json!(["documents:read"])).await;
    assert_eq!(reader.status, 201, "{}", reader.body);
    let reader_key = reader.body["key"].as_str().unwrap().to_owned();
    let writer = create(
        "alice",
        "Importer",
        json!(["documents:write", "documents:read"]),
    )
    .await;
    let writer_key = writer.body["key"].as_str().unwrap().to_owned();
    let writer_id = writer.body["id"].as_str().unwrap().to_owned();
    let listed = http
        .call(
            Method::GET,
            &format!("/v1/workspaces/{ws}/service-accounts"),
            "alice",
            None,
        )
        .await;
    assert_eq!(listed.body["service_accounts"].as_array().unwrap().len(), 2);
    assert!(
        !listed.body.to_string().contains(&reader_key),
        "keys are shown once"
    );

    let with_key = |key: &str, method: Method, path: String| {
        http.client
            .request(method, format!("{}{path}", http.base))
            .bearer_auth(key.to_owned())
    };
    let listing = with_key(
        &reader_key,
        Method::GET,
        format!(
            "/v1/workspaces/{ws}/documents?min_position={}",
            writer.position()
        ),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(listing.status(), 200);
    let body: serde_json::Value = listing.json().await.unwrap();
    assert_eq!(body["documents"][0]["id"], doc.as_str());
    let read = with_key(
        &reader_key,
        Method::GET,
        format!("/v1/documents/{doc}/content"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(read.status(), 200);
    // And the document's metadata, which answered 404 to a key that reads its content.
    for (key, role) in [(&reader_key, "viewer"), (&writer_key, "editor")] {
        let document = with_key(key, Method::GET, format!("/v1/documents/{doc}"))
            .send()
            .await
            .unwrap();
        assert_eq!(document.status(), 200);
        let body: serde_json::Value = document.json().await.unwrap();
        assert_eq!(
            (body["id"].as_str(), body["role"].as_str()),
            (Some(doc.as_str()), Some(role))
        );
    }
    let update = crate::live::text_update("from the importer");
    let refused = with_key(
        &reader_key,
        Method::POST,
        format!("/v1/documents/{doc}/updates"),
    )
    .header("content-type", "application/octet-stream")
    .body(update.clone())
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), 403, "documents:read does not write");
    let workspace = with_key(&reader_key, Method::POST, "/v1/workspaces".into())
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(workspace.status(), 403);
    // Another last character (a fixed '0' was the same key one time in sixteen).
    let last = if reader_key.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &reader_key[..reader_key.len() - 1]);
    assert_eq!(
        with_key(&forged, Method::GET, format!("/v1/documents/{doc}/content"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let written = with_key(
        &writer_key,
        Method::POST,
        format!("/v1/documents/{doc}/updates"),
    )
    .header("content-type", "application/octet-stream")
    .body(update)
    .send()
    .await
    .unwrap();
    assert_eq!(written.status(), 200);
    let actor: String =
        sqlx::query_scalar("SELECT actor FROM events WHERE event_type = 'DocumentEdited'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(actor, format!("service:account-{writer_id}"));
    let secret = writer_key.rsplit('_').next().unwrap().as_bytes().to_vec();
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE position(sha256($1) IN payload) > 0 OR position($1 IN payload) > 0")
        .bind(&secret)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(
        leaked, 1,
        "the log holds the key's hash (once), never the key"
    );

    // Sockets: the reader's are read-only; revoking the writer closes its socket.
    let mut reader_socket =
        crate::live::raw_socket(&server.ws(), &format!("/v1/sync/{doc}?token={reader_key}")).await;
    reader_socket
        .send(Message::Binary(
            crate::live::update_frame(&crate::live::text_update("nope")).into(),
        ))
        .await
        .unwrap();
    let mut writer_socket =
        crate::live::raw_socket(&server.ws(), &format!("/v1/sync/{doc}?token={writer_key}")).await;
    {
        use futures::StreamExt;
        assert!(writer_socket.next().await.unwrap().unwrap().is_binary());
    }
    let revoked = http
        .call(
            Method::DELETE,
            &format!("/v1/workspaces/{ws}/service-accounts/{writer_id}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(crate::live::close_of(&mut writer_socket).await.0, 4403);
    let after = with_key(
        &writer_key,
        Method::GET,
        format!("/v1/documents/{doc}/content"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(after.status(), 401);
    assert_eq!(
        collab_tests::edit_count(&env.pool, &doc).await,
        1,
        "the read-only socket stored nothing"
    );
}

/// Revocation follows the committed events, not the routes: an access-reducing event
/// appended with no HTTP route involved (here straight through the aggregate store, as an
/// operator's tool or a future integration would) still closes the socket that lost access.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_closes_when_an_access_reducing_event_is_committed_by_any_path() {
    use collab_domain::workspace::{Workspace, WorkspaceCommand};
    use collab_domain::{Actor, UserId, WorkspaceId};
    let app = collab_tests::TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    app.add_member(&ws, "alice", "bob", "member").await;
    let doc = app.create_document(&ws, "alice", "Plan").await;
    let mut socket = raw_socket(
        &format!("ws://{}", app.addr),
        &format!("/v1/sync/{doc}?token={}", mint("bob", 3600)),
    )
    .await;
    {
        use futures::StreamExt;
        let greeting = socket.next().await.unwrap().unwrap();
        assert!(greeting.is_binary(), "bob is admitted");
    }
    let alice = UserId::parse("alice").unwrap();
    app.aggregates
        .execute::<Workspace>(
            WorkspaceId::parse(&ws).unwrap().as_uuid(),
            WorkspaceCommand::RemoveMember {
                by: alice.clone(),
                user: UserId::parse("bob").unwrap(),
            },
            &collab_commands::CommandMeta {
                actor: Actor::User(alice),
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: None,
            },
            None,
        )
        .await
        .unwrap();
    let removed_at = Instant::now();
    let (code, reason) = tokio::time::timeout(Duration::from_secs(5), close_of(&mut socket))
        .await
        .expect("the socket is closed");
    assert_eq!(code, 4403, "{reason}");
    assert!(
        removed_at.elapsed() < Duration::from_secs(1),
        "closed within a second"
    );
}
