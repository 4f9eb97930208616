//! `collab events export|tail` (through the HTTP API, so they work against a remote
//! server) and `collab audit verify|keygen` (against the database, or offline on an
//! export file).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use collab_domain::audit::{self, ChainVerifier, Checkpoint, Report};
use collab_domain::replay::EventLine;
use collab_domain::{DomainEvent, WorkspaceId};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub(crate) struct Remote {
    /// Base URL of the server's HTTP API.
    #[arg(long, env = "COLLAB_URL", default_value = "http://127.0.0.1:7700")]
    url: String,
    /// A bearer token (JWT) or a service account's API key (`cfk_…`, scope `events:read`).
    #[arg(long, env = "COLLAB_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Args)]
pub(crate) struct Filters {
    /// The workspace whose events to read.
    #[arg(long)]
    workspace: WorkspaceId,
    /// Start after this global position (0: from the beginning).
    #[arg(long, default_value_t = 0)]
    after: i64,
    /// Only these event types (repeatable).
    #[arg(long = "type")]
    types: Vec<String>,
    /// Only these stream categories (workspace, document, content, audit; repeatable).
    #[arg(long = "category")]
    categories: Vec<String>,
    /// Only this stream (`document-<uuid>`).
    #[arg(long)]
    stream: Option<String>,
    /// Only this actor (`user:<id>` or `service:<name>`).
    #[arg(long)]
    actor: Option<String>,
}

impl Filters {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("after", self.after.to_string())];
        query.extend(self.types.iter().map(|t| ("type", t.clone())));
        query.extend(self.categories.iter().map(|c| ("category", c.clone())));
        query.extend(self.stream.iter().map(|s| ("stream", s.clone())));
        query.extend(self.actor.iter().map(|a| ("actor", a.clone())));
        query
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Ndjson,
    Csv,
}

#[derive(Subcommand)]
pub(crate) enum EventsCommand {
    /// Export a workspace's events (in position order) to a file or standard output.
    Export {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        filters: Filters,
        #[arg(long, value_enum, default_value = "ndjson")]
        format: Format,
        /// Output file (`-`: standard output). A progress bar shows when writing a file.
        #[arg(long, default_value = "-")]
        output: PathBuf,
    },
    /// Follow a workspace's events live (NDJSON on standard output); reconnects and
    /// resumes after the last event it printed.
    Tail {
        #[command(flatten)]
        remote: Remote,
        #[command(flatten)]
        filters: Filters,
    },
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Verify hash chains, positions and signed checkpoints: of the database (one
    /// workspace or the whole log), or of an export file with no server and no database.
    Verify {
        /// Only this workspace (database verification).
        #[arg(long, conflicts_with = "file")]
        workspace: Option<WorkspaceId>,
        /// An export (`GET /v1/workspaces/{ws}/audit/export`) to verify offline.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The public key checkpoints and the export's seal must be signed with (base64).
        /// Required with --file: without it a file proves nothing about its origin.
        #[arg(long, env = "COLLAB_AUDIT_PUBLIC_KEY")]
        public_key: Option<String>,
    },
    /// Print a new Ed25519 key pair for COLLAB_AUDIT_SIGNING_KEY.
    Keygen,
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?)
}

async fn get(
    remote: &Remote,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<reqwest::Response> {
    let url = format!("{}{path}", remote.url.trim_end_matches('/'));
    let response = client()?
        .get(&url)
        .bearer_auth(&remote.token)
        .query(query)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        bail!("{url} answered {status}: {body}");
    }
    Ok(response)
}

pub(crate) async fn run_events(command: &EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Export {
            remote,
            filters,
            format,
            output,
        } => export(remote, filters, *format, output).await,
        EventsCommand::Tail { remote, filters } => tail(remote, filters).await,
    }
}

const CSV_HEADER: [&str; 14] = [
    "position",
    "event_id",
    "stream_id",
    "stream_version",
    "workspace_id",
    "type",
    "schema_version",
    "actor",
    "correlation_id",
    "causation_id",
    "recorded_at",
    "prev_hash",
    "hash",
    "data",
];

async fn export(
    remote: &Remote,
    filters: &Filters,
    format: Format,
    output: &Path,
) -> anyhow::Result<()> {
    let path = format!("/v1/workspaces/{}/events", filters.workspace);
    let response = get(remote, &path, &filters.query()).await?;
    let head: i64 = response
        .headers()
        .get("x-collab-head")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(filters.after);
    let to_file = output.as_os_str() != "-";
    let sink: Box<dyn Write> = if to_file {
        Box::new(
            std::fs::File::create(output)
                .with_context(|| format!("cannot create {}", output.display()))?,
        )
    } else {
        Box::new(std::io::stdout().lock())
    };
    enum Out {
        Ndjson(std::io::BufWriter<Box<dyn Write>>),
        Csv(Box<csv::Writer<Box<dyn Write>>>),
    }
    let mut out = match format {
        Format::Ndjson => Out::Ndjson(std::io::BufWriter::new(sink)),
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(sink);
            writer.write_record(CSV_HEADER)?;
            Out::Csv(Box::new(writer))
        }
    };
    let progress = if to_file {
        let bar = ProgressBar::new((head - filters.after).max(0) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {percent}% of positions · {msg} · {per_sec} · ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut events: u64 = 0;
    let mut pending = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        pending.extend_from_slice(&chunk.context(
            "the server ended the export early; run again with --after the last position written",
        )?);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + end];
            start += end + 1;
            events += 1;
            let parsed: EventLine =
                serde_json::from_slice(line).context("a line is not an event")?;
            match &mut out {
                Out::Ndjson(sink) => {
                    sink.write_all(line)?;
                    sink.write_all(b"\n")?;
                }
                Out::Csv(writer) => writer.write_record(csv_record(&parsed))?,
            }
            progress.set_position((parsed.position - filters.after).max(0) as u64);
            progress.set_message(format!("{events} events"));
        }
        pending.drain(..start);
    }
    match &mut out {
        Out::Ndjson(sink) => sink.flush()?,
        Out::Csv(writer) => writer.flush()?,
    }
    progress.finish_and_clear();
    if to_file {
        eprintln!(
            "exported {events} events up to position {head} to {} in {:.1} s",
            output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn csv_record(line: &EventLine) -> [String; 14] {
    [
        line.position.to_string(),
        line.event_id.to_string(),
        line.stream_id.clone(),
        line.stream_version.to_string(),
        line.workspace_id.to_string(),
        line.event_type.clone(),
        line.schema_version.to_string(),
        line.actor.clone(),
        line.correlation_id.to_string(),
        line.causation_id.map(|c| c.to_string()).unwrap_or_default(),
        line.recorded_at.clone(),
        line.prev_hash.clone().unwrap_or_default(),
        line.hash.clone(),
        line.data
            .as_ref()
            .map(|d| d.to_string())
            .or_else(|| line.payload.clone())
            .unwrap_or_default(),
    ]
}

async fn tail(remote: &Remote, filters: &Filters) -> anyhow::Result<()> {
    let path = format!("/v1/workspaces/{}/events/live", filters.workspace);
    let mut after = filters.after;
    let mut stdout = std::io::stdout();
    loop {
        let mut query = filters.query();
        query[0] = ("after", after.to_string());
        let response = match get(remote, &path, &query).await {
            Ok(response) => response,
            // Refused (bad token, no access, bad filter): retrying will not help.
            Err(error) if error.to_string().contains(" answered 4") => return Err(error),
            Err(error) => {
                eprintln!("{error:#}; retrying in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            match event.event.as_str() {
                "message" | "" => {
                    writeln!(stdout, "{}", event.data)?;
                    stdout.flush()?;
                    if let Ok(position) = event.id.parse() {
                        after = position;
                    }
                }
                "lagged" => eprintln!("fell behind; resuming after position {after}"),
                other => eprintln!("{other}: {}", event.data),
            }
        }
        eprintln!("stream ended; reconnecting after position {after}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub(crate) async fn run_audit(
    command: &AuditCommand,
    settings: impl FnOnce() -> anyhow::Result<collab_api::Settings>,
) -> anyhow::Result<Report> {
    match command {
        AuditCommand::Keygen => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            println!("COLLAB_AUDIT_SIGNING_KEY={}", audit::encode_key(&seed));
            println!(
                "COLLAB_AUDIT_PUBLIC_KEY={}",
                audit::encode_key(&key.verifying_key().to_bytes())
            );
            Ok(Report {
                streams: 0,
                events: 0,
                checkpoints: 0,
                ok: true,
                first_break: None,
            })
        }
        AuditCommand::Verify {
            workspace,
            file,
            public_key,
        } => {
            let trusted = public_key
                .as_deref()
                .map(audit::parse_public_key)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--public-key {}", e.reason))?;
            let started = Instant::now();
            let report = match file {
                Some(file) => {
                    let Some(trusted) = trusted else {
                        bail!("--public-key is required with --file: the export's seal must be checked against a key you trust");
                    };
                    verify_file(file, trusted)?
                }
                None => {
                    if trusted.is_none() {
                        eprintln!(
                            "note: no --public-key: each checkpoint is checked against the key it \
                             names, which proves it unaltered, not who signed it"
                        );
                    }
                    let pool = collab_api::app::connect_postgres(&settings()?).await?;
                    collab_projections::verify::verify(&pool, *workspace, trusted).await?
                }
            };
            eprintln!("verified in {:.2} s", started.elapsed().as_secs_f64());
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(report)
        }
    }
}

/// The last line of an export: `{"seal": …, "events_to": …}`, or `{"seal": null,
/// "reason": …}` from a server without a signing key.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SealLine {
    seal: Option<Checkpoint>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    events_to: Option<i64>,
}

/// Verifies an export offline: two passes over the file (checkpoints first, then the
/// events in order), then its seal.
pub(crate) fn verify_file(
    path: &Path,
    trusted: ed25519_dalek::VerifyingKey,
) -> anyhow::Result<Report> {
    let open = || -> anyhow::Result<_> {
        Ok(BufReader::new(std::fs::File::open(path).with_context(
            || format!("cannot open {}", path.display()),
        )?))
    };
    // First pass: the checkpoints, and the seal (the last line).
    let mut checkpoints = Vec::new();
    let mut last_line = String::new();
    let mut count = 0usize;
    for line in open()?.lines() {
        let line = line?;
        count += 1;
        if let Ok(event) = serde_json::from_str::<EventLine>(&line) {
            if event.event_type == "AuditCheckpointSigned" {
                if let Ok(recorded) = event.to_event() {
                    if let Ok(DomainEvent::Audit(audit::AuditEvent::AuditCheckpointSigned(cp))) =
                        DomainEvent::decode_recorded(&recorded)
                    {
                        checkpoints.push((
                            recorded.position,
                            Checkpoint::from_event(recorded.metadata.workspace_id.as_uuid(), &cp),
                        ));
                    }
                }
            }
        }
        last_line = line;
    }
    let seal = serde_json::from_str::<SealLine>(&last_line).ok();
    // Second pass: every event in order (the seal line, if any, is last).
    let events = if seal.is_some() { count - 1 } else { count };
    let mut verifier = ChainVerifier::new(checkpoints, Some(trusted));
    for (number, line) in open()?.lines().enumerate().take(events) {
        let line = line?;
        let event = serde_json::from_str::<EventLine>(&line)
            .map_err(anyhow::Error::from)
            .and_then(|l| l.to_event().map_err(anyhow::Error::from))
            .with_context(|| format!("line {} is not an exported event", number + 1))?;
        verifier.push(&event);
    }
    let at = verifier.last_position();
    match seal {
        Some(SealLine {
            seal: Some(seal), ..
        }) => Ok(verifier.finish(Some((seal.covers_position.max(at), seal)))),
        other => {
            let reason = match other {
                Some(SealLine {
                    reason: Some(reason),
                    ..
                }) => format!("the export is not sealed: {reason}"),
                _ => {
                    "the export is not sealed: its last line is not a seal (truncated?)".to_owned()
                }
            };
            verifier.report_break(audit::Break {
                stream_id: None,
                stream_version: None,
                position: at,
                reason,
                missing_after: None,
            });
            Ok(verifier.finish(None))
        }
    }
}
