//! One WebSocket speaking the y-websocket protocol.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use collab_domain::content::EditOrigin;
use collab_domain::{Actor, DocumentId, UserId};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info_span, Instrument};
use uuid::Uuid;
use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::DecoderV1;
use yrs::updates::encoder::Encode;

use super::admission::{admit, Refusal};
use super::appender::EditRequest;
use super::protocol::{self, close};
use super::room::{Outbound, Room, SessionEntry, SessionId};
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

/// A close frame; the reason is cut to the 123 bytes WebSocket allows (on a character
/// boundary), or the frame could not be sent at all.
fn close_frame(code: u16, reason: &str) -> WsMessage {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    WsMessage::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason[..end].to_owned()),
    }))
}

/// Sends a close frame with `code` and `reason` and ends the socket.
pub async fn refuse(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket.send(close_frame(code, reason)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

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

pub async fn run(live: Live, admission: Admission, socket: WebSocket) {
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
        let (mut sink, mut stream) = socket.split();
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
            for frame in greeting {
                if sink.send(WsMessage::Binary(frame)).await.is_err() {
                    return;
                }
            }
            // Whatever is queued goes out in one write (one frame per message, as stock
            // clients need), flushed once: one syscall per burst, not per update.
            loop {
                let mut outbound = match tokio::time::timeout(keepalive, rx.recv()).await {
                    Ok(Some(outbound)) => outbound,
                    Ok(None) => return,
                    Err(_) => Outbound::Frame(protocol::keepalive()),
                };
                loop {
                    match outbound {
                        Outbound::Frame(frame) => {
                            if sink.feed(WsMessage::Binary(frame)).await.is_err() {
                                return;
                            }
                        }
                        Outbound::Close(code, reason) => {
                            let _ = sink.send(close_frame(code, &reason)).await;
                            return;
                        }
                    }
                    match rx.try_recv() {
                        Ok(next) => outbound = next,
                        Err(_) => break,
                    }
                }
                if sink.flush().await.is_err() {
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
                message = stream.next() => message,
                _ = kick.cancelled() => break Err((close::TRY_AGAIN, "connection could not keep up; reconnect".into())),
            };
            let Some(Ok(message)) = message else { break Ok(()) };
            match message {
                WsMessage::Binary(frame) => {
                    if let Err(refusal) = session.handle_frame(&frame).await {
                        break Err(refusal);
                    }
                }
                WsMessage::Text(_) => {
                    break Err((close::UNSUPPORTED, "binary y-websocket frames only".into()))
                }
                WsMessage::Close(_) => break Ok(()),
                WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            }
        };
        if let Some(removal) = room.leave(id) {
            live.fanout.publish_awareness(&room, removal).await;
        }
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
        let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
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
        let mut decoder = DecoderV1::new(Cursor::new(frame));
        let messages: Vec<Message> = MessageReader::new(&mut decoder)
            .collect::<Result<_, _>>()
            .map_err(|e| {
                (
                    close::INVALID_PAYLOAD,
                    format!("undecodable y-protocols message: {e}"),
                )
            })?;
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
