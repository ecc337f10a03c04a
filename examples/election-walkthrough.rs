//! The election walkthrough: the scenarios of an introduction to Raft leader election,
//! replayed on real actraft nodes (in-memory transport, whose fault injection steers who
//! hears what first), each printed as a timeline with a verdict.
//!
//! Run it with:
//!
//! ```sh
//! cargo run --release --example election-walkthrough
//! cargo run --release --example election-walkthrough -- --scene 2 --scene 5
//! cargo run --release --example election-walkthrough -- --help
//! ```
//!
//! Nodes are called A, B, C, ... (ids 1, 2, 3, ...). Times are milliseconds since the
//! scene started. The same scenes run as tests (`examples/tests/walkthrough.rs`).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use actraft_examples::walkthrough::{self, Scene};
use clap::Parser;

/// The titles of the scenes, in order (the scenes print their own titles as they run).
const SCENES: [&str; 6] = [
    "start-up",
    "a split vote with four nodes",
    "the up-to-date rule",
    "one vote per term",
    "a stale leader",
    "heartbeats",
];

/// Raft leader election, scene by scene, on real actraft nodes: each scene prints a
/// timeline and a verdict on whether it went as Raft says. Exits 1 if one did not.
#[derive(Debug, Parser)]
#[command(name = "election-walkthrough", version, after_help = scene_list())]
struct Args {
    /// Run only this scene (1-6); repeat the flag for several. All scenes by default.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=6))]
    scene: Vec<u8>,
    /// How long the heartbeat scene (6) watches a quiet cluster, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=600))]
    heartbeat_secs: u64,
}

fn scene_list() -> String {
    let mut s = String::from("Scenes:");
    for (i, title) in SCENES.iter().enumerate() {
        s.push_str(&format!("\n  {}  {title}", i + 1));
    }
    s
}

async fn play(number: u8, heartbeat_window: Duration) -> Scene {
    match number {
        1 => walkthrough::startup().await,
        2 => walkthrough::split_vote().await,
        3 => walkthrough::up_to_date().await,
        4 => walkthrough::one_vote_per_term().await,
        5 => walkthrough::stale_leader().await,
        _ => walkthrough::heartbeats(heartbeat_window).await,
    }
}

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
    let args = Args::parse();
    let mut chosen = args.scene;
    if chosen.is_empty() {
        chosen = (1..=SCENES.len() as u8).collect();
    }
    chosen.sort_unstable();
    chosen.dedup();
    println!("Raft leader election, scene by scene, on real actraft nodes.");
    println!("Scenes 2-5 turn Pre-Vote and CheckQuorum off to show plain Raft; 1 and 6 use the defaults.");
    let window = Duration::from_secs(args.heartbeat_secs);
    let mut scenes = Vec::with_capacity(chosen.len());
    for &number in &chosen {
        scenes.push(play(number, window).await);
    }
    for (number, scene) in chosen.iter().zip(&scenes) {
        show(usize::from(*number), scene);
    }
    let failed = scenes.iter().filter(|s| !s.ok).count();
    println!();
    if failed > 0 {
        println!("{failed} scene(s) did not go as Raft says");
        std::process::exit(1);
    }
    println!("every scene went as Raft says");
}
