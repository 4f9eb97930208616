//! The event log both sides share: the Postgres event store (source of truth, gap-free
//! global positions, per-stream hash chain), the reads the read side makes of it, and the
//! outbox relay that publishes every committed event to JetStream in global order.
//!
//! The write side (`collab-commands`) appends through [`EventStore`]; the read side
//! (`collab-projections`, workers) reads through [`EventLog`] and never depends on
//! command handling.

pub mod copy;
pub mod event_store;
pub mod keys;
pub mod leadership;
pub mod relay;
pub mod tail;

pub use event_store::{
    AppendContext, Appended, BatchAppend, EventLog, EventStore, ExpectedVersion, NewEvent,
    StoreError,
};
pub use relay::{Relay, RelayConfig};
pub use tail::{AppendSignal, Appends, LogTail};
