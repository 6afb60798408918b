//! The HTTP client nodes and tools use to talk to nodes.

use std::time::Duration;

use rustls::ClientConfig;

use crate::error::Result;

/// Connecting gives up after this long at most (less if the request timeout is shorter).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTPS client using `tls` (see [`crate::tls`]), with a whole-request timeout of
/// `request_timeout`, TCP_NODELAY, and no proxy (environment proxies are ignored).
pub fn http_client(tls: ClientConfig, request_timeout: Duration) -> Result<reqwest::Client> {
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .tcp_nodelay(true)
        .connect_timeout(request_timeout.min(MAX_CONNECT_TIMEOUT))
        .timeout(request_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .no_proxy()
        .build()?;
    Ok(client)
}
