//! The HTTPS server: TLS handshake, then HTTP/1.1 into an axum router that can see who the
//! peer is through an [`axum::Extension<PeerIdentity>`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::der;

/// A TLS handshake must finish within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A client must send a request's headers within this long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Who is on the other end of a connection.
///
/// `Some(name)` when the client presented a certificate; rustls has then already verified
/// that it chains to the cluster CA (the handshake fails otherwise), and `name` is its
/// subject common name, which baton issues equal to the node name (and its DNS SAN).
/// `None` for a client without a certificate: an anonymous caller, which may read but
/// must not change anything by virtue of its connection alone. (A CA-signed certificate
/// without a readable common name, which baton never issues, also counts as `None`.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity(pub Option<String>);

impl PeerIdentity {
    /// Whether the peer presented a certificate issued by the cluster CA.
    pub fn authenticated(&self) -> bool {
        self.0.is_some()
    }

    /// The peer's node name, if authenticated.
    pub fn node_name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether the peer is the node called `name`.
    pub fn is_node(&self, name: &str) -> bool {
        self.node_name() == Some(name)
    }

    /// Reads the identity from a finished server-side handshake.
    fn of(tls: &TlsStream<TcpStream>) -> Self {
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first());
        Self(leaf.and_then(|cert| der::subject_common_name(cert)))
    }
}

impl fmt::Display for PeerIdentity {
    /// The node name, or `anonymous`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.node_name().unwrap_or("anonymous"))
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` fires.
///
/// `shutdown` fires when its value becomes `true` or when every sender is dropped. Then the
/// loop stops accepting and open connections are asked to finish gracefully (in-flight
/// requests complete; this function does not wait for them). A failed handshake or
/// connection is logged at debug level and never stops the loop. Handlers receive an
/// `Extension<PeerIdentity>` for their connection.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            _ = fired(&mut shutdown) => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let conn =
                    serve_connection(stream, acceptor.clone(), router.clone(), shutdown.clone());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

/// Completes when shutdown is requested (value `true` or all senders gone).
async fn fired(shutdown: &mut watch::Receiver<bool>) {
    // An error means every sender is gone, which also means shut down.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Handshake, then HTTP/1.1 until the client leaves or shutdown fires.
async fn serve_connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    stream.set_nodelay(true)?;
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await??;
    let identity = PeerIdentity::of(&tls);
    tracing::debug!(peer = %identity, "TLS handshake done");
    let service = TowerToHyperService::new(router.layer(Extension(identity)));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return Ok(result?),
        _ = fired(&mut shutdown) => conn.as_mut().graceful_shutdown(),
    }
    Ok(conn.await?)
}
