//! The one admission path for Yjs updates, whichever way they arrive (a socket's sync
//! message or `POST /v1/documents/{id}/updates`): size limit, decoding, document limit.
//! Who may write is the caller's to decide before; what it does with a refusal (a close
//! code, an HTTP error) too.

use yrs::updates::decoder::Decode;
use yrs::Update;

use crate::room::Room;
use crate::LiveConfig;

/// An update that passed admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// The Yjs client id of the update's first change (0 when it has none).
    pub client_id: u64,
    /// An update that changes nothing: acknowledged, never stored.
    pub empty: bool,
}

/// Why an update was refused. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("update of {size} bytes exceeds the {limit}-byte limit")]
    UpdateTooLarge { size: usize, limit: usize },
    #[error("update is not a valid Yjs v1 update: {0}")]
    Undecodable(String),
    #[error("document would exceed its {limit}-byte limit")]
    DocumentTooLarge { limit: usize },
}

/// Checks `update` for `room` under `config`'s limits.
pub fn admit(config: &LiveConfig, room: &Room, update: &[u8]) -> Result<Admitted, Refusal> {
    if update.len() > config.max_update_bytes {
        return Err(Refusal::UpdateTooLarge {
            size: update.len(),
            limit: config.max_update_bytes,
        });
    }
    // yrs updates are not Send: nothing decoded outlives this function.
    let decoded = Update::decode_v1(update).map_err(|e| Refusal::Undecodable(e.to_string()))?;
    let client_id = decoded
        .state_vector_lower()
        .iter()
        .map(|(client, _)| client.get())
        .next()
        .unwrap_or(0);
    let empty = decoded.is_empty();
    if !empty && room.stored_bytes() + update.len() > config.max_document_bytes {
        return Err(Refusal::DocumentTooLarge {
            limit: config.max_document_bytes,
        });
    }
    Ok(Admitted { client_id, empty })
}
