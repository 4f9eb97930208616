//! The one admission path for Yjs updates, whichever way they arrive (a socket's sync
//! message or `POST /v1/documents/{id}/updates`): size limit, decoding, document limit.
//! Who may write is the caller's to decide before; what it does with a refusal (a close
//! code, an HTTP error) too.

use yrs::updates::decoder::Decode;
use yrs::Update;

/// The limits an update is admitted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted update.
    pub max_update_bytes: usize,
    /// Largest document (last snapshot + updates since).
    pub max_document_bytes: usize,
}

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

/// Checks `update` under `limits`, for a document holding `stored_bytes` already.
/// `stored` says whether the caller will store it (a read-only socket's update is answered
/// with a permission-denied message and dropped: the document limit does not apply).
pub fn admit(
    config: &Limits,
    stored_bytes: usize,
    update: &[u8],
    stored: bool,
) -> Result<Admitted, Refusal> {
    if update.len() > config.max_update_bytes {
        return Err(Refusal::UpdateTooLarge {
            size: update.len(),
            limit: config.max_update_bytes,
        });
    }
    // How many clients it declares must fit in its length (see `frames::counts_fit`).
    crate::frames::counts_fit(update, 3).map_err(Refusal::Undecodable)?;
    // yrs updates are not Send: nothing decoded outlives this function. yrs asserts some
    // properties of what it decodes (a client id over 53 bits, found by fuzzing): a hostile
    // update must be refused, never take a task down.
    let decoded = std::panic::catch_unwind(|| Update::decode_v1(update))
        .map_err(|_| Refusal::Undecodable("malformed update".into()))?
        .map_err(|e| Refusal::Undecodable(e.to_string()))?;
    let client_id = decoded
        .state_vector_lower()
        .iter()
        .map(|(client, _)| client.get())
        .next()
        .unwrap_or(0);
    let empty = decoded.is_empty();
    // Applied alone to an empty document and encoded again, as a room will (a new client's
    // sync, a snapshot): yrs panics on some decodable updates whose missing dependencies
    // cannot be merged (found by fuzzing). Stored, such an update would break its
    // document for every load after; refused, it changes nothing.
    if !empty && !applies(update) {
        return Err(Refusal::Undecodable(
            "the update cannot be applied to a document".into(),
        ));
    }
    if stored && !empty && stored_bytes + update.len() > config.max_document_bytes {
        return Err(Refusal::DocumentTooLarge {
            limit: config.max_document_bytes,
        });
    }
    Ok(Admitted { client_id, empty })
}

/// Whether `update` applies to an empty document and the result encodes, without a panic.
fn applies(update: &[u8]) -> bool {
    use yrs::{ReadTxn, StateVector, Transact};
    std::panic::catch_unwind(|| {
        let doc = yrs::Doc::new();
        let decoded = Update::decode_v1(update).ok()?;
        doc.transact_mut().apply_update(decoded).ok()?;
        let encoded = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        Some(encoded)
    })
    .ok()
    .flatten()
    .is_some()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_update_that_cannot_be_merged_is_refused_not_stored() {
        // Found by fuzzing (target `update`): decodes, applies with missing dependencies,
        // and yrs panics when the document is encoded again.
        let hostile = [
            0x01, 0x01, 0x00, 0x23, 0x02, 0x80, 0x00, 0x20, 0x02, 0x80, 0x00, 0x01, 0x2d, 0x00,
        ];
        let limits = Limits {
            max_update_bytes: 1024,
            max_document_bytes: 4096,
        };
        assert!(matches!(
            admit(&limits, 0, &hostile, true),
            Err(Refusal::Undecodable(_))
        ));
    }

    #[test]
    fn a_client_id_over_53_bits_is_refused_not_a_panic() {
        // Found by fuzzing (tests/fuzz, target `update`).
        let hostile = [0x4c, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x4f];
        let limits = Limits {
            max_update_bytes: 1024,
            max_document_bytes: 4096,
        };
        // Refused in builds with debug assertions (where yrs asserts), decoded otherwise;
        // never a panic.
        let admitted = admit(&limits, 0, &hostile, true);
        if cfg!(debug_assertions) {
            assert!(
                matches!(admitted, Err(Refusal::Undecodable(_))),
                "{admitted:?}"
            );
        }
    }

    use yrs::updates::encoder::Encode;
    use yrs::{ReadTxn, Text, Transact};

    use super::*;

    fn update(text: &str) -> Vec<u8> {
        let doc = yrs::Doc::with_client_id(7);
        let root = doc.get_or_insert_text("t");
        root.insert(&mut doc.transact_mut(), 0, text);
        let update = doc
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        update
    }

    fn config(max_update_bytes: usize, max_document_bytes: usize) -> Limits {
        Limits {
            max_update_bytes,
            max_document_bytes,
        }
    }

    #[test]
    fn an_update_is_admitted_with_its_client_id() {
        let admitted = admit(&config(1024, 4096), 0, &update("hello"), true).unwrap();
        assert_eq!(
            admitted,
            Admitted {
                client_id: 7,
                empty: false
            }
        );
    }

    #[test]
    fn an_empty_update_is_admitted_as_empty_even_in_a_full_document() {
        let empty = yrs::Update::new().encode_v1();
        let admitted = admit(&config(1024, 10), 10, &empty, true).unwrap();
        assert!(admitted.empty);
    }

    #[test]
    fn refusals_say_which_limit() {
        let big = update(&"x".repeat(200));
        assert!(matches!(
            admit(&config(100, 4096), 0, &big, true),
            Err(Refusal::UpdateTooLarge { limit: 100, .. })
        ));
        assert!(matches!(
            admit(&config(1024, 100), 50, &big, true),
            Err(Refusal::DocumentTooLarge { limit: 100 })
        ));
        assert!(matches!(
            admit(&config(1024, 4096), 0, &[0xff, 0xff, 0xff], true),
            Err(Refusal::Undecodable(_))
        ));
    }

    #[test]
    fn the_document_limit_applies_only_to_what_is_stored() {
        let big = update(&"x".repeat(200));
        assert!(admit(&config(1024, 100), 50, &big, false).is_ok());
    }
}
