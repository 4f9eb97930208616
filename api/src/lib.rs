//! The HTTP API (axum) and the process that hosts every role: it accepts commands
//! (validated, authorised, executed by `commands` against the event store), serves
//! queries from the read models (waiting for a requested position when asked), and runs
//! the relay and the projectors in the background when those roles are enabled.
//!
//! `Application::build` is used by the `collab` binary and by the tests alike.

pub mod app;
pub mod auth;
pub mod database_health;
pub mod error;
pub mod extract;
pub mod files;
pub mod graphql;
pub mod mailer;
pub mod observability;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod settings;
pub mod state;
pub mod web;
pub mod webhooks;

pub use app::{Application, StartupError};
pub use settings::{Roles, Settings};
