//! Group commit for document edits: whatever arrives while a commit is in flight is
//! appended by the next one, in one statement. After commit a delivery task applies each
//! update to its room (which sends it to the peers — so peers only ever see durable
//! updates) and publishes the batch to the other instances, in commit order, while the
//! next commit is already under way.

use std::collections::HashMap;
use std::sync::Arc;

use collab_domain::catalogue::EventCodec;
use collab_domain::content::{ContentEvent, DocumentEdited, EditOrigin};
use collab_domain::{Actor, DocumentId, StreamCategory, StreamId};
use collab_store::{
    AppendContext, Appended, BatchAppend, EventStore, ExpectedVersion, NewEvent, StoreError,
};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use uuid::Uuid;

use super::fanout::{CommittedUpdate, Fanout};
use super::protocol::close;
use super::room::{Room, SessionId};

/// Most updates committed in one transaction...
const MAX_BATCH: usize = 2000;
/// ...and about this many bytes of them (the batch closes once past it).
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Bytes of updates queued and not yet committed. A sender that would go past it waits
/// (its socket is read no further): memory stays bounded however large the updates are,
/// and nothing is refused or lost. Counted in bytes, not edits: 16,384 queued edits of
/// 64 KiB would be a gigabyte.
const QUEUE_BYTES: usize = 64 << 20;

/// Where an edit landed: (content-stream version, global position).
pub type EditResult = Result<(i64, i64), String>;

pub struct EditRequest {
    pub room: Arc<Room>,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub client_id: u64,
    pub update: Vec<u8>,
    /// Where the edit came from, as the event records it.
    pub origin: EditOrigin,
    /// The live session that sent it (its peers get it, it does not).
    pub sender: Option<SessionId>,
    pub done: Option<oneshot::Sender<EditResult>>,
}

#[derive(Clone)]
pub struct Appender {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
}

/// An edit with the moment it was queued and its share of the queue's byte budget
/// (returned once it is committed).
type Queued = (std::time::Instant, EditRequest, OwnedSemaphorePermit);

impl Appender {
    pub fn start(
        store: EventStore,
        fanout: Fanout,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16_384);
        let handle = tokio::spawn(run(store, fanout, rx, shutdown));
        let budget = Arc::new(Semaphore::new(QUEUE_BYTES));
        (Self { tx, budget }, handle)
    }

    /// Queues an edit; waits only for queue space (backpressure: in edits and in bytes),
    /// not for the commit.
    pub async fn submit(&self, request: EditRequest) -> Result<(), String> {
        let weight = request.update.len().clamp(1, QUEUE_BYTES) as u32;
        let started = std::time::Instant::now();
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(weight)
            .await
            .map_err(|_| "the server is shutting down".to_owned())?;
        let waited = started.elapsed();
        if waited > std::time::Duration::from_millis(1) {
            metrics::histogram!("collab_edit_budget_wait_seconds").record(waited.as_secs_f64());
        }
        self.tx
            .send((std::time::Instant::now(), request, permit))
            .await
            .map_err(|_| "the server is shutting down".to_owned())
    }
}

/// A committed (or failed) batch on its way to the rooms.
type Outcome = (Vec<EditRequest>, Result<Vec<Appended>, StoreError>);

async fn run(
    store: EventStore,
    fanout: Fanout,
    mut rx: mpsc::Receiver<Queued>,
    shutdown: CancellationToken,
) {
    // Rooms get each batch from a task of their own, in commit order, so the next commit
    // starts as soon as Postgres answers instead of after every update was applied.
    let (outcomes, delivered) = mpsc::channel::<Outcome>(2);
    let delivery = tokio::spawn(deliver_all(fanout, delivered));
    loop {
        let first = tokio::select! {
            request = rx.recv() => request,
            // Stop taking new edits, but commit what is queued (below).
            _ = shutdown.cancelled() => break,
        };
        let Some(first) = first else { break };
        let mut bytes = first.1.update.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(request) => {
                    bytes += request.1.update.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        let outcome = persist(&store, batch).await;
        if outcomes.send(outcome).await.is_err() {
            return;
        }
    }
    rx.close();
    let mut rest = vec![];
    while let Ok(request) = rx.try_recv() {
        rest.push(request);
    }
    if !rest.is_empty() {
        info!(edits = rest.len(), "flushing queued edits before shutdown");
        while !rest.is_empty() {
            let chunk: Vec<Queued> = rest.drain(..rest.len().min(MAX_BATCH)).collect();
            let outcome = persist(&store, chunk).await;
            if outcomes.send(outcome).await.is_err() {
                break;
            }
        }
    }
    drop(outcomes);
    let _ = delivery.await;
}

async fn deliver_all(fanout: Fanout, mut outcomes: mpsc::Receiver<Outcome>) {
    while let Some((batch, result)) = outcomes.recv().await {
        let started = std::time::Instant::now();
        deliver(&fanout, batch, result).await;
        metrics::histogram!("collab_edit_delivery_seconds").record(started.elapsed().as_secs_f64());
    }
}

/// Appends the batch in one group commit.
async fn persist(store: &EventStore, queued: Vec<Queued>) -> Outcome {
    let started = std::time::Instant::now();
    if let Some((oldest, _, _)) = queued.first() {
        metrics::histogram!("collab_edit_queue_seconds")
            .record(started.duration_since(*oldest).as_secs_f64());
    }
    // The budget is returned when this batch is done with (committed or failed).
    let (batch, _budget): (Vec<EditRequest>, Vec<OwnedSemaphorePermit>) = queued
        .into_iter()
        .map(|(_, edit, permit)| (edit, permit))
        .unzip();
    let requests = batch
        .iter()
        .map(|edit| {
            let event = ContentEvent::DocumentEdited(DocumentEdited {
                client_id: edit.client_id,
                update: edit.update.clone(),
                origin: edit.origin,
            });
            BatchAppend {
                stream: StreamId::new(StreamCategory::Content, edit.room.document_id.as_uuid()),
                expected: ExpectedVersion::Any,
                context: AppendContext {
                    workspace_id: edit.room.workspace_id,
                    actor: edit.actor.clone(),
                    correlation_id: edit.correlation_id,
                    causation_id: None,
                },
                events: vec![NewEvent {
                    event_type: event.event_type().to_owned(),
                    schema_version: event.schema_version(),
                    payload: event.encode(),
                }],
            }
        })
        .collect();
    let result = store.append_batch(requests).await;
    metrics::histogram!("collab_edit_commit_seconds").record(started.elapsed().as_secs_f64());
    metrics::histogram!("collab_edit_batch_size").record(batch.len() as f64);
    (batch, result)
}

/// Applies a committed batch to its rooms (which send each update to their other
/// sessions) and publishes it to other instances; or, if it failed, closes the senders.
async fn deliver(
    fanout: &Fanout,
    batch: Vec<EditRequest>,
    result: Result<Vec<Appended>, StoreError>,
) {
    match result {
        Ok(appended) => {
            // Fan-out to other instances: one message per document of the batch.
            let mut by_room: HashMap<DocumentId, (Arc<Room>, Vec<CommittedUpdate>)> =
                HashMap::new();
            for (edit, appended) in batch.into_iter().zip(appended) {
                let event = &appended.events[0];
                edit.room.apply_committed(
                    event.stream_version,
                    event.position,
                    &edit.update,
                    edit.sender,
                );
                if let Some(done) = edit.done {
                    let _ = done.send(Ok((event.stream_version, event.position)));
                }
                let committed = CommittedUpdate {
                    version: event.stream_version,
                    position: event.position,
                    update: edit.update,
                };
                by_room
                    .entry(edit.room.document_id)
                    .or_insert_with(|| (edit.room.clone(), vec![]))
                    .1
                    .push(committed);
            }
            for (room, updates) in by_room.into_values() {
                fanout.publish_updates(&room, updates).await;
            }
        }
        Err(failure) => {
            error!(error = %failure, edits = batch.len(), "cannot persist edits");
            for edit in batch {
                // The sender believes it has this update; the reconnect makes it send it again.
                if let Some(session) = edit.sender {
                    edit.room.close_session(
                        session,
                        close::INTERNAL,
                        "could not save your edit; reconnecting",
                    );
                }
                if let Some(done) = edit.done {
                    let _ = done.send(Err(failure.to_string()));
                }
            }
        }
    }
}
