//! The cluster CA and node certificates (rcgen), and PEM helpers.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::der;
use crate::error::{Result, TransportError};

/// Prefix of the CA's common name; the cluster name follows it.
const CA_COMMON_NAME_PREFIX: &str = "baton cluster CA ";
/// How long the cluster CA is valid.
const CA_VALIDITY_YEARS: u64 = 10;
/// How long a node certificate is valid.
const NODE_VALIDITY_YEARS: u64 = 5;
/// Certificates start this long before "now", so peers whose clocks lag a little accept them.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60 * 60);

/// The cluster certificate authority: made once at `cluster create`, signs node certificates.
#[derive(Clone, Debug)]
pub struct ClusterCa {
    /// The self-signed CA certificate, PEM.
    pub cert_pem: String,
    /// The CA private key, PEM (PKCS#8). Secret.
    pub key_pem: String,
}

/// A node's certificate (server and client auth) and its private key.
#[derive(Clone, Debug)]
pub struct NodeCert {
    /// The node certificate, PEM, signed by the cluster CA.
    pub cert_pem: String,
    /// The node private key, PEM (PKCS#8). Secret.
    pub key_pem: String,
}

impl ClusterCa {
    /// Makes a new self-signed CA named `baton cluster CA <cluster_name>`, valid 10 years.
    pub fn generate(cluster_name: &str) -> Result<Self> {
        let key = KeyPair::generate()?;
        let cert =
            ca_params(&format!("{CA_COMMON_NAME_PREFIX}{cluster_name}")).self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a node certificate (CN and DNS SAN `node_name`, one IP SAN per address),
    /// valid 5 years for both server and client authentication.
    pub fn issue_node_cert(&self, node_name: &str, ips: &[IpAddr]) -> Result<NodeCert> {
        let (issuer, issuer_key) = self.issuer()?;
        let key = KeyPair::generate()?;
        let cert = node_params(node_name, ips)?.signed_by(&key, &issuer, &issuer_key)?;
        Ok(NodeCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Rebuilds an rcgen issuer from the stored CA.
    ///
    /// rcgen cannot load a certificate from PEM without x509-parser, so the CA parameters
    /// are re-created exactly as in [`ClusterCa::generate`] (same subject name, read back
    /// from the stored certificate) and self-signed again with the stored key. Only the
    /// subject name and key matter when signing, so issued certificates chain to the
    /// original CA certificate.
    fn issuer(&self) -> Result<(Certificate, KeyPair)> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        let ca_der = first_cert(&self.cert_pem, "CA certificate")?;
        let common_name = der::subject_common_name(&ca_der).ok_or(TransportError::InvalidPem {
            what: "CA certificate",
            reason: "no subject common name".into(),
        })?;
        let issuer = ca_params(&common_name).self_signed(&key)?;
        Ok((issuer, key))
    }
}

/// The CA's parameters; `generate` and `issuer` must agree on these.
fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, CA_VALIDITY_YEARS);
    params
}

/// A node certificate's parameters.
fn node_params(node_name: &str, ips: &[IpAddr]) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, node_name);
    params.subject_alt_names = vec![SanType::DnsName(node_name.try_into()?)];
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    set_validity(&mut params, NODE_VALIDITY_YEARS);
    Ok(params)
}

/// Valid from now (less the clock-skew allowance) for `years` years.
fn set_validity(params: &mut CertificateParams, years: u64) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let days = years * 365 + years / 4;
    params.not_before = now - CLOCK_SKEW_ALLOWANCE;
    params.not_after = now + Duration::from_secs(days * 24 * 60 * 60);
}

/// Lowercase hex SHA-256 of the first certificate in `cert_pem` (64 characters).
pub fn ca_fingerprint(cert_pem: &str) -> Result<String> {
    Ok(fingerprint(&first_cert(cert_pem, "CA certificate")?))
}

/// Lowercase hex SHA-256 of DER bytes.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// All certificates in a PEM string, in order; at least one.
pub(crate) fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| TransportError::InvalidPem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TransportError::MissingPem { what });
    }
    Ok(certs)
}

/// The first certificate in a PEM string.
pub(crate) fn first_cert(pem: &str, what: &'static str) -> Result<CertificateDer<'static>> {
    let mut all = certs(pem, what)?;
    Ok(all.swap_remove(0))
}

/// The first private key in a PEM string.
pub(crate) fn private_key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TransportError::MissingPem { what },
        other => TransportError::InvalidPem {
            what,
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_lowercase_hex() {
        let ca = ClusterCa::generate("alpha").unwrap();
        let first = ca_fingerprint(&ca.cert_pem).unwrap();
        assert_eq!(first, ca_fingerprint(&ca.cert_pem).unwrap());
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        let other = ClusterCa::generate("alpha").unwrap();
        assert_ne!(first, ca_fingerprint(&other.cert_pem).unwrap());
    }

    #[test]
    fn ca_common_name_carries_cluster_name() {
        let ca = ClusterCa::generate("alpha").unwrap();
        let der = first_cert(&ca.cert_pem, "ca").unwrap();
        let cn = der::subject_common_name(&der);
        assert_eq!(cn.as_deref(), Some("baton cluster CA alpha"));
    }

    #[test]
    fn node_cert_names_the_node() {
        let ca = ClusterCa::generate("alpha").unwrap();
        let node = ca
            .issue_node_cert("node-1", &["10.0.0.1".parse().unwrap()])
            .unwrap();
        let der = first_cert(&node.cert_pem, "node").unwrap();
        assert_eq!(der::subject_common_name(&der).as_deref(), Some("node-1"));
        assert!(private_key(&node.key_pem, "key").is_ok());
    }

    #[test]
    fn bad_pem_is_reported() {
        assert!(matches!(
            ca_fingerprint(""),
            Err(TransportError::MissingPem { .. })
        ));
        let bad = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            ca_fingerprint(bad),
            Err(TransportError::InvalidPem { .. })
        ));
    }
}
