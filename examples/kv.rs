//! A replicated key-value service, run as real processes: nodes talk Raft over QUIC
//! with mutual TLS and keep their logs in RocksDB; clients talk to any node and are
//! sent on to the leader. `examples/kv-cluster.sh` runs the whole scenario on loopback.
//!
//! ```sh
//! # Development certificates: a CA and one certificate per node.
//! cargo run --release --example kv -- certs --dir /tmp/kv/certs --ids 1,2,3
//!
//! # Three nodes (one terminal each). A node serves its peers on UDP and its clients on
//! # TCP at the same address.
//! cargo run --release --example kv -- serve --id 1 --listen 127.0.0.1:7001 \
//!     --peers 2=127.0.0.1:7002,3=127.0.0.1:7003 --data-dir /tmp/kv/1 --certs /tmp/kv/certs
//! cargo run --release --example kv -- serve --id 2 --listen 127.0.0.1:7002 \
//!     --peers 1=127.0.0.1:7001,3=127.0.0.1:7003 --data-dir /tmp/kv/2 --certs /tmp/kv/certs
//! cargo run --release --example kv -- serve --id 3 --listen 127.0.0.1:7003 \
//!     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002 --data-dir /tmp/kv/3 --certs /tmp/kv/certs
//!
//! # Clients: any node will do, they follow the leader.
//! cargo run --release --example kv -- put greeting hello
//! cargo run --release --example kv -- get greeting --nodes 127.0.0.1:7002
//! cargo run --release --example kv -- status
//! cargo run --release --example kv -- leader
//! ```
//!
//! Production deployments give `serve` their own PEM files with `--ca`, `--cert` and
//! `--key` instead of `--certs`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actraft::core::NodeId;
use actraft::NodeBuilder;
use actraft_examples::kv::KvMachine;
use actraft_examples::kv_service::{serve_clients, KvClient};
use actraft_storage_rocks::{RocksOptions, RocksStorage};
use actraft_transport_quic::{DevCa, QuicConfig, QuicTransport, TlsIdentity};

const USAGE: &str = "usage:
  kv certs --dir DIR --ids 1,2,3 [--cluster NAME]
  kv serve --id N --listen ADDR --peers ID=ADDR,... --data-dir DIR
           (--certs DIR | --ca FILE --cert FILE --key FILE) [--cluster NAME]
  kv put KEY VALUE [--nodes ADDR,...] [--timeout SECS]
  kv get KEY [--nodes ADDR,...] [--timeout SECS]
  kv status [--nodes ADDR,...]
  kv leader [--nodes ADDR,...] [--timeout SECS]
defaults: --cluster kv, --nodes 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 (or $KV_NODES),
          --timeout 15";

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("kv: {message}");
    std::process::exit(1)
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2)
}

/// Positional arguments and `--flag value` pairs.
struct Args {
    positional: Vec<String>,
    flags: BTreeMap<String, String>,
}

impl Args {
    fn parse() -> Self {
        let mut positional = Vec::new();
        let mut flags = BTreeMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            if let Some(flag) = arg.strip_prefix("--") {
                let value = it.next().unwrap_or_else(|| usage());
                flags.insert(flag.to_string(), value);
            } else {
                positional.push(arg);
            }
        }
        Self { positional, flags }
    }

    fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str)
    }

    fn required(&self, name: &str) -> &str {
        self.flag(name)
            .unwrap_or_else(|| fail(format!("--{name} is required\n{USAGE}")))
    }

    fn cluster(&self) -> String {
        self.flag("cluster").unwrap_or("kv").to_string()
    }

    fn timeout(&self) -> Duration {
        let secs: f64 = self
            .flag("timeout")
            .map_or(Ok(15.0), str::parse)
            .unwrap_or_else(|_| usage());
        Duration::from_secs_f64(secs)
    }

    fn nodes(&self) -> Vec<SocketAddr> {
        let env = std::env::var("KV_NODES").ok();
        let list = self
            .flag("nodes")
            .or(env.as_deref())
            .unwrap_or("127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003");
        list.split(',')
            .map(|a| {
                a.trim()
                    .parse()
                    .unwrap_or_else(|e| fail(format!("{a}: {e}")))
            })
            .collect()
    }
}

fn parse_ids(list: &str) -> Vec<NodeId> {
    list.split(',')
        .map(|id| {
            id.trim()
                .parse()
                .unwrap_or_else(|e| fail(format!("id {id}: {e}")))
        })
        .collect()
}

fn parse_peers(list: &str) -> BTreeMap<NodeId, SocketAddr> {
    list.split(',')
        .map(|pair| {
            let (id, addr) = pair
                .split_once('=')
                .unwrap_or_else(|| fail(format!("peer {pair:?}: expected ID=ADDR")));
            let id = id
                .trim()
                .parse()
                .unwrap_or_else(|e| fail(format!("{pair}: {e}")));
            let addr = addr
                .trim()
                .parse()
                .unwrap_or_else(|e| fail(format!("{pair}: {e}")));
            (id, addr)
        })
        .collect()
}

#[actix_rt::main]
async fn main() {
    actraft_examples::init_tracing();
    let args = Args::parse();
    let command = args.positional.first().map(String::as_str);
    match command {
        Some("certs") => certs(&args),
        Some("serve") => serve(&args).await,
        Some("put") | Some("get") | Some("status") | Some("leader") => client(&args).await,
        _ => usage(),
    }
}

fn certs(args: &Args) {
    let dir = PathBuf::from(args.required("dir"));
    let ids = parse_ids(args.required("ids"));
    let cluster = args.cluster();
    let ca = DevCa::new(&cluster).unwrap_or_else(|e| fail(e));
    ca.write_dir(&dir, &ids).unwrap_or_else(|e| fail(e));
    println!(
        "wrote a development CA and certificates for nodes {ids:?} of cluster {cluster:?} to {}",
        dir.display()
    );
}

async fn serve(args: &Args) {
    let id: NodeId = args.required("id").parse().unwrap_or_else(|_| usage());
    let listen: SocketAddr = args.required("listen").parse().unwrap_or_else(|_| usage());
    let peers = parse_peers(args.required("peers"));
    let data_dir = PathBuf::from(args.required("data-dir"));
    let tls = match (args.flag("certs"), args.flag("ca")) {
        (Some(dir), None) => TlsIdentity::from_dir(dir.as_ref(), id),
        (None, Some(ca)) => TlsIdentity::from_pem_files(
            ca.as_ref(),
            args.required("cert").as_ref(),
            args.required("key").as_ref(),
        ),
        _ => fail(format!(
            "give either --certs DIR or --ca/--cert/--key\n{USAGE}"
        )),
    }
    .unwrap_or_else(|e| fail(e));

    let config = QuicConfig::new(id, args.cluster(), listen, peers.clone(), tls);
    let transport = QuicTransport::new(config).unwrap_or_else(|e| fail(e));
    let clients = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| fail(format!("client port {listen}: {e}")));
    let storage = RocksStorage::open(&data_dir, RocksOptions::default())
        .await
        .unwrap_or_else(|e| fail(e));
    let members: Vec<NodeId> = peers.keys().copied().chain([id]).collect();
    let handle = NodeBuilder::new(id, members)
        .start(storage, transport, KvMachine::new())
        .await
        .unwrap_or_else(|e| fail(e));
    println!(
        "node {id} serving on {listen} (Raft over QUIC/UDP, clients over TCP), data in {}",
        data_dir.display()
    );
    if let Err(e) = serve_clients(clients, handle.clone(), peers).await {
        handle.shutdown().await;
        fail(format!("client listener failed: {e}"));
    }
}

async fn client(args: &Args) {
    let nodes = args.nodes();
    let client = KvClient::new(nodes.clone(), args.timeout());
    let arg = |i: usize| {
        args.positional
            .get(i)
            .map(String::as_str)
            .unwrap_or_else(|| usage())
    };
    match arg(0) {
        "put" => {
            let value = args.positional[2..].join(" ");
            if value.is_empty() || arg(1).contains(char::is_whitespace) {
                usage();
            }
            println!(
                "{}",
                client.put(arg(1), &value).await.unwrap_or_else(|e| fail(e))
            );
        }
        "get" => println!("{}", client.get(arg(1)).await.unwrap_or_else(|e| fail(e))),
        "status" => {
            for addr in nodes {
                match client.status(addr).await {
                    Ok(status) => println!("{addr}: {status}"),
                    Err(e) => println!("{addr}: down ({e})"),
                }
            }
        }
        "leader" => {
            // The node that says it leads, in the highest term any node reports.
            let deadline = tokio::time::Instant::now() + args.timeout();
            while tokio::time::Instant::now() < deadline {
                let mut best: Option<(u64, String)> = None;
                for &addr in &nodes {
                    let Ok(status) = client.status(addr).await else {
                        continue;
                    };
                    let field = |name: &str| {
                        status
                            .split(' ')
                            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                            .map(str::to_string)
                    };
                    let term: u64 = field("term").and_then(|t| t.parse().ok()).unwrap_or(0);
                    if field("role").as_deref() == Some("leader")
                        && best.as_ref().is_none_or(|(t, _)| term > *t)
                    {
                        best = field("id").map(|id| (term, id));
                    }
                }
                if let Some((_, id)) = best {
                    println!("{id}");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            fail("no leader found in time");
        }
        _ => usage(),
    }
}
