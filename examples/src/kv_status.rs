//! A node's status as the KV service reports it (`status` request), and the cluster
//! table `kv status` prints from every node's status.
//!
//! The status line is `key=value` pairs separated by spaces, read from the node's
//! [`RaftMetrics`]:
//! `id=1 role=leader term=3 leader=1 commit=42 applied=42 lag=0 snapshot=32`.
//! `leader=none` when no leader is known; `lag` is the largest follower lag on the leader,
//! 0 elsewhere; `snapshot` the last index of the node's latest snapshot (0: none).

use std::fmt::Write as _;

use actraft::core::{LogIndex, NodeId, Term};
use actraft::RaftMetrics;

/// One node's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node.
    pub id: NodeId,
    /// Its role, as [`Role`](actraft::Role) displays it (`leader`, `follower`, ...).
    pub role: String,
    /// Its current term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its commit index.
    pub commit: LogIndex,
    /// Its applied index.
    pub applied: LogIndex,
    /// On the leader: the largest follower lag, in entries. 0 elsewhere.
    pub lag: u64,
    /// The last index covered by the node's latest snapshot (0: none).
    pub snapshot: LogIndex,
}

impl NodeStatus {
    /// The status in `metrics`.
    pub fn of(metrics: &RaftMetrics) -> Self {
        Self {
            id: metrics.id,
            role: metrics.role.to_string(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            commit: metrics.commit_index,
            applied: metrics.applied_index,
            lag: metrics.max_lag(),
            snapshot: metrics.snapshot.map_or(0, |s| s.index),
        }
    }

    /// The status line (see the [module docs](self)).
    pub fn line(&self) -> String {
        let leader = self.leader.map_or("none".to_string(), |l| l.to_string());
        format!(
            "id={} role={} term={} leader={leader} commit={} applied={} lag={} snapshot={}",
            self.id, self.role, self.term, self.commit, self.applied, self.lag, self.snapshot
        )
    }

    /// Parses a status line. Unknown keys are ignored, so that newer nodes may add some;
    /// `lag` may be missing (older nodes), and reads as 0.
    pub fn parse(line: &str) -> Result<Self, String> {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| format!("status without {name}: {line:?}"))
        };
        let number = |name: &str| -> Result<u64, String> {
            field(name)?
                .parse()
                .map_err(|e| format!("status {name}: {e}: {line:?}"))
        };
        let leader = match field("leader")? {
            "none" => None,
            id => Some(
                id.parse()
                    .map_err(|e| format!("status leader: {e}: {line:?}"))?,
            ),
        };
        Ok(Self {
            id: number("id")?,
            role: field("role")?.to_string(),
            term: number("term")?,
            leader,
            commit: number("commit")?,
            applied: number("applied")?,
            lag: if field("lag").is_ok() {
                number("lag")?
            } else {
                0
            },
            snapshot: if field("snapshot").is_ok() {
                number("snapshot")?
            } else {
                0
            },
        })
    }
}

/// The cluster table: one row per node address, with its status or why there is none.
pub fn table(rows: &[(String, Result<NodeStatus, String>)]) -> String {
    let header = [
        "node", "id", "role", "term", "leader", "commit", "applied", "lag",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for (addr, status) in rows {
        cells.push(match status {
            Ok(s) => vec![
                addr.clone(),
                s.id.to_string(),
                s.role.clone(),
                s.term.to_string(),
                s.leader.map_or("-".to_string(), |l| l.to_string()),
                s.commit.to_string(),
                s.applied.to_string(),
                s.lag.to_string(),
            ],
            Err(why) => vec![addr.clone(), "-".into(), format!("down ({why})")],
        });
    }
    let mut widths = vec![0; header.len()];
    for row in &cells {
        // A "down" row's reason spans the remaining columns: it does not widen them.
        if row.len() == header.len() {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
    }
    let mut out = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> NodeStatus {
        NodeStatus {
            id: 1,
            role: "leader".into(),
            term: 3,
            leader: Some(1),
            commit: 42,
            applied: 41,
            lag: 2,
            snapshot: 32,
        }
    }

    #[test]
    fn line_round_trips() {
        let s = leader();
        assert_eq!(
            s.line(),
            "id=1 role=leader term=3 leader=1 commit=42 applied=41 lag=2 snapshot=32"
        );
        assert_eq!(NodeStatus::parse(&s.line()).unwrap(), s);
        let none = NodeStatus {
            leader: None,
            ..leader()
        };
        assert_eq!(NodeStatus::parse(&none.line()).unwrap(), none);
    }

    #[test]
    fn parse_accepts_old_lines_and_refuses_broken_ones() {
        let old = NodeStatus::parse("id=2 role=follower term=3 leader=1 commit=4 applied=4");
        assert_eq!(old.unwrap().lag, 0);
        assert!(NodeStatus::parse("id=2 role=follower").is_err());
        assert!(
            NodeStatus::parse("id=x role=follower term=3 leader=1 commit=4 applied=4")
                .unwrap_err()
                .contains("id")
        );
    }

    #[test]
    fn table_aligns_columns_and_shows_down_nodes() {
        let rows = vec![
            ("127.0.0.1:7001".to_string(), Ok(leader())),
            (
                "127.0.0.1:7002".to_string(),
                Err("connection refused".into()),
            ),
        ];
        let table = table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            "node            id  role    term  leader  commit  applied  lag"
        );
        assert_eq!(
            lines[1],
            "127.0.0.1:7001  1   leader  3     1       42      41       2"
        );
        assert_eq!(lines[2], "127.0.0.1:7002  -   down (connection refused)");
    }
}
