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

/// `VmRSS` and `VmHWM` (peak) of a process, in bytes.
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .expect("field in /proc status")
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Appends `count` content events to `workspace`, spread over 100 streams, through the
/// event store (hash chains and all), in large batches.
async fn seed_events(env: &TestEnv, workspace: &str, count: usize) {
    use collab_domain::content::{ContentEvent, DocumentEdited};
    use collab_domain::EventCodec;
    use collab_store::{AppendContext, BatchAppend, EventStore, ExpectedVersion, NewEvent};
    let store = EventStore::new(env.pool.clone());
    let workspace = collab_domain::WorkspaceId::parse(workspace).unwrap();
    let streams: Vec<uuid::Uuid> = (0..100).map(|_| uuid::Uuid::now_v7()).collect();
    let context = AppendContext {
        workspace_id: workspace,
        actor: collab_domain::Actor::Service("seed".into()),
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
    };
    let per_batch = 20_000;
    for batch in 0..count.div_ceil(per_batch) {
        let in_batch = per_batch.min(count - batch * per_batch);
        let requests = streams
            .iter()
            .enumerate()
            .map(|(s, stream)| BatchAppend {
                stream: collab_domain::StreamId::new(
                    collab_domain::StreamCategory::Content,
                    *stream,
                ),
                expected: ExpectedVersion::Any,
                context: context.clone(),
                events: (0..in_batch / streams.len() + usize::from(s < in_batch % streams.len()))
                    .map(|i| {
                        let event = ContentEvent::DocumentEdited(DocumentEdited {
                            client_id: 7,
                            update: vec![(i % 251) as u8; 24],
                            origin: collab_domain::content::EditOrigin::Socket,
                        });
                        NewEvent {
                            event_type: event.event_type().into(),
                            schema_version: event.schema_version(),
                            payload: event.encode(),
                        }
                    })
                    .collect(),
            })
            .filter(|r| !r.events.is_empty())
            .collect();
        store.append_batch(requests).await.unwrap();
    }
}

/// Replay streams from Postgres page by page: exporting a million events grows the
/// server's resident memory by less than 64 MiB. Verification of the same log is timed
/// (printed; the figure is in BENCHMARKS.md, measured with the release binary).
#[tokio::test]
async fn exporting_a_million_events_keeps_the_servers_memory_bounded() {
    use collab_tests::{CollabProcess, Http};
    use futures::StreamExt;
    const EVENTS: usize = 1_000_000;
    let env = TestEnv::new().await;
    let server = CollabProcess::start(&env, &[("COLLAB_ROLES", "api")]).await;
    let http = Http::new(server.http());
    let (workspace, _) = http.workspace_with_document("alice").await;
    let seeding = std::time::Instant::now();
    seed_events(&env, &workspace, EVENTS).await;
    eprintln!(
        "seeded {EVENTS} events in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let pid = server.pid().unwrap();
    let (before, _) = memory_of(pid);
    let started = std::time::Instant::now();
    let response = http
        .client
        .get(format!(
            "{}/v1/workspaces/{workspace}/events",
            server.http()
        ))
        .bearer_auth(collab_tests::mint("alice", 3600))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let (mut lines, mut bytes, mut peak) = (0usize, 0usize, before);
    let mut last_byte = b'\n';
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        bytes += chunk.len();
        last_byte = *chunk.last().unwrap_or(&last_byte);
        if lines % 50_000 < 500 {
            peak = peak.max(memory_of(pid).0);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (_, high_water) = memory_of(pid);
    assert_eq!(last_byte, b'\n');
    assert_eq!(
        lines,
        EVENTS + 3,
        "the seeded events plus the workspace's own three"
    );
    let growth = peak.max(high_water).saturating_sub(before);
    eprintln!(
        "exported {lines} events ({} MiB) in {elapsed:.1} s ({:.0} events/s); resident memory \
         {} MiB before, peak growth {} MiB",
        bytes >> 20,
        lines as f64 / elapsed,
        before >> 20,
        growth >> 20
    );
    assert!(
        growth < 64 << 20,
        "resident memory grew by {} MiB",
        growth >> 20
    );

    let started = std::time::Instant::now();
    let report = http
        .call(
            reqwest::Method::GET,
            &format!("/v1/workspaces/{workspace}/audit/verify"),
            "alice",
            None,
        )
        .await;
    eprintln!(
        "verified {} events in {:.1} s",
        report.body["events"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(report.status, 200, "{}", report.body);
    assert_eq!(report.body["ok"], true, "{}", report.body);
    assert_eq!(report.body["events"], EVENTS as u64 + 3);
}
