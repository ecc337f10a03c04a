//! In-process transport for actraft, with deterministic fault injection.
//!
//! A [`MemRouter`] links the nodes of one process; [`MemRouter::transport`] gives each
//! node its [`MemTransport`]. Without faults a message goes straight from the sender's
//! thread into the receiver's inbox, so this is also the transport of the throughput
//! benchmarks. With faults, the router isolates nodes, partitions the cluster, drops
//! messages and delays them (the jitter reorders them), all switchable while the cluster
//! runs and all random decisions drawn from one seed. Content filters
//! ([`MemRouter::add_filter`]) pick messages by what they carry and drop, delay or
//! duplicate them ([`FilterAction`]): a leader that hears no replies, slow votes only.
//! Counters ([`Stats`]) cover the whole router ([`MemRouter::stats`]), each node both
//! ways ([`MemRouter::node_stats`]) and each directed link ([`MemRouter::link_stats`]),
//! with every drop counted by its cause; [`MemRouter::set_observer`] lets a test inspect
//! what was delivered.
//!
//! Nodes added at run time need no address: `router.transport(id)` makes a new node
//! reachable by its id. [`Transport::set_members`](actraft::Transport::set_members)
//! makes a transport follow its cluster's configuration: the router then delivers to it
//! its members' messages and other nodes' requests (a leader or candidate its
//! configuration does not name yet: the node decides), but not other nodes' replies
//! and reads (they count as [`Stats::dropped_refused`] on their link), and its sends to
//! an unlisted node fail with `UnknownPeer` (see [`MemTransport`]).
//!
//! ```
//! use std::time::Duration;
//!
//! use actraft::core::{Envelope, Message, VoteReply};
//! use actraft::{Inbox, Transport};
//! use actraft_transport_mem::MemRouter;
//!
//! let router = MemRouter::with_seed(42);
//! let (one, two) = (router.transport(1), router.transport(2));
//! let (inbox, mut received) = Inbox::channel();
//! two.start(inbox).unwrap();
//! one.start(Inbox::from_fn(|_| true)).unwrap();
//!
//! let reply = Message::RequestVoteReply(VoteReply { term: 1, granted: true });
//! one.send(Envelope { from: 1, to: 2, message: reply.clone() }).unwrap();
//! assert_eq!(received.try_recv().unwrap().message, reply); // delivered synchronously
//!
//! router.isolate(2);
//! one.send(Envelope { from: 1, to: 2, message: reply.clone() }).unwrap();
//! assert!(received.try_recv().is_err()); // dropped
//! router.heal();
//!
//! // Faults for a chaos test: 10% loss and 1-5 ms of jitter everywhere.
//! router.set_drop_rate(0.1);
//! router.set_delay(Duration::from_millis(1), Duration::from_millis(5));
//! router.clear_faults();
//!
//! let stats = router.stats();
//! assert_eq!((stats.sent, stats.delivered, stats.dropped_cut), (2, 1, 1));
//! assert_eq!(router.link_stats(1, 2), stats); // the only link used
//! assert_eq!(router.node_stats(2).inbound.dropped_cut, 1);
//! ```
#![warn(missing_docs)]

mod faults;
mod filter;
mod rng;
mod route;
mod router;
mod stats;
mod transport;

pub use filter::{FilterAction, FilterId};
pub use router::{MemRouter, DEFAULT_SEED};
pub use stats::{NodeStats, Stats};
pub use transport::MemTransport;
