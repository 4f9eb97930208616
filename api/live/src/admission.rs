//! The admission of updates (`collab_sync::admission`) under a `LiveConfig`'s limits.

pub use collab_sync::admission::{Admitted, Limits, Refusal};

use crate::LiveConfig;

impl LiveConfig {
    /// The limits updates are admitted under.
    pub fn limits(&self) -> Limits {
        Limits {
            max_update_bytes: self.max_update_bytes,
            max_document_bytes: self.max_document_bytes,
        }
    }
}

/// Checks `update` under `config`'s limits (see [`collab_sync::admit`]).
pub fn admit(
    config: &LiveConfig,
    stored_bytes: usize,
    update: &[u8],
    stored: bool,
) -> Result<Admitted, Refusal> {
    collab_sync::admit(&config.limits(), stored_bytes, update, stored)
}
