//! The leader's view of one follower: how far it matches, where to send next, and what is
//! in flight to it.

use std::collections::VecDeque;
use std::time::Duration;

use super::types::LogIndex;

/// How the leader is replicating to a follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Looking for the point where the logs agree: one AppendEntries at a time.
    Probe,
    /// Streaming: AppendEntries are pipelined with an optimistic `next`.
    Replicate,
}

#[derive(Debug, Clone)]
pub(crate) struct Progress {
    /// Highest index known to match (and be durable on) the follower.
    pub(crate) matched: LogIndex,
    /// Next index to send.
    pub(crate) next: LogIndex,
    pub(crate) mode: Mode,
    /// In Probe mode: a probe is out and unanswered.
    pub(crate) probe_sent: bool,
    /// In Replicate mode: (last index, bytes) of each AppendEntries in flight.
    pub(crate) inflight: VecDeque<(LogIndex, usize)>,
    pub(crate) inflight_bytes: usize,
    /// When anything was last heard from the follower (CheckQuorum).
    pub(crate) last_heard: Duration,
    /// When the follower last acknowledged new entries, or when the pipeline or the probe
    /// last started. Entries or a probe in flight with no progress for two heartbeats
    /// count as lost.
    pub(crate) last_ack: Duration,
    /// A snapshot transfer in progress: while it lasts, no AppendEntries carries
    /// entries to this follower.
    pub(crate) sending: Option<super::install::Sending>,
    /// Entries behind the leader's in-memory window are being read from storage for
    /// this follower ([`LogRead`](super::LogRead)); nothing else is sent until they are.
    pub(crate) reading: bool,
}

impl Progress {
    pub(crate) fn new(next: LogIndex, now: Duration) -> Self {
        Self {
            matched: 0,
            next,
            mode: Mode::Probe,
            probe_sent: false,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            last_heard: now,
            last_ack: now,
            sending: None,
            reading: false,
        }
    }

    /// Can another AppendEntries carrying entries go out now?
    pub(crate) fn can_send(&self, max_msgs: usize, max_bytes: usize) -> bool {
        match self.mode {
            Mode::Probe => !self.probe_sent,
            Mode::Replicate => self.inflight.len() < max_msgs && self.inflight_bytes < max_bytes,
        }
    }

    /// Records an AppendEntries carrying entries up to `last` with `bytes` of payload.
    pub(crate) fn sent(&mut self, last: LogIndex, bytes: usize) {
        match self.mode {
            Mode::Probe => self.probe_sent = true,
            Mode::Replicate => {
                self.next = last + 1;
                self.inflight.push_back((last, bytes));
                self.inflight_bytes += bytes;
            }
        }
    }

    /// The follower confirmed a match up to `index`. Returns true if `matched` grew.
    pub(crate) fn acked(&mut self, index: LogIndex) -> bool {
        while let Some(&(last, bytes)) = self.inflight.front() {
            if last > index {
                break;
            }
            self.inflight.pop_front();
            self.inflight_bytes -= bytes;
        }
        if self.mode == Mode::Probe && index + 1 >= self.next {
            // The probe (not just a heartbeat) was answered: the logs agree up to here.
            self.mode = Mode::Replicate;
            self.probe_sent = false;
        }
        if index <= self.matched {
            return false;
        }
        self.matched = index;
        self.probe_sent = false;
        if self.next <= index {
            self.next = index + 1;
        }
        self.mode = Mode::Replicate;
        true
    }

    /// Falls back to probing from `next`.
    pub(crate) fn probe_from(&mut self, next: LogIndex) {
        self.mode = Mode::Probe;
        self.probe_sent = false;
        self.inflight.clear();
        self.inflight_bytes = 0;
        self.next = next.max(self.matched + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_window_and_fallback() {
        let now = Duration::ZERO;
        let mut p = Progress::new(5, now);
        assert!(p.can_send(2, 1000));
        p.sent(7, 10);
        assert!(!p.can_send(2, 1000), "one probe at a time");
        assert!(p.acked(4));
        assert_eq!(p.mode, Mode::Replicate);
        p.sent(7, 10);
        p.sent(9, 10);
        assert!(!p.can_send(2, 1000), "window of two is full");
        assert_eq!(p.next, 10);
        assert!(p.acked(7));
        assert!(p.can_send(2, 1000));
        p.probe_from(3);
        assert_eq!(p.next, 8, "never probe below the match");
        assert_eq!(p.inflight_bytes, 0);
    }
}
