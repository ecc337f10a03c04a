//! One simulated node: the same [`Driver`] the actix node runs, over a simulated disk,
//! with a state machine and reply sinks that report to the checker.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::driver::{Counters, Driver, Limits, Responder, Run, WriteId};
use crate::error::ClientError;
use crate::storage::LogWrite;
use crate::StateMachine;

/// The simulated state machine: records every entry it applies (for State Machine
/// Safety) and answers a command with the command itself. Its state is the fold of
/// every entry it reflects, which its snapshots carry.
#[derive(Debug, Default)]
pub(super) struct SimMachine {
    pub(super) applied: Vec<Entry>,
    pub(super) fold: u64,
    pub(super) last: LogIndex,
    /// Set by a restore: (last index, fold), for the checker.
    pub(super) restored: Option<(LogIndex, u64)>,
    /// Offer a decoder, so that received snapshots are decoded off the node's thread
    /// (in simulated time) and swapped in later (by seed).
    pub(super) decode_off_thread: bool,
}

impl StateMachine for SimMachine {
    fn apply(&mut self, _index: LogIndex, command: &Bytes) -> Bytes {
        command.clone()
    }

    fn snapshot(&mut self) -> Option<Box<dyn crate::SnapshotChunks>> {
        Some(super::snapshots::snapshot_source(self.fold, self.last))
    }

    fn restore(
        &mut self,
        meta: &crate::SnapshotMeta,
        chunks: &mut dyn crate::SnapshotChunks,
    ) -> Result<(), crate::SnapshotError> {
        let fold = super::snapshots::decode_state(meta, chunks)?;
        self.set_state(fold, meta.last_included.index);
        self.restored = Some((meta.last_included.index, fold));
        Ok(())
    }

    fn snapshot_decoder(&self) -> Option<crate::SnapshotDecoder> {
        if !self.decode_off_thread {
            return None;
        }
        Some(Box::new(|meta, chunks| {
            let fold = super::snapshots::decode_state(meta, chunks)?;
            let decoded: crate::DecodedSnapshot = Box::new(fold);
            Ok(decoded)
        }))
    }

    fn install_decoded(
        &mut self,
        meta: &crate::SnapshotMeta,
        decoded: crate::DecodedSnapshot,
    ) -> Result<(), crate::SnapshotError> {
        let fold = *decoded
            .downcast::<u64>()
            .map_err(|_| crate::state_machine::foreign_decoded_snapshot())?;
        self.set_state(fold, meta.last_included.index);
        self.restored = Some((meta.last_included.index, fold));
        Ok(())
    }

    fn apply_entry(&mut self, entry: &Entry) -> Bytes {
        self.fold_in(entry);
        self.applied.push(entry.clone());
        match &entry.payload {
            crate::core::Payload::Command(command) => command.clone(),
            crate::core::Payload::Noop | crate::core::Payload::Membership(_) => Bytes::new(),
        }
    }
}

/// What a simulated client was told.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) node: NodeId,
    pub(super) command: Bytes,
    pub(super) accepted: Option<LogId>,
    pub(super) result: Result<Bytes, ClientError>,
    /// For a read: the committed prefix the checker knew when it was issued, and the
    /// read's answer.
    pub(super) read: Option<(LogIndex, Result<LogIndex, ClientError>)>,
}

/// A simulated client's reply channel.
#[derive(Debug)]
pub(super) struct SimReply {
    node: NodeId,
    command: Bytes,
    accepted: Option<LogId>,
    read_floor: Option<LogIndex>,
    sink: Rc<RefCell<Vec<Outcome>>>,
}

impl SimReply {
    pub(super) fn new(node: NodeId, command: Bytes, sink: &Rc<RefCell<Vec<Outcome>>>) -> Self {
        Self {
            node,
            command,
            accepted: None,
            read_floor: None,
            sink: Rc::clone(sink),
        }
    }

    /// A read's reply channel; `floor` is the committed prefix when it was issued.
    pub(super) fn read(node: NodeId, floor: LogIndex, sink: &Rc<RefCell<Vec<Outcome>>>) -> Self {
        Self {
            node,
            command: Bytes::new(),
            accepted: None,
            read_floor: Some(floor),
            sink: Rc::clone(sink),
        }
    }
}

impl Responder for SimReply {
    fn accepted(&mut self, id: LogId) {
        self.accepted = Some(id);
    }

    fn respond(self, result: Result<Bytes, ClientError>) {
        self.sink.borrow_mut().push(Outcome {
            node: self.node,
            command: self.command,
            accepted: self.accepted,
            result,
            read: None,
        });
    }

    fn read_done(self, result: Result<LogIndex, ClientError>) {
        let floor = self.read_floor.unwrap_or(0);
        self.sink.borrow_mut().push(Outcome {
            node: self.node,
            command: self.command,
            accepted: None,
            result: Err(ClientError::Stopped),
            read: Some((floor, result)),
        });
    }
}

pub(super) type SimDriver = Driver<SimMachine, SimReply>;

/// Driver limits for a seed: small bounds on some seeds so that merging, several writes
/// in flight, `Busy` answers and apply yields all happen.
pub(super) fn limits_for(rng: &mut SplitMix64) -> Limits {
    Limits {
        max_writes_in_flight: 1 + rng.below(4) as usize,
        max_pending_proposals: [4, 64, 1 << 16][rng.below(3) as usize],
        max_applies_per_run: [1, 16, 4096][rng.below(3) as usize],
        ..Limits::default()
    }
}

impl Simulation {
    pub(super) fn new_driver(&self, core: RaftCore, machine: SimMachine) -> SimDriver {
        Driver::new(
            core,
            machine,
            self.limits.clone(),
            Arc::new(Counters::default()),
        )
    }

    /// Runs node `i`'s driver and executes its output as a shell would, checking as it
    /// goes: writes go to the simulated disk, messages to the network, applied entries and
    /// answers to the checker.
    pub(super) fn process(&mut self, i: usize) -> Result<(), String> {
        loop {
            let Some(driver) = self.nodes[i].driver.as_mut() else {
                return Ok(());
            };
            let run = driver.run();
            self.execute_snapshots(i)?;
            let Some(driver) = self.nodes[i].driver.as_mut() else {
                return Ok(());
            };
            let out = driver.output();
            let writes = std::mem::take(&mut out.writes);
            let messages = std::mem::take(&mut out.messages);
            let events = std::mem::take(&mut out.events);
            let replies = std::mem::take(&mut out.replies);
            let transfers = std::mem::take(&mut out.transfers);
            let read_replies = std::mem::take(&mut out.read_replies);
            let memberships = std::mem::take(&mut out.memberships);
            let links = out.links.take();
            let applied = std::mem::take(&mut driver.state_machine_mut().applied);
            let has_work = driver.has_work();
            for (reply, result) in replies {
                reply.respond(result);
            }
            for (reply, result) in read_replies {
                reply.read_done(result);
            }
            let id = self.nodes[i].id;
            for (_, result) in transfers {
                match result {
                    Ok(leader) if leader != id && !self.members.contains(&leader) => {
                        return Err(format!(
                            "Transfer: node {id} reported unknown leader {leader}"
                        ));
                    }
                    Ok(leader) if leader != id => self.transfers.1 += 1,
                    _ => {}
                }
            }
            for (_, result) in &memberships {
                self.membership_done(i, result)?;
            }
            self.observe_events(i, &events)?;
            for (wid, write) in writes {
                self.start_write(i, wid, write);
            }
            self.check_links(i, &messages, links)?;
            for env in messages {
                self.send(env);
            }
            for entry in &applied {
                self.checker.applied(id, entry).map_err(|v| v.to_string())?;
            }
            self.check_outcomes()?;
            match run {
                Run::Fatal => return Err("a simulated write failed".into()),
                Run::Yield => continue,
                Run::Done if has_work => continue,
                Run::Done => return Ok(()),
            }
        }
    }

    /// A read answered with index `i` must cover every entry known committed when it
    /// was issued, and the node must have applied that far before answering.
    fn check_read(
        &mut self,
        node: NodeId,
        floor: LogIndex,
        result: &Result<LogIndex, ClientError>,
    ) -> Result<(), String> {
        match result {
            Ok(index) => {
                if *index < floor {
                    return Err(format!(
                        "Read: node {node} answered read index {index}, but {floor} was committed before the read began (stale read)"
                    ));
                }
                let applied = self.nodes[self.index_of(node)]
                    .core()
                    .map_or(0, |c| c.status().applied_index);
                if applied < *index {
                    return Err(format!(
                        "Read: node {node} answered read index {index} with only {applied} applied"
                    ));
                }
                self.reads_ok += 1;
            }
            Err(ClientError::Read(_) | ClientError::Busy) => self.reads_failed += 1,
            Err(e) => return Err(format!("Read: node {node} failed a read with {e}")),
        }
        Ok(())
    }

    fn start_write(&mut self, i: usize, id: WriteId, write: LogWrite) {
        let delay = Duration::from_nanos(
            self.rng
                .below(self.cfg.disk_delay_max.as_nanos() as u64 + 1),
        );
        let node = &mut self.nodes[i];
        let done = node.last_write_done.max(self.now) + delay;
        node.last_write_done = done;
        node.writes.push_back((id, write));
        let incarnation = node.incarnation;
        self.schedule(
            done,
            Action::WriteDone {
                node: i,
                incarnation,
            },
        );
    }

    /// A write of node `i` is durable: put it on the disk, tell the driver.
    pub(super) fn write_done(&mut self, i: usize) -> Result<(), String> {
        let Some((id, w)) = self.nodes[i].writes.pop_front() else {
            return Ok(());
        };
        self.trace.push(
            self.now,
            TraceEvent::WriteDone {
                node: self.nodes[i].id,
                ack: w.entries.last().map(Entry::log_id),
            },
        );
        // The logs are checked as the disks hold them: a write lost in a crash never
        // happened (a leader elected on its own vote may win its term again after
        // such a crash, with another log nobody ever saw).
        let node_id = self.nodes[i].id;
        if let Some(reset) = w.reset_to {
            self.checker
                .log_reset(node_id, reset.index)
                .map_err(|v| v.to_string())?;
        }
        self.checker
            .log_written(node_id, w.truncate_from, &w.entries)
            .map_err(|v| v.to_string())?;
        let n = &mut self.nodes[i];
        if let Some(reset) = w.reset_to {
            n.disk.prefix = reset;
            n.disk.entries.clear();
        }
        let prefix = n.disk.prefix.index;
        if let Some(t) = w.truncate_from {
            n.disk
                .entries
                .truncate(t.saturating_sub(prefix + 1) as usize);
        }
        if let Some(first) = w.entries.first() {
            n.disk
                .entries
                .truncate(first.index.saturating_sub(prefix + 1) as usize);
        }
        n.disk.entries.extend(w.entries);
        if let Some(h) = w.hard_state {
            n.disk.hard = h;
        }
        if let Some(driver) = n.driver.as_mut() {
            driver.write_done(id, Ok(()));
        }
        self.process(i)
    }

    /// Every answer a client got must agree with what committed: a success names the
    /// entry that committed at its index; a lost entry is not the one committed there.
    fn check_outcomes(&mut self) -> Result<(), String> {
        let outcomes = std::mem::take(&mut *self.outcomes.borrow_mut());
        for o in outcomes {
            if let Some((floor, result)) = &o.read {
                self.check_read(o.node, *floor, result)?;
                continue;
            }
            let entry = |id: LogId| Entry {
                term: id.term,
                index: id.index,
                payload: crate::core::Payload::Command(o.command.clone()),
            };
            match (&o.result, o.accepted) {
                (Ok(response), Some(id)) => {
                    if *response != o.command {
                        return Err(format!(
                            "Reply: node {} answered entry {id:?} with another command's response",
                            o.node
                        ));
                    }
                    if self.checker.committed_at(id.index) != Some(EntryPrint::of(&entry(id))) {
                        return Err(format!(
                            "Reply: node {} answered success for {id:?}, which is not what committed there",
                            o.node
                        ));
                    }
                }
                (Ok(_), None) => {
                    return Err(format!(
                        "Reply: node {} answered an unaccepted proposal",
                        o.node
                    ))
                }
                (Err(ClientError::LeadershipLost { index, term }), Some(id)) => {
                    let id2 = LogId::new(*term, *index);
                    if id != id2 {
                        return Err(format!(
                            "Reply: node {} lost {id2:?}, accepted {id:?}",
                            o.node
                        ));
                    }
                    if self.checker.committed_at(id.index) == Some(EntryPrint::of(&entry(id))) {
                        return Err(format!(
                            "Reply: node {} answered LeadershipLost for {id:?}, which committed",
                            o.node
                        ));
                    }
                }
                (Err(ClientError::NotLeader { .. } | ClientError::Busy), Some(id)) => {
                    return Err(format!(
                        "Reply: node {} refused {id:?} after accepting it",
                        o.node
                    ))
                }
                _ => {}
            }
            self.replies += 1;
        }
        Ok(())
    }
}
