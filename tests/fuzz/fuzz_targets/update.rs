//! A Yjs update as an integration posts it: admitted, then applied to a document the way
//! a room applies it, and the document encoded again. Nothing may panic.
#![no_main]

use collab_sync::{admit, Limits};
use libfuzzer_sys::fuzz_target;
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

/// The server catches what yrs asserts while decoding (admission refuses the update);
/// libFuzzer's hook would abort on those caught panics, so a hook that only prints the
/// message is put in its place (no backtrace: capturing one per caught panic costs a second
/// and hundreds of MB). A panic that escapes still fails the run.
static QUIET_HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|update: &[u8]| {
    QUIET_HOOK.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
    let limits = Limits {
        max_update_bytes: 1 << 20,
        max_document_bytes: 64 << 20,
    };
    let Ok(admitted) = admit(&limits, 0, update, true) else {
        return;
    };
    if admitted.empty {
        return;
    }
    let doc = yrs::Doc::new();
    if let Ok(decoded) = Update::decode_v1(update) {
        let mut txn = doc.transact_mut();
        let _ = txn.apply_update(decoded);
    }
    let _ = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
});
