//! A fast path for the frame that carries nearly all of a leader's bytes: an
//! AppendEntries whose entries are commands or no-ops. It reads the same bytes as
//! bincode does, without bincode's one allocation per command: each command becomes a
//! slice of the frame.
//!
//! Whatever it returns, bincode returns for the same bytes (the tests compare the two on
//! valid and mangled frames); anything it does not expect (another kind, a membership
//! entry, a malformed or truncated field, bytes left over) makes it give up, and the
//! caller decodes the frame with bincode, which accepts or refuses it as it always did.

use bytes::Bytes;

use crate::wire::{
    AppendRequest, Entry, Envelope, Frame, LogId, Message, Payload, RoundAppendRequest,
};

/// The tag of [`Frame::Message`].
const MESSAGE: u32 = 1;
/// The tag of [`Message::AppendEntries`].
const APPEND_ENTRIES: u32 = 4;
/// The tag of [`Message::RoundAppendEntries`].
const ROUND_APPEND_ENTRIES: u32 = 10;
/// The tag of [`Payload::Command`].
const COMMAND: u32 = 0;
/// The tag of [`Payload::Noop`].
const NOOP: u32 = 1;
/// The fewest bytes an entry takes (term, index, tag: one byte each).
const MIN_ENTRY_LEN: usize = 3;

/// Decodes `frame` if it is an AppendEntries (either form) of commands and no-ops; the
/// commands are slices of `frame`, so they keep it alive. `None` for anything else.
pub(super) fn decode(frame: &Bytes) -> Option<Frame> {
    let mut r = Reader {
        bytes: frame,
        at: 0,
    };
    if r.u32()? != MESSAGE {
        return None;
    }
    let from = r.u64()?;
    let to = r.u64()?;
    let round = match r.u32()? {
        APPEND_ENTRIES => None,
        ROUND_APPEND_ENTRIES => Some(r.u64()?),
        _ => return None,
    };
    let term = r.u64()?;
    let prev_log = LogId {
        term: r.u64()?,
        index: r.u64()?,
    };
    let count = usize::try_from(r.u64()?).ok()?;
    if count > (frame.len() - r.at) / MIN_ENTRY_LEN {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let term = r.u64()?;
        let index = r.u64()?;
        let payload = match r.u32()? {
            COMMAND => {
                let len = usize::try_from(r.u64()?).ok()?;
                let start = r.at;
                let end = start.checked_add(len)?;
                if end > frame.len() {
                    return None;
                }
                r.at = end;
                Payload::Command(frame.slice(start..end))
            }
            NOOP => Payload::Noop,
            _ => return None,
        };
        entries.push(Entry {
            term,
            index,
            payload,
        });
    }
    let leader_commit = r.u64()?;
    if r.at != frame.len() {
        return None;
    }
    let request = AppendRequest {
        term,
        prev_log,
        entries,
        leader_commit,
    };
    let message = match round {
        None => Message::AppendEntries(request),
        Some(read_round) => Message::RoundAppendEntries(RoundAppendRequest {
            read_round,
            request,
        }),
    };
    Some(Frame::Message(Envelope { from, to, message }))
}

/// bincode's varints (its standard configuration): one byte up to 250, else a marker
/// (251, 252, 253) and a little-endian u16, u32 or u64.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.at.checked_add(N)?;
        let bytes = self.bytes.get(self.at..end)?.try_into().ok()?;
        self.at = end;
        Some(bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        match self.take::<1>()?[0] {
            byte @ 0..=250 => Some(u64::from(byte)),
            251 => Some(u64::from(u16::from_le_bytes(self.take()?))),
            252 => Some(u64::from(u32::from_le_bytes(self.take()?))),
            253 => Some(u64::from_le_bytes(self.take()?)),
            _ => None,
        }
    }

    fn u32(&mut self) -> Option<u32> {
        match self.take::<1>()?[0] {
            byte @ 0..=250 => Some(u32::from(byte)),
            251 => Some(u32::from(u16::from_le_bytes(self.take()?))),
            252 => Some(u32::from_le_bytes(self.take()?)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode as bincode_decode, encode};
    use crate::wire::{ClusterConfig, Hello, Membership, VoteReply};

    use actraft::testkit::SplitMix64 as Rng;

    /// Numbers of every varint width.
    fn number(rng: &mut Rng) -> u64 {
        match rng.below(5) {
            0 => rng.below(251),
            1 => 251 + rng.below(1 << 16),
            2 => 1 << 17 | rng.below(1 << 31),
            3 => rng.next_u64(),
            _ => u64::MAX,
        }
    }

    fn append(rng: &mut Rng, round: bool, membership: bool) -> Frame {
        let entries = (0..rng.below(8))
            .map(|_| Entry {
                term: number(rng),
                index: number(rng),
                payload: match rng.below(4) {
                    0 => Payload::Noop,
                    1 if membership => Payload::Membership(ClusterConfig::Stable(Membership {
                        voters: vec![1, 2],
                        learners: vec![],
                        addresses: vec![(1, "a".into())],
                    })),
                    _ => Payload::Command(Bytes::from(vec![7u8; rng.below(600) as usize])),
                },
            })
            .collect();
        let request = AppendRequest {
            term: number(rng),
            prev_log: LogId {
                term: number(rng),
                index: number(rng),
            },
            entries,
            leader_commit: number(rng),
        };
        let message = if round {
            Message::RoundAppendEntries(RoundAppendRequest {
                read_round: number(rng),
                request,
            })
        } else {
            Message::AppendEntries(request)
        };
        Frame::Message(Envelope {
            from: number(rng),
            to: number(rng),
            message,
        })
    }

    /// What bincode makes of `bytes`, and what the fast path makes, agree.
    fn agree(bytes: &[u8]) -> bool {
        let fast = decode(&Bytes::copy_from_slice(bytes));
        if let Some(fast) = &fast {
            assert_eq!(bincode_decode(bytes).ok().as_ref(), Some(fast), "{bytes:?}");
        }
        fast.is_some()
    }

    #[test]
    fn reads_what_bincode_reads() {
        let mut rng = Rng::new(5);
        for i in 0..2000 {
            let frame = append(&mut rng, i % 2 == 0, false);
            let bytes = encode(&frame).unwrap();
            assert_eq!(decode(&Bytes::from(bytes)), Some(frame));
        }
    }

    #[test]
    fn gives_up_on_other_frames() {
        let mut rng = Rng::new(6);
        let others = [
            Frame::Hello(Hello {
                version: 4,
                cluster: "c".into(),
                from: 1,
                instance: 2,
            }),
            Frame::Message(Envelope {
                from: 1,
                to: 2,
                message: Message::RequestVoteReply(VoteReply {
                    term: 1,
                    granted: true,
                }),
            }),
        ];
        for frame in others {
            assert_eq!(decode(&Bytes::from(encode(&frame).unwrap())), None);
        }
        let mut with_membership = 0;
        for _ in 0..500 {
            let frame = append(&mut rng, true, true);
            let bytes = encode(&frame).unwrap();
            if format!("{frame:?}").contains("Membership(") {
                with_membership += 1;
                assert_eq!(decode(&Bytes::from(bytes)), None);
            }
        }
        assert!(with_membership > 50);
    }

    #[test]
    fn never_accepts_what_bincode_refuses_or_reads_otherwise() {
        let mut rng = Rng::new(9);
        let mut accepted = 0;
        for i in 0..20_000 {
            let mut bytes = encode(&append(&mut rng, i % 3 != 0, false)).unwrap();
            match rng.below(4) {
                0 => {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = rng.next_u64() as u8;
                }
                1 => {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = [250, 251, 252, 253, 254, 255][rng.below(6) as usize];
                }
                2 => {
                    let len = rng.below(bytes.len() as u64 + 1) as usize;
                    bytes.truncate(len);
                }
                _ => bytes.push(rng.next_u64() as u8),
            }
            if agree(&bytes) {
                accepted += 1;
            }
        }
        // The mangled frames that still decode are compared too, not only refused.
        assert!(accepted > 1000, "{accepted}");
    }
}
