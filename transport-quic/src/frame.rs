//! Framing: a frame on a stream is a `u32` big-endian length, then that many bytes of
//! [`codec`] output.
//!
//! The length is checked against the configured maximum before anything is allocated,
//! so a peer cannot make a node reserve memory by announcing a huge frame.

use bytes::Bytes;
use quinn::{ReadExactError, RecvStream, SendStream, WriteError};

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

/// Encodes `frame` and appends it to `chunks` as two chunks, length prefix and payload,
/// ready for one vectored write. A frame over `max` is refused (the peer would close
/// the connection on it) and nothing is appended.
pub(crate) fn push_frame(
    chunks: &mut Vec<Bytes>,
    frame: &Frame,
    max: usize,
) -> Result<(), QuicError> {
    let payload = codec::encode(frame)?;
    if payload.len() > max || payload.len() > u32::MAX as usize {
        return Err(QuicError::FrameTooLarge {
            len: payload.len() as u64,
            max,
        });
    }
    chunks.push(Bytes::copy_from_slice(
        &(payload.len() as u32).to_be_bytes(),
    ));
    chunks.push(Bytes::from(payload));
    Ok(())
}

/// Encodes `frame` and writes it to `stream`; see [`push_frame`].
pub(crate) async fn write_frame(
    stream: &mut SendStream,
    frame: &Frame,
    max: usize,
) -> Result<(), WriteFrameError> {
    let mut chunks = Vec::with_capacity(2);
    push_frame(&mut chunks, frame, max).map_err(WriteFrameError::Refused)?;
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

/// Reads the next frame's bytes from `stream`. `Ok(None)` when the stream ended cleanly
/// between frames.
pub(crate) async fn read_frame(
    stream: &mut RecvStream,
    max: usize,
) -> Result<Option<Vec<u8>>, ReadFrameError> {
    let mut header = [0u8; HEADER_LEN];
    match stream.read_exact(&mut header).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(ReadExactError::FinishedEarly(n)) => {
            return Err(ReadFrameError::Broken(format!(
                "stream ended {n} bytes into a frame header"
            )))
        }
        Err(ReadExactError::ReadError(e)) => return Err(ReadFrameError::Broken(e.to_string())),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(ReadFrameError::Bad(QuicError::FrameTooLarge {
            len: len as u64,
            max,
        }));
    }
    let mut payload = vec![0u8; len];
    match stream.read_exact(&mut payload).await {
        Ok(()) => Ok(Some(payload)),
        Err(ReadExactError::FinishedEarly(n)) => Err(ReadFrameError::Broken(format!(
            "stream ended {n} bytes into a frame of {len}"
        ))),
        Err(ReadExactError::ReadError(e)) => Err(ReadFrameError::Broken(e.to_string())),
    }
}
