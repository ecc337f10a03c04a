//! Operating a KV cluster from the command line: add a node, remove one, move the
//! leadership, list the members.
//!
//! Each operation is one client request (see [`AdminRequest`]) that any node takes and a
//! follower redirects to the leader. Every request says what the cluster should look like
//! after it, not what to change, so a request retried after an unknown outcome does no
//! harm: adding a node that is already a learner, promoting a voter or removing a node
//! that is gone answers `ok` without a new change, once the configuration that already
//! says so is committed.
//!
//! Adding a machine is two steps, each a membership change the leader commits: the new
//! node joins as a learner (it receives the log, or a snapshot, but does not vote), then
//! it is promoted to voter once it has caught up. The leader refuses to promote a learner
//! that is still far behind, which the node reports as `unavailable` so that the client
//! keeps retrying until the learner caught up or the client's deadline passes.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use actraft::core::NodeId;
use actraft::core::TransferError;
use actraft::{ClientError, ClusterConfig, MembershipError, RaftHandle, RaftMetrics, Role};

use crate::kv_wire::Reply;

/// A request that operates the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRequest {
    /// Make `id` a learner reachable at `address` (the node's `--listen` address).
    AddLearner {
        /// The new node's id.
        id: NodeId,
        /// Where its peers reach it.
        address: String,
    },
    /// Make learner `id` a voter.
    Promote {
        /// The learner.
        id: NodeId,
    },
    /// Remove `id` from the cluster (voter or learner).
    Remove {
        /// The node.
        id: NodeId,
    },
    /// Hand the leadership to `to`, or to the most up-to-date follower.
    Transfer {
        /// The node to lead next, if it matters.
        to: Option<NodeId>,
    },
    /// The current configuration, as text.
    Members,
}

impl AdminRequest {
    /// The request's text, after the `admin` verb.
    pub fn encode(&self) -> String {
        match self {
            AdminRequest::AddLearner { id, address } => format!("add-learner {id} {address}"),
            AdminRequest::Promote { id } => format!("promote {id}"),
            AdminRequest::Remove { id } => format!("remove {id}"),
            AdminRequest::Transfer { to: Some(to) } => format!("transfer {to}"),
            AdminRequest::Transfer { to: None } => "transfer".into(),
            AdminRequest::Members => "members".into(),
        }
    }

    /// Parses what follows the `admin` verb.
    pub fn decode(text: &str) -> Result<Self, String> {
        let mut words = text.split(' ');
        let verb = words.next().unwrap_or("");
        let mut id = |what: &str| -> Result<NodeId, String> {
            words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| format!("admin {what}: expected a node id"))
        };
        let request = match verb {
            "add-learner" => {
                let id = id("add-learner")?;
                let address = words.next().unwrap_or("").to_string();
                if address.is_empty() {
                    return Err("admin add-learner: expected ID ADDRESS".into());
                }
                AdminRequest::AddLearner { id, address }
            }
            "promote" => AdminRequest::Promote { id: id("promote")? },
            "remove" => AdminRequest::Remove { id: id("remove")? },
            "transfer" if text == "transfer" => AdminRequest::Transfer { to: None },
            "transfer" => AdminRequest::Transfer {
                to: Some(id("transfer")?),
            },
            "members" => AdminRequest::Members,
            _ => return Err(format!("unknown admin request {verb:?}")),
        };
        match words.next() {
            None => Ok(request),
            Some(extra) => Err(format!("admin {verb}: unexpected {extra:?}")),
        }
    }
}

/// A configuration as one line of text: `voters=1,2,3 learners=4` (and `joint` with the
/// old voters while a change is under way).
pub struct MembersLine<'a>(pub &'a ClusterConfig);

impl fmt::Display for MembersLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ids: &BTreeSet<NodeId>| {
            ids.iter()
                .map(NodeId::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let target = self.0.target();
        write!(
            f,
            "voters={} learners={}",
            list(target.voters()),
            list(target.learners())
        )?;
        if let Some(old) = self.0.old() {
            write!(f, " joint_old_voters={}", list(old.voters()))?;
        }
        Ok(())
    }
}

/// Serves one admin request on `handle`, which the caller has checked leads (a follower
/// redirects before calling this). `redirect` turns a leader hint into a reply.
pub async fn answer(
    handle: &RaftHandle,
    request: AdminRequest,
    redirect: impl Fn(Option<NodeId>) -> Reply,
) -> Reply {
    // One snapshot: the configuration in force, with the term and the last log index it
    // came with (what a request already satisfied waits on).
    let now = handle.metrics();
    let config = &now.membership;
    let target = config.target();
    let mut voters = target.voters().clone();
    let mut learners = target.learners().clone();
    let change = match request {
        AdminRequest::Members => return Reply::Ok(MembersLine(config).to_string()),
        AdminRequest::Transfer { to } => {
            return match handle.transfer_leadership(to).await {
                Ok(leader) => Reply::Ok(format!("node {leader} leads")),
                Err(TransferError::NotLeader { leader }) => redirect(leader),
                Err(e @ (TransferError::UnknownTarget { .. } | TransferError::NoCandidate)) => {
                    Reply::Error(e.to_string())
                }
                Err(e) => Reply::Unavailable(format!("transfer not done: {e}")),
            };
        }
        AdminRequest::AddLearner { id, address } => {
            if voters.contains(&id) || learners.contains(&id) {
                return already(handle, &now, format!("node {id} is already a member")).await;
            }
            handle.add_learner(id, address).await
        }
        AdminRequest::Promote { id } => {
            if voters.contains(&id) && !config.is_joint() {
                return already(handle, &now, format!("node {id} is already a voter")).await;
            }
            if !learners.remove(&id) {
                return Reply::Error(format!(
                    "node {id} is not a learner: add it first (kv add-node)"
                ));
            }
            voters.insert(id);
            handle.change_membership(voters, learners).await
        }
        AdminRequest::Remove { id } => {
            if !voters.contains(&id) && !learners.contains(&id) && !config.is_joint() {
                return already(handle, &now, format!("node {id} is not a member")).await;
            }
            voters.remove(&id);
            learners.remove(&id);
            handle.change_membership(voters, learners).await
        }
    };
    match change {
        Ok(index) => Reply::Ok(format!(
            "{} (committed at index {index})",
            MembersLine(&handle.membership())
        )),
        Err(MembershipError::NotLeader { leader }) => redirect(leader),
        Err(e @ MembershipError::Invalid(_)) => Reply::Error(e.to_string()),
        // A change under way, a learner still catching up, leadership lost mid-change:
        // the client retries; the request is idempotent.
        Err(e) => Reply::Unavailable(format!("not yet: {e}")),
    }
}

/// How long a request that finds the cluster already as it asks waits for that
/// configuration to commit before it answers `unavailable` (the client retries).
const ALREADY_WAIT: Duration = Duration::from_secs(2);

/// Answers `ok <text>` to a request that finds the configuration in force already as it
/// asks, once that configuration is committed. It takes effect when appended, so a
/// retried `remove` may find it in the leader's log before a majority stores it; an
/// operator who stops or wipes the removed node on that answer must not find the
/// change undone by the next leader. Waits until the commit index reaches the last log
/// index of `at` (the snapshot the configuration was read from; its entry is at or
/// before that index) while the node leads in the same term, so that no truncation can
/// have removed it; answers `unavailable` when leadership changes or [`ALREADY_WAIT`]
/// passes.
async fn already(handle: &RaftHandle, at: &RaftMetrics, text: String) -> Reply {
    let (term, upto) = (at.current_term, at.last_log_index);
    let settled = handle
        .wait_until(ALREADY_WAIT, |s| {
            s.role != Role::Leader || s.term != term || s.commit_index >= upto
        })
        .await;
    match settled {
        Ok(s) if s.role == Role::Leader && s.term == term => Reply::Ok(text),
        Ok(_) | Err(ClientError::Stopped) => Reply::Unavailable("leadership changed; retry".into()),
        Err(_) => Reply::Unavailable(format!(
            "{text}, but that configuration is not committed yet; retry"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_requests_round_trip() {
        let requests = [
            AdminRequest::AddLearner {
                id: 4,
                address: "127.0.0.1:7004".into(),
            },
            AdminRequest::Promote { id: 4 },
            AdminRequest::Remove { id: 1 },
            AdminRequest::Transfer { to: Some(2) },
            AdminRequest::Transfer { to: None },
            AdminRequest::Members,
        ];
        for r in requests {
            assert_eq!(AdminRequest::decode(&r.encode()), Ok(r));
        }
        assert!(AdminRequest::decode("add-learner 4").is_err());
        assert!(AdminRequest::decode("promote x").is_err());
        assert!(AdminRequest::decode("remove 1 2").is_err());
        assert!(AdminRequest::decode("shrink").is_err());
    }
}
