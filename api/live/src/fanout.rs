//! Instances hosting the same document fan out to each other over core NATS
//! (`<prefix>.live.<document>`): committed updates (with their content-stream version, so
//! the receiver applies each once, in order) and awareness. Core NATS is the fast path;
//! a lost message is repaired from the Postgres log (see `rooms`). The connection has echo
//! off: NATS does not send an instance its own fan-out back.

use async_nats::Subscriber;
use collab_domain::DocumentId;
use serde::{Deserialize, Serialize};
use tracing::debug;
use uuid::Uuid;

use super::room::Room;

#[derive(Debug, Serialize, Deserialize)]
pub enum LiveMessage {
    /// The updates one group commit made to the document, in version order: each with
    /// its content-stream version and global position.
    Updates {
        updates: Vec<CommittedUpdate>,
    },
    Awareness {
        update: Vec<u8>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CommittedUpdate {
    pub version: i64,
    pub position: i64,
    pub update: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    instance: Uuid,
    message: LiveMessage,
}

#[derive(Clone)]
pub struct Fanout {
    client: async_nats::Client,
    prefix: String,
    instance: Uuid,
}

impl Fanout {
    pub fn new(client: async_nats::Client, prefix: String, instance: Uuid) -> Self {
        Self {
            client,
            prefix,
            instance,
        }
    }

    fn subject(&self, document: DocumentId) -> String {
        format!("{}.live.{document}", self.prefix)
    }

    async fn publish(&self, document: DocumentId, message: LiveMessage) {
        let envelope = Envelope {
            instance: self.instance,
            message,
        };
        let payload = postcard::to_allocvec(&envelope).expect("live messages encode");
        // Fire and forget: a NATS outage must not hold up editing on this instance.
        if let Err(error) = self
            .client
            .publish(self.subject(document), payload.into())
            .await
        {
            debug!(%error, "live fan-out publish failed");
        }
    }

    /// One message per document per group commit, however many updates it holds.
    pub async fn publish_updates(&self, room: &Room, updates: Vec<CommittedUpdate>) {
        self.publish(room.document_id, LiveMessage::Updates { updates })
            .await;
    }

    pub async fn publish_awareness(&self, room: &Room, update: Vec<u8>) {
        self.publish(room.document_id, LiveMessage::Awareness { update })
            .await;
    }

    pub async fn subscribe(&self, document: DocumentId) -> Option<Subscriber> {
        self.client.subscribe(self.subject(document)).await.ok()
    }

    /// Decodes a message from another instance (`None` for our own or garbage).
    pub fn decode(&self, payload: &[u8]) -> Option<LiveMessage> {
        let envelope: Envelope = postcard::from_bytes(payload).ok()?;
        (envelope.instance != self.instance).then_some(envelope.message)
    }
}
