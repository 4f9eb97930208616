//! The real `collab` binary: start-up errors, serving, tokens, graceful shutdown.

use std::process::{Command, Stdio};
use std::time::Duration;

use collab_tests::{collab_bin, eventually, free_port, TestEnv, TEST_SECRET};
use serde_json::{json, Value};

fn collab(env: &TestEnv) -> Command {
    let mut command = Command::new(collab_bin());
    command
        .env("COLLAB_DATABASE_URL", &env.database_url)
        .env("COLLAB_NATS_URL", &env.nats_url)
        .env("COLLAB_SUBJECT_PREFIX", &env.prefix)
        .env("COLLAB_JWT_SECRET", TEST_SECRET)
        .env("COLLAB_LOG", "warn");
    command
}

/// Runs to completion (bounded) and returns (success, last stderr line).
async fn run_to_end(mut command: Command) -> (bool, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || command.output().expect("collab runs")),
    )
    .await
    .expect("collab exits promptly")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    (output.status.success(), last)
}

#[tokio::test]
async fn serve_names_the_unreachable_dependency_in_one_line() {
    let env = TestEnv::new().await;
    let dead = free_port();

    let mut no_postgres = collab(&env);
    no_postgres
        .env(
            "COLLAB_DATABASE_URL",
            format!("postgres://postgres:hunter2@127.0.0.1:{dead}/collab"),
        )
        .arg("serve")
        .arg("--listen=127.0.0.1:0");
    let (ok, line) = run_to_end(no_postgres).await;
    assert!(!ok);
    assert!(
        line.starts_with("error: cannot connect to Postgres"),
        "{line}"
    );
    assert!(line.contains("COLLAB_DATABASE_URL"), "{line}");
    assert!(
        !line.contains("hunter2"),
        "passwords are never printed: {line}"
    );

    let mut no_nats = collab(&env);
    no_nats
        .env("COLLAB_NATS_URL", format!("nats://127.0.0.1:{dead}"))
        .arg("serve")
        .arg("--listen=127.0.0.1:0");
    let (ok, line) = run_to_end(no_nats).await;
    assert!(!ok);
    assert!(line.starts_with("error: cannot connect to NATS"), "{line}");
    assert!(line.contains("COLLAB_NATS_URL"), "{line}");

    let mut no_secret = collab(&env);
    no_secret.env_remove("COLLAB_JWT_SECRET").arg("serve");
    let (ok, line) = run_to_end(no_secret).await;
    assert!(!ok);
    assert!(line.contains("COLLAB_JWT_SECRET"), "{line}");

    // Before the first migrate the database is missing, not Postgres.
    let mut not_migrated = collab(&env);
    not_migrated
        .env(
            "COLLAB_DATABASE_URL",
            env.database_url
                .replace(&env.database_name, "collab_never_created"),
        )
        .args(["projections", "status"]);
    let (ok, line) = run_to_end(not_migrated).await;
    assert!(!ok);
    assert!(line.contains("does not exist yet"), "{line}");
    assert!(line.contains("collab migrate"), "{line}");

    // A listen address may name its host.
    let mut bad_listen = collab(&env);
    bad_listen.args(["serve", "--listen=no-such-host.invalid:7700"]);
    let output = tokio::task::spawn_blocking(move || bad_listen.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is not host:port"), "{stderr}");
}

#[tokio::test]
async fn the_binary_serves_commands_with_minted_tokens_and_stops_gracefully() {
    let env = TestEnv::new().await;
    let (ok, _) = run_to_end({
        let mut c = collab(&env);
        c.arg("migrate");
        c
    })
    .await;
    assert!(ok, "collab migrate succeeds");

    let port = free_port();
    let mut server = collab(&env)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually("collab to be ready", Duration::from_secs(30), || {
        let request = http.get(format!("{base}/readyz"));
        async move { (request.send().await.ok()?.status() == 200).then_some(()) }
    })
    .await;

    let minted = collab(&env)
        .args(["token", "mint", "--user", "dana"])
        .output()
        .unwrap();
    assert!(minted.status.success());
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let created = http
        .post(format!("{base}/v1/workspaces"))
        .bearer_auth(&token)
        .json(&json!({"name": "From the binary"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let position = created.json::<Value>().await.unwrap()["position"]
        .as_i64()
        .unwrap();
    let listing: Value = http
        .get(format!("{base}/v1/workspaces"))
        .bearer_auth(&token)
        .header("X-Collab-Min-Position", position.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["workspaces"][0]["name"], "From the binary");

    // SIGTERM: the server drains and exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = tokio::task::spawn_blocking(move || server.wait().unwrap());
    let exit = tokio::time::timeout(Duration::from_secs(20), exited)
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
