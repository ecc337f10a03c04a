//! The FUSE adapter: kernel requests in, [`State`] calls and replies out.
//!
//! Every request takes the one lock on the state, so requests are served one at a time
//! in the order they arrive. After a power cut every request fails with `EIO`, as on a
//! machine whose disk is gone, except those that only let go of something (`release`,
//! `flush`, `forget`).

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::state::{Kind, State, ROOT};

/// How long the kernel may cache names and attributes. Every change goes through this
/// file system, so the kernel's cache never goes stale while mounted.
const TTL: Duration = Duration::from_secs(1);

/// The file system served to the kernel.
pub(crate) struct ForgetfulFs {
    pub(crate) state: Arc<Mutex<State>>,
}

fn to_errno(e: io::Error) -> Errno {
    match e.raw_os_error() {
        Some(code) => Errno::from_i32(code),
        None => Errno::EIO,
    }
}

fn time(secs: i64, nanos: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr(ino: u64, kind: Kind, meta: &std::fs::Metadata) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: meta.len(),
        blocks: meta.blocks(),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: match kind {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
        },
        perm: (meta.mode() & 0o7777) as u16,
        nlink: if kind == Kind::Dir { 2 } else { 1 },
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl ForgetfulFs {
    /// The state, or `EIO` once the power is cut.
    fn powered(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.off {
            Err(Errno::EIO)
        } else {
            Ok(state)
        }
    }

    fn attr_of(state: &State, ino: u64) -> Result<FileAttr, Errno> {
        let kind = state.node(ino).map_err(to_errno)?.kind;
        let meta = state.metadata(ino).map_err(to_errno)?;
        Ok(attr(ino, kind, &meta))
    }

    fn entry(&self, reply: ReplyEntry, f: impl FnOnce(&mut State) -> io::Result<u64>) {
        let result = self.powered().and_then(|mut state| {
            let ino = f(&mut state).map_err(to_errno)?;
            Self::attr_of(&state, ino)
        });
        match result {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut State) -> io::Result<()>) {
        match self
            .powered()
            .and_then(|mut state| f(&mut state).map_err(to_errno))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for ForgetfulFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |state| state.lookup(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .powered()
            .and_then(|state| Self::attr_of(&state, ino.0))
        {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Ownership and times are not modelled: they are accepted and left as they are.
        let result = self.powered().and_then(|mut state| {
            if let Some(mode) = mode {
                let path = state.path(ino.0).map_err(to_errno)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(to_errno)?;
            }
            if let Some(size) = size {
                state
                    .set_len(ino.0, fh.map(|f| f.0), size)
                    .map_err(to_errno)?;
            }
            Self::attr_of(&state, ino.0)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |state| state.mkdir(parent.0, name, mode & !umask));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |state| state.remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |state| state.remove(parent.0, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        self.empty(reply, |state| {
            state.rename(parent.0, name, newparent.0, newname, no_replace)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self
            .powered()
            .and_then(|mut state| state.open(ino.0).map_err(to_errno))
        {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self
            .powered()
            .and_then(|state| state.read(fh.0, offset, size).map_err(to_errno))
        {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self
            .powered()
            .and_then(|mut state| state.write(fh.0, offset, data).map_err(to_errno))
        {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // `close` flushes nothing to the disk: only `fsync` does.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // `fdatasync` and `fsync` both make the contents (and the length) durable.
        self.empty(reply, |state| state.sync_file(ino.0));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self
            .powered()
            .and_then(|state| match state.node(ino.0).map_err(to_errno)?.kind {
                Kind::Dir => Ok(()),
                Kind::File => Err(Errno::ENOTDIR),
            }) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let state = match self.powered() {
            Ok(state) => state,
            Err(e) => return reply.error(e),
        };
        let node = match state.node(ino.0) {
            Ok(node) if node.kind == Kind::Dir => node,
            Ok(_) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(to_errno(e)),
        };
        let parent = node.link.as_ref().map_or(ROOT, |(p, _)| *p);
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (parent, FileType::Directory, OsStr::new("..")),
        ];
        let children = node.children.iter().map(|(name, &child)| {
            let kind = match state.node(child).map(|n| n.kind) {
                Ok(Kind::Dir) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (child, kind, name.as_os_str())
        });
        for (i, (child, kind, name)) in dots
            .into_iter()
            .chain(children)
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |state| state.sync_dir(ino.0));
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.empty(reply, |state| state.node(ino.0).map(|_| ()));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let result = self.powered().and_then(|mut state| {
            let (ino, fh) = state
                .create(parent.0, name, mode & !umask & 0o7777)
                .map_err(to_errno)?;
            Ok((Self::attr_of(&state, ino)?, fh))
        });
        match result {
            Ok((attr, fh)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let keep_size = match mode {
            0 => false,
            nix::libc::FALLOC_FL_KEEP_SIZE => true,
            // Punching holes and zeroing ranges are not modelled.
            _ => return reply.error(Errno::EOPNOTSUPP),
        };
        self.empty(reply, |state| {
            state.allocate(fh.0, offset, length, keep_size)
        });
    }
}
