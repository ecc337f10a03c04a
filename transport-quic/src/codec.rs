//! The wire codec: how a [`Frame`] becomes bytes and back.
//!
//! Everything that knows about bincode lives here, behind one function pair
//! ([`encode`] / [`decode`]), their two forms for the transport's hot path (an encoder
//! that refers to large payloads instead of copying them, and a decoder that reads
//! AppendEntries without an allocation per command: the same bytes either way), and the
//! version peek of a hello ([`hello_version`]), so the codec can be swapped without
//! touching the rest of the transport. What the bytes
//! mean is the [`wire`](crate::wire) module's business; framing (the length prefix) is
//! [`crate::frame`]'s.

mod append;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use crate::wire::{Frame, Message, Payload};

/// Why bytes could not be encoded or decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame could not be serialized (never expected for the frame types here).
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The bytes are not a frame.
    #[error("undecodable frame: {0}")]
    Decode(String),
    /// A frame decoded, but bytes were left over.
    #[error("frame has {extra} trailing bytes")]
    TrailingBytes {
        /// How many bytes followed the frame.
        extra: usize,
    },
}

/// The version a hello announces, read without decoding the rest of the frame: `None`
/// when `bytes` do not start like a hello (another frame, or garbage).
///
/// Every version's hello starts with the frame tag of [`Frame::Hello`] and the version,
/// so this reads the version of a peer whose hello is otherwise undecodable (a newer
/// layout), and the receiver can refuse it as a version mismatch rather than as garbage.
pub fn hello_version(bytes: &[u8]) -> Option<u16> {
    let limited = config().with_limit::<64>();
    match bincode::serde::decode_from_slice::<(u32, u16), _>(bytes, limited) {
        Ok(((HELLO_TAG, version), _)) => Some(version),
        _ => None,
    }
}

/// The tag of [`Frame::Hello`] (its position in the enum).
const HELLO_TAG: u32 = 0;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Serializes `frame` (without any length prefix).
pub fn encode(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(frame, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Payloads of at least this many bytes are not copied by [`encode_spliced`]: the frame
/// refers to them where they are.
pub const SPLICE_MIN: usize = 1024;

/// Serializes `frame` (without any length prefix) after what `buf` holds, byte for byte
/// what [`encode`] makes, but without copying its large payloads: every command payload
/// and snapshot chunk of at least [`SPLICE_MIN`] bytes is left out of `buf` and recorded
/// in `splices` as (its offset in `buf`, the payload itself), so that the bytes on the
/// wire are `buf` with each payload inserted at its offset. Returns the frame's length.
///
/// On an error `buf` and `splices` may hold part of the frame: the caller truncates them.
pub(crate) fn encode_spliced(
    frame: &Frame,
    buf: &mut BytesMut,
    splices: &mut Vec<(usize, Bytes)>,
) -> Result<usize, CodecError> {
    let mut large = Vec::new();
    large_payloads(frame, &mut large);
    let mut sink = SplicingWriter {
        buf,
        splices,
        large: large.into_iter().peekable(),
        len: 0,
    };
    bincode::serde::encode_into_writer(frame, &mut sink, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(sink.len)
}

/// The payloads of `frame` that [`encode_spliced`] refers to, in the order the encoder
/// writes them.
fn large_payloads<'f>(frame: &'f Frame, out: &mut Vec<&'f Bytes>) {
    let Frame::Message(envelope) = frame else {
        return;
    };
    let entries = match &envelope.message {
        Message::AppendEntries(request) => &request.entries,
        Message::RoundAppendEntries(round) => &round.request.entries,
        Message::InstallSnapshot(chunk) => return out.push(&chunk.data),
        Message::ConfigInstallSnapshot(chunk) => return out.push(&chunk.data),
        _ => return,
    };
    out.extend(entries.iter().filter_map(|entry| match &entry.payload {
        Payload::Command(bytes) if bytes.len() >= SPLICE_MIN => Some(bytes),
        _ => None,
    }));
}

/// A bincode writer that copies small writes into a buffer and records a write that is
/// exactly the next expected large payload (same memory, same length) as a splice.
/// bincode writes a byte string's contents in one call, right after its length, so a
/// payload is recognised by its address; anything else is copied, which is always right.
struct SplicingWriter<'a, 'f, I: Iterator<Item = &'f Bytes>> {
    buf: &'a mut BytesMut,
    splices: &'a mut Vec<(usize, Bytes)>,
    large: std::iter::Peekable<I>,
    len: usize,
}

impl<'f, I: Iterator<Item = &'f Bytes>> bincode::enc::write::Writer for SplicingWriter<'_, 'f, I> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.len += bytes.len();
        if bytes.len() >= SPLICE_MIN {
            if let Some(next) = self
                .large
                .next_if(|p| p.as_ptr() == bytes.as_ptr() && p.len() == bytes.len())
            {
                self.splices.push((self.buf.len(), next.clone()));
                return Ok(());
            }
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
}

/// [`decode`], for a frame the transport received: an AppendEntries of commands (the
/// bulk of the traffic) is read without copying its commands, which become slices of
/// `bytes` (so they keep all of `bytes` alive: pass a frame in an allocation of its own);
/// any other frame is decoded by [`decode`].
pub(crate) fn decode_received(bytes: &Bytes) -> Result<Frame, CodecError> {
    match append::decode(bytes) {
        Some(frame) => Ok(frame),
        None => decode(bytes),
    }
}

/// Deserializes exactly one frame from `bytes`, which must hold nothing else.
///
/// Safe on hostile input: it never panics, and never allocates more than a small
/// multiple of `bytes.len()` whatever lengths the input claims (bincode allocates a
/// byte buffer before reading it, so its decoding limit is set from the input's size).
pub fn decode(bytes: &[u8]) -> Result<Frame, CodecError> {
    let (frame, used) = decode_limited(bytes).map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes {
            extra: bytes.len() - used,
        });
    }
    Ok(frame)
}

/// Decodes with a limit on the bytes bincode may claim. A valid frame claims at most
/// eight times its encoded size (a one-byte varint decodes into an eight-byte integer),
/// so the limit is the next power of two above that; the limit is a const generic,
/// hence the buckets.
fn decode_limited(bytes: &[u8]) -> Result<(Frame, usize), bincode::error::DecodeError> {
    let budget = bytes.len().saturating_mul(8).saturating_add(4096);
    macro_rules! buckets {
        ($($shift:literal)*) => {$(
            if budget <= 1usize << $shift {
                return bincode::serde::decode_from_slice(
                    bytes,
                    config().with_limit::<{ 1usize << $shift }>(),
                );
            }
        )*};
    }
    buckets!(12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);
    // Only for frames above 256 MiB, which a sane `max_frame_size` never lets through.
    bincode::serde::decode_from_slice(bytes, config().with_limit::<{ usize::MAX }>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Envelope, Hello, Message, VoteReply, PROTOCOL_VERSION};

    fn hello(version: u16) -> Frame {
        Frame::Hello(Hello {
            version,
            cluster: "test".into(),
            from: 3,
            instance: u64::MAX,
        })
    }

    #[test]
    fn round_trip() {
        let frames = [
            hello(PROTOCOL_VERSION),
            Frame::Message(Envelope {
                from: 1,
                to: 2,
                message: Message::RequestVoteReply(VoteReply {
                    term: 7,
                    granted: true,
                }),
            }),
        ];
        for frame in frames {
            let bytes = encode(&frame).unwrap();
            assert_eq!(decode(&bytes).unwrap(), frame);
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(
                decode(&longer),
                Err(CodecError::TrailingBytes { extra: 1 })
            ));
            assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn hello_version_reads_only_the_head() {
        for version in [0, 1, 250, 251, 300, u16::MAX] {
            let mut bytes = encode(&hello(version)).unwrap();
            assert_eq!(hello_version(&bytes), Some(version));
            // A later version's hello may carry more: the version still reads.
            bytes.extend_from_slice(&[9; 40]);
            assert_eq!(hello_version(&bytes), Some(version));
        }
        let message = encode(&Frame::Message(Envelope {
            from: 1,
            to: 2,
            message: Message::RequestVoteReply(VoteReply {
                term: 7,
                granted: true,
            }),
        }))
        .unwrap();
        assert_eq!(hello_version(&message), None);
        assert_eq!(hello_version(&[]), None);
        assert_eq!(hello_version(&[0]), None);
    }

    #[test]
    fn huge_claimed_length_is_refused_without_allocating() {
        // Frame::Hello, version 1, then a string claiming u64::MAX / 2 bytes.
        let mut bytes = vec![0u8, 1, 253];
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(matches!(decode(&bytes), Err(CodecError::Decode(_))));
    }
}
