//! The brand portal (issue 15, item 6) against the real binary and a real S3-compatible
//! server: collections and tags organise the asset library, which filters by collection,
//! tag, type and name; a collection downloads as a zip (built by the `downloads` role,
//! streamed to the bucket in parts) whose entries match the files; a document created
//! from a template holds the template's text.

use std::io::Read;
use std::time::Duration;

use collab_tests::{eventually, CollabProcess, Http, S3Server, TestEnv};
use reqwest::Method;
use serde_json::{json, Value};

use crate::files::{noise, plain, png, send, server, start, MIB};

/// Uploads `bytes` as `filename` to `ws`; the file's id.
async fn upload(http: &Http, ws: &str, filename: &str, content_type: &str, bytes: &[u8]) -> String {
    let started = start(
        http,
        ws,
        "alice",
        json!({ "filename": filename, "size": bytes.len(), "content_type": content_type }),
    )
    .await;
    let done = send(http, "alice", &started, bytes).await;
    assert_eq!(done.status, 200, "{}", done.body);
    started["id"].as_str().unwrap().to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_and_tags_organise_an_asset_library_filtered_by_collection_tag_type_and_name() {
    let env = TestEnv::new().await;
    let s3 = S3Server::start().await;
    let server = server(&env, &s3, &[]).await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "gina", "guest").await;
    let logo = upload(&http, &ws, "Logo dark.png", "image/png", &png(40, 20)).await;
    let banner = upload(&http, &ws, "banner.png", "image/png", &png(80, 20)).await;
    let report = upload(
        &http,
        &ws,
        "Quarterly report.pdf",
        "application/pdf",
        &noise(b"%PDF-1.7\n", 3000),
    )
    .await;

    // An image you uploaded is your picture; anything else is refused.
    let me = http
        .expect(
            Method::PUT,
            "/v1/me/profile",
            "alice",
            Some(json!({ "display_name": "Alice", "avatar_file_id": logo })),
            200,
        )
        .await;
    assert_eq!(me.body["avatar_file_id"], logo.as_str());
    for (user, file) in [("alice", &report), ("gina", &logo)] {
        let r = http
            .expect(
                Method::PUT,
                "/v1/me/profile",
                user,
                Some(json!({ "avatar_file_id": file })),
                422,
            )
            .await;
        assert_eq!(r.body["details"]["field"], "avatar_file_id");
    }
    let collections = format!("/v1/workspaces/{ws}/collections");
    let created = http
        .expect(
            Method::POST,
            &collections,
            "alice",
            Some(json!({ "name": "Logos" })),
            201,
        )
        .await;
    let logos = created.body["id"].as_str().unwrap().to_owned();
    let taken = http
        .expect(
            Method::POST,
            &collections,
            "alice",
            Some(json!({ "name": "logos" })),
            409,
        )
        .await;
    assert_eq!(taken.body["code"], "collection_name_taken");
    http.expect(
        Method::POST,
        &collections,
        "alice",
        Some(json!({ "name": "" })),
        422,
    )
    .await;
    http.expect(
        Method::POST,
        &collections,
        "gina",
        Some(json!({ "name": "Mine" })),
        403,
    )
    .await;
    for file in [&logo, &banner] {
        http.expect(
            Method::PUT,
            &format!("{collections}/{logos}/files/{file}"),
            "alice",
            None,
            200,
        )
        .await;
    }
    let unknown = uuid::Uuid::now_v7();
    http.expect(
        Method::PUT,
        &format!("{collections}/{unknown}/files/{logo}"),
        "alice",
        None,
        404,
    )
    .await;
    let tagged = http
        .expect(
            Method::PUT,
            &format!("/v1/files/{logo}/tags"),
            "alice",
            Some(json!({ "tags": [" Brand", "logo", "LOGO"] })),
            200,
        )
        .await;
    assert_eq!(tagged.body["tags"], json!(["brand", "logo"]));
    http.expect(
        Method::PUT,
        &format!("/v1/files/{logo}/tags"),
        "alice",
        Some(json!({ "tags": ["a,b"] })),
        422,
    )
    .await;
    http.expect(
        Method::PUT,
        &format!("/v1/files/{logo}/tags"),
        "gina",
        Some(json!({ "tags": ["x"] })),
        403,
    )
    .await;
    let position = http
        .expect(
            Method::PUT,
            &format!("/v1/files/{banner}/tags"),
            "alice",
            Some(json!({ "tags": ["brand"] })),
            200,
        )
        .await
        .position();

    let assets = |query: &str| format!("/v1/workspaces/{ws}/assets{query}");
    let all = http.get_at(&assets(""), "alice", position).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(
        ids(&all.body),
        [report.clone(), banner.clone(), logo.clone()],
        "newest first"
    );
    let listed = &all.body["files"][2];
    assert_eq!(listed["collections"], json!([logos]));
    assert_eq!(listed["tags"], json!(["brand", "logo"]));
    for (query, expected) in [
        (
            format!("?collection={logos}"),
            vec![banner.clone(), logo.clone()],
        ),
        ("?tag=logo".into(), vec![logo.clone()]),
        ("?tag=Brand".into(), vec![banner.clone(), logo.clone()]),
        ("?type=image".into(), vec![banner.clone(), logo.clone()]),
        ("?type=pdf".into(), vec![report.clone()]),
        ("?type=application/pdf".into(), vec![report.clone()]),
        ("?q=QUARTER".into(), vec![report.clone()]),
        ("?q=dark&tag=logo&type=image".into(), vec![logo.clone()]),
        ("?q=100%25".into(), vec![]),
    ] {
        let r = http
            .expect(Method::GET, &assets(&query), "gina", None, 200)
            .await;
        assert_eq!(ids(&r.body), expected, "{query}");
    }
    // Pages follow each other without a gap or a repeat.
    let first = http
        .expect(Method::GET, &assets("?limit=2"), "alice", None, 200)
        .await;
    assert_eq!(ids(&first.body), [report.clone(), banner.clone()]);
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = http
        .expect(
            Method::GET,
            &assets(&format!("?limit=2&cursor={cursor}")),
            "alice",
            None,
            200,
        )
        .await;
    assert_eq!(ids(&second.body), [logo.as_str()]);
    assert!(second.body["next_cursor"].is_null());
    for bad in [
        "?collection=nope",
        "?type=application/x-msdownload",
        "?cursor=garbage",
        "?limit=0",
    ] {
        http.expect(Method::GET, &assets(bad), "alice", None, 400)
            .await;
    }
    // Outsiders see nothing of it.
    http.expect(Method::GET, &assets(""), "eve", None, 404)
        .await;
    http.expect(Method::GET, &collections, "eve", None, 404)
        .await;
    http.expect(
        Method::PUT,
        &format!("/v1/files/{logo}/tags"),
        "eve",
        Some(json!({ "tags": ["x"] })),
        404,
    )
    .await;

    let listed = http
        .expect(Method::GET, &collections, "gina", None, 200)
        .await;
    assert_eq!(listed.body["collections"][0]["name"], "Logos");
    assert_eq!(listed.body["collections"][0]["files"], 2);
    // Taking a file out, renaming, deleting: the files stay.
    http.expect(
        Method::DELETE,
        &format!("{collections}/{logos}/files/{banner}"),
        "alice",
        None,
        200,
    )
    .await;
    http.expect(
        Method::PATCH,
        &format!("{collections}/{logos}"),
        "alice",
        Some(json!({ "name": "Marks" })),
        200,
    )
    .await;
    let p = http
        .expect(
            Method::DELETE,
            &format!("{collections}/{logos}"),
            "alice",
            None,
            200,
        )
        .await
        .position();
    let after = http.get_at(&collections, "alice", p).await;
    assert_eq!(after.body["collections"], json!([]));
    assert_eq!(
        ids(&http
            .expect(Method::GET, &assets(""), "alice", None, 200)
            .await
            .body)
        .len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_downloads_as_a_zip_built_in_parts_whose_entries_match_the_files() {
    let env = TestEnv::new().await;
    let s3 = S3Server::start().await;
    let server = server(
        &env,
        &s3,
        &[
            ("COLLAB_UPLOAD_PART_BYTES", "5242880"),
            ("COLLAB_ZIP_EXPIRY_SECS", "6"),
        ],
    )
    .await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;
    let (other_ws, _) = http.workspace_with_document("eve").await;
    // 13 MiB in all: the zip goes up in three parts.
    let big = noise(b"%PDF-1.7\n", 6 * MIB);
    let other = noise(b"%PDF-1.4\n", 6 * MIB + 17);
    let small = png(30, 30);
    let files = [
        (
            upload(&http, &ws, "deck.pdf", "application/pdf", &big).await,
            big.clone(),
        ),
        (
            upload(&http, &ws, "deck.pdf", "application/pdf", &other).await,
            other.clone(),
        ),
        (
            upload(&http, &ws, "icon.png", "image/png", &small).await,
            small.clone(),
        ),
    ];
    let created = http
        .expect(
            Method::POST,
            &format!("/v1/workspaces/{ws}/collections"),
            "alice",
            Some(json!({ "name": "Launch kit" })),
            201,
        )
        .await;
    let kit = created.body["id"].as_str().unwrap().to_owned();
    let mut position = 0;
    for (file, _) in &files {
        position = http
            .expect(
                Method::PUT,
                &format!("/v1/workspaces/{ws}/collections/{kit}/files/{file}"),
                "alice",
                None,
                200,
            )
            .await
            .position();
    }
    let downloads = format!("/v1/workspaces/{ws}/downloads");
    let queued = http
        .client
        .post(format!("{}{downloads}", http.base))
        .bearer_auth(collab_tests::mint("alice", 600))
        .header("x-collab-min-position", position.to_string())
        .json(&json!({ "collection_id": kit }))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 202);
    let queued: Value = queued.json().await.unwrap();
    assert_eq!(queued["name"], "Launch kit.zip");
    assert_eq!(queued["files"], 3);
    assert_eq!(
        queued["total_bytes"],
        (big.len() + other.len() + small.len()) as u64
    );
    let id = queued["id"].as_str().unwrap().to_owned();
    let ready = eventually("the zip to be ready", Duration::from_secs(60), || async {
        let r = http
            .call(Method::GET, &format!("/v1/downloads/{id}"), "alice", None)
            .await;
        assert!(r.body["state"] != "failed", "{}", r.body);
        (r.body["state"] == "ready").then_some(r.body)
    })
    .await;
    assert_eq!(ready["bytes_done"], ready["total_bytes"]);
    let url = ready["url"].as_str().unwrap();
    assert!(
        url.contains("response-content-disposition=attachment"),
        "{url}"
    );
    let zip = plain()
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        entries.push((entry.name().to_owned(), bytes));
    }
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["deck.pdf", "deck (2).pdf", "icon.png"]);
    for ((_, expected), (name, bytes)) in files.iter().zip(&entries) {
        assert!(bytes == expected, "{name} differs");
    }
    // Only its requester follows it; nobody may zip what they cannot read.
    http.expect(
        Method::GET,
        &format!("/v1/downloads/{id}"),
        "eve",
        None,
        404,
    )
    .await;
    let started = start(
        &http,
        &other_ws,
        "eve",
        json!({ "filename": "x.png", "size": small.len(), "content_type": "image/png" }),
    )
    .await;
    assert_eq!(send(&http, "eve", &started, &small).await.status, 200);
    let foreign = started["id"].as_str().unwrap();
    http.expect(
        Method::POST,
        &downloads,
        "alice",
        Some(json!({ "file_ids": [files[2].0, foreign] })),
        404,
    )
    .await;
    http.expect(
        Method::POST,
        &downloads,
        "eve",
        Some(json!({ "collection_id": kit })),
        404,
    )
    .await;
    http.expect(
        Method::POST,
        &downloads,
        "alice",
        Some(json!({ "file_ids": [files[2].0] })),
        202,
    )
    .await;
    http.expect(
        Method::POST,
        &downloads,
        "alice",
        Some(json!({ "file_ids": [] })),
        422,
    )
    .await;
    http.expect(
        Method::POST,
        &downloads,
        "alice",
        Some(json!({ "file_ids": [files[2].0], "collection_id": kit })),
        422,
    )
    .await;
    // Expired after COLLAB_ZIP_EXPIRY_SECS: the object goes.
    eventually("the zip to expire", Duration::from_secs(30), || async {
        let r = http
            .call(Method::GET, &format!("/v1/downloads/{id}"), "alice", None)
            .await;
        // Marked expired first, the object deleted just after.
        (r.body["state"] == "expired" && !s3.has(&format!("downloads/{id}.zip"))).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_created_from_a_template_holds_the_templates_text() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, template) = http.workspace_with_document("alice").await;
    let (_, foreign) = http.workspace_with_document("alice").await;
    http.add_member(&ws, "alice", "bob", "member").await;
    http.add_member(&ws, "alice", "gina", "guest").await;
    http.write_text(&template, "alice", "Dear customer, …")
        .await;
    let documents = format!("/v1/workspaces/{ws}/documents");

    // Not a template yet.
    let r = http
        .expect(
            Method::POST,
            &documents,
            "bob",
            Some(json!({ "title": "Letter", "template_id": template })),
            422,
        )
        .await;
    assert_eq!(r.body["details"]["field"], "template_id");
    http.expect(
        Method::PUT,
        &format!("/v1/documents/{template}/template"),
        "gina",
        Some(json!({ "template": true })),
        404,
    )
    .await;
    let marked = http
        .expect(
            Method::PUT,
            &format!("/v1/documents/{template}/template"),
            "alice",
            Some(json!({ "template": true })),
            200,
        )
        .await;
    let listed = http
        .get_at(
            &format!("/v1/workspaces/{ws}/templates"),
            "bob",
            marked.position(),
        )
        .await;
    assert_eq!(
        listed.body["templates"][0]["id"],
        template.as_str(),
        "{}",
        listed.body
    );

    let created = http
        .expect(
            Method::POST,
            &documents,
            "bob",
            Some(json!({ "title": "Letter to ACME", "template_id": template })),
            201,
        )
        .await;
    let letter = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(http.content_text(&letter, "bob").await, "Dear customer, …");
    // The copy is a document of its own: editing it leaves the template alone.
    http.write_text(&letter, "bob", "ACME: ").await;
    let edited = http.content_text(&letter, "bob").await;
    assert!(
        edited.contains("ACME: ")
            && edited.contains("Dear customer, …")
            && edited.chars().count() == 22,
        "{edited}"
    );
    assert_eq!(
        http.content_text(&template, "alice").await,
        "Dear customer, …"
    );
    // Its history says where its first content came from.
    let history = http
        .get_at(
            &format!("/v1/documents/{letter}/history"),
            "bob",
            created.position(),
        )
        .await;
    let entries = history.body["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "from_template"
                && e["details"]["template_id"] == template.as_str()),
        "{}",
        history.body
    );

    let feed = http
        .expect(
            Method::GET,
            &format!("/v1/documents/{letter}/activity"),
            "bob",
            None,
            200,
        )
        .await;
    assert!(
        feed.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "from_template"
                && e["summary"].as_str().unwrap().contains("from a template")),
        "{}",
        feed.body
    );

    // A template of another workspace, or an unknown one: 404; nothing created.
    let before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'DocumentCreated'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    http.expect(
        Method::PUT,
        &format!("/v1/documents/{foreign}/template"),
        "alice",
        Some(json!({ "template": true })),
        200,
    )
    .await;
    for (user, template, status) in [
        ("bob", foreign.clone(), 404),
        ("bob", uuid::Uuid::now_v7().to_string(), 404),
        ("gina", template.clone(), 403),
    ] {
        let body = json!({ "title": "X", "template_id": template });
        http.expect(Method::POST, &documents, user, Some(body), status)
            .await;
    }
    let after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'DocumentCreated'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    // Unmarked, it is no template any more.
    http.expect(
        Method::PUT,
        &format!("/v1/documents/{template}/template"),
        "alice",
        Some(json!({ "template": false })),
        200,
    )
    .await;
    http.expect(
        Method::POST,
        &documents,
        "bob",
        Some(json!({ "title": "Y", "template_id": template })),
        422,
    )
    .await;
}
