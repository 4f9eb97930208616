//! A sync socket's frame: decoded as the session decodes it, and every update it carries
//! admitted as the session admits it. Nothing may panic.
#![no_main]

use collab_sync::{admit, decode_frame, Limits};
use libfuzzer_sys::fuzz_target;
use yrs::sync::{Message, SyncMessage};

/// The server catches what yrs asserts while decoding (admission refuses the update);
/// libFuzzer's hook would abort on those caught panics, so a hook that only prints the
/// message is put in its place (no backtrace: capturing one per caught panic costs a second
/// and hundreds of MB). A panic that escapes still fails the run.
static QUIET_HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|frame: &[u8]| {
    QUIET_HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let limits = Limits {
        max_update_bytes: 1 << 20,
        max_document_bytes: 64 << 20,
    };
    if let Ok(messages) = decode_frame(frame) {
        for message in messages {
            if let Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) =
                message
            {
                let _ = admit(&limits, 0, &update, true);
            }
        }
    }
});
