//! Core unit tests: configuration and construction.

use super::*;

// ===== configuration and construction =================================================

/// `RaftCore::new` refuses an invalid configuration, an id that is not a member, and a
/// recovered log with a gap.
#[test]
fn new_rejects_bad_config_non_member_and_broken_log() {
    let empty_range = Config {
        election_timeout_min: Duration::from_millis(300),
        ..config()
    };
    assert!(matches!(
        RaftCore::new(1, vec![1, 2, 3], empty_range, InitialState::default(), 1).unwrap_err(),
        InitError::Config(ConfigError::EmptyElectionRange { .. })
    ));
    let slow_heartbeat = Config {
        heartbeat_interval: Duration::from_millis(100),
        ..config()
    };
    assert!(matches!(
        RaftCore::new(1, vec![1, 2, 3], slow_heartbeat, InitialState::default(), 1).unwrap_err(),
        InitError::Config(ConfigError::HeartbeatTooSlow { .. })
    ));
    let zero_batch = Config {
        max_append_entries: 0,
        ..config()
    };
    assert_eq!(
        RaftCore::new(1, vec![1], zero_batch, InitialState::default(), 1).unwrap_err(),
        InitError::Config(ConfigError::ZeroLimit {
            name: "max_append_entries"
        })
    );
    assert_eq!(
        RaftCore::new(4, vec![3, 1, 2, 1], config(), InitialState::default(), 1).unwrap_err(),
        InitError::NotAMember {
            id: 4,
            members: vec![1, 2, 3]
        }
    );
    let gap = InitialState {
        entries: vec![entry(1, 1), entry(1, 3)],
        ..InitialState::default()
    };
    assert_eq!(
        RaftCore::new(1, vec![1], config(), gap, 1).unwrap_err(),
        InitError::BrokenLog { index: 2 }
    );
}

/// Messages that are not for this node, or come from a stranger, are refused without
/// touching the state.
#[test]
fn step_rejects_misaddressed_messages() {
    let mut core = new_core(1, &[1, 2, 3], config(), initial(1, None, &[]));
    assert_eq!(
        core.step(Duration::ZERO, env(2, 3, request_vote(5, LogId::default()))),
        Err(StepError::WrongRecipient { to: 3, this: 1 })
    );
    assert_eq!(
        core.step(Duration::ZERO, env(9, 1, vote_reply(5, true))),
        Err(StepError::UnknownPeer { from: 9 })
    );
    assert_eq!(core.status().term, 1);
    assert!(!core.has_ready());
}
