//! The `LogStorage` conformance suite. Every storage crate runs it; so can yours:
//!
//! ```ignore
//! #[tokio::test]
//! async fn conformance() {
//!     actraft::testkit::storage::run_suite(MyHarness::new()).await;
//! }
//! ```
//!
//! Each case is also a public function, for running them one by one. A case panics with
//! a message naming the rule it found broken.

use async_trait::async_trait;
use bytes::Bytes;

use crate::core::{Entry, HardState, LogId, LogIndex, Payload, Term};
use crate::storage::{LogStorage, LogWrite, StorageError};

/// Creates storages for the suite.
#[async_trait]
pub trait StorageHarness: Send {
    /// The storage under test.
    type Storage: LogStorage;

    /// A new, empty storage.
    async fn fresh(&mut self) -> Self::Storage;

    /// Closes `storage` and opens it again from where it keeps its data, as a restarted
    /// process would. Return `None` for a storage that keeps nothing across a reopen.
    async fn reopen(&mut self, storage: Self::Storage) -> Option<Self::Storage>;
}

/// Builds entries `from..=to`, all of `term`, each carrying `payload_len` bytes.
pub fn entries(from: LogIndex, to: LogIndex, term: Term, payload_len: usize) -> Vec<Entry> {
    (from..=to)
        .map(|index| Entry {
            term,
            index,
            payload: Payload::Command(Bytes::from(
                (0..payload_len)
                    .map(|i| (index as usize + i) as u8)
                    .collect::<Vec<_>>(),
            )),
        })
        .collect()
}

async fn last(storage: &impl LogStorage) -> LogId {
    storage.state().await.expect("state()").last
}

fn assert_recoverable<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
    match result {
        Err(StorageError::OutOfRange { .. } | StorageError::Compacted { .. }) => {}
        other => panic!("{what}: expected OutOfRange or Compacted, got {other:?}"),
    }
}

/// Runs every case.
pub async fn run_suite<H: StorageHarness>(mut harness: H) {
    empty_storage(&mut harness).await;
    append_and_read_ranges(&mut harness).await;
    out_of_range_reads_are_typed(&mut harness).await;
    truncate_conflicting_suffix(&mut harness).await;
    append_replaces_from_its_first_index(&mut harness).await;
    hard_state_round_trip(&mut harness).await;
    compaction_bounds(&mut harness).await;
    holes_are_refused(&mut harness).await;
    large_batches(&mut harness).await;
    state_after_reopen(&mut harness).await;
    reset_replaces_the_log(&mut harness).await;
}

/// A write with `reset_to` drops every stored entry and restarts the log after that id
/// (a snapshot installed from the leader), then applies the rest of the write; the new
/// bounds survive a reopen.
pub async fn reset_replaces_the_log<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    s.append(entries(1, 10, 1, 8)).await.expect("append");
    s.compact(3).await.expect("compact");
    let reset = LogId::new(4, 50);
    s.write(LogWrite {
        reset_to: Some(reset),
        entries: entries(51, 52, 5, 8),
        ..LogWrite::default()
    })
    .await
    .expect("reset with entries after it");
    let state = s.state().await.expect("state");
    assert_eq!(state.prefix, reset, "the reset point is the new prefix");
    assert_eq!(state.last, LogId::new(5, 52));
    assert!(
        matches!(s.entries(10, 10).await, Err(StorageError::Compacted { .. })),
        "old entries are gone"
    );
    assert_eq!(s.entries(51, 52).await.expect("read").len(), 2);
    // A reset behind the current log is allowed too, and leaves it empty.
    s.write(LogWrite {
        reset_to: Some(LogId::new(2, 20)),
        ..LogWrite::default()
    })
    .await
    .expect("reset alone");
    let state = s.state().await.expect("state");
    assert_eq!(
        (state.prefix, state.last),
        (LogId::new(2, 20), LogId::new(2, 20))
    );
    s.append(entries(21, 21, 6, 8))
        .await
        .expect("append after reset");
    if let Some(s) = h.reopen(s).await {
        let state = s.state().await.expect("state after reopen");
        assert_eq!(state.prefix, LogId::new(2, 20));
        assert_eq!(state.last, LogId::new(6, 21));
        assert_eq!(s.entries(21, 21).await.expect("read").len(), 1);
    }
}

/// A new storage has a zero hard state and no entries.
pub async fn empty_storage<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    let state = s.state().await.expect("state()");
    assert_eq!(state.hard_state, HardState::default(), "fresh hard state");
    assert_eq!(state.last, LogId::default(), "fresh log is empty");
    assert_recoverable(s.entries(1, 1).await, "read from an empty log");
}

/// Appended entries read back in any sub-range.
pub async fn append_and_read_ranges<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    let mut all = entries(1, 5, 1, 16);
    all.extend(entries(6, 10, 2, 16));
    s.append(all[..5].to_vec()).await.expect("append 1..=5");
    s.append(all[5..].to_vec()).await.expect("append 6..=10");
    assert_eq!(last(&s).await, LogId::new(2, 10));
    assert_eq!(s.entries(1, 10).await.expect("read all"), all);
    assert_eq!(
        s.entries(3, 5).await.expect("read 3..=5"),
        all[2..5].to_vec()
    );
    assert_eq!(
        s.entries(10, 10).await.expect("read 10"),
        all[9..10].to_vec()
    );
}

/// Reads outside the log fail with a recoverable, typed error and change nothing.
pub async fn out_of_range_reads_are_typed<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    s.append(entries(1, 5, 1, 8)).await.expect("append");
    assert_recoverable(s.entries(4, 6).await, "read past the end");
    assert_recoverable(s.entries(6, 6).await, "read after the end");
    assert_recoverable(s.entries(0, 2).await, "read index 0");
    assert_recoverable(s.entries(4, 3).await, "read an inverted range");
    assert_eq!(
        last(&s).await,
        LogId::new(1, 5),
        "failed reads change nothing"
    );
}

/// Truncating a conflicting suffix and appending the leader's entries in one write.
pub async fn truncate_conflicting_suffix<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    s.append(entries(1, 10, 1, 8)).await.expect("append");
    let replacement = entries(6, 8, 2, 8);
    s.write(LogWrite {
        truncate_from: Some(6),
        entries: replacement.clone(),
        hard_state: Some(HardState {
            current_term: 2,
            voted_for: Some(3),
        }),
        reset_to: None,
    })
    .await
    .expect("truncate and append");
    assert_eq!(last(&s).await, LogId::new(2, 8));
    let mut want = entries(1, 5, 1, 8);
    want.extend(replacement);
    assert_eq!(s.entries(1, 8).await.expect("read"), want);
    assert_recoverable(s.entries(9, 9).await, "read a truncated entry");
    s.truncate(4).await.expect("plain truncate");
    assert_eq!(last(&s).await, LogId::new(1, 3));
}

/// Appending at an index the log holds replaces everything from there.
pub async fn append_replaces_from_its_first_index<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    s.append(entries(1, 6, 1, 8)).await.expect("append");
    s.append(entries(4, 4, 3, 8)).await.expect("overwrite at 4");
    assert_eq!(last(&s).await, LogId::new(3, 4), "entries after 4 are gone");
}

/// The hard state reads back as saved, alone or within a write.
pub async fn hard_state_round_trip<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    let hs = HardState {
        current_term: 7,
        voted_for: Some(2),
    };
    s.save_hard_state(hs).await.expect("save");
    assert_eq!(s.state().await.expect("state").hard_state, hs);
    let hs2 = HardState {
        current_term: 8,
        voted_for: None,
    };
    s.write(LogWrite {
        truncate_from: None,
        entries: entries(1, 2, 8, 4),
        hard_state: Some(hs2),
        reset_to: None,
    })
    .await
    .expect("write with hard state");
    let state = s.state().await.expect("state");
    assert_eq!(state.hard_state, hs2);
    assert_eq!(state.last, LogId::new(8, 2));
}

/// Compaction removes a prefix; reads into it are typed errors; bounds are enforced.
pub async fn compaction_bounds<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    s.append(entries(1, 10, 1, 8)).await.expect("append");
    s.compact(4).await.expect("compact to 4");
    let state = s.state().await.expect("state");
    assert_eq!(state.prefix, LogId::new(1, 4), "prefix after compaction");
    assert_eq!(state.last, LogId::new(1, 10));
    assert!(
        matches!(s.entries(4, 5).await, Err(StorageError::Compacted { .. })),
        "reading a compacted entry is Compacted"
    );
    assert_eq!(s.entries(5, 10).await.expect("read after prefix").len(), 6);
    s.compact(2)
        .await
        .expect("compacting behind the prefix is a no-op");
    assert_recoverable(s.compact(11).await, "compact past the end");
    let err = s.truncate(3).await;
    assert!(
        matches!(err, Err(StorageError::InvalidWrite(_))),
        "truncating into the prefix is refused, got {err:?}"
    );
    s.append(entries(11, 12, 2, 8))
        .await
        .expect("append after compaction");
    assert_eq!(last(&s).await, LogId::new(2, 12));
}

/// Appending past the end would leave a hole, and is refused.
pub async fn holes_are_refused<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    s.append(entries(1, 3, 1, 8)).await.expect("append");
    let err = s.append(entries(5, 6, 1, 8)).await;
    assert!(
        matches!(err, Err(StorageError::InvalidWrite(_))),
        "a hole is refused, got {err:?}"
    );
    assert_eq!(
        last(&s).await,
        LogId::new(1, 3),
        "a refused write changes nothing"
    );
}

/// Large batches and large entries round-trip.
pub async fn large_batches<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    let batch = entries(1, 10_000, 1, 100);
    s.append(batch.clone()).await.expect("append 10k entries");
    assert_eq!(s.entries(1, 10_000).await.expect("read 10k"), batch);
    let big = entries(10_001, 10_001, 1, 8 << 20);
    s.append(big.clone()).await.expect("append an 8 MiB entry");
    assert_eq!(s.entries(10_001, 10_001).await.expect("read it"), big);
}

/// A durable storage reopens with its hard state, prefix and entries.
pub async fn state_after_reopen<H: StorageHarness>(h: &mut H) {
    let s = h.fresh().await;
    let hs = HardState {
        current_term: 5,
        voted_for: Some(1),
    };
    s.write(LogWrite {
        truncate_from: None,
        entries: entries(1, 20, 5, 32),
        hard_state: Some(hs),
        reset_to: None,
    })
    .await
    .expect("write");
    s.truncate(16).await.expect("truncate");
    s.compact(3).await.expect("compact");
    let before = s.state().await.expect("state");
    let Some(s) = h.reopen(s).await else {
        return; // keeps nothing across a reopen
    };
    let after = s.state().await.expect("state after reopen");
    assert_eq!(after, before, "state survives a reopen");
    assert_eq!(
        s.entries(4, 15).await.expect("entries after reopen"),
        entries(4, 15, 5, 32)
    );
}
