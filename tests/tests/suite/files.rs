//! Files (issue 15) against a real S3-compatible server that checks request signatures
//! (`s3s-fs`, in the test process) and the real `collab` binary: a large file uploaded in
//! parts through presigned URLs with a plain HTTP client and downloaded byte-identical;
//! uploads whose content or size is not what was declared rejected and their objects
//! gone; thumbnails of PNG and JPEG images with the right dimensions and orientation, a
//! corrupt image, a redelivered `FileUploaded`; attachments; who may see files; forged
//! URLs; unfinished uploads cleaned up.

use std::time::Duration;

use collab_tests::{eventually, CollabProcess, Http, S3Server, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub(crate) const MIB: usize = 1024 * 1024;

pub(crate) async fn server(env: &TestEnv, s3: &S3Server, extra: &[(&str, &str)]) -> CollabProcess {
    let owned = s3.env();
    let mut settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    settings.extend_from_slice(extra);
    CollabProcess::start(env, &settings).await
}

/// A client that does not follow redirects (to see the 302s), for S3 too.
pub(crate) fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Starts an upload; the answer's body.
pub(crate) async fn start(http: &Http, ws: &str, user: &str, body: Value) -> Value {
    http.expect(
        Method::POST,
        &format!("/v1/workspaces/{ws}/files"),
        user,
        Some(body),
        201,
    )
    .await
    .body
}

/// Sends `bytes` as the started upload says (one PUT, or each part) and completes it;
/// the completion's answer.
pub(crate) async fn send(
    http: &Http,
    user: &str,
    started: &Value,
    bytes: &[u8],
) -> collab_tests::Response {
    let client = plain();
    let id = started["id"].as_str().unwrap();
    let upload = &started["upload"];
    let parts = match upload["method"].as_str().unwrap() {
        "put" => {
            let put = client
                .put(upload["url"].as_str().unwrap())
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            assert!(
                put.status().is_success(),
                "PUT: {}",
                put.text().await.unwrap()
            );
            vec![]
        }
        "multipart" => {
            let size = upload["part_size"].as_u64().unwrap() as usize;
            let mut parts = Vec::new();
            for (part, chunk) in upload["parts"]
                .as_array()
                .unwrap()
                .iter()
                .zip(bytes.chunks(size))
            {
                let put = client
                    .put(part["url"].as_str().unwrap())
                    .body(chunk.to_vec())
                    .send()
                    .await
                    .unwrap();
                assert!(put.status().is_success(), "part: {}", put.status());
                let etag = put.headers()["etag"].to_str().unwrap().to_owned();
                parts.push(json!({ "number": part["number"], "etag": etag }));
            }
            parts
        }
        other => panic!("unknown upload method {other}"),
    };
    http.call(
        Method::POST,
        &format!("/v1/files/{id}/complete"),
        user,
        Some(json!({ "parts": parts })),
    )
    .await
}

/// Follows a download route's redirect: (the presigned URL, the bytes behind it).
pub(crate) async fn fetch(http: &Http, path: &str, user: &str) -> (String, Vec<u8>) {
    let client = plain();
    let redirect = client
        .get(format!("{}{path}", http.base))
        .bearer_auth(collab_tests::mint(user, 600))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302, "{path}");
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let object = client.get(&location).send().await.unwrap();
    assert_eq!(object.status(), 200, "{location}");
    (location, object.bytes().await.unwrap().to_vec())
}

/// Bytes that look random (a xorshift stream), after `prefix`.
pub(crate) fn noise(prefix: &[u8], len: usize) -> Vec<u8> {
    let mut out = prefix.to_vec();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A JPEG whose EXIF orientation says "rotate 90° clockwise" (6).
fn jpeg_rotated(width: u32, height: u32) -> Vec<u8> {
    let image =
        image::RgbImage::from_fn(width, height, |x, _| image::Rgb([(x % 256) as u8, 40, 200]));
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // TIFF (little-endian) with one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
    let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The file's metadata once `check` holds.
pub(crate) async fn file_when(
    http: &Http,
    id: &str,
    user: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, Duration::from_secs(30), || async {
        let r = http
            .call(Method::GET, &format!("/v1/files/{id}"), user, None)
            .await;
        (r.status == 200 && check(&r.body)).then_some(r.body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_goes_up_in_parts_straight_to_s3_and_comes_back_byte_identical() {
    let env = TestEnv::new().await;
    let s3 = S3Server::start().await;
    let server = server(&env, &s3, &[]).await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;

    let bytes = noise(b"%PDF-1.7\n", 50 * MIB);
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "../../Quarterly \"report\".pdf", "size": bytes.len(), "content_type": "application/pdf" }),
    )
    .await;
    assert_eq!(started["filename"], "Quarterly _report_.pdf");
    assert_eq!(started["upload"]["method"], "multipart");
    assert_eq!(
        started["upload"]["parts"].as_array().unwrap().len(),
        7,
        "8 MiB parts"
    );
    let id = started["id"].as_str().unwrap().to_owned();
    // The object's key is made of ids: nothing the uploader typed.
    let url = started["upload"]["parts"][0]["url"].as_str().unwrap();
    assert!(url.contains(&format!("files/{ws}/{id}/original")), "{url}");
    assert!(!url.contains("report"), "{url}");

    // A pending upload cannot be downloaded.
    http.expect(
        Method::GET,
        &format!("/v1/files/{id}/download"),
        "alice",
        None,
        409,
    )
    .await;
    let done = send(&http, "alice", &started, &bytes).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["state"], "uploaded");
    assert_eq!(done.body["content_type"], "application/pdf");
    let position = done.position();
    // Completing twice is refused.
    let again = http
        .call(
            Method::POST,
            &format!("/v1/files/{id}/complete"),
            "alice",
            Some(json!({})),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);

    let meta = http
        .get_at(&format!("/v1/files/{id}"), "alice", position)
        .await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    assert_eq!(meta.body["size"], bytes.len());
    assert_eq!(meta.body["state"], "uploaded");
    assert_eq!(meta.body["filename"], "Quarterly _report_.pdf");

    let (location, downloaded) = fetch(&http, &format!("/v1/files/{id}/download"), "alice").await;
    assert!(downloaded == bytes, "the download differs from the upload");
    // The presigned URL makes the store answer with the name and the sniffed type (signed
    // into the URL, so a client cannot change them).
    assert!(
        location.contains("response-content-disposition=attachment"),
        "{location}"
    );
    assert!(
        location.contains("response-content-type=application%2Fpdf"),
        "{location}"
    );
    assert!(location.contains("X-Amz-Expires=300"), "{location}");
    // For a page that shows the file itself: the URL in JSON, no redirect.
    let shown = http
        .call(
            Method::GET,
            &format!("/v1/files/{id}/download?redirect=false"),
            "alice",
            None,
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let url = shown.body["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(shown.body["expires_at"].is_string());
    let object = plain().get(url).send().await.unwrap();
    assert_eq!(object.bytes().await.unwrap().len(), bytes.len());

    // A forged signature is refused by the store: it checks them.
    let at = location.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &location[at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    let forged = format!("{}{flipped}{}", &location[..at], &location[at + 1..]);
    let refused = plain().get(&forged).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    // The event says what arrived.
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE stream_id = $1 ORDER BY stream_version",
    )
    .bind(format!("file-{id}"))
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(types, ["FileUploadStarted", "FileUploaded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_are_not_what_they_claim_are_rejected_and_their_objects_deleted() {
    let env = TestEnv::new().await;
    let s3 = S3Server::start().await;
    let server = server(&env, &s3, &[("COLLAB_MAX_FILE_BYTES", "1000000")]).await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;
    let files = format!("/v1/workspaces/{ws}/files");

    // An executable renamed to .png.
    let exe = noise(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0", 4096);
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "cat.png", "size": exe.len(), "content_type": "image/png" }),
    )
    .await;
    let id = started["id"].as_str().unwrap().to_owned();
    let key = format!("files/{ws}/{id}/original");
    let refused = send(&http, "alice", &started, &exe).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "file_rejected");
    let reason = refused.body["details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("application/x-executable") && reason.contains("image/png"),
        "{reason}"
    );
    assert!(!s3.has(&key), "the rejected object is deleted");
    let meta = file_when(
        &http,
        &id,
        "alice",
        "the rejection in the read model",
        |f| f["state"] == "rejected",
    )
    .await;
    assert_eq!(meta["reason"], reason);
    http.expect(
        Method::GET,
        &format!("/v1/files/{id}/download"),
        "alice",
        None,
        409,
    )
    .await;

    // More and fewer bytes than declared.
    for (declared, sent) in [(1000usize, 1500usize), (1000, 600)] {
        let started = start(
            &http,
            &ws,
            "alice",
            json!({ "filename": "a.pdf", "size": declared, "content_type": "application/pdf" }),
        )
        .await;
        let r = send(&http, "alice", &started, &noise(b"%PDF-1.4\n", sent)).await;
        assert_eq!(r.status, 422, "{}", r.body);
        let reason = r.body["details"]["reason"].as_str().unwrap();
        assert_eq!(
            reason,
            format!("{sent} bytes arrived but {declared} were declared")
        );
        let id = started["id"].as_str().unwrap();
        assert!(!s3.has(&format!("files/{ws}/{id}/original")));
    }
    // Completed before anything arrived.
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "a.pdf", "size": 10, "content_type": "application/pdf" }),
    )
    .await;
    let r = http
        .call(
            Method::POST,
            &format!("/v1/files/{}/complete", started["id"].as_str().unwrap()),
            "alice",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.body["details"]["reason"], "nothing was uploaded");
    // Text is accepted as text only.
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "notes.txt", "size": 12, "content_type": "text/plain; charset=utf-8" }),
    )
    .await;
    assert_eq!(
        send(&http, "alice", &started, b"hello, world").await.status,
        200
    );
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "notes.txt", "size": 4, "content_type": "text/plain" }),
    )
    .await;
    assert_eq!(send(&http, "alice", &started, b"a\0b\0").await.status, 422);

    // Refused before any upload: too large, an unaccepted type, nonsense.
    for (body, field) in [
        (
            json!({ "filename": "big.pdf", "size": 1_000_001, "content_type": "application/pdf" }),
            "size",
        ),
        (
            json!({ "filename": "x.pdf", "size": 0, "content_type": "application/pdf" }),
            "size",
        ),
        (
            json!({ "filename": "setup.exe", "size": 10, "content_type": "application/x-msdownload" }),
            "content_type",
        ),
        (
            json!({ "filename": "x.svg", "size": 10, "content_type": "image/svg+xml" }),
            "content_type",
        ),
        (
            json!({ "filename": "..", "size": 10, "content_type": "application/pdf" }),
            "filename",
        ),
    ] {
        let r = http
            .expect(Method::POST, &files, "alice", Some(body), 422)
            .await;
        assert_eq!(r.body["details"]["field"], field, "{}", r.body);
    }
    http.expect(
        Method::POST,
        &files,
        "alice",
        Some(json!({ "filename": "a" })),
        422,
    )
    .await;
    http.expect(
        Method::POST,
        &files,
        "alice",
        Some(json!({ "filename": "a", "size": 1, "content_type": "text/plain", "path": "/etc" })),
        422,
    )
    .await;
    let types: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT event_type FROM events WHERE stream_id LIKE 'file-%' ORDER BY 1",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(types, ["FileRejected", "FileUploadStarted", "FileUploaded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_get_upright_thumbnails_once_and_corrupt_ones_a_reason() {
    let env = TestEnv::new().await;
    let s3 = S3Server::start().await;
    let server = server(&env, &s3, &[]).await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;

    let wide = png(2000, 1000);
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "wide.png", "size": wide.len(), "content_type": "image/png" }),
    )
    .await;
    let png_id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&http, "alice", &started, &wide).await.status, 200);
    let rotated = jpeg_rotated(400, 200);
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "phone.jpg", "size": rotated.len(), "content_type": "image/jpeg" }),
    )
    .await;
    let jpeg_id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&http, "alice", &started, &rotated).await.status, 200);
    let corrupt = noise(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 2048);
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "broken.png", "size": corrupt.len(), "content_type": "image/png" }),
    )
    .await;
    let corrupt_id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&http, "alice", &started, &corrupt).await.status, 200);

    let meta = file_when(&http, &png_id, "alice", "the PNG's thumbnails", |f| {
        f["thumbnails"]["large"].is_object()
    })
    .await;
    assert_eq!(
        meta["thumbnails"],
        json!({ "small": { "width": 256, "height": 128 }, "large": { "width": 1024, "height": 512 } })
    );
    let (_, small) = fetch(
        &http,
        &format!("/v1/files/{png_id}/thumbnail?size=small"),
        "alice",
    )
    .await;
    let small = image::load_from_memory(&small).unwrap();
    assert_eq!((small.width(), small.height()), (256, 128));

    // EXIF orientation 6: the 400×200 photo stands upright, 200×400; never enlarged.
    let meta = file_when(&http, &jpeg_id, "alice", "the JPEG's thumbnails", |f| {
        f["thumbnails"]["large"].is_object()
    })
    .await;
    assert_eq!(
        meta["thumbnails"],
        json!({ "small": { "width": 128, "height": 256 }, "large": { "width": 200, "height": 400 } })
    );
    let (location, large) = fetch(
        &http,
        &format!("/v1/files/{jpeg_id}/thumbnail?size=large"),
        "alice",
    )
    .await;
    assert!(
        location.contains("response-content-type=image%2Fjpeg"),
        "{location}"
    );
    let large = image::load_from_memory(&large).unwrap();
    assert_eq!((large.width(), large.height()), (200, 400));

    let meta = file_when(
        &http,
        &corrupt_id,
        "alice",
        "the corrupt image's reason",
        |f| f["thumbnail_error"].is_string(),
    )
    .await;
    assert!(
        meta["thumbnail_error"].as_str().unwrap().contains("cannot"),
        "{meta}"
    );
    assert_eq!(meta["thumbnails"], json!({}));
    http.expect(
        Method::GET,
        &format!("/v1/files/{corrupt_id}/thumbnail"),
        "alice",
        None,
        404,
    )
    .await;
    http.expect(
        Method::GET,
        &format!("/v1/files/{png_id}/thumbnail?size=huge"),
        "alice",
        None,
        400,
    )
    .await;

    // Redelivery: the worker forgets it handled the events (as after a crash between the
    // effect and its record) and is sent back to the start; it handles every event
    // again, and no second thumbnail is recorded.
    let thumbnails = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM events WHERE event_type = 'ThumbnailCreated'",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap()
    };
    assert_eq!(thumbnails().await, 4);
    let handled = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM worker_events WHERE worker = 'thumbnailer'",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap()
    };
    let before = handled().await;
    assert!(before > 0);
    sqlx::query("DELETE FROM worker_events WHERE worker = 'thumbnailer'")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE projector_checkpoints SET position = 0 WHERE name = 'thumbnailer'")
        .execute(&env.pool)
        .await
        .unwrap();
    eventually(
        "the thumbnailer to handle everything again",
        Duration::from_secs(30),
        || async { (handled().await >= before).then_some(()) },
    )
    .await;
    assert_eq!(thumbnails().await, 4, "no second thumbnail");
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ThumbnailFailed'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_outsiders_and_deletion() {
    let env = TestEnv::new().await;
    let s3 = S3Server::start().await;
    let server = server(&env, &s3, &[]).await;
    let http = Http::new(server.http());
    let (ws, doc) = http.workspace_with_document("alice").await;
    let (_, eves_doc) = http.workspace_with_document("eve").await;
    http.add_member(&ws, "alice", "gina", "guest").await;

    let bytes = png(64, 64);
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "logo.png", "size": bytes.len(), "content_type": "image/png" }),
    )
    .await;
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(send(&http, "alice", &started, &bytes).await.status, 200);
    file_when(&http, &id, "alice", "thumbnails", |f| {
        f["thumbnails"]["small"].is_object()
    })
    .await;

    // Someone outside the workspace: every file route is a 404, as for no file at all.
    let file_routes = [
        (Method::GET, format!("/v1/files/{id}"), None),
        (Method::GET, format!("/v1/files/{id}/download"), None),
        (Method::GET, format!("/v1/files/{id}/thumbnail"), None),
        (
            Method::POST,
            format!("/v1/files/{id}/complete"),
            Some(json!({})),
        ),
        (Method::DELETE, format!("/v1/files/{id}"), None),
        (
            Method::POST,
            format!("/v1/documents/{eves_doc}/attachments/{id}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/documents/{doc}/attachments/{id}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/documents/{doc}/attachments"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/workspaces/{ws}/files"),
            Some(json!({ "filename": "a.png", "size": 1, "content_type": "image/png" })),
        ),
    ];
    for (method, path, body) in &file_routes {
        let r = http.call(method.clone(), path, "eve", body.clone()).await;
        assert_eq!(r.status, 404, "eve {method} {path}: {}", r.body);
    }
    let unknown = uuid::Uuid::now_v7();
    http.expect(
        Method::GET,
        &format!("/v1/files/{unknown}"),
        "alice",
        None,
        404,
    )
    .await;
    http.expect(Method::GET, "/v1/files/not-a-uuid", "alice", None, 400)
        .await;

    // Attached to the document, listed with it, and readable by whom it is shared with.
    let attached = http
        .expect(
            Method::POST,
            &format!("/v1/documents/{doc}/attachments/{id}"),
            "alice",
            None,
            200,
        )
        .await;
    let listed = http
        .get_at(
            &format!("/v1/documents/{doc}/attachments"),
            "alice",
            attached.position(),
        )
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["files"][0]["id"], id);
    assert_eq!(listed.body["files"][0]["documents"], json!([doc]));
    http.expect(
        Method::PUT,
        &format!("/v1/documents/{doc}/permissions/sam"),
        "alice",
        Some(json!({ "role": "viewer" })),
        200,
    )
    .await;
    // A share link's holder reads it too, through the document.
    let link = http
        .expect(
            Method::POST,
            &format!("/v1/documents/{doc}/links"),
            "alice",
            Some(json!({ "role": "viewer" })),
            201,
        )
        .await;
    let token = link.body["token"].as_str().unwrap().to_owned();
    let with_link = |path: String, link: Option<String>| {
        let request = http
            .client
            .get(format!("{}{path}", http.base))
            .bearer_auth(collab_tests::mint("lou", 600));
        let request = match link {
            Some(link) => request.header("X-Collab-Link", link),
            None => request,
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        with_link(format!("/v1/files/{id}"), Some(token.clone())).await,
        200
    );
    assert_eq!(
        with_link(format!("/v1/documents/{doc}/attachments"), Some(token)).await,
        200
    );
    assert_eq!(with_link(format!("/v1/files/{id}"), None).await, 404);
    http.expect(Method::GET, &format!("/v1/files/{id}"), "sam", None, 200)
        .await;
    fetch(&http, &format!("/v1/files/{id}/download"), "sam").await;
    http.expect(
        Method::GET,
        &format!("/v1/documents/{doc}/attachments"),
        "sam",
        None,
        200,
    )
    .await;
    // A viewer attaches nothing; a guest of the workspace reads but uploads nothing.
    http.expect(
        Method::DELETE,
        &format!("/v1/documents/{doc}/attachments/{id}"),
        "sam",
        None,
        403,
    )
    .await;
    http.expect(Method::GET, &format!("/v1/files/{id}"), "gina", None, 200)
        .await;
    http.expect(
        Method::POST,
        &format!("/v1/workspaces/{ws}/files"),
        "gina",
        Some(json!({ "filename": "a.png", "size": 1, "content_type": "image/png" })),
        403,
    )
    .await;
    // Someone else's file cannot be attached to one's own document.
    http.expect(
        Method::POST,
        &format!("/v1/documents/{eves_doc}/attachments/{id}"),
        "eve",
        None,
        404,
    )
    .await;

    // Deleting the document keeps the file.
    http.expect(
        Method::DELETE,
        &format!("/v1/documents/{doc}"),
        "alice",
        None,
        200,
    )
    .await;
    http.expect(Method::GET, &format!("/v1/files/{id}"), "alice", None, 200)
        .await;
    // With its document gone, the share no longer reaches it.
    http.expect(Method::GET, &format!("/v1/files/{id}"), "sam", None, 404)
        .await;

    // Deleting the file: only its uploader or a manager; the objects go too.
    http.add_member(&ws, "alice", "mo", "member").await;
    http.expect(Method::DELETE, &format!("/v1/files/{id}"), "mo", None, 403)
        .await;
    let keys = s3.keys();
    assert_eq!(keys.len(), 3, "{keys:?}");
    http.expect(
        Method::DELETE,
        &format!("/v1/files/{id}"),
        "alice",
        None,
        200,
    )
    .await;
    assert_eq!(
        s3.keys(),
        Vec::<String>::new(),
        "original and thumbnails removed"
    );
    http.expect(Method::GET, &format!("/v1/files/{id}"), "alice", None, 404)
        .await;
    http.expect(
        Method::DELETE,
        &format!("/v1/files/{id}"),
        "alice",
        None,
        404,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_never_completed_are_aborted_and_recorded_abandoned() {
    let env = TestEnv::new().await;
    let s3 = S3Server::start().await;
    let server = server(
        &env,
        &s3,
        &[
            ("COLLAB_UPLOAD_EXPIRY_SECS", "2"),
            ("COLLAB_UPLOAD_PART_BYTES", "5242880"),
        ],
    )
    .await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;
    let started = start(
        &http,
        &ws,
        "alice",
        json!({ "filename": "big.zip", "size": 6 * MIB, "content_type": "application/zip" }),
    )
    .await;
    assert_eq!(started["upload"]["method"], "multipart");
    let id = started["id"].as_str().unwrap().to_owned();
    // One part arrives; the upload is never completed.
    let part = plain()
        .put(started["upload"]["parts"][0]["url"].as_str().unwrap())
        .body(vec![7u8; 5 * MIB])
        .send()
        .await
        .unwrap();
    assert!(part.status().is_success());
    assert_eq!(s3.pending_parts(), 1);
    let meta = file_when(&http, &id, "alice", "the upload to be abandoned", |f| {
        f["state"] == "abandoned"
    })
    .await;
    assert_eq!(meta["reason"], "the upload was not completed in time");
    // The store dropped the part; completing it is refused.
    assert_eq!(s3.pending_parts(), 0);
    let r = http
        .call(
            Method::POST,
            &format!("/v1/files/{id}/complete"),
            "alice",
            Some(json!({ "parts": [{ "number": 1, "etag": "x" }] })),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(!s3.has(&format!("files/{ws}/{id}/original")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_s3_uploads_are_refused_with_a_clear_error() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (ws, _) = http.workspace_with_document("alice").await;
    let r = http
        .expect(
            Method::POST,
            &format!("/v1/workspaces/{ws}/files"),
            "alice",
            Some(json!({ "filename": "a.png", "size": 10, "content_type": "image/png" })),
            503,
        )
        .await;
    assert_eq!(r.body["code"], "file_storage_unavailable");
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("COLLAB_S3_BUCKET"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_document_snapshots_go_to_the_bucket_and_loading_reads_them() {
    let env = TestEnv::new().await;
    let s3 = S3Server::start().await;
    let mut server = server(
        &env,
        &s3,
        &[
            ("COLLAB_SNAPSHOT_INLINE_MAX_BYTES", "0"),
            ("COLLAB_CONTENT_SNAPSHOT_QUIET_MS", "200"),
        ],
    )
    .await;
    let http = Http::new(server.http());
    let (_, doc) = http.workspace_with_document("alice").await;
    http.write_text(&doc, "alice", "kept in the bucket").await;
    let key: String = eventually(
        "a snapshot in the bucket",
        Duration::from_secs(30),
        || async {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT blob_key FROM document_snapshots WHERE document_id = $1::uuid",
            )
            .bind(&doc)
            .fetch_optional(&env.pool)
            .await
            .unwrap()
            .flatten()
        },
    )
    .await;
    assert!(key.starts_with(&format!("snapshots/{doc}/")), "{key}");
    assert_eq!(s3.keys(), vec![key.clone()]);
    // A fresh process loads the document from the snapshot in the bucket.
    server.terminate().await;
    server.restart().await;
    let http = Http::new(server.http());
    assert_eq!(http.content_text(&doc, "alice").await, "kept in the bucket");
    // Without the object the document cannot load: the bucket is really what was read.
    std::fs::remove_file(s3.root.join(&s3.bucket).join(&key)).unwrap();
    server.terminate().await;
    server.restart().await;
    let http = Http::new(server.http());
    let r = http
        .call(
            Method::GET,
            &format!("/v1/documents/{doc}/content?format=text"),
            "alice",
            None,
        )
        .await;
    assert!(r.status.is_server_error(), "{} {}", r.status, r.body);
}
