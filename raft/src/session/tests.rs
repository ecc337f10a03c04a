use std::time::Duration;

use bytes::Bytes;

use super::*;

/// Counts applications and answers with "<command>#<count>".
#[derive(Debug, Default)]
struct Counter {
    applied: Vec<(LogIndex, Bytes)>,
}

impl StateMachine for Counter {
    fn apply(&mut self, index: LogIndex, command: &Bytes) -> Bytes {
        self.applied.push((index, command.clone()));
        format!(
            "{}#{}",
            String::from_utf8_lossy(command),
            self.applied.len()
        )
        .into()
    }
}

fn config(ttl_ms: u64, max_sessions: usize) -> SessionConfig {
    SessionConfig {
        ttl: Duration::from_millis(ttl_ms),
        max_sessions,
    }
}

/// A log of envelopes applied to a fresh machine, entry by entry.
struct Replica {
    machine: SessionStateMachine<Counter>,
    index: LogIndex,
}

impl Replica {
    fn new(config: SessionConfig) -> Self {
        Self {
            machine: SessionStateMachine::new(Counter::default(), config),
            index: 0,
        }
    }

    fn apply(&mut self, envelope: &Envelope) -> SessionResponse {
        self.apply_raw(&envelope.encode())
    }

    fn apply_raw(&mut self, bytes: &Bytes) -> SessionResponse {
        self.index += 1;
        let response = self.machine.apply(self.index, bytes);
        SessionResponse::decode(&response).expect("responses decode")
    }

    fn register(&mut self, stamp_ms: u64) -> ClientSession {
        let client = self
            .apply(&Envelope::Register { stamp_ms })
            .into_client_id()
            .expect("registered");
        ClientSession::new(client)
    }

    fn applied(&self) -> usize {
        self.machine.inner().applied.len()
    }
}

#[test]
fn a_duplicate_is_answered_from_the_session_and_not_applied_again() {
    let mut r = Replica::new(SessionConfig::default());
    let mut session = r.register(1_000);
    assert_eq!(
        session.client(),
        1,
        "the id is the registering entry's index"
    );
    let put = session.next_command("put x A");
    let first = r.apply(&put.envelope(1_001));
    assert_eq!(
        first,
        SessionResponse::Applied {
            response: "put x A#1".into(),
            duplicate: false
        }
    );
    // Another client's command in between, then the retry of the first.
    let mut other = r.register(1_002);
    let b = other.next_command("put x B");
    assert!(r.apply(&b.envelope(1_003)).into_result().is_ok());
    let retry = r.apply(&put.envelope(1_004));
    assert_eq!(
        retry,
        SessionResponse::Applied {
            response: "put x A#1".into(),
            duplicate: true
        }
    );
    assert_eq!(r.applied(), 2, "the retry was not applied again");
    // The next command of the session is applied.
    let next = session.next_command("put x C");
    assert_eq!(next.seq, 2);
    assert_eq!(
        r.apply(&next.envelope(1_005)).into_result().unwrap(),
        "put x C#3"
    );
}

#[test]
fn a_stale_sequence_number_is_refused() {
    let mut r = Replica::new(SessionConfig::default());
    let mut session = r.register(10);
    let one = session.next_command("a");
    let two = session.next_command("b");
    r.apply(&one.envelope(11));
    r.apply(&two.envelope(12));
    assert_eq!(
        r.apply(&one.envelope(13)),
        SessionResponse::Stale {
            client: session.client(),
            seq: 1,
            latest: 2
        }
    );
    let zero = SessionCommand {
        seq: 0,
        ..one.clone()
    };
    assert!(matches!(
        r.apply(&zero.envelope(14)).into_result(),
        Err(SessionError::Stale { seq: 0, .. })
    ));
    assert_eq!(r.applied(), 2);
}

#[test]
fn an_unknown_session_is_refused_not_applied() {
    let mut r = Replica::new(SessionConfig::default());
    let command = ClientSession::new(42).next_command("put x A");
    assert_eq!(
        r.apply(&command.envelope(5)).into_result(),
        Err(SessionError::Expired { client: 42 })
    );
    assert_eq!(r.applied(), 0);
}

#[test]
fn sessions_expire_at_the_same_index_on_every_replica() {
    // Stamps from different proposers arrive out of order: the clock takes the max.
    let mut log = vec![Envelope::Register { stamp_ms: 1_000 }]; // client 1
    log.push(Envelope::Register { stamp_ms: 1_050 }); // client 2
    let c1 = ClientSession::new(1).next_command("one");
    log.push(c1.envelope(1_100)); // client 1 active at 1100
    log.push(Envelope::Unsessioned {
        stamp_ms: 900, // behind: the clock stays at 1100
        command: "read".into(),
    });
    log.push(Envelope::Unsessioned {
        stamp_ms: 1_151, // 2 idle for 101 ms > ttl 100: expires here
        command: "read".into(),
    });
    log.push(Envelope::Unsessioned {
        stamp_ms: 1_201, // 1 idle for 101 ms: expires here
        command: "read".into(),
    });
    let mut replicas = [Replica::new(config(100, 10)), Replica::new(config(100, 10))];
    let mut membership = Vec::new();
    for envelope in &log {
        let mut seen = Vec::new();
        for r in &mut replicas {
            r.apply(envelope);
            let t = r.machine.sessions();
            seen.push((t.now_ms(), t.contains(1), t.contains(2), t.encode()));
        }
        assert_eq!(seen[0], seen[1], "replicas agree after every entry");
        membership.push((seen[0].0, seen[0].1, seen[0].2));
    }
    assert_eq!(
        membership,
        vec![
            (1_000, true, false),
            (1_050, true, true),
            (1_100, true, true),
            (1_100, true, true),
            (1_151, true, false),
            (1_201, false, false),
        ]
    );
    // The expired session's retry is refused, never re-applied.
    let before = replicas[0].applied();
    assert_eq!(
        replicas[0].apply(&c1.envelope(1_202)).into_result(),
        Err(SessionError::Expired { client: 1 })
    );
    assert_eq!(replicas[0].applied(), before);
}

#[test]
fn registering_past_the_bound_evicts_the_least_recently_used() {
    let mut r = Replica::new(config(1_000_000, 3));
    let mut a = r.register(1); // client 1
    let mut b = r.register(2); // client 2
    let _c = r.register(3); // client 3
                            // a is used again, so b is now the least recently used.
    r.apply(&a.next_command("x").envelope(4));
    let b1 = b.next_command("y");
    let _d = r.register(5); // client 5 (index 5): evicts b
    let t = r.machine.sessions();
    assert_eq!(t.len(), 3);
    assert!(t.contains(1) && !t.contains(2) && t.contains(3) && t.contains(5));
    assert_eq!(
        r.apply(&b1.envelope(6)).into_result(),
        Err(SessionError::Expired { client: 2 })
    );
    assert_eq!(
        r.applied(),
        1,
        "the evicted session's command was not applied"
    );
}

#[test]
fn the_table_round_trips_and_a_replay_rebuilds_it() {
    let cfg = config(500, 8);
    let mut log = Vec::new();
    let mut r = Replica::new(cfg);
    for i in 0..5u64 {
        log.push(Envelope::Register {
            stamp_ms: 100 * i + 1,
        });
        r.apply(log.last().unwrap());
    }
    for i in 0..5u64 {
        let mut s = ClientSession::new(i + 1);
        log.push(s.next_command(format!("cmd {i}")).envelope(600 + i));
        r.apply(log.last().unwrap());
    }
    let table = r.machine.sessions().clone();
    let decoded = SessionTable::decode(&table.encode(), cfg).unwrap();
    assert_eq!(decoded, table);
    // A node restarted from its log applies the same entries and gets the same table.
    let mut restarted = Replica::new(cfg);
    for envelope in &log {
        restarted.apply(envelope);
    }
    assert_eq!(restarted.machine.sessions(), &table);
    assert_eq!(restarted.machine.sessions().encode(), table.encode());
}

#[test]
fn decode_errors_are_typed() {
    assert_eq!(Envelope::decode(&Bytes::new()), Err(DecodeError::Empty));
    assert_eq!(
        Envelope::decode(&Bytes::from_static(&[9, 1])),
        Err(DecodeError::UnsupportedVersion { found: 9 })
    );
    assert_eq!(
        Envelope::decode(&Bytes::from_static(&[
            WIRE_VERSION,
            77,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0
        ])),
        Err(DecodeError::UnknownKind {
            what: "envelope kind",
            found: 77
        })
    );
    assert_eq!(
        Envelope::decode(&Bytes::from_static(&[WIRE_VERSION, 2, 0, 0])),
        Err(DecodeError::Truncated { what: "stamp" })
    );
    let command = ClientSession::new(3).next_command("c").envelope(1).encode();
    assert_eq!(
        Envelope::decode(&command.slice(..14)),
        Err(DecodeError::Truncated { what: "client id" })
    );
    let mut register = Envelope::Register { stamp_ms: 1 }.encode().to_vec();
    register.push(0);
    assert_eq!(
        Envelope::decode(&register.into()),
        Err(DecodeError::TrailingBytes { extra: 1 })
    );
    assert_eq!(
        SessionResponse::decode(&Bytes::from_static(&[WIRE_VERSION, 200])),
        Err(DecodeError::UnknownKind {
            what: "response tag",
            found: 200
        })
    );
    let table = SessionTable::new(SessionConfig::default()).encode();
    assert_eq!(
        SessionTable::decode(&table[..5], SessionConfig::default()),
        Err(DecodeError::Truncated { what: "clock" })
    );
    // A bare command (not an envelope) is answered with a typed refusal, not applied.
    let mut r = Replica::new(SessionConfig::default());
    let response = r.apply_raw(&Bytes::from_static(b"put x A"));
    assert!(matches!(
        response.clone().into_result(),
        Err(SessionError::Malformed { .. })
    ));
    assert_eq!(r.applied(), 0);
}

#[test]
fn envelopes_and_responses_round_trip() {
    let envelopes = [
        Envelope::Register { stamp_ms: 7 },
        Envelope::Command {
            client: 3,
            seq: 9,
            stamp_ms: 8,
            command: "put k v".into(),
        },
        Envelope::Unsessioned {
            stamp_ms: u64::MAX,
            command: Bytes::new(),
        },
    ];
    for e in envelopes {
        assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
    }
    let responses = [
        SessionResponse::Registered { client: 5 },
        SessionResponse::Applied {
            response: "ok".into(),
            duplicate: true,
        },
        SessionResponse::SessionExpired { client: 6 },
        SessionResponse::Stale {
            client: 1,
            seq: 2,
            latest: 3,
        },
        SessionResponse::Malformed {
            reason: "why".into(),
        },
    ];
    for r in responses {
        assert_eq!(SessionResponse::decode(&r.encode()).unwrap(), r);
    }
    // The layout is a contract: version, kind, stamp, client, seq, command.
    assert_eq!(
        Envelope::Command {
            client: 1,
            seq: 2,
            stamp_ms: 3,
            command: "x".into()
        }
        .encode()
        .to_vec(),
        [
            &[WIRE_VERSION, 2][..],
            &3u64.to_be_bytes()[..],
            &1u64.to_be_bytes()[..],
            &2u64.to_be_bytes()[..],
            &b"x"[..]
        ]
        .concat()
    );
}

/// A machine that remembers its commands and snapshots them (each as `len: u32, bytes`),
/// with both restore paths.
#[derive(Debug, Default, Clone, PartialEq)]
struct Notes {
    commands: Vec<Bytes>,
}

impl Notes {
    fn decode(chunks: &mut dyn crate::SnapshotChunks) -> Result<Vec<Bytes>, crate::SnapshotError> {
        let bytes = crate::snapshot::read_all(chunks)?;
        let mut at = 0;
        let mut out = Vec::new();
        while at < bytes.len() {
            let len = bytes
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap()) as usize)
                .ok_or_else(|| crate::SnapshotError::Malformed("cut length".into()))?;
            let body = bytes
                .get(at + 4..at + 4 + len)
                .ok_or_else(|| crate::SnapshotError::Malformed("cut body".into()))?;
            out.push(Bytes::copy_from_slice(body));
            at += 4 + len;
        }
        Ok(out)
    }
}

impl StateMachine for Notes {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        self.commands.push(command.clone());
        format!("n{}", self.commands.len()).into()
    }

    fn snapshot(&mut self) -> Option<Box<dyn crate::SnapshotChunks>> {
        // One small chunk per command, so that records of the session framing and of
        // this machine straddle chunks.
        let pieces: Vec<Bytes> = self
            .commands
            .iter()
            .flat_map(|c| {
                let mut b = (c.len() as u32).to_be_bytes().to_vec();
                b.extend_from_slice(c);
                b.chunks(3).map(Bytes::copy_from_slice).collect::<Vec<_>>()
            })
            .collect();
        Some(Box::new(crate::snapshot::VecChunks::new(pieces)))
    }

    fn restore(
        &mut self,
        _meta: &crate::SnapshotMeta,
        chunks: &mut dyn crate::SnapshotChunks,
    ) -> Result<(), crate::SnapshotError> {
        self.commands = Self::decode(chunks)?;
        Ok(())
    }

    fn snapshot_decoder(&self) -> Option<crate::SnapshotDecoder> {
        Some(Box::new(|_meta, chunks| {
            let decoded: crate::DecodedSnapshot = Box::new(Notes::decode(chunks)?);
            Ok(decoded)
        }))
    }

    fn install_decoded(
        &mut self,
        _meta: &crate::SnapshotMeta,
        decoded: crate::DecodedSnapshot,
    ) -> Result<(), crate::SnapshotError> {
        self.commands = *decoded
            .downcast::<Vec<Bytes>>()
            .map_err(|_| crate::state_machine::foreign_decoded_snapshot())?;
        Ok(())
    }
}

/// Re-cuts a stream into 5-byte chunks.
fn recut(chunks: &mut dyn crate::SnapshotChunks) -> Vec<Bytes> {
    let bytes = crate::snapshot::read_all(chunks).unwrap();
    bytes.chunks(5).map(Bytes::copy_from_slice).collect()
}

#[test]
fn a_snapshot_carries_the_session_table_and_restores_by_either_path() {
    let meta = crate::SnapshotMeta {
        last_included: crate::core::LogId::new(1, 4),
        membership: crate::core::ClusterConfig::bootstrap([1]),
    };
    let mut a = SessionStateMachine::new(Notes::default(), SessionConfig::default());
    let client =
        SessionResponse::decode(&a.apply(1, &Envelope::Register { stamp_ms: 10 }.encode()))
            .unwrap()
            .into_client_id()
            .unwrap();
    let mut session = ClientSession::new(client);
    let first = session.next_command("put x A");
    a.apply(2, &first.envelope(11).encode());
    let second = session.next_command("put y B");
    a.apply(3, &second.envelope(12).encode());
    let pieces = recut(
        a.snapshot()
            .expect("the wrapped machine snapshots")
            .as_mut(),
    );

    // Restored on the node's thread.
    let mut b = SessionStateMachine::new(Notes::default(), SessionConfig::default());
    let mut chunks = crate::snapshot::VecChunks::new(pieces.clone());
    b.restore(&meta, &mut chunks).unwrap();
    assert_eq!(b.inner(), a.inner());
    assert_eq!(b.sessions().encode(), a.sessions().encode());
    // The retry of the last command is answered from the restored table.
    let retry = SessionResponse::decode(&b.apply(4, &second.envelope(13).encode())).unwrap();
    assert_eq!(
        retry,
        SessionResponse::Applied {
            response: "n2".into(),
            duplicate: true
        }
    );

    // Decoded off the node's thread, swapped in on it.
    let mut c = SessionStateMachine::new(Notes::default(), SessionConfig::default());
    let decode = c
        .snapshot_decoder()
        .expect("the wrapped machine decodes off-thread");
    let mut chunks = crate::snapshot::VecChunks::new(pieces.clone());
    let on_thread = meta.clone();
    let decoded = std::thread::spawn(move || decode(&on_thread, &mut chunks).unwrap())
        .join()
        .unwrap();
    c.install_decoded(&meta, decoded).unwrap();
    assert_eq!(c.inner(), a.inner());
    assert_eq!(c.sessions().encode(), a.sessions().encode());

    // A snapshot cut short is refused and changes nothing.
    let before = c.sessions().encode();
    for cut in [4, 9, 20] {
        let bytes: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
        let mut short = crate::snapshot::VecChunks::new([Bytes::copy_from_slice(&bytes[..cut])]);
        assert!(c.restore(&meta, &mut short).is_err(), "cut at {cut}");
        assert_eq!(c.sessions().encode(), before);
        assert_eq!(c.inner(), a.inner());
    }
    let mut wrong =
        crate::snapshot::VecChunks::new([Bytes::from_static(&[9, 0, 0, 0, 0, 0, 0, 0, 0])]);
    assert!(matches!(
        c.restore(&meta, &mut wrong),
        Err(crate::SnapshotError::Malformed(m)) if m.contains("version")
    ));
}
