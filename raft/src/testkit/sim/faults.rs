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
            72..=79 => self.cut_one_way(),
            65..=71 => {
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
                self.one_way.clear();
                self.trace.push(self.now, TraceEvent::Heal);
            }
        }
    }

    /// Cuts links one way only: one link, everything a node sends to the others (it hears
    /// them, none hears it), or everything the others send to it (the reverse). The cuts
    /// add to those already made, until the next heal.
    fn cut_one_way(&mut self) {
        let n = self.nodes.len();
        let i = self.rng.below(n as u64) as usize;
        let cut = match self.rng.below(3) {
            0 => {
                let j = (i + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                vec![(i, j)]
            }
            kind => self.links_of(i, kind == 1),
        };
        self.cut_links(cut);
        self.one_way_cuts += 1;
    }

    /// Every link between node `i` and the others, sender first: those out of it when
    /// `out`, else those into it.
    fn links_of(&self, i: usize, out: bool) -> Vec<(usize, usize)> {
        (0..self.nodes.len())
            .filter(|&j| j != i)
            .map(|j| if out { (i, j) } else { (j, i) })
            .collect()
    }

    /// Cuts the directions `cut` (sender, recipient) until the next heal.
    fn cut_links(&mut self, cut: Vec<(usize, usize)>) {
        let links = cut
            .iter()
            .map(|&(from, to)| (self.nodes[from].id, self.nodes[to].id))
            .collect();
        self.one_way.extend(cut);
        self.trace.push(self.now, TraceEvent::OneWay { links });
    }

    /// Leaves one node cut one way through the liveness phase (on a quarter of the
    /// seeds): the leader if there is one, heard by no node (it hears them) on half of
    /// those seeds, hearing no node (they hear it) on the other half. The others still
    /// form a majority, so they must elect a leader among them and commit: a leader that
    /// is not heard steps down (CheckQuorum), and a node that hears no one must not
    /// disrupt them (Pre-Vote). Only when every node holds the same stable configuration
    /// as its latest: a node whose log still ends in a configuration of an older,
    /// uncommitted branch counts votes by it, and may need the vote of a node that is no
    /// voter of the configuration in force and refuses it for a longer log (only the cut
    /// node could then win). See [`keep_liveness_cut`](Self::keep_liveness_cut) for when
    /// it is healed instead.
    pub(super) fn cut_through_liveness(&mut self) {
        let i = self.nodes.iter().position(SimNode::is_leader).unwrap_or(0);
        let mut views = self
            .nodes
            .iter()
            .filter_map(SimNode::core)
            .map(|c| (c.membership_index(), c.membership().is_joint()));
        let first = views.next();
        let one_stable_view =
            first.is_some_and(|(_, joint)| !joint) && views.all(|view| Some(view) == first);
        if !one_stable_view || !self.majority_without(i) {
            return;
        }
        let cut = self.links_of(i, (self.cfg.seed / 4).is_multiple_of(2));
        self.cut_links(cut);
        self.liveness_cut = Some(i);
        self.liveness_cut_stats.0 = 1;
    }

    /// Whether the nodes other than `i` hold a majority of every voter set in every
    /// node's view (each one's latest configuration, joint ones by both halves).
    fn majority_without(&self, i: usize) -> bool {
        let id = self.nodes[i].id;
        self.nodes.iter().filter_map(SimNode::core).all(|c| {
            c.membership().halves().all(|h| {
                let voters = h.voters();
                let left = voters.len() - usize::from(voters.contains(&id));
                left > voters.len() / 2
            })
        })
    }

    /// The cut node of the liveness phase stays cut while the others hold a majority of
    /// every configuration. A change already under way when the phase began can still
    /// make one in which they do not (say, a joint configuration whose new half is the
    /// cut node and one other): no cluster can commit then, so the cut is healed and the
    /// liveness bound counts again from there.
    pub(super) fn keep_liveness_cut(&mut self) {
        let Some(i) = self.liveness_cut else { return };
        if self.majority_without(i) {
            return;
        }
        self.liveness_cut = None;
        self.liveness_cut_stats.1 = 1;
        self.one_way.clear();
        self.trace.push(self.now, TraceEvent::Heal);
        if let Some(live) = self.liveness.as_mut() {
            live.deadline = self.now + self.cfg.liveness_bound;
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
        if self.nodes[from].group != self.nodes[to].group
            || self.one_way.contains(&(from, to))
            || self.chance(self.cfg.drop_per_mille)
        {
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
