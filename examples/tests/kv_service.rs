//! The KV client port, end to end on loopback: TLS with client certificates, bounded
//! requests and connections, idle connections closed, sessions through the client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actraft::session::SessionConfig;
use actraft::{NodeBuilder, RaftHandle};
use actraft_examples::cluster::fast_config;
use actraft_examples::kv::{replicated_with_reader, KvCommand};
use actraft_examples::kv_client::{KvClient, KvClientError, KvClientOptions};
use actraft_examples::kv_service::{serve_clients, ServeOptions};
use actraft_examples::kv_tls;
use actraft_examples::kv_wire::{read_frame, write_frame, ReadPath, MAX_FRAME};
use actraft_storage_mem::MemStorage;
use actraft_transport_mem::MemRouter;
use actraft_transport_quic::{DevCa, TlsIdentity};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(10);

struct Service {
    addr: String,
    ca: DevCa,
    handle: RaftHandle,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A one-node cluster serving clients on a loopback port.
async fn service(mut options: ServeOptions) -> Service {
    let router = MemRouter::new();
    let (machine, reader) = replicated_with_reader(SessionConfig::default());
    options.reader = Some(reader);
    let handle = NodeBuilder::new(1, vec![1])
        .config(fast_config())
        .start(MemStorage::default(), router.transport(1), machine)
        .await
        .unwrap();
    handle.wait_for_leader(WAIT).await.unwrap();
    let ca = DevCa::new("test").unwrap();
    let tls = kv_tls::server_config(&ca.issue(1).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = actix_rt::spawn(serve_clients(
        listener,
        handle.clone(),
        BTreeMap::new(),
        tls,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    Service {
        addr,
        ca,
        handle,
        stop: Some(stop),
        served,
    }
}

impl Service {
    fn client_with(&self, tls: Arc<rustls::ClientConfig>) -> KvClient {
        let options = KvClientOptions {
            timeout: Duration::from_secs(3),
            ..KvClientOptions::default()
        };
        KvClient::new(vec![self.addr.clone()], tls, options)
    }

    fn client(&self) -> KvClient {
        let identity = self.ca.issue_client("tester").unwrap();
        self.client_with(kv_tls::client_config(&identity).unwrap())
    }

    /// A raw TLS connection with a valid client certificate.
    async fn raw(&self) -> TlsStream<TcpStream> {
        let identity = self.ca.issue_client("raw").unwrap();
        let connector = TlsConnector::from(kv_tls::client_config(&identity).unwrap());
        let tcp = TcpStream::connect(&self.addr).await.unwrap();
        connector
            .connect(ServerName::try_from("kv-node").unwrap(), tcp)
            .await
            .unwrap()
    }

    async fn still_serves(&self) {
        let client = self.client();
        client.put("alive", "yes").await.unwrap();
        assert_eq!(client.get("alive").await.unwrap().as_deref(), Some("yes"));
    }
}

#[actix_rt::test]
async fn puts_gets_deletes_and_absent_keys() {
    let service = service(ServeOptions::default()).await;
    let client = service.client();
    let written = client.put("k", "two words").await.unwrap();
    assert!(written.found && !written.duplicate);
    assert_eq!(client.get("k").await.unwrap().as_deref(), Some("two words"));
    assert!(client.delete("k").await.unwrap().found);
    assert!(!client.delete("k").await.unwrap().found, "already gone");
    assert_eq!(client.get("k").await.unwrap(), None, "absent, not a value");
    assert_eq!(
        client.known_leader().as_deref(),
        Some(service.addr.as_str())
    );
    assert!(matches!(
        client.put("", "v").await,
        Err(KvClientError::Invalid(_))
    ));
    assert!(matches!(
        client.get("a b").await,
        Err(KvClientError::Invalid(_))
    ));
}

#[actix_rt::test]
async fn every_read_path_sees_the_last_write() {
    let service = service(ServeOptions::default()).await;
    let client = service.client();
    let applied = |h: &RaftHandle| h.status().applied_index;
    for (i, read) in [
        ReadPath::Log,
        ReadPath::Index,
        ReadPath::Lease,
        ReadPath::Follower,
    ]
    .into_iter()
    .enumerate()
    {
        let value = format!("v{i}");
        client.put("k", &value).await.unwrap();
        let before = applied(&service.handle);
        assert_eq!(
            client.get_with("k", read).await.unwrap().as_deref(),
            Some(value.as_str()),
            "{read}"
        );
        assert_eq!(
            client.get_with("absent", read).await.unwrap(),
            None,
            "{read}"
        );
        // Only a read through the log appends an entry.
        let appended = applied(&service.handle) > before;
        assert_eq!(appended, read == ReadPath::Log, "{read}");
    }
}

#[actix_rt::test]
async fn the_same_sequence_number_is_answered_from_the_session() {
    let service = service(ServeOptions::default()).await;
    let client = service.client();
    let id = client.register().await.unwrap();
    let deadline = || tokio::time::Instant::now() + WAIT;
    let put = |value: &str| KvCommand::Put {
        key: "r0".into(),
        value: value.into(),
    };
    let first = client.write_as(id, 1, put("A"), deadline()).await.unwrap();
    assert!(!first.duplicate);
    service.client().put("r0", "B").await.unwrap();
    let retry = client.write_as(id, 1, put("A"), deadline()).await.unwrap();
    assert!(retry.duplicate, "the retry was not applied again");
    assert_eq!(client.get("r0").await.unwrap().as_deref(), Some("B"));
    client.write_as(id, 2, put("C"), deadline()).await.unwrap();
    let stale = client.write_as(id, 1, put("A"), deadline()).await;
    assert!(matches!(stale, Err(KvClientError::Stale(_))), "{stale:?}");
    let unknown = client.write_as(999, 1, put("A"), deadline()).await;
    assert!(
        matches!(unknown, Err(KvClientError::Expired(_))),
        "{unknown:?}"
    );
    assert_eq!(client.get("r0").await.unwrap().as_deref(), Some("C"));
}

#[actix_rt::test]
async fn a_client_without_a_certificate_is_refused() {
    let service = service(ServeOptions::default()).await;
    let identity = service.ca.issue_client("nobody").unwrap();
    let client = service.client_with(kv_tls::client_config_without_certificate(&identity).unwrap());
    let err = client.get("k").await.unwrap_err();
    assert!(matches!(err, KvClientError::Tls(_)), "{err}");
    assert!(err.to_string().contains("CertificateRequired"), "{err}");
    service.still_serves().await;
}

#[actix_rt::test]
async fn a_certificate_from_another_ca_is_refused() {
    let service = service(ServeOptions::default()).await;
    // Another cluster's CA, and an impostor CA with the same name as this one.
    for (cluster, alert) in [("other", "UnknownCA"), ("test", "DecryptError")] {
        let foreign = DevCa::new(cluster)
            .unwrap()
            .issue_client("intruder")
            .unwrap();
        // It trusts the right CA, so only the node's check can refuse it.
        let identity = TlsIdentity {
            ca: vec![service.ca.cert_der()],
            ..foreign
        };
        let client = service.client_with(kv_tls::client_config(&identity).unwrap());
        let err = client.put("k", "v").await.unwrap_err();
        assert!(matches!(err, KvClientError::Tls(_)), "{err}");
        assert!(err.to_string().contains(alert), "{err}");
    }
    // A client of another cluster does not trust this node either.
    let other = DevCa::new("test").unwrap();
    let client =
        service.client_with(kv_tls::client_config(&other.issue_client("x").unwrap()).unwrap());
    let err = client.get("k").await.unwrap_err();
    assert!(matches!(err, KvClientError::Tls(_)), "{err}");
    service.still_serves().await;
}

#[actix_rt::test]
async fn an_oversized_request_is_refused_without_being_read() {
    let service = service(ServeOptions::default()).await;
    let mut raw = service.raw().await;
    // Announce a 1 GiB request and send none of it: the node answers at once.
    raw.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    raw.flush().await.unwrap();
    let reply = read_frame(&mut raw, MAX_FRAME).await.unwrap().unwrap();
    assert_eq!(
        reply,
        format!(
            "error a frame of {} bytes exceeds the limit of {MAX_FRAME} bytes",
            1u32 << 30
        )
    );
    assert!(
        read_frame(&mut raw, MAX_FRAME)
            .await
            .map_or(true, |f| f.is_none()),
        "closed"
    );
    service.still_serves().await;
}

#[actix_rt::test]
async fn connections_past_the_limit_are_told_busy() {
    let service = service(ServeOptions {
        max_connections: 3,
        ..ServeOptions::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut raw = service.raw().await;
        write_frame(&mut raw, "status").await.unwrap();
        assert!(read_frame(&mut raw, MAX_FRAME)
            .await
            .unwrap()
            .unwrap()
            .starts_with("ok "));
        held.push(raw);
    }
    for _ in 0..5 {
        let mut extra = service.raw().await;
        let reply = read_frame(&mut extra, MAX_FRAME).await.unwrap().unwrap();
        assert_eq!(
            reply,
            "busy too many client connections (limit 3): retry later"
        );
    }
    // The held connections are still served.
    write_frame(&mut held[0], "get missing").await.unwrap();
    assert_eq!(
        read_frame(&mut held[0], MAX_FRAME)
            .await
            .unwrap()
            .as_deref(),
        Some("notfound")
    );
    // Freeing one lets others in again.
    let mut freed = held.pop().unwrap();
    freed.shutdown().await.unwrap();
    drop(freed);
    service.still_serves().await;
}

#[actix_rt::test]
async fn an_idle_connection_is_closed() {
    let service = service(ServeOptions {
        idle_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    })
    .await;
    let mut raw = service.raw().await;
    let reply = read_frame(&mut raw, MAX_FRAME).await.unwrap().unwrap();
    assert!(reply.starts_with("error no request for"), "{reply}");
    assert!(read_frame(&mut raw, MAX_FRAME)
        .await
        .map_or(true, |f| f.is_none()));
    service.still_serves().await;
}

#[actix_rt::test]
async fn shutdown_stops_taking_requests_and_returns() {
    let mut service = service(ServeOptions::default()).await;
    let mut idle = service.raw().await;
    service.stop.take().unwrap().send(()).unwrap();
    let reply = read_frame(&mut idle, MAX_FRAME).await.unwrap().unwrap();
    assert_eq!(reply, "unavailable the node is shutting down");
    (&mut service.served).await.unwrap().unwrap();
    assert!(
        TcpStream::connect(&service.addr).await.is_err(),
        "the port is closed"
    );
    service.handle.shutdown().await;
    assert!(!service.handle.is_running());
}

#[actix_rt::test]
async fn with_no_node_up_the_error_asks_about_a_majority() {
    let ca = DevCa::new("test").unwrap();
    let tls = kv_tls::client_config(&ca.issue_client("c").unwrap()).unwrap();
    // A port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = KvClientOptions {
        timeout: Duration::from_millis(500),
        ..KvClientOptions::default()
    };
    let client = KvClient::new(vec![format!("localhost:{port}")], tls, options);
    let err = client.get("k").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no leader known: does the cluster have a majority?"),
        "{err}"
    );
}
