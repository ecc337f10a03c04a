//! The durable image: what the backing directory holds after a power cut.

use std::io;
use std::path::{Path, PathBuf};

use super::{apply, Change, CutReport, Kind, Node, State, ROOT};
use crate::rng::SplitMix;

/// One entry of the durable image: a directory (`None`) or a file's contents.
pub(crate) type ImageEntry = (PathBuf, Option<Vec<u8>>);

impl State {
    /// The durable image: every directory and file reachable from the root through
    /// durable entries, parents first, with the contents a power cut leaves. With
    /// `tear`, each file keeps a random prefix of its unsynced changes, the last of
    /// them possibly torn at a random byte (`tear` seeds the choice).
    pub(crate) fn durable_image(
        &self,
        tear: Option<u64>,
    ) -> io::Result<(Vec<ImageEntry>, CutReport)> {
        let mut image = Vec::new();
        let mut report = CutReport::default();
        let mut rng = tear.map(SplitMix::new);
        self.image_dir(ROOT, PathBuf::new(), &mut image, &mut report, &mut rng)?;
        // Names that were live but are not durable.
        report.names_lost = self.count_lost_names(ROOT);
        Ok((image, report))
    }

    fn image_dir(
        &self,
        dir: u64,
        rel: PathBuf,
        image: &mut Vec<ImageEntry>,
        report: &mut CutReport,
        rng: &mut Option<SplitMix>,
    ) -> io::Result<()> {
        let node = self.node(dir)?;
        for (name, &ino) in &node.durable_children {
            let child = self.node(ino)?;
            let rel = rel.join(name);
            match child.kind {
                Kind::Dir => {
                    image.push((rel.clone(), None));
                    self.image_dir(ino, rel, image, report, rng)?;
                }
                Kind::File => {
                    let data = self.file_image(ino, child, report, rng)?;
                    image.push((rel, Some(data)));
                }
            }
        }
        Ok(())
    }

    fn file_image(
        &self,
        ino: u64,
        node: &Node,
        report: &mut CutReport,
        rng: &mut Option<SplitMix>,
    ) -> io::Result<Vec<u8>> {
        let mut data = match &node.durable {
            Some(data) => data.clone(),
            // Unchanged since the mount: the backing file holds the durable contents.
            None => return std::fs::read(self.path(ino)?),
        };
        if node.pending.is_empty() {
            return Ok(data);
        }
        report.files_reverted += 1;
        let keep = match rng {
            Some(rng) => rng.below(node.pending.len() as u64 + 1) as usize,
            None => 0,
        };
        for (i, change) in node.pending.iter().enumerate() {
            let last = i + 1 == keep;
            match change {
                _ if i >= keep => {
                    if let Change::Write { data: bytes, .. } = change {
                        report.bytes_dropped += bytes.len() as u64;
                    }
                }
                Change::Write {
                    offset,
                    data: bytes,
                } if last => {
                    let rng = rng.as_mut().expect("keep > 0 only with a generator");
                    let cut = rng.below(bytes.len() as u64 + 1) as usize;
                    if cut < bytes.len() {
                        report.torn_writes += 1;
                        report.bytes_dropped += (bytes.len() - cut) as u64;
                    }
                    let torn = Change::Write {
                        offset: *offset,
                        data: bytes[..cut].to_vec(),
                    };
                    apply(&mut data, &torn);
                }
                change => apply(&mut data, change),
            }
        }
        Ok(data)
    }

    fn count_lost_names(&self, dir: u64) -> usize {
        let Ok(node) = self.node(dir) else {
            return 0;
        };
        node.children
            .iter()
            .map(|(name, &ino)| {
                let durable = node.durable_children.get(name) == Some(&ino);
                let below = match self.node(ino) {
                    Ok(child) if child.kind == Kind::Dir => self.count_lost_names(ino),
                    _ => 0,
                };
                usize::from(!durable) + below
            })
            .sum()
    }
}

/// Replaces the contents of `backing` with `image`.
pub(crate) fn write_image(backing: &Path, image: &[ImageEntry]) -> io::Result<()> {
    for entry in std::fs::read_dir(backing)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    for (rel, data) in image {
        let path = backing.join(rel);
        match data {
            None => std::fs::create_dir(&path)?,
            Some(data) => std::fs::write(&path, data)?,
        }
    }
    Ok(())
}
