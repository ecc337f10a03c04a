//! The model without FUSE: the same calls the adapter makes, on a backing directory.

use std::ffi::OsStr;

use super::*;

fn fresh() -> (tempfile::TempDir, State) {
    let dir = tempfile::tempdir().unwrap();
    let state = State::load(dir.path()).unwrap();
    (dir, state)
}

fn image(state: &State, tear: Option<u64>) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    state.durable_image(tear).unwrap().0.into_iter().collect()
}

fn file(data: &[u8]) -> Option<Vec<u8>> {
    Some(data.to_vec())
}

#[test]
fn only_synced_contents_under_synced_names_survive() {
    let (_dir, mut s) = fresh();
    let (a, fa) = s.create(ROOT, OsStr::new("a"), 0o644).unwrap();
    let (_, fb) = s.create(ROOT, OsStr::new("b"), 0o644).unwrap();
    s.write(fa, 0, b"synced").unwrap();
    s.write(fb, 0, b"never").unwrap();
    s.sync_file(a).unwrap();
    s.sync_dir(ROOT).unwrap();
    s.write(fa, 6, b" and not").unwrap();
    let (_, fc) = s.create(ROOT, OsStr::new("c"), 0o644).unwrap();
    s.write(fc, 0, b"unnamed").unwrap();
    let img = image(&s, None);
    assert_eq!(img.len(), 2);
    assert_eq!(img[Path::new("a")], file(b"synced"));
    assert_eq!(img[Path::new("b")], file(b""));
    let (_, report) = s.durable_image(None).unwrap();
    assert_eq!(report.names_lost, 1);
    // Counted in the files that survive; "c" is gone whole.
    assert_eq!(report.bytes_dropped, 8 + 5);
}

#[test]
fn a_file_present_at_mount_is_durable_until_changed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old"), b"from before").unwrap();
    let mut s = State::load(dir.path()).unwrap();
    assert_eq!(image(&s, None)[Path::new("old")], file(b"from before"));
    let ino = s.lookup(ROOT, OsStr::new("old")).unwrap();
    let fh = s.open(ino).unwrap();
    s.write(fh, 0, b"FROM").unwrap();
    s.set_len(ino, Some(fh), 4).unwrap();
    assert_eq!(std::fs::read(dir.path().join("old")).unwrap(), b"FROM");
    assert_eq!(image(&s, None)[Path::new("old")], file(b"from before"));
    s.sync_file(ino).unwrap();
    assert_eq!(image(&s, None)[Path::new("old")], file(b"FROM"));
}

#[test]
fn rename_and_unlink_take_effect_at_the_directory_sync() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("snap"), b"old").unwrap();
    let mut s = State::load(dir.path()).unwrap();
    let (tmp, fh) = s.create(ROOT, OsStr::new("snap.tmp"), 0o644).unwrap();
    s.write(fh, 0, b"new").unwrap();
    s.sync_file(tmp).unwrap();
    s.rename(
        ROOT,
        OsStr::new("snap.tmp"),
        ROOT,
        OsStr::new("snap"),
        false,
    )
    .unwrap();
    // The replaced file's contents were kept before its backing file went away.
    assert_eq!(std::fs::read(dir.path().join("snap")).unwrap(), b"new");
    let img = image(&s, None);
    assert_eq!(img.len(), 1);
    assert_eq!(img[Path::new("snap")], file(b"old"));
    s.sync_dir(ROOT).unwrap();
    assert_eq!(image(&s, None)[Path::new("snap")], file(b"new"));
    s.remove(ROOT, OsStr::new("snap"), false).unwrap();
    assert_eq!(image(&s, None)[Path::new("snap")], file(b"new"));
    s.sync_dir(ROOT).unwrap();
    assert!(image(&s, None).is_empty());
}

#[test]
fn tearing_keeps_a_prefix_of_the_changes_in_order() {
    let (_dir, mut s) = fresh();
    let (ino, fh) = s.create(ROOT, OsStr::new("f"), 0o644).unwrap();
    s.sync_dir(ROOT).unwrap();
    let full: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    for (i, chunk) in full.chunks(300).enumerate() {
        s.write(fh, (i * 300) as u64, chunk).unwrap();
    }
    let mut lengths = std::collections::BTreeSet::new();
    for seed in 0..50 {
        let got = image(&s, Some(seed))[Path::new("f")].clone().unwrap();
        assert_eq!(got[..], full[..got.len()], "seed {seed}");
        lengths.insert(got.len());
    }
    assert!(lengths.len() > 10, "tears land in many places: {lengths:?}");
    s.sync_file(ino).unwrap();
    assert_eq!(image(&s, Some(7))[Path::new("f")], Some(full));
}

#[test]
fn write_image_replaces_the_backing_contents() {
    let (dir, mut s) = fresh();
    let d = s.mkdir(ROOT, OsStr::new("d"), 0o755).unwrap();
    let (f, fh) = s.create(d, OsStr::new("f"), 0o644).unwrap();
    s.write(fh, 0, b"x").unwrap();
    s.sync_file(f).unwrap();
    s.sync_dir(d).unwrap();
    s.sync_dir(ROOT).unwrap();
    s.create(ROOT, OsStr::new("lost"), 0o644).unwrap();
    let (img, _) = s.durable_image(None).unwrap();
    write_image(dir.path(), &img).unwrap();
    assert_eq!(std::fs::read(dir.path().join("d/f")).unwrap(), b"x");
    assert!(!dir.path().join("lost").exists());
    // Mounted again, all of it is durable.
    let again = State::load(dir.path()).unwrap();
    assert_eq!(image(&again, None), img.into_iter().collect());
}
