//! The web app: served by the binary at `/`, development sign-in and its rules, sign-in at
//! a real OpenID provider, and the app itself in a real browser (Debian's Chromium driven by playwright-core) against the
//! real binary, Postgres and NATS.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use collab_tests::{
    collab_bin, eventually, mint, CollabProcess, Http, S3Server, TestApp, TestEnv, TEST_SECRET,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The built app's page, asserting it exists (ops/dev/test.sh builds it).
fn built_index() -> String {
    std::fs::read_to_string(root().join("api/web/dist/index.html"))
        .expect("the web app is built (ops/dev/web.sh)")
}

#[tokio::test]
async fn the_app_is_served_at_the_root_and_at_its_own_addresses() {
    let index = built_index();
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();

    for path in ["/", "/d/0194f5a0-0000-7000-8000-000000000000"] {
        let page = http.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(page.headers()["content-type"], "text/html", "{path}");
        assert_eq!(page.headers()["cache-control"], "no-cache");
        let policy = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(policy.contains(&format!("ws://{}", app.addr)), "{policy}");
        assert_eq!(page.text().await.unwrap(), index);
    }

    // The script the page names: cached for good, and revalidated by its tag.
    let script = index
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("the page names its script")
        .to_owned();
    let asset = http.get(app.url(&script)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["content-type"], "text/javascript");
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let tag = asset.headers()["etag"].clone();
    let again = http
        .get(app.url(&script))
        .header("if-none-match", tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // Gzipped for browsers that take it; API answers are not.
    let plain = asset.bytes().await.unwrap().len();
    let zipped = http
        .get(app.url(&script))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.unwrap().len();
    assert!(zipped * 2 < plain, "{zipped} gzipped of {plain}");
    let json = http
        .get(app.url("/v1/app/config"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(json.headers().get("content-encoding").is_none());

    // Not the page: a missing file, an API path, anything but GET.
    for (method, path) in [
        (Method::GET, "/assets/gone-1234.js"),
        // Nothing outside the app's files, however the path is spelt.
        (Method::GET, "/..%2fCargo.toml"),
        (Method::GET, "/assets/..%2f..%2fpackage.json"),
        (Method::GET, "/%2e%2e/%2e%2e/Cargo.toml"),
        (Method::GET, "/v1/nothing-here"),
        (Method::POST, "/"),
    ] {
        let response = app.call(method.clone(), path, None, None).await;
        assert_eq!(response.status, 404, "{method} {path}");
        assert!(
            response.body["code"].is_string(),
            "{method} {path}: JSON error"
        );
    }
}

#[tokio::test]
async fn development_sign_in_is_off_unless_asked_for_and_checks_names() {
    let off = TestApp::spawn().await;
    let config = off.call(Method::GET, "/v1/app/config", None, None).await;
    assert_eq!(config.body, json!({"dev_login": false, "oidc": null}));
    let refused = off
        .call(
            Method::POST,
            "/v1/dev/login",
            None,
            Some(json!({"name": "Mallory"})),
        )
        .await;
    assert_eq!(refused.status, 404);
    drop(off);

    let app = TestApp::spawn_with(TestEnv::new().await, |s| s.web.dev_login = true).await;
    let config = app.call(Method::GET, "/v1/app/config", None, None).await;
    assert_eq!(config.body["dev_login"], true);
    let signed_in = app
        .call(
            Method::POST,
            "/v1/dev/login",
            None,
            Some(json!({"name": " Ada Lovelace "})),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(signed_in.body["user_id"], "dev-ada-lovelace");
    assert_eq!(signed_in.body["name"], "Ada Lovelace");
    let token = signed_in.body["token"].as_str().unwrap();
    // The token works, and the name reaches the profile (filled at the first sign-in).
    let (http, url, token) = (
        app.http.clone(),
        app.url("/v1/me/profile"),
        token.to_owned(),
    );
    eventually("the name in the profile", Duration::from_secs(10), || {
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            let profile: Value = http
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (profile["display_name"] == "Ada Lovelace").then_some(())
        }
    })
    .await;

    for bad in [
        json!({"name": ""}),
        json!({"name": "!!!"}),
        json!({"name": "a\u{7}b"}),
        json!({"name": "x".repeat(61)}),
        json!({"nom": "Ada"}),
        json!("Ada"),
    ] {
        let refused = app
            .call(Method::POST, "/v1/dev/login", None, Some(bad.clone()))
            .await;
        assert_eq!(refused.status, 422, "{bad}: {}", refused.body);
    }
}

#[tokio::test]
async fn the_binary_refuses_development_sign_in_where_it_would_be_unsafe() {
    let env = TestEnv::new().await;
    let run = |listen: &str, secret: Option<&str>| {
        let mut command = Command::new(collab_bin());
        command
            .args(["serve", "--dev-login", "--listen", listen])
            .env("COLLAB_DATABASE_URL", &env.database_url)
            .env("COLLAB_NATS_URL", &env.nats_url)
            .env("COLLAB_SUBJECT_PREFIX", &env.prefix)
            .env_remove("COLLAB_JWT_SECRET")
            .env("COLLAB_LOG", "warn");
        if let Some(secret) = secret {
            command.env("COLLAB_JWT_SECRET", secret);
        } else {
            command.env("COLLAB_JWKS_URL", "http://127.0.0.1:9/jwks.json");
            command.env("COLLAB_JWT_ALGORITHMS", "RS256");
        }
        command
    };
    for (mut command, expected) in [
        (run("0.0.0.0:0", Some(TEST_SECRET)), "refused on 0.0.0.0:0"),
        (run("127.0.0.1:0", None), "needs an HS256 secret"),
    ] {
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || command.output().unwrap()),
        )
        .await
        .expect("collab exits promptly")
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// Two people write together in two browsers: the owner adds the other to the workspace and
/// shares the document with a viewer from the Share panel; each writer sees the other's
/// text, caret and avatar; one comments on a selection, mentioning the other, and they
/// reply, react and resolve — each sees the other's live, the passage marked in both texts
/// and following them; a picture dropped onto the text is uploaded to the object store,
/// attached and shown to both; the viewer, on a phone-sized screen, reads but cannot type or
/// comment; one
/// writer goes offline, both keep writing, and they converge when the network is back; the
/// owner exports Markdown and restores her first version from the History panel, which the
/// other writer's editor shows — and the server holds what the browsers show.
/// Accessibility (axe-core, WCAG 2.1 A/AA) is checked on each screen and panel on the way.
#[tokio::test]
async fn two_people_write_together_in_the_browser() {
    built_index();
    let env = TestEnv::new().await;
    // Files go straight from the browser to an S3-compatible store of the test's own.
    let s3 = S3Server::start().await;
    let mut settings: Vec<(&str, &str)> = vec![("COLLAB_DEV_LOGIN", "true")];
    let store = s3.env();
    settings.extend(store.iter().map(|(k, v)| (*k, v.as_str())));
    let server = CollabProcess::start(&env, &settings).await;
    let findings = browser_scenario("web.mjs", &server).await;
    // The dropped picture was checked, stored and attached.
    let files = findings["attachments"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        (
            &files[0]["filename"],
            &files[0]["content_type"],
            &files[0]["state"]
        ),
        (&json!("pixel.png"), &json!("image/png"), &json!("uploaded"))
    );
    let key = format!(
        "files/{}/{}/original",
        findings["workspace"].as_str().unwrap(),
        files[0]["id"].as_str().unwrap()
    );
    assert!(s3.has(&key), "the store holds {key}: {:?}", s3.keys());
    let document = findings["document"].as_str().unwrap().to_owned();
    let before = findings["before_restore"].as_str().unwrap();
    for part in [
        "Hello from Ada.",
        "Hi from Ben.",
        "Written offline.",
        "Ada meanwhile.",
    ] {
        assert!(before.contains(part), "the browsers showed {before:?}");
    }
    assert!(
        !before.contains("VIEWER"),
        "the viewer's typing is not shown: {before:?}"
    );
    // After Ada restored her first version from the history panel.
    let seen = findings["text"].as_str().unwrap().to_owned();
    assert!(
        seen.contains("Hello from Ada.") && !seen.contains("Hi from Ben."),
        "after the restore: {seen:?}"
    );

    // The server holds what both browsers show.
    let http = reqwest::Client::new();
    let url = format!(
        "{}/v1/documents/{document}/export?format=txt",
        server.http()
    );
    let token = mint("dev-ada-lovelace", 600);
    eventually(
        "the server holds the browsers' text",
        Duration::from_secs(20),
        || {
            let (http, url, token, seen) = (http.clone(), url.clone(), token.clone(), seen.clone());
            async move {
                let response = http.get(&url).bearer_auth(&token).send().await.ok()?;
                if response.status() != StatusCode::OK {
                    return None;
                }
                let text = response.text().await.ok()?;
                (text.trim() == seen.trim()).then_some(())
            }
        },
    )
    .await;
}

/// Runs a browser scenario (`tests/node/<script>`) against `server`; its findings.
async fn browser_scenario(script: &str, server: &CollabProcess) -> Value {
    let mut command = tokio::process::Command::new("node");
    command
        .arg(format!("tests/node/{script}"))
        .current_dir(root())
        .env("COLLAB_URL", server.http())
        .kill_on_drop(true);
    if let Ok(path) = std::env::var("COLLAB_SCREENSHOT") {
        command.env("COLLAB_SCREENSHOT", path);
    }
    let output = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .expect("the browser scenario finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let findings: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("browser findings ({script}): {findings}");
    findings
}

/// A real OpenID provider (npm oidc-provider, tests/node/oidc.mjs) for the app at `app`;
/// its issuer. The process lives as long as the returned child.
async fn openid_provider(app: &str) -> (String, tokio::process::Child) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new("node")
        .arg("tests/node/oidc.mjs")
        .current_dir(root())
        .env("COLLAB_URL", app)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs tests/node/oidc.mjs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the OpenID provider starts")
        .unwrap()
        .expect("the OpenID provider prints its issuer");
    let issuer = serde_json::from_str::<Value>(&line).unwrap()["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    (issuer, child)
}

/// Production sign-in: the app signs in at a real OpenID provider (authorisation code flow
/// with PKCE), the server verifies the provider's ID tokens with the keys its discovery
/// document names (nothing but the issuer and the client id configured), the session is
/// renewed silently before its token expires, and signing out ends it at the provider too.
#[tokio::test]
async fn people_sign_in_at_an_openid_provider() {
    built_index();
    let env = TestEnv::new().await;
    let port = collab_tests::free_port();
    let app = format!("http://127.0.0.1:{port}");
    let (issuer, _provider) = openid_provider(&app).await;
    let server = CollabProcess::start_at(
        &env,
        port,
        &[
            ("COLLAB_OIDC_ISSUER", issuer.as_str()),
            ("COLLAB_OIDC_CLIENT_ID", "collab-web"),
        ],
    )
    .await;
    let api = Http::new(app.clone());
    let config = api
        .call(Method::GET, "/v1/app/config", "anyone", None)
        .await;
    assert_eq!(
        config.body,
        json!({"dev_login": false, "oidc": {"issuer": issuer, "client_id": "collab-web"}})
    );

    let findings = browser_scenario("web-oidc.mjs", &server).await;
    assert_eq!(
        findings["token"],
        json!({"iss": issuer, "aud": "collab-web", "alg": "RS256"})
    );
    // Renewed about a minute before the 75-second token expires.
    let renewed = findings["renewed_after_ms"].as_u64().unwrap();
    assert!(
        (5_000..70_000).contains(&renewed),
        "renewed after {renewed} ms"
    );

    // What the browser did is the provider's subject's, with the name from its claims.
    let workspaces = api
        .call(Method::GET, "/v1/workspaces", "grace-hopper", None)
        .await;
    assert_eq!(
        workspaces.body["workspaces"][0]["name"], "Navy",
        "{}",
        workspaces.body
    );
    let profile = api
        .call(Method::GET, "/v1/me/profile", "grace-hopper", None)
        .await;
    assert_eq!(
        profile.body["display_name"], "Grace Hopper",
        "{}",
        profile.body
    );
    let http = reqwest::Client::new();
    let token = mint("grace-hopper", 600);
    let document = findings["document"].as_str().unwrap();
    eventually(
        "the server holds what Grace typed",
        Duration::from_secs(20),
        || {
            let (http, token) = (http.clone(), token.clone());
            let url = format!("{app}/v1/documents/{document}/export?format=txt");
            async move {
                let text = http
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                text.contains("Signed in at the provider.").then_some(())
            }
        },
    )
    .await;
    // A token the provider did not sign is refused like any other.
    let forged = http
        .get(format!("{app}/v1/workspaces"))
        .bearer_auth("eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.eyJzdWIiOiJncmFjZS1ob3BwZXIiLCJleHAiOjk5OTk5OTk5OTl9.c2lnbmF0dXJl")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}
