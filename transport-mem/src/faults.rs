//! The fault configuration of a router and the per-message decisions it makes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actraft::core::{Envelope, NodeId};

use crate::rng::SplitMix64;

use crate::filter::{FilterAction, FilterFn, FilterId, Filters};

/// A hook called with every delivered message.
pub(crate) type Observer = Arc<dyn Fn(&Envelope) + Send + Sync>;

/// A delay range, `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DelayRange {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

/// What becomes of one message, or of one copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Isolation or a partition separates sender and receiver.
    Cut,
    /// The drop rate picked it.
    Lost,
    /// A content filter dropped it.
    Filtered,
    /// Deliver it after this delay (zero: at once).
    Deliver(Duration),
}

/// The fate of one send: the message's, and its copy's when a filter duplicated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Judgement {
    pub(crate) message: Verdict,
    pub(crate) copy: Option<Verdict>,
}

impl Judgement {
    fn single(message: Verdict) -> Self {
        Self {
            message,
            copy: None,
        }
    }
}

/// The first look at a send, under the router's lock: either its fate, or the filters
/// to ask first (outside the lock), before [`Faults::apply`] decides.
pub(crate) enum Triage {
    Judged(Judgement),
    Filter(Filters),
}

/// Every fault in force, the random generator that draws drops and delays, and the
/// observer. One mutex guards it all, so one lock per send decides everything (two when
/// content filters are set: they run between the two, outside the lock).
pub(crate) struct Faults {
    rng: SplitMix64,
    isolated: BTreeSet<NodeId>,
    /// Group of each listed node while a partition is in force.
    groups: Option<BTreeMap<NodeId, usize>>,
    drop_rate: f64,
    link_drop: BTreeMap<(NodeId, NodeId), f64>,
    delay: Option<DelayRange>,
    link_delay: BTreeMap<(NodeId, NodeId), DelayRange>,
    /// Content filters, in the order they were added.
    filters: Filters,
    next_filter: u64,
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
            filters: Arc::new([]),
            next_filter: 1,
            observer: None,
        }
    }

    /// True when sends must take the slow path: a fault, a filter or an observer is set.
    pub(crate) fn active(&self) -> bool {
        !self.isolated.is_empty()
            || self.groups.is_some()
            || self.drop_rate > 0.0
            || !self.link_drop.is_empty()
            || self.delay.is_some()
            || !self.link_delay.is_empty()
            || !self.filters.is_empty()
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

    pub(crate) fn add_filter(&mut self, filter: FilterFn) -> FilterId {
        let id = FilterId(self.next_filter);
        self.next_filter += 1;
        self.filters = self
            .filters
            .iter()
            .cloned()
            .chain(std::iter::once((id, filter)))
            .collect();
        id
    }

    /// Removes the filter `id`; false if there was none (already removed).
    pub(crate) fn remove_filter(&mut self, id: FilterId) -> bool {
        if !self.filters.iter().any(|(f, _)| *f == id) {
            return false;
        }
        self.filters = self
            .filters
            .iter()
            .filter(|(f, _)| *f != id)
            .cloned()
            .collect();
        true
    }

    pub(crate) fn clear_filters(&mut self) {
        self.filters = Arc::new([]);
    }

    /// Removes every fault and filter; keeps the generator's state and the observer.
    pub(crate) fn clear(&mut self) {
        self.heal();
        self.drop_rate = 0.0;
        self.link_drop.clear();
        self.delay = None;
        self.link_delay.clear();
        self.clear_filters();
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

    /// The first look at a message from `from` to `to`: a cut decides at once, and so
    /// does [`apply`](Self::apply) when no filter is set; otherwise the caller runs the
    /// filters (outside the lock) and calls [`apply`](Self::apply) with their decision.
    pub(crate) fn triage(&mut self, from: NodeId, to: NodeId) -> Triage {
        if !self.connected(from, to) {
            Triage::Judged(Judgement::single(Verdict::Cut))
        } else if self.filters.is_empty() {
            Triage::Judged(self.apply(from, to, FilterAction::Pass))
        } else {
            Triage::Filter(Arc::clone(&self.filters))
        }
    }

    /// Decides the fate of one message from `from` to `to` that the filters treat with
    /// `action`. Draws from the generator only for a probability strictly between 0 and
    /// 1 and for a delay range wider than a point, so the same configuration and sends
    /// always draw the same numbers.
    pub(crate) fn apply(&mut self, from: NodeId, to: NodeId, action: FilterAction) -> Judgement {
        // Checked again: a cut may have arisen while the filters ran.
        if !self.connected(from, to) {
            return Judgement::single(Verdict::Cut);
        }
        let verdict = match action {
            FilterAction::Pass => self.onward(from, to, None),
            FilterAction::Drop => Verdict::Filtered,
            FilterAction::DropWithProbability(p) => {
                if self.chance(p) {
                    Verdict::Filtered
                } else {
                    self.onward(from, to, None)
                }
            }
            FilterAction::Delay(delay) => {
                let range = DelayRange {
                    min: delay,
                    max: delay,
                };
                self.onward(from, to, Some(range))
            }
            FilterAction::DelayBetween(a, b) => {
                let range = DelayRange {
                    min: a.min(b),
                    max: a.max(b),
                };
                self.onward(from, to, Some(range))
            }
            FilterAction::Duplicate => {
                return Judgement {
                    message: self.onward(from, to, None),
                    copy: Some(self.onward(from, to, None)),
                };
            }
        };
        Judgement::single(verdict)
    }

    /// The drop rate, then the delay: `delay` if given, else the link's, else the
    /// router's.
    fn onward(&mut self, from: NodeId, to: NodeId, delay: Option<DelayRange>) -> Verdict {
        let rate = self
            .link_drop
            .get(&(from, to))
            .copied()
            .unwrap_or(self.drop_rate);
        if self.chance(rate) {
            return Verdict::Lost;
        }
        let range = delay
            .or_else(|| self.link_delay.get(&(from, to)).copied())
            .or(self.delay);
        Verdict::Deliver(range.map_or(Duration::ZERO, |r| self.pick(r)))
    }

    /// True with probability `p`; draws only when `0 < p < 1`.
    fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || (p > 0.0 && self.unit() < p)
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
            match f.apply(1, 2, FilterAction::Pass).message {
                Verdict::Deliver(d) => assert!(range.min <= d && d <= range.max, "{d:?}"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn fixed_filter_actions_draw_nothing() {
        let (mut used, mut fresh) = (Faults::new(3), Faults::new(3));
        let d = Duration::from_millis(4);
        for action in [
            FilterAction::Pass,
            FilterAction::Drop,
            FilterAction::DropWithProbability(1.0),
            FilterAction::DropWithProbability(0.0),
            FilterAction::Delay(d),
            FilterAction::DelayBetween(d, d),
            FilterAction::Duplicate,
        ] {
            used.apply(1, 2, action);
        }
        for f in [&mut used, &mut fresh] {
            f.set_drop_rate(0.5);
        }
        let verdicts = |f: &mut Faults| -> Vec<Verdict> {
            (0..64)
                .map(|_| f.apply(1, 2, FilterAction::Pass).message)
                .collect()
        };
        assert_eq!(verdicts(&mut used), verdicts(&mut fresh));
    }

    #[test]
    fn filter_verdicts() {
        let mut f = Faults::new(1);
        let d = Duration::from_millis(4);
        let verdict = |f: &mut Faults, action| f.apply(1, 2, action);
        assert_eq!(
            verdict(&mut f, FilterAction::Drop).message,
            Verdict::Filtered
        );
        assert_eq!(
            verdict(&mut f, FilterAction::Delay(d)).message,
            Verdict::Deliver(d)
        );
        let twice = verdict(&mut f, FilterAction::Duplicate);
        assert_eq!(twice.message, Verdict::Deliver(Duration::ZERO));
        assert_eq!(twice.copy, Some(Verdict::Deliver(Duration::ZERO)));
        // The drop rate still applies to a message a filter delays.
        f.set_drop_rate(1.0);
        assert_eq!(
            verdict(&mut f, FilterAction::Delay(d)).message,
            Verdict::Lost
        );
        // A cut comes first, and drops the copy too.
        f.isolate(2);
        assert_eq!(
            verdict(&mut f, FilterAction::Duplicate),
            Judgement::single(Verdict::Cut)
        );
    }

    #[test]
    fn filters_are_kept_in_order_and_removed_by_id() {
        let mut f = Faults::new(1);
        let a = f.add_filter(Arc::new(|_| FilterAction::Pass));
        let b = f.add_filter(Arc::new(|_| FilterAction::Drop));
        assert!(f.active());
        let ids = |f: &Faults| f.filters.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        assert_eq!(ids(&f), [a, b]);
        assert!(f.remove_filter(a) && !f.remove_filter(a));
        assert_eq!(ids(&f), [b]);
        f.clear();
        assert!(ids(&f).is_empty() && !f.active());
    }

    #[test]
    #[should_panic(expected = "listed in groups 0 and 1")]
    fn a_node_in_two_groups_is_refused() {
        Faults::new(1).partition(&[&[1, 2], &[2, 3]]);
    }
}
