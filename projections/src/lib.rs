//! The read side: read models and workers fold the event log, and the query functions
//! that serve the read models.
//!
//! A read model ([`ReadModel`]) or worker ([`Worker`]) is one type registered in
//! [`Registry::standard`]; the runtime is generic over both. Each runs as a durable
//! JetStream pull consumer, reads its categories' events from the Postgres log (the
//! source of truth) through `collab_store::EventLog`, and writes its checkpoint in the
//! same transaction as its effect on Postgres, so it never skips or repeats an event.
//! `rebuild` replays the log from position 0 to the same result. This crate depends on
//! the log, never on command handling.

pub mod activity;
pub mod audit;
mod bursts;
pub mod checkpoint;
pub mod checkpointer;
pub mod comments;
pub mod documents;
pub mod files;
pub mod history;
pub mod notifications;
pub mod profiles;
pub mod read_model;
pub mod rebuild;
pub mod registry;
pub mod runtime;
pub mod status;
pub mod verify;
pub mod webhooks;
pub mod worker;
pub mod workspaces;

pub use checkpoint::{wait_for_position, Reached};
pub use read_model::{ProjectionError, ReadModel};
pub use rebuild::{rebuild, Rebuilt};
pub use registry::{Consumer, Registry};
pub use runtime::run_consumer;
pub use status::{status, ConsumerStatus};
pub use worker::{RetryPolicy, Worker, WorkerError};
