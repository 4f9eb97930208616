//! One WebSocket speaking the y-websocket protocol.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use collab_domain::content::EditOrigin;
use collab_domain::{Actor, DocumentId, UserId};
use tokio::sync::mpsc;
use tracing::{debug, info_span, Instrument};
use uuid::Uuid;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::encoder::Encode;

use super::admission::{admit, Refusal};
use super::appender::EditRequest;
use super::protocol::{self, close};
use super::room::{Outbound, Room, SessionEntry, SessionId};
use super::websocket::{Incoming, Outgoing, Socket};
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

/// The most messages one write takes (a burst beyond it goes out in further writes).
const WRITE_BURST: usize = 256;

/// What a frame made us do: carry on, or close with a code and reason.
type Verdict = Result<(), (u16, String)>;

struct Session {
    id: SessionId,
    live: Live,
    room: Arc<Room>,
    actor: Actor,
    read_only: bool,
    tx: mpsc::Sender<Outbound>,
    denied_sent: bool,
}

pub async fn run(live: Live, admission: Admission, socket: Socket) {
    // Boxed, as every large await of a socket's task that is not its idle state: a task
    // keeps room for its largest future for as long as it lives.
    let guard = match Box::pin(live.rooms.acquire(admission.document, admission.workspace)).await {
        Ok(guard) => guard,
        Err(error) => {
            tracing::error!(document.id = %admission.document, %error, "cannot load document");
            refuse(
                socket,
                close::INTERNAL,
                "document could not be loaded; try again",
            )
            .await;
            return;
        }
    };
    let id = Uuid::now_v7();
    let span = info_span!("sync", document.id = %admission.document, user.id = %admission.user, session.id = %id);
    async move {
        let room = guard.room.clone();
        let (tx, mut rx) = mpsc::channel::<Outbound>(4096);
        let mut entry = SessionEntry::new(tx.clone(), admission.user.clone(), admission.read_only);
        entry.link = admission.link;
        entry.read_only_token = admission.read_only_token;
        entry.service = admission.service.clone();
        let kick = entry.kick.clone();
        let queued = entry.queued.clone();
        let Socket {
            mut reader,
            mut writer,
        } = socket;
        let greeting = room.join(id, entry);
        // An access change handled between the admission check and this join passed the
        // socket by: check the room again (rare: only when one happened meanwhile).
        if live.revocations_seen() > admission.checked_at {
            let (rooms, aggregates) = (live.rooms.clone(), live.aggregates.clone());
            let change = collab_domain::access::AccessReduced::Document(admission.document);
            tokio::spawn(async move {
                super::revalidate::revalidate(&rooms, &aggregates, change).await;
            });
        }
        let keepalive = live.config.keepalive;
        let writer = tokio::spawn(async move {
            let greeting: Vec<Outgoing> = greeting.into_iter().map(Outgoing::Binary).collect();
            if writer.send_all(&greeting).await.is_err() {
                return;
            }
            // Whatever is queued goes out in one vectored write (one frame per message, as
            // stock clients need): one system call per burst, not per update.
            let mut batch = Vec::new();
            loop {
                let mut next = match tokio::time::timeout(keepalive, rx.recv()).await {
                    Ok(Some(outbound)) => Some(outbound),
                    Ok(None) => return,
                    Err(_) => Some(Outbound::Frame(protocol::keepalive())),
                };
                let (mut broadcast_bytes, mut closing) = (0, false);
                while let Some(outbound) = next.take() {
                    match outbound {
                        Outbound::Frame(frame) => batch.push(Outgoing::Binary(frame)),
                        Outbound::Broadcast(frame) => {
                            broadcast_bytes += frame.len();
                            batch.push(Outgoing::Binary(frame));
                        }
                        Outbound::Pong(payload) => batch.push(Outgoing::Pong(payload)),
                        Outbound::Close(code, reason) => {
                            batch.push(Outgoing::Close(code, reason));
                            closing = true;
                            break;
                        }
                    }
                    if batch.len() < WRITE_BURST {
                        next = rx.try_recv().ok();
                    }
                }
                if writer.send_all(&batch).await.is_err() {
                    return;
                }
                batch.clear();
                if batch.capacity() > 16 {
                    // A burst's room is not kept by an idle socket.
                    batch = Vec::new();
                }
                queued.fetch_sub(broadcast_bytes, std::sync::atomic::Ordering::AcqRel);
                if closing {
                    writer.shutdown().await;
                    return;
                }
            }
        });
        let actor = match &admission.service {
            Some(service) => Actor::Service(format!("account-{}", service.account)),
            None => Actor::User(admission.user.clone()),
        };
        let mut session = Session {
            id,
            live: live.clone(),
            room: room.clone(),
            actor,
            read_only: admission.read_only,
            tx: tx.clone(),
            denied_sent: false,
        };
        let limiter = live.socket_quota.map(governor::RateLimiter::direct);
        let verdict: Verdict = loop {
            if let Some(limiter) = &limiter {
                // Over its rate, a socket is read more slowly: backpressure, nothing lost.
                limiter.until_ready().await;
            }
            let message = tokio::select! {
                message = reader.next() => message,
                _ = kick.cancelled() => break Err((close::TRY_AGAIN, "connection could not keep up; reconnect".into())),
            };
            match message {
                Ok(Some(Incoming::Binary(frame))) => {
                    if let Err(refusal) = Box::pin(session.handle_frame(&frame)).await {
                        break Err(refusal);
                    }
                }
                Ok(Some(Incoming::Text)) => {
                    break Err((close::UNSUPPORTED, "binary y-websocket frames only".into()))
                }
                Ok(Some(Incoming::Ping(payload))) => {
                    let _ = session.tx.try_send(Outbound::Pong(payload));
                }
                Ok(Some(Incoming::Pong)) => {}
                Ok(Some(Incoming::Close(_)) | None) => break Ok(()),
                Err(error) => break Err((error.code, error.reason)),
            }
        };
        if let Some(removal) = room.leave(id) {
            Box::pin(live.fanout.publish_awareness(&room, removal)).await;
        }
        let closed_by_us = verdict.is_err();
        match verdict {
            Err((code, reason)) => {
                debug!(code, %reason, "closing socket");
                metrics::counter!("collab_sync_refusals_total", "code" => code.to_string())
                    .increment(1);
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    tx.send(Outbound::Close(code, reason)),
                )
                .await;
            }
            Ok(()) => {
                let _ = tx.try_send(Outbound::Close(close::NORMAL, String::new()));
            }
        }
        drop(tx);
        drop(session);
        // A peer that stopped reading blocks the writer in a write that never ends: after
        // 2 s it is aborted, which drops the socket and everything queued for it.
        let mut writer = writer;
        if tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
        if closed_by_us {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader.drain()).await;
        }
        drop(guard);
    }
    .instrument(span)
    .await;
}

impl Session {
    async fn send(&self, frame: bytes::Bytes) {
        let _ = self.tx.send(Outbound::Frame(frame)).await;
    }

    /// Handles every protocol message of one inbound frame (several are allowed).
    async fn handle_frame(&mut self, frame: &[u8]) -> Verdict {
        let messages: Vec<Message> =
            collab_sync::decode_frame(frame).map_err(|reason| (close::INVALID_PAYLOAD, reason))?;
        for message in messages {
            match message {
                Message::Sync(SyncMessage::SyncStep1(state_vector)) => {
                    self.send(self.room.sync_step2_for(&state_vector)).await;
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
                        self.send(frame).await;
                    }
                }
                Message::Auth(_) | Message::Custom(..) => {}
            }
        }
        Ok(())
    }

    async fn handle_update(&mut self, update: Vec<u8>) -> Verdict {
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
                return Err((code, refusal.to_string()));
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
                .await;
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
            .map_err(|reason| (close::RESTARTING, reason))
    }
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
