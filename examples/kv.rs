//! A replicated key-value service, run as real processes: nodes talk Raft over QUIC
//! with mutual TLS and keep their logs in RocksDB; clients talk TLS to any node, with a
//! client certificate from the cluster's CA, and are sent on to the leader. Every write
//! is applied exactly once, however often the client retries it (client sessions).
//! `examples/kv-cluster.sh` runs the whole scenario on loopback.
//!
//! ```sh
//! # Development certificates: a CA, one certificate per node, one per client. The CA
//! # (its key in ca.key) stays in the directory: run `certs` again with a new id to
//! # certify a node added later; the running nodes accept it as they are.
//! cargo run --release --example kv -- certs --dir /tmp/kv/certs --ids 1,2,3 --clients client
//!
//! # Three nodes (one terminal each). A node serves its peers on UDP and its clients on
//! # TCP at the same address. SIGTERM or Ctrl-C stops one gracefully. `--lease-reads`
//! # lets the leader answer `get --read lease` on its lease (bounded clock drift).
//! cargo run --release --example kv -- serve --id 1 --listen 127.0.0.1:7001 \
//!     --peers 2=127.0.0.1:7002,3=127.0.0.1:7003 --data-dir /tmp/kv/1 --certs /tmp/kv/certs
//! cargo run --release --example kv -- serve --id 2 --listen 127.0.0.1:7002 \
//!     --peers 1=127.0.0.1:7001,3=127.0.0.1:7003 --data-dir /tmp/kv/2 --certs /tmp/kv/certs
//! cargo run --release --example kv -- serve --id 3 --listen 127.0.0.1:7003 \
//!     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002 --data-dir /tmp/kv/3 --certs /tmp/kv/certs
//!
//! # Clients: any node will do, they follow the leader. Exit code 3: key not found.
//! export KV_CERTS=/tmp/kv/certs
//! cargo run --release --example kv -- put greeting hello
//! cargo run --release --example kv -- get greeting --nodes localhost:7002
//! cargo run --release --example kv -- get greeting --read follower --nodes localhost:7002
//! cargo run --release --example kv -- delete greeting
//! cargo run --release --example kv -- status     # a table of the cluster
//! cargo run --release --example kv -- leader
//!
//! # Replace node 1 by node 4 without downtime: start node 4 empty, add it (learner,
//! # then voter once caught up), remove node 1, stop node 1's process.
//! cargo run --release --example kv -- serve --id 4 --join --listen 127.0.0.1:7004 \
//!     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --data-dir /tmp/kv/4 --certs /tmp/kv/certs
//! cargo run --release --example kv -- add-node --id 4 --addr 127.0.0.1:7004
//! cargo run --release --example kv -- remove-node --id 1
//! cargo run --release --example kv -- members
//! cargo run --release --example kv -- transfer-leader --to 2
//! ```
//!
//! `serve --metrics 127.0.0.1:9001` also serves the node's metrics as Prometheus text at
//! `http://127.0.0.1:9001/metrics` (see `actraft::metrics` for the list).
//!
//! Production deployments give `serve` and the clients their own PEM files with `--ca`,
//! `--cert` and `--key` instead of `--certs`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use actraft::core::NodeId;
use actraft::session::SessionConfig;
use actraft::NodeBuilder;
use actraft_examples::kv::{replicated_with_reader, KvCommand};
use actraft_examples::kv_admin::AdminRequest;
use actraft_examples::kv_client::{KvClient, KvClientError, KvClientOptions};
use actraft_examples::kv_service::{serve_clients, ServeOptions};
use actraft_examples::kv_status::{self, NodeStatus};
use actraft_examples::kv_tls;
use actraft_examples::kv_wire::ReadPath;
use actraft_examples::metrics_http;
use actraft_storage_rocks::{FileSnapshotStore, RocksOptions, RocksStorage};
use actraft_transport_quic::{DevCa, QuicConfig, QuicTransport, TlsIdentity};
use clap::{Args, Parser, Subcommand};

/// Exit code of `get` and `delete` when the key does not exist.
const EXIT_NOT_FOUND: i32 = 3;

#[derive(Parser)]
#[command(name = "kv", about = "A replicated key-value service on actraft")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes node and client certificates from the development CA saved in the
    /// directory, creating and saving one first if there is none.
    Certs {
        /// Where to write them.
        #[arg(long)]
        dir: PathBuf,
        /// Node ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        ids: Vec<NodeId>,
        /// Client names, comma-separated (files `client-<name>.pem` and `.key`).
        #[arg(long, value_delimiter = ',', default_value = "client")]
        clients: Vec<String>,
        /// The cluster name.
        #[arg(long, default_value = "kv")]
        cluster: String,
    },
    /// Runs a node until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Sets KEY to VALUE (the words after KEY, joined by spaces).
    Put {
        /// The key.
        key: String,
        /// The value.
        #[arg(required = true, num_args = 1..)]
        value: Vec<String>,
        #[command(flatten)]
        session: ExplicitSession,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Prints KEY's value; exit code 3 when absent.
    Get {
        /// The key.
        key: String,
        /// How the read is served: `index` (a heartbeat round on the leader), `lease` (no
        /// round trip; nodes run with --lease-reads), `follower` (any node answers) or
        /// `log` (a replicated write per read). All are linearizable.
        #[arg(long, value_enum, default_value_t = ReadPath::Index)]
        read: ReadPath,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Removes KEY; exit code 3 when it did not exist.
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        session: ExplicitSession,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Opens a client session and prints its id (for --session).
    Session {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Prints a table of the cluster: each node's id, role, term, leader, commit and
    /// applied index, and (on the leader) the largest follower lag.
    Status {
        /// One `ADDR: key=value ...` line per node instead of the table (for scripts).
        #[arg(long)]
        lines: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Prints the leader's id once there is one.
    Leader {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Adds node ID (started with `serve --join`) as a learner, then, unless --learner,
    /// promotes it to voter once it has caught up. Running it again is harmless: use it
    /// without --learner to promote a learner.
    AddNode {
        /// The new node's id.
        #[arg(long)]
        id: NodeId,
        /// Where the other nodes reach it: its `serve --listen` address.
        #[arg(long)]
        addr: String,
        /// Leave it a learner (it gets the log, but does not vote).
        #[arg(long)]
        learner: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Removes node ID from the cluster (voter or learner). Once the change commits the
    /// node stops taking part; stop its process then. Removing the leader hands over
    /// leadership.
    RemoveNode {
        /// The node to remove.
        #[arg(long)]
        id: NodeId,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Moves the leadership to node --to (or to the most up-to-date follower) and prints
    /// the new leader.
    TransferLeader {
        /// The node to lead next.
        #[arg(long)]
        to: Option<NodeId>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Prints the cluster's voters and learners, as the leader sees them.
    Members {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// This node's id.
    #[arg(long)]
    id: NodeId,
    /// Where to listen: UDP for peers, TCP for clients (host:port).
    #[arg(long)]
    listen: String,
    /// The other nodes, ID=HOST:PORT, comma-separated. Without --join, these and this
    /// node are the cluster's first configuration (used only when the data directory is
    /// new); later members and their addresses come from the cluster itself.
    #[arg(long, value_delimiter = ',', required = true)]
    peers: Vec<String>,
    /// Join an existing cluster: start with no configuration and wait to be added
    /// (`kv add-node` on any member). Ignored once the node has been a member.
    #[arg(long)]
    join: bool,
    /// The RocksDB directory.
    #[arg(long)]
    data_dir: PathBuf,
    #[command(flatten)]
    tls: TlsArgs,
    /// The cluster name (in the certificates).
    #[arg(long, default_value = "kv")]
    cluster: String,
    /// Client connections served at once.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds before an idle client connection is closed.
    #[arg(long, default_value_t = 60.0)]
    idle_timeout: f64,
    /// Serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks a free
    /// one, printed at start).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Serve `get --read lease` on the leader's lease, without a round trip. Assumes
    /// the nodes' clocks run at rates within the configured drift margin of each other.
    #[arg(long)]
    lease_reads: bool,
    /// Take a snapshot (the map and the client sessions, in `<data-dir>.snapshots`) every
    /// this many applied entries, and compact the log behind it; 0: never.
    #[arg(long, default_value_t = actraft::Config::default().snapshot_after_entries)]
    snapshot_after_entries: u64,
    /// Entries kept behind a snapshot for followers a little behind; one further behind
    /// gets the snapshot.
    #[arg(long, default_value_t = actraft::Config::default().snapshot_keep_entries)]
    snapshot_keep_entries: u64,
}

#[derive(Args)]
struct TlsArgs {
    /// A directory as `kv certs` writes it.
    #[arg(long, env = "KV_CERTS", conflicts_with_all = ["ca", "cert", "tls_key"])]
    certs: Option<PathBuf>,
    /// The CA certificate (PEM).
    #[arg(long, requires_all = ["cert", "tls_key"])]
    ca: Option<PathBuf>,
    /// This side's certificate (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// This side's private key (PEM).
    #[arg(long = "key", id = "tls_key")]
    key: Option<PathBuf>,
}

#[derive(Args)]
struct ClientArgs {
    /// Nodes to try, HOST:PORT, comma-separated.
    #[arg(
        long,
        env = "KV_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    nodes: Vec<String>,
    /// Seconds before a request gives up.
    #[arg(long, default_value_t = 15.0)]
    timeout: f64,
    /// Seconds before connecting to one node gives up (then the next is tried).
    #[arg(long, default_value_t = 1.0)]
    connect_timeout: f64,
    #[command(flatten)]
    tls: TlsArgs,
    /// With --certs: which client certificate (`client-<name>.pem`).
    #[arg(long = "client", env = "KV_CLIENT", default_value = "client")]
    name: String,
}

/// For scripts: write as number SEQ of an existing session (from `kv session`) instead
/// of a new one. Repeating the same SEQ is answered from the session.
#[derive(Args)]
struct ExplicitSession {
    /// The session id.
    #[arg(long, requires = "seq")]
    session: Option<u64>,
    /// The write's sequence number in that session.
    #[arg(long, requires = "session")]
    seq: Option<u64>,
}

fn fail(message: impl std::fmt::Display) -> ! {
    eprintln!("kv: {message}");
    std::process::exit(1)
}

fn seconds(secs: f64, what: &str) -> Duration {
    Duration::try_from_secs_f64(secs)
        .unwrap_or_else(|_| fail(format!("{what}: {secs} is not a duration")))
}

fn resolve(addr: &str) -> SocketAddr {
    addr.to_socket_addrs()
        .unwrap_or_else(|e| fail(format!("{addr}: {e}")))
        .next()
        .unwrap_or_else(|| fail(format!("{addr}: no address")))
}

impl TlsArgs {
    fn identity(
        &self,
        from_dir: impl FnOnce(
            &std::path::Path,
        ) -> Result<TlsIdentity, actraft_transport_quic::QuicError>,
    ) -> TlsIdentity {
        match (&self.certs, &self.ca, &self.cert, &self.key) {
            (Some(dir), None, None, None) => from_dir(dir),
            (None, Some(ca), Some(cert), Some(key)) => TlsIdentity::from_pem_files(ca, cert, key),
            _ => fail("give either --certs DIR (or $KV_CERTS) or --ca, --cert and --key"),
        }
        .unwrap_or_else(|e| fail(e))
    }
}

#[actix_rt::main]
async fn main() {
    actraft_examples::init_tracing();
    match Cli::parse().command {
        Command::Certs {
            dir,
            ids,
            clients,
            cluster,
        } => {
            // The CA is saved beside the certificates, and reused when the directory
            // has one: certifying a node added later is `kv certs --ids 4` again.
            let (ca, created) = DevCa::open_or_create(&dir, &cluster).unwrap_or_else(|e| fail(e));
            ca.write_dir(&dir, &ids).unwrap_or_else(|e| fail(e));
            let names: Vec<&str> = clients.iter().map(String::as_str).collect();
            ca.write_clients(&dir, &names).unwrap_or_else(|e| fail(e));
            let which = if created { "a new" } else { "the saved" };
            println!(
                "wrote certificates from {which} development CA for nodes {ids:?} and clients {clients:?} of cluster {cluster:?} to {}",
                dir.display()
            );
        }
        Command::Serve(args) => serve(args).await,
        Command::Put {
            key,
            value,
            session,
            client,
        } => {
            let value = value.join(" ");
            let command = KvCommand::Put {
                key: key.clone(),
                value: value.clone(),
            };
            let kv = client.connect();
            let written = match (session.session, session.seq) {
                (Some(id), Some(seq)) => explicit(&kv, &client, id, seq, command).await,
                _ => kv.put(&key, &value).await,
            };
            let written = written.unwrap_or_else(|e| fail(e));
            if written.duplicate {
                eprintln!("kv: already applied; answered from the session");
            }
            println!("ok");
        }
        Command::Get { key, read, client } => match client.connect().get_with(&key, read).await {
            Ok(Some(value)) => println!("{value}"),
            Ok(None) => {
                eprintln!("kv: {key}: not found");
                std::process::exit(EXIT_NOT_FOUND);
            }
            Err(e) => fail(e),
        },
        Command::Delete {
            key,
            session,
            client,
        } => {
            let kv = client.connect();
            let written = match (session.session, session.seq) {
                (Some(id), Some(seq)) => {
                    explicit(
                        &kv,
                        &client,
                        id,
                        seq,
                        KvCommand::Delete { key: key.clone() },
                    )
                    .await
                }
                _ => kv.delete(&key).await,
            };
            match written {
                Ok(w) if w.found => println!("ok"),
                Ok(_) => {
                    eprintln!("kv: {key}: not found");
                    std::process::exit(EXIT_NOT_FOUND);
                }
                Err(e) => fail(e),
            }
        }
        Command::Session { client } => {
            println!(
                "{}",
                client
                    .connect()
                    .register()
                    .await
                    .unwrap_or_else(|e| fail(e))
            );
        }
        Command::Status { lines, client } => {
            let kv = client.connect();
            let mut rows = Vec::new();
            for addr in &client.nodes {
                let status = kv.status(addr).await;
                if lines {
                    match &status {
                        Ok(status) => println!("{addr}: {status}"),
                        Err(e) => println!("{addr}: down ({e})"),
                    }
                }
                rows.push((addr.clone(), status.and_then(|s| NodeStatus::parse(&s))));
            }
            if !lines {
                print!("{}", kv_status::table(&rows));
            }
        }
        Command::Leader { client } => leader(&client).await,
        Command::AddNode {
            id,
            addr,
            learner,
            client,
        } => {
            let kv = client.connect();
            let added = kv
                .admin(AdminRequest::AddLearner { id, address: addr })
                .await
                .unwrap_or_else(|e| fail(e));
            println!("{added}");
            if !learner {
                let promoted = kv
                    .admin(AdminRequest::Promote { id })
                    .await
                    .unwrap_or_else(|e| fail(e));
                println!("{promoted}");
            }
        }
        Command::RemoveNode { id, client } => {
            let removed = client.connect().admin(AdminRequest::Remove { id }).await;
            println!("{}", removed.unwrap_or_else(|e| fail(e)));
        }
        Command::TransferLeader { to, client } => {
            let moved = client.connect().admin(AdminRequest::Transfer { to }).await;
            println!("{}", moved.unwrap_or_else(|e| fail(e)));
        }
        Command::Members { client } => {
            let members = client.connect().admin(AdminRequest::Members).await;
            println!("{}", members.unwrap_or_else(|e| fail(e)));
        }
    }
}

async fn explicit(
    kv: &KvClient,
    client: &ClientArgs,
    id: u64,
    seq: u64,
    command: KvCommand,
) -> Result<actraft_examples::kv_client::Written, KvClientError> {
    let deadline = tokio::time::Instant::now() + seconds(client.timeout, "--timeout");
    kv.write_as(id, seq, command, deadline).await
}

impl ClientArgs {
    fn connect(&self) -> KvClient {
        let identity = self
            .tls
            .identity(|dir| TlsIdentity::client_from_dir(dir, &self.name));
        let tls = kv_tls::client_config(&identity).unwrap_or_else(|e| fail(e));
        let options = KvClientOptions {
            timeout: seconds(self.timeout, "--timeout"),
            connect_timeout: seconds(self.connect_timeout, "--connect-timeout"),
            ..KvClientOptions::default()
        };
        KvClient::new(self.nodes.clone(), tls, options)
    }
}

/// Prints the node that says it leads, in the highest term any node reports.
async fn leader(client: &ClientArgs) {
    let kv = client.connect();
    let deadline = tokio::time::Instant::now() + seconds(client.timeout, "--timeout");
    while tokio::time::Instant::now() < deadline {
        let mut best: Option<(u64, String)> = None;
        for addr in &client.nodes {
            let Ok(status) = kv.status(addr).await else {
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
    fail("no leader known: does the cluster have a majority?");
}

async fn serve(args: ServeArgs) {
    let id = args.id;
    let listen = resolve(&args.listen);
    let peers: BTreeMap<NodeId, SocketAddr> = args
        .peers
        .iter()
        .map(|pair| {
            let (peer, addr) = pair
                .split_once('=')
                .unwrap_or_else(|| fail(format!("peer {pair:?}: expected ID=HOST:PORT")));
            let peer = peer
                .trim()
                .parse()
                .unwrap_or_else(|e| fail(format!("{pair}: {e}")));
            (peer, resolve(addr.trim()))
        })
        .collect();
    let tls = args.tls.identity(|dir| TlsIdentity::from_dir(dir, id));
    let client_tls = kv_tls::server_config(&tls).unwrap_or_else(|e| fail(e));
    // Before the transport, the storage and the node: they register their metrics
    // with the recorder installed when they are made.
    if let Some(addr) = &args.metrics {
        serve_metrics(resolve(addr)).await;
    }

    let config = QuicConfig::new(id, args.cluster.clone(), listen, peers.clone(), tls);
    let transport = QuicTransport::new(config).unwrap_or_else(|e| fail(e));
    let clients = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| fail(format!("client port {listen}: {e}")));
    let rocks = RocksOptions {
        metrics_node: Some(id),
        ..RocksOptions::default()
    };
    let storage = RocksStorage::open(&args.data_dir, rocks)
        .await
        .unwrap_or_else(|e| fail(e));
    let members: Vec<NodeId> = peers.keys().copied().chain([id]).collect();
    let raft_config = actraft::Config {
        lease_reads: args.lease_reads,
        snapshot_after_entries: args.snapshot_after_entries,
        snapshot_keep_entries: args.snapshot_keep_entries,
        ..actraft::Config::default()
    };
    let (machine, reader) = replicated_with_reader(SessionConfig::default());
    // Snapshots (the map and the client sessions) live beside the RocksDB directory;
    // the default policy takes one every 65 536 entries and compacts the log behind it.
    let snapshots = FileSnapshotStore::open(FileSnapshotStore::beside(&args.data_dir))
        .unwrap_or_else(|e| fail(format!("snapshot store: {e}")));
    let builder = if args.join {
        NodeBuilder::joining(id)
    } else {
        NodeBuilder::new(id, members)
    };
    let handle = builder
        .config(raft_config)
        .snapshot_store(snapshots)
        .start(storage, transport, machine)
        .await
        .unwrap_or_else(|e| fail(e));
    println!(
        "node {id} serving on {listen} (Raft over QUIC/UDP, clients over TLS/TCP), data in {}",
        args.data_dir.display()
    );
    let options = ServeOptions {
        max_connections: args.max_connections,
        idle_timeout: seconds(args.idle_timeout, "--idle-timeout"),
        reader: Some(reader),
        ..ServeOptions::default()
    };
    let served = serve_clients(
        clients,
        handle.clone(),
        peers,
        client_tls,
        options,
        stop_signal(),
    )
    .await;
    // Clients are no longer served: stop the node (the write in flight completes).
    handle.shutdown().await;
    if let Err(e) = served {
        fail(format!("client listener failed: {e}"));
    }
    println!("node {id} stopped");
}

/// Installs the Prometheus recorder and serves it at `http://addr/metrics` for the rest
/// of the process's life.
async fn serve_metrics(addr: SocketAddr) {
    let recorder = metrics_http::install_prometheus().unwrap_or_else(|e| fail(e));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| fail(format!("metrics port {addr}: {e}")));
    let bound = listener
        .local_addr()
        .unwrap_or_else(|e| fail(format!("metrics port {addr}: {e}")));
    println!("metrics at http://{bound}/metrics");
    actix_rt::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) = metrics_http::serve_metrics(listener, recorder, forever).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).unwrap_or_else(|e| fail(format!("SIGTERM handler: {e}")));
    let mut int =
        signal(SignalKind::interrupt()).unwrap_or_else(|e| fail(format!("SIGINT handler: {e}")));
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name}: shutting down");
}
