//! The y-websocket wire protocol (y-protocols over lib0): building the frames we send.
//! One protocol message per WebSocket frame — stock clients read only the first.

use bytes::Bytes;
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::encoder::Encode;
use yrs::StateVector;

pub fn sync_step1(state_vector: StateVector) -> Bytes {
    Message::Sync(SyncMessage::SyncStep1(state_vector))
        .encode_v1()
        .into()
}

pub fn sync_step2(update: Vec<u8>) -> Bytes {
    Message::Sync(SyncMessage::SyncStep2(update))
        .encode_v1()
        .into()
}

pub fn sync_update(update: &[u8]) -> Bytes {
    Message::Sync(SyncMessage::Update(update.to_vec()))
        .encode_v1()
        .into()
}

pub fn awareness(update: AwarenessUpdate) -> Bytes {
    Message::Awareness(update).encode_v1().into()
}

/// An awareness update about no clients (`1, 1, 0`): changes nothing on the client, but
/// counts as a message received, which is what keeps stock clients from reconnecting.
pub fn keepalive() -> Bytes {
    Bytes::from_static(&[1, 1, 0])
}

/// `2, 0, reason`: what stock clients understand as "permission denied".
pub fn permission_denied(reason: &str) -> Bytes {
    Message::Auth(Some(reason.to_owned())).encode_v1().into()
}

/// WebSocket close codes we use (4xxx are application codes).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const UNSUPPORTED: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const RESTARTING: u16 = 1012;
    pub const TRY_AGAIN: u16 = 1013;
    pub const UNAUTHENTICATED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const NOT_FOUND: u16 = 4404;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_y_protocols_layout() {
        // messageSync, messageYjsUpdate, length, bytes
        assert_eq!(sync_update(&[0, 0]).as_ref(), &[0, 2, 2, 0, 0]);
        assert_eq!(sync_step2(vec![0, 0]).as_ref(), &[0, 1, 2, 0, 0]);
        // messageAuth, permission denied, string
        assert_eq!(permission_denied("no").as_ref(), &[2, 0, 2, b'n', b'o']);
    }
}
