//! Writing a connection's wire bytes to its socket, and its FIN.

use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::time::Instant;

use netstrata_core::{Codec, Layer};

use super::connections::Connections;
use super::entry::Writing;
use crate::{CloseReason, Handler};

/// Most runs of wire bytes given to one vectored write. A message queued
/// by reference takes two (the copied bytes before it, its prefix last,
/// then the message itself), so one system call carries eight; what is
/// left goes in the next write.
pub(super) const WRITE_SLICES: usize = 16;

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    /// Flushes what was sent through the stack and writes the wire bytes
    /// while the socket takes them (a writable event drives the rest),
    /// several runs in one vectored write when messages were queued by
    /// reference; once the stack has ended its stream, sends the FIN.
    ///
    /// After a stack error, the bytes the stack still owes the peer (a TLS
    /// alert saying why) are written first; then the error is returned.
    pub(super) fn write(&mut self, token: usize, now: Instant) -> Result<(), CloseReason> {
        let all_written = match self.ring {
            Some(_) => self.write_ring(token, now)?,
            None => self.write_socket(token, now)?,
        };
        let entry = &mut self.slab[token];
        if all_written && entry.conn.is_write_closed() && entry.writing != Writing::Shut {
            entry.writing = Writing::Shut;
            if let Err(e) = entry.socket.shutdown(Shutdown::Write)
                && e.kind() != io::ErrorKind::NotConnected
            {
                return Err(CloseReason::Io(e.kind()));
            }
        }
        Ok(())
    }

    /// Writes the wire bytes with system calls while the socket takes
    /// them; `Ok(true)` once all are written.
    fn write_socket(&mut self, token: usize, now: Instant) -> Result<bool, CloseReason> {
        let entry = &mut self.slab[token];
        loop {
            let mut out = [IoSlice::new(&[]); WRITE_SLICES];
            let written = match entry.conn.poll_transmit_vectored(now, &mut out)? {
                0 => break,
                1 => entry.socket.write(&out[0]),
                n => entry.socket.write_vectored(&out[..n]),
            };
            match written {
                Ok(n) => {
                    entry.conn.advance_transmit(n);
                    entry.last_activity = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e.kind())),
            }
        }
        Ok(true)
    }
}
