//! Test harness shared by the integration and end-to-end suites: an isolated database and
//! NATS subject prefix per test (removed again on drop, even when the test panics), the
//! in-process application, the real `collab` binary, a nats-server of a test's own, and a
//! bounded poll for eventual consistency.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use collab_api::{Application, Settings};
use collab_domain::envelope::events_stream_name;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const TEST_SECRET: &str = "test-secret-0123456789abcdef";

pub fn admin_database_url() -> String {
    std::env::var("COLLAB_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn shared_nats_url() -> String {
    std::env::var("COLLAB_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn database_url_for(admin: &str, name: &str) -> String {
    let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
    format!("{base}/{name}")
}

/// The position of the newest event in the log.
pub async fn log_head(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT position FROM event_log_head")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until every read model — not only those a query waits for (the audit and history
/// models do not hold queries back) — has folded every event of its categories.
pub async fn read_models_caught_up(pool: &PgPool) {
    let registry = collab_projections::Registry::standard();
    eventually(
        "every read model to fold the log",
        Duration::from_secs(60),
        || {
            let registry = &registry;
            async move {
                let status = collab_projections::status(pool, registry).await.ok()?;
                status
                    .iter()
                    .all(|c| c.kind != "read model" || c.lag == 0)
                    .then_some(())
            }
        },
    )
    .await;
}

/// Every read-model table as JSON, in a stable order.
pub async fn read_models(pool: &PgPool) -> Value {
    let registry = collab_projections::Registry::standard();
    let tables: Vec<&str> = registry
        .read_models()
        .flat_map(|m| m.tables())
        .copied()
        .collect();
    tables_as_json(pool, &tables).await
}

/// `tables` as JSON, each table's rows in a stable order.
pub async fn tables_as_json(pool: &PgPool, tables: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for table in tables {
        let rows: Option<Value> = sqlx::query_scalar(&format!(
            "SELECT json_agg(to_jsonb(t) ORDER BY to_jsonb(t)::text) FROM {table} t"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        out.insert(table.to_string(), rows.unwrap_or(Value::Null));
    }
    Value::Object(out)
}

/// Checks that the env's events stream holds exactly positions 1..=`head`, message n
/// being position n (no gap, no duplicate, in order).
pub async fn assert_stream_holds_log(env: &TestEnv, head: i64) {
    let js = env.jetstream().await;
    let mut stream = js.get_stream(env.stream_name()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, head as u64, "one message per event");
    for sequence in 1..=head as u64 {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let position: i64 = message
            .headers
            .get("Collab-Position")
            .expect("every message names its position")
            .as_str()
            .parse()
            .unwrap();
        assert_eq!(position, sequence as i64, "message {sequence}");
    }
}

/// `collab projections rebuild all` on `database_url`, which must succeed; its stdout.
pub fn rebuild_all(database_url: &str) -> String {
    let output = Command::new(collab_bin())
        .args(["projections", "rebuild", "all"])
        .env("COLLAB_DATABASE_URL", database_url)
        .output()
        .expect("collab runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `check` until it yields `Some`, at most `timeout`; panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// nats-server 2.9 removes an account's stream directory when its last stream is deleted,
/// and a stream created by a parallel test at that moment fails ("could not create storage
/// directory"). Tests create and delete streams all the time; one stream that is never
/// deleted keeps the directory there.
async fn keep_jetstream_storage(nats_url: &str) {
    let Ok(client) = async_nats::connect(nats_url).await else {
        return; // the test itself reports an unreachable NATS
    };
    let js = async_nats::jetstream::new(client);
    let _ = js
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: "COLLAB_TESTS_KEEP".into(),
            subjects: vec!["collab-tests-keep".into()],
            max_messages: 1,
            ..Default::default()
        })
        .await;
}

/// One test's private world: its own database (migrated) and its own subject prefix
/// (hence its own JetStream stream and consumers). Both are removed on drop.
pub struct TestEnv {
    pub database_name: String,
    pub database_url: String,
    pub pool: PgPool,
    pub prefix: String,
    pub nats_url: String,
    /// The URL of the cluster's maintenance database (the drop happens there).
    admin: String,
}

impl TestEnv {
    pub async fn new() -> Self {
        Self::with_nats(shared_nats_url()).await
    }

    pub async fn with_nats(nats_url: String) -> Self {
        Self::create(&admin_database_url(), nats_url, true).await
    }

    /// A world whose database exists but is empty (no migrations: a restore's target).
    pub async fn unmigrated(nats_url: String) -> Self {
        Self::create(&admin_database_url(), nats_url, false).await
    }

    /// A migrated world in the Postgres cluster that `admin` (a database URL) reaches.
    pub async fn in_cluster(admin: &str, nats_url: String) -> Self {
        Self::create(admin, nats_url, true).await
    }

    async fn create(admin: &str, nats_url: String, migrate: bool) -> Self {
        keep_jetstream_storage(&nats_url).await;
        let id = Uuid::new_v4().simple().to_string();
        let database_name = format!("collab_test_{}", &id[..16]);
        let mut connection = PgConnection::connect(admin)
            .await
            .expect("Postgres for tests is reachable (see README)");
        sqlx::query(&format!("CREATE DATABASE {database_name}"))
            .execute(&mut connection)
            .await
            .expect("can create a test database");
        connection.close().await.ok();
        let database_url = database_url_for(admin, &database_name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(&database_url)
            .await
            .expect("test database is reachable");
        if migrate {
            collab_migrations::run(&pool)
                .await
                .expect("migrations apply");
        }
        Self {
            database_name,
            database_url,
            pool,
            prefix: format!("t{}", &id[16..28]),
            nats_url,
            admin: admin.to_owned(),
        }
    }

    pub fn settings(&self) -> Settings {
        let mut settings = Settings::local(&self.database_url, TEST_SECRET);
        settings.nats_url = self.nats_url.clone();
        settings.subject_prefix = self.prefix.clone();
        settings.database_max_connections = 8;
        // Tests that are not about rate limits must not trip over them.
        settings.rate_limits = collab_api::rate_limit::RateLimitSettings::unlimited();
        settings
    }

    pub fn stream_name(&self) -> String {
        events_stream_name(&self.prefix)
    }

    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.nats_url.as_str())
            .await
            .expect("NATS for tests is reachable (see README)");
        async_nats::jetstream::new(client)
    }

    pub async fn count_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let database = self.database_name.clone();
        let admin = self.admin.clone();
        let prefix = self.prefix.clone();
        let nats_url = self.nats_url.clone();
        // Drop runs inside the test's runtime; do the async clean-up on a thread of its own.
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("collab-blobs-{}", self.database_name)),
        );
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for clean-up");
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                            .execute(&mut admin)
                            .await;
                }
                let connect = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .connect(nats_url.as_str());
                if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(3), connect).await
                {
                    let js = async_nats::jetstream::new(client);
                    let _ = collab_live::delete_jetstream_streams(&js, &prefix).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// The application, in process, on a free port, with an HTTP client.
pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// The app's aggregate store (its load counts show what a request cost).
    pub aggregates: collab_commands::AggregateStore,
    /// The app's live-editing handles (rooms, their loader).
    pub live: collab_live::Live,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    // Last: dropped after the app has been told to stop.
    pub env: TestEnv,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_in(TestEnv::new().await).await
    }

    pub async fn spawn_in(env: TestEnv) -> Self {
        Self::spawn_with(env, |_| {}).await
    }

    pub async fn spawn_with(env: TestEnv, tweak: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_with_registry(env, tweak, collab_projections::Registry::standard()).await
    }

    /// With the given read models and workers instead of the product's.
    pub async fn spawn_with_registry(
        env: TestEnv,
        tweak: impl FnOnce(&mut Settings),
        registry: collab_projections::Registry,
    ) -> Self {
        let mut settings = env.settings();
        tweak(&mut settings);
        let app = Application::build_with(settings, registry)
            .await
            .expect("application builds");
        let addr = app.local_addr();
        let aggregates = app.state().aggregates.clone();
        let live = app.state().live.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            addr,
            http: reqwest::Client::new(),
            aggregates,
            live,
            shutdown,
            task: Some(task),
            env,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn token(user: &str) -> String {
        mint(user, 3600)
    }

    /// Sends a request as `user` (None: anonymous) and returns status, JSON body, headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(user) = user {
            request = request.bearer_auth(Self::token(user));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Response::from(request.send().await.expect("request is sent")).await
    }

    pub async fn get(&self, path: &str, user: &str) -> Response {
        self.call(Method::GET, path, Some(user), None).await
    }

    /// GET that first waits for the read models to reach `position`.
    pub async fn get_at(&self, path: &str, user: &str, position: i64) -> Response {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(Self::token(user))
            .header("X-Collab-Min-Position", position.to_string())
            .send()
            .await
            .expect("request is sent");
        Response::from(response).await
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> Response {
        self.call(Method::POST, path, Some(user), Some(body)).await
    }

    pub async fn patch(&self, path: &str, user: &str, body: Value) -> Response {
        self.call(Method::PATCH, path, Some(user), Some(body)).await
    }

    pub async fn delete(&self, path: &str, user: &str) -> Response {
        self.call(Method::DELETE, path, Some(user), None).await
    }

    /// Creates a workspace as `owner`; returns (id, position).
    pub async fn create_workspace(&self, owner: &str, name: &str) -> (String, i64) {
        let r = self
            .post("/v1/workspaces", owner, serde_json::json!({ "name": name }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (r.body["id"].as_str().unwrap().to_owned(), r.position())
    }

    /// Adds `user` to `workspace` with `role`, as `by`; asserts it was created.
    pub async fn add_member(&self, workspace: &str, by: &str, user: &str, role: &str) {
        let r = self
            .post(
                &format!("/v1/workspaces/{workspace}/members"),
                by,
                serde_json::json!({ "user_id": user, "role": role }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }

    /// Creates a document in `workspace` as `user`; returns its id.
    pub async fn create_document(&self, workspace: &str, user: &str, title: &str) -> String {
        let r = self
            .post(
                &format!("/v1/workspaces/{workspace}/documents"),
                user,
                serde_json::json!({ "title": title }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Inserts `text` into the document's `content` text as `user` (a fresh Yjs client
    /// through `POST /v1/documents/{id}/updates`); the edit's position.
    pub async fn write_text(&self, document: &str, user: &str, text: &str) -> i64 {
        use yrs::{ReadTxn, Text, Transact};
        let doc = yrs::Doc::new();
        doc.get_or_insert_text("content")
            .insert(&mut doc.transact_mut(), 0, text);
        let update = doc
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        let body = self.post_update(document, user, update).await;
        body["position"].as_i64().expect("the edit's position")
    }

    /// Applies a Yjs update as `user` (`POST /v1/documents/{id}/updates`, which must
    /// answer 200); the response's body.
    pub async fn post_update(&self, document: &str, user: &str, update: Vec<u8>) -> Value {
        let response = self
            .http
            .post(self.url(&format!("/v1/documents/{document}/updates")))
            .bearer_auth(Self::token(user))
            .header("content-type", "application/octet-stream")
            .body(update)
            .send()
            .await
            .expect("request is sent");
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON body")
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request is sent")
            .text()
            .await
            .expect("metrics are text")
    }

    /// Stops the app gracefully (the relay drains) and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub fn mint(user: &str, ttl_seconds: i64) -> String {
    mint_with_claims(user, ttl_seconds, serde_json::json!({}))
}

/// A token for `user` carrying `extra` claims too (an identity provider's `name`, `email`).
pub fn mint_with_claims(user: &str, ttl_seconds: i64, extra: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({ "sub": user, "iat": now, "exp": now + ttl_seconds });
    for (name, value) in extra.as_object().cloned().unwrap_or_default() {
        claims[name] = value;
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Response {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self {
            status,
            body,
            headers,
        }
    }

    /// The command's position, checked to agree between body and header.
    pub fn position(&self) -> i64 {
        let from_body = self.body["position"].as_i64().expect("body has a position");
        let from_header: i64 = self.headers["x-collab-position"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(from_body, from_header);
        from_body
    }
}

/// A nats-server owned by one test, to take it away and bring it back.
pub struct OwnNats {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// A NATS cluster of the test's own: three JetStream servers on loopback ports, routed
/// to each other, each with its own store directory; any node can be killed and resumed.
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

struct ClusterNode {
    port: u16,
    cluster_port: u16,
    child: Option<Child>,
}

impl NatsCluster {
    pub async fn start(size: usize) -> Self {
        let dir =
            std::env::temp_dir().join(format!("collab-nats-cluster-{}", Uuid::new_v4().simple()));
        let nodes = (0..size)
            .map(|_| ClusterNode {
                port: free_port(),
                cluster_port: free_port(),
                child: None,
            })
            .collect();
        let mut cluster = Self { nodes, dir };
        for n in 0..size {
            cluster.spawn(n);
        }
        for n in 0..size {
            cluster.wait_healthy(n).await;
        }
        cluster
    }

    fn spawn(&mut self, n: usize) {
        let routes = self
            .nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        let store = self.dir.join(format!("n{n}"));
        std::fs::create_dir_all(&store).unwrap();
        let node = &self.nodes[n];
        let child = Command::new(OwnNats::binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &node.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&store)
            .args([
                "-n",
                &format!("n{n}"),
                "--cluster_name",
                "collab-test",
                "--cluster",
                &format!("nats://127.0.0.1:{}", node.cluster_port),
                "--routes",
                &routes,
            ])
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir.join(format!("n{n}.log"))))
            .spawn()
            .expect("nats-server can be started (apt-get install nats-server)");
        self.nodes[n].child = Some(child);
    }

    /// Waits until node `n` listens for clients.
    async fn wait_healthy(&self, n: usize) {
        wait_listening(
            &format!("cluster node n{n}"),
            self.nodes[n].port,
            Duration::from_secs(20),
            &self.dir.join(format!("n{n}.log")),
        )
        .await;
    }

    /// Every node's client URL, comma-separated (as `COLLAB_NATS_URL` takes them).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILL of node `n`.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `n` again with its store; waits until it listens.
    pub async fn resume(&mut self, n: usize) {
        self.spawn(n);
        self.wait_healthy(n).await;
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Postgres cluster of the test's own (initdb / pg_ctl from Debian's packages, its own
/// port and directory), so the test can stop and start it. Removed on drop.
pub struct OwnPostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl OwnPostgres {
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Postgres server binaries in /usr/lib/postgresql (apt-get install postgresql)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("pg_ctl").exists())
            .max()
            .expect("a Postgres version with pg_ctl");
        let dir = std::env::temp_dir().join(format!("collab-pg-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let postgres = Self {
            port: free_port(),
            dir,
            bin,
        };
        // Postgres refuses to run as root: as root, the cluster belongs to `postgres`.
        if running_as_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&postgres.dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory");
        }
        let status = postgres
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(postgres.dir.join("data"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb");
        postgres.resume().await;
        postgres
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// The URL of its `postgres` database (for `TestEnv::in_cluster`).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts (again) and waits until it accepts connections.
    pub async fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let status = self
            .command("pg_ctl")
            .args(["-w", "-l"])
            .arg(self.dir.join("log"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-o", &options, "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start");
    }

    /// Stops at once, as a crash would (`-m immediate`: no checkpoint, connections cut).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A loopback port free now, for a server the test starts (and may stop and start again
/// on the same port). Chosen below the kernel's ephemeral range (32768 and up), which the
/// kernel hands to outgoing connections: a client reconnecting while the server is down
/// could otherwise take the port before it comes back.
pub fn free_port() -> u16 {
    loop {
        let random = u16::from_le_bytes(Uuid::new_v4().as_bytes()[..2].try_into().unwrap());
        let port = 20_000 + random % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something listens on `port`; if nothing does in time, fails with the last
/// lines of the server's log.
async fn wait_listening(what: &str, port: u16, timeout: Duration, log: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if tokio::time::Instant::now() >= deadline {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "timed out after {timeout:?} waiting for {what} on port {port}; its log ends:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A file the server's output goes to (appended: a restarted server adds to it).
fn log_file(path: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

impl OwnNats {
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("collab-nats-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nats = Self {
            port: free_port(),
            dir,
            child: None,
        };
        nats.resume().await;
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn binary() -> String {
        std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
            [
                "/usr/sbin/nats-server",
                "/usr/bin/nats-server",
                "/usr/local/bin/nats-server",
            ]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server")
            .to_owned()
        })
    }

    /// Starts (again) on the same port and store directory.
    pub async fn resume(&mut self) {
        let child = Command::new(Self::binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("store"))
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir.join("log")))
            .spawn()
            .expect("nats-server can be started (apt-get install nats-server)");
        self.child = Some(child);
        wait_listening(
            "own nats-server",
            self.port,
            Duration::from_secs(10),
            &self.dir.join("log"),
        )
        .await;
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Path of the `collab` binary the end-to-end tests run (built by ops/dev/test.sh).
pub fn collab_bin() -> PathBuf {
    if let Ok(path) = std::env::var("COLLAB_BIN") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // Built (or found up to date) once per test process, so a plain `cargo test` never
    // runs the end-to-end tests against a stale binary.
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "collab-ops", "--bin", "collab"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the collab binary failed");
    });
    root.join("target/debug/collab")
}

/// An example program of `collab-ops` (`ops/examples/<name>.rs`), next to the binary
/// (`ops/dev/test.sh` builds both), or built here once.
pub fn example_bin(name: &str) -> PathBuf {
    let bin = collab_bin();
    let path = bin
        .parent()
        .expect("the binary is in a directory")
        .join("examples")
        .join(name);
    if std::env::var("COLLAB_BIN").is_err() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "collab-ops", "--example", name])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building example {name} failed");
    }
    path
}

/// A stock Yjs client (npm `yjs` + `y-websocket`) in a Node process, driven over stdio
/// (see tests/node/client.mjs).
pub struct NodeClient {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl NodeClient {
    pub async fn start() -> Self {
        use tokio::io::AsyncBufReadExt;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
        assert!(
            dir.join("node_modules/y-websocket").exists(),
            "run `npm ci --prefix tests/node` first (ops/dev/test.sh does)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg("client.mjs")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command; returns its reply (panics when the client reports an error).
    pub async fn call(&mut self, command: Value) -> Value {
        let reply = self.try_call(command.clone()).await;
        assert_eq!(
            reply["ok"], true,
            "node client failed {command}: {}",
            reply["error"]
        );
        reply
    }

    pub async fn try_call(&mut self, command: Value) -> Value {
        use tokio::io::AsyncWriteExt;
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        let next = tokio::time::timeout(Duration::from_secs(300), self.lines.next_line())
            .await
            .expect("node client answers")
            .unwrap()
            .expect("node client is alive");
        serde_json::from_str(&next).unwrap()
    }

    /// Connects to `/v1/sync/<document>` and waits for the first sync.
    pub async fn open(base_ws: &str, document: &str, token: &str) -> Self {
        let mut client = Self::start().await;
        client
            .call(serde_json::json!({"op": "connect", "url": format!("{base_ws}/v1/sync"), "doc": document, "token": token}))
            .await;
        client.call(serde_json::json!({"op": "synced"})).await;
        client
    }

    pub async fn text(&mut self) -> String {
        self.call(serde_json::json!({"op": "text"})).await["text"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn insert(&mut self, index: Option<usize>, text: &str) {
        self.call(serde_json::json!({"op": "insert", "index": index, "text": text}))
            .await;
    }

    pub async fn wait_text(&mut self, text: &str) {
        self.call(serde_json::json!({"op": "waitText", "text": text, "timeoutMs": 30000}))
            .await;
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The real `collab` binary, serving on a port of its own.
pub struct CollabProcess {
    pub port: u16,
    child: Option<Child>,
    envs: Vec<(String, String)>,
}

impl CollabProcess {
    /// Starts `collab serve` for `env` with extra `COLLAB_*` settings; waits until ready.
    pub async fn start(env: &TestEnv, extra: &[(&str, &str)]) -> Self {
        Self::start_at(env, free_port(), extra).await
    }

    /// Like `start`, on a port chosen before (for services that must know the address
    /// first, such as an OpenID provider's redirect addresses).
    pub async fn start_at(env: &TestEnv, port: u16, extra: &[(&str, &str)]) -> Self {
        let mut envs: Vec<(String, String)> = vec![
            ("COLLAB_DATABASE_URL".into(), env.database_url.clone()),
            ("COLLAB_NATS_URL".into(), env.nats_url.clone()),
            ("COLLAB_SUBJECT_PREFIX".into(), env.prefix.clone()),
            ("COLLAB_JWT_SECRET".into(), TEST_SECRET.into()),
            ("COLLAB_LOG".into(), "warn".into()),
            ("COLLAB_RATE_LIMIT_USER_PER_SECOND".into(), "0".into()),
            ("COLLAB_RATE_LIMIT_WORKSPACE_PER_SECOND".into(), "0".into()),
            ("COLLAB_SOCKET_MESSAGES_PER_SECOND".into(), "0".into()),
            // Tests run side by side, some with five processes each: a smaller pool than
            // production's keeps them all under Postgres's 100 connections.
            ("COLLAB_DATABASE_MAX_CONNECTIONS".into(), "10".into()),
            // Each process an index of its own (tests that need one on disk say where).
            ("COLLAB_SEARCH_DIR".into(), "memory".into()),
            (
                "COLLAB_BLOB_DIR".into(),
                std::env::temp_dir()
                    .join(format!("collab-blobs-{}", env.database_name))
                    .display()
                    .to_string(),
            ),
        ];
        for (k, v) in extra {
            envs.push(((*k).into(), (*v).into()));
        }
        let mut process = Self {
            port,
            child: None,
            envs,
        };
        process.restart().await;
        process
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same port with the same settings.
    pub async fn restart(&mut self) {
        let child = Command::new(collab_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("collab starts");
        self.child = Some(child);
        let url = format!("{}/readyz", self.http());
        eventually("collab to be ready", Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                let response = reqwest::get(&url).await.ok()?;
                (response.status() == 200).then_some(())
            }
        })
        .await;
    }

    /// SIGKILL: no shutdown, no flushing.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        tokio::task::spawn_blocking(move || child.wait().map(|s| s.success()).unwrap_or(false))
            .await
            .unwrap_or(false)
    }
}

impl Drop for CollabProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// HTTP helpers against a running process (as opposed to the in-process `TestApp`).
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(mint(user, 3600));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Response::from(request.send().await.expect("request is sent")).await
    }

    /// Creates a workspace owned by `owner` with one document; returns (workspace, document).
    pub async fn workspace_with_document(&self, owner: &str) -> (String, String) {
        let ws = self
            .call(
                Method::POST,
                "/v1/workspaces",
                owner,
                Some(serde_json::json!({"name": "Live"})),
            )
            .await;
        assert_eq!(ws.status, StatusCode::CREATED, "{}", ws.body);
        let ws = ws.body["id"].as_str().unwrap().to_owned();
        let doc = self
            .call(
                Method::POST,
                &format!("/v1/workspaces/{ws}/documents"),
                owner,
                Some(serde_json::json!({"title": "Notes"})),
            )
            .await;
        assert_eq!(doc.status, StatusCode::CREATED, "{}", doc.body);
        (ws, doc.body["id"].as_str().unwrap().to_owned())
    }

    /// Adds `user` to `workspace` with `role`, as `by`; asserts it was created and
    /// returns the command's position.
    pub async fn add_member(&self, workspace: &str, by: &str, user: &str, role: &str) -> i64 {
        let r = self
            .call(
                Method::POST,
                &format!("/v1/workspaces/{workspace}/members"),
                by,
                Some(serde_json::json!({ "user_id": user, "role": role })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.position()
    }

    /// A GET as `user` that waits for the read models to reach `position`.
    pub async fn get_at(&self, path: &str, user: &str, position: i64) -> Response {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(mint(user, 3600))
            .header("x-collab-min-position", position.to_string());
        Response::from(request.send().await.expect("request is sent")).await
    }

    /// A request as `user` that must answer `status`.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        user: &str,
        body: Option<Value>,
        status: u16,
    ) -> Response {
        let r = self.call(method.clone(), path, user, body).await;
        assert_eq!(
            r.status.as_u16(),
            status,
            "{user} {method} {path}: {}",
            r.body
        );
        r
    }

    /// Inserts `text` at the start of the document's `text` root over HTTP (a Yjs update
    /// from a fresh client), as `user`; returns the command's position.
    pub async fn write_text(&self, document: &str, user: &str, text: &str) -> i64 {
        use yrs::{ReadTxn, Text, Transact};
        let remote = yrs::Doc::new();
        remote
            .get_or_insert_text("text")
            .insert(&mut remote.transact_mut(), 0, text);
        let update = remote
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        self.post_update(document, user, update).await
    }

    /// Applies a Yjs update (`POST /v1/documents/{id}/updates`); its position.
    pub async fn post_update(&self, document: &str, user: &str, update: Vec<u8>) -> i64 {
        let response = self
            .client
            .post(format!("{}/v1/documents/{document}/updates", self.base))
            .bearer_auth(mint(user, 600))
            .header("content-type", "application/octet-stream")
            .body(update)
            .send()
            .await
            .expect("request is sent");
        let response = Response::from(response).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        response.position()
    }

    /// The document's text as the server holds it.
    pub async fn content_text(&self, document: &str, user: &str) -> String {
        self.try_content_text(document, user)
            .await
            .expect("the content, not a 503")
    }

    /// The content as text, or `None` when the server is too busy to answer (503
    /// `database_busy`: no database connection came free in time); anything else fails.
    pub async fn try_content_text(&self, document: &str, user: &str) -> Option<String> {
        let response = self
            .client
            .get(format!(
                "{}/v1/documents/{document}/content?format=text",
                self.base
            ))
            .bearer_auth(mint(user, 3600))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["code"], "database_busy", "{body}");
            return None;
        }
        assert_eq!(response.status(), 200);
        Some(response.text().await.unwrap())
    }
}

/// Number of `DocumentEdited` events of a document.
pub async fn edit_count(pool: &PgPool, document: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_id = $1")
        .bind(format!("content-{document}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A token whose sync sockets are read-only.
pub fn mint_read_only(user: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims =
        serde_json::json!({ "sub": user, "iat": now, "exp": now + 3600, "read_only": true });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A real SMTP server the test owns: npm `maildev` (tests/node), whose REST API lists what
/// it received. Stopping it and starting it again on the same ports (and mail directory)
/// is an SMTP server that was down for a while.
pub struct Maildev {
    child: Option<tokio::process::Child>,
    pub smtp_port: u16,
    pub web_port: u16,
    /// Its mail directory (kept across a stop; removed on drop).
    dir: PathBuf,
    http: reqwest::Client,
}

impl Drop for Maildev {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Maildev {
    pub async fn start() -> Self {
        let mut maildev = Self {
            child: None,
            smtp_port: free_port(),
            web_port: free_port(),
            dir: std::env::temp_dir().join(format!("collab-maildev-{}", uuid::Uuid::now_v7())),
            http: reqwest::Client::new(),
        };
        maildev.resume().await;
        maildev
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp_port)
    }

    /// Starts it (again), and waits until its API answers.
    pub async fn resume(&mut self) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
        let bin = dir.join("node_modules/.bin/maildev");
        assert!(
            bin.exists(),
            "run `npm ci --prefix tests/node` first (ops/dev/test.sh does)"
        );
        let child = tokio::process::Command::new(bin)
            .args(["--smtp", &self.smtp_port.to_string()])
            .args(["--web", &self.web_port.to_string()])
            .args(["--ip", "127.0.0.1", "--web-ip", "127.0.0.1"])
            .arg("--mail-directory")
            .arg(&self.dir)
            .arg("--silent")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("maildev runs");
        self.child = Some(child);
        let http = self.http.clone();
        let url = format!("http://127.0.0.1:{}/api/email", self.web_port);
        eventually("maildev to answer", Duration::from_secs(30), || {
            let (http, url) = (&http, &url);
            async move {
                http.get(url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
                    .map(|_| ())
            }
        })
        .await;
    }

    /// Stops it (connections are refused until [`Maildev::resume`]).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Every email received so far (maildev's JSON: `subject`, `to`, `text`, `html`, ...).
    pub async fn emails(&self) -> Vec<Value> {
        self.http
            .get(format!("http://127.0.0.1:{}/api/email", self.web_port))
            .send()
            .await
            .expect("maildev answers")
            .json()
            .await
            .expect("maildev lists emails")
    }

    /// The emails to `address`.
    pub async fn emails_to(&self, address: &str) -> Vec<Value> {
        self.emails()
            .await
            .into_iter()
            .filter(|email| {
                email["to"]
                    .as_array()
                    .is_some_and(|to| to.iter().any(|t| t["address"] == address))
            })
            .collect()
    }
}

/// A webhook receiver the test owns (tests/node/webhook-receiver.mjs): it checks every
/// delivery's signature with npm `standardwebhooks` and lists what it received.
pub struct WebhookReceiver {
    child: Option<tokio::process::Child>,
    pub port: u16,
    http: reqwest::Client,
}

impl WebhookReceiver {
    pub async fn start() -> Self {
        let mut receiver = Self {
            child: None,
            port: free_port(),
            http: reqwest::Client::new(),
        };
        receiver.resume().await;
        receiver
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts it (again, with nothing received and no secrets), and waits until it answers.
    pub async fn resume(&mut self) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
        assert!(
            dir.join("node_modules/standardwebhooks").exists(),
            "run `npm ci --prefix tests/node` first (ops/dev/test.sh does)"
        );
        let child = tokio::process::Command::new("node")
            .arg("webhook-receiver.mjs")
            .arg(self.port.to_string())
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        self.child = Some(child);
        let url = self.url("/_control/received");
        let http = self.http.clone();
        eventually(
            "the webhook receiver to answer",
            Duration::from_secs(30),
            || {
                let (http, url) = (&http, &url);
                async move { http.get(url).send().await.ok().map(|_| ()) }
            },
        )
        .await;
    }

    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    async fn control(&self, what: &str, body: Value) {
        let r = self
            .http
            .post(self.url(&format!("/_control/{what}")))
            .json(&body)
            .send()
            .await
            .expect("the receiver answers");
        assert!(r.status().is_success());
    }

    /// Deliveries to `path` are signed with `secret`.
    pub async fn secret(&self, path: &str, secret: &str) {
        self.control(
            "secret",
            serde_json::json!({"path": path, "secret": secret}),
        )
        .await;
    }

    /// Answer `status` to the next `count` deliveries to `path`.
    pub async fn fail(&self, path: &str, count: u32, status: u16) {
        self.control(
            "fail",
            serde_json::json!({"path": path, "count": count, "status": status}),
        )
        .await;
    }

    /// Answer the next `count` deliveries to `path` only after `ms` milliseconds.
    pub async fn slow(&self, path: &str, count: u32, ms: u64) {
        self.control(
            "slow",
            serde_json::json!({"path": path, "count": count, "ms": ms}),
        )
        .await;
    }

    /// Everything received: `{path, id, verified, error, body, answered}` each.
    pub async fn received(&self) -> Vec<Value> {
        self.http
            .get(self.url("/_control/received"))
            .send()
            .await
            .expect("the receiver answers")
            .json()
            .await
            .expect("a list")
    }
}

/// An S3-compatible server of the test's own: `s3s-fs` serving in this process on a
/// loopback port, checking every request's signature (SigV4, presigned URLs included)
/// against credentials of its own, with one bucket. Its files are in a temporary
/// directory, removed on drop.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Where the objects are on disk (`<root>/<bucket>/<key>`).
    pub root: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl S3Server {
    pub async fn start() -> Self {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::server::conn::auto::Builder as ConnBuilder;

        let root = std::env::temp_dir().join(format!("collab-s3-{}", Uuid::now_v7()));
        let bucket = "collab-test".to_owned();
        std::fs::create_dir_all(root.join(&bucket)).expect("bucket directory");
        let access_key = format!("AK{}", Uuid::new_v4().simple());
        let secret_key = format!("SK{}", Uuid::new_v4().simple());
        let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs opens its root");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(
            access_key.clone(),
            secret_key.clone(),
        ));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        // Browsers upload and download straight from the store: like a bucket with a CORS
        // rule (any origin; the presigned signature is the permission), preflights answered
        // and `ETag` readable by the page.
        let service = hyper::service::service_fn(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let service = service.clone();
                async move {
                    let mut response = if request.method() == axum::http::Method::OPTIONS {
                        axum::http::Response::new(s3s::Body::empty())
                    } else {
                        hyper::service::Service::call(&service, request).await?
                    };
                    let headers = response.headers_mut();
                    for (name, value) in [
                        ("access-control-allow-origin", "*"),
                        ("access-control-allow-methods", "GET, PUT, HEAD"),
                        ("access-control-allow-headers", "content-type"),
                        ("access-control-expose-headers", "etag"),
                        ("access-control-max-age", "600"),
                    ] {
                        headers.insert(name, axum::http::HeaderValue::from_static(value));
                    }
                    Ok::<_, s3s::HttpError>(response)
                }
            },
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self {
            endpoint,
            bucket,
            access_key,
            secret_key,
            root,
            task,
        }
    }

    /// The settings that point `collab` at it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("COLLAB_S3_ENDPOINT", self.endpoint.clone()),
            ("COLLAB_S3_BUCKET", self.bucket.clone()),
            ("COLLAB_S3_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
        ]
    }

    /// Whether an object is stored under `key`.
    pub fn has(&self, key: &str) -> bool {
        self.root.join(&self.bucket).join(key).is_file()
    }

    /// Parts of multipart uploads neither completed nor aborted.
    pub fn pending_parts(&self) -> usize {
        std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
            .count()
    }

    /// Every stored object's key (s3s-fs keeps its own records beside them, skipped).
    pub fn keys(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else if let Ok(key) = path.strip_prefix(base) {
                    out.push(key.display().to_string());
                }
            }
        }
        let base = self.root.join(&self.bucket);
        let mut out = Vec::new();
        walk(&base, &base, &mut out);
        out.retain(|k| k.starts_with("files/") || k.starts_with("snapshots/"));
        out.sort();
        out
    }
}
