//! IsAlive probes that need no program: a TCP connect and a plain HTTP/1.0 GET. They run in
//! the daemon, bounded by the resource's timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Outcome;

/// Most of an HTTP answer read: the status line is all we need.
const HEAD_MAX: usize = 1024;

/// Healthy when `addr` (HOST:PORT) accepts a TCP connection within `timeout`.
pub async fn tcp(addr: &str, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Outcome::Ok,
        Ok(Err(error)) => Outcome::Failed(format!("check_tcp {addr}: {error}")),
        Err(_) => Outcome::Failed(format!(
            "check_tcp {addr}: no connection within {} ms",
            timeout.as_millis()
        )),
    }
}

/// Healthy when `url` (http://HOST:PORT/PATH) answers with a 2xx or 3xx status in time.
pub async fn http(url: &str, timeout: Duration) -> Outcome {
    let Some((host, path)) = split_url(url) else {
        return Outcome::Misconfigured(format!("check_http {url}: not an http:// URL"));
    };
    match tokio::time::timeout(timeout, get_status(&host, &path)).await {
        Ok(Ok(status)) if (200..400).contains(&status) => Outcome::Ok,
        Ok(Ok(status)) => Outcome::Failed(format!("check_http {url}: status {status}")),
        Ok(Err(error)) => Outcome::Failed(format!("check_http {url}: {error}")),
        Err(_) => Outcome::Failed(format!(
            "check_http {url}: no answer within {} ms",
            timeout.as_millis()
        )),
    }
}

/// `http://host:port/path` to (`host:port`, `/path`); port 80 when absent.
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(index) => (&rest[..index], &rest[index..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return None;
    }
    let host = match authority.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => authority.to_string(),
        _ => format!("{authority}:80"),
    };
    Some((host, path.to_string()))
}

async fn get_status(host: &str, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(host).await?;
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let request = format!("GET {path} HTTP/1.0\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < HEAD_MAX {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok());
    status.ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_path() {
        // Checks the default port and path.
        assert_eq!(
            split_url("http://127.0.0.1:8080/health"),
            Some(("127.0.0.1:8080".into(), "/health".into()))
        );
        assert_eq!(
            split_url("http://example"),
            Some(("example:80".into(), "/".into()))
        );
        assert_eq!(split_url("https://x/"), None);
        assert_eq!(split_url("http:///x"), None);
    }
}
