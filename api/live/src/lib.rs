//! Live collaborative editing: y-websocket sessions, document rooms, the one admission
//! path for updates, group commit of edits, fan-out between instances, presence, content
//! snapshots and the blob store they spill into, and closing sockets whose access an
//! event took away. The HTTP routes that expose it live in `collab-api`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use collab_commands::AggregateStore;
use governor::Quota;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub mod admission;
pub mod anchors;
pub mod appender;
pub mod blob_store;
pub mod content;
pub mod export;
pub mod fanout;
pub mod history;
pub mod outbox;
pub mod presence;
pub mod protocol;
pub mod revalidate;
pub mod room;
pub mod rooms;
pub mod session;
pub mod websocket;

use appender::Appender;
use blob_store::BlobStore;
use fanout::Fanout;
use presence::PresenceConfig;
use rooms::{RoomDeps, Rooms};

/// Every JetStream stream a deployment with this subject prefix owns: its events and its
/// presence. What a teardown (a test, a benchmark run) deletes to leave nothing behind.
pub fn jetstream_streams(prefix: &str) -> [String; 2] {
    [
        collab_domain::envelope::events_stream_name(prefix),
        presence::presence_stream_name(prefix),
    ]
}

/// Deletes every stream [`jetstream_streams`] names; a stream already gone is not an error.
pub async fn delete_jetstream_streams(
    js: &async_nats::jetstream::Context,
    prefix: &str,
) -> Result<(), async_nats::jetstream::context::DeleteStreamError> {
    use async_nats::jetstream::context::DeleteStreamErrorKind;
    use async_nats::jetstream::ErrorCode;
    for stream in jetstream_streams(prefix) {
        match js.delete_stream(&stream).await {
            Ok(_) => {}
            Err(e) => match e.kind() {
                DeleteStreamErrorKind::JetStream(error)
                    if error.error_code() == ErrorCode::STREAM_NOT_FOUND => {}
                _ => return Err(e),
            },
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Largest accepted Yjs update (per protocol message).
    pub max_update_bytes: usize,
    /// Largest document (last snapshot + updates since).
    pub max_document_bytes: usize,
    /// A content snapshot every this many updates...
    pub snapshot_every: i64,
    /// ...or after this long without updates.
    pub snapshot_quiet: Duration,
    /// Snapshots up to this size stay in Postgres; larger ones go to the blob store.
    pub snapshot_inline_max_bytes: usize,
    /// Where the local-disk blob store keeps its files (when no S3 bucket is set).
    pub blob_dir: PathBuf,
    /// Awareness states not renewed for this long are removed.
    pub awareness_timeout: Duration,
    /// How long presence changes are kept (Postgres log and JetStream).
    pub presence_retention: Duration,
    /// JetStream replicas of the presence stream (as of the events stream).
    pub stream_replicas: usize,
    /// A socket the server has sent nothing for this long gets an empty awareness frame:
    /// stock clients (y-websocket, Hocuspocus' provider) drop a connection that has been
    /// silent for 30 s, even while the server is still working through their own updates.
    pub keepalive: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            max_update_bytes: 1024 * 1024,
            max_document_bytes: 64 * 1024 * 1024,
            snapshot_every: 1000,
            snapshot_quiet: Duration::from_secs(5),
            snapshot_inline_max_bytes: 256 * 1024,
            blob_dir: PathBuf::from("data/blobs"),
            awareness_timeout: Duration::from_secs(30),
            presence_retention: Duration::from_secs(7 * 24 * 3600),
            stream_replicas: 1,
            keepalive: Duration::from_secs(10),
        }
    }
}

/// Handles on the live-editing machinery: one pointer, cheap to clone. Every socket's task
/// keeps one for its whole life, so it is a pointer to what they share rather than the
/// handles themselves (a few hundred bytes per socket otherwise).
#[derive(Clone)]
pub struct Live(Arc<Machinery>);

impl std::ops::Deref for Live {
    type Target = Machinery;

    fn deref(&self) -> &Machinery {
        &self.0
    }
}

/// What [`Live`] points to.
pub struct Machinery {
    pub rooms: Rooms,
    pub aggregates: AggregateStore,
    pub appender: Appender,
    pub fanout: Fanout,
    pub config: Arc<LiveConfig>,
    pub instance_id: Uuid,
    /// Inbound messages per socket (None: unlimited).
    pub socket_quota: Option<Quota>,
    /// How far access changes were applied to live sockets.
    revocations: Arc<revalidate::Progress>,
}

impl Live {
    /// The log position up to which access-reducing events have been applied to this
    /// instance's sockets. Read it before checking a socket's access: if one after it was
    /// applied by the time the socket is in its room ([`Live::access_reduced_after`]), it
    /// may have passed the socket by, and the socket is checked again.
    pub fn revocations_seen(&self) -> i64 {
        self.revocations.handled()
    }

    /// Whether an access-reducing event after `position` has been applied (or is being
    /// applied) to this instance's sockets. Other events (edits, renames) do not count:
    /// while a document is busy, sockets joining it are not checked twice.
    pub fn access_reduced_after(&self, position: i64) -> bool {
        self.revocations.reduced_after(position)
    }
}

/// Background tasks of the live machinery, stopped (and flushed) by cancelling `stop`.
pub struct LiveTasks {
    pub stop: CancellationToken,
    pub handles: Vec<JoinHandle<()>>,
}

/// What the live machinery works with.
pub struct LiveServices {
    pub aggregates: AggregateStore,
    pub pool: PgPool,
    /// JetStream (presence).
    pub nats: async_nats::Client,
    /// The connection fan-out publishes and subscribes on.
    pub fanout_nats: async_nats::Client,
    /// Where large snapshots go.
    pub blobs: Arc<dyn BlobStore>,
}

impl Live {
    pub fn start(
        services: LiveServices,
        subject_prefix: &str,
        config: LiveConfig,
        socket_quota: Option<Quota>,
    ) -> (Self, LiveTasks) {
        let LiveServices {
            aggregates,
            pool,
            nats,
            fanout_nats,
            blobs,
        } = services;
        let store = aggregates.events().clone();
        let pool_for_revocations = pool.clone();
        let instance_id = Uuid::now_v7();
        let stop = CancellationToken::new();
        let fanout = Fanout::new(fanout_nats, subject_prefix.to_owned(), instance_id);
        let (appender, appender_task) =
            Appender::start(store.clone(), fanout.clone(), stop.clone());
        let (presence, presence_task) = presence::start(
            pool.clone(),
            async_nats::jetstream::new(nats.clone()),
            PresenceConfig {
                subject_prefix: subject_prefix.to_owned(),
                instance_id,
                retention: config.presence_retention,
                replicas: config.stream_replicas,
            },
            stop.clone(),
        );
        let config = Arc::new(config);
        let rooms = Rooms::new(RoomDeps {
            store,
            pool,
            fanout: fanout.clone(),
            presence,
            blobs,
            config: config.clone(),
            instance_id,
        });
        let progress = Arc::new(revalidate::Progress::default());
        let revocations = tokio::spawn(revalidate::follow(
            pool_for_revocations,
            rooms.clone(),
            aggregates.clone(),
            progress.clone(),
            stop.clone(),
        ));
        (
            Self(Arc::new(Machinery {
                rooms,
                aggregates,
                appender,
                fanout,
                config,
                instance_id,
                socket_quota,
                revocations: progress,
            })),
            LiveTasks {
                stop,
                handles: vec![appender_task, presence_task, revocations],
            },
        )
    }
}
