//! A bounded record of the last simulated events, rendered only when a run fails.

use std::collections::VecDeque;
use std::time::Duration;

use crate::core::{LogId, NodeId, Role, Term};

/// One thing that happened in a simulated run.
#[derive(Debug, Clone)]
pub enum TraceEvent {
    /// A message arrived.
    Deliver {
        /// Sender.
        from: NodeId,
        /// Recipient.
        to: NodeId,
        /// Message kind.
        kind: &'static str,
        /// Message term.
        term: Term,
    },
    /// A node's timer fired.
    Timer {
        /// The node.
        node: NodeId,
    },
    /// A write became durable.
    WriteDone {
        /// The node.
        node: NodeId,
        /// The last entry written.
        ack: Option<LogId>,
    },
    /// A client proposal was accepted.
    Propose {
        /// The leader.
        node: NodeId,
    },
    /// A node changed role.
    Role {
        /// The node.
        node: NodeId,
        /// Its new role.
        role: Role,
        /// Its term.
        term: Term,
    },
    /// A node crashed.
    Crash {
        /// The node.
        node: NodeId,
    },
    /// A node restarted from its disk.
    Restart {
        /// The node.
        node: NodeId,
    },
    /// The network split into groups (one group number per node).
    Partition {
        /// Group of each node.
        groups: Vec<u32>,
    },
    /// One node was cut off from all others.
    Isolate {
        /// The node.
        node: NodeId,
    },
    /// Links cut one way: what each `(from, to)` pair's sender sends is lost, while the
    /// other direction still works.
    OneWay {
        /// The cut directions, sender first.
        links: Vec<(NodeId, NodeId)>,
    },
    /// Every partition healed.
    Heal,
    /// A leader was asked to hand over leadership.
    Transfer {
        /// The leader.
        node: NodeId,
        /// The target asked for (`None`: the most up-to-date follower).
        to: Option<NodeId>,
    },
    /// A leader was asked for a membership change.
    Membership {
        /// The leader.
        node: NodeId,
        /// The change asked for.
        change: String,
    },
}

#[derive(Debug)]
pub(crate) struct Trace {
    cap: usize,
    events: VecDeque<(Duration, TraceEvent)>,
}

impl Trace {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            events: VecDeque::with_capacity(cap),
        }
    }

    pub(crate) fn push(&mut self, at: Duration, event: TraceEvent) {
        if self.events.len() == self.cap {
            self.events.pop_front();
        }
        self.events.push_back((at, event));
    }

    pub(crate) fn render(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|(at, e)| format!("{:>10.3}ms {:?}", at.as_secs_f64() * 1e3, e))
            .collect()
    }
}
