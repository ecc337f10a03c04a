//! The KV service under process faults, as an operator runs it: three `kv serve`
//! processes (QUIC between them, RocksDB under each, snapshots every few hundred
//! entries) on loopback. Concurrent clients put unique values to a few keys and read them
//! back by every read path (log, index, lease, follower) while a nemesis kills nodes with
//! SIGKILL and restarts them (now and then a majority at once), and pauses nodes with
//! SIGSTOP (now and then past the QUIC idle timeout) and resumes them, the leader more
//! often than the others. Afterwards the cluster must take a write again, and every
//! client history (writes whose answer never came count as "outcome unknown") must be
//! linearizable by testkit's checker.
//!
//! `ACTRAFT_KV_FAULT_SECS` sets how long the faults go on (default 8, quick enough for
//! CI), `ACTRAFT_KV_FAULT_SEED` the nemesis's choices, `ACTRAFT_KV_NODES` the cluster's
//! size (default 3). With `ACTRAFT_KV_NETNS=1` (root, iproute2) each node runs in a
//! network namespace of its own on one bridge, and the nemesis also partitions, for up
//! to 8 s: it cuts a node off from everyone, or cuts the link between two nodes, or every
//! link between nodes while clients still reach them all, or cuts one way only (one link,
//! or everything a node sends to the other nodes, or everything they send to it). While a
//! cut leaves the other nodes connected and a majority, a read index must be answered
//! within `SERVE_BOUND` (10 s). It runs the `kv` example binary, which `cargo test -p
//! actraft-examples --features rocks` builds along with the tests.

mod nemesis;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actraft_examples::kv_process::{kv_bin, write_certs, KvProcess, NetnsLan};

use nemesis::{addresses, env_u64, logs, process, Clients, Nemesis};

#[actix_rt::test]
async fn kv_histories_stay_linearizable_under_kills_and_pauses() {
    let secs = env_u64("ACTRAFT_KV_FAULT_SECS", 8);
    let seed = env_u64("ACTRAFT_KV_FAULT_SEED", 1);
    let ids: Vec<u64> = (1..=env_u64("ACTRAFT_KV_NODES", 3).max(3)).collect();
    let bin = kv_bin();
    let dir = tempfile::tempdir().unwrap();
    write_certs(&bin, &dir.path().join("certs"), &ids);
    let lan = (env_u64("ACTRAFT_KV_NETNS", 0) == 1)
        .then(|| NetnsLan::new(&ids).unwrap_or_else(|e| panic!("ACTRAFT_KV_NETNS: {e}")));
    let addrs = addresses(&ids, lan.as_ref());
    let mut nodes: BTreeMap<u64, KvProcess> = ids
        .iter()
        .map(|&id| (id, process(id, &addrs, dir.path(), lan.as_ref(), &[])))
        .collect();
    for node in nodes.values_mut() {
        node.start(&bin);
    }
    let clients = Clients::start(dir.path(), &addrs, seed);

    // The nemesis: one fault at a time; every node runs again between faults.
    let mut nemesis = Nemesis::new(seed, lan.as_ref(), &bin, dir.path(), &addrs);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let target = nemesis.aim().await;
        nemesis.strike(target, &mut nodes).await;
    }

    let summary = clients.finish(dir.path(), &addrs, &nodes, seed).await;
    eprintln!(
        "kv faults: nodes={} secs={secs} seed={seed} kills={} pauses={} partitions={} {} {summary}",
        ids.len(),
        nemesis.kills,
        nemesis.pauses,
        nemesis.partitions,
        nemesis.served_line(),
    );
    let unserved = nemesis.unserved();
    assert!(unserved.is_empty(), "{unserved}\n{}", logs(&nodes));
}
