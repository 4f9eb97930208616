//! The OpenAPI contract (issue 16): the document the binary serves covers every route and
//! nothing else, its reference page needs nothing from outside, and schemathesis —
//! generating requests from the document, authenticated, against the real binary — finds
//! no server error and no response that does not conform.

use std::path::PathBuf;

use collab_tests::{mint, CollabProcess, Http, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn document(server: &CollabProcess) -> Value {
    let response = reqwest::get(format!("{}/v1/openapi.json", server.http()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Every `.route(`/`.nest(`/`Router::new()` in the API's source: there must be none, since
/// a route added that way would be served without being in the document (every route goes
/// through `utoipa_axum::routes!`, which takes its method and path from the annotation that
/// also writes the document).
fn undocumented_route_calls() -> Vec<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api/src");
    let mut found = vec![];
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("//") {
                        continue;
                    }
                    let plain_router = code.replace("OpenApiRouter::new()", "");
                    if [".route(", ".nest(", ".route_service(", "Router::new()"]
                        .iter()
                        .any(|call| plain_router.contains(call))
                    {
                        found.push(format!("{}:{}: {code}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_covers_every_route_and_nothing_else() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let doc = document(&server).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["jwt"]["scheme"], "bearer");
    assert_eq!(schemes["jwt"]["bearerFormat"], "JWT");
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // Regression (schemathesis found it): two response types of the same name made one
    // schema, so a service account's creation was documented with a workspace's fields.
    let created = |path: &str| {
        let reference = doc["paths"][path]["post"]["responses"]["201"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no 201 schema"))
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let body = &doc["components"]["schemas"][&reference]["allOf"][0];
        match body["$ref"].as_str() {
            Some(r) => {
                doc["components"]["schemas"][r.rsplit('/').next().unwrap()]["properties"].clone()
            }
            None => body["properties"].clone(),
        }
    };
    assert!(created("/v1/workspaces/{workspace_id}/service-accounts")["key"].is_object());
    assert!(created("/v1/workspaces")["role"].is_object());
    assert!(created("/v1/workspaces")["key"].is_null());
    // Regression (schemathesis): GraphQL answers `application/graphql-response+json` to
    // clients that accept it.
    let graphql = &doc["paths"]["/v1/graphql"]["post"]["responses"]["200"]["content"];
    assert!(
        graphql["application/graphql-response+json"].is_object(),
        "{graphql}"
    );

    // No route can enter the router except through the document.
    let calls = undocumented_route_calls();
    assert!(
        calls.is_empty(),
        "routes outside the document:\n{}",
        calls.join("\n")
    );

    // Every documented operation is served: never the router's fallback (404 `route not
    // found`) nor a 405 — and every authenticated one answers 401 without a token, as
    // documented.
    let client = reqwest::Client::new();
    let token = mint("alice", 3600);
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "01a23786-9a03-72b4-a3ec-50c0722087aa"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                !responses.is_empty(),
                "{method} {path} documents no response"
            );
            if path.ends_with("/live") {
                continue; // endless (their refusals are checked by their own tests)
            }
            let url = format!("{}{concrete}", server.http());
            let response = client
                .request(method.clone(), &url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                body["message"] != "route not found",
                "{method} {path} is documented but not served"
            );
            assert!(
                responses.contains_key(&status.as_u16().to_string()),
                "{method} {path} answered {status}, not documented: {body}"
            );
            let public = operation["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            if !public {
                let anonymous = client.request(method.clone(), &url).send().await.unwrap();
                assert_eq!(
                    anonymous.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} without a token"
                );
                assert!(responses.contains_key("401"), "{method} {path}");
            }
        }
    }
    assert!(operations >= 50, "{operations} operations");

    // The reference page: every path, no script, nothing fetched from elsewhere.
    let page = reqwest::get(format!("{}/docs", server.http()))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    for path in paths.keys() {
        assert!(html.contains(path.as_str()), "{path} missing from /docs");
    }
    assert!(!html.contains("<script"), "the page runs no script");
    assert!(
        !html.contains("src=\"http"),
        "nothing loaded from elsewhere"
    );
    assert!(
        !html.contains("href=\"http"),
        "nothing linked from elsewhere"
    );
}

/// The schemathesis executable: `SCHEMATHESIS_BIN` (ops/dev/test.sh installs it) or the
/// PATH. Its absence fails the test: a contract nobody checks is no contract.
fn schemathesis() -> PathBuf {
    if let Ok(path) = std::env::var("SCHEMATHESIS_BIN") {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("schemathesis"))
            .find(|p| p.is_file())
    });
    found.expect(
        "schemathesis is not installed: run ops/dev/test.sh (it installs schemathesis 4.32.5 into a virtualenv) or set SCHEMATHESIS_BIN",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_nonconforming_response() {
    let bin = schemathesis();
    let env = TestEnv::new().await;
    // With a bucket, as in production: file routes work all the way.
    let s3 = collab_tests::S3Server::start().await;
    let settings = s3.env();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = CollabProcess::start(&env, &settings).await;
    let http = Http::new(server.http());
    // Real ids, so generated requests reach past "not found": a workspace with a member,
    // a document with content, a named version and a share link.
    let (ws, doc) = http.workspace_with_document("alice").await;
    let call = |method: Method, path: String, body: Value| {
        let http = &http;
        async move {
            let response = http.call(method, &path, "alice", Some(body)).await;
            assert!(response.status.is_success(), "{path}: {}", response.body);
            response.body
        }
    };
    call(
        Method::POST,
        format!("/v1/workspaces/{ws}/members"),
        json!({"user_id": "bob", "role": "member"}),
    )
    .await;
    let version = call(
        Method::POST,
        format!("/v1/documents/{doc}/versions"),
        json!({"name": "first"}),
    )
    .await["version_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let link = call(
        Method::POST,
        format!("/v1/documents/{doc}/links"),
        json!({"role": "viewer"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // An uploaded file in a collection.
    let bytes = b"plain text for the contract test".to_vec();
    let started = call(
        Method::POST,
        format!("/v1/workspaces/{ws}/files"),
        json!({"filename": "notes.txt", "size": bytes.len(), "content_type": "text/plain"}),
    )
    .await;
    let file = started["id"].as_str().unwrap().to_owned();
    let put = reqwest::Client::new()
        .put(started["upload"]["url"].as_str().unwrap())
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    call(
        Method::POST,
        format!("/v1/files/{file}/complete"),
        json!({}),
    )
    .await;
    let collection = call(
        Method::POST,
        format!("/v1/workspaces/{ws}/collections"),
        json!({"name": "Kit"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = std::env::temp_dir().join(format!("collab-schemathesis-{}", env.database_name));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            "[parameters]\n\"path.workspace_id\" = \"{ws}\"\n\"path.document_id\" = \"{doc}\"\n\
             \"path.version_id\" = \"{version}\"\n\"path.link_id\" = \"{link}\"\n\
             \"path.user_id\" = \"bob\"\n\"path.principal\" = \"user:bob\"\n\
             \"path.file_id\" = \"{file}\"\n\"path.collection_id\" = \"{collection}\"\n"
        ),
    )
    .unwrap();
    let output = tokio::process::Command::new(&bin)
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &format!("{}/v1/openapi.json", server.http()),
            "--header",
            &format!("Authorization: Bearer {}", mint("alice", 3600)),
            "--checks",
            "all",
            // A request with a wrong token is refused as it should be, which this check
            // cannot tell from "ignored"; generated valid data may still be refused by
            // rules no schema states (a name already taken...).
            "--exclude-checks",
            "ignored_auth,positive_data_acceptance",
            // Endless (SSE) and WebSocket routes have their own tests.
            "--exclude-path-regex",
            "/live$|/v1/sync/",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "15",
            "--workers",
            "2",
            "--request-timeout",
            "20",
            "--seed",
            "16",
            "--no-color",
        ])
        .current_dir(&dir)
        .output()
        .await
        .expect("schemathesis runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed"), "{stdout}");
}
