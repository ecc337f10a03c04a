//! Golden bytes of the wire format: every frame kind of every supported protocol
//! version, checked in under `tests/golden/wire-v<N>.txt`, one `name: hex` line each.
//!
//! An accidental change to the format (a reordered field or variant, a changed codec
//! setting, a conversion that swaps two fields) changes some sample's bytes and fails
//! here. A deliberate change is a new protocol version with a new file; see the rules in
//! `actraft_transport_quic::wire`. `ACTRAFT_BLESS_WIRE=1` writes the current version's
//! file when, and only when, it does not exist yet.

use std::collections::BTreeMap;
use std::path::PathBuf;

use actraft::core::{
    AppendReply, AppendRequest, AppendResult, ConflictHint, Entry, Envelope, InstallSnapshotReply,
    InstallSnapshotRequest, LogId, Message, Payload, ReadIndexReply, ReadIndexRequest,
    SnapshotResult, TimeoutNow, VoteReply, VoteRequest,
};
use actraft_transport_quic::codec::{decode, encode, hello_version};
use actraft_transport_quic::wire::{
    self, Frame, Hello, PROTOCOL_VERSION, RETIRED_VERSIONS, SUPPORTED_VERSIONS,
};
use bytes::Bytes;

/// What a sample frame is, before it is put on the wire: the hello, or a core message
/// (converted to the wire's form on the way, as the transport does).
#[derive(Debug, Clone, PartialEq)]
enum Sample {
    Hello(Hello),
    Message(Envelope),
}

impl Sample {
    fn frame(&self) -> Frame {
        match self {
            Sample::Hello(h) => Frame::Hello(h.clone()),
            Sample::Message(e) => Frame::Message(wire::Envelope::from(e.clone())),
        }
    }

    fn from_frame(frame: Frame) -> Self {
        match frame {
            Frame::Hello(h) => Sample::Hello(h),
            Frame::Message(e) => Sample::Message(e.into()),
        }
    }
}

fn message(message: Message) -> Sample {
    // A recipient id above 65535 takes the varint's 4-byte form.
    Sample::Message(Envelope {
        from: 3,
        to: 70_000,
        message,
    })
}

/// One sample per frame kind and per variant of every enum inside a frame, of the
/// current version. Terms above 250 take the varint's 2-byte form.
fn samples() -> Vec<(&'static str, Sample)> {
    vec![
        (
            "hello",
            Sample::Hello(Hello {
                version: PROTOCOL_VERSION,
                cluster: "kv-prod".into(),
                from: 3,
                instance: 0x0123_4567_89ab_cdef,
            }),
        ),
        (
            "request_vote",
            message(Message::RequestVote(VoteRequest {
                term: 300,
                last_log: LogId::new(299, 1_000_000),
                leader_transfer: false,
            })),
        ),
        (
            "transfer_vote",
            message(Message::RequestVote(VoteRequest {
                term: 301,
                last_log: LogId::new(300, 1_000_001),
                leader_transfer: true,
            })),
        ),
        (
            "read_index",
            message(Message::ReadIndex(ReadIndexRequest {
                term: 300,
                ctx: 0xfeed,
            })),
        ),
        (
            "read_index_reply",
            message(Message::ReadIndexReply(ReadIndexReply {
                term: 300,
                ctx: 0xfeed,
                index: Some(1_000_001),
            })),
        ),
        (
            "read_index_reply_refused",
            message(Message::ReadIndexReply(ReadIndexReply {
                term: 300,
                ctx: 1,
                index: None,
            })),
        ),
        (
            "timeout_now",
            message(Message::TimeoutNow(TimeoutNow {
                term: 300,
                last_log: LogId::new(300, 1_000_001),
            })),
        ),
        (
            "request_vote_reply",
            message(Message::RequestVoteReply(VoteReply {
                term: 300,
                granted: true,
            })),
        ),
        (
            "pre_vote",
            message(Message::PreVote(VoteRequest {
                term: 8,
                last_log: LogId::new(7, 42),
                leader_transfer: false,
            })),
        ),
        (
            "pre_vote_reply",
            message(Message::PreVoteReply(VoteReply {
                term: 8,
                granted: false,
            })),
        ),
        (
            "heartbeat",
            message(Message::AppendEntries(AppendRequest {
                term: 5,
                prev_log: LogId::new(5, 250),
                entries: vec![],
                leader_commit: 249,
                read_round: 7,
            })),
        ),
        (
            "append_entries",
            message(Message::AppendEntries(AppendRequest {
                term: 5,
                prev_log: LogId::new(4, 9),
                entries: vec![
                    Entry {
                        term: 5,
                        index: 10,
                        payload: Payload::Noop,
                    },
                    Entry {
                        term: 5,
                        index: 11,
                        payload: Payload::Command(Bytes::from_static(b"set x 1")),
                    },
                    Entry {
                        term: 5,
                        index: 12,
                        payload: Payload::Command(Bytes::new()),
                    },
                ],
                leader_commit: 9,
                read_round: 0,
            })),
        ),
        (
            "append_entries_membership",
            message(Message::AppendEntries(AppendRequest {
                term: 5,
                prev_log: LogId::new(5, 12),
                entries: vec![Entry {
                    term: 5,
                    index: 13,
                    payload: Payload::Membership(Box::new(actraft::ClusterConfig::Stable(
                        actraft::Membership::new([1, 2, 70_000], [9]).with_address(9, "n9:1"),
                    ))),
                }],
                leader_commit: 12,
                read_round: 1,
            })),
        ),
        (
            "append_reply_success",
            message(Message::AppendEntriesReply(AppendReply {
                term: 5,
                result: AppendResult::Success { match_index: 12 },
                read_round: 300,
            })),
        ),
        (
            "append_reply_conflict",
            message(Message::AppendEntriesReply(AppendReply {
                term: 6,
                result: AppendResult::Conflict {
                    rejected: 20,
                    hint: ConflictHint {
                        term: Some(4),
                        index: 17,
                    },
                },
                read_round: 0,
            })),
        ),
        (
            "append_reply_conflict_short_log",
            message(Message::AppendEntriesReply(AppendReply {
                term: 6,
                result: AppendResult::Conflict {
                    rejected: 20,
                    hint: ConflictHint {
                        term: None,
                        index: 15,
                    },
                },
                read_round: 0,
            })),
        ),
        (
            "install_snapshot",
            message(Message::InstallSnapshot(Box::new(InstallSnapshotRequest {
                term: 300,
                meta: actraft::SnapshotMeta {
                    last_included: LogId::new(299, 1_000_000),
                    membership: actraft::ClusterConfig::bootstrap([1, 2, 70_000]),
                },
                offset: 1 << 20,
                data: Bytes::from_static(b"chunk"),
                done: false,
            }))),
        ),
        (
            "install_snapshot_last",
            message(Message::InstallSnapshot(Box::new(InstallSnapshotRequest {
                term: 5,
                meta: actraft::SnapshotMeta {
                    last_included: LogId::new(4, 9),
                    membership: actraft::ClusterConfig::Joint {
                        old: actraft::Membership::new([3], [4]).with_address(4, "h4:7000"),
                        new: actraft::Membership::new([4], []).with_address(4, "h4:7000"),
                    },
                },
                offset: 0,
                data: Bytes::new(),
                done: true,
            }))),
        ),
        (
            "install_snapshot_reply_stored",
            message(Message::InstallSnapshotReply(InstallSnapshotReply {
                term: 300,
                last_included: LogId::new(299, 1_000_000),
                result: SnapshotResult::Stored { offset: 2 << 20 },
            })),
        ),
        (
            "install_snapshot_reply_resend",
            message(Message::InstallSnapshotReply(InstallSnapshotReply {
                term: 300,
                last_included: LogId::new(299, 1_000_000),
                result: SnapshotResult::Resend { offset: 0 },
            })),
        ),
        (
            "install_snapshot_reply_installed",
            message(Message::InstallSnapshotReply(InstallSnapshotReply {
                term: 6,
                last_included: LogId::new(4, 9),
                result: SnapshotResult::Installed,
            })),
        ),
    ]
}

fn golden_path(version: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("wire-v{version}.txt"))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn from_hex(hex: &str) -> Vec<u8> {
    hex.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("a hex byte"))
        .collect()
}

/// The `name: hex` lines of a golden file, in order; `#` starts a comment line.
fn read_golden(version: u16) -> Vec<(String, Vec<u8>)> {
    let path = golden_path(version);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. A new protocol version needs its golden file: run \
             ACTRAFT_BLESS_WIRE=1 cargo test -p actraft-transport-quic --test golden",
            path.display()
        )
    });
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, hex) = l.split_once(':').expect("a `name: hex` line");
            (name.trim().to_string(), from_hex(hex))
        })
        .collect()
}

fn bless_if_asked() {
    if std::env::var_os("ACTRAFT_BLESS_WIRE").is_none() {
        return;
    }
    let path = golden_path(PROTOCOL_VERSION);
    if path.exists() {
        // Never re-bless a version: peers in the field speak it as it is.
        return;
    }
    let mut text = format!(
        "# Golden bytes of actraft's QUIC wire format, protocol version {PROTOCOL_VERSION}.\n\
         # One frame per line: `name: hex` (codec output, without the 4-byte length prefix).\n\
         # Never edit: a format change is a new protocol version with a new file.\n"
    );
    for (name, sample) in samples() {
        let bytes = encode(&sample.frame()).unwrap();
        text.push_str(&format!("{name}: {}\n", to_hex(&bytes)));
    }
    std::fs::write(&path, text).unwrap();
}

#[test]
fn current_version_encodes_to_its_golden_bytes() {
    bless_if_asked();
    let golden: BTreeMap<String, Vec<u8>> = read_golden(PROTOCOL_VERSION).into_iter().collect();
    let samples = samples();
    let names: Vec<&str> = samples.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        golden.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted
        },
        "the golden file and the samples must name the same frames"
    );
    for (name, sample) in samples {
        let bytes = encode(&sample.frame()).unwrap();
        assert_eq!(
            to_hex(&bytes),
            to_hex(&golden[name]),
            "the encoding of `{name}` changed: the wire format of version \
             {PROTOCOL_VERSION} is fixed; a change needs a new protocol version"
        );
        let decoded = Sample::from_frame(decode(&golden[name]).unwrap());
        assert_eq!(decoded, sample, "`{name}` decodes to something else");
    }
}

#[test]
fn retired_versions_are_not_supported() {
    for version in RETIRED_VERSIONS {
        assert!(!SUPPORTED_VERSIONS.contains(version), "v{version}");
        assert!(*version < PROTOCOL_VERSION, "v{version}");
    }
}

/// Supported versions decode and re-encode byte for byte; so do retired ones (their
/// peers are refused by version, but their frames must not turn into something else).
#[test]
fn every_supported_version_still_decodes() {
    assert!(SUPPORTED_VERSIONS.contains(&PROTOCOL_VERSION));
    for &version in SUPPORTED_VERSIONS.iter().chain(RETIRED_VERSIONS) {
        let golden = read_golden(version);
        assert!(!golden.is_empty(), "version {version} has no samples");
        for (name, bytes) in golden {
            let frame = decode(&bytes)
                .unwrap_or_else(|e| panic!("v{version} `{name}` no longer decodes: {e}"));
            assert_eq!(
                encode(&frame).unwrap(),
                bytes,
                "v{version} `{name}` re-encodes differently"
            );
            if let Frame::Hello(hello) = &frame {
                assert_eq!(hello.version, version, "v{version} `{name}`");
                assert_eq!(hello_version(&bytes), Some(version), "v{version} `{name}`");
            }
        }
    }
}
