//! The pure heart of Candlefish Collab: identifiers, validated values, the aggregates
//! (workspaces and documents, written against cqrs-es's `Aggregate` trait), the events
//! they emit, and the envelope every event travels in (postcard payload, metadata,
//! per-stream hash chain).
//!
//! Nothing here does I/O. `commands` persists what these aggregates decide, the relay
//! publishes the envelopes, `projections` folds them into read models.

pub mod access;
pub mod aggregate;
pub mod audit;
pub mod catalogue;
pub mod comment;
pub mod content;
pub mod document;
pub mod envelope;
pub mod file;
pub mod ids;
pub mod notification;
mod openapi;
pub mod personal;
pub mod profile;
#[cfg(test)]
mod properties;
pub mod replay;
pub mod role;
pub mod values;
pub mod workspace;

pub use aggregate::EventSourced;
pub use catalogue::{DomainEvent, EventCodec, UnknownEvent};
pub use envelope::{Actor, EventMetadata, RecordedEvent, StreamCategory, StreamId, WireEnvelope};
pub use ids::{DocumentId, EventId, UserId, WorkspaceId};
pub use role::{DocumentRole, Scope, WorkspaceRole};
pub use values::{FolderPath, InvalidValue, Title, VersionName};
