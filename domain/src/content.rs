//! A document's content stream (`content-<document id>`): every accepted Yjs update, as
//! sent. CRDT updates commute, so this stream is appended at any version and never
//! conflicts; its per-stream version orders updates for replay and de-duplication.

use serde::{Deserialize, Serialize};
use serde_with::base64::Base64;
use serde_with::{serde_as, IfIsHumanReadable};

use crate::catalogue::event_enum;

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
}

event_enum!(
    /// Events of a content stream.
    ContentEvent in Content {
        DocumentEdited = 1,
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
        });
        let bytes = event.encode();
        assert_eq!(bytes, vec![42, 3, 1, 2, 3]);
        assert_eq!(
            ContentEvent::decode("DocumentEdited", 1, &bytes).unwrap(),
            event
        );
    }
}
