//! The Figure 3 checker must catch each property broken in a hand-made history, and pass
//! a legal one: a checker that cannot fail proves nothing.

use actraft::core::{Entry, Payload};
use actraft::testkit::sim::{Checker, Violation};

fn cmd(term: u64, index: u64, data: &'static str) -> Entry {
    Entry {
        term,
        index,
        payload: Payload::Command(data.into()),
    }
}

#[test]
fn legal_history_passes() {
    let mut c = Checker::new();
    c.leader_elected(1, 1, &[]).unwrap();
    c.log_written(1, None, &[cmd(1, 1, "a"), cmd(1, 2, "b")])
        .unwrap();
    c.log_written(2, None, &[cmd(1, 1, "a")]).unwrap();
    c.committed(&cmd(1, 1, "a"), 1).unwrap();
    c.applied(1, &cmd(1, 1, "a")).unwrap();
    c.applied(2, &cmd(1, 1, "a")).unwrap();
    c.stepped_down(1);
    // Node 2 replaces its uncommitted suffix under a new leader: legal.
    c.log_written(2, None, &[cmd(1, 2, "b")]).unwrap();
    c.leader_elected(2, 2, &[1, 1]).unwrap();
    c.log_written(2, None, &[cmd(2, 3, "c")]).unwrap();
    c.log_written(3, None, &[cmd(1, 1, "a"), cmd(1, 2, "b"), cmd(2, 3, "c")])
        .unwrap();
    assert_eq!(c.elections(), 2);
}

#[test]
fn catches_election_safety() {
    let mut c = Checker::new();
    c.leader_elected(1, 3, &[]).unwrap();
    let err = c.leader_elected(2, 3, &[]).unwrap_err();
    assert!(
        matches!(
            err,
            Violation::ElectionSafety {
                term: 3,
                first: 1,
                second: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn catches_leader_append_only() {
    let mut c = Checker::new();
    c.leader_elected(1, 1, &[]).unwrap();
    c.log_written(1, None, &[cmd(1, 1, "a"), cmd(1, 2, "b")])
        .unwrap();
    let err = c.log_written(1, Some(2), &[cmd(1, 2, "z")]).unwrap_err();
    assert!(
        matches!(
            err,
            Violation::LeaderAppendOnly {
                node: 1,
                term: 1,
                index: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn catches_log_matching() {
    let mut c = Checker::new();
    c.log_written(1, None, &[cmd(1, 1, "a"), cmd(1, 2, "b")])
        .unwrap();
    // Same (index, term) at 2, but a different entry before it.
    let err = c
        .log_written(2, None, &[cmd(1, 1, "x"), cmd(1, 2, "b")])
        .unwrap_err();
    assert!(
        matches!(err, Violation::LogMatching { node: 2, .. }),
        "{err}"
    );
}

#[test]
fn catches_leader_completeness() {
    let mut c = Checker::new();
    c.leader_elected(1, 1, &[]).unwrap();
    c.log_written(1, None, &[cmd(1, 1, "a")]).unwrap();
    c.committed(&cmd(1, 1, "a"), 1).unwrap();
    // A leader of a later term whose log lacks the committed entry.
    let err = c.leader_elected(2, 2, &[]).unwrap_err();
    assert!(
        matches!(
            err,
            Violation::LeaderCompleteness {
                leader: 2,
                term: 2,
                index: 1
            }
        ),
        "{err}"
    );
    // And the other way round: a later leader already elected when the commit is seen.
    let mut c = Checker::new();
    c.leader_elected(1, 1, &[]).unwrap();
    c.leader_elected(2, 2, &[]).unwrap();
    let err = c.committed(&cmd(1, 1, "a"), 1).unwrap_err();
    assert!(
        matches!(err, Violation::LeaderCompleteness { leader: 2, .. }),
        "{err}"
    );
}

#[test]
fn catches_state_machine_safety() {
    let mut c = Checker::new();
    c.applied(1, &cmd(1, 1, "a")).unwrap();
    let err = c.applied(2, &cmd(1, 1, "b")).unwrap_err();
    assert!(
        matches!(err, Violation::StateMachineSafety { node: 2, index: 1 }),
        "{err}"
    );
}
