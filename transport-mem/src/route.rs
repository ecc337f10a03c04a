//! The path every message takes: the fast path without faults, the fault verdict, and
//! delayed delivery on a tokio task.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use actraft::core::{Envelope, NodeId};
use actraft::{Inbox, TransportError};

use crate::faults::{Observer, Verdict};
use crate::router::Inner;
use crate::stats::{kind_index, Counters, DropReason};

impl Inner {
    /// The inbox of the transport running for `to`: `Err` for an unknown id, `Ok(None)`
    /// for a known node that is not running.
    fn inbox(&self, to: NodeId) -> Result<Option<Inbox>, TransportError> {
        match self.table().get(&to) {
            None => Err(TransportError::UnknownPeer(to)),
            Some(live) => Ok(live.as_ref().map(|l| l.inbox.clone())),
        }
    }

    /// Routes one message sent by `from`, counting it in `counters`.
    pub(crate) fn send(
        self: &Arc<Self>,
        counters: &Arc<Counters>,
        from: NodeId,
        envelope: Envelope,
    ) -> Result<(), TransportError> {
        let to = envelope.to;
        let kind = kind_index(&envelope.message);
        if !self.slow.load(Ordering::Acquire) {
            // Fast path: no fault, no observer.
            let inbox = self.inbox(to)?;
            counters.sent(kind);
            Self::hand_over(counters, kind, inbox, None, envelope);
            return Ok(());
        }
        let inbox = self.inbox(to)?;
        counters.sent(kind);
        let (verdict, observer) = {
            let mut faults = self.faults();
            (faults.judge(from, to), faults.observer.clone())
        };
        match verdict {
            Verdict::Cut => {
                tracing::trace!(from, to, "dropped: link cut");
                counters.dropped(DropReason::Cut);
            }
            Verdict::Lost => {
                tracing::trace!(from, to, "dropped: drop rate");
                counters.dropped(DropReason::Lost);
            }
            Verdict::Deliver(delay) if delay.is_zero() => {
                Self::hand_over(counters, kind, inbox, observer.as_ref(), envelope);
            }
            Verdict::Deliver(delay) => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let inner = Arc::clone(self);
                    let counters = Arc::clone(counters);
                    runtime.spawn(async move {
                        tokio::time::sleep(delay).await;
                        inner.deliver_late(&counters, from, kind, envelope);
                    });
                }
                Err(_) => {
                    tracing::warn!(
                        from,
                        to,
                        ?delay,
                        "no tokio runtime to delay on: delivering now"
                    );
                    Self::hand_over(counters, kind, inbox, observer.as_ref(), envelope);
                }
            },
        }
        Ok(())
    }

    /// Delivers a delayed message that came due, unless a cut arose meanwhile; to
    /// whichever transport runs for its destination now.
    fn deliver_late(&self, counters: &Counters, from: NodeId, kind: usize, envelope: Envelope) {
        let to = envelope.to;
        let (connected, observer) = {
            let faults = self.faults();
            (faults.connected(from, to), faults.observer.clone())
        };
        if !connected {
            tracing::trace!(from, to, "dropped on arrival: link cut");
            counters.dropped(DropReason::Cut);
            return;
        }
        let inbox = self.inbox(to).ok().flatten();
        Self::hand_over(counters, kind, inbox, observer.as_ref(), envelope);
    }

    fn hand_over(
        counters: &Counters,
        kind: usize,
        inbox: Option<Inbox>,
        observer: Option<&Observer>,
        envelope: Envelope,
    ) {
        let Some(inbox) = inbox else {
            counters.dropped(DropReason::PeerDown);
            return;
        };
        if let Some(observe) = observer {
            observe(&envelope);
        }
        if inbox.deliver(envelope) {
            counters.delivered(kind);
        } else {
            counters.dropped(DropReason::PeerDown);
        }
    }
}
