//! Audit: signed checkpoints over a workspace's stream heads, and the verifier that
//! recomputes hash chains, positions and checkpoints — the same code online (the server
//! reading Postgres) and offline (`collab audit verify --file` on an export).
//!
//! A hash chain proves each stream unaltered up to its last event, but a chain kept in
//! the same database cannot show that its tail was deleted or the whole table rewritten.
//! A checkpoint is the server's signed statement of every stream head of a workspace at a
//! position: a Merkle root (RFC 6962 layout) over `(stream id, version, hash)` sorted by
//! stream id, signed with Ed25519. Whoever holds the public key can check a log or an
//! export against it without trusting the database.

use std::collections::{BTreeMap, VecDeque};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_with::base64::Base64;
use serde_with::{serde_as, IfIsHumanReadable};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::catalogue::{event_enum, EventCodec};
use crate::envelope::{RecordedEvent, StreamCategory};
use crate::values::InvalidValue;

/// The server's signed statement of every stream head of the workspace at a position
/// (its own audit stream excluded). Appended every N events or T seconds.
#[serde_as]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditCheckpointSigned {
    /// Every event of the workspace at or before this global position is covered.
    pub covers_position: i64,
    /// How many streams (Merkle leaves) the root covers.
    pub streams: u64,
    /// Merkle root (SHA-256, RFC 6962 layout) over the stream heads sorted by stream id.
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub root: [u8; 32],
    /// The Ed25519 public key that signed it.
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub public_key: [u8; 32],
    /// Ed25519 signature over the checkpoint statement.
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub signature: Vec<u8>,
}

event_enum!(
    /// Events of a workspace's audit stream (`audit-<workspace id>`).
    AuditEvent in Audit {
        AuditCheckpointSigned = 1,
    }
);

/// One stream's last event, as a Merkle leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHead {
    pub stream_id: String,
    pub version: i64,
    pub hash: [u8; 32],
}

/// RFC 6962 Merkle tree hash over the heads sorted by stream id: leaves are
/// `SHA-256(0x00 ‖ postcard(stream_id, version, hash))`, nodes `SHA-256(0x01 ‖ left ‖ right)`,
/// split at the largest power of two below the count; the empty tree is `SHA-256("")`.
pub fn merkle_root(heads: &[StreamHead]) -> [u8; 32] {
    let mut sorted: Vec<&StreamHead> = heads.iter().collect();
    sorted.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
    let leaves: Vec<[u8; 32]> = sorted
        .iter()
        .map(|head| {
            let data = postcard::to_allocvec(&(&head.stream_id, head.version, head.hash))
                .expect("heads always encode");
            let mut hasher = Sha256::new();
            hasher.update([0u8]);
            hasher.update(data);
            hasher.finalize().into()
        })
        .collect();
    subtree(&leaves)
}

fn subtree(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let split = n.next_power_of_two() / 2;
            let mut hasher = Sha256::new();
            hasher.update([1u8]);
            hasher.update(subtree(&leaves[..split]));
            hasher.update(subtree(&leaves[split..]));
            hasher.finalize().into()
        }
    }
}

/// A checkpoint with the workspace it speaks for: what is signed and checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub workspace_id: Uuid,
    pub covers_position: i64,
    pub streams: u64,
    #[serde(with = "hex_bytes")]
    pub root: [u8; 32],
    #[serde(with = "hex_bytes")]
    pub public_key: [u8; 32],
    #[serde(with = "hex_vec")]
    pub signature: Vec<u8>,
    /// Present on an export's seal only: what the file holds. Signed too, under another
    /// statement than checkpoints, so a checkpoint cannot pass for a seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealFacts>,
}

/// What a sealed export holds: its number of events and its last position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealFacts {
    pub events: u64,
    pub last_position: i64,
}

impl Checkpoint {
    /// The bytes the signature covers.
    fn statement(
        workspace_id: Uuid,
        covers_position: i64,
        streams: u64,
        root: &[u8; 32],
        seal: Option<SealFacts>,
    ) -> Vec<u8> {
        match seal {
            None => postcard::to_allocvec(&(
                "collab-audit-checkpoint/1",
                workspace_id,
                covers_position,
                streams,
                root,
            )),
            Some(facts) => postcard::to_allocvec(&(
                "collab-audit-export-seal/1",
                workspace_id,
                covers_position,
                streams,
                root,
                facts.events,
                facts.last_position,
            )),
        }
        .expect("statements always encode")
    }

    /// Signs the workspace's `heads` as of `covers_position` (a checkpoint), or, with
    /// `seal`, an export holding exactly those events.
    pub fn sign(
        key: &SigningKey,
        workspace_id: Uuid,
        covers_position: i64,
        heads: &[StreamHead],
        seal: Option<SealFacts>,
    ) -> Self {
        let root = merkle_root(heads);
        let streams = heads.len() as u64;
        let signature = key.sign(&Self::statement(
            workspace_id,
            covers_position,
            streams,
            &root,
            seal,
        ));
        Self {
            workspace_id,
            covers_position,
            streams,
            root,
            public_key: key.verifying_key().to_bytes(),
            signature: signature.to_bytes().to_vec(),
            seal,
        }
    }

    pub fn from_event(workspace_id: Uuid, event: &AuditCheckpointSigned) -> Self {
        Self {
            workspace_id,
            covers_position: event.covers_position,
            streams: event.streams,
            root: event.root,
            public_key: event.public_key,
            signature: event.signature.clone(),
            seal: None,
        }
    }

    pub fn to_event(&self) -> AuditCheckpointSigned {
        AuditCheckpointSigned {
            covers_position: self.covers_position,
            streams: self.streams,
            root: self.root,
            public_key: self.public_key,
            signature: self.signature.clone(),
        }
    }

    /// Whether the signature holds for the key it names.
    pub fn signature_holds(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.public_key) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&self.signature) else {
            return false;
        };
        let statement = Self::statement(
            self.workspace_id,
            self.covers_position,
            self.streams,
            &self.root,
            self.seal,
        );
        key.verify(&statement, &signature).is_ok()
    }
}

/// Parses a signing key: the base64 of its 32-byte Ed25519 seed (`collab audit keygen`).
pub fn parse_signing_key(raw: &str) -> Result<SigningKey, InvalidValue> {
    let bytes = STANDARD
        .decode(raw.trim())
        .map_err(|_| InvalidValue::new("audit signing key", "must be base64"))?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|_| InvalidValue::new("audit signing key", "must be 32 bytes"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parses a public key: the base64 of its 32 bytes.
pub fn parse_public_key(raw: &str) -> Result<VerifyingKey, InvalidValue> {
    let bytes = STANDARD
        .decode(raw.trim())
        .map_err(|_| InvalidValue::new("public key", "must be base64"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| InvalidValue::new("public key", "must be 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| InvalidValue::new("public key", "is not an Ed25519 key"))
}

pub fn encode_key(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The first thing found wrong, located as precisely as the evidence allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Break {
    pub stream_id: Option<String>,
    pub stream_version: Option<i64>,
    pub position: i64,
    pub reason: String,
    /// For missing versions: the position of the stream's event before the hole (the
    /// missing events were between it and `position`). Lets the database verifier name
    /// the missing position from the global sequence.
    #[serde(skip)]
    pub missing_after: Option<i64>,
}

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub streams: usize,
    pub events: u64,
    pub checkpoints: u64,
    pub ok: bool,
    pub first_break: Option<Break>,
}

#[derive(Clone, Debug)]
struct Head {
    workspace_id: Uuid,
    category: StreamCategory,
    version: i64,
    hash: [u8; 32],
    position: i64,
}

/// Recomputes hash chains event by event (in position order) and checks checkpoints
/// against the heads at their positions. Checkpoints must be given up front (they are
/// appended after the position they cover): the database verifier reads them from the
/// audit streams first, the file verifier in a first pass over the file.
pub struct ChainVerifier {
    heads: BTreeMap<String, Head>,
    last_position: i64,
    events: u64,
    pending: VecDeque<(i64, Checkpoint)>,
    checkpoints: u64,
    trusted: Option<[u8; 32]>,
    first_break: Option<Break>,
}

impl ChainVerifier {
    /// `checkpoints`: (position of the checkpoint event, checkpoint). `trusted`: the only
    /// public key whose checkpoints count; without it any key's signature is checked but
    /// proves only that the checkpoint was not altered since it was signed.
    pub fn new(mut checkpoints: Vec<(i64, Checkpoint)>, trusted: Option<VerifyingKey>) -> Self {
        checkpoints.sort_by_key(|(_, cp)| cp.covers_position);
        Self {
            heads: BTreeMap::new(),
            last_position: 0,
            events: 0,
            pending: checkpoints.into(),
            checkpoints: 0,
            trusted: trusted.map(|k| k.to_bytes()),
            first_break: None,
        }
    }

    fn fail(&mut self, found: Break) {
        if self.first_break.is_none() {
            self.first_break = Some(found);
        }
    }

    pub fn last_position(&self) -> i64 {
        self.last_position
    }

    /// Checks the next event (in position order).
    pub fn push(&mut self, event: &RecordedEvent) {
        while let Some((_, cp)) = self.pending.front() {
            if cp.covers_position >= event.position {
                break;
            }
            let (at, cp) = self.pending.pop_front().expect("front exists");
            self.check_checkpoint(at, &cp, false);
        }
        self.events += 1;
        let stream = event.stream_id.to_string();
        let position = event.position;
        if position <= self.last_position {
            self.fail(Break {
                stream_id: Some(stream.clone()),
                stream_version: Some(event.stream_version),
                position,
                reason: format!(
                    "position {position} is not after the previous event's ({})",
                    self.last_position
                ),
                missing_after: None,
            });
        }
        self.last_position = self.last_position.max(position);
        let (expected_version, expected_prev, missing_after) = match self.heads.get(&stream) {
            Some(head) => (head.version + 1, Some(head.hash), Some(head.position)),
            None => (1, None, None),
        };
        if event.stream_version != expected_version {
            let reason = if event.stream_version > expected_version {
                format!(
                    "version {expected_version} of {stream} is missing (found version {} next)",
                    event.stream_version
                )
            } else {
                format!(
                    "version {} of {stream} appears again or out of order (expected {expected_version})",
                    event.stream_version
                )
            };
            self.fail(Break {
                stream_id: Some(stream.clone()),
                stream_version: Some(expected_version),
                position,
                reason,
                missing_after: missing_after.filter(|_| event.stream_version > expected_version),
            });
        } else if event.prev_hash != expected_prev {
            self.fail(Break {
                stream_id: Some(stream.clone()),
                stream_version: Some(event.stream_version),
                position,
                reason: "prev_hash is not the hash of the stream's previous event".into(),
                missing_after: None,
            });
        }
        if event.expected_hash(event.prev_hash.as_ref()) != event.hash {
            self.fail(Break {
                stream_id: Some(stream.clone()),
                stream_version: Some(event.stream_version),
                position,
                reason: "hash does not match the event's content (altered)".into(),
                missing_after: None,
            });
        }
        if event.stream_id.category == StreamCategory::Audit {
            // Checkpoints were handed in up front; make sure this one was among them.
            if let Ok(AuditEvent::AuditCheckpointSigned(_)) = AuditEvent::decode_recorded(event) {
                self.checkpoints += 1;
            }
        }
        self.heads.insert(
            stream,
            Head {
                workspace_id: event.metadata.workspace_id.as_uuid(),
                category: event.stream_id.category,
                version: event.stream_version,
                hash: event.hash,
                position,
            },
        );
    }

    /// The heads of `workspace` now: what a checkpoint signs (its own audit stream
    /// excluded) or an export's seal (everything exported, audit stream included).
    fn heads_of(&self, workspace: Uuid, with_audit: bool) -> Vec<StreamHead> {
        self.heads
            .iter()
            .filter(|(_, h)| {
                h.workspace_id == workspace && (with_audit || h.category != StreamCategory::Audit)
            })
            .map(|(id, h)| StreamHead {
                stream_id: id.clone(),
                version: h.version,
                hash: h.hash,
            })
            .collect()
    }

    /// The last version and hash seen of a stream.
    pub fn head(&self, stream: &str) -> Option<(i64, [u8; 32], i64)> {
        self.heads
            .get(stream)
            .map(|h| (h.version, h.hash, h.position))
    }

    fn check_checkpoint(&mut self, at: i64, cp: &Checkpoint, with_audit: bool) {
        let audit_stream = Some(format!(
            "{}-{}",
            StreamCategory::Audit.as_str(),
            cp.workspace_id
        ));
        let fail = |reason: String| Break {
            stream_id: audit_stream.clone(),
            stream_version: None,
            position: at,
            reason,
            missing_after: None,
        };
        if !cp.signature_holds() {
            self.fail(fail(format!(
                "checkpoint covering position {} has a signature that does not hold (forged or altered)",
                cp.covers_position
            )));
            return;
        }
        if self.trusted.is_some_and(|key| key != cp.public_key) {
            self.fail(fail(format!(
                "checkpoint covering position {} is signed by a key that is not the trusted one",
                cp.covers_position
            )));
            return;
        }
        let heads = self.heads_of(cp.workspace_id, with_audit);
        if heads.len() as u64 != cp.streams || merkle_root(&heads) != cp.root {
            self.fail(fail(format!(
                "the log does not match the checkpoint covering position {}: it signed {} stream heads, \
                 the log has {} with a different root (events deleted, added or altered at or before it)",
                cp.covers_position,
                cp.streams,
                heads.len()
            )));
        }
    }

    /// Checks the checkpoints not reached yet and, for an export, its seal: a checkpoint
    /// made when the export was written over the heads of everything in it (its audit
    /// stream included, so dropping a checkpoint from the file shows too).
    pub fn finish(mut self, seal: Option<(i64, Checkpoint)>) -> Report {
        while let Some((at, cp)) = self.pending.pop_front() {
            self.check_checkpoint(at, &cp, false);
        }
        if let Some((at, seal)) = seal {
            let at = at.max(self.last_position);
            let fail = |reason: String| Break {
                stream_id: None,
                stream_version: None,
                position: at,
                reason,
                missing_after: None,
            };
            match seal.seal {
                None => self.fail(fail(
                    "the last line is a checkpoint, not an export seal (truncated?)".into(),
                )),
                Some(facts)
                    if facts.events != self.events || facts.last_position != self.last_position =>
                {
                    self.fail(fail(format!(
                        "the seal covers {} events up to position {}, the file holds {} up to {}",
                        facts.events, facts.last_position, self.events, self.last_position
                    )))
                }
                Some(_) => {}
            }
            if let Some((stream, _)) = self
                .heads
                .iter()
                .find(|(_, h)| h.workspace_id != seal.workspace_id)
            {
                let stream = stream.clone();
                self.fail(fail(format!(
                    "{stream} belongs to another workspace than the seal's"
                )));
            }
            self.check_checkpoint(at, &seal, true);
        }
        Report {
            streams: self.heads.len(),
            events: self.events,
            checkpoints: self.checkpoints,
            ok: self.first_break.is_none(),
            first_break: self.first_break,
        }
    }

    /// Records a break found outside the chains (the database's position sequence).
    pub fn report_break(&mut self, found: Break) {
        self.fail(found);
    }

    /// The break found so far, for callers that refine its location.
    pub fn first_break_mut(&mut self) -> Option<&mut Break> {
        self.first_break.as_mut()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::audit::hex(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let raw = String::deserialize(d)?;
        crate::audit::unhex(&raw)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::audit::hex(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let raw = String::deserialize(d)?;
        crate::audit::unhex(&raw).ok_or_else(|| serde::de::Error::custom("expected hex digits"))
    }
}

/// Lowercase hex, as replay lines carry hashes.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

pub fn unhex(raw: &str) -> Option<Vec<u8>> {
    hex::decode(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(id: &str, version: i64) -> StreamHead {
        StreamHead {
            stream_id: id.into(),
            version,
            hash: [version as u8; 32],
        }
    }

    #[test]
    fn merkle_roots_depend_on_every_leaf_not_on_order() {
        let a = [
            head("document-1", 1),
            head("content-1", 4),
            head("workspace-1", 2),
        ];
        let b = [
            head("workspace-1", 2),
            head("document-1", 1),
            head("content-1", 4),
        ];
        assert_eq!(merkle_root(&a), merkle_root(&b));
        let c = [
            head("workspace-1", 2),
            head("document-1", 1),
            head("content-1", 5),
        ];
        assert_ne!(merkle_root(&a), merkle_root(&c));
        assert_ne!(merkle_root(&a[..2]), merkle_root(&a));
        assert_eq!(hex(&merkle_root(&[])), hex(&Sha256::digest([])));
    }

    #[test]
    fn checkpoints_sign_and_refuse_tampering() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let heads = [head("document-1", 1)];
        let cp = Checkpoint::sign(&key, Uuid::nil(), 10, &heads, None);
        assert!(cp.signature_holds());
        let mut forged = cp.clone();
        forged.covers_position = 11;
        assert!(!forged.signature_holds());
        let mut forged = cp.clone();
        forged.root[0] ^= 1;
        assert!(!forged.signature_holds());
        let mut as_seal = cp.clone();
        as_seal.seal = Some(SealFacts {
            events: 1,
            last_position: 10,
        });
        assert!(!as_seal.signature_holds(), "a checkpoint is not a seal");
        let seed = encode_key(&[7; 32]);
        assert_eq!(parse_signing_key(&seed).unwrap().to_bytes(), [7; 32]);
        assert!(parse_signing_key("short").is_err());
        assert_eq!(unhex(&hex(&[0, 255, 16])).unwrap(), vec![0, 255, 16]);
    }
}
