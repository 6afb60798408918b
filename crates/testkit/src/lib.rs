//! Real local clusters for `baton demo`, the benchmarks and the integration tests: real
//! `baton daemon` processes on private loopback addresses, started and removed by the caller.

pub mod cluster;
pub mod http;
pub mod procs;

pub use cluster::{LocalCluster, LocalNode, Options};
