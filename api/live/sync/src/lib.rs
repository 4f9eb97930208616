//! The untrusted-input edge of live editing, kept apart from everything that does I/O so
//! it can be fuzzed on its own (`tests/fuzz`): decoding a sync socket's frame into
//! y-protocols messages, and admitting a Yjs update (size limit, decoding, document
//! limit). `collab-live` runs every inbound frame and update through these.

pub mod admission;
pub mod frames;

pub use admission::{admit, Admitted, Limits, Refusal};
pub use frames::decode_frame;
