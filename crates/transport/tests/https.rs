//! End-to-end: real TLS handshakes on 127.0.0.1 between `serve` and `http_client`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use baton_transport::client::http_client;
use baton_transport::pki::{ca_fingerprint, ClusterCa, NodeCert};
use baton_transport::serve::{serve, PeerIdentity};
use baton_transport::tls::{client_config, pinned_ca_client_config, server_config};
use baton_transport::ClientConfig;
use tokio::sync::watch;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A running server and what is needed to talk to it.
struct Server {
    addr: SocketAddr,
    ca: ClusterCa,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn whoami(Extension(peer): Extension<PeerIdentity>) -> String {
    peer.to_string()
}

async fn start_server() -> Server {
    let ca = ClusterCa::generate("test").unwrap();
    let node = ca.issue_node_cert("server-node", &[LOCALHOST]).unwrap();
    let tls = server_config(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap();
    let listener = tokio::net::TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/whoami", get(whoami));
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(serve(listener, tls, router, shutdown));
    Server {
        addr,
        ca,
        stop,
        task,
    }
}

async fn get_whoami(server: &Server, tls: ClientConfig) -> Result<String, reqwest::Error> {
    let client = http_client(tls, Duration::from_secs(5)).unwrap();
    let url = format!("https://{}/whoami", server.addr);
    client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

/// The error and all its sources, joined, so tests can check why a request failed.
fn reasons(result: Result<String, reqwest::Error>) -> String {
    let error = result.expect_err("request should have failed");
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        text = format!("{text}: {inner}");
        source = inner.source();
    }
    text
}

fn identity(node: &NodeCert) -> Option<(&str, &str)> {
    Some((node.cert_pem.as_str(), node.key_pem.as_str()))
}

#[tokio::test]
async fn peer_identity_follows_client_certificate() {
    let server = start_server().await;
    let node = server.ca.issue_node_cert("node-7", &[]).unwrap();

    let mutual = client_config(&server.ca.cert_pem, identity(&node)).unwrap();
    assert_eq!(get_whoami(&server, mutual).await.unwrap(), "node-7");

    let anonymous = client_config(&server.ca.cert_pem, None).unwrap();
    assert_eq!(get_whoami(&server, anonymous).await.unwrap(), "anonymous");
}

#[tokio::test]
async fn client_trusting_another_ca_fails() {
    let server = start_server().await;
    let other = ClusterCa::generate("other").unwrap();
    let tls = client_config(&other.cert_pem, None).unwrap();
    let why = reasons(get_whoami(&server, tls).await);
    assert!(why.contains("UnknownIssuer"), "{why}");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let server = start_server().await;
    let other = ClusterCa::generate("other").unwrap();
    let intruder = other.issue_node_cert("intruder", &[]).unwrap();
    let tls = client_config(&server.ca.cert_pem, identity(&intruder)).unwrap();
    let why = reasons(get_whoami(&server, tls).await);
    assert!(why.contains("UnknownCA"), "{why}");
    // The failed handshake did not stop the server.
    let anonymous = client_config(&server.ca.cert_pem, None).unwrap();
    assert_eq!(get_whoami(&server, anonymous).await.unwrap(), "anonymous");
}

#[tokio::test]
async fn pinned_ca_fingerprint_decides() {
    let server = start_server().await;
    let right = ca_fingerprint(&server.ca.cert_pem).unwrap();
    let got = get_whoami(&server, pinned_ca_client_config(&right))
        .await
        .unwrap();
    assert_eq!(got, "anonymous");

    let upper = right.to_uppercase();
    assert!(get_whoami(&server, pinned_ca_client_config(&upper))
        .await
        .is_ok());

    let other = ClusterCa::generate("test").unwrap();
    let wrong = ca_fingerprint(&other.cert_pem).unwrap();
    let why = reasons(get_whoami(&server, pinned_ca_client_config(&wrong)).await);
    assert!(why.contains("UnknownIssuer"), "{why}");
}

#[tokio::test]
async fn garbage_connection_does_not_stop_server() {
    use tokio::io::AsyncWriteExt;
    let server = start_server().await;
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(raw);
    let tls = client_config(&server.ca.cert_pem, None).unwrap();
    assert_eq!(get_whoami(&server, tls).await.unwrap(), "anonymous");
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let server = start_server().await;
    server.stop.send(true).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(5), server.task).await;
    assert!(result.unwrap().unwrap().is_ok());
    assert!(tokio::net::TcpStream::connect(server.addr).await.is_err());
}
