//! Search at the scale of a company: `search-seed` appends a corpus of documents (titles,
//! and text of realistic size made of words drawn from a real word-frequency list) through
//! the event store, plus the same text in a plain table for the naive baseline;
//! `search-load` runs concurrent clients issuing a mix of one-word, two-word, phrase and
//! prefix queries — against the HTTP API, or as `ILIKE` scans of that table — and, against
//! the API, measures how long an edit takes to become findable.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use collab_domain::catalogue::EventCodec;
use collab_domain::content::{ContentEvent, DocumentEdited, EditOrigin};
use collab_domain::document::{DocumentCreated, DocumentEvent};
use collab_domain::workspace::{MemberAdded, WorkspaceCreated, WorkspaceEvent};
use collab_domain::{
    Actor, DocumentId, StreamCategory, StreamId, UserId, WorkspaceId, WorkspaceRole,
};
use collab_store::event_store::AppendContext;
use collab_store::{BatchAppend, EventStore, ExpectedVersion, NewEvent};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;
use yrs::{ReadTxn, Transact, WriteTxn, XmlFragment};

use crate::points::Draw;

/// The user every workspace has as a member (default role: editor): the load runs as them,
/// so the access filter spans every workspace.
const READER: &str = "reader";

/// Words and their frequencies, most frequent first (`word<TAB>frequency` lines).
pub(crate) struct Words {
    words: Vec<String>,
    /// Cumulative frequencies, for drawing words as often as they occur in English.
    cumulative: Vec<f64>,
}

impl Words {
    pub(crate) fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut words = vec![];
        let mut cumulative = vec![];
        let mut total = 0.0;
        for line in text.lines() {
            let Some((word, frequency)) = line.split_once('\t') else {
                continue;
            };
            total += frequency.parse::<f64>().unwrap_or(0.0);
            words.push(word.to_owned());
            cumulative.push(total);
        }
        assert!(!words.is_empty(), "no words in {}", path.display());
        Self { words, cumulative }
    }

    /// A word drawn by frequency.
    fn weighted(&self, draw: &mut Draw) -> &str {
        let total = *self.cumulative.last().expect("words");
        let at = draw.next(1 << 40) as f64 / (1u64 << 40) as f64 * total;
        let i = self.cumulative.partition_point(|c| *c < at);
        &self.words[i.min(self.words.len() - 1)]
    }

    /// A word drawn evenly from ranks `from..to` (what people search for: not "the").
    fn ranked(&self, draw: &mut Draw, from: usize, to: usize) -> &str {
        let to = to.min(self.words.len());
        &self.words[from + draw.next((to - from) as u64) as usize]
    }
}

/// Document `n`'s title and text, the same every time for the same seed.
fn document_text(words: &Words, seed: u64, n: u64, min: usize, max: usize) -> (String, String) {
    let mut draw = Draw(seed ^ (n + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    draw.next(2);
    let title_words = 2 + draw.next(4) as usize;
    let mut title = String::new();
    for i in 0..title_words {
        let word = words.ranked(&mut draw, 100, 10_000);
        if i == 0 {
            title.push_str(&capitalised(word));
        } else {
            title.push(' ');
            title.push_str(word);
        }
    }
    let size = min + draw.next((max - min).max(1) as u64) as usize;
    let mut text = String::with_capacity(size + 200);
    while text.len() < size {
        // A paragraph of 3–6 sentences of 6–20 words.
        if !text.is_empty() {
            text.push('\n');
        }
        for s in 0..3 + draw.next(4) {
            if s > 0 {
                text.push(' ');
            }
            let length = 6 + draw.next(15);
            for w in 0..length {
                let word = words.weighted(&mut draw);
                if w == 0 {
                    text.push_str(&capitalised(word));
                } else {
                    text.push(' ');
                    text.push_str(word);
                }
            }
            text.push('.');
        }
    }
    (title, text)
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The text as a TipTap editor stores it: paragraphs of an XML fragment.
fn yjs_update(text: &str) -> Vec<u8> {
    let doc = yrs::Doc::with_client_id(1);
    {
        let mut txn = doc.transact_mut();
        let fragment = txn.get_or_insert_xml_fragment("default");
        for (i, line) in text.split('\n').enumerate() {
            let paragraph = fragment.insert(
                &mut txn,
                i as u32,
                yrs::XmlElementPrelim::empty("paragraph"),
            );
            paragraph.insert(&mut txn, 0, yrs::XmlTextPrelim::new(line));
        }
    }
    let update = doc
        .transact()
        .encode_state_as_update_v1(&yrs::StateVector::default());
    update
}

fn new_event<E: EventCodec>(event: E) -> NewEvent {
    NewEvent {
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        payload: event.encode(),
    }
}

/// Options of the corpus.
pub(crate) struct Corpus<'a> {
    pub(crate) words: &'a Path,
    pub(crate) workspaces: usize,
    pub(crate) documents: usize,
    pub(crate) min_bytes: usize,
    pub(crate) max_bytes: usize,
    pub(crate) seed: u64,
}

pub(crate) async fn seed(database_url: &str, corpus: Corpus<'_>) -> Value {
    let words = Words::load(corpus.words);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(database_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {database_url}: {e}"));
    collab_migrations::run(&pool).await.expect("migrations");
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_corpus (document_id uuid PRIMARY KEY, \
         workspace_id uuid NOT NULL, title text NOT NULL, body text NOT NULL, \
         updated_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await
    .expect("the baseline table");
    let store = EventStore::new(pool.clone());
    let started = Instant::now();
    let owner = UserId::parse("owner").expect("a user id");
    let reader = UserId::parse(READER).expect("a user id");
    let mut workspaces = vec![];
    for w in 0..corpus.workspaces {
        let workspace = WorkspaceId::new();
        let context = AppendContext {
            workspace_id: workspace,
            actor: Actor::User(owner.clone()),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        };
        store
            .append_batch(vec![BatchAppend {
                stream: StreamId::new(StreamCategory::Workspace, workspace.as_uuid()),
                expected: ExpectedVersion::Any,
                context,
                events: vec![
                    new_event(WorkspaceEvent::WorkspaceCreated(WorkspaceCreated {
                        workspace_id: workspace,
                        name: format!("Team {w}"),
                        owner: owner.clone(),
                    })),
                    new_event(WorkspaceEvent::MemberAdded(MemberAdded {
                        user_id: owner.clone(),
                        role: WorkspaceRole::Owner,
                    })),
                    new_event(WorkspaceEvent::MemberAdded(MemberAdded {
                        user_id: reader.clone(),
                        role: WorkspaceRole::Member,
                    })),
                ],
            }])
            .await
            .expect("append");
        workspaces.push(workspace);
    }
    let (mut bytes, mut events) = (0usize, 0usize);
    const BATCH: usize = 200;
    for start in (0..corpus.documents).step_by(BATCH) {
        let mut requests = vec![];
        let mut rows: (Vec<Uuid>, Vec<Uuid>, Vec<String>, Vec<String>) = Default::default();
        for n in start..(start + BATCH).min(corpus.documents) {
            let workspace = workspaces[n % workspaces.len()];
            let document = DocumentId::new();
            let (title, text) = document_text(
                &words,
                corpus.seed,
                n as u64,
                corpus.min_bytes,
                corpus.max_bytes,
            );
            bytes += text.len();
            let context = AppendContext {
                workspace_id: workspace,
                actor: Actor::User(owner.clone()),
                correlation_id: Uuid::now_v7(),
                causation_id: None,
            };
            requests.push(BatchAppend {
                stream: StreamId::new(StreamCategory::Document, document.as_uuid()),
                expected: ExpectedVersion::Any,
                context: context.clone(),
                events: vec![new_event(DocumentEvent::DocumentCreated(DocumentCreated {
                    document_id: document,
                    workspace_id: workspace,
                    title: title.clone(),
                    folder: format!("/area-{}", n % 10),
                    created_by: owner.clone(),
                }))],
            });
            requests.push(BatchAppend {
                stream: StreamId::new(StreamCategory::Content, document.as_uuid()),
                expected: ExpectedVersion::Any,
                context,
                events: vec![new_event(ContentEvent::DocumentEdited(DocumentEdited {
                    client_id: 1,
                    update: yjs_update(&text),
                    origin: EditOrigin::Http,
                }))],
            });
            events += 2;
            rows.0.push(document.as_uuid());
            rows.1.push(workspace.as_uuid());
            rows.2.push(title);
            rows.3.push(text);
        }
        store.append_batch(requests).await.expect("append");
        sqlx::query(
            "INSERT INTO bench_corpus (document_id, workspace_id, title, body) \
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])",
        )
        .bind(&rows.0)
        .bind(&rows.1)
        .bind(&rows.2)
        .bind(&rows.3)
        .execute(&pool)
        .await
        .expect("the baseline rows");
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({
        "scenario": "search-seed",
        "workspaces": corpus.workspaces,
        "documents": corpus.documents,
        "text_bytes": bytes,
        "events": events + 3 * corpus.workspaces,
        "seconds": seconds,
        "first_workspace": workspaces.first().map(|w| w.to_string()),
    })
}

/// The kinds of queries, in the mix each client cycles through.
const KINDS: [&str; 4] = ["one_word", "two_words", "phrase", "prefix"];

/// A query of `kind`: words people search for (ranks 50–5,000, which includes words found
/// in a fifth of the documents and rarer ones), phrases taken from a document's own text,
/// prefixes of 3–4 letters of a word being typed.
fn query(words: &Words, corpus: &Corpus<'_>, kind: &str, draw: &mut Draw) -> (String, Vec<String>) {
    match kind {
        "one_word" => {
            let w = words.ranked(draw, 50, 5000).to_owned();
            (format!("{w} "), vec![w])
        }
        "two_words" => {
            let a = words.ranked(draw, 50, 5000).to_owned();
            let b = words.ranked(draw, 50, 5000).to_owned();
            (format!("{a} {b} "), vec![a, b])
        }
        "phrase" => {
            let n = draw.next(corpus.documents as u64);
            let (_, text) =
                document_text(words, corpus.seed, n, corpus.min_bytes, corpus.max_bytes);
            let tokens: Vec<&str> = text
                .split(|c: char| !c.is_alphanumeric() && c != '\'')
                .filter(|t| !t.is_empty())
                .collect();
            let length = 2 + draw.next(2) as usize;
            let at = draw.next((tokens.len() - length) as u64) as usize;
            let phrase = tokens[at..at + length].join(" ").to_lowercase();
            (format!("\"{phrase}\""), vec![phrase])
        }
        _ => loop {
            let w = words.ranked(draw, 50, 5000);
            if w.chars().count() >= 5 {
                let prefix: String = w.chars().take(3 + draw.next(2) as usize).collect();
                break (prefix.clone(), vec![prefix]);
            }
        },
    }
}

/// How to run the queries.
pub(crate) enum Target {
    /// `GET /v1/search` as the reader; optionally probing freshness on a document.
    Http {
        url: String,
        token: String,
        fresh_document: Option<String>,
    },
    /// `ILIKE` scans of `bench_corpus`, newest first (no ranking: the naive way).
    Ilike { database_url: String },
}

fn summary(mut times: Vec<f64>) -> Value {
    times.sort_by(f64::total_cmp);
    let ms = |p: f64| (super::percentile(&times, p) * 100.0).round() / 100.0;
    json!({"count": times.len(), "p50_ms": ms(50.0), "p90_ms": ms(90.0), "p99_ms": ms(99.0), "max_ms": ms(100.0)})
}

pub(crate) async fn load(
    target: Target,
    corpus: Corpus<'_>,
    clients: usize,
    seconds: u64,
    max_queries: Option<usize>,
) -> Value {
    let words = Arc::new(Words::load(corpus.words));
    let times: Arc<Mutex<BTreeMap<&'static str, Vec<f64>>>> = Arc::default();
    let results: Arc<Mutex<Vec<u64>>> = Arc::default();
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTP client builds");
    let pool = match &target {
        Target::Ilike { database_url } => Some(
            PgPoolOptions::new()
                .max_connections(clients as u32)
                .connect(database_url)
                .await
                .expect("the database"),
        ),
        Target::Http { .. } => None,
    };
    let corpus = Arc::new((
        corpus.words.to_path_buf(),
        corpus.workspaces,
        corpus.documents,
        corpus.min_bytes,
        corpus.max_bytes,
        corpus.seed,
    ));
    let target = Arc::new(target);
    let started = Instant::now();
    let mut tasks = vec![];
    for client in 0..clients {
        let (words, times, results, errors, issued) = (
            words.clone(),
            times.clone(),
            results.clone(),
            errors.clone(),
            issued.clone(),
        );
        let (http, pool, target, corpus) =
            (http.clone(), pool.clone(), target.clone(), corpus.clone());
        tasks.push(tokio::spawn(async move {
            let corpus = Corpus {
                words: &corpus.0,
                workspaces: corpus.1,
                documents: corpus.2,
                min_bytes: corpus.3,
                max_bytes: corpus.4,
                seed: corpus.5,
            };
            let mut draw = Draw(0x5eed + client as u64 * 7919);
            let mut i = client;
            while Instant::now() < deadline {
                if max_queries.is_some_and(|max| {
                    issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= max
                }) {
                    break;
                }
                let kind = KINDS[i % KINDS.len()];
                i += 1;
                let (q, terms) = query(&words, &corpus, kind, &mut draw);
                let at = Instant::now();
                let found = match &*target {
                    Target::Http { url, token, .. } => {
                        let response = http
                            .get(format!("{url}/v1/search"))
                            .query(&[("q", q.as_str()), ("limit", "20")])
                            .bearer_auth(token)
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status().is_success() => r
                                .json::<Value>()
                                .await
                                .ok()
                                .and_then(|b| b["total"].as_u64()),
                            _ => None,
                        }
                    }
                    Target::Ilike { .. } => {
                        ilike(pool.as_ref().expect("a pool"), kind, &terms).await
                    }
                };
                let elapsed = at.elapsed().as_secs_f64() * 1000.0;
                match found {
                    Some(found) => {
                        times.lock().unwrap().entry(kind).or_default().push(elapsed);
                        results.lock().unwrap().push(found);
                    }
                    None => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let fresh = match &*target {
        Target::Http {
            url,
            token,
            fresh_document: Some(document),
        } => Some(freshness(&http, url, token, document, deadline).await),
        _ => None,
    };
    for task in tasks {
        task.await.expect("a client");
    }
    let wall = started.elapsed().as_secs_f64();
    let times = Arc::try_unwrap(times)
        .expect("clients done")
        .into_inner()
        .unwrap();
    let all: Vec<f64> = times.values().flatten().copied().collect();
    let count = all.len();
    let mut results = results.lock().unwrap().clone();
    results.sort_unstable();
    json!({
        "scenario": "search-load",
        "target": match &*target { Target::Http { .. } => "collab", Target::Ilike { .. } => "ilike" },
        "clients": clients,
        "queries": count,
        "queries_per_second": count as f64 / wall,
        "errors": errors.load(std::sync::atomic::Ordering::Relaxed),
        "all": summary(all),
        "by_kind": times.into_iter().map(|(k, v)| (k.to_owned(), summary(v))).collect::<serde_json::Map<_, _>>(),
        "median_results": results.get(results.len() / 2),
        "edit_to_findable": fresh,
    })
}

/// The naive way: a scan of every row's text, newest first.
async fn ilike(pool: &sqlx::PgPool, kind: &str, terms: &[String]) -> Option<u64> {
    let pattern = |t: &str| format!("%{}%", t.replace('%', "\\%").replace('_', "\\_"));
    let rows: Result<Vec<(Uuid,)>, _> = match kind {
        "two_words" => {
            sqlx::query_as(
                "SELECT document_id FROM bench_corpus \
                 WHERE (title ILIKE $1 OR body ILIKE $1) AND (title ILIKE $2 OR body ILIKE $2) \
                 ORDER BY updated_at DESC LIMIT 20",
            )
            .bind(pattern(&terms[0]))
            .bind(pattern(&terms[1]))
            .fetch_all(pool)
            .await
        }
        _ => {
            sqlx::query_as(
                "SELECT document_id FROM bench_corpus WHERE title ILIKE $1 OR body ILIKE $1 \
                 ORDER BY updated_at DESC LIMIT 20",
            )
            .bind(pattern(&terms[0]))
            .fetch_all(pool)
            .await
        }
    };
    rows.ok().map(|r| r.len() as u64)
}

/// Until `deadline`, once a second: append a new word to `document` over HTTP and time how
/// long until a search finds it.
async fn freshness(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    document: &str,
    deadline: Instant,
) -> Value {
    let mut times = vec![];
    let mut missed = 0;
    let mut n = 0u32;
    let doc = yrs::Doc::with_client_id(7);
    let fragment = doc.get_or_insert_xml_fragment("probe");
    while Instant::now() + Duration::from_secs(3) < deadline {
        n += 1;
        let word = format!("zqxprobe{n}x{}", Uuid::new_v4().simple());
        let update = {
            let mut txn = doc.transact_mut();
            let end = fragment.len(&txn);
            let paragraph =
                fragment.insert(&mut txn, end, yrs::XmlElementPrelim::empty("paragraph"));
            paragraph.insert(&mut txn, 0, yrs::XmlTextPrelim::new(word.as_str()));
            txn.encode_update_v1()
        };
        let sent = http
            .post(format!("{url}/v1/documents/{document}/updates"))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(update)
            .send()
            .await;
        if !sent.is_ok_and(|r| r.status().is_success()) {
            missed += 1;
            continue;
        }
        let committed = Instant::now();
        let mut found = false;
        while committed.elapsed() < Duration::from_secs(10) {
            let response = http
                .get(format!("{url}/v1/search"))
                .query(&[("q", format!("{word} ").as_str())])
                .bearer_auth(token)
                .send()
                .await;
            if let Ok(r) = response {
                if let Ok(body) = r.json::<Value>().await {
                    if body["total"].as_u64().unwrap_or(0) > 0 {
                        found = true;
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if found {
            times.push(committed.elapsed().as_secs_f64() * 1000.0);
        } else {
            missed += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut value = summary(times);
    value["missed"] = json!(missed);
    value
}
