//! Prometheus metrics over plain HTTP: [`install_prometheus`] installs a Prometheus
//! recorder as the process's `metrics` recorder, and [`serve_metrics`] answers
//! `GET /metrics` with its text rendering (exposition format 0.0.4).
//!
//! The server is deliberately tiny: one request per connection (`Connection: close`),
//! a bounded request head, a read timeout, and a bound on connections served at once
//! (further connections wait in the listen backlog). It binds where the caller says, so
//! a caller that binds port 0 knows the port it got.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head read; a longer one is answered 431 and closed.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once.
const MAX_CONNECTIONS: usize = 16;
/// How often the recorder's histograms are drained when nobody scrapes, so that their
/// buffers stay bounded.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs a Prometheus recorder as the global `metrics` recorder and describes
/// actraft's metrics. Call it before building storages and transports and starting
/// nodes: they look up their metric handles when they are made. Fails if a recorder is
/// already installed.
pub fn install_prometheus() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    actraft::metrics::describe();
    Ok(handle)
}

/// Serves `GET /metrics` on `listener` with `handle`'s rendering until `shutdown`
/// resolves. Other paths get 404, other methods 405. Also runs the recorder's upkeep
/// periodically.
pub async fn serve_metrics(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut upkeep = tokio::time::interval(UPKEEP_INTERVAL);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => return Ok(()),
            _ = upkeep.tick() => {
                handle.run_upkeep();
                continue;
            }
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
        };
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a metrics scrape failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &handle).await {
                tracing::debug!(error = %e, "metrics scrape failed");
            }
            drop(slot);
        });
    }
}

/// The response to one request head (`None`: the head is not complete yet).
fn respond(head: &[u8], handle: &PrometheusHandle) -> Option<(&'static str, String)> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&head[..end]);
    let mut request_line = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (request_line.next(), request_line.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    Some(match (method, path) {
        (Some("GET"), Some("/metrics")) => {
            handle.run_upkeep();
            ("200 OK", handle.render())
        }
        (Some("GET"), _) => ("404 Not Found", "not found; try /metrics\n".into()),
        _ => ("405 Method Not Allowed", "only GET\n".into()),
    })
}

async fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let (status, body) = loop {
        let read = tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head"))??;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..read]);
        if let Some(response) = respond(&head, handle) {
            break response;
        }
        if head.len() > MAX_HEAD {
            break (
                "431 Request Header Fields Too Large",
                "request head too long\n".into(),
            );
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
