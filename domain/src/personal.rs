//! Personal data in events: sealed with the person's own data key, so that destroying the
//! key erases the data from every copy of the log at once ("crypto-shredding").
//!
//! A field is sealed with XChaCha20-Poly1305 under a 256-bit key that only the key table
//! holds, never an event or a message on JetStream. The associated data binds the
//! ciphertext to its owner and its field, so a ciphertext copied into another person's
//! event, or into another field, does not open. The hash chain covers the ciphertext as
//! stored: it verifies before and after the key is gone.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use serde_with::base64::Base64;
use serde_with::{serde_as, IfIsHumanReadable};
use uuid::Uuid;

use crate::ids::UserId;

/// A person's data key: 32 random bytes, kept in the key table and nowhere else.
#[derive(Clone)]
pub struct DataKey {
    pub id: Uuid,
    bytes: [u8; 32],
}

impl DataKey {
    pub const LEN: usize = 32;
    pub const NONCE_LEN: usize = 24;

    pub fn new(id: Uuid, bytes: [u8; 32]) -> Self {
        Self { id, bytes }
    }

    /// The key from the bytes the key table holds (`None` unless exactly 32).
    pub fn from_slice(id: Uuid, bytes: &[u8]) -> Option<Self> {
        Some(Self::new(id, bytes.try_into().ok()?))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// `plain` sealed for `owner`'s `field`, with `nonce` (24 random bytes, never reused
    /// with this key: drawn fresh for every field).
    pub fn seal(&self, owner: &UserId, field: &str, nonce: [u8; 24], plain: &str) -> Sealed {
        let ciphertext = XChaCha20Poly1305::new((&self.bytes).into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: &associated_data(owner, field),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message shorter than 256 GiB");
        Sealed {
            key_id: self.id,
            nonce,
            ciphertext,
        }
    }

    /// What `sealed` holds, when it was sealed with this key for `owner`'s `field`.
    pub fn open(&self, owner: &UserId, field: &str, sealed: &Sealed) -> Option<String> {
        if sealed.key_id != self.id {
            return None;
        }
        let plain = XChaCha20Poly1305::new((&self.bytes).into())
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &associated_data(owner, field),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn associated_data(owner: &UserId, field: &str) -> Vec<u8> {
    format!("collab personal data\0{owner}\0{field}").into_bytes()
}

/// A personal-data field as events carry it: ciphertext, and which key opens it.
#[serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Sealed {
    /// The data key it was sealed with (one of the person's; gone once they are erased).
    pub key_id: Uuid,
    /// The XChaCha20-Poly1305 nonce (24 bytes).
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub nonce: [u8; 24],
    /// The field's UTF-8 text, encrypted, with its 16-byte tag.
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub ciphertext: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_field_opens_only_for_its_owner_field_and_key() {
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let key = DataKey::new(Uuid::now_v7(), [7; 32]);
        let sealed = key.seal(&alice, "email", [1; 24], "alice@example.com");
        assert!(!sealed
            .ciphertext
            .windows(5)
            .any(|w| w == b"alice".as_slice()));
        assert_eq!(
            key.open(&alice, "email", &sealed).as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(key.open(&bob, "email", &sealed), None);
        assert_eq!(key.open(&alice, "display_name", &sealed), None);
        let other = DataKey::new(key.id, [8; 32]);
        assert_eq!(other.open(&alice, "email", &sealed), None);
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(key.open(&alice, "email", &tampered), None);
    }
}
