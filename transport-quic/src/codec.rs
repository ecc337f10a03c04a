//! The wire codec: how a [`Frame`] becomes bytes and back.
//!
//! Everything that knows about bincode lives here, behind one function pair
//! ([`encode`] / [`decode`]), so the codec can be swapped without touching the rest of
//! the transport. Framing (the length prefix) is not the codec's business: see
//! [`crate::frame`].

use actraft::core::{Envelope, NodeId};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The wire protocol version carried by every [`Hello`]. Bump it on any incompatible
/// change to [`Frame`] or to the framing.
pub const PROTOCOL_VERSION: u16 = 1;

/// One unit on a stream. A stream carries one [`Frame::Hello`] first, then only
/// [`Frame::Message`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Opens a stream: who is talking, for which cluster.
    Hello(Hello),
    /// A Raft message.
    Message(Envelope),
}

/// The first frame of every stream.
///
/// The sender's identity is proven by its certificate, not by this frame: the receiver
/// checks that `from` agrees with the certificate, and that `cluster` is its own, before
/// it reads anything else from the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The cluster the sender belongs to.
    pub cluster: String,
    /// The sending node.
    pub from: NodeId,
    /// A random number the sender draws each time its transport starts. A new value
    /// tells the receiver that the peer restarted, so that it drops its own (now stale)
    /// connection to that peer at once instead of waiting for an idle timeout.
    pub instance: u64,
}

/// Why bytes could not be encoded or decoded.
#[derive(Debug, Error)]
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

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Serializes `frame` (without any length prefix).
pub fn encode(frame: &Frame) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(frame, config()).map_err(|e| CodecError::Encode(e.to_string()))
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
    use actraft::core::{Message, VoteReply};

    #[test]
    fn round_trip() {
        let frames = [
            Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                cluster: "test".into(),
                from: 3,
                instance: u64::MAX,
            }),
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
    fn huge_claimed_length_is_refused_without_allocating() {
        // Frame::Hello, version 1, then a string claiming u64::MAX / 2 bytes.
        let mut bytes = vec![0u8, 1, 253];
        bytes.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
        assert!(matches!(decode(&bytes), Err(CodecError::Decode(_))));
    }
}
