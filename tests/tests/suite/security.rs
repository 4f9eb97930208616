//! The security suite: tokens from an OIDC-style issuer (RS256/ES256 through a JWKS this
//! test serves over loopback), and every way a token can be wrong.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use collab_api::auth::AuthSettings;
use collab_tests::{eventually, TestApp, TestEnv, TEST_SECRET};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.test/";
const AUDIENCE: &str = "collab";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .unwrap()
}

/// Serves whatever JWKS document is in `current` on a loopback port.
async fn jwks_server(current: Arc<Mutex<Vec<u8>>>) -> String {
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let body = current.lock().unwrap().clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn claims(user: &str, ttl: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "sub": user, "iat": now, "exp": now + ttl, "iss": ISSUER, "aud": AUDIENCE })
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn status_with(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let r = app
        .http
        .get(app.url("/v1/workspaces"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_a_jwks_issuer_are_verified_and_every_forgery_is_refused() {
    let document = Arc::new(Mutex::new(fixture("jwks.json")));
    let url = jwks_server(document.clone()).await;
    let app = TestApp::spawn_with(TestEnv::new().await, |s| {
        s.auth = AuthSettings {
            hs256_secret: Some(TEST_SECRET.to_owned().into()),
            jwks_url: Some(url),
            oidc: None,
            algorithms: vec![Algorithm::HS256, Algorithm::RS256, Algorithm::ES256],
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            leeway_seconds: 5,
        }
    })
    .await;
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap();
    let other_rsa = EncodingKey::from_rsa_pem(&fixture("rsa-other-private.pem")).unwrap();
    let hs = EncodingKey::from_secret(TEST_SECRET.as_bytes());

    // Good tokens: RS256 and ES256 from the issuer, HS256 with the development secret.
    let good = claims("alice", 300);
    assert_eq!(
        status_with(&app, &sign(Algorithm::RS256, Some("rsa-1"), &rsa, &good))
            .await
            .0,
        200
    );
    assert_eq!(
        status_with(&app, &sign(Algorithm::ES256, Some("ec-1"), &ec, &good))
            .await
            .0,
        200
    );
    assert_eq!(
        status_with(&app, &sign(Algorithm::HS256, None, &hs, &good))
            .await
            .0,
        200
    );

    let refused = [
        ("alg none", {
            let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
            format!("{header}.{}.", base64url(good.to_string().as_bytes()))
        }),
        (
            "wrong key for the kid",
            sign(Algorithm::RS256, Some("rsa-1"), &other_rsa, &good),
        ),
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("nope"), &rsa, &good),
        ),
        ("no kid", sign(Algorithm::RS256, None, &rsa, &good)),
        (
            "ES key named as RS",
            sign(Algorithm::ES256, Some("rsa-1"), &ec, &good),
        ),
        (
            "HS256 keyed with the RSA public key",
            sign(
                Algorithm::HS256,
                Some("rsa-1"),
                &EncodingKey::from_secret(&fixture("rsa-public.pem")),
                &good,
            ),
        ),
        (
            "expired",
            sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &rsa,
                &claims("alice", -3600),
            ),
        ),
        ("wrong audience", {
            let mut c = good.clone();
            c["aud"] = json!("someone-else");
            sign(Algorithm::RS256, Some("rsa-1"), &rsa, &c)
        }),
        ("wrong issuer", {
            let mut c = good.clone();
            c["iss"] = json!("https://evil.test/");
            sign(Algorithm::RS256, Some("rsa-1"), &rsa, &c)
        }),
        ("no audience", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("aud");
            sign(Algorithm::RS256, Some("rsa-1"), &rsa, &c)
        }),
        ("not yet valid", {
            let mut c = good.clone();
            c["nbf"] = json!(chrono::Utc::now().timestamp() + 3600);
            sign(Algorithm::RS256, Some("rsa-1"), &rsa, &c)
        }),
        (
            "HS384 (not configured)",
            sign(Algorithm::HS384, None, &hs, &good),
        ),
        ("tampered payload", {
            let token = sign(Algorithm::RS256, Some("rsa-1"), &rsa, &good);
            let parts: Vec<&str> = token.split('.').collect();
            let mut forged = good.clone();
            forged["sub"] = json!("mallory");
            format!(
                "{}.{}.{}",
                parts[0],
                base64url(forged.to_string().as_bytes()),
                parts[2]
            )
        }),
    ];
    for (what, token) in refused {
        let (status, body) = status_with(&app, &token).await;
        assert_eq!(status, 401, "{what}: {body}");
    }
    assert_eq!(
        status_with(
            &app,
            &sign(
                Algorithm::RS256,
                Some("rsa-1"),
                &rsa,
                &claims("alice", -3600)
            )
        )
        .await
        .1["code"],
        "token_expired"
    );

    // Key rotation: the issuer publishes a new key; tokens signed with it work once the
    // cache notices the unknown kid (no restart).
    *document.lock().unwrap() = fixture("jwks-rotated.json");
    let rotated = sign(Algorithm::RS256, Some("rsa-2"), &other_rsa, &good);
    eventually(
        "the rotated key to be picked up",
        Duration::from_secs(10),
        || {
            let (app, rotated) = (&app, &rotated);
            async move { (status_with(app, rotated).await.0 == 200).then_some(()) }
        },
    )
    .await;
    assert_eq!(
        app.env.count_events().await,
        0,
        "nothing was stored along the way"
    );
}

#[tokio::test]
async fn with_only_jwks_configured_hs256_tokens_are_refused_outright() {
    let document = Arc::new(Mutex::new(fixture("jwks.json")));
    let url = jwks_server(document).await;
    let app = TestApp::spawn_with(TestEnv::new().await, |s| {
        s.auth = AuthSettings {
            hs256_secret: None,
            jwks_url: Some(url),
            oidc: None,
            algorithms: vec![Algorithm::RS256],
            issuer: None,
            audience: None,
            leeway_seconds: 5,
        }
    })
    .await;
    // Even the right shared secret is useless: HS256 is not an accepted algorithm.
    assert_eq!(status_with(&app, &TestApp::token("alice")).await.0, 401);
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap();
    let now = chrono::Utc::now().timestamp();
    let token = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &rsa,
        &json!({"sub": "alice", "exp": now + 60}),
    );
    assert_eq!(status_with(&app, &token).await.0, 200);
    let es = EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap();
    let token = sign(
        Algorithm::ES256,
        Some("ec-1"),
        &es,
        &json!({"sub": "alice", "exp": now + 60}),
    );
    assert_eq!(
        status_with(&app, &token).await.0,
        401,
        "ES256 is not configured here"
    );
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_user_and_per_workspace() {
    use collab_api::rate_limit::{Limit, RateLimitSettings};
    let app = TestApp::spawn_with(TestEnv::new().await, |s| {
        s.rate_limits = RateLimitSettings {
            per_user: Limit {
                per_second: 1,
                burst: 5,
            },
            per_workspace: Limit {
                per_second: 1,
                burst: 8,
            },
            ..RateLimitSettings::unlimited()
        }
    })
    .await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    let mut statuses = vec![];
    for _ in 0..6 {
        statuses.push(app.get("/v1/workspaces", "alice").await);
    }
    let limited = statuses.last().unwrap();
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.body["code"], "rate_limited");
    assert_eq!(limited.body["details"]["scope"], "user");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(
        app.get("/v1/workspaces", "bob").await.status,
        200,
        "limits are per user"
    );

    // Many users on one workspace: the workspace's own limit applies.
    let mut last = StatusCode::OK;
    for n in 0..12 {
        last = app
            .get(&format!("/v1/workspaces/{ws}"), &format!("user{n}"))
            .await
            .status;
    }
    assert_eq!(last, 429);
}

#[tokio::test]
async fn row_level_security_hides_every_read_model_row_without_the_tenant_setting() {
    let app = TestApp::spawn().await;
    let (alice_ws, _) = app.create_workspace("alice", "Alice's").await;
    let (_, _) = app.create_workspace("bob", "Bob's").await;
    let doc = app
        .post(
            &format!("/v1/workspaces/{alice_ws}/documents"),
            "alice",
            json!({"title": "A"}),
        )
        .await;
    assert_eq!(
        app.get_at("/v1/workspaces", "alice", doc.position())
            .await
            .status,
        200
    );
    let pool = &app.env.pool;

    // Every read-model table carries workspace_id (people's profiles and notification
    // preferences: user_id, each person's own) and has RLS enabled.
    let tables: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, \
                EXISTS (SELECT 1 FROM information_schema.columns i \
                        WHERE i.table_name = c.relname AND i.column_name = \
                        CASE WHEN c.relname IN ('rm_profiles', 'rm_notification_preferences') \
                        THEN 'user_id' ELSE 'workspace_id' END) \
         FROM pg_class c WHERE c.relkind = 'r' AND (c.relname LIKE 'rm\\_%' OR c.relname = 'presence_now') \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(tables.len(), 29, "{tables:?}");
    for (table, rls, tenant_column) in &tables {
        assert!(
            *rls && *tenant_column,
            "{table}: rls {rls}, workspace_id {tenant_column}"
        );
    }

    let count_as = |user: Option<&'static str>, table: &'static str| async move {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SET LOCAL ROLE collab_reader")
            .execute(&mut *tx)
            .await
            .unwrap();
        if let Some(user) = user {
            sqlx::query("SELECT set_config('collab.user_id', $1, true)")
                .bind(user)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(
                "SELECT set_config('collab.workspaces', (SELECT string_agg(workspace_id::text, ',') \
                 FROM rm_workspace_members WHERE user_id = $1), true)",
            )
            .bind(user)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        n
    };
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM rm_workspaces")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(all, 2);
    for table in [
        "rm_workspaces",
        "rm_workspace_members",
        "rm_documents",
        "rm_audit_entries",
        "rm_audit_stream_heads",
        "rm_profiles",
        "rm_comment_threads",
        "rm_comments",
        "rm_comment_reactions",
        "rm_notifications",
        "rm_notification_threads",
        "rm_notification_preferences",
        "rm_activity",
        "rm_webhooks",
        "rm_files",
        "rm_file_attachments",
        "rm_collections",
        "rm_collection_files",
        "rm_document_templates",
    ] {
        assert_eq!(
            count_as(None, table).await,
            0,
            "{table} without the setting"
        );
    }
    assert_eq!(count_as(Some("alice"), "rm_workspaces").await, 1);
    assert_eq!(count_as(Some("alice"), "rm_documents").await, 1);
    assert_eq!(count_as(Some("bob"), "rm_documents").await, 0);
    // The reader role cannot write, whatever the setting.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE collab_reader")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(sqlx::query("DELETE FROM rm_documents")
        .execute(&mut *tx)
        .await
        .is_err());
}

/// Sockets opening one document together share the loads behind their access checks, and
/// a check never uses a load older than the caller: a removed member is refused at once.
#[tokio::test]
async fn access_checks_arriving_together_share_loads_but_never_an_older_one() {
    use collab_commands::access::{Caller, SharedAccessLoads};
    use collab_domain::{DocumentId, UserId};
    let app = TestApp::spawn().await;
    let (ws, _) = app.create_workspace("alice", "Acme").await;
    app.add_member(&ws, "alice", "bob", "member").await;
    let doc = app.create_document(&ws, "alice", "Plan").await;
    let document = DocumentId::parse(&doc).unwrap();
    let caller = |user: &str| Caller {
        user: UserId::parse(user).unwrap(),
        link: None,
        service: None,
        loaded_workspace: None,
    };
    let shared = SharedAccessLoads::default();
    let callers: Vec<Caller> = (0..20)
        .map(|n| caller(if n % 2 == 0 { "alice" } else { "bob" }))
        .collect();
    let before = app.aggregates.loads().of("document");
    let answers = futures::future::join_all(
        callers
            .iter()
            .map(|c| shared.resolve(&app.aggregates, document, c)),
    )
    .await;
    let loads = app.aggregates.loads().of("document") - before;
    for (n, answer) in answers.into_iter().enumerate() {
        let access = answer.unwrap().expect("both may open it");
        let expected = if n % 2 == 0 { "owner" } else { "member" };
        assert_eq!(access.workspace_role.map(|r| r.as_str()), Some(expected));
    }
    // The first caller's load, and one for everyone who arrived while it ran.
    assert_eq!(loads, 2, "20 checks, {loads} document loads");

    let removed = app
        .delete(&format!("/v1/workspaces/{ws}/members/bob"), "alice")
        .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let after = shared
        .resolve(&app.aggregates, document, &caller("bob"))
        .await
        .unwrap();
    assert!(after.is_none(), "a removed member is refused: {after:?}");
    let owner = shared
        .resolve(&app.aggregates, document, &caller("alice"))
        .await
        .unwrap();
    assert!(owner.is_some());
}
