//! A small analytics consumer that reads Candlefish Collab's events straight from NATS
//! JetStream (see docs/consumers.md): an ordered consumer on `<PREFIX>_EVENTS`, filtered
//! by subject, starting after a global position, printing one JSON line per event — the
//! same lines as `GET /v1/workspaces/{ws}/events`.
//!
//! ```text
//! cargo run -p collab-ops --example jetstream_consumer -- \
//!     --nats nats://127.0.0.1:4222 --prefix collab --workspace <uuid> [--after 0] \
//!     [--category content] [--follow]
//! ```
//!
//! Without `--follow` it stops once it has read everything published when it started.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use collab_domain::envelope::events_stream_name;
use collab_domain::replay::{EventLine, PayloadForm};
use collab_domain::WireEnvelope;
use futures::StreamExt;

struct Options {
    nats: String,
    prefix: String,
    workspace: String,
    after: u64,
    category: Option<String>,
    follow: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        nats: "nats://127.0.0.1:4222".into(),
        prefix: "collab".into(),
        workspace: String::new(),
        after: 0,
        category: None,
        follow: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--nats" => options.nats = value()?,
            "--prefix" => options.prefix = value()?,
            "--workspace" => options.workspace = value()?,
            "--after" => options.after = value()?.parse().map_err(|_| "--after is a position")?,
            "--category" => options.category = Some(value()?),
            "--follow" => options.follow = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if options.workspace.is_empty() {
        return Err("--workspace is required".into());
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let options = options().map_err(|e| format!("{e}\nusage: jetstream_consumer --workspace <uuid> [--nats URL] [--prefix P] [--after POSITION] [--category C] [--follow]"))?;
    let client = async_nats::connect(&options.nats).await?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(events_stream_name(&options.prefix)).await?;
    // Where the stream ends now: without --follow, stop there.
    let last = stream.info().await?.state.last_sequence;
    // `<prefix>.events.<workspace>.<category>.<stream uuid>`: one tenant, one kind.
    let filter_subject = format!(
        "{}.events.{}.{}",
        options.prefix,
        options.workspace,
        options
            .category
            .as_deref()
            .map_or(">".to_owned(), |c| format!("{c}.*"))
    );
    // The stream sequence is the global position (the relay publishes every event once,
    // in order), so "after position P" is "from sequence P + 1". The Collab-Position
    // header says it too, for streams that did not start at position 1.
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: options.after + 1,
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let idle = Duration::from_secs(2);
    loop {
        let next = if options.follow {
            messages.next().await
        } else {
            match tokio::time::timeout(idle, messages.next()).await {
                Ok(next) => next,
                Err(_) => break, // nothing more matches the filter
            }
        };
        let Some(message) = next else { break };
        let message = message?;
        let event = WireEnvelope::decode(&message.payload)?;
        if event.position as u64 <= options.after {
            continue;
        }
        println!(
            "{}",
            serde_json::to_string(&EventLine::new(&event, PayloadForm::Json))?
        );
        let info = message.info()?;
        if !options.follow && (info.pending == 0 || info.stream_sequence >= last) {
            break;
        }
    }
    Ok(())
}
