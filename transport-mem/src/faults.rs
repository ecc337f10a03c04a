//! The fault configuration of a router and the per-message decisions it makes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actraft::core::{Envelope, NodeId};

use crate::rng::SplitMix64;

/// A hook called with every delivered message.
pub(crate) type Observer = Arc<dyn Fn(&Envelope) + Send + Sync>;

/// A delay range, `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DelayRange {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

/// What becomes of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Isolation or a partition separates sender and receiver.
    Cut,
    /// The drop rate picked it.
    Lost,
    /// Deliver it after this delay (zero: at once).
    Deliver(Duration),
}

/// Every fault in force, the random generator that draws drops and delays, and the
/// observer. One mutex guards it all, so one lock per send decides everything.
pub(crate) struct Faults {
    rng: SplitMix64,
    isolated: BTreeSet<NodeId>,
    /// Group of each listed node while a partition is in force.
    groups: Option<BTreeMap<NodeId, usize>>,
    drop_rate: f64,
    link_drop: BTreeMap<(NodeId, NodeId), f64>,
    delay: Option<DelayRange>,
    link_delay: BTreeMap<(NodeId, NodeId), DelayRange>,
    pub(crate) observer: Option<Observer>,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            isolated: BTreeSet::new(),
            groups: None,
            drop_rate: 0.0,
            link_drop: BTreeMap::new(),
            delay: None,
            link_delay: BTreeMap::new(),
            observer: None,
        }
    }

    /// True when sends must take the slow path: a fault or an observer is set.
    pub(crate) fn active(&self) -> bool {
        !self.isolated.is_empty()
            || self.groups.is_some()
            || self.drop_rate > 0.0
            || !self.link_drop.is_empty()
            || self.delay.is_some()
            || !self.link_delay.is_empty()
            || self.observer.is_some()
    }

    pub(crate) fn isolate(&mut self, id: NodeId) {
        self.isolated.insert(id);
    }

    pub(crate) fn reconnect(&mut self, id: NodeId) {
        self.isolated.remove(&id);
    }

    pub(crate) fn partition(&mut self, groups: &[&[NodeId]]) {
        let mut map = BTreeMap::new();
        for (g, members) in groups.iter().enumerate() {
            for &id in *members {
                if let Some(other) = map.insert(id, g) {
                    assert!(
                        other == g,
                        "partition: node {id} is listed in groups {other} and {g}"
                    );
                }
            }
        }
        self.groups = Some(map);
    }

    pub(crate) fn heal(&mut self) {
        self.isolated.clear();
        self.groups = None;
    }

    pub(crate) fn set_drop_rate(&mut self, rate: f64) {
        self.drop_rate = rate;
    }

    pub(crate) fn set_link_drop_rate(&mut self, from: NodeId, to: NodeId, rate: f64) {
        self.link_drop.insert((from, to), rate);
    }

    pub(crate) fn set_delay(&mut self, range: DelayRange) {
        self.delay = (range.max > Duration::ZERO).then_some(range);
    }

    pub(crate) fn set_link_delay(&mut self, from: NodeId, to: NodeId, range: DelayRange) {
        self.link_delay.insert((from, to), range);
    }

    pub(crate) fn clear_link(&mut self, from: NodeId, to: NodeId) {
        self.link_drop.remove(&(from, to));
        self.link_delay.remove(&(from, to));
    }

    /// Removes every fault; keeps the generator's state and the observer.
    pub(crate) fn clear(&mut self) {
        self.heal();
        self.drop_rate = 0.0;
        self.link_drop.clear();
        self.delay = None;
        self.link_delay.clear();
    }

    /// True when isolation and partitions let `from` reach `to`. A node always reaches
    /// itself.
    pub(crate) fn connected(&self, from: NodeId, to: NodeId) -> bool {
        if from == to {
            return true;
        }
        if self.isolated.contains(&from) || self.isolated.contains(&to) {
            return false;
        }
        match &self.groups {
            None => true,
            // A node no group lists is alone: it reaches nobody.
            Some(groups) => matches!(
                (groups.get(&from), groups.get(&to)),
                (Some(a), Some(b)) if a == b
            ),
        }
    }

    /// Decides the fate of one message from `from` to `to`. Draws from the generator
    /// only for a drop rate strictly between 0 and 1 and for a delay range wider than
    /// a point, so the same configuration and sends always draw the same numbers.
    pub(crate) fn judge(&mut self, from: NodeId, to: NodeId) -> Verdict {
        if !self.connected(from, to) {
            return Verdict::Cut;
        }
        let rate = self
            .link_drop
            .get(&(from, to))
            .copied()
            .unwrap_or(self.drop_rate);
        if rate >= 1.0 || (rate > 0.0 && self.unit() < rate) {
            return Verdict::Lost;
        }
        let range = self.link_delay.get(&(from, to)).copied().or(self.delay);
        Verdict::Deliver(range.map_or(Duration::ZERO, |r| self.pick(r)))
    }

    /// Uniform in `[0, 1)`, with 53 bits of precision.
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[min, max]`, to the nanosecond.
    fn pick(&mut self, range: DelayRange) -> Duration {
        let span = u64::try_from((range.max - range.min).as_nanos()).unwrap_or(u64::MAX);
        if span == 0 {
            return range.min;
        }
        range.min + Duration::from_nanos(self.rng.below(span.saturating_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlisted_nodes_are_alone_during_a_partition() {
        let mut f = Faults::new(1);
        f.partition(&[&[1, 2], &[3]]);
        assert!(f.connected(1, 2) && f.connected(2, 1));
        assert!(!f.connected(1, 3) && !f.connected(3, 2));
        assert!(!f.connected(4, 1) && !f.connected(1, 4) && !f.connected(4, 5));
        assert!(f.connected(4, 4), "a node always reaches itself");
    }

    #[test]
    fn delays_stay_in_range() {
        let mut f = Faults::new(7);
        let range = DelayRange {
            min: Duration::from_millis(2),
            max: Duration::from_millis(5),
        };
        f.set_delay(range);
        for _ in 0..1_000 {
            match f.judge(1, 2) {
                Verdict::Deliver(d) => assert!(range.min <= d && d <= range.max, "{d:?}"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    #[should_panic(expected = "listed in groups 0 and 1")]
    fn a_node_in_two_groups_is_refused() {
        Faults::new(1).partition(&[&[1, 2], &[2, 3]]);
    }
}
