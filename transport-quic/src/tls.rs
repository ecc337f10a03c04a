//! Mutual TLS: the rustls (ring) and quinn configurations, and how a peer is identified
//! from its certificate.

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
    config.flow.apply(&mut t);
    Ok(Arc::new(t))
}

/// How nodes are named in certificates: which node a client certificate names, and which
/// name to expect of a server.
#[derive(Debug)]
pub(crate) struct PeerNames {
    cluster: String,
    local: NodeId,
}

impl PeerNames {
    pub(crate) fn new(config: &QuicConfig) -> Self {
        Self {
            cluster: config.cluster.clone(),
            local: config.id,
        }
    }

    /// The name to expect in the server certificate of `peer`.
    pub(crate) fn server_name(&self, peer: NodeId) -> String {
        node_name(&self.cluster, peer)
    }

    /// Which node connected, from the certificate it presented (already verified to
    /// chain to the CA by rustls): the one node of this cluster, other than this one,
    /// whose name (`node-<id>.<cluster>`) the certificate carries. Any node the CA
    /// certified may be identified, so that a node added to the cluster later is known
    /// by its certificate alone; whether it may talk is the member list's decision. A
    /// certificate naming no node, several nodes or a wildcard identifies nobody.
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
        let names = webpki::EndEntityCert::try_from(end_entity).map_err(|_| unknown())?;
        let mut candidates = Vec::new();
        for name in names.valid_dns_names() {
            if name.starts_with('*') {
                return Err(unknown()); // a wildcard would name every node
            }
            if let Some(id) = self.node_id(name) {
                if !candidates.contains(&id) {
                    candidates.push(id);
                }
            }
        }
        let [id] = candidates[..] else {
            return Err(unknown());
        };
        // The names were only read to find the candidate; the check is rustls' own.
        let parsed = ParsedCertificate::try_from(end_entity).map_err(|_| unknown())?;
        let expected = ServerName::try_from(node_name(&self.cluster, id)).map_err(|_| unknown())?;
        if id == self.local || verify_server_name(&parsed, &expected).is_err() {
            return Err(unknown());
        }
        Ok(id)
    }

    /// The node `name` designates if it is `node-<id>.<cluster>` of this cluster
    /// (DNS names compare without regard to case).
    fn node_id(&self, name: &str) -> Option<NodeId> {
        let name = name.to_ascii_lowercase();
        let host = name.strip_suffix(&self.cluster.to_ascii_lowercase())?;
        let digits = host.strip_prefix("node-")?.strip_suffix('.')?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id: NodeId = digits.parse().ok()?;
        // Only the canonical spelling: `node-007` is not node 7's name.
        (id.to_string() == digits).then_some(id)
    }
}
