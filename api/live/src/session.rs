//! One WebSocket speaking the y-websocket protocol.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use collab_domain::content::EditOrigin;
use collab_domain::{Actor, DocumentId, UserId};
use tracing::debug;
use uuid::Uuid;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::encoder::Encode;

use super::admission::{admit, Refusal};
use super::appender::EditRequest;
use super::outbox::Outbox;
use super::protocol::{self, close};
use super::room::{Room, SessionEntry, SessionId};
use super::rooms::RoomGuard;
use super::websocket::{Incoming, Outgoing, ReadError, Socket, SocketReader, SocketWriter};
use super::Live;
use collab_commands::access::{LinkKey, ServiceIdentity};

/// Who may connect, decided before the socket joins a room.
pub struct Admission {
    pub user: UserId,
    /// Set when the socket authenticated with a service account's API key.
    pub service: Option<ServiceIdentity>,
    pub document: DocumentId,
    pub workspace: collab_domain::WorkspaceId,
    /// The share link the socket was opened with, if any (re-checked on access changes).
    pub link: Option<LinkKey>,
    /// The token itself is marked read-only.
    pub read_only_token: bool,
    /// From the token (`read_only` claim) or the document role (viewers, commenters).
    pub read_only: bool,
    /// `Live::revocations_seen` read before the access was checked.
    pub checked_at: i64,
}

/// Sends a close frame with `code` and `reason` and ends the socket once the client has
/// answered (or after 2 s).
pub async fn refuse(mut socket: Socket, code: u16, reason: &str) {
    if socket
        .writer
        .send_all(&[Outgoing::Close(code, reason.to_owned())])
        .await
        .is_err()
    {
        return;
    }
    socket.writer.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.reader.drain()).await;
}

/// The most frames one write takes (a burst beyond it goes out in further writes).
const WRITE_BURST: usize = 256;

/// Why a session ends.
enum End {
    /// The client closed or went away: echo its close, if it can still hear it.
    Client,
    /// We close, with this code and reason.
    Refused(u16, String),
    /// The connection broke while writing: nothing more can be sent.
    Broken,
}

struct Session {
    id: SessionId,
    live: Live,
    room: Arc<Room>,
    actor: Actor,
    read_only: bool,
    writer: SocketWriter,
    denied_sent: bool,
}

/// One task per socket: it reads the client's frames, writes the room's broadcasts from
/// the session's outbox and its own replies, and sends keepalives when quiet. A write to a
/// client that does not read blocks only this socket, and the room ends it (1013) once too
/// much waits for it.
///
/// Only [`Session::serve`] is awaited in place: a task keeps room for its largest future
/// for as long as it lives, and an idle socket spends its life in `serve`. Joining (the
/// room's load, the greeting) and leaving (the close handshake) are boxed — allocated while
/// they run, given back after — and so are the arguments, which an `async fn` would keep
/// beside everything else for the task's whole life (`ops/bench/ab.sh` with `IDLE` measures
/// what a socket costs).
pub fn run(
    live: Live,
    admission: Admission,
    socket: Socket,
) -> impl std::future::Future<Output = ()> + Send {
    let joining = Box::pin(join(live, admission, socket));
    async move {
        let Some(mut joined) = joining.await else {
            return;
        };
        let end = joined
            .session
            .serve(&mut joined.reader, &joined.outbox)
            .await;
        Box::pin(joined.leave(end)).await;
    }
}

/// A session in its room, and what it leaves with.
struct Joined {
    session: Session,
    reader: SocketReader,
    outbox: Outbox,
    document: DocumentId,
    /// Keeps the room loaded.
    guard: RoomGuard,
}

/// Loads the room (or refuses the socket if it cannot be loaded), joins it, and sends the
/// greeting; `None` if the socket ended meanwhile.
async fn join(live: Live, admission: Admission, socket: Socket) -> Option<Joined> {
    let guard = match live
        .rooms
        .acquire(admission.document, admission.workspace)
        .await
    {
        Ok(guard) => guard,
        Err(error) => {
            tracing::error!(document.id = %admission.document, %error, "cannot load document");
            refuse(
                socket,
                close::INTERNAL,
                "document could not be loaded; try again",
            )
            .await;
            return None;
        }
    };
    let id = Uuid::now_v7();
    let room = guard.room.clone();
    let outbox = Outbox::new();
    let mut entry = SessionEntry::new(outbox.clone(), admission.user.clone(), admission.read_only);
    entry.link = admission.link;
    entry.read_only_token = admission.read_only_token;
    entry.service = admission.service.clone();
    let Socket { reader, writer } = socket;
    let greeting = room.join(id, entry);
    // An access change handled between the admission check and this join passed the
    // socket by: check the room again (rare: only when one happened meanwhile — edits and
    // renames do not count, or every socket joining a busy document would re-check the
    // whole room).
    if live.access_reduced_after(admission.checked_at) {
        let (rooms, aggregates) = (live.rooms.clone(), live.aggregates.clone());
        let change = collab_domain::access::AccessReduced::Document(admission.document);
        tokio::spawn(async move {
            super::revalidate::revalidate(&rooms, &aggregates, change).await;
        });
    }
    let actor = match &admission.service {
        Some(service) => Actor::Service(format!("account-{}", service.account)),
        None => Actor::User(admission.user.clone()),
    };
    let mut session = Session {
        id,
        live,
        room,
        actor,
        read_only: admission.read_only,
        writer,
        denied_sent: false,
    };
    let greeted = session
        .write(greeting.into_iter().map(Outgoing::Binary))
        .await;
    let joined = Joined {
        session,
        reader,
        outbox,
        document: admission.document,
        guard,
    };
    match greeted {
        Ok(()) => Some(joined),
        Err(end) => {
            joined.leave(end).await;
            None
        }
    }
}

impl Joined {
    /// Leaves the room (telling the others whose cursors went with it) and closes the
    /// connection as `end` says.
    async fn leave(self, end: End) {
        let Joined {
            session,
            mut reader,
            document,
            guard,
            ..
        } = self;
        let Session {
            id,
            live,
            room,
            mut writer,
            ..
        } = session;
        if let Some(removal) = room.leave(id) {
            live.fanout.publish_awareness(&room, removal).await;
        }
        match end {
            End::Refused(code, reason) => {
                debug!(document.id = %document, session.id = %id, code, %reason, "closing socket");
                metrics::counter!("collab_sync_refusals_total", "code" => code.to_string())
                    .increment(1);
                // A peer that stopped reading never takes the close: given up after 2 s.
                let closed = tokio::time::timeout(Duration::from_secs(2), async {
                    writer.send_all(&[Outgoing::Close(code, reason)]).await?;
                    writer.shutdown().await;
                    Ok::<_, std::io::Error>(())
                })
                .await;
                if matches!(closed, Ok(Ok(()))) {
                    let _ = tokio::time::timeout(Duration::from_secs(2), reader.drain()).await;
                }
            }
            End::Client => {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    if writer
                        .send_all(&[Outgoing::Close(close::NORMAL, String::new())])
                        .await
                        .is_ok()
                    {
                        writer.shutdown().await;
                    }
                })
                .await;
            }
            End::Broken => {}
        }
        drop(guard);
    }
}

impl Session {
    /// Until the socket ends: the client's frames, the outbox, keepalives.
    async fn serve(&mut self, reader: &mut SocketReader, outbox: &Outbox) -> End {
        let keepalive = self.live.config.keepalive;
        let limiter = self.live.socket_quota.map(governor::RateLimiter::direct);
        let mut permitted = false;
        let quiet = tokio::time::sleep(keepalive);
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                () = outbox.ready() => {
                    if let Some((code, reason)) = outbox.ended() {
                        return End::Refused(code, reason);
                    }
                    let burst = outbox.take(WRITE_BURST);
                    // Whatever is queued goes out in one vectored write (one frame per
                    // message, as stock clients need): one system call per burst.
                    let written = tokio::select! {
                        written = self.write(burst.into_iter().map(Outgoing::Binary)) => written,
                        // A client that stopped reading: the room ended it meanwhile.
                        () = outbox.closed() => return End::Broken,
                    };
                    if let Err(end) = written {
                        return end;
                    }
                    quiet.as_mut().reset(tokio::time::Instant::now() + keepalive);
                }
                message = next(reader, limiter.as_ref(), &mut permitted) => {
                    let handled = match message {
                        Ok(Some(Incoming::Binary(frame))) => {
                            Box::pin(self.handle_frame(&frame)).await
                        }
                        Ok(Some(Incoming::Text)) => Err(End::Refused(
                            close::UNSUPPORTED,
                            "binary y-websocket frames only".into(),
                        )),
                        Ok(Some(Incoming::Ping(payload))) => {
                            self.write([Outgoing::Pong(payload)]).await
                        }
                        Ok(Some(Incoming::Pong)) => Ok(()),
                        Ok(Some(Incoming::Close(_)) | None) => Err(End::Client),
                        Err(error) => Err(End::Refused(error.code, error.reason)),
                    };
                    if let Err(end) = handled {
                        return end;
                    }
                }
                () = &mut quiet => {
                    // A stock client reconnects after 30 s without a message.
                    if let Err(end) = self.write([Outgoing::Binary(protocol::keepalive())]).await {
                        return end;
                    }
                    quiet.as_mut().reset(tokio::time::Instant::now() + keepalive);
                }
            }
        }
    }

    /// Writes `messages` to the client now.
    async fn write(&mut self, messages: impl IntoIterator<Item = Outgoing>) -> Result<(), End> {
        let messages: Vec<Outgoing> = messages.into_iter().collect();
        self.writer
            .send_all(&messages)
            .await
            .map_err(|_| End::Broken)
    }

    async fn send(&mut self, frame: Bytes) -> Result<(), End> {
        self.write([Outgoing::Binary(frame)]).await
    }

    /// Handles every protocol message of one inbound frame (several are allowed).
    async fn handle_frame(&mut self, frame: &[u8]) -> Result<(), End> {
        let messages: Vec<Message> = collab_sync::decode_frame(frame)
            .map_err(|reason| End::Refused(close::INVALID_PAYLOAD, reason))?;
        for message in messages {
            match message {
                Message::Sync(SyncMessage::SyncStep1(state_vector)) => {
                    let answer = self.room.sync_step2_for(&state_vector);
                    self.send(answer).await?;
                }
                Message::Sync(SyncMessage::SyncStep2(update))
                | Message::Sync(SyncMessage::Update(update)) => self.handle_update(update).await?,
                Message::Awareness(update) => {
                    self.room.apply_awareness(Some(self.id), &update);
                    self.live
                        .fanout
                        .publish_awareness(&self.room, update.encode_v1())
                        .await;
                }
                Message::AwarenessQuery => {
                    if let Some(frame) = self.room.awareness_frame() {
                        self.send(frame).await?;
                    }
                }
                Message::Auth(_) | Message::Custom(..) => {}
            }
        }
        Ok(())
    }

    async fn handle_update(&mut self, update: Vec<u8>) -> Result<(), End> {
        let admitted = match admit(
            &self.live.config,
            self.room.stored_bytes(),
            &update,
            !self.read_only,
        ) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                let code = match refusal {
                    Refusal::Undecodable(_) => close::INVALID_PAYLOAD,
                    Refusal::UpdateTooLarge { .. } | Refusal::DocumentTooLarge { .. } => {
                        close::TOO_BIG
                    }
                };
                return Err(End::Refused(code, refusal.to_string()));
            }
        };
        if admitted.empty {
            return Ok(());
        }
        if self.read_only {
            metrics::counter!("collab_sync_read_only_updates_refused_total").increment(1);
            if !self.denied_sent {
                self.denied_sent = true;
                self.send(protocol::permission_denied(
                    "read-only access: your changes are not saved",
                ))
                .await?;
            }
            return Ok(());
        }
        let client_id = admitted.client_id;
        self.live
            .appender
            .submit(EditRequest {
                room: self.room.clone(),
                actor: self.actor.clone(),
                correlation_id: self.id,
                client_id,
                update,
                origin: EditOrigin::Socket,
                sender: Some(self.id),
                done: None,
            })
            .await
            .map_err(|reason| End::Refused(close::RESTARTING, reason))
    }
}

/// The client's next message, read no faster than the socket's quota (over its rate, a
/// socket is read more slowly: backpressure, nothing lost). Cancel-safe: a permit taken
/// is kept in `permitted` for the read it was taken for.
async fn next(
    reader: &mut SocketReader,
    limiter: Option<&governor::DefaultDirectRateLimiter>,
    permitted: &mut bool,
) -> Result<Option<Incoming>, ReadError> {
    if let Some(limiter) = limiter.filter(|_| !*permitted) {
        limiter.until_ready().await;
        *permitted = true;
    }
    let message = reader.next().await;
    *permitted = false;
    message
}

/// The token from `?token=` (what y-websocket's `params` sends) or a bearer header.
pub fn token_from(params: &HashMap<String, String>, authorization: Option<&str>) -> Option<String> {
    params
        .get("token")
        .cloned()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            authorization
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::to_owned)
        })
}
