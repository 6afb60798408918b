//! The crate's error type.

/// Everything that can go wrong while building TLS material or configurations.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// rcgen could not build or sign a certificate.
    #[error("could not generate a certificate ({0}); check the node name and addresses")]
    Certificate(#[from] rcgen::Error),

    /// A PEM string could not be decoded.
    #[error("{what} is not valid PEM ({reason}); check the file was written by baton")]
    InvalidPem {
        /// Which input was bad, e.g. "CA certificate".
        what: &'static str,
        /// Why decoding failed.
        reason: String,
    },

    /// A PEM string decoded, but held no item of the expected kind.
    #[error("{what} holds no PEM item of the expected kind; check the file was written by baton")]
    MissingPem {
        /// Which input was empty, e.g. "node private key".
        what: &'static str,
    },

    /// rustls rejected the certificates, key or settings.
    #[error("TLS setup failed ({0}); check the certificate and key belong together")]
    Tls(#[from] rustls::Error),

    /// The client-certificate verifier could not be built from the CA.
    #[error("could not trust the cluster CA ({0}); check the CA certificate file")]
    Verifier(#[from] rustls::server::VerifierBuilderError),

    /// reqwest could not build the HTTP client.
    #[error("could not build the HTTP client ({0}); check the TLS configuration")]
    HttpClient(#[from] reqwest::Error),
}

/// Result with [`TransportError`].
pub type Result<T, E = TransportError> = std::result::Result<T, E>;
