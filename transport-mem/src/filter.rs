//! Content filters: closures that look at each message and decide to let it pass, drop
//! it, delay it or duplicate it.

use std::sync::Arc;
use std::time::Duration;

use actraft::core::Envelope;

/// What a content filter ([`MemRouter::add_filter`](crate::MemRouter::add_filter))
/// decides for one message.
///
/// A filter is a plain function of the message: where its decision is random
/// ([`DropWithProbability`](Self::DropWithProbability),
/// [`DelayBetween`](Self::DelayBetween)), it names the odds and the router draws the
/// outcome from its seeded generator, so the same seed, filters and sends give the same
/// outcomes.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum FilterAction {
    /// No opinion: the next filter decides, and after the last one the router's other
    /// faults (drop rate, delay) apply as usual.
    Pass,
    /// Drop the message (counted in [`Stats::dropped_filter`](crate::Stats::dropped_filter)).
    Drop,
    /// Drop the message with this probability, drawn from the router's generator; when
    /// it is spared, it goes on as with [`Pass`](Self::Pass). A value of 1 or more
    /// always drops, 0 or less (or NaN) never does.
    DropWithProbability(f64),
    /// Deliver the message after this delay, instead of the delay the router or the
    /// link would give it. The drop rate still applies. `Delay(Duration::ZERO)` makes
    /// the message immediate under a router-wide delay.
    Delay(Duration),
    /// Like [`Delay`](Self::Delay), with a uniform random delay between the two bounds
    /// (in either order), drawn from the router's generator.
    DelayBetween(Duration, Duration),
    /// Deliver the message and one copy of it. Each goes on as with
    /// [`Pass`](Self::Pass): the drop rate and the delay apply to each on its own, so a
    /// delay can reorder the two. The copy counts in
    /// [`Stats::duplicated`](crate::Stats::duplicated), not in `sent`.
    Duplicate,
}

/// Names a filter added by [`MemRouter::add_filter`](crate::MemRouter::add_filter), to
/// remove it with [`MemRouter::remove_filter`](crate::MemRouter::remove_filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FilterId(pub(crate) u64);

/// A filter closure.
pub(crate) type FilterFn = Arc<dyn Fn(&Envelope) -> FilterAction + Send + Sync>;

/// The filters in force, in the order they were added. Shared as one `Arc` so that a
/// send takes them out of the router's lock with one reference count, not a copy.
pub(crate) type Filters = Arc<[(FilterId, FilterFn)]>;

/// The first decision other than [`FilterAction::Pass`] among `filters`, in order; `Pass`
/// when every filter passes.
pub(crate) fn decide(filters: &[(FilterId, FilterFn)], envelope: &Envelope) -> FilterAction {
    filters
        .iter()
        .map(|(_, filter)| filter(envelope))
        .find(|action| !matches!(action, FilterAction::Pass))
        .unwrap_or(FilterAction::Pass)
}
