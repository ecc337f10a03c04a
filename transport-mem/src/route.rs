//! The path every message takes: the fast path without faults, the fault verdict (with
//! the content filters), and delayed delivery on a tokio task.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actraft::core::{Envelope, Message, NodeId};
use actraft::{Inbox, TransportError};

use crate::faults::{Observer, Triage, Verdict};
use crate::filter;
use crate::router::Inner;
use crate::stats::{kind_index, payload_bytes, DropReason, LinkCounters};

impl Inner {
    /// The inbox of the transport running for `to` (`None` for a known node that is not
    /// running), whether it takes `message` from `from` ([`Live::admits`]), and the
    /// counters of the link from `from` to `to`; `Err` for an unknown destination.
    ///
    /// [`Live::admits`]: crate::router::Live::admits
    fn route(
        &self,
        from: NodeId,
        to: NodeId,
        message: &Message,
    ) -> Result<(Option<Inbox>, bool, Arc<LinkCounters>), TransportError> {
        let table = self.table();
        let live = table
            .nodes
            .get(&to)
            .ok_or(TransportError::UnknownPeer(to))?;
        // Every known id has a link to every known id, and a sender is known from the
        // moment its transport was made: the lookup cannot miss.
        let link = table
            .links
            .get(&(from, to))
            .ok_or(TransportError::UnknownPeer(to))?;
        let admits = live.as_ref().is_none_or(|l| l.admits(from, message));
        Ok((
            live.as_ref().map(|l| l.inbox.clone()),
            admits,
            Arc::clone(link),
        ))
    }

    /// Counts a reply or read `to` refused because `from` is not one of its members,
    /// and logs it (at `warn` the first time for this pair, then at `trace`).
    fn refuse(&self, link: &LinkCounters, from: NodeId, to: NodeId) {
        link.dropped(DropReason::Refused);
        let first = self
            .refusals_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((to, from));
        if first {
            tracing::warn!(
                node = to,
                peer = from,
                "refused a reply or read from a node that is not a member"
            );
        } else {
            tracing::trace!(node = to, peer = from, "refused: not a member");
        }
    }

    /// Routes one message sent by `from`, counting it on its link.
    pub(crate) fn send(
        self: &Arc<Self>,
        from: NodeId,
        envelope: Envelope,
    ) -> Result<(), TransportError> {
        let to = envelope.to;
        let kind = kind_index(&envelope.message);
        let (inbox, admits, link) = self.route(from, to, &envelope.message)?;
        link.sent(kind, payload_bytes(&envelope));
        if !admits {
            self.refuse(&link, from, to);
            return Ok(());
        }
        if !self.slow.load(Ordering::Acquire) {
            // Fast path: no fault, no filter, no observer.
            Self::hand_over(&link, kind, inbox, None, envelope);
            return Ok(());
        }
        let (triage, observer) = {
            let mut faults = self.faults();
            (faults.triage(from, to), faults.observer.clone())
        };
        let judgement = match triage {
            Triage::Judged(judgement) => judgement,
            Triage::Filter(filters) => {
                // Filters are user code: they run outside the router's lock, so they
                // may call the router.
                let action = filter::decide(&filters, &envelope);
                self.faults().apply(from, to, action)
            }
        };
        let copy = judgement.copy.map(|verdict| {
            link.duplicated();
            (verdict, envelope.clone())
        });
        let route = Route {
            link: &link,
            from,
            kind,
            inbox,
            observer: observer.as_ref(),
        };
        self.dispatch(&route, judgement.message, envelope);
        if let Some((verdict, envelope)) = copy {
            self.dispatch(&route, verdict, envelope);
        }
        Ok(())
    }

    /// Carries out one verdict on one message (or copy).
    fn dispatch(self: &Arc<Self>, route: &Route<'_>, verdict: Verdict, envelope: Envelope) {
        let (from, to, link) = (route.from, envelope.to, route.link);
        match verdict {
            Verdict::Cut => {
                tracing::trace!(from, to, "dropped: link cut");
                link.dropped(DropReason::Cut);
            }
            Verdict::Lost => {
                tracing::trace!(from, to, "dropped: drop rate");
                link.dropped(DropReason::Lost);
            }
            Verdict::Filtered => {
                let kind = envelope.message.kind();
                tracing::trace!(from, to, kind, "dropped: filter");
                link.dropped(DropReason::Filtered);
            }
            Verdict::Deliver(delay) if delay.is_zero() => {
                Self::hand_over(
                    link,
                    route.kind,
                    route.inbox.clone(),
                    route.observer,
                    envelope,
                );
            }
            Verdict::Deliver(delay) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    link.delayed();
                    let inner = Arc::clone(self);
                    let link = Arc::clone(link);
                    let kind = route.kind;
                    runtime.spawn(async move {
                        tokio::time::sleep(delay).await;
                        inner.deliver_late(&link, from, kind, envelope);
                    });
                }
                Err(_) => {
                    tracing::warn!(
                        from,
                        to,
                        ?delay,
                        "no tokio runtime to delay on: delivering now"
                    );
                    Self::hand_over(
                        link,
                        route.kind,
                        route.inbox.clone(),
                        route.observer,
                        envelope,
                    );
                }
            },
        }
    }

    /// Delivers a delayed message that came due, unless a cut arose meanwhile; to
    /// whichever transport runs for its destination now. Filters are not asked again.
    fn deliver_late(&self, link: &LinkCounters, from: NodeId, kind: usize, envelope: Envelope) {
        let to = envelope.to;
        let (connected, observer) = {
            let faults = self.faults();
            (faults.connected(from, to), faults.observer.clone())
        };
        if !connected {
            tracing::trace!(from, to, "dropped on arrival: link cut");
            link.dropped(DropReason::Cut);
            return;
        }
        let live = self.table().nodes.get(&to).cloned().flatten();
        if live
            .as_ref()
            .is_some_and(|l| !l.admits(from, &envelope.message))
        {
            self.refuse(link, from, to);
            return;
        }
        let inbox = live.map(|l| l.inbox);
        Self::hand_over(link, kind, inbox, observer.as_ref(), envelope);
    }

    fn hand_over(
        link: &LinkCounters,
        kind: usize,
        inbox: Option<Inbox>,
        observer: Option<&Observer>,
        envelope: Envelope,
    ) {
        let Some(inbox) = inbox else {
            link.dropped(DropReason::PeerDown);
            return;
        };
        if let Some(observe) = observer {
            observe(&envelope);
        }
        let bytes = payload_bytes(&envelope);
        if inbox.deliver(envelope) {
            link.delivered(kind, bytes);
        } else {
            link.dropped(DropReason::PeerDown);
        }
    }
}

/// What the slow path knows about one send, shared by the message and its copy.
struct Route<'a> {
    link: &'a Arc<LinkCounters>,
    from: NodeId,
    kind: usize,
    inbox: Option<Inbox>,
    observer: Option<&'a Observer>,
}
