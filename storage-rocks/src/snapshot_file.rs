//! Snapshots in files: [`FileSnapshotStore`], the [`SnapshotStore`] that goes with a
//! RocksDB log.
//!
//! The store keeps one file, `snapshot`, in a directory of its own (by convention
//! beside the RocksDB directory: [`FileSnapshotStore::beside`]). A new snapshot is
//! written to `snapshot.tmp.<n>`, synced, renamed over `snapshot`, and the directory is
//! synced, so after a crash at any point the directory holds the old snapshot or the new
//! one, whole. Leftover temporary files are removed at open.
//!
//! # File format (version 2)
//!
//! ```text
//! magic      8 bytes  "ACTRSNP2" (the format version is its last byte)
//! meta_len   u32 BE
//! meta       meta_len bytes: last index u64 BE, last term u64 BE, then the cluster
//!            configuration as the log stores it (`layout::encode_config`)
//! meta_crc   u32 BE   CRC-32C of meta
//! data       the snapshot's bytes
//! data_len   u64 BE
//! data_crc   u32 BE   CRC-32C of data
//! end        8 bytes  "ACTREND1"
//! ```
//!
//! Version 1 (magic `"ACTRSNP1"`) had a plain member list in place of the
//! configuration (member count u32 BE, members u64 BE each); it is still read, as a
//! stable configuration of those voters. New snapshots are always written in version 2.
//!
//! Open reads the whole file once to check both checksums and refuses a torn or corrupt
//! snapshot with [`SnapshotFileError::Corrupt`]; a reader checks the data checksum again
//! as it streams, and fails at the end if the file changed under it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actraft::core::LogId;
use actraft::snapshot::{crc32c, SnapshotWriter, StoredSnapshot};
use actraft::{SnapshotChunks, SnapshotError, SnapshotMeta, SnapshotStore};
use bytes::Bytes;
use thiserror::Error;

const MAGIC: &[u8; 8] = b"ACTRSNP2";
/// The version 1 magic, still read.
const MAGIC_V1: &[u8; 8] = b"ACTRSNP1";
const END: &[u8; 8] = b"ACTREND1";
const FILE: &str = "snapshot";
const TMP_PREFIX: &str = "snapshot.tmp.";
const TRAILER_LEN: u64 = 8 + 4 + 8;
/// Upper bound on the encoded metadata, so a corrupt length is caught before allocating.
const MAX_META_LEN: u32 = 1 << 20;

/// Why a snapshot directory could not be opened.
#[derive(Debug, Error)]
pub enum SnapshotFileError {
    /// The stored snapshot is torn or fails its checksum.
    #[error("snapshot {path} is corrupt: {reason}")]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file system failed.
    #[error("snapshot directory {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl From<SnapshotFileError> for SnapshotError {
    fn from(e: SnapshotFileError) -> Self {
        match e {
            SnapshotFileError::Corrupt { .. } => SnapshotError::Corrupt(e.to_string()),
            SnapshotFileError::Io { source, .. } => SnapshotError::Io(source),
        }
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SnapshotFileError + '_ {
    move |source| SnapshotFileError::Io {
        path: path.to_owned(),
        source,
    }
}

struct Inner {
    dir: PathBuf,
    latest: Mutex<Option<Located>>,
    next_tmp: AtomicU64,
}

/// The stored snapshot's metadata and where its data lies in the file.
#[derive(Clone)]
struct Located {
    meta: SnapshotMeta,
    data_start: u64,
    data_len: u64,
    data_crc: u32,
}

/// A [`SnapshotStore`] in a directory. Clones share one store. Every method blocks on
/// the file system: call them off the node's thread.
#[derive(Clone)]
pub struct FileSnapshotStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileSnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSnapshotStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl FileSnapshotStore {
    /// The conventional snapshot directory for a RocksDB store at `db_dir`:
    /// `<db_dir>.snapshots`, beside it (RocksDB's directory holds only its own files).
    pub fn beside(db_dir: impl AsRef<Path>) -> PathBuf {
        let mut name = db_dir.as_ref().as_os_str().to_owned();
        name.push(".snapshots");
        PathBuf::from(name)
    }

    /// Opens (creating if missing) the snapshot directory `dir`, removes leftover
    /// temporary files, and verifies the stored snapshot, if any.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, SnapshotFileError> {
        let dir = dir.as_ref().to_owned();
        // Its name in its parent is synced too: a snapshot committed into a directory
        // whose own entry a power cut forgets would be lost with it.
        crate::open::create_dir_durably(&dir).map_err(io_at(&dir))?;
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let entry = entry.map_err(io_at(&dir))?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                fs::remove_file(entry.path()).map_err(io_at(&entry.path()))?;
            }
        }
        sync_dir(&dir)?;
        let path = dir.join(FILE);
        let latest = match File::open(&path) {
            Ok(file) => Some(verify(&path, file)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_at(&path)(e)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                latest: Mutex::new(latest),
                next_tmp: AtomicU64::new(0),
            }),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The stored snapshot's data size in bytes (0 without one).
    pub fn size(&self) -> u64 {
        self.located().map_or(0, |l| l.data_len)
    }

    fn located(&self) -> Option<Located> {
        self.inner
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn sync_dir(dir: &Path) -> Result<(), SnapshotFileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

fn encode_meta(meta: &SnapshotMeta) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&meta.last_included.index.to_be_bytes());
    out.extend_from_slice(&meta.last_included.term.to_be_bytes());
    crate::layout::encode_config(&meta.membership, &mut out);
    out
}

fn decode_meta(bytes: &[u8], v1: bool) -> Option<SnapshotMeta> {
    let u64_at = |at: usize| Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let index = u64_at(0)?;
    let term = u64_at(8)?;
    if !v1 {
        return Some(SnapshotMeta {
            last_included: LogId::new(term, index),
            membership: crate::layout::decode_config(bytes.get(16..)?)?,
        });
    }
    let count = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?) as usize;
    if bytes.len() != 20 + 8 * count {
        return None;
    }
    let members = (0..count)
        .map(|i| u64_at(20 + 8 * i))
        .collect::<Option<Vec<_>>>()?;
    Some(SnapshotMeta {
        last_included: LogId::new(term, index),
        membership: actraft::ClusterConfig::bootstrap(members),
    })
}

/// Reads the whole file, checks its structure and checksums.
fn verify(path: &Path, file: File) -> Result<Located, SnapshotFileError> {
    let corrupt = |reason: String| SnapshotFileError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let len = file.metadata().map_err(io_at(path))?.len();
    let mut reader = BufReader::new(file);
    let mut head = [0u8; 12];
    read_exact_or(&mut reader, &mut head, path, "the header")?;
    let v1 = &head[..8] == MAGIC_V1;
    if &head[..8] != MAGIC && !v1 {
        return Err(corrupt("bad magic".into()));
    }
    let meta_len = u32::from_be_bytes(head[8..12].try_into().expect("four bytes"));
    if meta_len > MAX_META_LEN {
        return Err(corrupt(format!(
            "metadata length {meta_len} is implausible"
        )));
    }
    let mut meta_bytes = vec![0u8; meta_len as usize + 4];
    read_exact_or(&mut reader, &mut meta_bytes, path, "the metadata")?;
    let (meta_bytes, crc) = meta_bytes.split_at(meta_len as usize);
    if crc32c(0, meta_bytes).to_be_bytes() != crc {
        return Err(corrupt("metadata checksum mismatch".into()));
    }
    let meta = decode_meta(meta_bytes, v1).ok_or_else(|| corrupt("metadata malformed".into()))?;
    let data_start = 12 + meta_len as u64 + 4;
    let data_len = len
        .checked_sub(data_start + TRAILER_LEN)
        .ok_or_else(|| corrupt(format!("file of {len} bytes is shorter than its frame")))?;
    let mut crc = 0;
    let mut left = data_len;
    let mut buf = vec![0u8; 64 * 1024];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        read_exact_or(&mut reader, &mut buf[..n], path, "the data")?;
        crc = crc32c(crc, &buf[..n]);
        left -= n as u64;
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    read_exact_or(&mut reader, &mut trailer, path, "the trailer")?;
    if &trailer[12..] != END {
        return Err(corrupt("no end marker (torn write)".into()));
    }
    let stored_len = u64::from_be_bytes(trailer[..8].try_into().expect("eight bytes"));
    if stored_len != data_len {
        return Err(corrupt(format!(
            "data length {data_len} differs from the recorded {stored_len}"
        )));
    }
    let data_crc = u32::from_be_bytes(trailer[8..12].try_into().expect("four bytes"));
    if data_crc != crc {
        return Err(corrupt("data checksum mismatch".into()));
    }
    Ok(Located {
        meta,
        data_start,
        data_len,
        data_crc,
    })
}

fn read_exact_or(
    reader: &mut impl Read,
    buf: &mut [u8],
    path: &Path,
    what: &str,
) -> Result<(), SnapshotFileError> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            SnapshotFileError::Corrupt {
                path: path.to_owned(),
                reason: format!("the file ends inside {what} (torn write)"),
            }
        } else {
            io_at(path)(e)
        }
    })
}

impl SnapshotStore for FileSnapshotStore {
    fn latest(&self) -> Result<Option<SnapshotMeta>, SnapshotError> {
        Ok(self.located().map(|l| l.meta))
    }

    fn open_latest(&self) -> Result<Option<StoredSnapshot>, SnapshotError> {
        // Hold the lock while opening, so a concurrent commit's rename cannot slip in
        // between reading the location and opening the file it describes.
        let latest = self.inner.latest.lock().unwrap_or_else(|e| e.into_inner());
        let Some(located) = latest.clone() else {
            return Ok(None);
        };
        let path = self.inner.dir.join(FILE);
        let mut file = File::open(&path)?;
        drop(latest);
        file.seek(SeekFrom::Start(located.data_start))?;
        let reader = FileChunks {
            file: BufReader::new(file),
            left: located.data_len,
            crc: 0,
            expected: located.data_crc,
            path,
        };
        Ok(Some((located.meta, Box::new(reader))))
    }

    fn begin(&self, meta: SnapshotMeta) -> Result<Box<dyn SnapshotWriter>, SnapshotError> {
        let n = self.inner.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self.inner.dir.join(format!("{TMP_PREFIX}{n}"));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut file = BufWriter::new(file);
        let meta_bytes = encode_meta(&meta);
        file.write_all(MAGIC)?;
        file.write_all(&(meta_bytes.len() as u32).to_be_bytes())?;
        file.write_all(&meta_bytes)?;
        file.write_all(&crc32c(0, &meta_bytes).to_be_bytes())?;
        let data_start = 12 + meta_bytes.len() as u64 + 4;
        Ok(Box::new(FileWriter {
            store: self.clone(),
            file: Some(file),
            tmp,
            meta,
            data_start,
            len: 0,
            crc: 0,
        }))
    }
}

struct FileChunks {
    file: BufReader<File>,
    left: u64,
    crc: u32,
    expected: u32,
    path: PathBuf,
}

impl SnapshotChunks for FileChunks {
    fn next_chunk(&mut self, max_len: usize) -> Result<Option<Bytes>, SnapshotError> {
        if self.left == 0 {
            return Ok(None);
        }
        let n = self.left.min(max_len.max(1) as u64) as usize;
        let mut buf = vec![0u8; n];
        self.file.read_exact(&mut buf).map_err(|e| {
            SnapshotError::Corrupt(format!("{}: reading the data: {e}", self.path.display()))
        })?;
        self.crc = crc32c(self.crc, &buf);
        self.left -= n as u64;
        if self.left == 0 && self.crc != self.expected {
            return Err(SnapshotError::Corrupt(format!(
                "{}: data checksum mismatch while reading",
                self.path.display()
            )));
        }
        Ok(Some(Bytes::from(buf)))
    }
}

struct FileWriter {
    store: FileSnapshotStore,
    file: Option<BufWriter<File>>,
    tmp: PathBuf,
    meta: SnapshotMeta,
    data_start: u64,
    len: u64,
    crc: u32,
}

impl SnapshotWriter for FileWriter {
    fn write_chunk(&mut self, chunk: &[u8]) -> Result<(), SnapshotError> {
        let file = self.file.as_mut().expect("present until commit");
        file.write_all(chunk)?;
        self.crc = crc32c(self.crc, chunk);
        self.len += chunk.len() as u64;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<(), SnapshotError> {
        let mut file = self.file.take().expect("present until commit");
        file.write_all(&self.len.to_be_bytes())?;
        file.write_all(&self.crc.to_be_bytes())?;
        file.write_all(END)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        let inner = &self.store.inner;
        let mut latest = inner.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = latest.as_ref() {
            let (index, stored) = (self.meta.last_included.index, old.meta.last_included.index);
            if index < stored {
                return Err(SnapshotError::Stale { index, stored });
            }
        }
        fs::rename(&self.tmp, inner.dir.join(FILE))?;
        sync_dir(&inner.dir)?;
        *latest = Some(Located {
            meta: self.meta.clone(),
            data_start: self.data_start,
            data_len: self.len,
            data_crc: self.crc,
        });
        Ok(())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Not committed (or the commit failed before the rename): remove the
        // temporary file. After a successful rename it no longer exists.
        if self.tmp.exists() {
            drop(self.file.take());
            if let Err(e) = fs::remove_file(&self.tmp) {
                tracing::warn!(path = %self.tmp.display(), error = %e, "cannot remove a discarded snapshot");
            }
        }
    }
}
