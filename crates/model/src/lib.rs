//! Baton's vocabulary and cluster database: the numbered, append-only `Command`s and the
//! deterministic `ClusterState::apply`.
//!
//! Architecture invariant: this crate is pure. No I/O, no clock, no randomness; time enters
//! as `Update::now_ms`, new IDs and secrets are made by the proposer.

mod command;
mod error;
mod resource;
pub mod settings;
mod state;
mod types;
mod validate;

pub use command::{Command, CommandResult, Update};
pub use error::ModelError;
pub use resource::*;
pub use state::{ClusterState, EVENTS_MAX, FAILOVER_HISTORY_MAX};
pub use types::*;
pub use validate::{check_name, NAME_LEN_MAX};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_resources;
