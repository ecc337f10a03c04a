//! The raw ceilings that throughput lines are read against: what QUIC itself moves on
//! loopback on this machine, beside what actraft's QUIC transport moves. (The raw
//! RocksDB ceiling is in [`storage`](crate::storage).)

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::BenchError;

/// Bytes per stream write: large writes, as a bulk transfer would make them.
pub const QUIC_WRITE_BYTES: usize = 64 * 1024;

fn failed(what: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Ceiling(format!("{what}: {e}"))
}

/// Windows sized for a LAN (loopback here): a bulk stream is not held back by flow
/// control waiting for a round trip.
fn lan_transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(quinn::VarInt::from_u32(16 << 20))
        .receive_window(quinn::VarInt::from_u32(32 << 20))
        .send_window(32 << 20);
    Arc::new(t)
}

/// Pushes `total` bytes through one QUIC stream on loopback, in
/// [`QUIC_WRITE_BYTES`] writes, the sender and the receiver each on a thread of its own
/// (one process, as the nodes of a throughput run are). Returns MB/s (10^6 bytes per
/// second) as the receiver counts them, from its first byte to the end of the stream.
pub fn quic_loopback_mb_per_sec(total: u64) -> Result<f64, BenchError> {
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

    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let receiver = std::thread::spawn(move || -> Result<(u64, f64), BenchError> {
        runtime()?.block_on(async move {
            let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
            let endpoint =
                quinn::Endpoint::server(server, loopback).map_err(|e| failed("bind", e))?;
            let addr = endpoint.local_addr().map_err(|e| failed("bind", e))?;
            let _ = addr_tx.send(addr);
            let incoming = endpoint
                .accept()
                .await
                .ok_or_else(|| failed("accept", "endpoint closed"))?;
            let conn = incoming.await.map_err(|e| failed("handshake", e))?;
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
            let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
            conn.close(0u32.into(), b"done");
            endpoint.wait_idle().await;
            Ok((got, secs))
        })
    });
    let addr = addr_rx
        .recv()
        .map_err(|_| failed("the receiver", "did not start"))?;
    let sender = std::thread::spawn(move || -> Result<(), BenchError> {
        runtime()?.block_on(async move {
            let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
            let mut endpoint = quinn::Endpoint::client(loopback).map_err(|e| failed("bind", e))?;
            endpoint.set_default_client_config(client);
            let conn = endpoint
                .connect(addr, "localhost")
                .map_err(|e| failed("connect", e))?
                .await
                .map_err(|e| failed("handshake", e))?;
            let mut stream = conn.open_uni().await.map_err(|e| failed("stream", e))?;
            let block = Bytes::from(vec![0x5Au8; QUIC_WRITE_BYTES]);
            let mut sent = 0u64;
            while sent < total {
                let n = (total - sent).min(QUIC_WRITE_BYTES as u64) as usize;
                stream
                    .write_chunk(block.slice(..n))
                    .await
                    .map_err(|e| failed("write", e))?;
                sent += n as u64;
            }
            stream.finish().map_err(|e| failed("finish", e))?;
            conn.closed().await;
            endpoint.wait_idle().await;
            Ok(())
        })
    });
    let joined = |what: &str| failed(what, "the thread panicked");
    sender.join().map_err(|_| joined("the sender"))??;
    let (got, secs) = receiver.join().map_err(|_| joined("the receiver"))??;
    if got != total || secs <= 0.0 {
        return Err(failed(
            "the transfer",
            format!("received {got} of {total} bytes"),
        ));
    }
    Ok(got as f64 / secs / 1e6)
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
}
