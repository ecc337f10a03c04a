//! `kv serve` as a real process, for tests that run the KV service the way an operator
//! does: the `kv` binary built beside the test, a free loopback port per node,
//! certificates from `kv certs`, and a node that can be killed with SIGKILL, paused with
//! SIGSTOP, resumed and restarted on its own data directory.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use actraft::NodeId;
use actraft_transport_quic::TlsIdentity;

use crate::kv_client::{KvClient, KvClientOptions};
use crate::kv_tls;

/// The `kv` example binary beside the running test binary (`target/<profile>/examples/kv`),
/// which `cargo test -p actraft-examples --features rocks` builds along with the tests.
///
/// # Panics
///
/// When it is not there, with the command that builds it.
pub fn kv_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = dir.join("examples").join("kv");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p actraft-examples --features rocks --example kv` \
         (with the same profile as this test)",
        bin.display()
    );
    bin
}

/// A loopback port free for both TCP and UDP right now (a node serves both on it).
///
/// # Panics
///
/// When no loopback port can be bound at all.
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = tcp.local_addr().expect("a bound address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Writes the development CA and the certificates of nodes `ids` and of the client
/// `client` into `dir` (`kv certs`).
///
/// # Panics
///
/// When `kv certs` fails.
pub fn write_certs(bin: &Path, dir: &Path, ids: &[NodeId]) {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let status = Command::new(bin)
        .args(["certs", "--ids", &ids.join(","), "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .expect("run kv certs");
    assert!(status.success(), "kv certs failed: {status}");
}

/// A client of the nodes at `nodes` (`host:port`), with the certificate of the client
/// `client` that [`write_certs`] put in `certs`.
///
/// # Panics
///
/// When the certificates cannot be read.
pub fn client(certs: &Path, nodes: Vec<String>, options: KvClientOptions) -> KvClient {
    let identity = TlsIdentity::client_from_dir(certs, "client").expect("the client's certificate");
    let tls = kv_tls::client_config(&identity).expect("a TLS configuration");
    KvClient::new(nodes, tls, options)
}

/// One node of a cluster of `kv serve` processes on loopback.
#[derive(Debug)]
pub struct KvProcess {
    /// The node's id.
    pub id: NodeId,
    prefix: Vec<String>,
    args: Vec<String>,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl KvProcess {
    /// Node `id` of the cluster whose nodes listen on `ports` (127.0.0.1), keeping its
    /// data under `dir` (`node-<id>`, its log in `node-<id>.log`) and its certificates
    /// in `certs`; `extra` arguments go to `kv serve`. Not started yet.
    pub fn new(
        id: NodeId,
        ports: &BTreeMap<NodeId, u16>,
        dir: &Path,
        certs: &Path,
        extra: &[&str],
    ) -> Self {
        let addrs = ports
            .iter()
            .map(|(&id, port)| (id, format!("127.0.0.1:{port}")))
            .collect();
        Self::at(id, &addrs, dir, certs, extra)
    }

    /// [`new`](Self::new) for nodes listening at `addrs` (`host:port` by node id).
    pub fn at(
        id: NodeId,
        addrs: &BTreeMap<NodeId, String>,
        dir: &Path,
        certs: &Path,
        extra: &[&str],
    ) -> Self {
        let peers: Vec<String> = addrs
            .iter()
            .filter(|(&p, _)| p != id)
            .map(|(p, addr)| format!("{p}={addr}"))
            .collect();
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addrs[&id].clone(),
            "--peers".into(),
            peers.join(","),
            "--certs".into(),
            certs.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_string()));
        Self {
            id,
            prefix: Vec::new(),
            args,
            data_dir: dir.join(format!("node-{id}")),
            log: dir.join(format!("node-{id}.log")),
            child: None,
            paused: false,
        }
    }

    /// Runs the node through `prefix` (for example `ip netns exec NS`, which execs the
    /// node in place, so signals still reach it).
    pub fn prefixed(mut self, prefix: Vec<String>) -> Self {
        self.prefix = prefix;
        self
    }

    /// Starts the process (again, on the same data directory, after a kill); its
    /// standard error is appended to its log file.
    ///
    /// # Panics
    ///
    /// When the process cannot be started.
    pub fn start(&mut self, bin: &Path) {
        assert!(self.child.is_none(), "node {} is running", self.id);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the node's log");
        let mut command = match self.prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let child = command
            .args(&self.args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kv serve");
        self.child = Some(child);
        self.paused = false;
    }

    /// Deletes the node's data directory, as a disk that was lost. The process must not
    /// run. Restart such a node only once the cluster removed it, and with
    /// [`joining`](Self::joining): it comes back as a new node, added again as a learner.
    ///
    /// # Panics
    ///
    /// When the process runs, or the directory cannot be deleted.
    pub fn wipe(&mut self) {
        assert!(self.child.is_none(), "node {} is running", self.id);
        match std::fs::remove_dir_all(&self.data_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("delete {}: {e}", self.data_dir.display()),
        }
    }

    /// From its next start on, the node starts with `--join`: on empty storage it waits
    /// to be added instead of forming the first configuration (on storage that holds a
    /// configuration the flag changes nothing).
    pub fn joining(&mut self) {
        if !self.args.iter().any(|a| a == "--join") {
            self.args.push("--join".into());
        }
    }

    /// True while the process runs (paused or not).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// True while the process is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// SIGKILL, and waits for the process to end (a paused one too).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGSTOP: the process stops where it is, its sockets open, until [`resume`](Self::resume).
    /// Returns false when signals cannot be sent here (no `kill` command).
    pub fn pause(&mut self) -> bool {
        if self.signal("-STOP") {
            self.paused = true;
        }
        self.paused
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        if self.paused && self.signal("-CONT") {
            self.paused = false;
        }
    }

    fn signal(&self, signal: &str) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The last `lines` lines of the node's log (for a failure message).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for KvProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A LAN of network namespaces, one per node, on one bridge, for partition tests (needs
/// root and the `ip` and `bridge` commands of iproute2). Node `id` has address
/// `10.213.<net>.<id>` in namespace `kvt<net>-<id>`; the bridge (address `.254`) joins
/// them to the host, where the test and its clients run. Everything is removed on drop.
#[derive(Debug)]
pub struct NetnsLan {
    net: u8,
    ids: Vec<NodeId>,
}

/// Runs `ip`-style `program args`; `Err` with what it printed when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetnsLan {
    /// Builds the LAN for nodes `ids` (each below 254).
    ///
    /// # Errors
    ///
    /// When a namespace, link or address cannot be made (not root, no iproute2).
    pub fn new(ids: &[NodeId]) -> Result<Self, String> {
        let net = (std::process::id() % 250) as u8;
        let lan = Self {
            net,
            ids: ids.to_vec(),
        };
        let bridge = lan.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.213.{net}.254/24"),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for &id in ids {
            let (ns, host) = (lan.namespace(id), lan.port(id));
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            let addr = format!("10.213.{net}.{id}/24");
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            run("ip", &["link", "set", &host, "master", &bridge])?;
            run("ip", &["link", "set", &host, "up"])?;
        }
        Ok(lan)
    }

    fn bridge(&self) -> String {
        format!("kvbr{}", self.net)
    }

    fn namespace(&self, id: NodeId) -> String {
        format!("kvt{}-{id}", self.net)
    }

    /// The host side of node `id`'s link, a port of the bridge.
    fn port(&self, id: NodeId) -> String {
        format!("kv{}n{id}", self.net)
    }

    /// Node `id`'s address, `host:port`.
    pub fn addr(&self, id: NodeId, port: u16) -> String {
        format!("10.213.{}.{id}:{port}", self.net)
    }

    /// The command prefix that runs a program in node `id`'s namespace.
    pub fn prefix(&self, id: NodeId) -> Vec<String> {
        ["ip", "netns", "exec", &self.namespace(id)]
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Cuts node `id` off from everyone (its link goes down), clients included.
    ///
    /// # Errors
    ///
    /// When `ip` fails.
    pub fn isolate(&self, id: NodeId) -> Result<(), String> {
        run("ip", &["link", "set", &self.port(id), "down"])
    }

    /// Cuts every link between the nodes `ids` (their bridge ports isolated from each
    /// other): two nodes lose the link between them; all of them lose every link
    /// between nodes. Each still reaches the other nodes and the clients.
    ///
    /// # Errors
    ///
    /// When `bridge` fails.
    pub fn cut(&self, ids: &[NodeId]) -> Result<(), String> {
        for &id in ids {
            run(
                "bridge",
                &["link", "set", "dev", &self.port(id), "isolated", "on"],
            )?;
        }
        Ok(())
    }

    /// Cuts the link from node `from` to node `to` one way: what `from` sends to `to` is
    /// dropped (its route there is a blackhole, so its sends fail), while `to` still
    /// reaches `from`.
    ///
    /// # Errors
    ///
    /// When `ip` fails.
    pub fn block(&self, from: NodeId, to: NodeId) -> Result<(), String> {
        let dest = format!("10.213.{}.{to}/32", self.net);
        run(
            "ip",
            &[
                "-n",
                &self.namespace(from),
                "route",
                "add",
                "blackhole",
                &dest,
            ],
        )
    }

    /// Undoes every isolation, cut and one-way block.
    ///
    /// # Errors
    ///
    /// When `ip` or `bridge` fails.
    pub fn heal(&self) -> Result<(), String> {
        for &id in &self.ids {
            run(
                "ip",
                &[
                    "-n",
                    &self.namespace(id),
                    "route",
                    "flush",
                    "type",
                    "blackhole",
                ],
            )?;
            run(
                "bridge",
                &["link", "set", "dev", &self.port(id), "isolated", "off"],
            )?;
            run("ip", &["link", "set", &self.port(id), "up"])?;
        }
        Ok(())
    }
}

impl Drop for NetnsLan {
    fn drop(&mut self) {
        for &id in &self.ids {
            let _ = run("ip", &["netns", "del", &self.namespace(id)]);
            let _ = run("ip", &["link", "del", &self.port(id)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}
