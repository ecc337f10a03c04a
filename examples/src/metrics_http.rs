//! Prometheus metrics over plain HTTP: [`install_prometheus`] installs a Prometheus
//! recorder as the process's `metrics` recorder, and [`serve_metrics`] answers
//! `GET /metrics` with its text rendering (exposition format 0.0.4).
//!
//! The server is deliberately tiny: one request per connection (`Connection: close`),
//! a bounded request head, a read timeout, and a bound on connections served at once
//! (further connections wait in the listen backlog). It binds where the caller says, so
//! a caller that binds port 0 knows the port it got.
//!
//! [`parse_text`] reads the exposition text back, for tests and tools.

use std::collections::BTreeMap;
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

/// One sample of Prometheus exposition text.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (with its `_sum`, `_count` or `_bucket` suffix, if any).
    pub name: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// True when the sample carries every `(label, value)` pair of `with`.
    pub fn has(&self, with: &[(&str, &str)]) -> bool {
        with.iter()
            .all(|(k, v)| self.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// Parses Prometheus exposition text (format 0.0.4): every line that is neither empty
/// nor a comment is `name value` or `name{label="value",...} value`. Label values
/// holding `",` or escapes are not supported (actraft's never do).
pub fn parse_text(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line:?}"))?;
        let value = value
            .parse()
            .map_err(|e| format!("value {value:?}: {e}: {line:?}"))?;
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("labels without }}: {line:?}"))?;
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (key, value) = pair
                        .split_once("=\"")
                        .ok_or_else(|| format!("label {pair:?}: {line:?}"))?;
                    labels.insert(key.to_string(), value.trim_end_matches('"').to_string());
                }
                (name, labels)
            }
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exposition_text() {
        let text = "# HELP actraft_term Current term\n# TYPE actraft_term gauge\n\
                    actraft_term{node=\"1\"} 3\n\n\
                    up 1\n\
                    x_count{node=\"2\",peer=\"3\"} 4.5\n";
        let samples = parse_text(text).unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].name, "actraft_term");
        assert!(samples[0].has(&[("node", "1")]));
        assert_eq!(samples[0].value, 3.0);
        assert!(samples[1].labels.is_empty());
        assert!(samples[2].has(&[("node", "2"), ("peer", "3")]));
        assert!(!samples[2].has(&[("peer", "2")]));
        assert!(parse_text("novalue").is_err());
        assert!(parse_text("x{a=\"1\" 2").is_err());
    }

    #[test]
    fn answers_only_complete_get_requests_for_metrics() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        assert!(respond(b"GET /metrics HTTP/1.1\r\n", &handle).is_none());
        let (status, _) = respond(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &handle).unwrap();
        assert_eq!(status, "200 OK");
        let (status, _) = respond(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", &handle).unwrap();
        assert_eq!(status, "200 OK");
        let (status, _) = respond(b"GET / HTTP/1.1\r\n\r\n", &handle).unwrap();
        assert_eq!(status, "404 Not Found");
        let (status, _) = respond(b"POST /metrics HTTP/1.1\r\n\r\n", &handle).unwrap();
        assert_eq!(status, "405 Method Not Allowed");
    }
}
