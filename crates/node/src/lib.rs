//! The node daemon (`baton daemon`): feeds events to the pure crates (model, membership,
//! policy) and carries out their decisions. It owns every clock, task, socket and the
//! shutdown path.

mod api;
mod clock;
mod coordinator;
mod daemon;
mod heartbeat;
mod network;
mod node;
mod policy_input;
mod reconcile;
mod rpc;
pub mod setup;

pub use daemon::run_daemon;
