//! What the power-loss tests share: the test binary's entry point (writer or parent),
//! and one power-cut cycle: start the writer (this binary again), let it work for a
//! random while, cut the power, kill it, collect the last operation it reported
//! durable, and bring the file system back with only what was synced.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use actraft_testfs::{CutReport, Mount, Tear};

use super::log_model::Rng;

/// How one power cut went.
pub struct Cut {
    /// The file system, mounted again with its durable contents.
    pub mount: Mount,
    /// The last operation the writer reported durable (`durable K` on its stdout).
    pub last_durable: Option<u64>,
    /// Whether the unsynced tail of a write was torn.
    pub tear: Tear,
    /// What the cut dropped.
    pub report: CutReport,
}

/// Runs the writer with `child_env=spec`, cuts the power at a random moment (sometimes
/// during its start-up or recovery, mostly while it writes), and power-cycles `mount`.
pub fn cut_during_writer(mount: Mount, child_env: &str, spec: String, rng: &mut Rng) -> Cut {
    let exe = std::env::current_exe().unwrap();
    let mut writer = Command::new(&exe)
        .env(child_env, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let (lines_tx, lines) = mpsc::channel();
    let stdout = writer.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // One cut in four falls in the writer's first 30 ms: its start-up, the store's
    // creation in the first cycle, recovery in the others.
    let wait = if rng.below(4) == 0 {
        rng.below(30_000)
    } else {
        rng.below(200_000)
    };
    std::thread::sleep(Duration::from_micros(wait));
    if let Some(status) = writer.try_wait().unwrap() {
        panic!("the writer died before the power cut ({status})");
    }
    mount.cut_power();
    // After the cut the writer's calls fail and it may stop by itself; kill it anyway.
    let _ = writer.kill();
    writer.wait().unwrap();
    reader.join().unwrap();
    let last_durable = lines
        .try_iter()
        .filter_map(|line| {
            line.strip_prefix("durable ")
                .map(|k| k.parse::<u64>().unwrap())
        })
        .last();
    let tear = if rng.below(2) == 0 {
        Tear::Never
    } else {
        Tear::Random(rng.next())
    };
    let (mount, report) = mount.power_cycle(tear).expect("power cycle");
    Cut {
        mount,
        last_durable,
        tear,
        report,
    }
}

/// The test binary's `main`: the writer when `child_env` is set, otherwise the parent
/// on a fresh forgetting file system (skipped, saying why, where FUSE cannot mount).
/// Honours the name filter `cargo test NAME` passes to every test binary.
pub fn main(name: &str, child_env: &str, child: fn(&str), parent: fn(Mount)) {
    if let Ok(spec) = std::env::var(child_env) {
        child(&spec);
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        println!("{name}: test");
        return;
    }
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        return;
    }
    if let Err(e) = actraft_testfs::available() {
        println!("power-loss: skipped: {e}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (backing, mnt) = (dir.path().join("backing"), dir.path().join("mnt"));
    std::fs::create_dir(&backing).unwrap();
    std::fs::create_dir(&mnt).unwrap();
    match Mount::new(&backing, &mnt) {
        Ok(mount) => parent(mount),
        Err(e) => println!("power-loss: skipped: {e}"),
    }
}

/// A seed from the environment variable `name`, or from the clock.
pub fn seed(name: &str) -> u64 {
    env_u64(name).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    })
}

/// The number in the environment variable `name`, if set.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}
