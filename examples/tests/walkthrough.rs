//! Every scene of the election walkthrough, asserting its outcome: who won, in which
//! term, who refused whom.

use std::time::Duration;

use actraft::core::VoteRefusal;
use actraft_examples::walkthrough;

fn dump(scene: &walkthrough::Scene) -> String {
    let rows: Vec<String> = scene
        .timeline
        .iter()
        .map(|r| format!("{:?} {} {} {} {}", r.at, r.node, r.role, r.term, r.what))
        .collect();
    format!("{}: {}\n{}", scene.title, scene.verdict, rows.join("\n"))
}

#[actix_rt::test]
async fn scene_1_startup() {
    let s = walkthrough::startup().await;
    assert!(s.ok, "{}", dump(&s));
    let (&term, &winner) = s.winners.iter().next().expect("a winner");
    assert!(term >= 1);
    assert!(
        s.votes.iter().any(|&(_, c, t)| c == winner && t == term),
        "{}",
        dump(&s)
    );
}

#[actix_rt::test]
async fn scene_2_split_vote() {
    let s = walkthrough::split_vote().await;
    assert!(s.ok, "{}", dump(&s));
    assert!(s.candidacies.contains(&(1, 1)) && s.candidacies.contains(&(4, 1)));
    assert!(s.votes.contains(&(2, 1, 1)), "B voted for A in term 1");
    assert!(s.votes.contains(&(3, 4, 1)), "C voted for D in term 1");
    assert!(!s.winners.contains_key(&1), "nobody won term 1");
    let (&term, &winner) = s.winners.iter().next().expect("a winner");
    assert!(term >= 2 && (winner == 1 || winner == 4));
}

#[actix_rt::test]
async fn scene_3_up_to_date_rule() {
    let s = walkthrough::up_to_date().await;
    assert!(s.ok, "{}", dump(&s));
    assert!(s.refusals.iter().any(|r| r.voter == 2
        && r.candidate == 3
        && matches!(r.reason, VoteRefusal::LogNotUpToDate { .. })));
    assert_eq!(
        s.winners.values().last(),
        Some(&2),
        "B, holding every committed entry, wins"
    );
}

#[actix_rt::test]
async fn scene_4_one_vote_per_term() {
    let s = walkthrough::one_vote_per_term().await;
    assert!(s.ok, "{}", dump(&s));
    assert!(s.votes.contains(&(2, 1, 1)), "B's vote went to A");
    assert!(s.refusals.iter().any(|r| r.voter == 2
        && r.candidate == 3
        && r.term == 1
        && r.reason == VoteRefusal::AlreadyVoted { voted_for: 1 }));
    assert_eq!(s.winners.get(&1), Some(&1));
}

#[actix_rt::test]
async fn scene_5_stale_leader() {
    let s = walkthrough::stale_leader().await;
    assert!(s.ok, "{}", dump(&s));
    assert!(s.winners.len() >= 2, "a new leader was elected");
}

#[actix_rt::test]
async fn scene_6_heartbeats() {
    let s = walkthrough::heartbeats(Duration::from_secs(2)).await;
    assert!(s.ok, "{}", dump(&s));
}
