//! The KV service changing its members under process faults, as an operator runs it:
//! four `kv serve` processes (QUIC between them, RocksDB under each, snapshots every few
//! hundred entries) on loopback, three of them the first configuration and the fourth
//! started to join. While concurrent clients put unique values to a few keys and read
//! them back by every read path, the test alternates a membership change with a fault
//! of the kind `kv_faults` makes (kills, a majority of the processes killed at once,
//! pauses, partitions in the namespaces), and half of the changes run while another
//! fault strikes. A change adds the node that is out as a learner and promotes it (three
//! voters become four), or removes one of four voters, the leader half of the time (it
//! hands over). Half of the removed nodes keep running on their data until they are
//! added again; the others lose their disk once the removal is committed, and start
//! again empty with `--join`, to be added as new nodes. Afterwards the cluster must take
//! a write again, and every client history (writes whose answer never came count as
//! "outcome unknown") must be linearizable by testkit's checker.
//!
//! `ACTRAFT_KV_FAULT_SECS` sets how long it goes on (default 8, quick enough for CI),
//! `ACTRAFT_KV_FAULT_SEED` the nemesis's choices, `ACTRAFT_KV_NETNS=1` (root, iproute2)
//! puts each node in a network namespace of its own so that the nemesis also
//! partitions. It runs the `kv` example binary, which
//! `cargo test -p actraft-examples --features rocks` builds along with the tests.

mod nemesis;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use actraft_examples::kv_admin::AdminRequest;
use actraft_examples::kv_client::KvClient;
use actraft_examples::kv_process::{kv_bin, write_certs, KvProcess, NetnsLan};

use nemesis::{addresses, client, env_u64, logs, process, Clients, Nemesis};

/// Every node the test runs.
const ALL: [u64; 4] = [1, 2, 3, 4];
/// The first configuration's voters.
const FIRST: [u64; 3] = [1, 2, 3];

/// The voters of the configuration in force, as the leader reports it; `None` while a
/// change is half done (joint) or no leader answers.
async fn voters(admin: &KvClient) -> Option<BTreeSet<u64>> {
    let line = admin.admin(AdminRequest::Members).await.ok()?;
    if line.contains("joint") {
        return None;
    }
    let list = line.split(' ').find_map(|w| w.strip_prefix("voters="))?;
    list.split(',').map(|id| id.parse().ok()).collect()
}

/// Adds `id` as a learner at `addr`, then promotes it. An error is an outcome unknown
/// (a timeout under faults): the configuration is read back either way.
async fn add(admin: &KvClient, id: u64, addr: &str) -> Result<(), String> {
    admin
        .admin(AdminRequest::AddLearner {
            id,
            address: addr.to_string(),
        })
        .await
        .map_err(|e| format!("add node {id} as a learner: {e}"))?;
    admin
        .admin(AdminRequest::Promote { id })
        .await
        .map_err(|e| format!("promote node {id}: {e}"))?;
    Ok(())
}

#[actix_rt::test]
async fn kv_histories_stay_linearizable_through_membership_changes_under_faults() {
    let secs = env_u64("ACTRAFT_KV_FAULT_SECS", 8);
    let seed = env_u64("ACTRAFT_KV_FAULT_SEED", 1);
    let bin = kv_bin();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    write_certs(&bin, &certs, &ALL);
    let lan = (env_u64("ACTRAFT_KV_NETNS", 0) == 1)
        .then(|| NetnsLan::new(&ALL).unwrap_or_else(|e| panic!("ACTRAFT_KV_NETNS: {e}")));
    let addrs = addresses(&ALL, lan.as_ref());
    let first: BTreeMap<u64, String> = addrs
        .iter()
        .filter(|(id, _)| FIRST.contains(id))
        .map(|(&id, a)| (id, a.clone()))
        .collect();
    // Nodes 1-3 know only each other: they are the first configuration. Node 4 knows
    // them and joins: it has no configuration until the leader adds it.
    let mut nodes: BTreeMap<u64, KvProcess> = ALL
        .iter()
        .map(|&id| {
            let node = if FIRST.contains(&id) {
                process(id, &first, dir.path(), lan.as_ref(), &[])
            } else {
                process(id, &addrs, dir.path(), lan.as_ref(), &["--join"])
            };
            (id, node)
        })
        .collect();
    for node in nodes.values_mut() {
        node.start(&bin);
    }
    let clients = Clients::start(dir.path(), &addrs, seed);

    let admin = client(&certs, &addrs, Duration::from_secs(10));
    let mut nemesis = Nemesis::new(seed, lan.as_ref(), &bin, dir.path(), &addrs);
    let mut current: BTreeSet<u64> = FIRST.into_iter().collect();
    let mut changes = 0u64;
    let mut wiped = 0u64;
    let end = Instant::now() + Duration::from_secs(secs);
    // Changes and faults take turns, a change first.
    let mut change_turn = false;
    while Instant::now() < end {
        let target = nemesis.aim().await;
        change_turn = !change_turn;
        if !change_turn {
            nemesis.strike(target, &mut nodes).await;
            continue;
        }
        // The node that is out comes in; with all four in, one goes.
        let out = ALL.iter().copied().find(|id| !current.contains(id));
        let what = match out {
            Some(id) => format!("add node {id}"),
            None => format!("remove node {target}"),
        };
        let change = async {
            match out {
                Some(id) => add(&admin, id, &addrs[&id]).await,
                None => admin
                    .admin(AdminRequest::Remove { id: target })
                    .await
                    .map(drop)
                    .map_err(|e| format!("remove node {target}: {e}")),
            }
        };
        // Half of the changes run while a fault strikes (a kill of the leader mid-change,
        // a partition between the joint and the final entry, ...).
        let outcome = if nemesis.rng.below(2) == 0 {
            nemesis.say(&format!("{what}, during a fault"));
            let (outcome, ()) = tokio::join!(change, nemesis.strike(target, &mut nodes));
            outcome
        } else {
            nemesis.say(&what);
            change.await
        };
        match outcome {
            // Removed, and the removal committed: half of the time the node loses its
            // disk, and comes back empty, to join as a new node (the next change adds it).
            Ok(()) if out.is_none() && nemesis.rng.below(2) == 0 => {
                nemesis.say(&format!(
                    "node {target} loses its disk and starts again to join"
                ));
                let node = nodes.get_mut(&target).expect("a node");
                node.kill();
                node.wipe();
                node.joining();
                node.start(&bin);
                wiped += 1;
            }
            Ok(()) => {}
            Err(e) => nemesis.say(&format!("outcome unknown: {e}")),
        }
        if let Some(now) = voters(&admin).await {
            if now != current {
                changes += 1;
                nemesis.say(&format!("voters now {now:?}"));
                current = now;
            }
        }
    }

    let summary = clients.finish(dir.path(), &addrs, &nodes, seed).await;
    // A change whose answer was lost may still be finishing (its joint phase): the
    // leader completes it on its own.
    let mut last = voters(&admin).await;
    for _ in 0..20 {
        if last.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        last = voters(&admin).await;
    }
    eprintln!(
        "kv membership faults: secs={secs} seed={seed} changes={changes} wiped={wiped} voters={last:?} kills={} pauses={} partitions={} {} {summary}",
        nemesis.kills, nemesis.pauses, nemesis.partitions, nemesis.served_line(),
    );
    let unserved = nemesis.unserved();
    assert!(unserved.is_empty(), "{unserved}\n{}", logs(&nodes));
    assert!(
        changes >= 1,
        "no membership change went through\n{}",
        logs(&nodes)
    );
    let last =
        last.unwrap_or_else(|| panic!("no stable configuration at the end\n{}", logs(&nodes)));
    assert!(last.len() >= FIRST.len(), "voters {last:?}");
}
