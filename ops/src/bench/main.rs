//! `collab-bench`: the load generator. Speaks the y-websocket protocol to any server that
//! does (collab, y-sweet, the reference y-websocket server), and measures:
//!
//! * `fanout`: D documents × C clients, each sending R updates/s for S seconds —
//!   send→peer latency percentiles, deliveries vs expected;
//! * `ingest`: a trace (../shared/traces format) sent keystroke by keystroke over one
//!   connection — time until the server holds the final text;
//! * `cold-load`: time for a fresh client to receive a whole document;
//! * `idle`: N sockets held open on a set of documents — the server's memory per
//!   connection (from its resident set, when given its pid);
//! * `durability` (collab only): every edit sent is in Postgres, the whole log on JetStream.
//!
//! Results are printed as one JSON object per scenario (for ops/bench scripts).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

mod append;
mod durability;
mod points;
mod search;
mod seed;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, OffsetKind, Options, StateVector, Text, Transact, Update};

#[derive(Parser)]
#[command(
    name = "collab-bench",
    about = "Load generator for y-websocket servers"
)]
struct Cli {
    /// WebSocket base: documents are at <url>/<document>, or where `{doc}` stands in it.
    /// Several, comma-separated, spread the connections round robin (the clients of each
    /// document over several instances).
    #[arg(long, default_value = "ws://127.0.0.1:7700/v1/sync")]
    url: String,
    /// Query string appended to every socket URL (e.g. token=...).
    #[arg(long, default_value = "")]
    query: String,
    /// Wire protocol: `y-websocket` (collab, y-sweet, the reference server; the document
    /// is in the URL) or `hocuspocus` (every message prefixed with the document name, after
    /// an auth message; the URL is the server's).
    #[arg(long, default_value = "y-websocket")]
    protocol: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// D documents × C clients, R updates/s each, for S seconds.
    Fanout {
        /// Document names (comma-separated); their number is D.
        #[arg(long, value_delimiter = ',')]
        docs: Vec<String>,
        #[arg(long, default_value_t = 10)]
        clients: usize,
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Send a trace keystroke by keystroke; wait until a second client sees the final text.
    Ingest {
        #[arg(long)]
        doc: String,
        #[arg(long)]
        trace: std::path::PathBuf,
        /// Root text type name.
        #[arg(long, default_value = "text")]
        root: String,
        /// Give up (and report it) after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_seconds: u64,
    },
    /// Durable appends/s (event store, relay) beside a raw INSERT and a bare JetStream publish.
    Append {
        #[arg(
            long,
            env = "COLLAB_DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database_url: String,
        #[arg(long, env = "COLLAB_NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// Events per configuration.
        #[arg(long, default_value_t = 100_000)]
        events: usize,
    },
    /// Open N sockets (spread over the documents), hold them, report memory per socket.
    Idle {
        /// Document names (comma-separated); sockets are spread over them round-robin.
        #[arg(long, value_delimiter = ',')]
        docs: Vec<String>,
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// The server's process ids (comma-separated, for several instances): their
        /// resident memory, summed, is read before and after.
        #[arg(long, value_delimiter = ',')]
        server_pid: Vec<u32>,
        /// Sockets being opened at once.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// How long to hold the sockets open (idle) before measuring.
        #[arg(long, default_value_t = 5)]
        hold_seconds: u64,
    },
    /// After a run against collab: every edit sent is in Postgres, and the whole log is on
    /// JetStream in order (waits up to --timeout-seconds for the relay to finish).
    Durability {
        #[arg(long, env = "COLLAB_DATABASE_URL")]
        database_url: String,
        #[arg(long, env = "COLLAB_NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// The server's subject prefix.
        #[arg(long)]
        prefix: String,
        /// Edits the load generator sent over the whole run (fan-out and ingest).
        #[arg(long)]
        edits_sent: i64,
        #[arg(long, default_value_t = 120)]
        timeout_seconds: u64,
    },
    /// Deletes the JetStream streams a `collab serve --subject-prefix P` run created.
    Cleanup {
        #[arg(long)]
        prefix: String,
        #[arg(long, env = "COLLAB_NATS_URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
    },
    /// The document at `count` random points of its history (`content?at_version=`), one
    /// request after another: p50/p90/p99.
    Points {
        /// The HTTP API base, e.g. http://127.0.0.1:7700.
        #[arg(long)]
        http: String,
        #[arg(long)]
        doc: String,
        /// A bearer token that can read the document.
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 200)]
        count: usize,
        #[arg(long, default_value_t = 13)]
        seed: u64,
    },
    /// Appends a realistic log of workspace and document events (no content) through the
    /// event store: for rebuild and catch-up measurements.
    Seed {
        #[arg(long, env = "COLLAB_DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value_t = 1000)]
        workspaces: usize,
        /// Documents per workspace.
        #[arg(long, default_value_t = 100)]
        documents: usize,
        /// Renames per document (besides its creation, a move and a share).
        #[arg(long, default_value_t = 20)]
        renames: usize,
    },
    /// Appends a search corpus: documents with titles and text drawn from a word-frequency
    /// list, spread over workspaces that all have the member `reader`; the same text goes
    /// to the table `bench_corpus` for the ILIKE baseline.
    SearchSeed {
        #[arg(long, env = "COLLAB_DATABASE_URL")]
        database_url: String,
        #[command(flatten)]
        corpus: CorpusArgs,
    },
    /// Concurrent clients issuing a mix of one-word, two-word, phrase and prefix queries
    /// for --seconds (or --max-queries), against the API (`--url`, `--token`) or as ILIKE
    /// scans (`--ilike-database-url`); p50/p90/p99 per kind.
    SearchLoad {
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        token: Option<String>,
        /// Also measure edit-to-findable on this document (the token must edit it).
        #[arg(long)]
        fresh_document: Option<String>,
        #[arg(long)]
        ilike_database_url: Option<String>,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long)]
        max_queries: Option<usize>,
        #[command(flatten)]
        corpus: CorpusArgs,
    },
    /// Fresh clients fetch the whole document, one after another.
    ColdLoad {
        #[arg(long)]
        doc: String,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        #[arg(long, default_value = "text")]
        root: String,
    },
}

/// The corpus `search-seed` made (`search-load` draws phrases from the same text).
#[derive(clap::Args)]
struct CorpusArgs {
    /// `word<TAB>frequency` lines, most frequent first.
    #[arg(long)]
    words: std::path::PathBuf,
    #[arg(long, default_value_t = 50)]
    workspaces: usize,
    #[arg(long, default_value_t = 100_000)]
    documents: usize,
    #[arg(long, default_value_t = 1024)]
    min_bytes: usize,
    #[arg(long, default_value_t = 20 * 1024)]
    max_bytes: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl CorpusArgs {
    fn corpus(&self) -> search::Corpus<'_> {
        search::Corpus {
            words: &self.words,
            workspaces: self.workspaces,
            documents: self.documents,
            min_bytes: self.min_bytes,
            max_bytes: self.max_bytes.max(self.min_bytes + 1),
            seed: self.seed,
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The URL of connection `n` to `doc` (its base taken round robin from `--url`).
fn socket_url(cli: &Cli, doc: &str, n: usize) -> String {
    let bases: Vec<&str> = cli.url.split(',').collect();
    let url = bases[n % bases.len()];
    let base = if url.contains("{doc}") {
        url.replace("{doc}", doc)
    } else if cli.protocol == "hocuspocus" {
        url.to_owned()
    } else {
        format!("{url}/{doc}")
    };
    if cli.query.is_empty() {
        base
    } else {
        format!("{base}?{}", cli.query)
    }
}

/// How frames are framed: plain y-websocket, or Hocuspocus' document-prefixed messages.
#[derive(Clone)]
struct Wire {
    /// For Hocuspocus: the lib0 varString of the document name, prefixed to every message.
    prefix: Option<Vec<u8>>,
}

impl Wire {
    fn new(cli: &Cli, doc: &str) -> Self {
        Self {
            prefix: (cli.protocol == "hocuspocus").then(|| {
                let mut prefix = vec![];
                write_var(&mut prefix, doc.len());
                prefix.extend_from_slice(doc.as_bytes());
                prefix
            }),
        }
    }

    fn sync(&self, kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = self.prefix.clone().unwrap_or_default();
        frame.extend_from_slice(&sync_frame(kind, payload));
        frame
    }

    /// The frame without its document prefix.
    fn strip<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        match &self.prefix {
            None => Some(frame),
            Some(prefix) => frame.strip_prefix(prefix.as_slice()),
        }
    }

    /// Hocuspocus needs an auth message (token "") before anything else.
    async fn hello(&self, socket: &mut Socket) {
        if let Some(prefix) = &self.prefix {
            let mut frame = prefix.clone();
            frame.extend_from_slice(&[2, 0, 0]);
            socket.send(Message::Binary(frame.into())).await.unwrap();
        }
    }
}

/// tungstenite zero-fills its read buffer before every read (128 KiB by default): with a
/// thousand sockets that memset was a fifth of the machine's CPU, taken from whichever
/// server is measured. A small buffer still grows to fit a large message.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096)
}

/// Browsers (and Node's `ws`) send with TCP_NODELAY; so do our clients.
const NO_DELAY: bool = true;

async fn connect(url: &str) -> Socket {
    let (socket, _) =
        tokio_tungstenite::connect_async_with_config(url, Some(client_config()), NO_DELAY)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    socket
}

/// Opens a socket the way a Yjs client does: connect, say hello (Hocuspocus), and ask for
/// the document with sync step 1 from an empty state (some servers wait for it).
async fn open_document(url: &str, wire: &Wire) -> Result<Socket, String> {
    let (mut socket, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async_with_config(url, Some(client_config()), NO_DELAY),
    )
    .await
    .map_err(|_| "no handshake within 30 s".to_owned())?
    .map_err(|e| e.to_string())?;
    wire.hello(&mut socket).await;
    socket
        .send(Message::Binary(
            wire.sync(0, &StateVector::default().encode_v1()).into(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    Ok(socket)
}

fn write_var(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

fn read_var(buf: &[u8], at: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let byte = *buf.get(*at)?;
        *at += 1;
        n |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
        shift += 7;
    }
}

fn sync_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0, kind];
    write_var(&mut frame, payload.len());
    frame.extend_from_slice(payload);
    frame
}

/// For a sync message (0, kind, payload), its kind and payload.
fn parse_sync(frame: &[u8]) -> Option<(u8, &[u8])> {
    if frame.first() != Some(&0) {
        return None;
    }
    let kind = *frame.get(1)?;
    let mut at = 2;
    let len = read_var(frame, &mut at)?;
    Some((kind, frame.get(at..at + len)?))
}

/// What identifies an update whatever bytes a server re-encodes it into: the (client id,
/// first clock) pairs of what it inserts. A sender's own updates are recognised by client id.
fn update_keys(update: &[u8]) -> Vec<(u64, u32)> {
    Update::decode_v1(update)
        .map(|u| {
            u.state_vector_lower()
                .iter()
                .map(|(client, clock)| (client.get(), *clock))
                .collect()
        })
        .unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

async fn fanout(cli: &Cli, docs: &[String], clients: usize, rate: f64, seconds: u64) -> Value {
    let sent_at: Arc<Mutex<HashMap<(u64, u32), Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = vec![];
    // The clock starts once every socket is open: a client that joined late would get the
    // earlier updates in its initial sync, not as deliveries.
    let everyone_open = Arc::new(tokio::sync::Barrier::new(docs.len() * clients));
    let start: Arc<tokio::sync::OnceCell<Instant>> = Arc::default();
    for doc in docs {
        for client in 0..clients {
            let url = socket_url(cli, doc, client);
            let wire = Wire::new(cli, doc);
            let (sent_at, latencies, sent) = (sent_at.clone(), latencies.clone(), sent.clone());
            let (everyone_open, start) = (everyone_open.clone(), start.clone());
            tasks.push(tokio::spawn(async move {
                let socket = open_document(&url, &wire).await;
                everyone_open.wait().await;
                let socket = socket.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
                // Time for the initial syncs to finish before the first update.
                let start_at = *start
                    .get_or_init(|| async { Instant::now() + Duration::from_millis(500) })
                    .await;
                let stop_at = start_at + Duration::from_secs(seconds);
                let (mut sink, mut stream) = socket.split();
                let reader_sent_at = sent_at.clone();
                let reader_wire = wire.clone();
                let doc = js_like_doc();
                let own_client = doc.client_id().get();
                let reader = tokio::spawn(async move {
                    let sent_at = reader_sent_at;
                    while let Some(Ok(message)) = stream.next().await {
                        let received = Instant::now();
                        let Message::Binary(frame) = message else {
                            continue;
                        };
                        let Some(frame) = reader_wire.strip(&frame) else {
                            continue;
                        };
                        if let Some((2, update)) = parse_sync(frame) {
                            for key in update_keys(update) {
                                // Some servers echo an update to its sender: not a delivery.
                                if key.0 == own_client {
                                    continue;
                                }
                                if let Some(at) = sent_at.lock().unwrap().get(&key) {
                                    latencies
                                        .lock()
                                        .unwrap()
                                        .push(received.duration_since(*at).as_secs_f64() * 1000.0);
                                }
                            }
                        }
                    }
                });
                let text = doc.get_or_insert_text("text");
                let period = Duration::from_secs_f64(1.0 / rate);
                // Spread clients over the period so they do not all send at once.
                let offset = period.mul_f64((client as f64) / (clients as f64));
                tokio::time::sleep_until((start_at + offset).into()).await;
                let mut ticker = tokio::time::interval(period);
                let mut n = 0u64;
                while Instant::now() < stop_at {
                    ticker.tick().await;
                    // What a Yjs client sends: the transaction's own changes.
                    let update = {
                        let mut txn = doc.transact_mut();
                        let len = text.len(&txn);
                        text.insert(&mut txn, len, "x");
                        txn.encode_update_v1()
                    };
                    let now = Instant::now();
                    for key in update_keys(&update) {
                        sent_at.lock().unwrap().insert(key, now);
                    }
                    if sink
                        .send(Message::Binary(wire.sync(2, &update).into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    n += 1;
                }
                sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = sink.send(Message::Close(None)).await;
                reader.abort();
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut all = latencies.lock().unwrap().clone();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    let expected = sent * (clients as u64 - 1);
    json!({
        "scenario": "fanout",
        "documents": docs.len(),
        "clients_per_document": clients,
        "rate_per_client": rate,
        "seconds": seconds,
        "updates_sent": sent,
        "deliveries_expected": expected,
        "deliveries": all.len(),
        "latency_ms": {
            "p50": percentile(&all, 50.0),
            "p95": percentile(&all, 95.0),
            "p99": percentile(&all, 99.0),
            "max": all.last().copied().unwrap_or(f64::NAN),
        }
    })
}

/// A document whose client id fits in 32 bits, as Yjs picks them: some servers (y-sweet
/// on an older yrs) keep only 32 bits of a client id.
fn js_like_doc() -> Doc {
    let random = uuid::Uuid::new_v4().as_u128() as u32;
    Doc::with_options(Options {
        client_id: yrs::block::ClientID::new(u64::from(random.max(1))),
        ..Options::default()
    })
}

fn load_trace(path: &std::path::Path) -> Value {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("trace exists"))
        .read_to_string(&mut text)
        .expect("trace is gzipped JSON");
    serde_json::from_str(&text).expect("trace is JSON")
}

/// A document whose text offsets count UTF-16 units: trace positions count code points,
/// which agree for every character outside the astral planes (checked).
fn trace_doc() -> Doc {
    let random = uuid::Uuid::new_v4().as_u128() as u32;
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        client_id: yrs::block::ClientID::new(u64::from(random.max(1))),
        ..Options::default()
    })
}

/// Receives a whole document over a fresh socket: returns (milliseconds, text).
async fn fetch_document(url: &str, wire: &Wire, root: &str) -> Result<(f64, String), String> {
    let started = Instant::now();
    let mut socket = open_document(url, wire)
        .await
        .map_err(|e| format!("cannot open {url}: {e}"))?;
    while let Some(Ok(message)) = socket.next().await {
        let Message::Binary(frame) = message else {
            continue;
        };
        let Some(frame) = wire.strip(&frame) else {
            continue;
        };
        if let Some((1, update)) = parse_sync(frame) {
            let doc = Doc::new();
            let text = doc.get_or_insert_text(root);
            doc.transact_mut()
                .apply_update(Update::decode_v1(update).expect("server sends a valid update"))
                .unwrap();
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            let content = text.get_string(&doc.transact());
            let _ = socket.send(Message::Close(None)).await;
            return Ok((elapsed, content));
        }
    }
    Err("the server closed before sending the document".into())
}

async fn ingest(
    cli: &Cli,
    doc_name: &str,
    trace_path: &std::path::Path,
    root: &str,
    timeout: Duration,
) -> Value {
    let trace = load_trace(trace_path);
    let end = trace["endContent"].as_str().unwrap().to_owned();
    assert!(
        end.chars().all(|c| (c as u32) < 0x10000),
        "astral characters: positions would need code-point conversion"
    );
    let doc = trace_doc();
    let text = doc.get_or_insert_text(root);
    let url = socket_url(cli, doc_name, 0);
    let wire = Wire::new(cli, doc_name);
    let mut socket = connect(&url).await;
    wire.hello(&mut socket).await;
    let txns = trace["txns"].as_array().unwrap();
    // The updates are made before the clock starts: what is timed is the server.
    let mut messages = Vec::with_capacity(txns.len());
    for txn in txns {
        // One Yjs transaction per trace transaction; send its own changes, as Yjs does.
        let update = {
            let mut t = doc.transact_mut();
            for patch in txn["patches"].as_array().unwrap() {
                let position = patch[0].as_u64().unwrap() as u32;
                let deleted = patch[1].as_u64().unwrap() as u32;
                let inserted = patch[2].as_str().unwrap();
                if deleted > 0 {
                    text.remove_range(&mut t, position, deleted);
                }
                if !inserted.is_empty() {
                    text.insert(&mut t, position, inserted);
                }
            }
            t.encode_update_v1()
        };
        messages.push(Message::Binary(wire.sync(2, &update).into()));
    }
    assert_eq!(
        text.get_string(&doc.transact()),
        end,
        "local replay matches the trace"
    );
    let started = Instant::now();
    let mut messages = messages.into_iter();
    loop {
        let chunk: Vec<_> = messages.by_ref().take(256).map(Ok).collect();
        if chunk.is_empty() {
            break;
        }
        socket
            .send_all(&mut futures::stream::iter(chunk))
            .await
            .unwrap();
    }
    let sent_in = started.elapsed();
    // Done when a second client receives exactly the final text.
    let deadline = started + timeout;
    let (complete, cold_ms) = loop {
        // A server still busy with the backlog may not even answer the handshake: not yet.
        let (ms, content) = match fetch_document(&url, &wire, root).await {
            Ok(fetched) => fetched,
            Err(_) => (f64::NAN, String::new()),
        };
        if content == end {
            break (started.elapsed(), ms);
        }
        if Instant::now() > deadline {
            return json!({
                "scenario": "ingest",
                "updates": txns.len(),
                "final_chars": end.chars().count(),
                "send_seconds": sent_in.as_secs_f64(),
                "complete_seconds": null,
                "timed_out_after_seconds": timeout.as_secs(),
                "server_chars_at_timeout": content.chars().count(),
                "correct": false,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = socket.send(Message::Close(None)).await;
    json!({
        "scenario": "ingest",
        "updates": txns.len(),
        "final_chars": end.chars().count(),
        "send_seconds": sent_in.as_secs_f64(),
        "complete_seconds": complete.as_secs_f64(),
        "updates_per_second": txns.len() as f64 / complete.as_secs_f64(),
        "warm_load_ms": cold_ms,
        "correct": true,
    })
}

async fn cold_load(cli: &Cli, doc: &str, repeat: usize, root: &str) -> Value {
    let url = socket_url(cli, doc, 0);
    let wire = Wire::new(cli, doc);
    let mut times = vec![];
    let mut chars = 0;
    for _ in 0..repeat {
        // Give the server time to unload the room after the previous client left.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (ms, text) = fetch_document(&url, &wire, root)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        chars = text.chars().count();
        times.push(ms);
    }
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({
        "scenario": "cold_load",
        "chars": chars,
        "runs_ms": times,
        "median_ms": percentile(&sorted, 50.0),
    })
}

/// A process's resident memory (VmRSS), in KiB.
/// The resident memory of `pids`, summed (None without any).
fn resident_kib(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .map(|pid| resident_kib_of(*pid))
        .sum::<Option<u64>>()
        .filter(|_| !pids.is_empty())
}

fn resident_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Opens a socket the way a client does (hello, sync step 1) and waits for the server's
/// first message: only then does the socket count as open.
async fn open_synced(url: String, wire: Wire) -> Result<Socket, String> {
    let mut socket = open_document(&url, &wire).await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Ok(Some(Ok(Message::Binary(_)))) => return Ok(socket),
            Ok(Some(Ok(Message::Close(frame)))) => return Err(format!("closed: {frame:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(None) => return Err("closed".into()),
            Err(_) => return Err("no message within 30 s".into()),
        }
    }
}

async fn idle(
    cli: &Cli,
    docs: &[String],
    connections: usize,
    server_pids: &[u32],
    concurrency: usize,
    hold: Duration,
) -> Value {
    assert!(!docs.is_empty(), "--docs names at least one document");
    let before = resident_kib(server_pids);
    let started = Instant::now();
    let targets: Vec<(String, Wire)> = (0..connections)
        .map(|n| {
            let doc = &docs[n % docs.len()];
            (socket_url(cli, doc, n), Wire::new(cli, doc))
        })
        .collect();
    let results: Vec<Result<Socket, String>> = futures::stream::iter(targets)
        .map(|(url, wire)| open_synced(url, wire))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let opened_in = started.elapsed();
    let mut sockets = vec![];
    let mut errors: HashMap<String, usize> = HashMap::new();
    for result in results {
        match result {
            Ok(socket) => sockets.push(socket),
            Err(error) => *errors.entry(error).or_default() += 1,
        }
    }
    // Held idle: the server has nothing to do but keep them. Anything it sends meanwhile
    // waits in the kernel's buffers.
    tokio::time::sleep(hold).await;
    let during = resident_kib(server_pids);
    // Still open? A ping on every socket must be answered.
    let alive = futures::stream::iter(sockets.iter_mut())
        .map(|socket| async move {
            if socket.send(Message::Ping(vec![1].into())).await.is_err() {
                return false;
            }
            loop {
                match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                    Ok(Some(Ok(Message::Pong(_)))) => return true,
                    Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                        return false
                    }
                    Ok(Some(Ok(_))) => continue,
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .filter(|alive| futures::future::ready(*alive))
        .count()
        .await;
    let open = sockets.len();
    for socket in &mut sockets {
        let _ = socket.close(None).await;
    }
    let per_connection = match (before, during) {
        (Some(before), Some(during)) if open > 0 => {
            json!((during.saturating_sub(before)) as f64 / open as f64)
        }
        _ => Value::Null,
    };
    json!({
        "scenario": "idle",
        "connections_requested": connections,
        "connections_open": open,
        "connections_alive_after_hold": alive,
        "open_seconds": opened_in.as_secs_f64(),
        "errors": errors,
        "server_rss_kib_before": before,
        "server_rss_kib_open": during,
        "kib_per_connection": per_connection,
    })
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match &cli.scenario {
        Scenario::Fanout {
            docs,
            clients,
            rate,
            seconds,
        } => fanout(&cli, docs, *clients, *rate, *seconds).await,
        Scenario::Ingest {
            doc,
            trace,
            root,
            timeout_seconds,
        } => {
            ingest(
                &cli,
                doc,
                trace,
                root,
                Duration::from_secs(*timeout_seconds),
            )
            .await
        }
        Scenario::ColdLoad { doc, repeat, root } => cold_load(&cli, doc, *repeat, root).await,
        Scenario::Points {
            http,
            doc,
            token,
            count,
            seed,
        } => points::run(http, token, doc, *count, *seed).await,
        Scenario::Seed {
            database_url,
            workspaces,
            documents,
            renames,
        } => seed::run(database_url, *workspaces, *documents, *renames).await,
        Scenario::SearchSeed {
            database_url,
            corpus,
        } => search::seed(database_url, corpus.corpus()).await,
        Scenario::SearchLoad {
            url,
            token,
            fresh_document,
            ilike_database_url,
            clients,
            seconds,
            max_queries,
            corpus,
        } => {
            let target = match (url, token, ilike_database_url) {
                (Some(url), Some(token), None) => search::Target::Http {
                    url: url.clone(),
                    token: token.clone(),
                    fresh_document: fresh_document.clone(),
                },
                (None, None, Some(database_url)) => search::Target::Ilike {
                    database_url: database_url.clone(),
                },
                _ => panic!("give --url and --token, or --ilike-database-url"),
            };
            search::load(target, corpus.corpus(), *clients, *seconds, *max_queries).await
        }
        Scenario::Idle {
            docs,
            connections,
            server_pid,
            concurrency,
            hold_seconds,
        } => {
            idle(
                &cli,
                docs,
                *connections,
                server_pid,
                *concurrency,
                Duration::from_secs(*hold_seconds),
            )
            .await
        }
        Scenario::Append {
            database_url,
            nats_url,
            events,
        } => append::run(database_url, nats_url, *events).await,
        Scenario::Durability {
            database_url,
            nats_url,
            prefix,
            edits_sent,
            timeout_seconds,
        } => {
            durability::run(
                database_url,
                nats_url,
                prefix,
                *edits_sent,
                Duration::from_secs(*timeout_seconds),
            )
            .await
        }
        Scenario::Cleanup { prefix, nats_url } => {
            let client = async_nats::connect(nats_url.as_str())
                .await
                .unwrap_or_else(|e| panic!("cannot reach NATS at {nats_url}: {e}"));
            let js = async_nats::jetstream::new(client);
            collab_live::delete_jetstream_streams(&js, prefix)
                .await
                .unwrap_or_else(|e| panic!("cannot delete the streams of {prefix}: {e}"));
            json!({ "cleanup": collab_live::jetstream_streams(prefix) })
        }
    };
    println!("{result}");
}
