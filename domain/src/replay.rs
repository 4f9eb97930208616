//! What replay consumers get: one JSON object per event (NDJSON lines, SSE data, export
//! files), the filters they may ask for, and the way back from a line to the event (the
//! offline verifier recomputes hashes from lines).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit::{hex, unhex};
use crate::catalogue::DomainEvent;
use crate::envelope::{Actor, EventMetadata, RecordedEvent, StreamCategory, StreamId};
use crate::ids::{EventId, WorkspaceId};
use crate::values::InvalidValue;

/// One event as a JSON line: every envelope field, hashes as hex, `recorded_at` in
/// RFC 3339 with microseconds, and the payload as `data` (decoded through the catalogue,
/// bytes as base64) and/or `payload` (the postcard bytes, base64).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventLine {
    pub position: i64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: i64,
    pub workspace_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: i32,
    pub actor: String,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub recorded_at: String,
    pub prev_hash: Option<String>,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

/// Which form of the payload a line carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadForm {
    /// `data`: decoded JSON (the default).
    Json,
    /// `payload`: the postcard bytes as base64 (`?payload=raw`).
    Raw,
    /// Both (exports: readable, and verifiable offline).
    Both,
}

impl PayloadForm {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "json" => Ok(Self::Json),
            "raw" => Ok(Self::Raw),
            _ => Err(InvalidValue::new("payload", "must be json or raw")),
        }
    }
}

pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl EventLine {
    pub fn new(event: &RecordedEvent, form: PayloadForm) -> Self {
        let data = (form != PayloadForm::Raw).then(|| {
            // Every stored event decodes with the catalogue of the build that wrote it;
            // should one not, the line still goes out, with its raw payload.
            DomainEvent::decode_recorded(event)
                .map(|decoded| decoded.to_json())
                .unwrap_or(serde_json::Value::Null)
        });
        let payload = (form != PayloadForm::Json || data == Some(serde_json::Value::Null))
            .then(|| STANDARD.encode(&event.payload));
        Self {
            position: event.position,
            event_id: event.metadata.event_id.as_uuid(),
            stream_id: event.stream_id.to_string(),
            stream_version: event.stream_version,
            workspace_id: event.metadata.workspace_id.as_uuid(),
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            actor: event.metadata.actor.to_string(),
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            recorded_at: format_time(event.metadata.recorded_at),
            prev_hash: event.prev_hash.map(|h| hex(&h)),
            hash: hex(&event.hash),
            data,
            payload,
        }
    }

    /// The event back, for lines that carry `payload`.
    pub fn to_event(&self) -> Result<RecordedEvent, InvalidValue> {
        let hash32 = |raw: &str, name: &'static str| -> Result<[u8; 32], InvalidValue> {
            unhex(raw)
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| InvalidValue::new(name, "must be 64 hex digits"))
        };
        let payload = self
            .payload
            .as_deref()
            .ok_or_else(|| InvalidValue::new("payload", "is missing (export with the raw payload)"))
            .and_then(|raw| {
                STANDARD
                    .decode(raw)
                    .map_err(|_| InvalidValue::new("payload", "must be base64"))
            })?;
        let recorded_at = DateTime::parse_from_rfc3339(&self.recorded_at)
            .map_err(|_| InvalidValue::new("recorded_at", "must be RFC 3339"))?
            .with_timezone(&Utc);
        Ok(RecordedEvent {
            position: self.position,
            stream_id: StreamId::parse(&self.stream_id)?,
            stream_version: self.stream_version,
            event_type: self.event_type.clone(),
            schema_version: self.schema_version,
            payload,
            metadata: EventMetadata {
                event_id: EventId::from_uuid(self.event_id),
                workspace_id: WorkspaceId::from_uuid(self.workspace_id),
                actor: Actor::parse(&self.actor)?,
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
                recorded_at,
            },
            prev_hash: self
                .prev_hash
                .as_deref()
                .map(|h| hash32(h, "prev_hash"))
                .transpose()?,
            hash: hash32(&self.hash, "hash")?,
        })
    }
}

/// Which events of a workspace a consumer asks for. Empty lists match everything; the
/// filters combine with AND, values within one filter with OR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub categories: Vec<StreamCategory>,
    pub types: Vec<String>,
    pub stream: Option<StreamId>,
    pub actor: Option<Actor>,
}

impl EventFilter {
    /// Adds a `category`, `type`, `stream` or `actor` value from a query string; unknown
    /// values are errors, never silently empty results.
    pub fn add(&mut self, name: &str, value: &str) -> Result<(), InvalidValue> {
        for value in value.split(',').filter(|v| !v.is_empty()) {
            match name {
                "category" => self.categories.push(StreamCategory::parse(value)?),
                "type" => {
                    if !DomainEvent::is_known_type(value) {
                        return Err(InvalidValue::new(
                            "type",
                            "is not an event type of the catalogue (GET /v1/events/catalogue)",
                        ));
                    }
                    self.types.push(value.to_owned());
                }
                "stream" => {
                    if self.stream.is_some() {
                        return Err(InvalidValue::new("stream", "may be given once"));
                    }
                    self.stream = Some(StreamId::parse(value)?);
                }
                "actor" => {
                    if self.actor.is_some() {
                        return Err(InvalidValue::new("actor", "may be given once"));
                    }
                    self.actor = Some(Actor::parse(value)?);
                }
                _ => return Err(InvalidValue::new("filter", "is not a known filter")),
            }
        }
        Ok(())
    }

    pub fn matches(&self, event: &RecordedEvent) -> bool {
        (self.categories.is_empty() || self.categories.contains(&event.stream_id.category))
            && (self.types.is_empty() || self.types.contains(&event.event_type))
            && self.stream.is_none_or(|s| s == event.stream_id)
            && self
                .actor
                .as_ref()
                .is_none_or(|a| *a == event.metadata.actor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::EventCodec;
    use crate::content::{ContentEvent, DocumentEdited};
    use crate::envelope::sample_event;

    #[test]
    fn lines_round_trip_and_decode_payloads() {
        let payload = ContentEvent::DocumentEdited(DocumentEdited {
            client_id: 9,
            update: vec![1, 2, 3],
            origin: crate::content::EditOrigin::Socket,
        })
        .encode();
        let event = sample_event(StreamCategory::Content, "DocumentEdited", payload);
        let line = EventLine::new(&event, PayloadForm::Both);
        assert_eq!(line.data.as_ref().unwrap()["update"], "AQID");
        assert_eq!(line.recorded_at.len(), "2026-12-02T07:23:06.123456Z".len());
        let text = serde_json::to_string(&line).unwrap();
        let back: EventLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_event().unwrap(), event);
        assert!(EventLine::new(&event, PayloadForm::Json).payload.is_none());
        assert!(EventLine::new(&event, PayloadForm::Raw).data.is_none());

        let mut filter = EventFilter::default();
        filter.add("category", "content").unwrap();
        assert!(filter.matches(&event));
        filter.add("type", "DocumentEdited").unwrap();
        filter.add("actor", "user:bob").unwrap();
        assert!(!filter.matches(&event));
        assert!(EventFilter::default().add("type", "Nope").is_err());
        assert!(EventFilter::default().add("category", "nope").is_err());
        assert!(EventFilter::default().add("actor", "bob").is_err());
    }
}
