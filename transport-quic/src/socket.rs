//! A UDP socket for quinn that the transport can close at once.
//!
//! quinn's own socket lives as long as its endpoint driver and connection tasks, which
//! wind down asynchronously after the endpoint closes. A node restarted in the same
//! process must rebind the same port right after the old transport stopped, so this
//! socket drops the file descriptor when [`ClosableSocket::close`] is called: afterwards
//! sends are discarded and receives never complete, and quinn's tasks finish on their
//! own timers.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{ready, Context, Poll};

use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::Interest;

struct Open {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
}

/// Asks the kernel for receive and send buffers of `bytes` each on `socket` and
/// returns the sizes it granted (receive, send). The kernel caps a request at
/// `net.core.rmem_max` / `net.core.wmem_max` (and Linux reports twice what it keeps
/// for data, the rest being its bookkeeping). The transport does this with
/// [`QuicConfig::socket_buffer`](crate::QuicConfig::socket_buffer) when it binds; a
/// measurement of raw quinn uses it to compare like with like.
pub fn size_socket_buffers(
    socket: &std::net::UdpSocket,
    bytes: usize,
) -> io::Result<(usize, usize)> {
    let sock = socket2::SockRef::from(socket);
    sock.set_recv_buffer_size(bytes)?;
    sock.set_send_buffer_size(bytes)?;
    Ok((sock.recv_buffer_size()?, sock.send_buffer_size()?))
}

/// See the module documentation.
pub(crate) struct ClosableSocket {
    open: RwLock<Option<Arc<Open>>>,
    addr: SocketAddr,
    may_fragment: bool,
    max_transmit_segments: usize,
    max_receive_segments: usize,
}

impl fmt::Debug for ClosableSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClosableSocket")
            .field("addr", &self.addr)
            .field("open", &self.get().is_some())
            .finish()
    }
}

impl ClosableSocket {
    /// Wraps a bound socket. Must run inside a tokio runtime (the socket registers with
    /// its reactor).
    pub(crate) fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        let addr = socket.local_addr()?;
        let io = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self {
            addr,
            may_fragment: state.may_fragment(),
            max_transmit_segments: state.max_gso_segments(),
            max_receive_segments: state.gro_segments(),
            open: RwLock::new(Some(Arc::new(Open { io, state }))),
        })
    }

    fn get(&self) -> Option<Arc<Open>> {
        self.open.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Closes the socket: its port is free again once no poll is running on it (at
    /// once, unless a send is at that moment waiting for buffer space).
    pub(crate) fn close(&self) {
        self.open.write().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl AsyncUdpSocket for ClosableSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Poller {
            socket: self,
            waiting: None,
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        match self.get() {
            // Closed: the datagram is lost, as on a dead link.
            None => Ok(()),
            Some(open) => open.io.try_io(Interest::WRITABLE, || {
                open.state.send((&open.io).into(), transmit)
            }),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Some(open) = self.get() else {
            // Closed: nothing will ever arrive. The endpoint driver still ends once its
            // connections have timed out and its handles are gone.
            return Poll::Pending;
        };
        loop {
            ready!(open.io.poll_recv_ready(cx))?;
            if let Ok(n) = open.io.try_io(Interest::READABLE, || {
                open.state.recv((&open.io).into(), bufs, meta)
            }) {
                return Poll::Ready(Ok(n));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }

    fn may_fragment(&self) -> bool {
        self.may_fragment
    }

    fn max_transmit_segments(&self) -> usize {
        self.max_transmit_segments
    }

    fn max_receive_segments(&self) -> usize {
        self.max_receive_segments
    }
}

type Writable = Pin<Box<dyn Future<Output = io::Result<()>> + Send + Sync>>;

/// Waits for the socket to be writable; holds the socket open only while waiting.
struct Poller {
    socket: Arc<ClosableSocket>,
    waiting: Option<Writable>,
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

impl UdpPoller for Poller {
    fn poll_writable(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.waiting.is_none() {
            let Some(open) = self.socket.get() else {
                // Closed: "writable", and `try_send` discards.
                return Poll::Ready(Ok(()));
            };
            self.waiting = Some(Box::pin(async move { open.io.writable().await }));
        }
        let result = self.waiting.as_mut().expect("set above").as_mut().poll(cx);
        if result.is_ready() {
            self.waiting = None;
        }
        result
    }
}
