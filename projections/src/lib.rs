//! The read side: projectors fold the event log into read models (Postgres tables), and
//! the query functions that serve them.
//!
//! Each projector is a durable JetStream pull consumer. It writes its read model and its
//! checkpoint in one transaction, so a redelivered event is a no-op; it fills any gap
//! in what JetStream delivers from the Postgres log (the source of truth), so it never
//! skips an event. `rebuild` replays the Postgres log from position 0 to the same result.

pub mod checkpoint;
pub mod documents;
pub mod projector;
pub mod rebuild;
pub mod runtime;
pub mod workspaces;

pub use checkpoint::{projector_positions, wait_for_position};
pub use projector::{ProjectionError, Projector};
pub use rebuild::rebuild;
pub use runtime::run_projector;
