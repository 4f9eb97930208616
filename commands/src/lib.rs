//! The write side: the Postgres event store (source of truth), command execution for
//! cqrs-es aggregates on top of it (load from snapshot + tail, decide, append with
//! optimistic concurrency), and the outbox relay that publishes every committed event to
//! JetStream in global order.

pub mod aggregate_store;
pub mod event_store;
pub mod relay;

pub use aggregate_store::{AggregateStore, CommandError, CommandMeta, Committed};
pub use event_store::{
    AppendContext, Appended, BatchAppend, EventStore, ExpectedVersion, NewEvent, StoreError,
};
pub use relay::{Relay, RelayConfig};
