//! A tiny real HTTP server to run as a resource, and a client probe to measure failovers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Serves `GET` on `addr` forever, answering who serves (node and generation from the
/// environment the cluster gives resources). Binding retries for a while: after a failover
/// the old owner's socket may linger.
pub fn serve_http(addr: SocketAddr) -> std::io::Result<()> {
    let listener = bind_with_retry(addr)?;
    let node = std::env::var("BATON_NODE").unwrap_or_else(|_| "unknown".into());
    let generation = std::env::var("BATON_GENERATION").unwrap_or_else(|_| "0".into());
    let body = format!("hello from {node} generation {generation}\n");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
    }
    Ok(())
}

fn bind_with_retry(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut attempts = 0;
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(error) if attempts < 200 => {
                attempts += 1;
                let _ = error;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// One `GET /` with short timeouts; the body on a 200 answer.
pub fn get(addr: SocketAddr, timeout: Duration) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: role\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}
