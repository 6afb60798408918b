//! The public REST API's wire types ([`dto`]) and a typed client for them.
//!
//! The CLI, the benchmarks and the integration tests talk to a cluster only through
//! [`Client`]. It knows the cluster's endpoints from a [`ClientConfig`] file and tries
//! them in order: it moves on to the next endpoint when one cannot be reached, never
//! when one answers with an error.

pub mod dto;

use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use dto::{
    ApiError, ClusterInfo, CreateGroup, CreateJoinToken, CreateResource, EventInfo, GroupInfo,
    JoinRequest, JoinResponse, JoinTokenInfo, MoveGroup, NodeInfo, ParameterDto, PauseNode,
    ResourceInfo, ResourceTypeInfo, ResourceTypeSummary, SetDependencies, SetProperties,
    SetSettings,
};

/// The whole-request timeout of API calls.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads are quick on a healthy node; a node that does not answer one in this time is
/// skipped for the next endpoint (a GET is safe to repeat).
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything that can go wrong talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// There is no client configuration file.
    #[error(
        "no client configuration at {}: run `baton cluster create` or `baton node join`, or pass --config",
        path.display()
    )]
    NoConfig { path: PathBuf },

    /// The client configuration exists but cannot be read, parsed or written.
    #[error("client configuration {}: {message}", path.display())]
    Config { path: PathBuf, message: String },

    /// The cluster answered with an error.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },

    /// No endpoint could be reached.
    #[error("cluster unreachable (tried {}): {last_error}", endpoints.join(", "))]
    Unreachable {
        endpoints: Vec<String>,
        last_error: String,
    },

    /// A request was sent but its answer never came (or came cut off); it may or may
    /// not have taken effect.
    #[error("no complete answer from {endpoint} ({message}); the request may or may not have taken effect: check with `baton group list` / `baton events`")]
    NoAnswer { endpoint: String, message: String },

    /// The server at `endpoint` is not the cluster the join token names: its certificate
    /// chain does not carry the token's CA.
    #[error("{endpoint} is not a node of the cluster this token is for ({message}); check the token and the peer address")]
    Untrusted { endpoint: String, message: String },

    /// The answer was not what the API promises.
    #[error("unexpected answer from {endpoint}: {message}; are the CLI and the daemon the same version?")]
    Protocol { endpoint: String, message: String },

    /// A join token that is not `ID.SECRET.FINGERPRINT`.
    #[error("malformed join token: expected ID.SECRET.FINGERPRINT as printed by `baton cluster create` or `baton node token` ({0})")]
    BadToken(String),

    /// TLS or HTTP client setup failed.
    #[error(transparent)]
    Transport(#[from] baton_transport::TransportError),
}

impl ClientError {
    /// True when no node could be reached at all (the caller may retry later).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    /// The HTTP status of an error answer, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where the cluster is and how to prove we may talk to it: the client configuration
/// file (JSON), written by `baton cluster create` and `baton node join`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    pub cluster_name: String,
    /// `ip:port` of the nodes' APIs, tried in order.
    pub endpoints: Vec<String>,
    /// The bearer token.
    pub token: String,
    /// The cluster CA certificate (PEM): the only CA the client trusts.
    pub ca_cert_pem: String,
}

impl ClientConfig {
    /// `$BATON_CONFIG` if set, else `$HOME/.config/baton/client.json`.
    pub fn default_path() -> PathBuf {
        if let Some(path) = std::env::var_os("BATON_CONFIG").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"));
        home.join(".config").join("baton").join("client.json")
    }

    /// Reads the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ClientError::NoConfig {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => {
                return Err(ClientError::Config {
                    path: path.to_path_buf(),
                    message: format!("cannot read it ({e})"),
                })
            }
        };
        let config: ClientConfig =
            serde_json::from_str(&text).map_err(|e| ClientError::Config {
                path: path.to_path_buf(),
                message: format!("not a valid baton client configuration ({e})"),
            })?;
        if config.endpoints.is_empty() {
            return Err(ClientError::Config {
                path: path.to_path_buf(),
                message: "lists no endpoints; add the `ip:port` of a node".into(),
            });
        }
        Ok(config)
    }

    /// Writes the configuration to `path` (mode 0600), creating parent directories.
    /// The file is replaced atomically.
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        let fail = |what: &str, e: io::Error| ClientError::Config {
            path: path.to_path_buf(),
            message: format!("cannot {what} ({e})"),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| fail("create its directory", e))?;
        }
        let json = serde_json::to_string_pretty(self).expect("a ClientConfig always serializes");
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let write = || -> io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // The mode above applies only to new files.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(json.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            fail("write it", e)
        })
    }
}

/// A typed client of the REST API.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Vec<String>,
    token: String,
    /// Index of the endpoint that answered last: tried first, so one frozen node costs a
    /// timeout once, not on every request.
    preferred: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Client {
    /// A client for the cluster `config` describes.
    pub fn new(config: &ClientConfig) -> Result<Client, ClientError> {
        let tls = baton_transport::tls::client_config(&config.ca_cert_pem, None)?;
        let http = baton_transport::client::http_client(tls, REQUEST_TIMEOUT)?;
        Ok(Client {
            http,
            endpoints: config.endpoints.clone(),
            token: config.token.clone(),
            preferred: Default::default(),
        })
    }

    /// The endpoints tried, in order.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    // ---- cluster ----

    pub async fn cluster(&self) -> Result<ClusterInfo, ClientError> {
        self.get(&["cluster"], None).await
    }

    pub async fn set_properties(&self, req: &SetProperties) -> Result<ClusterInfo, ClientError> {
        self.send(Method::PUT, &["cluster", "properties"], Some(req))
            .await
    }

    // ---- nodes ----

    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClientError> {
        self.get(&["nodes"], None).await
    }

    pub async fn pause_node(&self, name: &str, req: &PauseNode) -> Result<NodeInfo, ClientError> {
        self.send(Method::POST, &["nodes", name, "pause"], Some(req))
            .await
    }

    pub async fn resume_node(&self, name: &str) -> Result<NodeInfo, ClientError> {
        self.send(Method::POST, &["nodes", name, "resume"], None::<&()>)
            .await
    }

    pub async fn evict_node(&self, name: &str) -> Result<(), ClientError> {
        self.send_no_content(Method::DELETE, &["nodes", name]).await
    }

    pub async fn create_join_token(
        &self,
        req: &CreateJoinToken,
    ) -> Result<JoinTokenInfo, ClientError> {
        self.send(Method::POST, &["join-tokens"], Some(req)).await
    }

    // ---- groups ----

    pub async fn groups(&self) -> Result<Vec<GroupInfo>, ClientError> {
        self.get(&["groups"], None).await
    }

    pub async fn group(&self, name: &str) -> Result<GroupInfo, ClientError> {
        self.get(&["groups", name], None).await
    }

    pub async fn create_group(&self, req: &CreateGroup) -> Result<GroupInfo, ClientError> {
        self.send(Method::POST, &["groups"], Some(req)).await
    }

    pub async fn delete_group(&self, name: &str) -> Result<(), ClientError> {
        self.send_no_content(Method::DELETE, &["groups", name])
            .await
    }

    pub async fn online_group(&self, name: &str) -> Result<GroupInfo, ClientError> {
        self.send(Method::POST, &["groups", name, "online"], None::<&()>)
            .await
    }

    pub async fn offline_group(&self, name: &str) -> Result<GroupInfo, ClientError> {
        self.send(Method::POST, &["groups", name, "offline"], None::<&()>)
            .await
    }

    pub async fn move_group(&self, name: &str, req: &MoveGroup) -> Result<GroupInfo, ClientError> {
        self.send(Method::POST, &["groups", name, "move"], Some(req))
            .await
    }

    // ---- resources ----

    pub async fn resources(&self) -> Result<Vec<ResourceInfo>, ClientError> {
        self.get(&["resources"], None).await
    }

    pub async fn create_resource(&self, req: &CreateResource) -> Result<ResourceInfo, ClientError> {
        self.send(Method::POST, &["resources"], Some(req)).await
    }

    pub async fn delete_resource(&self, name: &str) -> Result<(), ClientError> {
        self.send_no_content(Method::DELETE, &["resources", name])
            .await
    }

    pub async fn resource(&self, name: &str) -> Result<ResourceInfo, ClientError> {
        self.get(&["resources", name], None).await
    }

    /// `baton resource set R key=value...`.
    pub async fn set_resource(
        &self,
        name: &str,
        req: &SetSettings,
    ) -> Result<ResourceInfo, ClientError> {
        self.send(Method::PUT, &["resources", name], Some(req))
            .await
    }

    /// `baton resource depend R EXPR`.
    pub async fn set_dependencies(
        &self,
        name: &str,
        req: &SetDependencies,
    ) -> Result<ResourceInfo, ClientError> {
        self.send(Method::PUT, &["resources", name, "dependencies"], Some(req))
            .await
    }

    /// `baton group set G key=value...`.
    pub async fn set_group(&self, name: &str, req: &SetSettings) -> Result<GroupInfo, ClientError> {
        self.send(Method::PUT, &["groups", name], Some(req)).await
    }

    // ---- resource types ----

    pub async fn resource_types(&self) -> Result<Vec<ResourceTypeSummary>, ClientError> {
        self.get(&["resource-types"], None).await
    }

    pub async fn resource_type(&self, name: &str) -> Result<ResourceTypeInfo, ClientError> {
        self.get(&["resource-types", name], None).await
    }

    // ---- events ----

    /// The most recent `limit` events, oldest first.
    pub async fn events(&self, limit: usize) -> Result<Vec<EventInfo>, ClientError> {
        self.get(&["events"], Some(("limit", limit.to_string())))
            .await
    }

    // ---- plumbing ----

    async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: Option<(&str, String)>,
    ) -> Result<T, ClientError> {
        let (endpoint, response) = self.request(Method::GET, path, query, None::<&()>).await?;
        decode(&endpoint, response).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (endpoint, response) = self.request(method, path, None, body).await?;
        decode(&endpoint, response).await
    }

    async fn send_no_content(&self, method: Method, path: &[&str]) -> Result<(), ClientError> {
        let (_, response) = self.request(method, path, None, None::<&()>).await?;
        check(response).await.map(drop)
    }

    /// Sends one request, trying the endpoints in order. A connection failure moves on to
    /// the next endpoint; so does any transport failure of a GET (it is safe to repeat).
    /// Other requests that were sent but got no answer are not repeated elsewhere.
    async fn request<B: Serialize>(
        &self,
        method: Method,
        path: &[&str],
        query: Option<(&str, String)>,
        body: Option<&B>,
    ) -> Result<(String, reqwest::Response), ClientError> {
        let mut last_error = String::from("no endpoints configured");
        let first = self.preferred.load(std::sync::atomic::Ordering::Relaxed);
        let count = self.endpoints.len();
        for index in (0..count).map(|offset| (first + offset) % count) {
            let endpoint = &self.endpoints[index];
            let mut url = base_url(endpoint)?;
            url.path_segments_mut()
                .expect("https URLs have path segments")
                .extend(["api", "v1"])
                .extend(path);
            if let Some((key, value)) = &query {
                url.query_pairs_mut().append_pair(key, value);
            }
            let mut request = self
                .http
                .request(method.clone(), url)
                .bearer_auth(&self.token);
            if let Some(body) = body {
                request = request.json(body);
            }
            if method == Method::GET {
                request = request.timeout(READ_TIMEOUT);
            }
            match request.send().await {
                Ok(response) => {
                    self.preferred
                        .store(index, std::sync::atomic::Ordering::Relaxed);
                    return Ok((endpoint.clone(), response));
                }
                Err(e) if e.is_connect() || method == Method::GET => {
                    last_error = format!("{endpoint}: {}", error_chain(&e));
                }
                Err(e) => {
                    return Err(ClientError::NoAnswer {
                        endpoint: endpoint.clone(),
                        message: error_chain(&e),
                    })
                }
            }
        }
        Err(ClientError::Unreachable {
            endpoints: self.endpoints.clone(),
            last_error,
        })
    }
}

/// Asks the node at `peer` (`ip:port`) to admit this machine, trusting only a server whose
/// certificate chain carries the CA with SHA-256 fingerprint `ca_fingerprint`.
pub async fn join(
    peer: &str,
    ca_fingerprint: &str,
    request: &JoinRequest,
) -> Result<JoinResponse, ClientError> {
    let tls = baton_transport::tls::pinned_ca_client_config(ca_fingerprint);
    let http = baton_transport::client::http_client(tls, REQUEST_TIMEOUT)?;
    let mut url = base_url(peer)?;
    url.set_path("/join");
    match http.post(url).json(request).send().await {
        Ok(response) => decode(peer, response).await,
        Err(e) if e.is_connect() && error_chain(&e).contains("certificate") => {
            Err(ClientError::Untrusted {
                endpoint: peer.to_string(),
                message: error_chain(&e),
            })
        }
        Err(e) if e.is_connect() => Err(ClientError::Unreachable {
            endpoints: vec![peer.to_string()],
            last_error: error_chain(&e),
        }),
        Err(e) => Err(ClientError::NoAnswer {
            endpoint: peer.to_string(),
            message: error_chain(&e),
        }),
    }
}

/// Splits a join token `<id>.<secret>.<fingerprint>` (16, 32 and 64 hex digits) into its
/// parts; the fingerprint comes back lowercase.
pub fn parse_join_token(token: &str) -> Result<(String, String, String), ClientError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [id, secret, fingerprint] = parts[..] else {
        return Err(ClientError::BadToken(format!(
            "it has {} dot-separated parts, not 3",
            parts.len()
        )));
    };
    for (what, value, len) in [
        ("ID", id, 16),
        ("SECRET", secret, 32),
        ("FINGERPRINT", fingerprint, 64),
    ] {
        if value.len() != len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::BadToken(format!(
                "{what} must be {len} hex digits"
            )));
        }
    }
    Ok((
        id.to_ascii_lowercase(),
        secret.to_ascii_lowercase(),
        fingerprint.to_ascii_lowercase(),
    ))
}

/// `https://{endpoint}/`, with IPv6 addresses bracketed.
fn base_url(endpoint: &str) -> Result<Url, ClientError> {
    let authority = match endpoint.parse::<SocketAddr>() {
        Ok(addr) => addr.to_string(),
        Err(_) => endpoint.to_string(),
    };
    Url::parse(&format!("https://{authority}/")).map_err(|e| ClientError::Unreachable {
        endpoints: vec![endpoint.to_string()],
        last_error: format!("`{endpoint}` is not a valid ip:port ({e})"),
    })
}

/// Passes a success answer through; turns an error answer into [`ClientError::Api`].
async fn check(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(api_error(status, &body))
}

/// The `ApiError` message of an error answer, or what can be said without one.
fn api_error(status: StatusCode, body: &str) -> ClientError {
    let message = match serde_json::from_str::<ApiError>(body) {
        Ok(ApiError {
            error,
            field: Some(field),
        }) => format!("{error} (field `{field}`)"),
        Ok(ApiError { error, field: None }) => error,
        Err(_) => {
            let text = body.trim();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("error without explanation")
                    .to_string()
            } else {
                text.lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect()
            }
        }
    };
    ClientError::Api {
        status: status.as_u16(),
        message,
    }
}

/// Decodes a success answer's JSON body.
async fn decode<T: DeserializeOwned>(
    endpoint: &str,
    response: reqwest::Response,
) -> Result<T, ClientError> {
    let response = check(response).await?;
    let bytes = response.bytes().await.map_err(|e| ClientError::NoAnswer {
        endpoint: endpoint.to_string(),
        message: error_chain(&e),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
        endpoint: endpoint.to_string(),
        message: format!("bad JSON ({e})"),
    })
}

/// An error's causes on one line. reqwest's own top message only repeats the URL, so it is
/// left out when there is a cause that says why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let (mut text, mut source) = match error.source() {
        Some(cause) => (cause.to_string(), cause.source()),
        None => (error.to_string(), None),
    };
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_good_token() {
        let token = format!("{}.{}.{}", "a".repeat(16), "B".repeat(32), "C".repeat(64));
        let (id, secret, fp) = parse_join_token(&token).unwrap();
        assert_eq!(id, "a".repeat(16));
        assert_eq!(secret, "b".repeat(32));
        assert_eq!(fp, "c".repeat(64));
    }

    #[test]
    fn rejects_bad_tokens() {
        for token in [
            "",
            "abc",
            "a.b.c",
            &format!("{}.{}", "a".repeat(16), "b".repeat(32)),
            &format!("{}.{}.{}", "g".repeat(16), "b".repeat(32), "c".repeat(64)),
            &format!("{}.{}.{}.x", "a".repeat(16), "b".repeat(32), "c".repeat(64)),
        ] {
            let err = parse_join_token(token).unwrap_err();
            assert!(err.to_string().starts_with("malformed join token"), "{err}");
        }
    }

    #[test]
    fn api_errors_use_the_message() {
        let err = api_error(
            StatusCode::CONFLICT,
            r#"{"error":"group web exists","field":"name"}"#,
        );
        assert_eq!(
            err.to_string(),
            "group web exists (field `name`) (HTTP 409)"
        );
        let err = api_error(StatusCode::BAD_GATEWAY, "");
        assert_eq!(err.status(), Some(502));
    }

    #[test]
    fn urls_bracket_ipv6() {
        assert_eq!(
            base_url("[::1]:7000").unwrap().as_str(),
            "https://[::1]:7000/"
        );
        assert_eq!(
            base_url("10.0.0.1:7000").unwrap().as_str(),
            "https://10.0.0.1:7000/"
        );
    }

    #[test]
    fn config_round_trips_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("baton-client-test-{}", std::process::id()));
        let path = dir.join("sub").join("client.json");
        let config = ClientConfig {
            cluster_name: "c".into(),
            endpoints: vec!["127.0.0.1:7000".into()],
            token: "t".into(),
            ca_cert_pem: "pem".into(),
        };
        config.save(&path).unwrap();
        assert_eq!(ClientConfig::load(&path).unwrap(), config);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let missing = ClientConfig::load(&dir.join("nope.json")).unwrap_err();
        assert!(matches!(missing, ClientError::NoConfig { .. }));
        fs::remove_dir_all(&dir).unwrap();
    }
}
