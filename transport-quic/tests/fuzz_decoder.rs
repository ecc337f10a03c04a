//! Throws many random byte strings, and mutations of valid frames, at the decoder: it
//! must never panic, never allocate wildly, and whatever it accepts must re-encode to
//! a frame that decodes to the same value.

use actraft::core::{Envelope, Message};
use actraft::testkit::transport::sample;
use actraft_transport_quic::codec::{decode, encode};
use actraft_transport_quic::wire::{Frame, Hello, PROTOCOL_VERSION};

/// splitmix64: a tiny deterministic generator, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn check(bytes: &[u8], accepted: &mut usize) {
    if let Ok(frame) = decode(bytes) {
        *accepted += 1;
        let again = encode(&frame).expect("a decoded frame encodes");
        assert_eq!(decode(&again).expect("re-encoded frame decodes"), frame);
    }
}

fn valid_frames() -> Vec<Vec<u8>> {
    let mut frames: Vec<Frame> = (0..12)
        .map(|seq| {
            Frame::Message(
                Envelope {
                    from: seq % 5 + 1,
                    to: seq % 3 + 1,
                    message: sample(seq),
                }
                .into(),
            )
        })
        .collect();
    frames.push(Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        cluster: "fuzz".into(),
        from: 9,
        instance: 0xdead_beef,
    }));
    frames.iter().map(|f| encode(f).unwrap()).collect()
}

#[test]
fn random_bytes_never_panic() {
    const SEED: u64 = 0x5eed_1234;
    let mut rng = Rng(SEED);
    let mut accepted = 0;
    for _ in 0..200_000 {
        let len = match rng.below(4) {
            0 => rng.below(8),
            1 => rng.below(64),
            2 => rng.below(512),
            _ => rng.below(4096),
        } as usize;
        let bytes = rng.bytes(len);
        check(&bytes, &mut accepted);
    }
    // Structured noise: valid frames with bytes flipped, inserted, removed, truncated.
    let valid = valid_frames();
    for _ in 0..200_000 {
        let mut bytes = valid[rng.below(valid.len() as u64) as usize].clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            match rng.below(4) {
                0 if at < bytes.len() => bytes[at] = rng.next() as u8,
                1 => bytes.insert(at, rng.next() as u8),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        check(&bytes, &mut accepted);
    }
    // Some mutations keep a frame valid; not all of them may.
    assert!(accepted > 0, "seed {SEED:#x}: nothing decoded at all");
    assert!(
        accepted < 400_000,
        "seed {SEED:#x}: the decoder accepts anything"
    );
}

#[test]
fn valid_frames_round_trip() {
    for bytes in valid_frames() {
        let frame = decode(&bytes).unwrap();
        assert_eq!(encode(&frame).unwrap(), bytes);
        if let Frame::Message(envelope) = frame {
            let Envelope { message, .. } = envelope.into();
            assert!(matches!(message, Message::AppendEntries(_)) || message.is_urgent());
        }
    }
}
