//! The write side: command execution for cqrs-es aggregates on the event store
//! (`collab-store`): load from snapshot + tail, decide, append with optimistic
//! concurrency; and what a document's or workspace's aggregates say a caller may do.

pub mod access;
pub mod aggregate_store;

pub use aggregate_store::{AggregateStore, CommandError, CommandMeta, Committed};
