//! What the file system knows: the live tree (mirrored by the backing directory), the
//! durable tree (what a power cut leaves), and the unsynced changes between them.
//!
//! Everything here is plain data and plain file IO on the backing directory; the FUSE
//! adapter ([`crate::fuse`]) only translates kernel requests into these calls.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The inode number FUSE uses for the root directory.
pub(crate) const ROOT: u64 = 1;

/// A change to a file's contents not yet made durable by `fsync`.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Bytes written at an offset.
    Write { offset: u64, data: Vec<u8> },
    /// The file cut or extended (with zeros) to a length.
    SetLen(u64),
}

/// File or directory: the only kinds the file system creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// One inode.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    /// Its live name: parent directory and name. `None` once unlinked.
    pub(crate) link: Option<(u64, OsString)>,
    /// Files: the contents as of the last `fsync`. `None` while the live file is
    /// unchanged since the mount, when the backing file itself holds them.
    durable: Option<Vec<u8>>,
    /// Files: changes since the last `fsync`, in order.
    pending: Vec<Change>,
    /// Directories: the live entries.
    pub(crate) children: BTreeMap<OsString, u64>,
    /// Directories: the entries as of the last directory `fsync`.
    durable_children: BTreeMap<OsString, u64>,
}

impl Node {
    fn new(kind: Kind, link: Option<(u64, OsString)>, durable: Option<Vec<u8>>) -> Self {
        Self {
            kind,
            link,
            durable,
            pending: Vec::new(),
            children: BTreeMap::new(),
            durable_children: BTreeMap::new(),
        }
    }
}

/// An open file: the backing file and the inode it belongs to.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(crate) ino: u64,
    pub(crate) file: File,
}

/// What a power cut threw away, for the caller's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files whose unsynced changes were dropped (in part or whole).
    pub files_reverted: usize,
    /// Unsynced bytes written and not kept.
    pub bytes_dropped: u64,
    /// Unsynced writes kept in part, torn at a byte boundary.
    pub torn_writes: usize,
    /// Live names (files or directories) that disappeared because their directory was
    /// not synced after they were created or renamed there.
    pub names_lost: usize,
}

impl std::ops::AddAssign for CutReport {
    /// Adds another cut's losses (for a total over many cuts).
    fn add_assign(&mut self, other: Self) {
        self.files_reverted += other.files_reverted;
        self.bytes_dropped += other.bytes_dropped;
        self.torn_writes += other.torn_writes;
        self.names_lost += other.names_lost;
    }
}

/// The whole state of one mount.
#[derive(Debug)]
pub(crate) struct State {
    backing: PathBuf,
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    pub(crate) handles: HashMap<u64, Handle>,
    next_fh: u64,
    /// Set by a power cut: from then on every request fails with `EIO`.
    pub(crate) off: bool,
}

fn not_found() -> io::Error {
    io::Error::from_raw_os_error(nix::libc::ENOENT)
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Applies `change` to `data` in memory.
fn apply(data: &mut Vec<u8>, change: &Change) {
    match change {
        Change::Write {
            offset,
            data: bytes,
        } => {
            let start = *offset as usize;
            let end = start + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(bytes);
        }
        Change::SetLen(len) => data.resize(*len as usize, 0),
    }
}

impl State {
    /// The state of a fresh mount over `backing`: everything it holds is durable.
    pub(crate) fn load(backing: &Path) -> io::Result<Self> {
        let mut state = Self {
            backing: backing.to_owned(),
            nodes: HashMap::new(),
            next_ino: ROOT + 1,
            handles: HashMap::new(),
            next_fh: 1,
            off: false,
        };
        state.nodes.insert(ROOT, Node::new(Kind::Dir, None, None));
        state.scan(ROOT, backing)?;
        Ok(state)
    }

    fn scan(&mut self, dir: u64, path: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let kind = if kind.is_dir() {
                Kind::Dir
            } else if kind.is_file() {
                Kind::File
            } else {
                // Only files and directories are modelled.
                continue;
            };
            let name = entry.file_name();
            let ino = self.insert(kind, dir, &name, None);
            let node = self.nodes.get_mut(&dir).expect("scanned directory");
            node.durable_children.insert(name, ino);
            if kind == Kind::Dir {
                self.scan(ino, &entry.path())?;
            }
        }
        Ok(())
    }

    /// Adds a node linked as `parent`/`name` (live only) and returns its number.
    fn insert(&mut self, kind: Kind, parent: u64, name: &OsStr, durable: Option<Vec<u8>>) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        let link = Some((parent, name.to_owned()));
        self.nodes.insert(ino, Node::new(kind, link, durable));
        self.nodes
            .get_mut(&parent)
            .expect("parent exists")
            .children
            .insert(name.to_owned(), ino);
        ino
    }

    pub(crate) fn node(&self, ino: u64) -> io::Result<&Node> {
        self.nodes.get(&ino).ok_or_else(not_found)
    }

    /// The live path of `ino` in the backing directory.
    pub(crate) fn path(&self, ino: u64) -> io::Result<PathBuf> {
        let mut names = Vec::new();
        let mut at = ino;
        while at != ROOT {
            let (parent, name) = self.node(at)?.link.as_ref().ok_or_else(not_found)?;
            names.push(name.clone());
            at = *parent;
        }
        let mut path = self.backing.clone();
        path.extend(names.iter().rev());
        Ok(path)
    }

    /// The child `name` of directory `parent`, live.
    pub(crate) fn lookup(&self, parent: u64, name: &OsStr) -> io::Result<u64> {
        let dir = self.node(parent)?;
        if dir.kind != Kind::Dir {
            return Err(errno(nix::libc::ENOTDIR));
        }
        dir.children.get(name).copied().ok_or_else(not_found)
    }

    /// Metadata of the live file or directory, through an open handle once unlinked.
    pub(crate) fn metadata(&self, ino: u64) -> io::Result<std::fs::Metadata> {
        match self.path(ino) {
            Ok(path) => std::fs::symlink_metadata(path),
            Err(e) => match self.handles.values().find(|h| h.ino == ino) {
                Some(h) => h.file.metadata(),
                None => Err(e),
            },
        }
    }

    /// Makes sure the durable contents of file `ino` are held in memory, before its
    /// live contents change or its backing file goes away.
    fn keep_durable(&mut self, ino: u64) -> io::Result<()> {
        let node = self.node(ino)?;
        if node.kind != Kind::File || node.durable.is_some() {
            return Ok(());
        }
        let data = std::fs::read(self.path(ino)?)?;
        self.nodes.get_mut(&ino).expect("checked").durable = Some(data);
        Ok(())
    }

    fn record(&mut self, ino: u64, change: Change) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.pending.push(change);
        }
    }

    fn handle(&self, fh: u64) -> io::Result<&Handle> {
        self.handles.get(&fh).ok_or_else(|| errno(nix::libc::EBADF))
    }

    fn add_handle(&mut self, ino: u64, file: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Handle { ino, file });
        fh
    }

    /// Opens file `ino`: the backing file, for reading and writing whatever the caller
    /// asked (the kernel checks permissions), never in append mode (the kernel gives
    /// every write its offset).
    pub(crate) fn open(&mut self, ino: u64) -> io::Result<u64> {
        if self.node(ino)?.kind != Kind::File {
            return Err(errno(nix::libc::EISDIR));
        }
        let path = self.path(ino)?;
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(self.add_handle(ino, file))
    }

    pub(crate) fn release(&mut self, fh: u64) {
        self.handles.remove(&fh);
    }

    /// Creates file `name` in `parent` and opens it.
    pub(crate) fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
    ) -> io::Result<(u64, u64)> {
        if self.lookup(parent, name).is_ok() {
            return Err(errno(nix::libc::EEXIST));
        }
        let path = self.path(parent)?.join(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)?;
        // A new file: durably it is empty (and, until its directory is synced, absent).
        let ino = self.insert(Kind::File, parent, name, Some(Vec::new()));
        Ok((ino, self.add_handle(ino, file)))
    }

    pub(crate) fn mkdir(&mut self, parent: u64, name: &OsStr, mode: u32) -> io::Result<u64> {
        if self.lookup(parent, name).is_ok() {
            return Err(errno(nix::libc::EEXIST));
        }
        let path = self.path(parent)?.join(name);
        std::fs::DirBuilder::new().mode(mode).create(path)?;
        Ok(self.insert(Kind::Dir, parent, name, None))
    }

    pub(crate) fn read(&self, fh: u64, offset: u64, size: u32) -> io::Result<Vec<u8>> {
        let file = &self.handle(fh)?.file;
        let mut buf = vec![0; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], offset + done as u64)? {
                0 => break,
                n => done += n,
            }
        }
        buf.truncate(done);
        Ok(buf)
    }

    pub(crate) fn write(&mut self, fh: u64, offset: u64, data: &[u8]) -> io::Result<()> {
        let ino = self.handle(fh)?.ino;
        self.keep_durable(ino)?;
        self.handle(fh)?.file.write_all_at(data, offset)?;
        self.record(
            ino,
            Change::Write {
                offset,
                data: data.to_vec(),
            },
        );
        Ok(())
    }

    /// Sets the length of file `ino` (`truncate`, `ftruncate`, `open(O_TRUNC)`).
    pub(crate) fn set_len(&mut self, ino: u64, fh: Option<u64>, len: u64) -> io::Result<()> {
        if self.node(ino)?.kind != Kind::File {
            return Err(errno(nix::libc::EISDIR));
        }
        self.keep_durable(ino)?;
        match fh.and_then(|fh| self.handles.get(&fh)) {
            Some(h) => h.file.set_len(len)?,
            None => OpenOptions::new()
                .write(true)
                .open(self.path(ino)?)?
                .set_len(len)?,
        }
        self.record(ino, Change::SetLen(len));
        Ok(())
    }

    /// `fallocate`: with `keep_size` only space is reserved and nothing changes in the
    /// model; without it the file may grow, with zeros.
    pub(crate) fn allocate(
        &mut self,
        fh: u64,
        offset: u64,
        len: u64,
        keep_size: bool,
    ) -> io::Result<()> {
        use nix::fcntl::{fallocate, FallocateFlags};
        let ino = self.handle(fh)?.ino;
        let flags = if keep_size {
            FallocateFlags::FALLOC_FL_KEEP_SIZE
        } else {
            self.keep_durable(ino)?;
            FallocateFlags::empty()
        };
        let file = &self.handle(fh)?.file;
        let before = file.metadata()?.len();
        fallocate(file, flags, offset as i64, len as i64).map_err(io::Error::from)?;
        let after = file.metadata()?.len();
        if after != before {
            self.record(ino, Change::SetLen(after));
        }
        Ok(())
    }

    /// `fsync`/`fdatasync` of file `ino`: its contents become durable.
    pub(crate) fn sync_file(&mut self, ino: u64) -> io::Result<()> {
        let node = self.nodes.get_mut(&ino).ok_or_else(not_found)?;
        if node.pending.is_empty() {
            return Ok(());
        }
        let durable = node
            .durable
            .as_mut()
            .expect("changed files hold their durable contents");
        for change in node.pending.drain(..) {
            apply(durable, &change);
        }
        Ok(())
    }

    /// `fsync` of directory `ino`: its entries as they are now become durable.
    pub(crate) fn sync_dir(&mut self, ino: u64) -> io::Result<()> {
        let node = self.nodes.get_mut(&ino).ok_or_else(not_found)?;
        if node.kind != Kind::Dir {
            return Err(errno(nix::libc::ENOTDIR));
        }
        let dropped: Vec<u64> = node
            .durable_children
            .values()
            .filter(|i| !node.children.values().any(|c| c == *i))
            .copied()
            .collect();
        node.durable_children = node.children.clone();
        for ino in dropped {
            self.forget_if_unreachable(ino);
        }
        Ok(())
    }

    /// Drops an inode nothing refers to any more (no live name, no durable name, no
    /// open handle), so deleted files do not pile up in memory.
    fn forget_if_unreachable(&mut self, ino: u64) {
        let Some(node) = self.nodes.get(&ino) else {
            return;
        };
        if node.link.is_some()
            || self.handles.values().any(|h| h.ino == ino)
            || self
                .nodes
                .values()
                .any(|n| n.durable_children.values().any(|c| *c == ino))
        {
            return;
        }
        let node = self.nodes.remove(&ino).expect("present");
        for child in node.durable_children.values() {
            self.forget_if_unreachable(*child);
        }
    }

    /// Removes the live name `parent`/`name` of a file (`dir == false`) or an empty
    /// directory.
    pub(crate) fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> io::Result<()> {
        let ino = self.lookup(parent, name)?;
        let node = self.node(ino)?;
        match (node.kind, dir) {
            (Kind::Dir, false) => return Err(errno(nix::libc::EISDIR)),
            (Kind::File, true) => return Err(errno(nix::libc::ENOTDIR)),
            (Kind::Dir, true) if !node.children.is_empty() => {
                return Err(errno(nix::libc::ENOTEMPTY))
            }
            _ => {}
        }
        self.keep_durable(ino)?;
        let path = self.path(ino)?;
        if dir {
            std::fs::remove_dir(path)?;
        } else {
            std::fs::remove_file(path)?;
        }
        self.unlink(ino);
        Ok(())
    }

    fn unlink(&mut self, ino: u64) {
        let node = self.nodes.get_mut(&ino).expect("linked node");
        if let Some((parent, name)) = node.link.take() {
            self.nodes
                .get_mut(&parent)
                .expect("parent of a linked node")
                .children
                .remove(&name);
        }
        self.forget_if_unreachable(ino);
    }

    /// Renames `parent`/`name` to `new_parent`/`new_name`, replacing what is there
    /// unless `no_replace`.
    pub(crate) fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> io::Result<()> {
        let ino = self.lookup(parent, name)?;
        if self.node(new_parent)?.kind != Kind::Dir {
            return Err(errno(nix::libc::ENOTDIR));
        }
        let replaced = self.lookup(new_parent, new_name).ok();
        if let Some(old) = replaced {
            if old == ino {
                return Ok(());
            }
            if no_replace {
                return Err(errno(nix::libc::EEXIST));
            }
            let (kind, target) = (self.node(ino)?.kind, self.node(old)?);
            match (kind, target.kind) {
                (Kind::File, Kind::Dir) => return Err(errno(nix::libc::EISDIR)),
                (Kind::Dir, Kind::File) => return Err(errno(nix::libc::ENOTDIR)),
                (Kind::Dir, Kind::Dir) if !target.children.is_empty() => {
                    return Err(errno(nix::libc::ENOTEMPTY))
                }
                _ => {}
            }
            self.keep_durable(old)?;
        }
        // A directory cannot move into itself or below itself.
        let mut at = new_parent;
        while at != ROOT {
            if at == ino {
                return Err(errno(nix::libc::EINVAL));
            }
            at = self.node(at)?.link.as_ref().ok_or_else(not_found)?.0;
        }
        let (from, to) = (self.path(ino)?, self.path(new_parent)?.join(new_name));
        std::fs::rename(from, to)?;
        if let Some(old) = replaced {
            self.unlink(old);
        }
        let node = self.nodes.get_mut(&ino).expect("looked up");
        let (old_parent, old_name) = node
            .link
            .replace((new_parent, new_name.to_owned()))
            .expect("linked");
        self.nodes
            .get_mut(&old_parent)
            .expect("parent")
            .children
            .remove(&old_name);
        self.nodes
            .get_mut(&new_parent)
            .expect("checked")
            .children
            .insert(new_name.to_owned(), ino);
        Ok(())
    }
}

#[path = "image.rs"]
mod image;
pub(crate) use image::write_image;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
