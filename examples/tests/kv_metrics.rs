//! `kv serve --metrics` and `kv status`, end to end: three `kv` processes on loopback,
//! each serving Prometheus text on a port of its own choosing; the test writes keys,
//! scrapes every node over plain HTTP, parses the exposition text and checks what it
//! says against what happened, then runs `kv status`.
//!
//! It runs the `kv` example binary, which `cargo test -p actraft-examples --features
//! rocks` builds along with the tests (examples are built by `cargo test`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actraft_examples::kv_client::{KvClient, KvClientOptions};
use actraft_examples::kv_process::{self, free_port, kv_bin, write_certs};
use actraft_examples::metrics_http::{parse_text, Sample};

const WRITES: u64 = 12;
const WAIT: Duration = Duration::from_secs(30);

/// A `kv serve` process, killed when dropped.
struct Node {
    id: u64,
    child: Child,
    metrics: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(bin: &Path, id: u64, ports: &BTreeMap<u64, u16>, dir: &Path) -> Node {
    let peers: Vec<String> = ports
        .iter()
        .filter(|(&p, _)| p != id)
        .map(|(p, port)| format!("{p}=127.0.0.1:{port}"))
        .collect();
    let mut child = Command::new(bin)
        .args(["serve", "--id", &id.to_string()])
        .args(["--listen", &format!("127.0.0.1:{}", ports[&id])])
        .args(["--peers", &peers.join(",")])
        .arg("--data-dir")
        .arg(dir.join(format!("node-{id}")))
        .arg("--certs")
        .arg(dir.join("certs"))
        .args(["--metrics", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start kv serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // The first line says where the metrics are served (port 0 picked a free one).
    stdout.read_line(&mut line).unwrap();
    let metrics = line
        .trim()
        .strip_prefix("metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("node {id}: unexpected first line {line:?}"))
        .parse()
        .unwrap();
    // Keep draining stdout so the node never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
    });
    Node { id, child, metrics }
}

/// A plain HTTP/1.1 GET; returns the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Node `node`'s scrape.
struct Scrape {
    node: u64,
    samples: Vec<Sample>,
}

impl Scrape {
    fn of(node: &Node) -> Self {
        let (status, body) = get(node.metrics, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        Self {
            node: node.id,
            samples: parse_text(&body).unwrap(),
        }
    }

    /// The samples named `name` whose labels include every pair of `with`.
    fn find(&self, name: &str, with: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                with.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one value of `name` with `with`'s labels.
    fn value(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        let found = self.find(name, with);
        assert_eq!(
            found.len(),
            1,
            "node {}: {name} {with:?}: {found:?}",
            self.node
        );
        found[0].value
    }

    fn gauge(&self, name: &str) -> f64 {
        self.value(name, &[])
    }
}

/// Whether every node applied the writes and every link with the one leader carried
/// messages both ways (what the checks below need), judged without asserting.
fn settled(scrapes: &[Scrape], ids: &[u64]) -> bool {
    let one = |s: &Scrape, name: &str, with: &[(&str, &str)]| {
        let found = s.find(name, with);
        (found.len() == 1).then(|| found[0].value)
    };
    let leaders: Vec<u64> = scrapes
        .iter()
        .filter(|s| one(s, "actraft_is_leader", &[]) == Some(1.0))
        .map(|s| s.node)
        .collect();
    let [leader] = leaders[..] else {
        return false;
    };
    scrapes.iter().all(|s| {
        let applied = one(s, "actraft_applied_index", &[]).unwrap_or(0.0) >= WRITES as f64;
        applied
            && ids
                .iter()
                .filter(|&&peer| peer != s.node && (s.node == leader || peer == leader))
                .all(|peer| {
                    let labels = [("peer", &*peer.to_string()), ("transport", "quic")];
                    ["sent", "received"].iter().all(|way| {
                        let name = format!("actraft_transport_messages_{way}_total");
                        one(s, &name, &labels).unwrap_or(0.0) >= 1.0
                    })
                })
    })
}

fn client(certs: &Path, ports: &BTreeMap<u64, u16>) -> KvClient {
    let nodes = ports
        .values()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let options = KvClientOptions {
        timeout: WAIT,
        ..KvClientOptions::default()
    };
    kv_process::client(certs, nodes, options)
}

#[actix_rt::test]
async fn kv_serve_exposes_prometheus_metrics_and_kv_status_prints_the_cluster() {
    let bin = kv_bin();
    let dir = tempfile::tempdir().unwrap();
    let ids = [1u64, 2, 3];
    write_certs(&bin, &dir.path().join("certs"), &ids);
    let ports: BTreeMap<u64, u16> = ids.iter().map(|&id| (id, free_port())).collect();
    let nodes: Vec<Node> = ids
        .iter()
        .map(|&id| serve(&bin, id, &ports, dir.path()))
        .collect();

    let kv = client(&dir.path().join("certs"), &ports);
    for i in 0..WRITES {
        kv.put(&format!("key{i}"), &format!("value {i}"))
            .await
            .unwrap_or_else(|e| panic!("put key{i}: {e}"));
    }

    // Every node serves its own metrics, labelled with its own id and no other. A
    // majority acknowledged the writes; wait until the third node has applied them too,
    // and until each follower's own connection to the leader is up (a node that started
    // before the leader listened retries its connection after a back-off), so that
    // every link with the leader has carried traffic both ways.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let scrapes: Vec<Scrape> = loop {
        let scrapes: Vec<Scrape> = nodes.iter().map(Scrape::of).collect();
        if settled(&scrapes, &ids) || std::time::Instant::now() > deadline {
            break scrapes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for scrape in &scrapes {
        let own = scrape.node.to_string();
        let actraft: Vec<&Sample> = scrape
            .samples
            .iter()
            .filter(|s| s.name.starts_with("actraft_"))
            .collect();
        assert!(actraft.len() > 30, "node {own}: {} samples", actraft.len());
        for sample in actraft {
            assert_eq!(sample.labels.get("node"), Some(&own), "{sample:?}");
        }
    }

    // One leader, and it leads in the highest term any node reports.
    let leaders: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| s.gauge("actraft_is_leader") == 1.0)
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one node says it leads");
    let leader = leaders[0];
    assert_eq!(leader.gauge("actraft_role"), 3.0, "role code of a leader");
    assert_eq!(leader.gauge("actraft_leader"), leader.node as f64);
    let term = leader.gauge("actraft_term");
    assert!(scrapes.iter().all(|s| s.gauge("actraft_term") <= term));
    for follower in scrapes.iter().filter(|s| s.node != leader.node) {
        assert_ne!(follower.gauge("actraft_role"), 3.0);
    }

    // The writes (and the session registration before them) went through the leader's
    // log: it answered each one after applying it.
    assert!(leader.gauge("actraft_commit_index") >= WRITES as f64);
    assert!(leader.gauge("actraft_applied_index") >= WRITES as f64);
    assert!(leader.gauge("actraft_last_log_index") >= leader.gauge("actraft_commit_index"));
    assert!(leader.gauge("actraft_proposals_accepted_total") >= WRITES as f64);
    assert!(leader.gauge("actraft_elections_won_total") >= 1.0);
    assert!(leader.gauge("actraft_entries_applied_total") >= WRITES as f64);
    // The leader tracks both followers; a majority matched the commit index.
    let commit = leader.gauge("actraft_commit_index");
    let mut matched = 0;
    for follower in ids.iter().filter(|&&id| id != leader.node) {
        let peer = follower.to_string();
        let m = leader.value("actraft_follower_match_index", &[("peer", &peer)]);
        let lag = leader.value("actraft_follower_lag", &[("peer", &peer)]);
        assert_eq!(lag, leader.gauge("actraft_last_log_index") - m);
        if m >= commit {
            matched += 1;
        }
    }
    assert!(matched >= 1, "a majority of 3 holds the committed entries");

    // Storage and transport metrics, on every node.
    for scrape in &scrapes {
        let storage = [("storage", "rocks")];
        assert!(scrape.value("actraft_storage_fsync_seconds_count", &storage) >= 1.0);
        assert!(scrape.value("actraft_storage_writes_total", &storage) >= 1.0);
        assert!(scrape.value("actraft_write_seconds_count", &[]) >= 1.0);
        assert!(scrape.value("actraft_write_batch_entries_count", &[]) >= 1.0);
        for peer in ids.iter().filter(|&&id| id != scrape.node) {
            let labels = [("peer", &*peer.to_string()), ("transport", "quic")];
            let sent = scrape.value("actraft_transport_messages_sent_total", &labels);
            let received = scrape.value("actraft_transport_messages_received_total", &labels);
            let bytes = scrape.value("actraft_transport_bytes_sent_total", &labels);
            // Leader and followers talk; two followers may never have.
            if scrape.node == leader.node || *peer == leader.node {
                assert!(
                    sent >= 1.0 && received >= 1.0 && bytes >= 1.0,
                    "node {} {labels:?}: sent {sent} received {received} bytes {bytes}; leader {}",
                    scrape.node,
                    leader.node
                );
            }
        }
        assert!(
            scrape.value(
                "actraft_quic_connections_total",
                &[("direction", "outbound")]
            ) >= 1.0
        );
    }
    // The leader sent the entries: its bytes to each follower cover the values written.
    let written: usize = (0..WRITES).map(|i| format!("value {i}").len()).sum();
    for peer in ids.iter().filter(|&&id| id != leader.node) {
        let labels = [("peer", &*peer.to_string()), ("transport", "quic")];
        assert!(leader.value("actraft_transport_bytes_sent_total", &labels) >= written as f64);
    }

    // Anything but /metrics is not found.
    let (status, _) = get(nodes[0].metrics, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // `kv status`: a header and one row per node, one of them the leader, agreeing with
    // the metrics.
    let addrs: Vec<String> = ports
        .values()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let output = Command::new(&bin)
        .args(["status", "--nodes", &addrs.join(",")])
        .env("KV_CERTS", dir.path().join("certs"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let table = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["node", "id", "role", "term", "leader", "commit", "applied", "lag"],
        "{table}"
    );
    assert_eq!(rows.len(), 4, "{table}");
    let leader_rows: Vec<&Vec<&str>> = rows[1..].iter().filter(|r| r[2] == "leader").collect();
    assert_eq!(leader_rows.len(), 1, "{table}");
    let row = leader_rows[0];
    assert_eq!(row[1], leader.node.to_string(), "{table}");
    assert!(row[5].parse::<u64>().unwrap() >= WRITES, "{table}");
    for row in &rows[1..] {
        assert_eq!(
            row[4],
            leader.node.to_string(),
            "every node knows the leader: {table}"
        );
    }
    drop(nodes);
}
