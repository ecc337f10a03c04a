//! InstallSnapshot (§7 of the Raft paper): the leader streams its latest durable
//! snapshot, in chunks, to a follower whose next entry is behind the leader's compacted
//! prefix; the follower stores the chunks and, once the snapshot is whole and durable,
//! replaces its state machine and its log with it.
//!
//! The core holds no snapshot bytes. On the leader it decides which byte ranges leave
//! for whom ([`Ready::snapshot_sends`](super::Ready::snapshot_sends): the shell reads
//! them from its snapshot store off the node's thread and sends them); on the follower
//! it checks each chunk against the transfer in progress and hands the accepted ones to
//! the driver ([`Ready::install_chunks`](super::Ready::install_chunks)), which writes
//! them off the node's thread and reports back with
//! [`snapshot_chunk_stored`](RaftCore::snapshot_chunk_stored) and, once the state
//! machine is restored, [`snapshot_installed`](RaftCore::snapshot_installed).
//!
//! # Flow control and recovery
//!
//! - Every chunk but the last carries exactly
//!   [`Config::max_snapshot_chunk_bytes`](super::Config::max_snapshot_chunk_bytes)
//!   bytes, so the leader names chunks by offset without reading them. At most
//!   [`Config::max_inflight_snapshot_chunks`](super::Config::max_inflight_snapshot_chunks)
//!   chunks are unacknowledged at a time.
//! - The follower acknowledges a chunk once it is written ([`SnapshotResult::Stored`]),
//!   asks for the missing offset after a gap ([`SnapshotResult::Resend`]), and asks for
//!   offset 0 when a chunk belongs to no transfer it knows (after a restart, a new
//!   leader, a newer snapshot). A transfer without progress for two heartbeats resumes
//!   from the last acknowledged offset; one of an older snapshot than the leader's
//!   latest starts over with the latest.
//! - A stale term is refused by the term rules like every other message.
//! - [`SnapshotResult::Installed`] means the follower's log matches the leader's up to
//!   the snapshot's last entry, durably: the leader sets the follower's match there.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::message::Message;
use super::output::Event;
use super::types::{LogId, LogIndex, NodeId, Role, Term};
use super::RaftCore;
use crate::snapshot::SnapshotMeta;

/// One chunk of a snapshot the leader streams to a follower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotRequest {
    /// The leader's term.
    pub term: Term,
    /// The snapshot's position in the log and its membership.
    pub meta: SnapshotMeta,
    /// Where `data` starts in the snapshot's bytes.
    pub offset: u64,
    /// The chunk's bytes (empty only for the last chunk of an empty snapshot).
    pub data: Bytes,
    /// True on the last chunk.
    pub done: bool,
}

/// A follower's answer to an [`InstallSnapshotRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallSnapshotReply {
    /// The follower's current term.
    pub term: Term,
    /// The snapshot answered about (its last included entry).
    pub last_included: LogId,
    /// What the follower did with it.
    pub result: SnapshotResult,
}

/// The outcome reported in an [`InstallSnapshotReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotResult {
    /// Every byte before `offset` is stored; the transfer goes on from there.
    Stored {
        /// The first byte the follower does not hold yet.
        offset: u64,
    },
    /// A chunk was missing or belongs to no transfer in progress: send again from
    /// `offset` (0 restarts the transfer).
    Resend {
        /// The first byte the follower needs.
        offset: u64,
    },
    /// The snapshot is installed (or the follower already held everything it covers):
    /// its log matches the leader's up to `last_included`, durably.
    Installed,
}

/// A chunk the shell must read from the snapshot store and send (leader side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSend {
    /// The follower.
    pub to: NodeId,
    /// The leader's term, to put in the message.
    pub term: Term,
    /// The snapshot to read from (its last included entry). When the store holds
    /// another one, the chunk is not sent; the leader starts over after a stall.
    pub snapshot: LogId,
    /// The first byte of the chunk.
    pub offset: u64,
    /// The chunk's length (shorter at the end of the snapshot). A chunk that starts
    /// past the end (but for offset 0) is not sent.
    pub len: usize,
}

/// The leader's side of a transfer to one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sending {
    /// The snapshot being sent.
    pub(crate) snapshot: LogId,
    /// Every byte before this is stored on the follower.
    pub(crate) acked: u64,
    /// The next chunk to send starts here.
    pub(crate) sent: u64,
}

/// The follower's side of a transfer in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Incoming {
    leader: NodeId,
    term: Term,
    snapshot: LogId,
    /// Bytes accepted (handed to the driver).
    received: u64,
    /// Bytes the driver reported stored.
    stored: u64,
    /// The last chunk was accepted.
    done: bool,
}

impl RaftCore {
    /// Starts streaming the latest snapshot to `peer`, whose next entry is compacted.
    /// Returns false when there is no snapshot to send.
    pub(super) fn start_snapshot_send(&mut self, peer: NodeId) -> bool {
        let snapshot = self.snapshot;
        if snapshot.index == 0 || snapshot.index < self.stored_prefix {
            tracing::warn!(
                node = self.id,
                peer,
                ?snapshot,
                "a follower needs compacted entries, but no snapshot covers them"
            );
            return false;
        }
        let now = self.now;
        let Some(p) = self.progress.get_mut(&peer) else {
            return false;
        };
        let from = p.matched + 1;
        p.probe_from(from);
        p.last_ack = now;
        p.sending = Some(Sending {
            snapshot,
            acked: 0,
            sent: 0,
        });
        tracing::debug!(node = self.id, peer, ?snapshot, "sending a snapshot");
        self.send_snapshot_chunks(peer);
        true
    }

    /// Hands out chunks for `peer` up to its in-flight bound.
    pub(super) fn send_snapshot_chunks(&mut self, peer: NodeId) {
        let chunk = self.config.max_snapshot_chunk_bytes as u64;
        let window = chunk * self.config.max_inflight_snapshot_chunks as u64;
        let term = self.term();
        let Some(s) = self
            .progress
            .get_mut(&peer)
            .and_then(|p| p.sending.as_mut())
        else {
            return;
        };
        while s.sent < s.acked + window {
            self.snapshot_sends.push(SnapshotSend {
                to: peer,
                term,
                snapshot: s.snapshot,
                offset: s.sent,
                len: chunk as usize,
            });
            s.sent += chunk;
        }
    }

    /// Heartbeat-time care of a transfer: a stalled one resumes from the acknowledged
    /// offset, one of a snapshot older than the latest starts over with the latest.
    pub(super) fn check_snapshot_send(&mut self, peer: NodeId, stalled: bool) {
        let latest = self.snapshot;
        let now = self.now;
        let Some(p) = self.progress.get_mut(&peer) else {
            return;
        };
        let Some(s) = p.sending.as_mut() else {
            return;
        };
        if s.snapshot != latest {
            *s = Sending {
                snapshot: latest,
                acked: 0,
                sent: 0,
            };
            p.last_ack = now;
        } else if stalled {
            s.sent = s.acked;
            p.last_ack = now;
        } else {
            return;
        }
        self.send_snapshot_chunks(peer);
    }

    pub(super) fn handle_install_reply(&mut self, from: NodeId, rep: InstallSnapshotReply) {
        if self.role != Role::Leader {
            return;
        }
        let now = self.now;
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        match rep.result {
            SnapshotResult::Installed => {
                let index = rep.last_included.index;
                if p.sending.is_some_and(|s| s.snapshot.index <= index) {
                    p.sending = None;
                }
                if index <= p.matched {
                    return;
                }
                if p.sending.is_none() {
                    p.probe_from(index + 1);
                }
                p.acked(index);
                p.last_ack = now;
                tracing::debug!(node = self.id, peer = from, index, "snapshot installed");
                self.maybe_commit();
                self.send_pipelined(from);
                self.advance_transfer(from, false);
            }
            SnapshotResult::Stored { offset } => {
                let Some(s) = p.sending.as_mut() else {
                    return;
                };
                if s.snapshot != rep.last_included || offset <= s.acked {
                    return;
                }
                s.acked = offset;
                s.sent = s.sent.max(offset);
                p.last_ack = now;
                self.send_snapshot_chunks(from);
            }
            SnapshotResult::Resend { offset } => {
                let Some(s) = p.sending.as_mut() else {
                    return;
                };
                if s.snapshot != rep.last_included || offset >= s.sent {
                    return;
                }
                s.acked = offset;
                s.sent = offset;
                p.last_ack = now;
                self.send_snapshot_chunks(from);
            }
        }
    }

    pub(super) fn handle_install_snapshot(&mut self, from: NodeId, req: InstallSnapshotRequest) {
        if !self.heard_from_leader(from) {
            return;
        }
        let id = req.meta.last_included;
        if self.holds_snapshot(id) {
            self.incoming = None;
            self.reply_install(from, id, SnapshotResult::Installed, false);
            return;
        }
        let term = self.term();
        let current = self
            .incoming
            .filter(|i| i.leader == from && i.term == term && i.snapshot == id);
        let mut inc = match current {
            Some(inc) => inc,
            None if req.offset == 0 => Incoming {
                leader: from,
                term,
                snapshot: id,
                received: 0,
                stored: 0,
                done: false,
            },
            None => {
                self.reply_install(from, id, SnapshotResult::Resend { offset: 0 }, false);
                return;
            }
        };
        if req.offset == 0 && current.is_none() {
            self.incoming_membership = Some((id, req.meta.membership.clone()));
            tracing::debug!(node = self.id, leader = from, snapshot = ?id, "receiving a snapshot");
        }
        if inc.done || req.offset < inc.received {
            // A duplicate: say how far the transfer got.
            let offset = inc.stored;
            self.reply_install(from, id, SnapshotResult::Stored { offset }, false);
            return;
        }
        if req.offset > inc.received {
            let offset = inc.received;
            self.reply_install(from, id, SnapshotResult::Resend { offset }, false);
            return;
        }
        inc.received += req.data.len() as u64;
        inc.done = req.done;
        self.incoming = Some(inc);
        self.install_chunks.push(req);
    }

    /// Reports that the chunks of snapshot `snapshot` are stored up to byte `end` (not
    /// yet committed). Acknowledges them to the leader, unless that chunk was the last:
    /// the answer then waits for [`snapshot_installed`](Self::snapshot_installed).
    pub fn snapshot_chunk_stored(&mut self, snapshot: LogId, end: u64) {
        let term = self.term();
        let Some(inc) = self.incoming.as_mut() else {
            return;
        };
        if inc.snapshot != snapshot || end <= inc.stored {
            return;
        }
        inc.stored = end;
        let (leader, done) = (inc.leader, inc.done && end == inc.received);
        if inc.term == term && !done {
            self.reply_install(
                leader,
                snapshot,
                SnapshotResult::Stored { offset: end },
                false,
            );
        }
    }

    /// Reports that storing the incoming snapshot `snapshot` failed. The transfer starts
    /// over when the leader sends its next chunk, unless this node holds everything the
    /// snapshot covers by now: the leader is then told so at once, as a new chunk of it
    /// would be. (A store refuses a snapshot older than its own, and a follower moves past
    /// a snapshot in transfer when entries its leader had in flight before the transfer
    /// began arrive and commit.)
    pub fn snapshot_install_failed(&mut self, snapshot: LogId) {
        let Some(inc) = self.incoming.filter(|i| i.snapshot == snapshot) else {
            return;
        };
        self.incoming = None;
        if inc.term == self.term() && self.holds_snapshot(snapshot) {
            self.reply_install(inc.leader, snapshot, SnapshotResult::Installed, false);
        }
    }

    /// True when everything a snapshot through `last` covers is here already: committed
    /// entries are the same on every log, and this one holds them durably (or its own
    /// snapshot does).
    fn holds_snapshot(&self, last: LogId) -> bool {
        last.index <= self.snapshot.index || last.index <= self.commit.min(self.persisted)
    }

    /// True when a snapshot through `last` would move this node's state forward: the
    /// driver restores its state machine from a received snapshot only then.
    pub fn snapshot_is_news(&self, last: LogId) -> bool {
        last.index > self.applied && last.index > self.snapshot.index
    }

    /// Reports that the received snapshot through `last` is durable in the snapshot
    /// store and, when [`snapshot_is_news`](Self::snapshot_is_news) said so, that the
    /// state machine was restored from it. The log up to `last` is replaced by the
    /// snapshot: entries after it are kept when the log holds `last` itself (§7),
    /// otherwise the whole log is discarded. The next `Ready` carries the matching
    /// [`Ready::reset_log`](super::Ready::reset_log) write, and the leader is told once
    /// it is durable.
    pub fn snapshot_installed(&mut self, last: LogId) {
        self.install_snapshot_point(last);
    }

    /// [`snapshot_installed`](Self::snapshot_installed) for the snapshot `meta`, whose
    /// configuration becomes this node's as of its last entry: the configuration comes
    /// from the snapshot that was restored, whatever transfer arrived since.
    pub fn snapshot_restored(&mut self, meta: &crate::SnapshotMeta) {
        self.incoming_membership = Some((meta.last_included, meta.membership.clone()));
        self.install_snapshot_point(meta.last_included);
    }

    fn install_snapshot_point(&mut self, last: LogId) {
        let incoming = self.incoming.filter(|i| i.snapshot == last);
        self.incoming = None;
        let reply_to = incoming.filter(|i| i.term == self.term()).map(|i| i.leader);
        if !self.snapshot_is_news(last) {
            let holds = self.log.term_at(last.index) == Some(last.term)
                || last.index <= self.log.prefix().index;
            if last.index > self.snapshot.index && holds {
                self.snapshot = last;
            }
            if let Some(leader) = reply_to {
                self.reply_install(leader, last, SnapshotResult::Installed, false);
            }
            return;
        }
        debug_assert!(self.role != Role::Leader, "a leader never installs");
        let keeps_suffix = self.log.term_at(last.index) == Some(last.term);
        let tail = if keeps_suffix {
            self.log
                .range(last.index + 1, self.log.last_index())
                .to_vec()
        } else {
            Vec::new()
        };
        self.log.reset(last, tail);
        self.stored_prefix = last.index;
        self.stored_prefix_term = Some(last.term);
        if !keeps_suffix {
            self.configs.truncate_from(last.index + 1);
        }
        let base = self
            .incoming_membership
            .take()
            .filter(|(id, _)| *id == last)
            .map(|(_, c)| c);
        self.reset_membership(last, base);
        self.snapshot = last;
        self.commit = self.commit.max(last.index);
        self.applied = last.index;
        self.handed = last.index;
        // The stored log restarts at the snapshot; the kept tail is written again after
        // it, in the same write.
        self.persisted = last.index;
        self.unstable_from = last.index + 1;
        self.pending_truncate = None;
        self.pending_reset = Some(last);
        self.events.push(Event::SnapshotInstalled {
            last_included: last,
        });
        tracing::info!(node = self.id, snapshot = ?last, keeps_suffix, "installed a snapshot");
        if let Some(leader) = reply_to {
            self.reply_install(leader, last, SnapshotResult::Installed, true);
        }
    }

    /// The incoming transfer, if any: (leader, snapshot, bytes stored).
    pub fn incoming_snapshot(&self) -> Option<(NodeId, LogId, u64)> {
        self.incoming.map(|i| (i.leader, i.snapshot, i.stored))
    }

    fn reply_install(&mut self, to: NodeId, last: LogId, result: SnapshotResult, after: bool) {
        let reply = Message::InstallSnapshotReply(InstallSnapshotReply {
            term: self.term(),
            last_included: last,
            result,
        });
        if after {
            self.send_after_persist(to, reply);
        } else {
            self.send(to, reply);
        }
    }

    /// A stale InstallSnapshot gets the current term back, so its sender steps down.
    pub(super) fn reply_stale_install(&mut self, from: NodeId, req: &InstallSnapshotRequest) {
        let offset = self.incoming.map_or(0, |i| i.stored);
        self.reply_install(
            from,
            req.meta.last_included,
            SnapshotResult::Resend { offset },
            false,
        );
    }

    /// Largest index this node may compact behind a snapshot through `last`.
    pub(super) fn compaction_bound(&self, last: LogIndex) -> LogIndex {
        last.saturating_sub(self.config.snapshot_keep_entries)
    }
}
