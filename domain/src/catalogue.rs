//! The event catalogue: every event type, its schema version, and how it is encoded.
//!
//! Each event is its own struct, encoded with postcard on its own, and named in the
//! envelope by type name + schema version — never by its position in a Rust enum, so
//! adding or reordering variants cannot change what stored bytes mean. A published event
//! type is never changed: a new shape is a new schema version with an upcaster arm in
//! `decode` that turns the old bytes into the current variant.

use serde::{Deserialize, Serialize};

use crate::content::ContentEvent;
use crate::document::DocumentEvent;
use crate::envelope::StreamCategory;
use crate::workspace::WorkspaceEvent;

/// The stored bytes do not name an event this build knows, or do not decode as it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode event {event_type} v{schema_version}: {reason}")]
pub struct UnknownEvent {
    pub event_type: String,
    pub schema_version: i32,
    pub reason: String,
}

/// How an aggregate's event enum turns into catalogue entries and back.
pub trait EventCodec: Sized {
    fn event_type(&self) -> &'static str;
    fn schema_version(&self) -> i32;
    fn encode(&self) -> Vec<u8>;
    fn decode(event_type: &str, schema_version: i32, payload: &[u8]) -> Result<Self, UnknownEvent>;

    /// Decodes the payload of a stored event.
    fn decode_recorded(event: &crate::RecordedEvent) -> Result<Self, UnknownEvent> {
        Self::decode(&event.event_type, event.schema_version, &event.payload)
    }
}

/// Declares an aggregate's event enum whose variants wrap same-named payload structs,
/// with its catalogue codec and the cqrs-es `DomainEvent` impl.
macro_rules! event_enum {
    ($(#[$meta:meta])* $enum:ident { $($name:ident = $version:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub enum $enum {
            $($name($name)),+
        }

        impl $crate::catalogue::EventCodec for $enum {
            fn event_type(&self) -> &'static str {
                match self { $(Self::$name(_) => stringify!($name)),+ }
            }

            fn schema_version(&self) -> i32 {
                match self { $(Self::$name(_) => $version),+ }
            }

            fn encode(&self) -> Vec<u8> {
                match self {
                    $(Self::$name(event) => postcard::to_allocvec(event)
                        .expect("event payloads are plain data and always encode")),+
                }
            }

            fn decode(
                event_type: &str,
                schema_version: i32,
                payload: &[u8],
            ) -> Result<Self, $crate::catalogue::UnknownEvent> {
                let fail = |reason: String| $crate::catalogue::UnknownEvent {
                    event_type: event_type.to_owned(),
                    schema_version,
                    reason,
                };
                match (event_type, schema_version) {
                    $((stringify!($name), $version) => postcard::from_bytes::<$name>(payload)
                        .map(Self::$name)
                        .map_err(|e| fail(e.to_string())),)+
                    _ => Err(fail("unknown type or schema version".to_owned())),
                }
            }
        }

        impl cqrs_es::DomainEvent for $enum {
            fn event_type(&self) -> String {
                $crate::catalogue::EventCodec::event_type(self).to_owned()
            }

            fn event_version(&self) -> String {
                $crate::catalogue::EventCodec::schema_version(self).to_string()
            }
        }
    };
}
pub(crate) use event_enum;

/// Any event in the catalogue, as projections and consumers see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DomainEvent {
    Workspace(WorkspaceEvent),
    Document(DocumentEvent),
    Content(ContentEvent),
}

impl DomainEvent {
    /// Decodes a stored event, choosing the aggregate by the stream's category.
    pub fn decode(
        category: StreamCategory,
        event_type: &str,
        schema_version: i32,
        payload: &[u8],
    ) -> Result<Self, UnknownEvent> {
        match category {
            StreamCategory::Workspace => {
                WorkspaceEvent::decode(event_type, schema_version, payload).map(Self::Workspace)
            }
            StreamCategory::Document => {
                DocumentEvent::decode(event_type, schema_version, payload).map(Self::Document)
            }
            StreamCategory::Content => {
                ContentEvent::decode(event_type, schema_version, payload).map(Self::Content)
            }
        }
    }
}

/// Every (type, schema version) pair in the catalogue, for docs and consumers.
pub const CATALOGUE: &[(StreamCategory, &str, i32)] = &[
    (StreamCategory::Workspace, "WorkspaceCreated", 1),
    (StreamCategory::Workspace, "WorkspaceRenamed", 1),
    (StreamCategory::Workspace, "MemberAdded", 1),
    (StreamCategory::Workspace, "MemberRoleChanged", 1),
    (StreamCategory::Workspace, "MemberRemoved", 1),
    (StreamCategory::Workspace, "DefaultDocumentRoleChanged", 1),
    (StreamCategory::Workspace, "ServiceAccountCreated", 1),
    (StreamCategory::Workspace, "ServiceAccountRevoked", 1),
    (StreamCategory::Document, "DocumentCreated", 1),
    (StreamCategory::Document, "DocumentRenamed", 1),
    (StreamCategory::Document, "DocumentMoved", 1),
    (StreamCategory::Document, "DocumentArchived", 1),
    (StreamCategory::Document, "DocumentRestored", 1),
    (StreamCategory::Document, "DocumentDeleted", 1),
    (StreamCategory::Document, "DocumentShared", 1),
    (StreamCategory::Document, "DocumentUnshared", 1),
    (StreamCategory::Document, "ShareLinkCreated", 1),
    (StreamCategory::Document, "ShareLinkRevoked", 1),
    (StreamCategory::Content, "DocumentEdited", 1),
];
