//! Content filters of `MemRouter`: dropping, delaying and duplicating messages by what
//! they carry, the order filters are asked in, removal, and determinism of the random
//! actions. Delays run on tokio's paused clock, so no test waits on the wall clock.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actraft::core::Message;
use actraft_transport_mem::{FilterAction, MemRouter};
use common::{append, append_reply, heartbeat, pre_vote, vote, vote_reply, Net};
use tokio::time::Instant;

#[test]
fn a_leader_that_sends_but_hears_no_replies() {
    let mut net = Net::new(3);
    net.router.add_filter(|e| match e.message {
        Message::AppendEntriesReply(_) if e.to == 1 => FilterAction::Drop,
        _ => FilterAction::Pass,
    });
    for follower in [2, 3] {
        net.send(1, follower, append(1, 2));
        net.send(1, follower, heartbeat(1));
        assert_eq!(net.terms(follower), [1, 1], "the leader's sends arrive");
        net.send(follower, 1, append_reply(1));
        net.send(follower, 1, vote_reply(2));
    }
    let got = net.received(1);
    assert_eq!(
        got.len(),
        2,
        "only the vote replies reach the leader: {got:?}"
    );
    assert!(got
        .iter()
        .all(|m| matches!(m, Message::RequestVoteReply(_))));
    // Replies between followers are not the filter's business.
    net.send(2, 3, append_reply(3));
    assert_eq!(net.terms(3), [3]);

    let stats = net.router.stats();
    assert_eq!((stats.sent, stats.dropped_filter), (9, 2));
    assert_eq!(stats.delivered + stats.dropped, stats.sent);
    assert_eq!(net.router.node_stats(1).inbound.dropped_filter, 2);
    assert_eq!(net.router.node_stats(1).outbound.dropped, 0);
    assert_eq!(net.router.link_stats(2, 1).dropped_filter, 1);
    assert_eq!(net.router.link_stats(3, 1).dropped_filter, 1);
}

#[test]
fn drop_appends_carrying_entries_but_not_heartbeats() {
    let mut net = Net::new(2);
    net.router.add_filter(|e| match &e.message {
        Message::AppendEntries(request) if !request.entries.is_empty() => FilterAction::Drop,
        _ => FilterAction::Pass,
    });
    net.send(1, 2, append(1, 3));
    net.send(1, 2, heartbeat(2));
    net.send(1, 2, append(3, 1));
    net.send(1, 2, heartbeat(4));
    assert_eq!(net.terms(2), [2, 4], "heartbeats only");
    let link = net.router.link_stats(1, 2);
    assert_eq!((link.sent, link.delivered, link.dropped_filter), (4, 2, 2));
}

#[tokio::test(start_paused = true)]
async fn delay_only_votes() {
    let mut net = Net::new(2);
    let wait = Duration::from_millis(50);
    net.router.add_filter(move |e| match e.message {
        Message::RequestVote(_) | Message::RequestVoteReply(_) => FilterAction::Delay(wait),
        _ => FilterAction::Pass,
    });
    let sent_at = Instant::now();
    net.send(1, 2, vote(1));
    net.send(1, 2, heartbeat(2));
    net.send(1, 2, pre_vote(3));
    assert_eq!(net.terms(2), [2, 3], "everything but the vote is immediate");
    assert_eq!(net.router.stats().in_flight(), 1);
    assert_eq!(net.next(2).await.message, vote(1));
    let waited = sent_at.elapsed();
    assert!(
        wait <= waited && waited < wait + Duration::from_millis(5),
        "{waited:?}"
    );
    let stats = net.router.stats();
    assert_eq!(
        (stats.delayed, stats.delivered, stats.in_flight()),
        (1, 3, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_filter_delay_replaces_the_routers_delay() {
    let mut net = Net::new(2);
    net.router
        .set_delay(Duration::from_millis(100), Duration::from_millis(100));
    net.router.add_filter(|e| match e.message {
        Message::AppendEntries(_) => FilterAction::Delay(Duration::ZERO),
        Message::PreVote(_) => FilterAction::DelayBetween(
            Duration::from_millis(20), // bounds in either order
            Duration::from_millis(10),
        ),
        _ => FilterAction::Pass,
    });
    let sent_at = Instant::now();
    net.send(1, 2, heartbeat(1));
    assert_eq!(net.terms(2), [1], "a zero filter delay is immediate");
    net.send(1, 2, vote(2));
    net.send(1, 2, pre_vote(3));
    let first = net.next(2).await;
    let at = sent_at.elapsed();
    assert_eq!(first.message, pre_vote(3));
    assert!(
        Duration::from_millis(10) <= at && at <= Duration::from_millis(21),
        "{at:?}"
    );
    assert_eq!(net.next(2).await.message, vote(2));
    assert!(sent_at.elapsed() >= Duration::from_millis(100));
}

#[test]
fn the_first_filter_that_does_not_pass_decides() {
    let mut net = Net::new(2);
    let asked_second = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&asked_second);
    net.router.add_filter(|e| match e.message {
        Message::RequestVote(_) => FilterAction::Duplicate,
        _ => FilterAction::Pass,
    });
    net.router.add_filter(move |e| {
        count.fetch_add(1, Ordering::Relaxed);
        match e.message {
            Message::RequestVote(_) | Message::AppendEntries(_) => FilterAction::Drop,
            _ => FilterAction::Pass,
        }
    });
    net.send(1, 2, vote(1));
    net.send(1, 2, heartbeat(2));
    net.send(1, 2, vote_reply(3));
    assert_eq!(
        net.terms(2),
        [1, 1, 3],
        "the vote duplicated, the heartbeat dropped"
    );
    assert_eq!(
        asked_second.load(Ordering::Relaxed),
        2,
        "the second filter is not asked about the vote"
    );
    let stats = net.router.stats();
    assert_eq!(
        (
            stats.sent,
            stats.duplicated,
            stats.delivered,
            stats.dropped_filter
        ),
        (3, 1, 3, 1)
    );
    assert_eq!(stats.in_flight(), 0);
    assert_eq!(stats.delivered_of("RequestVote"), 2);
}

#[test]
fn removing_and_clearing_filters() {
    let mut net = Net::new(2);
    let drop_votes = |e: &actraft::core::Envelope| match e.message {
        Message::RequestVote(_) => FilterAction::Drop,
        _ => FilterAction::Pass,
    };
    let id = net.router.add_filter(drop_votes);
    net.send(1, 2, vote(1));
    assert!(net.terms(2).is_empty());
    assert!(net.router.remove_filter(id));
    assert!(!net.router.remove_filter(id), "already removed");
    net.send(1, 2, vote(2));
    assert_eq!(net.terms(2), [2]);

    let first = net.router.add_filter(drop_votes);
    let second = net.router.add_filter(drop_votes);
    assert_ne!(first, second);
    net.router.clear_faults();
    assert!(!net.router.remove_filter(first), "clear_faults removed it");
    net.send(1, 2, vote(3));
    assert_eq!(net.terms(2), [3]);
    assert!(
        format!("{:?}", net.router).contains("faults_active: false"),
        "no filter left: the fast path is back"
    );

    net.router.add_filter(drop_votes);
    net.router.set_drop_rate(1.0);
    net.router.clear_filters();
    net.send(1, 2, vote(4));
    assert!(
        net.terms(2).is_empty(),
        "clear_filters keeps the other faults"
    );
    assert_eq!(net.router.stats().dropped_filter, 1);
}

#[test]
fn cut_messages_never_reach_a_filter() {
    let mut net = Net::new(3);
    let asked = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&asked);
    net.router.add_filter(move |_| {
        count.fetch_add(1, Ordering::Relaxed);
        FilterAction::Pass
    });
    net.router.isolate(3);
    net.send(1, 3, vote(1));
    net.send(1, 2, vote(2));
    assert_eq!(asked.load(Ordering::Relaxed), 1);
    assert_eq!(net.terms(2), [2]);
    assert!(net.terms(3).is_empty());
    assert_eq!(net.router.link_stats(1, 3).dropped_cut, 1);
}

#[test]
fn a_filter_may_call_the_router() {
    let mut net = Net::new(2);
    let router = net.router.clone();
    let id = net.router.add_filter(move |_| {
        // Reading the counters (or changing faults) from a filter does not deadlock.
        if router.stats().sent >= 2 {
            FilterAction::Drop
        } else {
            FilterAction::Pass
        }
    });
    (1..=3).for_each(|term| net.send(1, 2, vote(term)));
    assert_eq!(net.terms(2), [1]);
    net.router.remove_filter(id); // ends the cycle router -> filter -> router
}

/// Which of 500 messages a router seeded with `seed` delivers when a filter drops
/// votes with probability 0.3.
fn random_drop_pattern(seed: u64) -> Vec<u64> {
    let mut net = Net::on(MemRouter::with_seed(seed), 2);
    net.router.add_filter(|e| match e.message {
        Message::RequestVote(_) => FilterAction::DropWithProbability(0.3),
        _ => FilterAction::Pass,
    });
    (0..500).for_each(|term| net.send(1, 2, vote(term)));
    net.terms(2)
}

#[test]
fn random_filter_actions_follow_the_seed() {
    let pattern = random_drop_pattern(42);
    assert!(
        (300..=400).contains(&pattern.len()),
        "{} of 500",
        pattern.len()
    );
    assert_eq!(pattern, random_drop_pattern(42));
    assert_ne!(pattern, random_drop_pattern(43));
}

#[test]
fn probabilities_out_of_range_saturate() {
    let mut net = Net::new(2);
    net.router.add_filter(|e| match e.message {
        Message::RequestVote(_) => FilterAction::DropWithProbability(1.5),
        Message::PreVote(_) => FilterAction::DropWithProbability(-1.0),
        _ => FilterAction::DropWithProbability(f64::NAN),
    });
    net.send(1, 2, vote(1));
    net.send(1, 2, pre_vote(2));
    net.send(1, 2, heartbeat(3));
    assert_eq!(net.terms(2), [2, 3]);
}

#[tokio::test(start_paused = true)]
async fn duplicates_meet_the_delay_each_on_their_own() {
    let mut net = Net::on(MemRouter::with_seed(9), 2);
    net.router
        .set_delay(Duration::ZERO, Duration::from_millis(50));
    net.router.add_filter(|_| FilterAction::Duplicate);
    (0..50).for_each(|term| net.send(1, 2, heartbeat(term)));
    net.settle().await;
    let mut terms = net.terms(2);
    let arrival = terms.clone();
    terms.sort_unstable();
    let twice: Vec<u64> = (0..50).flat_map(|t| [t, t]).collect();
    assert_eq!(terms, twice, "each message arrives twice");
    assert_ne!(arrival, twice, "the copies are delayed independently");
    let stats = net.router.stats();
    assert_eq!(
        (stats.sent, stats.duplicated, stats.delivered),
        (50, 50, 100)
    );
    // Delays are drawn to the nanosecond from [0, 50 ms]: with this seed, none is zero.
    assert_eq!(stats.delayed, 100);
}
