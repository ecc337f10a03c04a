//! The raw ceilings that throughput lines are read against: what QUIC itself moves on
//! loopback on this machine, beside what actraft's QUIC transport moves. (The raw
//! RocksDB ceiling is in [`storage`](crate::storage).)

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use actraft_transport_quic::{size_socket_buffers, FlowControl, QuicConfig};
use bytes::Bytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::BenchError;

/// Bytes per stream write: large writes, as a bulk transfer would make them.
pub const QUIC_WRITE_BYTES: usize = 64 * 1024;

fn failed(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Ceiling(format!("{what}: {e}"))
}

/// The raw stream's flow-control windows: actraft's receive windows, and a send window
/// as large as the connection's receive window. A raw stream writes 64 KiB buffers, so
/// quinn's walk over unacknowledged writes (the reason the transport keeps its own send
/// window small, see [`FlowControl`]) stays short, and a large window is what moves the
/// most here: the ceiling is raw QUIC at its best, not at the transport's settings.
fn lan_transport() -> Arc<quinn::TransportConfig> {
    let defaults = FlowControl::default();
    let flow = FlowControl {
        send_window: u64::from(defaults.receive_window),
        ..defaults
    };
    let mut t = quinn::TransportConfig::default();
    flow.apply(&mut t);
    Arc::new(t)
}

/// A quinn endpoint on a loopback socket whose buffers are sized as actraft's QUIC
/// transport sizes its own ([`QuicConfig::DEFAULT_SOCKET_BUFFER`]), so the raw
/// stream's datagrams are dropped, or not, as the transport's are. Call within a tokio
/// runtime.
fn loopback_endpoint(server: Option<quinn::ServerConfig>) -> Result<quinn::Endpoint, BenchError> {
    let socket = std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| failed("bind", e))?;
    size_socket_buffers(&socket, QuicConfig::DEFAULT_SOCKET_BUFFER)
        .map_err(|e| failed("the socket buffers", e))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| failed("bind", e))
}

/// A server and a client configuration that trust each other (a fresh self-signed
/// certificate for `localhost`), both with [`lan_transport`].
fn loopback_configs() -> Result<(quinn::ServerConfig, quinn::ClientConfig), BenchError> {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .map_err(|e| failed("a certificate", e))?;
    let cert = CertificateDer::from(key.cert.der().to_vec());
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let mut server = quinn::ServerConfig::with_single_cert(vec![cert.clone()], private)
        .map_err(|e| failed("the server configuration", e))?;
    server.transport_config(lan_transport());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(cert)
        .map_err(|e| failed("the client's roots", e))?;
    let mut client = quinn::ClientConfig::with_root_certificates(Arc::new(roots))
        .map_err(|e| failed("the client configuration", e))?;
    client.transport_config(lan_transport());
    Ok((server, client))
}

/// Pushes `total` bytes through one QUIC stream on loopback, in
/// [`QUIC_WRITE_BYTES`] writes, the sender and the receiver each on a thread of its own
/// (one process, as the nodes of a throughput run are). Returns MB/s (10^6 bytes per
/// second) as the receiver counts them, from its first byte to the end of the stream.
pub fn quic_loopback_mb_per_sec(total: u64) -> Result<f64, BenchError> {
    quic_fan_out_mb_per_sec(total, 1)
}

/// Like [`quic_loopback_mb_per_sec`], in the shape of a leader replicating to its
/// followers: one sender thread with one endpoint writes `total` bytes split evenly
/// over `receivers` connections (one stream each), to that many receivers, each on a
/// thread of its own. Returns MB/s of all receivers together, from the first byte any
/// of them saw to the end of the last stream.
pub fn quic_fan_out_mb_per_sec(total: u64, receivers: usize) -> Result<f64, BenchError> {
    let receivers = receivers.max(1);
    let (server, client) = loopback_configs()?;
    let mut addrs = Vec::new();
    let mut receiving = Vec::new();
    for _ in 0..receivers {
        let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
        let server = server.clone();
        receiving.push(std::thread::spawn(move || receive(server, addr_tx)));
        addrs.push(
            addr_rx
                .recv()
                .map_err(|_| failed("a receiver", "did not start"))?,
        );
    }
    let share = total / receivers as u64;
    let sender = std::thread::spawn(move || -> Result<(), BenchError> {
        runtime()?.block_on(async move {
            let mut endpoint = loopback_endpoint(None)?;
            endpoint.set_default_client_config(client);
            let mut streams = Vec::new();
            for addr in addrs {
                let conn = dial(&endpoint, addr).await?;
                let stream = conn.open_uni().await.map_err(|e| failed("stream", e))?;
                streams.push((conn, stream));
            }
            let block = Bytes::from(vec![0x5Au8; QUIC_WRITE_BYTES]);
            let sends = streams.into_iter().map(|(conn, mut stream)| {
                let block = block.clone();
                async move {
                    let mut sent = 0u64;
                    while sent < share {
                        let n = (share - sent).min(QUIC_WRITE_BYTES as u64) as usize;
                        stream
                            .write_chunk(block.slice(..n))
                            .await
                            .map_err(|e| failed("write", e))?;
                        sent += n as u64;
                    }
                    stream.finish().map_err(|e| failed("finish", e))?;
                    conn.closed().await;
                    Ok::<_, BenchError>(())
                }
            });
            for result in futures_util::future::join_all(sends).await {
                result?;
            }
            endpoint.wait_idle().await;
            Ok(())
        })
    });
    let joined = |what: &str| failed(what, "the thread panicked");
    sender.join().map_err(|_| joined("the sender"))??;
    let (mut got, mut first, mut last) = (0u64, None::<Instant>, None::<Instant>);
    for receiver in receiving {
        let (bytes, start, end) = receiver.join().map_err(|_| joined("a receiver"))??;
        got += bytes;
        first = Some(first.map_or(start, |f| f.min(start)));
        last = Some(last.map_or(end, |l| l.max(end)));
    }
    let secs = match (first, last) {
        (Some(first), Some(last)) => (last - first).as_secs_f64(),
        _ => 0.0,
    };
    let expected = share * receivers as u64;
    if got != expected || secs <= 0.0 {
        return Err(failed(
            "the transfer",
            format!("received {got} of {expected} bytes"),
        ));
    }
    Ok(got as f64 / secs / 1e6)
}

/// A loopback endpoint that tells `addr_tx` its address and accepts one connection.
/// Call within a tokio runtime.
async fn accept_one(
    server: quinn::ServerConfig,
    addr_tx: mpsc::Sender<SocketAddr>,
) -> Result<(quinn::Endpoint, quinn::Connection), BenchError> {
    let endpoint = loopback_endpoint(Some(server))?;
    let addr = endpoint.local_addr().map_err(|e| failed("bind", e))?;
    let _ = addr_tx.send(addr);
    let incoming = endpoint
        .accept()
        .await
        .ok_or_else(|| failed("accept", "endpoint closed"))?;
    let conn = incoming.await.map_err(|e| failed("handshake", e))?;
    Ok((endpoint, conn))
}

/// Connects `endpoint` (with its default client configuration) to the loopback
/// endpoint at `addr`: the other side of [`accept_one`].
async fn dial(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
) -> Result<quinn::Connection, BenchError> {
    endpoint
        .connect(addr, "localhost")
        .map_err(|e| failed("connect", e))?
        .await
        .map_err(|e| failed("handshake", e))
}

/// One receiver: accepts one connection and reads its one stream to the end. Returns
/// the bytes and when the first and the last arrived.
fn receive(
    server: quinn::ServerConfig,
    addr_tx: mpsc::Sender<SocketAddr>,
) -> Result<(u64, Instant, Instant), BenchError> {
    runtime()?.block_on(async move {
        let (endpoint, conn) = accept_one(server, addr_tx).await?;
        let mut stream = conn.accept_uni().await.map_err(|e| failed("stream", e))?;
        let mut got = 0u64;
        let mut first = None;
        while let Some(chunk) = stream
            .read_chunk(usize::MAX, true)
            .await
            .map_err(|e| failed("read", e))?
        {
            first.get_or_insert_with(Instant::now);
            got += chunk.bytes.len() as u64;
        }
        let end = Instant::now();
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        Ok((got, first.unwrap_or(end), end))
    })
}

/// Bytes each way in one raw round trip: a small message, as an acknowledgement is.
pub const QUIC_ROUND_TRIP_BYTES: usize = 64;

/// Round trips made before the measured ones (connection and congestion state settle).
const QUIC_ROUND_TRIP_WARM_UP: usize = 200;

/// The median round trip of a small message over raw QUIC on loopback, in µs: one side
/// writes [`QUIC_ROUND_TRIP_BYTES`] on a stream, the other reads them and writes them
/// back, `rounds` times one after the other. Each side runs on a thread of its own, not
/// the caller's (one process, as the nodes of a throughput run are). A commit over QUIC
/// holds one such round trip (the leader's AppendEntries and the follower's answer), so
/// with one client this is the floor under its latency; with many it is what each round
/// of replication waits.
pub fn quic_round_trip_us(rounds: usize) -> Result<f64, BenchError> {
    let rounds = rounds.max(1);
    let (server, client) = loopback_configs()?;
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let echo = std::thread::spawn(move || echo(server, addr_tx));
    let addr = addr_rx
        .recv()
        .map_err(|_| failed("the echo side", "did not start"))?;
    let measure = std::thread::spawn(move || {
        runtime()?.block_on(async move {
            let mut endpoint = loopback_endpoint(None)?;
            endpoint.set_default_client_config(client);
            let conn = dial(&endpoint, addr).await?;
            let (mut send, mut recv) = conn.open_bi().await.map_err(|e| failed("stream", e))?;
            let mut buf = [0x5Au8; QUIC_ROUND_TRIP_BYTES];
            let mut times = Vec::with_capacity(rounds);
            for round in 0..QUIC_ROUND_TRIP_WARM_UP + rounds {
                let start = Instant::now();
                send.write_all(&buf).await.map_err(|e| failed("write", e))?;
                recv.read_exact(&mut buf)
                    .await
                    .map_err(|e| failed("read", e))?;
                if round >= QUIC_ROUND_TRIP_WARM_UP {
                    times.push(start.elapsed());
                }
            }
            send.finish().map_err(|e| failed("finish", e))?;
            conn.closed().await;
            endpoint.wait_idle().await;
            Ok::<_, BenchError>(times)
        })
    });
    let joined = |what: &str| failed(what, "the thread panicked");
    // A measuring side that failed may never have connected: the echo side would wait
    // for it forever, so it is joined only after a success.
    let mut times = measure.join().map_err(|_| joined("the measuring side"))??;
    echo.join().map_err(|_| joined("the echo side"))??;
    times.sort_unstable();
    Ok(times[times.len() / 2].as_secs_f64() * 1e6)
}

/// The echo side of [`quic_round_trip_us`]: accepts one connection and writes back
/// every message of its one stream, until the stream ends.
fn echo(server: quinn::ServerConfig, addr_tx: mpsc::Sender<SocketAddr>) -> Result<(), BenchError> {
    runtime()?.block_on(async move {
        let (endpoint, conn) = accept_one(server, addr_tx).await?;
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| failed("stream", e))?;
        let mut buf = [0u8; QUIC_ROUND_TRIP_BYTES];
        loop {
            match recv.read_exact(&mut buf).await {
                Ok(()) => send.write_all(&buf).await.map_err(|e| failed("write", e))?,
                Err(quinn::ReadExactError::FinishedEarly(0)) => break,
                Err(e) => return Err(failed("read", e)),
            }
        }
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_loopback_moves_every_byte() {
        let mb_per_sec = quic_loopback_mb_per_sec(4 << 20).unwrap();
        assert!(mb_per_sec > 0.0);
    }

    #[test]
    fn quic_fan_out_moves_every_byte_to_every_receiver() {
        let mb_per_sec = quic_fan_out_mb_per_sec(4 << 20, 2).unwrap();
        assert!(mb_per_sec > 0.0);
    }

    #[test]
    fn quic_round_trip_gets_every_message_back() {
        let us = quic_round_trip_us(50).unwrap();
        assert!(us > 0.0 && us.is_finite(), "{us}");
    }
}
