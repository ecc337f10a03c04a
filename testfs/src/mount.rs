//! Mounting, power cuts and unmounting.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, MountOption};
use thiserror::Error;

use crate::fuse::ForgetfulFs;
use crate::state::{write_image, CutReport, State};

/// Why mounting, cutting the power or unmounting failed.
#[derive(Debug, Error)]
pub enum TestfsError {
    /// FUSE cannot be used here: no `/dev/fuse`, no permission to mount, or no
    /// `fusermount3` for an unprivileged user. Tests skip, saying so.
    #[error("FUSE is not available: {0}")]
    Unavailable(String),
    /// The backing directory could not be read or rewritten.
    #[error("backing directory {path}: {source}")]
    Backing {
        /// The backing directory.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Unmounting failed, most likely because a file on the mount is still open.
    #[error("unmounting {path} failed: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// Whether the unsynced changes of a file are dropped whole at a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tear {
    /// Every unsynced change is dropped.
    Never,
    /// Each file keeps a random prefix of its unsynced changes, the last write of that
    /// prefix torn at a random byte. The seed makes the choice repeatable.
    Random(u64),
}

/// A mounted forgetting file system. Dropping it unmounts it and keeps the backing
/// directory as it is (as after a clean shutdown that flushed everything).
pub struct Mount {
    session: Option<BackgroundSession>,
    state: Arc<Mutex<State>>,
    backing: PathBuf,
    mountpoint: PathBuf,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("backing", &self.backing)
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

fn backing_error(path: &Path) -> impl FnOnce(io::Error) -> TestfsError + '_ {
    move |source| TestfsError::Backing {
        path: path.to_owned(),
        source,
    }
}

impl Mount {
    /// Mounts `backing` (an existing directory) at `mountpoint` (an existing, empty
    /// directory). Everything `backing` holds counts as durable.
    pub fn new(
        backing: impl AsRef<Path>,
        mountpoint: impl AsRef<Path>,
    ) -> Result<Self, TestfsError> {
        let (backing, mountpoint) = (backing.as_ref(), mountpoint.as_ref());
        if !Path::new("/dev/fuse").exists() {
            return Err(TestfsError::Unavailable("/dev/fuse does not exist".into()));
        }
        let backing = backing.canonicalize().map_err(backing_error(backing))?;
        let state = State::load(&backing).map_err(backing_error(&backing))?;
        let state = Arc::new(Mutex::new(state));
        let fs = ForgetfulFs {
            state: Arc::clone(&state),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("actraft-testfs".into()),
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        let session = fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| {
            let hint = if which("fusermount3") {
                ""
            } else {
                " (and fusermount3 is not installed: Debian package fuse3)"
            };
            TestfsError::Unavailable(format!("mounting {}: {e}{hint}", mountpoint.display()))
        })?;
        tracing::debug!(backing = %backing.display(), mountpoint = %mountpoint.display(), "mounted");
        Ok(Self {
            session: Some(session),
            state,
            backing,
            mountpoint: mountpoint.to_owned(),
        })
    }

    /// Where the file system is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing directory.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Cuts the power, now: what is durable stays so, every later request fails with
    /// `EIO`. Kill or stop whatever uses the mount afterwards, then call
    /// [`power_cycle`](Self::power_cycle).
    pub fn cut_power(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).off = true;
    }

    /// Cuts the power (if [`cut_power`](Self::cut_power) did not already), unmounts,
    /// replaces the backing directory's contents with what was durable at the cut, and
    /// mounts it again at the same place. Every file on the mount must be closed first:
    /// kill the processes using it, close the stores.
    pub fn power_cycle(mut self, tear: Tear) -> Result<(Mount, CutReport), TestfsError> {
        self.cut_power();
        self.unmount_now()?;
        let report = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let seed = match tear {
                Tear::Never => None,
                Tear::Random(seed) => Some(seed),
            };
            let (image, report) = state
                .durable_image(seed)
                .map_err(backing_error(&self.backing))?;
            write_image(&self.backing, &image).map_err(backing_error(&self.backing))?;
            report
        };
        tracing::debug!(?report, "power cycled");
        let mount = Mount::new(&self.backing, &self.mountpoint)?;
        Ok((mount, report))
    }

    /// Unmounts cleanly, keeping everything written (synced or not) in the backing
    /// directory.
    pub fn unmount(mut self) -> Result<(), TestfsError> {
        self.unmount_now()
    }

    fn unmount_now(&mut self) -> Result<(), TestfsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // A process killed a moment ago may still hold the mount for a little while
        // (the kernel closes its files as it tears it down): retry briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match unmount_once(&self.mountpoint) {
                Ok(()) => break,
                Err(e)
                    if e.raw_os_error() == Some(nix::libc::EBUSY) && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(source) => {
                    self.session = Some(session);
                    return Err(TestfsError::Unmount {
                        path: self.mountpoint.clone(),
                        source,
                    });
                }
            }
        }
        // The kernel ends the session once unmounted; the thread then returns.
        if let Err(e) = session.join() {
            tracing::warn!(error = %e, "the FUSE session ended with an error");
        }
        Ok(())
    }
}

/// One `umount` of `mountpoint`, through `fusermount3 -u` when not privileged.
fn unmount_once(mountpoint: &Path) -> io::Result<()> {
    match nix::mount::umount(mountpoint) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            let out = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg(mountpoint)
                .output()?;
            if out.status.success() {
                Ok(())
            } else if String::from_utf8_lossy(&out.stderr).contains("busy") {
                Err(io::Error::from_raw_os_error(nix::libc::EBUSY))
            } else {
                Err(io::Error::other(
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ))
            }
        }
        Err(e) => Err(e.into()),
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_now() {
            // Files still open (a test that failed half-way): detach the mount so it
            // goes away once they are closed, rather than leave it behind.
            tracing::warn!(error = %e, "could not unmount the forgetting file system; detaching it");
            let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Checks that a forgetting file system can be mounted here, by mounting one over an
/// empty temporary directory, writing and syncing a file through it, and unmounting.
/// The error says why not (no `/dev/fuse`, not permitted, `fusermount3` missing).
///
/// The probe runs once per process; later calls return its result.
pub fn available() -> Result<(), TestfsError> {
    static PROBED: OnceLock<Result<(), String>> = OnceLock::new();
    PROBED
        .get_or_init(|| {
            probe().map_err(|e| match e {
                TestfsError::Unavailable(reason) => reason,
                other => other.to_string(),
            })
        })
        .clone()
        .map_err(TestfsError::Unavailable)
}

fn probe() -> Result<(), TestfsError> {
    let base = std::env::temp_dir().join(format!("actraft-testfs-probe-{}", std::process::id()));
    let (backing, mountpoint) = (base.join("backing"), base.join("mnt"));
    let result = (|| {
        for dir in [&backing, &mountpoint] {
            std::fs::create_dir_all(dir).map_err(backing_error(dir))?;
        }
        let mount = Mount::new(&backing, &mountpoint)?;
        let check = || -> io::Result<()> {
            let file = mountpoint.join("probe");
            std::fs::write(&file, b"probe")?;
            std::fs::File::open(&file)?.sync_all()?;
            if std::fs::read(&file)? != b"probe" {
                return Err(io::Error::other("read back something else"));
            }
            Ok(())
        };
        let checked =
            check().map_err(|e| TestfsError::Unavailable(format!("a probe write failed: {e}")));
        mount.unmount()?;
        checked
    })();
    let _ = std::fs::remove_dir_all(&base);
    result
}
