//! rustls configurations for nodes, clients and joining nodes. All use the ring provider
//! explicitly; nothing relies on a process-wide default provider.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::error::Result;
use crate::pki::{certs, fingerprint, first_cert, private_key};

/// The only application protocol we speak.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The ring crypto provider, shared.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A root store holding only the cluster CA.
fn ca_roots(ca_pem: &str) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(first_cert(ca_pem, "CA certificate")?)?;
    Ok(roots)
}

/// A node's TLS server configuration.
///
/// The server presents `[node cert, CA cert]` so joining nodes can pin the CA (see
/// [`pinned_ca_client_config`]). Client certificates are optional, but one that is presented
/// must chain to the cluster CA or the handshake fails. ALPN is `http/1.1`.
pub fn server_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(ca_roots(ca_pem)?), provider.clone())
            .allow_unauthenticated()
            .build()?;
    let mut chain = certs(cert_pem, "node certificate")?;
    chain.push(first_cert(ca_pem, "CA certificate")?);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, private_key(key_pem, "node private key")?)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that trusts only the cluster CA.
///
/// With `identity = Some((cert_pem, key_pem))` it presents that certificate (mutual TLS);
/// with `None` it connects anonymously. The server's name (IP or DNS) must be in its
/// certificate.
pub fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(ca_roots(ca_pem)?);
    let mut config = match identity {
        Some((cert_pem, key_pem)) => builder.with_client_auth_cert(
            certs(cert_pem, "node certificate")?,
            private_key(key_pem, "node private key")?,
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(config)
}

/// A client configuration for a joining node that knows only the CA's fingerprint.
///
/// The server's chain is accepted iff one of the certificates after the leaf has SHA-256
/// fingerprint `expected_ca_fingerprint` (hex, case and `:` separators ignored) and the
/// leaf verifies against that certificate as the only trust anchor (webpki, including the
/// server-name check). No client certificate is presented.
pub fn pinned_ca_client_config(expected_ca_fingerprint: &str) -> ClientConfig {
    let verifier = PinnedCaVerifier {
        expected: normalize_fingerprint(expected_ca_fingerprint),
        provider: provider(),
    };
    let mut config = ClientConfig::builder_with_provider(verifier.provider.clone())
        .with_safe_default_protocol_versions()
        // The ring default provider supports every default protocol version, so this
        // cannot fail.
        .expect("ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    config
}

/// Lowercase, without `:` separators or surrounding whitespace.
fn normalize_fingerprint(fingerprint: &str) -> String {
    fingerprint
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Trusts a server whose chain carries the pinned CA and whose leaf that CA signed.
#[derive(Debug)]
struct PinnedCaVerifier {
    /// Normalized expected CA fingerprint.
    expected: String,
    provider: Arc<CryptoProvider>,
}

impl PinnedCaVerifier {
    /// A standard webpki verifier whose only root is the pinned CA from `intermediates`.
    fn webpki_for(
        &self,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|cert| fingerprint(cert) == self.expected)
            .ok_or(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(format!("pinned CA unusable: {e}")))
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki_for(intermediates)?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_normalized() {
        assert_eq!(normalize_fingerprint(" AB:cd:0F "), "abcd0f");
    }

    #[test]
    fn configs_build_from_generated_material() {
        let ca = crate::pki::ClusterCa::generate("alpha").unwrap();
        let node = ca.issue_node_cert("n1", &[]).unwrap();
        assert!(server_config(&ca.cert_pem, &node.cert_pem, &node.key_pem).is_ok());
        assert!(client_config(&ca.cert_pem, Some((&node.cert_pem, &node.key_pem))).is_ok());
        assert!(client_config(&ca.cert_pem, None).is_ok());
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let ca = crate::pki::ClusterCa::generate("alpha").unwrap();
        let a = ca.issue_node_cert("a", &[]).unwrap();
        let b = ca.issue_node_cert("b", &[]).unwrap();
        assert!(server_config(&ca.cert_pem, &a.cert_pem, &b.key_pem).is_err());
    }
}
