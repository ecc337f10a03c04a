//! Random membership changes in the simulator: the leader is asked to add a learner or
//! to move to a random configuration over the bootstrap and the spare nodes (promote,
//! remove, replace several at once, a majority included), at random points, under the
//! same crashes and partitions as everything else.

use std::collections::BTreeSet;

use super::*;
use crate::driver::MembershipChange;

impl Simulation {
    /// Asks the current leader, if any, for a random membership change.
    pub(super) fn membership_action(&mut self) -> Result<(), String> {
        if self.liveness.is_none() {
            let next = self.jitter(self.cfg.membership_interval);
            self.schedule(next, Action::Membership);
        }
        let Some(i) = self.nodes.iter().position(SimNode::is_leader) else {
            return Ok(());
        };
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let change = if self.chance(300) {
            let id = ids[self.rng.below(ids.len() as u64) as usize];
            MembershipChange::AddLearner {
                id,
                address: format!("sim-{id}"),
            }
        } else {
            let size = [1, 2, 3, 3, 4, 5, 5][self.rng.below(7) as usize].min(ids.len());
            let mut pool = ids.clone();
            let mut voters = BTreeSet::new();
            while voters.len() < size {
                let k = self.rng.below(pool.len() as u64) as usize;
                voters.insert(pool.swap_remove(k));
            }
            let learners: BTreeSet<NodeId> =
                pool.into_iter().filter(|_| self.chance(500)).collect();
            MembershipChange::Change {
                voters,
                learners,
                check_lag: self.chance(500),
            }
        };
        self.trace.push(
            self.now,
            TraceEvent::Membership {
                node: self.nodes[i].id,
                change: format!("{change:?}"),
            },
        );
        let driver = self.nodes[i].driver.as_mut().expect("leader is up");
        driver.change_membership(change);
        self.memberships.0 += 1;
        self.process(i)
    }

    /// Checks the outcome of a change: a completed change names a committed, stable
    /// configuration.
    pub(super) fn membership_done(
        &mut self,
        i: usize,
        result: &Result<LogIndex, crate::core::MembershipError>,
    ) -> Result<(), String> {
        let Ok(index) = result else {
            return Ok(());
        };
        self.memberships.1 += 1;
        let Some(core) = self.nodes[i].core() else {
            return Ok(());
        };
        if core.status().commit_index < *index {
            return Err(format!(
                "Membership: node {} reported the change done at {index} before committing it",
                core.id()
            ));
        }
        match core.log_entries(*index, *index).first().map(|e| &e.payload) {
            Some(crate::core::Payload::Membership(c)) if !c.is_joint() => Ok(()),
            None => Ok(()), // compacted since
            other => Err(format!(
                "Membership: node {} reported the change done at {index}, which holds {other:?}",
                core.id()
            )),
        }
    }

    /// Checks that a leader's messages, and the answers to it, go to nodes the sender's
    /// transport still reaches: every AppendEntries, InstallSnapshot and TimeoutNow node
    /// `i` hands over in one run, and every reply to AppendEntries or InstallSnapshot it
    /// sends the leader it follows after the run (a leader its configuration may not
    /// name yet), is addressed to a node of its links before the run or after it (a
    /// transport that follows [`crate::Transport::set_members`] would drop it
    /// otherwise; the heartbeat that tells a removed node its removal is final must not
    /// be dropped, and a follower that cannot answer its leader never catches up).
    /// Then records the new links.
    pub(super) fn check_links(
        &mut self,
        i: usize,
        messages: &[crate::core::Envelope],
        links: Option<Vec<crate::Member>>,
    ) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let leader = node
            .core()
            .map(|core| core.status())
            .filter(|status| status.role != crate::core::Role::Leader)
            .and_then(|status| status.leader);
        let before = node.links.clone();
        if let Some(links) = links {
            node.links = (!links.is_empty()).then(|| links.iter().map(|m| m.id).collect());
        }
        let (Some(before), Some(after)) = (&before, &node.links) else {
            return Ok(());
        };
        for env in messages {
            let leader_message = matches!(
                env.message,
                crate::core::Message::AppendEntries(_)
                    | crate::core::Message::InstallSnapshot(_)
                    | crate::core::Message::TimeoutNow(_)
            );
            let reply_to_leader = matches!(
                env.message,
                crate::core::Message::AppendEntriesReply(_)
                    | crate::core::Message::InstallSnapshotReply(_)
            ) && Some(env.to) == leader;
            if (leader_message || reply_to_leader)
                && !before.contains(&env.to)
                && !after.contains(&env.to)
            {
                return Err(format!(
                    "Links: node {} sent {} to node {}, which its transport no longer reaches (links {before:?} then {after:?})",
                    env.from,
                    env.message.kind(),
                    env.to
                ));
            }
        }
        Ok(())
    }
}
