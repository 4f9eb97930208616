//! Profiles and erasure (issue 14, items 1–2): a profile filled from the first sign-in's
//! claims, set by its owner, shown in member lists, sealed in the events; erasure destroys
//! the person's keys so their name and email are nowhere in the database or on JetStream,
//! a rebuild does not bring them back, and the audit chain still verifies.

use std::process::Command;
use std::time::Duration;

use collab_tests::{collab_bin, eventually, mint, mint_with_claims, CollabProcess, Http, TestEnv};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn get_profile(http: &Http, token: &str, at: Option<i64>) -> Value {
    let mut request = http
        .client
        .get(format!("{}/v1/me/profile", http.base))
        .bearer_auth(token);
    if let Some(at) = at {
        request = request.header("X-Collab-Min-Position", at.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn put_profile(http: &Http, user: &str, body: Value) -> (StatusCode, Value) {
    let r = http
        .call(Method::PUT, "/v1/me/profile", user, Some(body))
        .await;
    (r.status, r.body)
}

async fn member_name(http: &Http, workspace: &str, member: &str, at: i64) -> Value {
    let response = http
        .client
        .get(format!("{}/v1/workspaces/{workspace}/members", http.base))
        .bearer_auth(mint("alice", 600))
        .header("X-Collab-Min-Position", at.to_string())
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == member)
        .unwrap_or_else(|| panic!("{member} in {body}"))["display_name"]
        .clone()
}

/// Every row of every table of the database as text (bytea as hex), in one string.
async fn whole_database(pool: &sqlx::PgPool) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_name) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() > 20, "{tables:?}");
    let mut out = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(pool)
            .await
            .unwrap();
        out.push_str(&rows.join("\n"));
    }
    out
}

/// Every message of the test's events stream, payloads as raw bytes.
async fn stream_bytes(env: &TestEnv) -> Vec<u8> {
    let js = env.jetstream().await;
    let mut stream = js.get_stream(env.stream_name()).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = vec![];
    for seq in 1..=last {
        if let Ok(message) = stream.get_raw_message(seq).await {
            out.extend_from_slice(&message.payload);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Neither the text nor its hex (a bytea column's rendering) is in `dump`.
fn absent(dump: &str, secret: &str) -> bool {
    !dump.contains(secret)
        && !dump.contains(
            &secret
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        )
}

fn collab(env: &TestEnv, args: &[&str]) -> String {
    let output = Command::new(collab_bin())
        .args(args)
        .env("COLLAB_DATABASE_URL", &env.database_url)
        .env("COLLAB_NATS_URL", &env.nats_url)
        .env("COLLAB_SUBJECT_PREFIX", &env.prefix)
        .output()
        .expect("collab runs");
    assert!(
        output.status.success(),
        "collab {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_profile_is_filled_at_sign_in_set_by_its_owner_and_sealed_in_the_log() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (workspace, _) = http.workspace_with_document("alice").await;
    http.add_member(&workspace, "alice", "zoe", "member").await;

    // The first sign-in with `name` and `email` claims fills the profile...
    let claims = json!({"name": "Zoë Ångström", "email": "zoe.angstrom@example.com"});
    let token = mint_with_claims("zoe", 600, claims);
    eventually(
        "the profile filled from the claims",
        Duration::from_secs(10),
        || {
            let (http, token) = (&http, &token);
            async move {
                let profile = get_profile(http, token, None).await;
                (profile["display_name"] == "Zoë Ångström"
                    && profile["email"] == "zoe.angstrom@example.com")
                    .then_some(())
            }
        },
    )
    .await;
    // ... once: other claims later change nothing, nor do claims of the wrong type.
    let later = mint_with_claims("zoe", 600, json!({"name": "Someone Else"}));
    assert_eq!(
        get_profile(&http, &later, None).await["display_name"],
        "Zoë Ångström"
    );
    let odd = mint_with_claims("odd", 600, json!({"name": 42, "email": ["x"]}));
    let profile = get_profile(&http, &odd, None).await;
    assert_eq!(profile["display_name"], Value::Null);
    assert_eq!(profile["updated_at"], Value::Null);

    // The owner sets it; members see the name, never the email.
    let (status, body) = put_profile(
        &http,
        "zoe",
        json!({"display_name": "  Zed  ", "email": "zed@example.com"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["display_name"], "Zed");
    let at = body["position"].as_i64().unwrap();
    let profile = get_profile(&http, &mint("zoe", 600), Some(at)).await;
    assert_eq!(
        (profile["display_name"].as_str(), profile["email"].as_str()),
        (Some("Zed"), Some("zed@example.com"))
    );
    assert_eq!(member_name(&http, &workspace, "zoe", at).await, "Zed");
    assert_eq!(
        member_name(&http, &workspace, "alice", at).await,
        Value::Null
    );

    // Bad input: a clear 4xx, nothing changed.
    for (body, status) in [
        (json!({"display_name": ""}), 422),
        (json!({"display_name": "x".repeat(101)}), 422),
        (json!({"display_name": "a\u{7}b"}), 422),
        (json!({"email": "not an address"}), 422),
        (
            json!({"email": format!("{}@example.com", "a".repeat(250))}),
            422,
        ),
        (
            json!({"avatar_file_id": "0192d3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"}),
            422,
        ),
        (json!({"display_name": "Zed", "role": "owner"}), 422),
        (json!({"display_name": 7}), 422),
        // Regression (schemathesis): serde reads a struct from an array of its fields.
        (json!([null, null]), 422),
        (json!(["Zara", null]), 422),
    ] {
        let (got, reply) = put_profile(&http, "zoe", body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body}: {reply}");
    }
    let broken = http
        .client
        .put(format!("{}/v1/me/profile", http.base))
        .bearer_auth(mint("zoe", 600))
        .header("content-type", "application/json")
        .body("{\"display_name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    assert_eq!(
        get_profile(&http, &mint("zoe", 600), None).await["display_name"],
        "Zed"
    );

    // In the log and on JetStream, only ciphertext; readers cannot touch the key table,
    // and see the profiles of the people they share a workspace with only.
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM events WHERE stream_category = 'user'")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(payloads.len(), 2);
    for payload in &payloads {
        for secret in ["Zed", "zed@example.com", "Ångström", "zoe.angstrom"] {
            assert!(!contains(payload, secret), "{secret} in a payload");
        }
    }
    eventually(
        "the relay published the profile events",
        Duration::from_secs(10),
        || {
            let env = &env;
            async move {
                let bytes = stream_bytes(env).await;
                contains(&bytes, "zoe").then_some(bytes)
            }
        },
    )
    .await;
    let bytes = stream_bytes(&env).await;
    assert!(!contains(&bytes, "zed@example.com") && !contains(&bytes, "Ångström"));
    let mut tx = env.pool.begin().await.unwrap();
    sqlx::query("SET LOCAL ROLE collab_reader")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert!(sqlx::query("SELECT count(*) FROM user_keys")
        .execute(&mut *tx)
        .await
        .is_err());
    drop(tx);
    let visible = |user: &'static str| {
        let pool = env.pool.clone();
        async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SET LOCAL ROLE collab_reader")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(
                "SELECT set_config('collab.user_id', $1, true), set_config('collab.workspaces', \
                 coalesce((SELECT string_agg(workspace_id::text, ',') FROM rm_workspace_members \
                 WHERE user_id = $1), ''), true)",
            )
            .bind(user)
            .execute(&mut *tx)
            .await
            .unwrap();
            let users: Vec<String> =
                sqlx::query_scalar("SELECT user_id FROM rm_profiles ORDER BY 1")
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
            users
        }
    };
    assert_eq!(visible("alice").await, vec!["zoe"]);
    assert_eq!(visible("zoe").await, vec!["zoe"]);
    assert_eq!(visible("mallory").await, Vec::<String>::new());
}

#[tokio::test]
async fn erasure_removes_a_persons_data_everywhere_and_the_chain_still_verifies() {
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (workspace, _) = http.workspace_with_document("alice").await;
    http.add_member(&workspace, "alice", "erin", "member").await;
    let name = "Erin Quillfeather-7f3a";
    let email = "erin.quill-7f3a@example.org";
    let (status, body) =
        put_profile(&http, "erin", json!({"display_name": name, "email": email})).await;
    assert_eq!(status, 200, "{body}");
    let at = body["position"].as_i64().unwrap();
    assert_eq!(member_name(&http, &workspace, "erin", at).await, name);
    let before = whole_database(&env.pool).await;
    assert!(
        before.contains(name) && before.contains(email),
        "the read model holds them"
    );

    // Erase.
    let erased = http
        .call(Method::DELETE, "/v1/me/personal-data", "erin", None)
        .await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_eq!(erased.body["keys_destroyed"], 1);
    let at = erased.body["position"].as_i64().unwrap();
    let profile = get_profile(&http, &mint("erin", 600), Some(at)).await;
    assert_eq!(profile["erased"], true);
    assert_eq!(
        (&profile["display_name"], &profile["email"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        member_name(&http, &workspace, "erin", at).await,
        Value::Null
    );
    // Erasing again records nothing more.
    let again = http
        .call(Method::DELETE, "/v1/me/personal-data", "erin", None)
        .await;
    assert_eq!(
        (
            again.body["keys_destroyed"].as_u64(),
            &again.body["position"]
        ),
        (Some(0), &Value::Null)
    );
    // A sign-in with claims does not refill an erased profile.
    let claims = mint_with_claims("erin", 600, json!({"name": name, "email": email}));
    assert_eq!(get_profile(&http, &claims, None).await["erased"], true);

    // Nowhere in the database, nowhere on JetStream — and a rebuild of every read model
    // does not bring them back.
    for secret in [name, email] {
        assert!(absent(&whole_database(&env.pool).await, secret), "{secret}");
        assert!(!contains(&stream_bytes(&env).await, secret), "{secret}");
    }
    let rebuilt = collab(&env, &["projections", "rebuild", "all"]);
    assert!(rebuilt.contains("profiles: rebuilt"), "{rebuilt}");
    let dump = whole_database(&env.pool).await;
    assert!(absent(&dump, name) && absent(&dump, email));
    let profile = get_profile(&http, &mint("erin", 600), None).await;
    assert_eq!(
        (&profile["erased"], &profile["email"]),
        (&json!(true), &Value::Null)
    );

    // The hash chain covers the ciphertext as stored: it still verifies.
    // (`collab audit verify` exits with an error when anything fails to verify.)
    collab(&env, &["audit", "verify"]);

    // A new profile after erasure is sealed with a new key; the operator can erase it too.
    let (status, body) = put_profile(&http, "erin", json!({"display_name": "E."})).await;
    assert_eq!(status, 200, "{body}");
    let at = body["position"].as_i64().unwrap();
    let profile = get_profile(&http, &mint("erin", 600), Some(at)).await;
    assert_eq!(
        (&profile["display_name"], &profile["erased"]),
        (&json!("E."), &json!(false))
    );
    let output: Value =
        serde_json::from_str(collab(&env, &["users", "erase", "--user", "erin"]).trim()).unwrap();
    assert_eq!(output["keys_destroyed"], 1, "{output}");
    let at = output["position"].as_i64().unwrap();
    let profile = get_profile(&http, &mint("erin", 600), Some(at)).await;
    assert_eq!(
        (&profile["display_name"], &profile["erased"]),
        (&Value::Null, &json!(true))
    );
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM events WHERE stream_category = 'user' ORDER BY position DESC LIMIT 1",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(actor, "service:operator");
    let bad = Command::new(collab_bin())
        .args(["users", "erase", "--user", "has space"])
        .env("COLLAB_DATABASE_URL", &env.database_url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
