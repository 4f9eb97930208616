//! A document's content stream (`content-<document id>`): every accepted Yjs update, as
//! sent. CRDT updates commute, so this stream is appended at any version and never
//! conflicts; its per-stream version orders updates for replay and de-duplication.

use serde::{Deserialize, Serialize};
use serde_with::base64::Base64;
use serde_with::{serde_as, IfIsHumanReadable};

use crate::catalogue::event_enum;

/// Where an edit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum EditOrigin {
    /// A live editing session (WebSocket sync protocol).
    Socket,
    /// `POST /v1/documents/{id}/updates` (integrations).
    Http,
    /// A restore of an earlier point of the document's history, applied as a forward edit.
    Restore {
        /// The content version whose content the edit brought back.
        from_version: i64,
    },
    /// A new document's first content: a copy of a template's content as it was then.
    Template {
        /// The template document.
        template_id: crate::ids::DocumentId,
        /// The template's content version that was copied.
        template_version: i64,
    },
}

/// One accepted Yjs update (v1 encoding), exactly as a client or integration sent it.
/// The actor is in the envelope.
#[serde_as]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentEdited {
    /// The Yjs client id of the sending document replica (0 when sent over HTTP).
    pub client_id: u64,
    /// The Yjs update (v1 encoding), exactly as received.
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub update: Vec<u8>,
    /// Where the edit came from (schema version 2; version 1 events are upcast: client id
    /// 0 means HTTP, any other a live session).
    pub origin: EditOrigin,
}

/// Schema version 1 of [`DocumentEdited`], before `origin`. Stored v1 rows stay as they
/// are; readers see them upcast to the current version.
#[serde_as]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocumentEditedV1 {
    pub client_id: u64,
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    pub update: Vec<u8>,
}

impl From<DocumentEditedV1> for DocumentEdited {
    fn from(v1: DocumentEditedV1) -> Self {
        Self {
            origin: if v1.client_id == 0 {
                EditOrigin::Http
            } else {
                EditOrigin::Socket
            },
            client_id: v1.client_id,
            update: v1.update,
        }
    }
}

event_enum!(
    /// Events of a content stream.
    ContentEvent in Content {
        DocumentEdited = 2 (1 => DocumentEditedV1),
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::EventCodec;

    #[test]
    fn edits_round_trip_and_encode_compactly() {
        let event = ContentEvent::DocumentEdited(DocumentEdited {
            client_id: 42,
            update: vec![1, 2, 3],
            origin: EditOrigin::Restore { from_version: 7 },
        });
        let bytes = event.encode();
        assert_eq!(bytes, vec![42, 3, 1, 2, 3, 2, 14]);
        assert_eq!(event.schema_version(), 2);
        assert_eq!(
            ContentEvent::decode("DocumentEdited", 2, &bytes).unwrap(),
            event
        );
    }

    #[test]
    fn version_1_rows_are_upcast_with_their_origin_inferred() {
        let v1 = |client_id: u64| {
            postcard::to_allocvec(&DocumentEditedV1 {
                client_id,
                update: vec![9, 9],
            })
            .unwrap()
        };
        let http = ContentEvent::decode("DocumentEdited", 1, &v1(0)).unwrap();
        let socket = ContentEvent::decode("DocumentEdited", 1, &v1(77)).unwrap();
        let ContentEvent::DocumentEdited(http) = http;
        let ContentEvent::DocumentEdited(socket) = socket;
        assert_eq!(http.origin, EditOrigin::Http);
        assert_eq!(http.update, vec![9, 9]);
        assert_eq!(socket.origin, EditOrigin::Socket);
        assert_eq!(socket.client_id, 77);
        // Unknown versions still fail loudly.
        assert!(ContentEvent::decode("DocumentEdited", 3, &v1(0)).is_err());
    }
}
