//! A file system that forgets: test support for proving that a store loses nothing it
//! acknowledged when the machine, not just the process, dies.
//!
//! A killed process leaves its unsynced writes in the operating system's page cache, so
//! a crash test cannot catch a missing `fsync`. [`Mount`] serves a directory through
//! FUSE, passing every read and write through to a backing directory, while keeping
//! track of what has been made durable. [`Mount::cut_power`] simulates a power cut: from
//! that instant every request fails with `EIO` and nothing more becomes durable;
//! [`Mount::power_cycle`] then unmounts, replaces the backing directory's contents with
//! what was durable at the cut, and mounts it again, ready to be reopened.
//!
//! ```no_run
//! use actraft_testfs::{Mount, Tear};
//!
//! # fn main() -> Result<(), actraft_testfs::TestfsError> {
//! # let (backing, mountpoint) = (std::path::Path::new("b"), std::path::Path::new("m"));
//! actraft_testfs::available()?; // or skip the test, saying why
//! let mount = Mount::new(backing, mountpoint)?;
//! // ... a writer works in `mount.path()`, reporting what it saw synced ...
//! mount.cut_power();
//! // ... kill the writer ...
//! let (mount, report) = mount.power_cycle(Tear::Never)?;
//! // ... reopen the store in `mount.path()` and check it ...
//! # drop((mount, report)); Ok(()) }
//! ```
//!
//! # The model
//!
//! - **File contents** become durable only by `fsync` or `fdatasync` of that file (the
//!   two are the same here). Every `write`, `truncate` and size-changing `fallocate`
//!   since the file's last sync is lost at a power cut. With [`Tear::Random`], a random
//!   prefix of those changes survives instead, the last surviving write torn at a random
//!   byte: a disk that wrote part of its queue before the power went.
//! - **Names** (creating, renaming, unlinking a file or directory) become durable only by
//!   `fsync` of the directory holding them: that sync makes the directory's entries as
//!   they are at that moment durable. A file created, written and synced whose directory
//!   was never synced is gone after a cut; a file renamed over another, without a sync of
//!   the directory, is back under its old name (and the file it replaced is back too).
//! - **A power cut is an instant.** Everything synced before [`Mount::cut_power`]
//!   returns survives; every request after it fails with `EIO`, so nothing that happens
//!   afterwards (a writer still running, a store closing) can make more durable or be
//!   reported durable.
//!
//! Snapshot files written the usual way (write a temporary file, `fsync` it, rename it,
//! `fsync` the directory) are covered by these rules as they stand: each of the four
//! steps is modelled.
//!
//! # Limits
//!
//! - Stricter than common file systems in one way and looser in another: on ext4 or XFS,
//!   `fsync` of a new file usually makes its name durable too, and a rename is
//!   journalled as one operation; here only a directory `fsync` makes names durable, and
//!   a rename between two directories is made durable in each directory separately (a
//!   cut between the two syncs can leave the file under both names or neither).
//!   Reordering is limited to what [`Tear`] describes: changes to one file survive as a
//!   prefix, never out of order.
//! - Only regular files and directories. No hard links, symbolic links, device nodes,
//!   extended attributes or hole punching (they fail with an error). Ownership and
//!   times are those of the backing files and are not part of the model.
//! - `sync_file_range`, `syncfs` and `sync` make nothing durable (the first two never
//!   reach a FUSE file system; `sync` does not ask it).
//! - Writes through shared writable memory maps are not modelled (data written through
//!   a map reaches the file system only when the kernel writes the page back). Reading
//!   through maps works.
//! - Locks (`fcntl`, `flock`) are handled by the kernel on the mounted files, as on a
//!   local file system; they end with the process or the mount.
//! - The durable contents of the files changed since the mount and the unsynced changes
//!   are held in memory: it is meant for test-sized data (megabytes, not gigabytes).
//! - Requests are served one at a time, so it is slower than a real disk and says
//!   nothing about performance.
//! - Mounting needs `/dev/fuse` and either root or Debian's `fuse3` package
//!   (`fusermount3`). [`available`] checks by mounting once; tests should skip, saying
//!   why, when it fails.
#![warn(missing_docs)]

mod fuse;
mod mount;
mod rng;
mod state;

pub use mount::{available, Mount, Tear, TestfsError};
pub use state::CutReport;
