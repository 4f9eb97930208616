//! Integration and end-to-end tests: real Postgres, real NATS JetStream, the real
//! application (in process) and the real `collab` binary. One binary for the crate.

mod activity;
mod api;
mod assets;
mod backup;
mod binary;
mod comments;
mod event_store;
mod extensions;
mod faults;
mod files;
mod graphql;
mod history;
mod live;
mod notifications;
mod openapi;
mod profiles;
mod projections;
mod relay;
mod search;
mod security;
mod sharing;
mod versions;
mod web;
mod webhooks;
