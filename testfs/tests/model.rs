//! The forgetting file system keeps exactly what its model says survives a power cut.
//!
//! Each test mounts a fresh file system, does file operations through the mount the way
//! a program would, cuts the power and looks at what is left. Where FUSE cannot be
//! mounted, each test says so and returns.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use actraft_testfs::{Mount, Tear};

struct Fixture {
    _dir: tempfile::TempDir,
    mount: Mount,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.mount.path().join(name)
    }

    /// Cuts the power, remounts, and returns the new fixture.
    fn cycle(self, tear: Tear) -> (Self, actraft_testfs::CutReport) {
        let (mount, report) = self.mount.power_cycle(tear).expect("power cycle");
        (
            Self {
                _dir: self._dir,
                mount,
            },
            report,
        )
    }
}

fn mount(test: &str) -> Option<Fixture> {
    if let Err(e) = actraft_testfs::available() {
        eprintln!("testfs {test}: skipped: {e}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (backing, mnt) = (dir.path().join("backing"), dir.path().join("mnt"));
    fs::create_dir(&backing).unwrap();
    fs::create_dir(&mnt).unwrap();
    let mount = Mount::new(&backing, &mnt).expect("mount");
    Some(Fixture { _dir: dir, mount })
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn write_synced(path: &Path, data: &[u8]) {
    let mut f = File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_data().unwrap();
}

#[test]
fn synced_file_in_synced_directory_survives() {
    let Some(fx) = mount("synced_file_in_synced_directory_survives") else {
        return;
    };
    write_synced(&fx.path("a"), b"hello");
    sync_dir(fx.mount.path());
    let (fx, report) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("a")).unwrap(), b"hello");
    assert_eq!(report.files_reverted, 0);
}

#[test]
fn a_new_name_needs_its_directory_synced() {
    let Some(fx) = mount("a_new_name_needs_its_directory_synced") else {
        return;
    };
    write_synced(&fx.path("a"), b"hello");
    let (fx, report) = fx.cycle(Tear::Never);
    assert!(!fx.path("a").exists(), "the file was never named durably");
    assert_eq!(report.names_lost, 1);
}

#[test]
fn unsynced_contents_are_lost_synced_ones_kept() {
    let Some(fx) = mount("unsynced_contents_are_lost_synced_ones_kept") else {
        return;
    };
    let mut f = File::create(fx.path("log")).unwrap();
    sync_dir(fx.mount.path());
    f.write_all(b"one,").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"two,").unwrap();
    drop(f);
    // Closing syncs nothing; neither does reading it back.
    assert_eq!(fs::read(fx.path("log")).unwrap(), b"one,two,");
    let (fx, report) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("log")).unwrap(), b"one,");
    assert_eq!(report.files_reverted, 1);
    assert_eq!(report.bytes_dropped, 4);
}

#[test]
fn a_named_file_never_synced_comes_back_empty() {
    let Some(fx) = mount("a_named_file_never_synced_comes_back_empty") else {
        return;
    };
    fs::write(fx.path("f"), b"data").unwrap();
    sync_dir(fx.mount.path());
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("f")).unwrap(), b"");
}

#[test]
fn truncation_is_a_change_like_any_other() {
    let Some(fx) = mount("truncation_is_a_change_like_any_other") else {
        return;
    };
    write_synced(&fx.path("f"), b"0123456789");
    sync_dir(fx.mount.path());
    let f = OpenOptions::new().write(true).open(fx.path("f")).unwrap();
    f.set_len(3).unwrap();
    drop(f);
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("f")).unwrap(), b"0123456789");
    let f = OpenOptions::new().write(true).open(fx.path("f")).unwrap();
    f.set_len(3).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("f")).unwrap(), b"012");
}

/// Write a temporary file, sync it, rename it over the old one, sync the directory: the
/// way snapshot files are made durable. Each missing step shows.
#[test]
fn replace_by_rename_is_durable_only_after_the_directory_sync() {
    let Some(fx) = mount("replace_by_rename_is_durable_only_after_the_directory_sync") else {
        return;
    };
    write_synced(&fx.path("snap"), b"old");
    sync_dir(fx.mount.path());

    // Renamed but the directory not synced: the old file under its name, no temp file.
    write_synced(&fx.path("snap.tmp"), b"new");
    fs::rename(fx.path("snap.tmp"), fx.path("snap")).unwrap();
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("snap")).unwrap(), b"old");
    assert!(!fx.path("snap.tmp").exists());

    // The temporary file not synced: the new name holds an empty file.
    fs::write(fx.path("snap.tmp"), b"new").unwrap();
    fs::rename(fx.path("snap.tmp"), fx.path("snap")).unwrap();
    sync_dir(fx.mount.path());
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("snap")).unwrap(), b"");

    // All four steps: the new contents.
    write_synced(&fx.path("snap.tmp"), b"new");
    fs::rename(fx.path("snap.tmp"), fx.path("snap")).unwrap();
    sync_dir(fx.mount.path());
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("snap")).unwrap(), b"new");
    assert_eq!(fs::read_dir(fx.mount.path()).unwrap().count(), 1);
}

#[test]
fn an_unlink_needs_its_directory_synced() {
    let Some(fx) = mount("an_unlink_needs_its_directory_synced") else {
        return;
    };
    write_synced(&fx.path("gone"), b"still here");
    sync_dir(fx.mount.path());
    fs::remove_file(fx.path("gone")).unwrap();
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("gone")).unwrap(), b"still here");
    fs::remove_file(fx.path("gone")).unwrap();
    sync_dir(fx.mount.path());
    let (fx, _) = fx.cycle(Tear::Never);
    assert!(!fx.path("gone").exists());
}

#[test]
fn directories_follow_the_same_rules() {
    let Some(fx) = mount("directories_follow_the_same_rules") else {
        return;
    };
    fs::create_dir(fx.path("d")).unwrap();
    write_synced(&fx.path("d/f"), b"x");
    sync_dir(&fx.path("d"));
    // `d` itself was never named durably.
    let (fx, _) = fx.cycle(Tear::Never);
    assert!(!fx.path("d").exists());
    fs::create_dir(fx.path("d")).unwrap();
    write_synced(&fx.path("d/f"), b"x");
    sync_dir(&fx.path("d"));
    sync_dir(fx.mount.path());
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("d/f")).unwrap(), b"x");
}

#[test]
fn after_the_cut_everything_fails() {
    let Some(fx) = mount("after_the_cut_everything_fails") else {
        return;
    };
    let mut f = File::create(fx.path("f")).unwrap();
    sync_dir(fx.mount.path());
    f.write_all(b"before").unwrap();
    fx.mount.cut_power();
    assert!(f.sync_data().is_err(), "a sync after the cut must fail");
    assert!(f.write_all(b"after").is_err());
    drop(f);
    let (fx, _) = fx.cycle(Tear::Never);
    assert_eq!(fs::read(fx.path("f")).unwrap(), b"");
}

#[test]
fn torn_writes_keep_a_prefix_of_the_unsynced_changes() {
    let Some(mut fx) = mount("torn_writes_keep_a_prefix_of_the_unsynced_changes") else {
        return;
    };
    let full: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
    let mut torn = 0;
    for seed in 0..20u64 {
        let mut f = File::create(fx.path("f")).unwrap();
        sync_dir(fx.mount.path());
        f.write_all(&full[..1000]).unwrap();
        f.sync_data().unwrap();
        for chunk in full[1000..].chunks(500) {
            f.write_all(chunk).unwrap();
        }
        drop(f);
        let (next, report) = fx.cycle(Tear::Random(seed));
        fx = next;
        let got = fs::read(fx.path("f")).unwrap();
        assert!(got.len() >= 1000, "seed {seed}: synced bytes lost");
        assert_eq!(got[..], full[..got.len()], "seed {seed}: not a prefix");
        torn += report.torn_writes;
    }
    assert!(torn > 0, "twenty cuts tore no write");
}
