//! Framing: a frame on a stream is a `u32` big-endian length, then that many bytes of
//! [`codec`] output.
//!
//! The length is checked against the configured maximum before anything is allocated,
//! so a peer cannot make a node reserve memory by announcing a huge frame.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use quinn::{RecvStream, SendStream, WriteError};

use crate::codec::{self, CodecError};
use crate::error::QuicError;
use crate::wire::Frame;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// `frame` as it goes on the wire: length prefix and encoded bytes.
pub fn to_wire(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    let payload = codec::encode(frame)?;
    let mut wire = Vec::with_capacity(HEADER_LEN + payload.len());
    wire.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    wire.extend_from_slice(&payload);
    Ok(wire)
}

/// Why an outgoing frame was not written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteFrameError {
    /// The frame is too large to send; the stream is intact.
    #[error(transparent)]
    Refused(QuicError),
    /// The stream failed; it is unusable.
    #[error(transparent)]
    Stream(WriteError),
}

/// Bytes the batch buffer grows by when it runs short: small frames of one batch share
/// one allocation.
const BATCH_BUFFER: usize = 64 << 10;

/// The frames of one write: length prefixes and everything small encoded into one
/// buffer, large payloads ([`codec::SPLICE_MIN`] and more) left where they are and
/// referred to, so a batch of frames is a few chunks for one vectored write and a large
/// command is never copied on its way out.
#[derive(Debug, Default)]
pub(crate) struct FrameBatch {
    buf: BytesMut,
    /// (offset in `buf`, payload): the payloads to insert into `buf` on the wire.
    splices: Vec<(usize, Bytes)>,
    /// Bytes on the wire.
    len: usize,
}

impl FrameBatch {
    /// Appends `frame` with its length prefix; returns its bytes on the wire. A frame
    /// over `max` is refused (the peer would close the connection on it) and nothing is
    /// appended.
    pub(crate) fn push(&mut self, frame: &Frame, max: usize) -> Result<usize, QuicError> {
        if self.buf.capacity() - self.buf.len() < BATCH_BUFFER / 4 {
            self.buf.reserve(BATCH_BUFFER);
        }
        let start = self.buf.len();
        let spliced = self.splices.len();
        self.buf.extend_from_slice(&[0; HEADER_LEN]);
        let encoded = codec::encode_spliced(frame, &mut self.buf, &mut self.splices);
        let refused = match encoded {
            Ok(len) if len <= max && len <= u32::MAX as usize => {
                self.buf[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
                self.len += HEADER_LEN + len;
                return Ok(HEADER_LEN + len);
            }
            Ok(len) => QuicError::FrameTooLarge {
                len: len as u64,
                max,
            },
            Err(error) => error.into(),
        };
        self.buf.truncate(start);
        self.splices.truncate(spliced);
        Err(refused)
    }

    /// Bytes on the wire of the frames pushed since the last [`take`](Self::take).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Moves the frames pushed so far into `chunks`, in wire order, and empties the batch.
    pub(crate) fn take(&mut self, chunks: &mut Vec<Bytes>) {
        let mut buf = self.buf.split().freeze();
        let mut at = 0;
        for (offset, payload) in self.splices.drain(..) {
            if offset > at {
                chunks.push(buf.split_to(offset - at));
                at = offset;
            }
            chunks.push(payload);
        }
        if !buf.is_empty() {
            chunks.push(buf);
        }
        self.len = 0;
    }
}

/// Encodes `frame` and writes it to `stream`; see [`FrameBatch::push`].
pub(crate) async fn write_frame(
    stream: &mut SendStream,
    frame: &Frame,
    max: usize,
) -> Result<(), WriteFrameError> {
    let mut batch = FrameBatch::default();
    batch.push(frame, max).map_err(WriteFrameError::Refused)?;
    let mut chunks = Vec::with_capacity(2);
    batch.take(&mut chunks);
    stream
        .write_all_chunks(&mut chunks)
        .await
        .map_err(WriteFrameError::Stream)
}

/// Why an incoming frame could not be read.
#[derive(Debug)]
pub(crate) enum ReadFrameError {
    /// The peer sent something it must not: the connection should be closed.
    Bad(QuicError),
    /// The stream ended or broke (the peer went away, reset it, the connection closed).
    Broken(String),
}

/// Chunks taken from the stream in one read.
const READ_CHUNKS: usize = 32;

/// Splits a stream into frames. It takes the stream's data as quinn holds it, several
/// chunks per read (one wake-up and one lock of the connection for many frames), and
/// copies each frame once into an allocation of its own, sized from its length prefix
/// once that prefix is checked against the maximum. A frame owns its allocation, so
/// the commands decoded from it can be slices of it.
///
/// It holds at most one read's chunks and one partial frame.
#[derive(Debug)]
pub(crate) struct FrameReader {
    max: usize,
    /// The start of a frame spread over chunks (empty between frames), header included.
    /// A `Vec` sized exactly, not a `BytesMut`, whose reallocations may round a small
    /// frame up to a much larger allocation.
    partial: Vec<u8>,
    /// Data read and not yet split.
    chunks: VecDeque<Bytes>,
    /// The stream has ended.
    ended: bool,
}

impl FrameReader {
    /// A reader refusing frames over `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            partial: Vec::new(),
            chunks: VecDeque::new(),
            ended: false,
        }
    }

    /// The next frame's bytes. `Ok(None)` when the stream ended cleanly between frames.
    pub(crate) async fn next(
        &mut self,
        stream: &mut RecvStream,
    ) -> Result<Option<Bytes>, ReadFrameError> {
        loop {
            if let Some(frame) = self.split()? {
                return Ok(Some(frame));
            }
            if self.ended {
                return match self.partial.len() {
                    0 => Ok(None),
                    n if n < HEADER_LEN => Err(ReadFrameError::Broken(format!(
                        "stream ended {n} bytes into a frame header"
                    ))),
                    n => Err(ReadFrameError::Broken(format!(
                        "stream ended {} bytes into a frame of {}",
                        n - HEADER_LEN,
                        self.length(&self.partial[..HEADER_LEN])?
                    ))),
                };
            }
            let mut read: [Bytes; READ_CHUNKS] = Default::default();
            match stream.read_chunks(&mut read).await {
                Ok(Some(n)) => self.chunks.extend(read.into_iter().take(n)),
                Ok(None) => self.ended = true,
                Err(e) => return Err(ReadFrameError::Broken(e.to_string())),
            }
        }
    }

    /// The length a frame header announces, checked against the maximum.
    fn length(&self, header: &[u8]) -> Result<usize, ReadFrameError> {
        let mut prefix = [0u8; HEADER_LEN];
        prefix.copy_from_slice(&header[..HEADER_LEN]);
        let len = u32::from_be_bytes(prefix) as usize;
        if len > self.max {
            return Err(ReadFrameError::Bad(QuicError::FrameTooLarge {
                len: len as u64,
                max: self.max,
            }));
        }
        Ok(len)
    }

    /// A complete frame from the data at hand, if there is one.
    fn split(&mut self) -> Result<Option<Bytes>, ReadFrameError> {
        loop {
            if self.partial.len() >= HEADER_LEN {
                let len = self.length(&self.partial)?;
                if self.partial.len() == HEADER_LEN + len {
                    let frame = Bytes::from(std::mem::take(&mut self.partial));
                    return Ok(Some(frame.slice(HEADER_LEN..)));
                }
            }
            let Some(mut chunk) = self.chunks.pop_front() else {
                return Ok(None);
            };
            if chunk.is_empty() {
                continue;
            }
            if self.partial.is_empty() && chunk.len() >= HEADER_LEN {
                let len = self.length(&chunk)?;
                if chunk.len() >= HEADER_LEN + len {
                    chunk.advance(HEADER_LEN);
                    // A copy: a slice would keep all of quinn's receive buffer alive
                    // for as long as any command decoded from it lives.
                    let frame = Bytes::copy_from_slice(&chunk[..len]);
                    chunk.advance(len);
                    if !chunk.is_empty() {
                        self.chunks.push_front(chunk);
                    }
                    return Ok(Some(frame));
                }
                self.partial.reserve_exact(HEADER_LEN + len);
            }
            // Copy what the frame (or its header) still lacks, no more: the rest of the
            // chunk may hold whole frames.
            let wanted = if self.partial.len() < HEADER_LEN {
                HEADER_LEN - self.partial.len()
            } else {
                HEADER_LEN + self.length(&self.partial)? - self.partial.len()
            };
            let take = wanted.min(chunk.len());
            self.partial.extend_from_slice(&chunk[..take]);
            chunk.advance(take);
            if !chunk.is_empty() {
                self.chunks.push_front(chunk);
            }
            if self.partial.len() == HEADER_LEN {
                let len = self.length(&self.partial)?;
                self.partial.reserve_exact(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AppendRequest, Entry, Envelope, LogId, Message, Payload, VoteReply};

    use actraft::testkit::SplitMix64 as Rng;

    /// Frames of every shape the batch treats apart: heartbeats, small and large
    /// commands (a large one twice in one frame: the same memory twice), payloads just
    /// under and at the splice threshold, no-op entries.
    fn frames(rng: &mut Rng, shared: &Bytes) -> Vec<Frame> {
        (0..40)
            .map(|i| {
                let message = match rng.below(4) {
                    0 => Message::RequestVoteReply(VoteReply {
                        term: rng.next_u64(),
                        granted: true,
                    }),
                    _ => {
                        let entries = (0..rng.below(6))
                            .map(|k| {
                                let payload = match rng.below(5) {
                                    0 => Payload::Noop,
                                    1 => Payload::Command(shared.clone()),
                                    2 => Payload::Command(shared.slice(..codec::SPLICE_MIN)),
                                    3 => Payload::Command(shared.slice(1..codec::SPLICE_MIN)),
                                    _ => Payload::Command(Bytes::from(vec![
                                        k as u8;
                                        rng.below(3 * codec::SPLICE_MIN as u64)
                                            as usize
                                    ])),
                                };
                                Entry {
                                    term: 3,
                                    index: i * 10 + k,
                                    payload,
                                }
                            })
                            .collect();
                        Message::AppendEntries(AppendRequest {
                            term: 3,
                            prev_log: LogId { term: 3, index: i },
                            entries,
                            leader_commit: i,
                        })
                    }
                };
                Frame::Message(Envelope {
                    from: 1,
                    to: 70_000,
                    message,
                })
            })
            .collect()
    }

    #[test]
    fn a_batch_is_the_frames_wire_bytes_without_copying_large_payloads() {
        let mut rng = Rng::new(7);
        let shared = Bytes::from((0..5000u32).map(|i| i as u8).collect::<Vec<_>>());
        let frames = frames(&mut rng, &shared);
        let mut batch = FrameBatch::default();
        let mut chunks = Vec::new();
        let mut expected = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let wire = to_wire(frame).unwrap();
            assert_eq!(batch.push(frame, 1 << 20).unwrap(), wire.len());
            expected.extend_from_slice(&wire);
            if i % 7 == 6 {
                batch.take(&mut chunks);
            }
        }
        batch.take(&mut chunks);
        assert_eq!(batch.len(), 0);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(joined, expected);
        // The large payloads went out as the very bytes they were.
        let referenced = chunks
            .iter()
            .filter(|c| c.as_ptr() == shared.as_ptr() && c.len() >= codec::SPLICE_MIN)
            .count();
        assert!(referenced > 10, "{referenced}");
    }

    #[test]
    fn an_oversized_frame_leaves_the_batch_as_it_was() {
        let big = Bytes::from(vec![1u8; 4 * codec::SPLICE_MIN]);
        let heartbeat = Frame::Message(Envelope {
            from: 1,
            to: 2,
            message: Message::RequestVoteReply(VoteReply {
                term: 1,
                granted: false,
            }),
        });
        let large = Frame::Message(Envelope {
            from: 1,
            to: 2,
            message: Message::AppendEntries(AppendRequest {
                term: 1,
                prev_log: LogId { term: 1, index: 1 },
                entries: vec![Entry {
                    term: 1,
                    index: 2,
                    payload: Payload::Command(big),
                }],
                leader_commit: 1,
            }),
        });
        let mut batch = FrameBatch::default();
        batch.push(&heartbeat, 1024).unwrap();
        assert!(matches!(
            batch.push(&large, 1024),
            Err(QuicError::FrameTooLarge { max: 1024, .. })
        ));
        let mut chunks = Vec::new();
        batch.take(&mut chunks);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(joined, to_wire(&heartbeat).unwrap());
    }

    /// Feeds a reader a stream cut into random chunks, as quinn hands them out.
    fn read_all(wire: &[u8], rng: &mut Rng, max: usize) -> Result<Vec<Bytes>, ReadFrameError> {
        let mut reader = FrameReader::new(max);
        let mut frames = Vec::new();
        let mut at = 0;
        while at < wire.len() {
            for _ in 0..=rng.below(3) {
                let len = match rng.below(4) {
                    0 => 0,
                    1 => 1 + rng.below(5) as usize,
                    2 => 1 + rng.below(200) as usize,
                    _ => 1 + rng.below(3000) as usize,
                };
                let end = (at + len).min(wire.len());
                reader
                    .chunks
                    .push_back(Bytes::copy_from_slice(&wire[at..end]));
                at = end;
            }
            while let Some(frame) = reader.split()? {
                frames.push(frame);
            }
            assert!(reader.chunks.is_empty());
            assert!(reader.partial.len() <= HEADER_LEN + max);
        }
        Ok(frames)
    }

    #[test]
    fn the_reader_splits_any_chunking_into_the_frames() {
        let mut rng = Rng::new(11);
        let shared = Bytes::from(vec![9u8; 5000]);
        let frames = frames(&mut rng, &shared);
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for frame in &frames {
            let bytes = to_wire(frame).unwrap();
            expected.push(bytes[HEADER_LEN..].to_vec());
            wire.extend_from_slice(&bytes);
        }
        // An empty frame too: the decoder refuses it, the framing does not.
        wire.extend_from_slice(&[0, 0, 0, 0]);
        expected.push(Vec::new());
        for _ in 0..50 {
            let got = read_all(&wire, &mut rng, 1 << 20).unwrap();
            let got: Vec<Vec<u8>> = got.iter().map(|b| b.to_vec()).collect();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn the_reader_refuses_an_announced_frame_over_the_maximum() {
        let mut rng = Rng::new(3);
        let mut wire = to_wire(&Frame::Message(Envelope {
            from: 1,
            to: 2,
            message: Message::RequestVoteReply(VoteReply {
                term: 1,
                granted: false,
            }),
        }))
        .unwrap();
        wire.extend_from_slice(&(2000u32).to_be_bytes());
        wire.extend_from_slice(&[0; 100]);
        for _ in 0..20 {
            match read_all(&wire, &mut rng, 1999) {
                Err(ReadFrameError::Bad(QuicError::FrameTooLarge {
                    len: 2000,
                    max: 1999,
                })) => {}
                other => panic!("{other:?}"),
            }
        }
    }
}
