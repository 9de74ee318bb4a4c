//! What the UDP tests share: a loop serving one datagram handler on a
//! thread of its own.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread;

use netstrata_core::Stack;
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{DatagramHandler, EventLoop, Handle, Handler, LoopConfig};

/// No connection handler runs on these loops.
pub(crate) struct NoConnections;

impl Handler for NoConnections {
    fn on_message(&mut self, _: &mut netstrata_reactor::Context<'_>, _: bytes::Bytes) {}
}

/// A loop serving a datagram handler on a socket.
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    handle: Handle,
    thread: thread::JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// `handler` on a new loopback socket.
    pub(crate) fn start(config: LoopConfig, handler: impl DatagramHandler) -> Self {
        Self::start_on(UdpSocket::bind("127.0.0.1:0").unwrap(), config, handler)
    }

    /// `handler` on `socket`.
    pub(crate) fn start_on(
        socket: UdpSocket,
        config: LoopConfig,
        handler: impl DatagramHandler,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut event_loop: EventLoop<Stack<()>, LengthDelimited, NoConnections> =
                EventLoop::new(config)?;
            let addr = event_loop.bind_udp(socket, handler)?;
            tx.send((addr, event_loop.handle())).unwrap();
            event_loop.run()
        });
        let (addr, handle) = rx.recv().unwrap();
        Self {
            addr,
            handle,
            thread,
        }
    }

    /// Stops the loop; it must have run without an error.
    pub(crate) fn stop(self) {
        self.handle.stop().unwrap();
        self.thread.join().unwrap().unwrap();
    }
}
