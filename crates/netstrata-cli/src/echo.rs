//! `netstrata echo-server`: echoes every frame.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use netstrata_reactor::{Context, Handler, Server, ServerConfig};

use crate::stack::StackOptions;

/// Sends every message back.
#[derive(Debug, Default)]
pub struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        // A full send buffer means the peer does not read its echoes: it
        // will feel backpressure, and the message is dropped with an error
        // only past the hard limit.
        if cx.send(&msg).is_err() {
            cx.abort();
        }
    }
}

/// Starts an echo server on `addr` with `threads` loops.
pub fn serve(addr: SocketAddr, threads: usize, stack: StackOptions) -> io::Result<Server> {
    // Every connection is built the same way: check the options once.
    stack
        .connection()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    Server::bind(
        addr,
        ServerConfig::new().with_threads(threads),
        move || stack.connection().expect("stack options checked at start"),
        |_| Echo,
    )
}
