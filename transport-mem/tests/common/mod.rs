//! A small started cluster on a `MemRouter` and message builders, shared by the filter
//! and counter tests.
#![allow(dead_code)] // each test binary uses a part of it

use std::time::Duration;

use actraft::core::{
    AppendReply, AppendRequest, AppendResult, Entry, Envelope, LogId, Message, NodeId, Payload,
    VoteReply, VoteRequest,
};
use actraft::{Inbox, Transport};
use actraft_transport_mem::{MemRouter, MemTransport, Stats};
use tokio::sync::mpsc::Receiver;

/// A started cluster on `router` with ids `1..=n`.
pub struct Net {
    pub router: MemRouter,
    pub nodes: Vec<(MemTransport, Receiver<Envelope>)>,
}

impl Net {
    pub fn new(n: u64) -> Self {
        Self::on(MemRouter::new(), n)
    }

    pub fn on(router: MemRouter, n: u64) -> Self {
        let nodes = (1..=n)
            .map(|id| {
                let transport = router.transport(id);
                let (inbox, rx) = Inbox::channel();
                transport.start(inbox).unwrap();
                (transport, rx)
            })
            .collect();
        Self { router, nodes }
    }

    /// Sends `message` from `from` to `to`.
    pub fn send(&self, from: NodeId, to: NodeId, message: Message) {
        let envelope = Envelope { from, to, message };
        self.nodes[from as usize - 1].0.send(envelope).unwrap();
    }

    /// The messages already waiting for `id`, in arrival order.
    pub fn received(&mut self, id: NodeId) -> Vec<Message> {
        let rx = &mut self.nodes[id as usize - 1].1;
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| {
                assert_eq!(e.to, id);
                e.message
            })
            .collect()
    }

    /// The terms of the messages already waiting for `id`, in arrival order.
    pub fn terms(&mut self, id: NodeId) -> Vec<u64> {
        self.received(id).iter().map(Message::term).collect()
    }

    /// The next message for `id`, waiting for it.
    pub async fn next(&mut self, id: NodeId) -> Envelope {
        self.nodes[id as usize - 1].1.recv().await.unwrap()
    }

    /// Lets tokio's (paused) clock run until no message is in flight.
    pub async fn settle(&self) {
        let settled = async {
            while self.router.stats().in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), settled)
            .await
            .expect("every delayed message's fate is decided");
    }
}

pub fn vote(term: u64) -> Message {
    Message::RequestVote(VoteRequest {
        term,
        last_log: LogId::new(0, 0),
        leader_transfer: false,
    })
}

pub fn vote_reply(term: u64) -> Message {
    Message::RequestVoteReply(VoteReply {
        term,
        granted: true,
    })
}

pub fn pre_vote(term: u64) -> Message {
    Message::PreVote(VoteRequest {
        term,
        last_log: LogId::new(0, 0),
        leader_transfer: false,
    })
}

/// An AppendEntries carrying `entries` entries (none: a heartbeat).
pub fn append(term: u64, entries: u64) -> Message {
    Message::AppendEntries(AppendRequest {
        term,
        prev_log: LogId::new(0, 0),
        entries: (1..=entries)
            .map(|index| Entry {
                term,
                index,
                payload: Payload::Noop,
            })
            .collect(),
        leader_commit: 0,
        read_round: 0,
    })
}

pub fn heartbeat(term: u64) -> Message {
    append(term, 0)
}

pub fn append_reply(term: u64) -> Message {
    Message::AppendEntriesReply(AppendReply {
        term,
        result: AppendResult::Success { match_index: 0 },
        read_round: 0,
    })
}

/// The field-by-field sum of `stats`.
pub fn sum<'a>(stats: impl IntoIterator<Item = &'a Stats>) -> Stats {
    let mut total = Stats::default();
    for s in stats {
        total.sent += s.sent;
        total.delivered += s.delivered;
        total.dropped += s.dropped;
        total.dropped_cut += s.dropped_cut;
        total.dropped_lost += s.dropped_lost;
        total.dropped_filter += s.dropped_filter;
        total.dropped_peer_down += s.dropped_peer_down;
        total.dropped_refused += s.dropped_refused;
        total.delayed += s.delayed;
        total.duplicated += s.duplicated;
        for (kind, n) in &s.sent_by_kind {
            *total.sent_by_kind.entry(kind).or_default() += n;
        }
        for (kind, n) in &s.delivered_by_kind {
            *total.delivered_by_kind.entry(kind).or_default() += n;
        }
    }
    total
}
