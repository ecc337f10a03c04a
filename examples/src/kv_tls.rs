//! TLS for the KV client port: the node requires a client certificate from the
//! cluster's CA; the client requires a server certificate from the same CA that is
//! valid for TLS servers.
//!
//! Nodes and clients share one CA. What tells them apart is the extended key usage:
//! node certificates may act as TLS servers and clients (they dial each other), client
//! certificates ([`DevCa::issue_client`](actraft_transport_quic::DevCa::issue_client))
//! only as TLS clients. So a client accepts any node of its cluster (it is given
//! addresses, not node ids) and no client certificate can pose as a node.

use std::sync::Arc;

use actraft_transport_quic::TlsIdentity;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;

/// The ALPN protocol of the KV client port.
pub const KV_ALPN: &[u8] = b"actraft-kv/1";

/// The TLS configuration could not be built.
#[derive(Debug, Error)]
#[error("TLS configuration: {0}")]
pub struct TlsConfigError(String);

fn roots(identity: &TlsIdentity) -> Result<Arc<RootCertStore>, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for ca in &identity.ca {
        roots
            .add(ca.clone())
            .map_err(|e| TlsConfigError(format!("CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The node's side: presents the node's certificate, requires a client certificate
/// signed by the cluster CA.
pub fn server_config(identity: &TlsIdentity) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(identity)?, provider.clone())
        .build()
        .map_err(|e| TlsConfigError(format!("client verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsConfigError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsConfigError(format!("node certificate: {e}")))?;
    config.alpn_protocols = vec![KV_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The client's side: presents the client's certificate, accepts a server certificate
/// that chains to the cluster CA and is valid for TLS servers.
pub fn client_config(identity: &TlsIdentity) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut config = client_builder(identity)?
        .with_client_auth_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsConfigError(format!("client certificate: {e}")))?;
    config.alpn_protocols = vec![KV_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// Like [`client_config`] but presenting no certificate, which nodes refuse: for
/// checking that they do.
pub fn client_config_without_certificate(
    identity: &TlsIdentity,
) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut config = client_builder(identity)?.with_no_client_auth();
    config.alpn_protocols = vec![KV_ALPN.to_vec()];
    Ok(Arc::new(config))
}

fn client_builder(
    identity: &TlsIdentity,
) -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    TlsConfigError,
> {
    let provider = provider();
    let verifier = Arc::new(ClusterNodeVerifier {
        roots: roots(identity)?,
        algorithms: provider.signature_verification_algorithms,
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsConfigError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier))
}

/// Accepts a server certificate that chains to the cluster CA with the server-auth
/// usage, whatever name it carries: the client dials addresses, and every node of the
/// cluster may answer.
#[derive(Debug)]
struct ClusterNodeVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ClusterNodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
