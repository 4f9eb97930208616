//! Faults under steady load (RELIABILITY.md). Stock Yjs clients (npm `yjs` +
//! `y-websocket`) type into several documents through several `collab` processes while
//! HTTP commands go on, and a process or a service is killed. Every scenario ends with the
//! same checks: every token any client typed is in the stored text exactly once, every
//! command answered 2xx is in the log, JetStream holds exactly the log (message n is
//! position n), the read models equal a rebuild from the log, and every client converged
//! to the server's text.
//!
//! `COLLAB_FAULT_SECS` sets the load's length (default 6 s here; `ops/dev/faults.sh` runs
//! the long form, one scenario at a time, the flood included, and prints each scenario's
//! figures as a `FAULT {json}` line; RELIABILITY.md has them).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use collab_tests::{
    assert_stream_holds_log, eventually, log_head, mint, read_models, read_models_caught_up,
    rebuild_all, shared_nats_url, CollabProcess, Http, NatsCluster, NodeClient, OwnPostgres,
    TestEnv,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn load_secs() -> u64 {
    std::env::var("COLLAB_FAULT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

/// A stock client typing `<tag>.<n>;` into one document.
struct Typist {
    client: NodeClient,
    tag: String,
    doc: String,
}

#[derive(Default, Debug)]
struct Commands {
    acked: Vec<i64>,
    /// Status code (0: no answer) → count, for everything but 2xx.
    refused: BTreeMap<u16, usize>,
}

/// Steady load: `per_doc` typists on each document, spread over `sockets` (ws bases), and
/// one HTTP client renaming the documents through `apis` in turn.
struct Load {
    typists: Vec<Typist>,
    stop: CancellationToken,
    commands: JoinHandle<Commands>,
    started: Instant,
}

impl Load {
    async fn start(sockets: &[String], apis: &[String], docs: &[String], per_doc: usize) -> Self {
        let mut typists = vec![];
        for (d, doc) in docs.iter().enumerate() {
            for c in 0..per_doc {
                let base = &sockets[(d + c) % sockets.len()];
                let mut client = NodeClient::open(base, doc, &mint("alice", 3600)).await;
                let tag = format!("d{d}c{c}");
                client
                    .call(json!({"op": "startTyping", "tag": tag, "everyMs": 40}))
                    .await;
                typists.push(Typist {
                    client,
                    tag,
                    doc: doc.clone(),
                });
            }
        }
        let stop = CancellationToken::new();
        let commands = tokio::spawn(rename_loop(apis.to_vec(), docs.to_vec(), stop.clone()));
        Self {
            typists,
            stop,
            commands,
            started: Instant::now(),
        }
    }

    /// Stops the load and checks everything; returns the scenario's figures.
    async fn finish(self, env: &TestEnv, api: &str) -> Value {
        let seconds = self.started.elapsed().as_secs_f64();
        self.stop.cancel();
        let commands = self.commands.await.unwrap();
        let mut typed = BTreeMap::new();
        let mut typists = self.typists;
        for t in &mut typists {
            let n = t.client.call(json!({"op": "stopTyping"})).await["typed"]
                .as_u64()
                .unwrap();
            typed.insert(t.tag.clone(), n);
        }
        let http = Http::new(api.to_owned());

        // Every client converges to the server's text.
        let mut texts = BTreeMap::new();
        for doc in typists
            .iter()
            .map(|t| t.doc.clone())
            .collect::<std::collections::BTreeSet<_>>()
        {
            // A bounded poll by hand: the check needs the clients mutably.
            let deadline = Instant::now() + Duration::from_secs(60);
            let text = loop {
                // A machine this loaded may answer "too busy": ask again.
                let server = http.try_content_text(&doc, "alice").await;
                let mut all = server.is_some();
                let server = server.unwrap_or_default();
                for t in typists.iter_mut().filter(|t| t.doc == doc) {
                    all &= t.client.text().await == server;
                }
                if all {
                    break server;
                }
                assert!(
                    Instant::now() < deadline,
                    "every client of {doc} holds the server's text within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            texts.insert(doc, text);
        }
        for t in typists {
            t.client.kill().await;
        }

        // Every token typed is stored exactly once.
        let (mut lost, mut duplicated, mut stored) = (0u64, 0u64, 0u64);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for text in texts.values() {
            for token in text.split(';').filter(|t| !t.is_empty()) {
                *counts.entry(token).or_default() += 1;
            }
        }
        for (tag, n) in &typed {
            for i in 0..*n {
                match counts.get(format!("{tag}.{i}").as_str()) {
                    None => lost += 1,
                    Some(1) => stored += 1,
                    Some(_) => {
                        stored += 1;
                        duplicated += 1;
                    }
                }
            }
        }
        let typed_total: u64 = typed.values().sum();
        let foreign = counts.len() as u64 - stored;

        // Every acknowledged command is in the log.
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE position = ANY($1)")
            .bind(&commands.acked)
            .fetch_one(&env.pool)
            .await
            .unwrap();

        // JetStream holds exactly the log, and the read models equal a rebuild.
        let head = log_head(&env.pool).await;
        let events = stream_holds_log(env, head).await;
        read_models_caught_up(&env.pool).await;
        let live = read_models(&env.pool).await;
        rebuild_all(&env.database_url);
        let rebuilt = read_models(&env.pool).await;
        let differing: Vec<String> = live
            .as_object()
            .unwrap()
            .iter()
            .filter(|(table, rows)| rebuilt.get(table.as_str()) != Some(rows))
            .map(|(table, rows)| {
                let (a, b) = (rows.to_string(), rebuilt[table.as_str()].to_string());
                let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
                let from = at.saturating_sub(200);
                format!(
                    "{table}: live …{}… rebuilt …{}…",
                    &a[from..(at + 300).min(a.len())],
                    &b[from..(at + 300).min(b.len())]
                )
            })
            .collect();
        assert!(
            differing.is_empty(),
            "read models equal a rebuild: {differing:#?}"
        );

        let figures = json!({
            "seconds": (seconds * 10.0).round() / 10.0,
            "clients": typed.len(),
            "typed": typed_total,
            "stored": stored,
            "lost": lost,
            "duplicated": duplicated,
            "commands_acked": commands.acked.len(),
            "commands_refused": commands.refused,
            "events": events,
        });
        assert_eq!((lost, duplicated, foreign), (0, 0, 0), "{figures}");
        assert_eq!(
            found as usize,
            commands.acked.len(),
            "acknowledged commands are in the log"
        );
        figures
    }
}

/// Renames the documents in turn through each API base until `stop`.
async fn rename_loop(apis: Vec<String>, docs: Vec<String>, stop: CancellationToken) -> Commands {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut out = Commands::default();
    let mut n = 0usize;
    while !stop.is_cancelled() {
        let api = &apis[n % apis.len()];
        let doc = &docs[n % docs.len()];
        let answer = client
            .patch(format!("{api}/v1/documents/{doc}"))
            .bearer_auth(mint("alice", 3600))
            .json(&json!({"title": format!("Title {n}")}))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => {
                let body: Value = r.json().await.unwrap();
                out.acked.push(body["position"].as_i64().unwrap());
            }
            Ok(r) => *out.refused.entry(r.status().as_u16()).or_default() += 1,
            Err(_) => *out.refused.entry(0).or_default() += 1,
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

/// Waits until the events stream holds the log to `head`, then checks message n is
/// position n for every n (no gap, no duplicate, in order). Returns the count.
async fn stream_holds_log(env: &TestEnv, head: i64) -> i64 {
    let js = env.jetstream().await;
    eventually(
        "the stream to hold the log",
        Duration::from_secs(60),
        || {
            let (js, name) = (js.clone(), env.stream_name());
            async move {
                let mut stream = js.get_stream(name).await.ok()?;
                (stream.info().await.ok()?.state.last_sequence >= head as u64).then_some(())
            }
        },
    )
    .await;
    assert_stream_holds_log(env, head).await;
    head
}

/// The `application_name`s of the sessions holding advisory locks (the active relay and
/// consumers: see `collab_store::leadership`).
async fn leaders(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT DISTINCT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
         WHERE l.locktype = 'advisory' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Starts `collab serve` with `roles`, its Postgres sessions named `name`.
async fn process(env: &TestEnv, name: &str, roles: &str) -> CollabProcess {
    let url = format!("{}?application_name={name}", env.database_url);
    CollabProcess::start(
        env,
        &[
            ("COLLAB_ROLES", roles),
            ("COLLAB_DATABASE_URL", url.as_str()),
        ],
    )
    .await
}

async fn documents(http: &Http, count: usize) -> (String, Vec<String>) {
    let (workspace, first) = http.workspace_with_document("alice").await;
    let mut docs = vec![first];
    for n in 1..count {
        let r = http
            .call(
                reqwest::Method::POST,
                &format!("/v1/workspaces/{workspace}/documents"),
                "alice",
                Some(json!({"title": format!("Doc {n}")})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        docs.push(r.body["id"].as_str().unwrap().to_owned());
    }
    (workspace, docs)
}

fn report(scenario: &str, mut figures: Value, extra: Value) {
    figures["scenario"] = json!(scenario);
    for (k, v) in extra.as_object().unwrap() {
        figures[k] = v.clone();
    }
    println!("FAULT {figures}");
}

/// Two processes of a role; one is killed with SIGKILL under load and the other carries
/// on: the standby relay takes the lock, the other projector process folds everything.
/// `role` is `relay` or `projector`.
async fn standby_takes_over(role: &str) {
    let env = TestEnv::new().await;
    // Two API processes; with `relay`, both are relays too, and one more folds.
    let mut one = process(&env, "one", "api,relay").await;
    let two = process(
        &env,
        "two",
        if role == "relay" { "api,relay" } else { "api" },
    )
    .await;
    let (holder, stand_by) = if role == "relay" {
        ("one", "two")
    } else {
        ("active", "standby")
    };
    let mut active = process(
        &env,
        if role == "projector" {
            "active"
        } else {
            "folds"
        },
        "projector",
    )
    .await;
    let standby = if role == "projector" {
        Some(process(&env, "standby", "projector").await)
    } else {
        None
    };
    // Processes without the api role still answer probes and metrics.
    let metrics = reqwest::get(format!("{}/metrics", active.http()))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let api = reqwest::get(format!("{}/v1/workspaces", active.http()))
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
    let http = Http::new(one.http());
    let (_, docs) = documents(&http, 3).await;
    // Relays elect one active process; projector processes share each read model's
    // durable consumer (folds are idempotent), so both are active.
    if role == "relay" {
        eventually(
            "the first relay to lead",
            Duration::from_secs(10),
            || async {
                let l = leaders(&env.pool).await;
                (l.contains(&holder.to_owned()) && !l.contains(&stand_by.to_owned())).then_some(())
            },
        )
        .await;
    }

    let load = Load::start(&[one.ws(), two.ws()], &[one.http(), two.http()], &docs, 2).await;
    let secs = load_secs();
    tokio::time::sleep(Duration::from_secs(secs / 2)).await;
    let killed_at = Instant::now();
    let head_at_kill = log_head(&env.pool).await;
    match role {
        "relay" => one.kill(),
        _ => active.kill(),
    }
    // The standby takes the lock, and the stream (relay) or the read models (projector)
    // pass the head as it was at the kill.
    let js = env.jetstream().await;
    let recovered = eventually("the standby to take over", Duration::from_secs(30), || {
        let (js, env, http2) = (&js, &env, Http::new(two.http()));
        async move {
            if role == "relay" && !leaders(&env.pool).await.contains(&stand_by.to_owned()) {
                return None;
            }
            let caught_up = if role == "relay" {
                let mut stream = js.get_stream(env.stream_name()).await.ok()?;
                stream.info().await.ok()?.state.last_sequence >= head_at_kill as u64
            } else {
                let r = http2
                    .client
                    .get(format!("{}/v1/workspaces", http2.base))
                    .bearer_auth(mint("alice", 60))
                    .header("x-collab-min-position", head_at_kill.to_string())
                    .send()
                    .await
                    .ok()?;
                r.status() == 200
            };
            caught_up.then(|| killed_at.elapsed())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(secs - secs / 2)).await;
    if role == "relay" {
        one.restart().await;
    }
    let figures = load.finish(&env, &two.http()).await;
    report(
        &format!("{role} process killed (SIGKILL) under load"),
        figures,
        json!({"recovery_ms": recovered.as_millis() as u64}),
    );
    drop(standby);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_relay_killed_under_load_a_standby_takes_over_and_nothing_is_lost() {
    standby_takes_over("relay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_process_killed_under_load_the_other_folds_everything_and_nothing_is_lost() {
    standby_takes_over("projector").await;
}

/// PATCHes a document's title; returns the status, the body and how long the answer took.
async fn rename(api: &str, doc: &str, title: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .patch(format!("{api}/v1/documents/{doc}"))
        .bearer_auth(mint("alice", 3600))
        .json(&json!({ "title": title }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the server answers");
    let status = answer.status().as_u16();
    let body = answer.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_commands_fail_fast_and_everything_resumes_without_a_restart() {
    let postgres = OwnPostgres::start().await;
    let env = TestEnv::in_cluster(&postgres.admin_url(), shared_nats_url()).await;
    let server = CollabProcess::start(&env, &[]).await;
    let http = Http::new(server.http());
    let (_, docs) = documents(&http, 3).await;
    let load = Load::start(&[server.ws()], &[server.http()], &docs, 2).await;
    let secs = load_secs();
    tokio::time::sleep(Duration::from_secs(secs / 2)).await;

    postgres.stop();
    let stopped = Instant::now();
    // While it is down: not ready, naming Postgres; commands refused at once, clearly.
    let ready = reqwest::get(format!("{}/readyz", server.http()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert!(
        ready["checks"]["postgres"]
            .as_str()
            .unwrap()
            .starts_with("error"),
        "{ready}"
    );
    // The first command meets the outage (at worst after the pool's acquire timeout);
    // the breaker it opens answers the next ones at once.
    let (status, body, first) = rename(&server.http(), &docs[0], "During the outage").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        matches!(
            body["code"].as_str(),
            Some("database_unavailable" | "database_busy")
        ),
        "{body}"
    );
    let took = eventually(
        "the breaker to answer at once",
        Duration::from_secs(10),
        || async {
            let (status, body, took) = rename(&server.http(), &docs[1], "During the outage").await;
            (status == 503
                && body["code"] == "database_unavailable"
                && took < Duration::from_millis(500))
            .then_some(took)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(stopped.elapsed())).await;

    postgres.resume().await;
    let resumed = Instant::now();
    let outage = stopped.elapsed();
    let recovered = eventually(
        "commands to succeed again",
        Duration::from_secs(60),
        || async {
            let (status, _, _) = rename(&server.http(), &docs[0], "After the outage").await;
            (status == 200).then(|| resumed.elapsed())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(secs - secs / 2)).await;
    let figures = load.finish(&env, &server.http()).await;
    report(
        "Postgres stopped (immediate) and restarted under load",
        figures,
        json!({
            "outage_ms": outage.as_millis() as u64,
            "first_command_refused_ms": first.as_millis() as u64,
            "next_commands_refused_ms": took.as_millis() as u64,
            "recovery_ms": recovered.as_millis() as u64,
        }),
    );
}

/// Renames as fast as it can for `window`; returns (acknowledged, refused).
async fn commands_during(api: &str, doc: &str, window: Duration) -> (u64, u64) {
    let until = Instant::now() + window;
    let (mut ok, mut refused) = (0, 0);
    let mut n = 0;
    while Instant::now() < until {
        let (status, _, _) = rename(api, doc, &format!("While NATS is down {n}")).await;
        if status == 200 {
            ok += 1;
        } else {
            refused += 1;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_cluster_losing_a_node_then_all_of_them_delays_publication_but_loses_nothing() {
    let mut nats = NatsCluster::start(3).await;
    let urls = nats.urls();
    let first = urls.split(',').next().unwrap().to_owned();
    let env = TestEnv::with_nats(first).await;
    let settings = [
        ("COLLAB_NATS_URL", urls.as_str()),
        ("COLLAB_NATS_REPLICAS", "3"),
    ];
    let one = CollabProcess::start(&env, &settings).await;
    let two = CollabProcess::start(&env, &settings).await;
    let js = env.jetstream().await;
    let mut stream = js.get_stream(env.stream_name()).await.unwrap();
    assert_eq!(stream.info().await.unwrap().config.num_replicas, 3);

    let http = Http::new(one.http());
    let (_, docs) = documents(&http, 3).await;
    let load = Load::start(&[one.ws(), two.ws()], &[one.http(), two.http()], &docs, 2).await;
    let secs = load_secs();
    // One node (the first of every process's list) killed and resumed under load.
    tokio::time::sleep(Duration::from_secs(secs / 3)).await;
    nats.kill(0);
    tokio::time::sleep(Duration::from_secs(secs / 3)).await;
    nats.resume(0).await;

    // Then the whole cluster down: commands and live editing go on (the log is Postgres).
    let down = Duration::from_secs(
        std::env::var("COLLAB_FAULT_NATS_DOWN_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    for n in 0..3 {
        nats.kill(n);
    }
    let (acked_while_down, refused_while_down) = commands_during(&two.http(), &docs[2], down).await;
    assert!(acked_while_down > 0 && refused_while_down == 0);
    for n in 0..3 {
        nats.resume(n).await;
    }
    let resumed = Instant::now();
    let head_at_resume = log_head(&env.pool).await;
    let caught_up = eventually("JetStream to catch up", Duration::from_secs(60), || {
        let env = &env;
        async move {
            let js = env.jetstream().await;
            let mut stream = js.get_stream(env.stream_name()).await.ok()?;
            (stream.info().await.ok()?.state.last_sequence >= head_at_resume as u64)
                .then(|| resumed.elapsed())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(secs - 2 * (secs / 3))).await;
    let figures = load.finish(&env, &one.http()).await;
    report(
        "NATS cluster (3 nodes, 3 replicas): a node killed and resumed, then every node down",
        figures,
        json!({
            "cluster_down_ms": down.as_millis() as u64,
            "commands_acked_while_down": acked_while_down,
            "jetstream_caught_up_ms": caught_up.as_millis() as u64,
        }),
    );
}

/// A small seeded generator (xorshift64*): the same seed kills the same instances at the
/// same moments.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.next() % (to - from))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_killed_and_restarted_at_random_under_load_converge() {
    let env = TestEnv::new().await;
    let _relay = process(&env, "relay", "relay").await;
    let _projector = process(&env, "projector", "projector").await;
    let mut instances = vec![];
    for n in 0..3 {
        instances.push(process(&env, &format!("api-{n}"), "api").await);
    }
    let http = Http::new(instances[0].http());
    let (_, docs) = documents(&http, 3).await;
    let sockets: Vec<String> = instances.iter().map(|i| i.ws()).collect();
    let apis: Vec<String> = instances.iter().map(|i| i.http()).collect();
    let load = Load::start(&sockets, &apis, &docs, 3).await;
    let seed: u64 = std::env::var("COLLAB_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(17);
    let mut random = Seeded(seed.max(1));
    let until = Instant::now() + Duration::from_secs(load_secs());
    let mut kills = vec![];
    while Instant::now() < until {
        tokio::time::sleep(random.millis(500, 2000)).await;
        let n = (random.next() % 3) as usize;
        instances[n].kill();
        tokio::time::sleep(random.millis(200, 1000)).await;
        instances[n].restart().await;
        kills.push(n);
    }
    let figures = load.finish(&env, &instances[0].http()).await;
    report(
        "3 API instances killed (SIGKILL) and restarted at random, separate relay and projector",
        figures,
        json!({"seed": seed, "kills": kills.len(), "killed": kills}),
    );
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw_socket(base_ws: &str, doc: &str) -> RawSocket {
    let url = format!("{base_ws}/v1/sync/{doc}?token={}", mint("alice", 3600));
    tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade succeeds")
        .0
}

/// Too heavy to share two cores with the rest of the suite: `ops/dev/faults.sh` runs it
/// alone (`--run-ignored all`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: ops/dev/faults.sh runs it alone"]
async fn a_flood_a_thousand_sockets_at_once_and_a_reader_that_stops_leave_everyone_else_served() {
    use futures::StreamExt;
    // A thousand sockets need more descriptors than a default soft limit leaves.
    let _ = rlimit::increase_nofile_limit(8192);
    let env = TestEnv::new().await;
    // Production's per-socket message limit, not the tests' unlimited one.
    let server = CollabProcess::start(&env, &[("COLLAB_SOCKET_MESSAGES_PER_SECOND", "500")]).await;
    let http = Http::new(server.http());
    let (_, docs) = documents(&http, 4).await;
    let (flooded, crowded) = (docs[2].clone(), docs[3].clone());
    let load = Load::start(&[server.ws()], &[server.http()], &docs[..2], 2).await;
    let pid = server.pid().unwrap();
    let rss_before = rss_kib(pid);
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        async move {
            let mut peak = 0;
            while !sampling.is_cancelled() {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        }
    });

    // A reader that stops: it joins the flooded document and never reads again.
    let mut stalled = raw_socket(&server.ws(), &flooded).await;
    // The flood: 10 MB/s of valid updates from one stock client, 60 MB at most (the
    // document limit, 64 MiB, would end a longer one with 1009).
    let mut flooder = NodeClient::open(&server.ws(), &flooded, &mint("alice", 3600)).await;
    let flood = tokio::spawn(async move {
        let outcome = flooder
            .call(
                json!({"op": "flood", "bytesPerSecond": 10_000_000, "chunk": 65536,
                "seconds": 15, "maxBytes": 60_000_000}),
            )
            .await;
        flooder.kill().await;
        outcome
    });
    // A thousand sockets opening at once, each until its first message.
    let crowd = tokio::spawn({
        let (base, doc) = (server.ws(), crowded.clone());
        async move {
            let opening = Instant::now();
            let sockets = futures::future::join_all((0..1000).map(|_| {
                let (base, doc) = (base.clone(), doc.clone());
                async move {
                    let mut socket = raw_socket(&base, &doc).await;
                    let first = tokio::time::timeout(Duration::from_secs(60), socket.next()).await;
                    assert!(
                        matches!(first, Ok(Some(Ok(_)))),
                        "a first message: {first:?}"
                    );
                    socket
                }
            }))
            .await;
            (opening.elapsed(), sockets)
        }
    });
    // Meanwhile everyone else is served: commands answered (sequentially, one probe
    // every 50 ms) while the flood and the crowd go on.
    let mut latencies = vec![];
    let mut probe_statuses = BTreeMap::new();
    let mut n = 0;
    while !flood.is_finished() || !crowd.is_finished() {
        let (status, body, took) = rename(&server.http(), &docs[0], &format!("Probe {n}")).await;
        // Answered, or refused for want of a free database connection (the thousand
        // admissions compete for the pool): counted and reported, nothing else allowed.
        assert!(
            status == 200 || body["code"] == "database_busy",
            "{status} {body}"
        );
        *probe_statuses.entry(status).or_insert(0u64) += 1;
        latencies.push(took);
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (crowd_opened, crowd) = crowd.await.unwrap();
    let flood = flood.await.unwrap();
    drop(crowd);
    sampling.cancel();
    let rss_peak = sampler.await.unwrap();
    latencies.sort();
    // The server cut the reader that stopped rather than queue for it without limit: its
    // writer gives up on a socket nobody reads and drops it (the close frame cannot get
    // through a full connection, so the end shows as a reset or the end of the stream
    // once the buffered frames are read).
    let deadline = Instant::now() + Duration::from_secs(30);
    let stalled_end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stalled.next()).await {
            Err(_) => break "still open",
            Ok(None) => break "closed",
            Ok(Some(Err(_))) => break "reset",
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => break "close frame",
            Ok(Some(Ok(_))) => {}
        }
    };
    let figures = load.finish(&env, &server.http()).await;
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    );
    report(
        "a 10 MB/s flood, 1,000 sockets opening at once, a reader that stops",
        figures,
        json!({
            "flood_bytes": flood["sent"],
            "flood_closes": flood["closes"],
            "crowd_opened_ms": crowd_opened.as_millis() as u64,
            "probe_statuses": probe_statuses,
            "command_p50_ms": p50.as_secs_f64() * 1e3,
            "command_p99_ms": p99.as_secs_f64() * 1e3,
            "command_max_ms": max.as_secs_f64() * 1e3,
            "rss_before_mib": rss_before / 1024,
            "rss_peak_mib": rss_peak / 1024,
            "stalled_reader": stalled_end,
        }),
    );
    assert_ne!(
        stalled_end, "still open",
        "the reader that stopped is cut off"
    );
    // Every command was answered (asserted above), most of them promptly: the median
    // was 0.8–2.9 s (release, debug) while every socket joining the busy document
    // re-checked the whole room's access; now 12 ms (release) and 190 ms (debug) on two
    // cores shared with the flooder and the thousand clients. Memory is measured, not
    // bounded here (RELIABILITY.md has the figures).
    assert!(
        p50 < Duration::from_millis(500) && max < Duration::from_secs(20),
        "commands p50 {p50:?}, max {max:?} during the flood"
    );
}
