//! The simulated faults: crashes, restarts, partitions, and a lossy, reordering network.

use super::*;

impl Simulation {
    pub(super) fn inject_fault(&mut self) {
        let n = self.nodes.len() as u64;
        match self.rng.below(100) {
            0..=24 => {
                // Crash a node; prefer the leader now and then (Figure 8's scenarios).
                let leader = self.nodes.iter().position(SimNode::is_leader);
                let i = match leader {
                    Some(i) if self.chance(500) => i,
                    _ => self.rng.below(n) as usize,
                };
                if self.nodes[i].driver.is_some() {
                    self.crash(i);
                    let at = self.jitter(self.cfg.fault_interval * 2);
                    self.schedule(at, Action::Restart { node: i });
                }
            }
            25..=34 => {
                if let Some(i) = self.nodes.iter().position(|n| n.driver.is_none()) {
                    self.schedule(self.now, Action::Restart { node: i });
                }
            }
            35..=64 => {
                let mut groups = Vec::with_capacity(self.nodes.len());
                for node in &mut self.nodes {
                    node.group = (self.rng.below(2)) as u32;
                    groups.push(node.group);
                }
                self.trace.push(self.now, TraceEvent::Partition { groups });
            }
            65..=79 => {
                let i = self.rng.below(n) as usize;
                for (j, node) in self.nodes.iter_mut().enumerate() {
                    node.group = u32::from(j == i);
                }
                self.trace.push(
                    self.now,
                    TraceEvent::Isolate {
                        node: self.nodes[i].id,
                    },
                );
            }
            _ => {
                for node in &mut self.nodes {
                    node.group = 0;
                }
                self.trace.push(self.now, TraceEvent::Heal);
            }
        }
    }

    pub(super) fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        self.trace
            .push(self.now, TraceEvent::Crash { node: node.id });
        node.driver = None;
        node.writes.clear();
        node.snapshots.crashed();
        node.incarnation += 1;
        node.was_leader = false;
        self.checker.crashed(node.id);
    }

    pub(super) fn restart(&mut self, i: usize) -> Result<(), String> {
        self.trace.push(
            self.now,
            TraceEvent::Restart {
                node: self.nodes[i].id,
            },
        );
        self.boot(i)?;
        let node = &self.nodes[i];
        let core = node.core().expect("booted");
        let prefix = core.log_prefix();
        let entries = core.log_entries(prefix.index + 1, core.status().last_log.index);
        self.checker
            .restarted_from(node.id, prefix.index, entries)
            .map_err(|v| v.to_string())
    }

    pub(super) fn send(&mut self, env: Envelope) {
        let (from, to) = (self.index_of(env.from), self.index_of(env.to));
        if self.nodes[from].group != self.nodes[to].group || self.chance(self.cfg.drop_per_mille) {
            return;
        }
        let (lo, hi) = self.cfg.delay;
        let span = (hi - lo).as_nanos() as u64;
        if self.chance(self.cfg.duplicate_per_mille) {
            let at = self.now + lo + Duration::from_nanos(self.rng.below(span.max(1)));
            self.schedule(at, Action::Deliver(Box::new(env.clone())));
        }
        let at = self.now + lo + Duration::from_nanos(self.rng.below(span.max(1)));
        self.schedule(at, Action::Deliver(Box::new(env)));
    }
}
