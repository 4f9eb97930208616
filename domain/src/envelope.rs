//! The envelope every event is stored and published in, and the per-stream hash chain
//! that lets auditors prove history was not altered.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ids::{EventId, UserId, WorkspaceId};
use crate::values::InvalidValue;

/// What kind of aggregate a stream belongs to; the middle token of its NATS subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamCategory {
    Workspace,
    Document,
    /// A document's content: its CRDT updates, one stream per document (same uuid).
    Content,
    /// A workspace's signed audit checkpoints, one stream per workspace (same uuid).
    Audit,
    /// A person's profile, one stream per person (filed under the platform, not a
    /// workspace).
    User,
    /// A comment thread on a document, one stream per thread (in the document's
    /// workspace).
    Thread,
    /// A file uploaded to a workspace, one stream per file (in its workspace).
    File,
}

impl StreamCategory {
    pub const ALL: [StreamCategory; 7] = [
        StreamCategory::Workspace,
        StreamCategory::Document,
        StreamCategory::Content,
        StreamCategory::Audit,
        StreamCategory::User,
        StreamCategory::Thread,
        StreamCategory::File,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StreamCategory::Workspace => "workspace",
            StreamCategory::Document => "document",
            StreamCategory::Content => "content",
            StreamCategory::Audit => "audit",
            StreamCategory::User => "user",
            StreamCategory::Thread => "thread",
            StreamCategory::File => "file",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "workspace" => Ok(StreamCategory::Workspace),
            "document" => Ok(StreamCategory::Document),
            "content" => Ok(StreamCategory::Content),
            "audit" => Ok(StreamCategory::Audit),
            "user" => Ok(StreamCategory::User),
            "thread" => Ok(StreamCategory::Thread),
            "file" => Ok(StreamCategory::File),
            _ => Err(InvalidValue::new(
                "stream_category",
                "is not a known category",
            )),
        }
    }
}

/// A stream: one aggregate instance's events, named `<category>-<uuid>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub category: StreamCategory,
    pub id: Uuid,
}

impl StreamId {
    pub fn new(category: StreamCategory, id: Uuid) -> Self {
        Self { category, id }
    }

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let (category, id) = raw
            .split_once('-')
            .ok_or_else(|| InvalidValue::new("stream_id", "must be <category>-<uuid>"))?;
        let id = Uuid::parse_str(id)
            .map_err(|_| InvalidValue::new("stream_id", "must end in a UUID"))?;
        Ok(Self::new(StreamCategory::parse(category)?, id))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.category.as_str(), self.id)
    }
}

impl FromStr for StreamId {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Who caused an event: a user (JWT subject) or one of our own services.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    User(UserId),
    Service(String),
}

impl Actor {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw.split_once(':') {
            Some(("user", id)) => UserId::parse(id).map(Actor::User),
            Some(("service", name)) if !name.is_empty() => Ok(Actor::Service(name.to_owned())),
            _ => Err(InvalidValue::new(
                "actor",
                "must be user:<id> or service:<name>",
            )),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::User(id) => write!(f, "user:{id}"),
            Actor::Service(name) => write!(f, "service:{name}"),
        }
    }
}

/// What every event carries besides its payload and position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventMetadata {
    pub event_id: EventId,
    pub workspace_id: WorkspaceId,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// Microsecond precision, the same as Postgres `timestamptz`, so hashes recompute.
    pub recorded_at: DateTime<Utc>,
}

/// An event as stored in the log: the envelope plus its place in the total order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Gap-free global position, 1-based.
    pub position: i64,
    pub stream_id: StreamId,
    /// 1-based version within the stream.
    pub stream_version: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Vec<u8>,
    pub metadata: EventMetadata,
    pub prev_hash: Option<[u8; 32]>,
    pub hash: [u8; 32],
}

/// Truncates to whole microseconds, the precision Postgres keeps.
pub fn now_micros() -> DateTime<Utc> {
    micros_to_time(Utc::now().timestamp_micros())
}

pub fn micros_to_time(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros)
        .single()
        .expect("microsecond timestamps within range")
}

/// The fields the hash covers, in a fixed order. Changing this struct breaks every
/// stored chain: treat it like an event type.
#[derive(Serialize)]
struct HashInput<'a> {
    prev_hash: [u8; 32],
    event_id: Uuid,
    stream_id: &'a str,
    stream_version: i64,
    workspace_id: Uuid,
    event_type: &'a str,
    schema_version: i32,
    actor: &'a str,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    recorded_at_micros: i64,
    payload: &'a [u8],
}

/// SHA-256 over the previous event's hash (zeros for a stream's first event) and this
/// event's envelope and payload. The global position is not covered: it is assigned at
/// commit, and the chain is per stream.
#[allow(clippy::too_many_arguments)]
pub fn chain_hash(
    prev_hash: Option<&[u8; 32]>,
    stream_id: &StreamId,
    stream_version: i64,
    event_type: &str,
    schema_version: i32,
    payload: &[u8],
    metadata: &EventMetadata,
) -> [u8; 32] {
    let stream = stream_id.to_string();
    let actor = metadata.actor.to_string();
    let input = HashInput {
        prev_hash: prev_hash.copied().unwrap_or([0; 32]),
        event_id: metadata.event_id.as_uuid(),
        stream_id: &stream,
        stream_version,
        workspace_id: metadata.workspace_id.as_uuid(),
        event_type,
        schema_version,
        actor: &actor,
        correlation_id: metadata.correlation_id,
        causation_id: metadata.causation_id,
        recorded_at_micros: metadata.recorded_at.timestamp_micros(),
        payload,
    };
    let bytes = postcard::to_allocvec(&input).expect("hash input always encodes");
    Sha256::digest(bytes).into()
}

impl RecordedEvent {
    /// Recomputes this event's hash from its content and the given predecessor hash.
    pub fn expected_hash(&self, prev_hash: Option<&[u8; 32]>) -> [u8; 32] {
        chain_hash(
            prev_hash,
            &self.stream_id,
            self.stream_version,
            &self.event_type,
            self.schema_version,
            &self.payload,
            &self.metadata,
        )
    }

    pub fn to_wire(&self) -> WireEnvelope {
        WireEnvelope {
            envelope_version: WireEnvelope::VERSION,
            event_id: self.metadata.event_id.as_uuid(),
            position: self.position,
            stream_id: self.stream_id.to_string(),
            stream_version: self.stream_version,
            workspace_id: self.metadata.workspace_id.as_uuid(),
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            actor: self.metadata.actor.to_string(),
            correlation_id: self.metadata.correlation_id,
            causation_id: self.metadata.causation_id,
            recorded_at_micros: self.metadata.recorded_at.timestamp_micros(),
            prev_hash: self.prev_hash,
            hash: self.hash,
            payload: self.payload.clone(),
        }
    }
}

/// The body of every JetStream message: postcard-encoded, fields in this order.
/// `envelope_version` comes first so a consumer can refuse a layout it does not know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEnvelope {
    pub envelope_version: u8,
    pub event_id: Uuid,
    pub position: i64,
    pub stream_id: String,
    pub stream_version: i64,
    pub workspace_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub recorded_at_micros: i64,
    pub prev_hash: Option<[u8; 32]>,
    pub hash: [u8; 32],
    pub payload: Vec<u8>,
}

/// A wire envelope that does not parse back into a [`RecordedEvent`].
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("envelope does not decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("unsupported envelope version {0}")]
    Version(u8),
    #[error("invalid envelope field: {0}")]
    Field(#[from] InvalidValue),
}

impl WireEnvelope {
    pub const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("envelopes always encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<RecordedEvent, WireError> {
        let wire: WireEnvelope = postcard::from_bytes(bytes)?;
        if wire.envelope_version != Self::VERSION {
            return Err(WireError::Version(wire.envelope_version));
        }
        Ok(RecordedEvent {
            position: wire.position,
            stream_id: StreamId::parse(&wire.stream_id)?,
            stream_version: wire.stream_version,
            event_type: wire.event_type,
            schema_version: wire.schema_version,
            payload: wire.payload,
            metadata: EventMetadata {
                event_id: EventId::from_uuid(wire.event_id),
                workspace_id: WorkspaceId::from_uuid(wire.workspace_id),
                actor: Actor::parse(&wire.actor)?,
                correlation_id: wire.correlation_id,
                causation_id: wire.causation_id,
                recorded_at: micros_to_time(wire.recorded_at_micros),
            },
            prev_hash: wire.prev_hash,
            hash: wire.hash,
        })
    }
}

/// NATS subject of an event: `<prefix>.events.<workspace>.<category>.<stream uuid>`, so
/// consumers filter by tenant, by kind of aggregate or by one aggregate with wildcards.
pub fn event_subject(prefix: &str, event: &RecordedEvent) -> String {
    format!(
        "{prefix}.events.{}.{}.{}",
        event.metadata.workspace_id,
        event.stream_id.category.as_str(),
        event.stream_id.id
    )
}

/// The JetStream stream holding every event published under `prefix`.
pub fn events_stream_name(prefix: &str) -> String {
    let mut name: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    name.push_str("_EVENTS");
    name
}

/// A correctly hashed first event of a fresh stream, for tests.
#[cfg(test)]
pub(crate) fn sample_event(
    category: StreamCategory,
    event_type: &str,
    payload: Vec<u8>,
) -> RecordedEvent {
    let metadata = EventMetadata {
        event_id: EventId::new(),
        workspace_id: WorkspaceId::new(),
        actor: Actor::User(UserId::parse("alice").unwrap()),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        recorded_at: now_micros(),
    };
    let stream_id = StreamId::new(category, Uuid::now_v7());
    // The current schema version of the type (samples are encoded by this build).
    let schema_version = crate::DomainEvent::catalogue()
        .iter()
        .find(|e| e.event_type == event_type)
        .map_or(1, |e| e.schema_version);
    let hash = chain_hash(
        None,
        &stream_id,
        1,
        event_type,
        schema_version,
        &payload,
        &metadata,
    );
    RecordedEvent {
        position: 7,
        stream_id,
        stream_version: 1,
        event_type: event_type.into(),
        schema_version,
        payload,
        metadata,
        prev_hash: None,
        hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordedEvent {
        sample_event(StreamCategory::Document, "DocumentArchived", vec![])
    }

    #[test]
    fn wire_envelopes_round_trip() {
        let event = sample();
        let decoded = WireEnvelope::decode(&event.to_wire().encode()).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn any_change_breaks_the_hash() {
        let event = sample();
        assert_eq!(event.expected_hash(None), event.hash);
        let mut tampered = event.clone();
        tampered.payload = vec![1];
        assert_ne!(tampered.expected_hash(None), event.hash);
        assert_ne!(event.expected_hash(Some(&[1; 32])), event.hash);
    }

    #[test]
    fn stream_ids_round_trip() {
        let id = StreamId::new(StreamCategory::Workspace, Uuid::now_v7());
        assert_eq!(StreamId::parse(&id.to_string()).unwrap(), id);
        assert!(StreamId::parse("nope-123").is_err());
    }
}
