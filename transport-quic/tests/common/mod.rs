//! Shared helpers of the QUIC transport tests: clusters on loopback with ports picked by
//! the OS and certificates from a development CA.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use actraft::core::NodeId;
use actraft::TransportError;
use actraft_transport_quic::{DevCa, QuicConfig, QuicTransport};
use async_trait::async_trait;

pub const CLUSTER: &str = "test";

/// Binds a UDP socket on loopback, port picked by the OS.
pub fn loopback_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind loopback")
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A cluster's addresses and CA; makes each member's configuration.
pub struct Layout {
    pub ca: DevCa,
    pub addrs: BTreeMap<NodeId, SocketAddr>,
}

impl Layout {
    /// Binds one socket per id; returns the layout and the sockets.
    pub fn bind(ids: &[NodeId]) -> (Self, BTreeMap<NodeId, UdpSocket>) {
        let sockets: BTreeMap<NodeId, UdpSocket> =
            ids.iter().map(|&id| (id, loopback_socket())).collect();
        let addrs = sockets
            .iter()
            .map(|(&id, s)| (id, s.local_addr().unwrap()))
            .collect();
        let layout = Self {
            ca: DevCa::new(CLUSTER).unwrap(),
            addrs,
        };
        (layout, sockets)
    }

    /// Node `id`'s configuration: every other member is a peer.
    pub fn config(&self, id: NodeId) -> QuicConfig {
        QuicConfig::for_member(id, CLUSTER, &self.addrs, self.ca.issue(id).unwrap())
            .expect("a member")
    }

    /// Transports for every member, on the sockets bound by [`Layout::bind`].
    pub fn transports(&self, sockets: BTreeMap<NodeId, UdpSocket>) -> Vec<(NodeId, QuicTransport)> {
        sockets
            .into_iter()
            .map(|(id, s)| (id, QuicTransport::with_socket(self.config(id), s).unwrap()))
            .collect()
    }

    /// A node joining at run time: a new socket, a certificate from the cluster's CA,
    /// the current members as its peers. Returns it and its address; the members learn
    /// of it only through `set_members`.
    pub fn join(&mut self, id: NodeId) -> Result<(QuicTransport, String), TransportError> {
        let socket = loopback_socket();
        let addr = socket.local_addr().unwrap();
        self.addrs.insert(id, addr);
        let transport = QuicTransport::with_socket(self.config(id), socket)
            .map_err(|e| TransportError::Start(Box::new(e)))?;
        Ok((transport, addr.to_string()))
    }

    /// A fresh transport for `id` on its old address. The old one must be stopped; its
    /// port is free at once, but allow a moment in case a send held it.
    pub async fn rebind(&self, id: NodeId) -> Result<QuicTransport, TransportError> {
        let mut tries = 0;
        loop {
            match QuicTransport::new(self.config(id)) {
                Ok(t) => return Ok(t),
                Err(e) if tries >= 100 => return Err(TransportError::Start(Box::new(e))),
                Err(_) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

/// The conformance suite's factory: fresh loopback clusters, restarts on the same port.
#[derive(Default)]
pub struct QuicFactory {
    layout: Option<Layout>,
}

#[async_trait]
impl actraft::testkit::transport::TransportFactory for QuicFactory {
    type Transport = QuicTransport;

    async fn create(
        &mut self,
        ids: &[NodeId],
    ) -> Result<Vec<(NodeId, QuicTransport)>, TransportError> {
        let (layout, sockets) = Layout::bind(ids);
        let transports = layout.transports(sockets);
        self.layout = Some(layout);
        Ok(transports)
    }

    async fn restart(&mut self, id: NodeId) -> Result<QuicTransport, TransportError> {
        self.layout.as_ref().expect("create first").rebind(id).await
    }

    async fn join(&mut self, id: NodeId) -> Result<(QuicTransport, String), TransportError> {
        self.layout.as_mut().expect("create first").join(id)
    }
}

/// The longest any test waits for one event.
pub const WAIT: Duration = Duration::from_secs(10);

/// How long a test waits for a message before sending it again.
pub const RETRY: Duration = Duration::from_millis(50);

/// A bare quinn client, to send a node whatever a test wants.
pub mod raw {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use actraft_transport_quic::{TlsIdentity, ALPN};
    use quinn::crypto::rustls::QuicClientConfig;
    use quinn::{Connection, ConnectionError, Endpoint};
    use rustls::pki_types::CertificateDer;

    /// Connects to `addr` expecting a server certificate naming `server_name` signed by
    /// `trust`, presenting `identity` (or no certificate at all).
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        trust: CertificateDer<'static>,
        identity: Option<&TlsIdentity>,
    ) -> Result<(Endpoint, Connection), ConnectionError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trust).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots);
        let mut tls = match identity {
            Some(id) => builder
                .with_client_auth_cert(id.cert_chain.clone(), id.key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
        let endpoint = Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let connection = endpoint
            .connect_with(config, addr, server_name)
            .unwrap()
            .await?;
        Ok((endpoint, connection))
    }
}
