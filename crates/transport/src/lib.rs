//! TLS for baton: the cluster CA, node certificates, rustls configurations, the HTTPS
//! server that tells handlers who the peer is, and the HTTP client.
//!
//! This is the only crate that names rustls. Other crates hold the configurations through
//! the re-exported [`ServerConfig`] and [`ClientConfig`] types.

pub mod client;
mod der;
mod error;
pub mod pki;
pub mod serve;
pub mod tls;

pub use error::{Result, TransportError};
pub use rustls::{ClientConfig, ServerConfig};
