//! The election walkthrough: the scenarios of an introduction to Raft leader election,
//! replayed on real actraft nodes (in-memory transport, whose fault injection steers who
//! hears what first), each printed as a timeline with a verdict.
//!
//! Run it with:
//!
//! ```sh
//! cargo run --release --example election-walkthrough
//! ```
//!
//! Nodes are called A, B, C, ... (ids 1, 2, 3, ...). Times are milliseconds since the
//! scene started. The same scenes run as tests (`examples/tests/walkthrough.rs`).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use actraft_examples::walkthrough::{self, Scene};

fn show(number: usize, scene: &Scene) {
    println!();
    println!("== Scene {number}: {}", scene.title);
    println!(
        "{:>9}  {:<4} {:<13} {:>4}  event",
        "time", "node", "role", "term"
    );
    for row in &scene.timeline {
        if row.node == '*' {
            println!("{:>7.1}ms  -- {}", row.at.as_secs_f64() * 1e3, row.what);
        } else {
            println!(
                "{:>7.1}ms  {:<4} {:<13} {:>4}  {}",
                row.at.as_secs_f64() * 1e3,
                row.node,
                row.role.to_string(),
                row.term,
                row.what
            );
        }
    }
    let mark = if scene.ok {
        "as Raft says"
    } else {
        "NOT as Raft says"
    };
    println!("verdict ({mark}): {}", scene.verdict);
}

#[actix_rt::main]
async fn main() {
    actraft_examples::init_tracing();
    println!("Raft leader election, scene by scene, on real actraft nodes.");
    println!("Scenes 2-5 turn Pre-Vote and CheckQuorum off to show plain Raft; 1 and 6 use the defaults.");
    let scenes = [
        walkthrough::startup().await,
        walkthrough::split_vote().await,
        walkthrough::up_to_date().await,
        walkthrough::one_vote_per_term().await,
        walkthrough::stale_leader().await,
        walkthrough::heartbeats(Duration::from_secs(3)).await,
    ];
    for (i, scene) in scenes.iter().enumerate() {
        show(i + 1, scene);
    }
    let failed = scenes.iter().filter(|s| !s.ok).count();
    println!();
    if failed > 0 {
        println!("{failed} scene(s) did not go as Raft says");
        std::process::exit(1);
    }
    println!("every scene went as Raft says");
}
