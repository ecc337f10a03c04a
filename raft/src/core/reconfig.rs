//! The core's side of membership change (see the `membership` module for the model):
//! configurations taking effect when appended, the leader driving a change from
//! `C_old,new` to `C_new`, and who may talk to this node.

use std::collections::BTreeSet;

use super::membership::{ClusterConfig, Membership, MembershipError};
use super::message::{AppendRequest, Message, TimeoutNow};
use super::output::Event;
use super::progress::Progress;
use super::types::{Entry, LogId, NodeId, Payload, Role};
use super::RaftCore;
use crate::transport::Member;

impl RaftCore {
    /// Starts a change to the configuration `target` (leader only) and returns the id of
    /// the entry appended for it. When the voters change, that entry is the joint
    /// configuration `C_old,new`, and the leader appends `C_new` by itself once it
    /// commits; when only learners (or addresses) change, it is `target` itself. The
    /// change is complete once a stable configuration at or after the returned index is
    /// committed.
    ///
    /// With `check_lag`, a node that becomes a voter must be within
    /// [`Config::max_promotion_lag`](super::Config::max_promotion_lag) entries of this
    /// leader's last entry.
    pub fn propose_membership(
        &mut self,
        target: Membership,
        check_lag: bool,
    ) -> Result<LogId, MembershipError> {
        if self.role != Role::Leader {
            return Err(MembershipError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(target) = self.transfer_target() {
            return Err(MembershipError::TransferInProgress { target });
        }
        let current = self.configs.current();
        let ClusterConfig::Stable(current) = current else {
            return Err(MembershipError::ChangeInProgress);
        };
        if self.configs.current_index() > self.commit {
            return Err(MembershipError::ChangeInProgress);
        }
        if target.voters().is_empty() {
            return Err(MembershipError::Invalid(
                "a configuration needs at least one voter".into(),
            ));
        }
        let last = self.log.last_index();
        if check_lag {
            for &v in target.voters() {
                if v == self.id || current.voters().contains(&v) {
                    continue;
                }
                let matched = self.progress.get(&v).map_or(0, |p| p.matched);
                let behind = last.saturating_sub(matched);
                if behind > self.config.max_promotion_lag {
                    return Err(MembershipError::Lagging { id: v, behind });
                }
            }
        }
        if (last - self.commit) as usize >= self.config.max_uncommitted_entries {
            return Err(MembershipError::Busy);
        }
        let config = if target.voters() == current.voters() {
            ClusterConfig::Stable(target)
        } else {
            ClusterConfig::Joint {
                old: current.clone(),
                new: target,
            }
        };
        tracing::info!(
            node = self.id,
            term = self.term(),
            ?config,
            "membership change"
        );
        Ok(self.append_local(Payload::Membership(Box::new(config))))
    }

    /// May `from` send `message` to this node? Members of the configuration in force
    /// may send anything. A node outside it may still act as the leader of its term
    /// (AppendEntries, InstallSnapshot, TimeoutNow: a leader whose configuration is
    /// ahead of this node's log, one that is leaving the cluster and still leads until
    /// its removal commits, the leader of a cluster this joining node is being added
    /// to) or ask for a vote (a voter of a configuration this node has not seen yet:
    /// a joining node promoted with the log it has, or a lagging voter, may be needed
    /// for a quorum). The term rules and `validate` judge those like any other. A
    /// removed node's campaign is held off by Pre-Vote and the CheckQuorum lease: the
    /// members hear from their leader, and its log lacks the entry that removed it.
    /// Replies and reads from a non-member are refused.
    pub(super) fn accepts_from(&self, from: NodeId, message: &Message) -> bool {
        self.configs.current().contains(from)
            // A leader still replicates to the nodes a pending change removes.
            || self.progress.contains_key(&from)
            || message.accepted_from_non_members()
    }

    /// The nodes this node exchanges messages with, itself excepted: the members of the
    /// configuration in force; on a leader, every node it still replicates to; on any
    /// other node, the leader it knows in its current term, member or not. A node that
    /// a pending (or just committed) change removes stays among them until
    /// `prune_removed` has sent it the heartbeat that carries the commit of its removal,
    /// so that it learns the removal is final. A leader outside the configuration in
    /// force is one whose configuration this node's log lacks yet (this node was cut off
    /// while the cluster added the leader, so it still holds the old configuration), or
    /// one being removed that leads until its removal commits: this node takes its
    /// AppendEntries (see `accepts_from`) and must be able to answer them, or it would
    /// never catch up. It stays until this node follows another leader or a later term.
    /// Likewise the candidate this node granted a vote or pre-vote in its current term:
    /// a voter that missed the change adding that candidate may be the vote it needs to
    /// win (say the new configuration's leader is lost before this node caught up).
    /// What the node tells its transport
    /// ([`Transport::set_members`](crate::Transport::set_members)).
    pub fn links(&self) -> BTreeSet<NodeId> {
        let mut ids = self.configs.current().members();
        if self.role == Role::Leader {
            ids.extend(self.progress.keys().copied());
        } else {
            ids.extend(self.leader);
            // A candidate granted a vote in this term hears the grant, member or not: a
            // voter that missed the change adding it may be the vote it needs.
            if let Some((term, candidate)) = self.vote_link {
                if term == self.term() {
                    ids.insert(candidate);
                }
            }
        }
        ids.remove(&self.id);
        ids
    }

    /// What [`links`](Self::links) and [`link_members`](Self::link_members) derive from,
    /// in a form cheap to compare (no allocation): while it stays equal, so do they. The
    /// leader's followers change only with its configurations (they are its members,
    /// plus removed nodes until `prune_removed` drops them, which shrinks the count).
    pub(crate) fn links_key(&self) -> LinksKey {
        let voted = self
            .vote_link
            .filter(|&(term, _)| term == self.term())
            .map(|(_, candidate)| candidate);
        LinksKey {
            role: self.role,
            leader: self.leader,
            voted,
            configs: self.configs.version(),
            followers: self.progress.len(),
        }
    }

    /// [`links`](Self::links) with the address of each: the one the configuration in
    /// force records for a member, else the one the newest configuration in this
    /// node's log that lists the node records (a node being removed), else empty (a
    /// leader this node's log does not list yet: its transport finds it by other means).
    pub fn link_members(&self) -> Vec<Member> {
        self.links()
            .into_iter()
            .map(|id| Member {
                id,
                address: self.configs.address(id).unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// May this node campaign? A voter of the configuration in force may; so may a voter
    /// of any configuration in its log from the one in force at its commit index on
    /// (that is not known to be superseded by a committed one): a node that `C_new`
    /// removes may still be needed to commit it, when the only voters of `C_new` lack
    /// it. It then campaigns, and counts votes, in the configuration in force, like
    /// every other decision.
    pub fn can_campaign(&self) -> bool {
        let id = self.id;
        self.configs.since(self.commit).any(|c| c.is_voter(id))
    }

    /// Bookkeeping for an entry about to be appended to the log: a configuration takes
    /// effect as soon as it is appended.
    pub(super) fn note_appended(&mut self, entry: &Entry) {
        if let Payload::Membership(config) = &entry.payload {
            self.configs.push(entry.index, (**config).clone());
            self.membership_changed();
        }
    }

    /// The configuration in force changed: report it, and on a leader replicate to the
    /// new members and stop tracking the ones that left.
    pub(super) fn membership_changed(&mut self) {
        let config = self.configs.current();
        self.events.push(Event::MembershipChanged {
            index: self.configs.current_index(),
            joint: config.is_joint(),
        });
        tracing::debug!(
            node = self.id,
            index = self.configs.current_index(),
            ?config,
            "configuration in force"
        );
        if self.role == Role::Leader {
            self.sync_progress();
        }
    }

    /// Once the configuration in force is committed, stops replicating to the nodes it
    /// removed: each one that holds the configuration (or has been silent for the
    /// minimum election timeout) gets a last heartbeat that carries the commit, so that
    /// it knows its removal is final and stops campaigning, and is then dropped.
    pub(super) fn prune_removed(&mut self) {
        if self.role != Role::Leader || self.configs.current_index() > self.commit {
            return;
        }
        let config = self.configs.current();
        if self.progress.keys().all(|&id| config.contains(id)) {
            return;
        }
        let index = self.configs.current_index();
        let window = self.config.election_timeout_min;
        let now = self.now;
        let done: Vec<(NodeId, u64)> = self
            .progress
            .iter()
            .filter(|(&id, p)| {
                !config.contains(id)
                    && (p.matched >= index || now.saturating_sub(p.last_heard) >= window)
            })
            .map(|(&id, p)| (id, p.matched))
            .collect();
        for (id, matched) in done {
            let prev_log = self.heartbeat_prev(matched);
            let req = AppendRequest {
                term: self.term(),
                prev_log,
                entries: Vec::new(),
                leader_commit: self.commit.min(prev_log.index),
                read_round: 0,
            };
            self.send(id, Message::AppendEntries(req));
            self.progress.remove(&id);
        }
    }

    /// Tracks every node this leader replicates to (see `peers`). Nodes only ever leave
    /// through `prune_removed`, once the configuration in force is committed: a node
    /// that an earlier, committed configuration removed may still be owed the heartbeat
    /// that tells it so when the next change is appended.
    fn sync_progress(&mut self) {
        let peers: std::collections::BTreeSet<NodeId> = self.peers().collect();
        let next = self.log.last_index() + 1;
        let now = self.now;
        for id in peers {
            self.progress
                .entry(id)
                .or_insert_with(|| Progress::new(next, now));
        }
        self.pending_broadcast = true;
    }

    /// After the commit index moved on a leader: a committed joint configuration is
    /// followed by `C_new`; a committed configuration this leader does not vote in
    /// ends its leadership (it hands over to the most up-to-date voter at once).
    pub(super) fn advance_membership(&mut self) {
        if self.role != Role::Leader || self.configs.current_index() > self.commit {
            return;
        }
        self.prune_removed();
        match self.configs.current() {
            ClusterConfig::Joint { new, .. } => {
                let next = ClusterConfig::Stable(new.clone());
                tracing::info!(
                    node = self.id,
                    "joint configuration committed, appending the new one"
                );
                self.append_local(Payload::Membership(Box::new(next)));
            }
            ClusterConfig::Stable(m) if !m.voters().contains(&self.id) => {
                let last = self.log.last_id();
                let successor = self
                    .progress
                    .iter()
                    .filter(|(id, p)| m.voters().contains(id) && p.matched == last.index)
                    .map(|(&id, _)| id)
                    .next();
                tracing::info!(
                    node = self.id,
                    ?successor,
                    "removed from the configuration, stepping down"
                );
                let term = self.term();
                if let Some(to) = successor {
                    // The successor holds the whole log; it campaigns at once, without
                    // waiting for an election timeout.
                    self.lease_forfeited = term;
                    self.send(
                        to,
                        Message::TimeoutNow(TimeoutNow {
                            term,
                            last_log: last,
                        }),
                    );
                }
                self.become_follower(term, None);
            }
            ClusterConfig::Stable(_) => {}
        }
    }

    /// A received snapshot through `last` replaced the log: its configuration is the
    /// base, the kept tail's membership entries apply on top.
    pub(super) fn reset_membership(&mut self, last: LogId, base: Option<ClusterConfig>) {
        let before = (self.configs.current_index(), self.configs.current().clone());
        let base = base.unwrap_or_else(|| self.configs.at(last.index).clone());
        self.configs.reset(last.index, base);
        if (self.configs.current_index(), self.configs.current()) != (before.0, &before.1) {
            self.membership_changed();
        }
    }
}

/// See [`RaftCore::links_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinksKey {
    role: Role,
    leader: Option<NodeId>,
    voted: Option<NodeId>,
    configs: u64,
    followers: usize,
}
