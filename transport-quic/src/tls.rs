//! Mutual TLS: the rustls (ring) and quinn configurations, and how a peer is identified
//! from its certificate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actraft::core::NodeId;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::verify_server_name;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::RootCertStore;

use crate::certs::node_name;
use crate::config::{ConfigError, QuicConfig};
use crate::error::QuicError;

/// The ALPN protocol both sides must offer, so that a QUIC client of some other
/// protocol fails the handshake instead of reaching the framing layer.
pub const ALPN: &[u8] = b"actraft-raft/1";

/// Peers open at most this many streams at once: one urgent, one bulk, with slack for a
/// stream being replaced.
const MAX_INCOMING_STREAMS: u32 = 4;

/// The quinn configurations of one node: server side (requires a client certificate
/// signed by the CA) and client side (presents the node's certificate, accepts only a
/// server certificate signed by the CA that names the node dialled).
pub(crate) fn configs(
    config: &QuicConfig,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), QuicError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in &config.tls.ca {
        roots.add(ca.clone()).map_err(QuicError::tls)?;
    }
    let roots = Arc::new(roots);

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(QuicError::tls)?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(QuicError::tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(config.tls.cert_chain.clone(), config.tls.key.clone_key())
        .map_err(QuicError::tls)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    let server = QuicServerConfig::try_from(server).map_err(QuicError::tls)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
    server.transport_config(transport_config(config, MAX_INCOMING_STREAMS)?);

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(QuicError::tls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(config.tls.cert_chain.clone(), config.tls.key.clone_key())
        .map_err(QuicError::tls)?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    let client = QuicClientConfig::try_from(client).map_err(QuicError::tls)?;
    let mut client = quinn::ClientConfig::new(Arc::new(client));
    // The node that accepts never opens streams towards the one that dialled.
    client.transport_config(transport_config(config, 0)?);
    Ok((server, client))
}

fn transport_config(
    config: &QuicConfig,
    incoming_uni: u32,
) -> Result<Arc<quinn::TransportConfig>, ConfigError> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(0u32.into())
        .max_concurrent_uni_streams(incoming_uni.into())
        .keep_alive_interval(Some(config.keep_alive))
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(config.idle_timeout).map_err(|_| {
                ConfigError::IdleTimeout {
                    idle_timeout: config.idle_timeout,
                }
            })?,
        ));
    Ok(Arc::new(t))
}

/// The certificate names of a node's peers, to identify who connected.
#[derive(Debug)]
pub(crate) struct PeerNames {
    cluster: String,
    names: BTreeMap<NodeId, ServerName<'static>>,
}

impl PeerNames {
    pub(crate) fn new(config: &QuicConfig) -> Self {
        let names = config
            .peers
            .keys()
            .filter_map(|&id| {
                let name = ServerName::try_from(node_name(&config.cluster, id)).ok()?;
                Some((id, name))
            })
            .collect();
        Self {
            cluster: config.cluster.clone(),
            names,
        }
    }

    /// The name to expect in the server certificate of `peer`.
    pub(crate) fn server_name(&self, peer: NodeId) -> String {
        node_name(&self.cluster, peer)
    }

    /// Which peer connected, from the certificate it presented (already verified to
    /// chain to the CA by rustls): the one peer whose name the certificate carries.
    /// A certificate naming no peer, or several (a wildcard), identifies nobody.
    pub(crate) fn identify(
        &self,
        connection: &quinn::Connection,
        remote: SocketAddr,
    ) -> Result<NodeId, QuicError> {
        let unknown = || QuicError::UnknownPeerCertificate {
            remote,
            cluster: self.cluster.clone(),
        };
        let chain = connection
            .peer_identity()
            .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
            .ok_or_else(unknown)?;
        let end_entity = chain.first().ok_or_else(unknown)?;
        let parsed = ParsedCertificate::try_from(end_entity).map_err(|_| unknown())?;
        let mut named = self
            .names
            .iter()
            .filter(|(_, name)| verify_server_name(&parsed, name).is_ok())
            .map(|(&id, _)| id);
        match (named.next(), named.next()) {
            (Some(id), None) => Ok(id),
            _ => Err(unknown()),
        }
    }
}
