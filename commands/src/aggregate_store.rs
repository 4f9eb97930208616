//! Runs cqrs-es aggregates against our event store: load (snapshot + newer events),
//! `handle`, append with optimistic concurrency, snapshot every N versions.
//!
//! We do not use `cqrs_es::CqrsFramework`/`EventStore`: its envelopes carry no global
//! position, event id or timestamp, its commit returns nothing a command response could
//! quote, and it dispatches queries in-process after commit (lost on a crash). The
//! aggregates themselves are plain cqrs-es aggregates and are tested with its
//! `TestFramework`. See ARCHITECTURE.md, "Why not CqrsFramework".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use collab_domain::{Actor, EventCodec, EventSourced, StreamId, WorkspaceId};
use cqrs_es::event_sink::EventSink;
use sqlx::PgPool;
use tracing::{instrument, warn};
use uuid::Uuid;

use collab_store::{AppendContext, EventStore, ExpectedVersion, NewEvent, StoreError};

/// Who issues a command and under which correlation.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
}

/// The outcome of a command: where its last event landed (or, for a command that
/// changed nothing, where the stream already was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub position: i64,
    pub version: i64,
    pub events: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Domain(E),
    /// The stream moved under us (or is not at the version the client named).
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    Conflict {
        stream: String,
        expected: i64,
        actual: i64,
    },
    #[error(transparent)]
    Store(StoreError),
}

impl<E: std::error::Error> From<StoreError> for CommandError<E> {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => CommandError::Conflict {
                stream,
                expected: match expected {
                    ExpectedVersion::Exact(v) => v,
                    _ => 0,
                },
                actual,
            },
            other => CommandError::Store(other),
        }
    }
}

/// An aggregate rebuilt from its stream.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub aggregate: A,
    pub version: i64,
    /// Global position of the stream's newest event (0 if none).
    pub position: i64,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct AggregateStore {
    events: EventStore,
    snapshot_every: i64,
    loads: Arc<LoadCounts>,
}

/// How many times each kind of aggregate was loaded by this store (and its clones): what
/// shows that a command loads each aggregate once. Also `collab_aggregate_loads_total`.
#[derive(Debug, Default)]
pub struct LoadCounts {
    workspace: AtomicU64,
    document: AtomicU64,
    other: AtomicU64,
}

impl LoadCounts {
    fn counter(&self, aggregate_type: &str) -> &AtomicU64 {
        match aggregate_type {
            "workspace" => &self.workspace,
            "document" => &self.document,
            _ => &self.other,
        }
    }

    /// Loads so far of the aggregate type (`workspace`, `document`).
    pub fn of(&self, aggregate_type: &str) -> u64 {
        self.counter(aggregate_type).load(Ordering::Relaxed)
    }
}

/// Internal retries when a concurrent command moved the stream and the client did not
/// pin a version: the command is decided again on fresh state.
const CONFLICT_RETRIES: usize = 10;

impl AggregateStore {
    pub fn new(events: EventStore, snapshot_every: i64) -> Self {
        Self {
            events,
            snapshot_every: snapshot_every.max(1),
            loads: Arc::default(),
        }
    }

    pub fn loads(&self) -> &LoadCounts {
        &self.loads
    }

    pub fn events(&self) -> &EventStore {
        &self.events
    }

    fn pool(&self) -> &PgPool {
        self.events.pool()
    }

    #[instrument(skip(self), fields(aggregate = A::TYPE))]
    pub async fn load<A: EventSourced>(&self, id: Uuid) -> Result<Loaded<A>, StoreError> {
        self.loads.counter(A::TYPE).fetch_add(1, Ordering::Relaxed);
        metrics::counter!("collab_aggregate_loads_total", "aggregate" => A::TYPE).increment(1);
        let stream = StreamId::new(A::CATEGORY, id);
        let snapshot: Option<(i64, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT stream_version, position, state FROM aggregate_snapshots \
             WHERE stream_id = $1 AND snapshot_version = $2",
        )
        .bind(stream.to_string())
        .bind(A::SNAPSHOT_VERSION)
        .fetch_optional(self.pool())
        .await?;
        let (mut aggregate, mut version, mut position) = match snapshot {
            Some((version, position, state)) => match postcard::from_bytes::<A>(&state) {
                Ok(aggregate) => (aggregate, version, position),
                Err(error) => {
                    // A snapshot is only an optimisation: fall back to the full stream.
                    warn!(stream.id = %stream, %error, "ignoring unreadable snapshot");
                    (A::default(), 0, 0)
                }
            },
            None => (A::default(), 0, 0),
        };
        for recorded in self.events.read_stream(stream, version).await? {
            let event = A::Event::decode(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.payload,
            )
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            aggregate.apply(event);
            version = recorded.stream_version;
            position = recorded.position;
        }
        Ok(Loaded {
            aggregate,
            version,
            position,
        })
    }

    /// Decides `command` on the aggregate's current state and appends what it decided.
    /// `expected_version`, when given (an `If-Match` from the client), must equal the
    /// stream's version or the command is refused with a conflict.
    pub async fn execute<A>(
        &self,
        id: Uuid,
        command: A::Command,
        meta: &CommandMeta,
        expected_version: Option<i64>,
    ) -> Result<Committed, CommandError<A::Error>>
    where
        A: EventSourced<Services = ()> + Clone,
        A::Command: Clone,
    {
        self.execute_with::<A, CommandError<A::Error>, _, _>(id, meta, expected_version, |_| {
            std::future::ready(Ok(vec![command.clone()]))
        })
        .await
    }

    /// Like [`AggregateStore::execute`], with the commands made from the aggregate as
    /// loaded: `command` sees the state the decision is made on (and may load what else it
    /// needs, or refuse with its own error), so facts such as the caller's role are taken
    /// from the same load, not from one of their own. Several commands are decided in turn
    /// (each on the state the previous one produced) and appended together, or not at all.
    /// Called again on fresh state when a concurrent command moved the stream.
    #[instrument(skip(self, meta, command), fields(aggregate = A::TYPE, aggregate.id = %id))]
    pub async fn execute_with<A, E, F, Fut>(
        &self,
        id: Uuid,
        meta: &CommandMeta,
        expected_version: Option<i64>,
        mut command: F,
    ) -> Result<Committed, E>
    where
        A: EventSourced<Services = ()> + Clone,
        E: From<CommandError<A::Error>>,
        F: FnMut(A) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<A::Command>, E>>,
    {
        let stream = StreamId::new(A::CATEGORY, id);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded = self
                .load::<A>(id)
                .await
                .map_err(|e| E::from(CommandError::from(e)))?;
            let mut aggregate = loaded.aggregate;
            let commands = command(aggregate.clone()).await?;
            let sink = EventSink::<A>::default();
            // Decide first: a caller who may not act (or see) gets the domain's answer,
            // not a version number. The sink applies each event to the aggregate, so a
            // second command is decided on what the first produced.
            for decided in commands {
                aggregate
                    .handle(decided, &(), &sink)
                    .await
                    .map_err(|e| E::from(CommandError::Domain(e)))?;
            }
            if let Some(expected) = expected_version {
                if expected != loaded.version {
                    return Err(E::from(CommandError::Conflict {
                        stream: stream.to_string(),
                        expected,
                        actual: loaded.version,
                    }));
                }
            }
            let decided = sink.collect().await;
            if decided.is_empty() {
                return Ok(Committed {
                    position: loaded.position,
                    version: loaded.version,
                    events: 0,
                });
            }
            let workspace_id: WorkspaceId = aggregate
                .workspace_id()
                .expect("an aggregate that emitted events knows its workspace");
            let context = AppendContext {
                workspace_id,
                actor: meta.actor.clone(),
                correlation_id: meta.correlation_id,
                causation_id: meta.causation_id,
            };
            let new_events = decided
                .iter()
                .map(|event| NewEvent {
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    payload: event.encode(),
                })
                .collect();
            match self
                .events
                .append(
                    stream,
                    ExpectedVersion::Exact(loaded.version),
                    &context,
                    new_events,
                )
                .await
            {
                Ok(appended) => {
                    let committed = Committed {
                        position: appended.last_position(),
                        version: appended.stream_version(),
                        events: appended.events.len(),
                    };
                    if committed.version / self.snapshot_every
                        > loaded.version / self.snapshot_every
                    {
                        self.save_snapshot(&stream, &aggregate, committed).await;
                    }
                    return Ok(committed);
                }
                Err(StoreError::Conflict { .. })
                    if expected_version.is_none() && attempt < CONFLICT_RETRIES =>
                {
                    // Jittered, growing pause so racing writers stop colliding.
                    let jitter = u64::from(Uuid::new_v4().as_bytes()[0] % 4);
                    tokio::time::sleep(std::time::Duration::from_millis(attempt as u64 + jitter))
                        .await;
                    continue;
                }
                Err(error) => return Err(E::from(CommandError::from(error))),
            }
        }
    }

    /// Best effort: a failed snapshot only means the next load reads more events.
    async fn save_snapshot<A: EventSourced>(
        &self,
        stream: &StreamId,
        aggregate: &A,
        at: Committed,
    ) {
        let state = match postcard::to_allocvec(aggregate) {
            Ok(state) => state,
            Err(error) => {
                warn!(stream.id = %stream, %error, "cannot encode snapshot");
                return;
            }
        };
        let saved = sqlx::query(
            "INSERT INTO aggregate_snapshots (stream_id, snapshot_version, stream_version, position, state) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (stream_id) DO UPDATE SET snapshot_version = EXCLUDED.snapshot_version, \
               stream_version = EXCLUDED.stream_version, position = EXCLUDED.position, \
               state = EXCLUDED.state, taken_at = now() \
             WHERE aggregate_snapshots.stream_version < EXCLUDED.stream_version",
        )
        .bind(stream.to_string())
        .bind(A::SNAPSHOT_VERSION)
        .bind(at.version)
        .bind(at.position)
        .bind(state)
        .execute(self.pool())
        .await;
        if let Err(error) = saved {
            warn!(stream.id = %stream, %error, "cannot save snapshot");
        }
    }
}
