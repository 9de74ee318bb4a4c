//! The outbound path: messages in, down the stack in batches, wire bytes out.

use std::time::Instant;

use bytes::Buf;

use super::{Connection, NAME, WriteSide};
use crate::layer::{Flush, Layer, Outbound};
use crate::stack::room::outbound_counted;
use crate::{Codec, Error, Result};

impl<S: Layer, C: Codec> Connection<S, C> {
    // ---- application commands ----

    /// Encodes `msg` for sending. It goes out, with everything else sent
    /// since, on the next [`poll_transmit`](Self::poll_transmit).
    ///
    /// Fails with [`Error::SendBufferFull`] (transmit, then retry) or with
    /// the codec's error for a message it cannot frame; neither ends the
    /// connection.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.failed.check()?;
        if self.write != WriteSide::Open {
            return Err(Error::misuse(NAME, "send after close"));
        }
        if self.app_out.len() >= self.config.send_buffer {
            return Err(Error::SendBufferFull {
                queued: self.app_out.len(),
                limit: self.config.send_buffer,
            });
        }
        let before = self.app_out.len();
        if let Err(e) = self.codec.encode(msg, &mut self.app_out) {
            self.app_out.truncate(before);
            return Err(Error::misuse(self.codec.name(), e));
        }
        self.stats.messages_out += 1;
        self.outbound_dirty = true;
        Ok(())
    }

    /// Begins an orderly close of our direction: the stack flushes, ends its
    /// stream top-down (zstd end of frame, TLS `close_notify`) on the next
    /// [`poll_transmit`](Self::poll_transmit) calls, and then
    /// [`is_write_closed`](Self::is_write_closed) turns `true`. Messages from
    /// the peer can still arrive.
    pub fn close(&mut self) {
        if self.write == WriteSide::Open {
            self.write = WriteSide::Finishing;
            self.outbound_dirty = true;
        }
    }

    /// Flushes everything sent since the last call through the stack (or
    /// ends the stream after [`close`](Self::close)) and returns the wire
    /// bytes waiting to be written, or `None` if there are none. Write them,
    /// then call [`advance_transmit`](Self::advance_transmit).
    ///
    /// After an error, the wire bytes the stack had already produced (a TLS
    /// alert telling the peer why) are still returned until they are
    /// written; when the codec failed, not the stack, so are the messages
    /// sent before the error, flushed through the stack. Then the error is
    /// returned.
    #[must_use = "returned bytes must be written to the transport"]
    pub fn poll_transmit(&mut self, now: Instant) -> Result<Option<&[u8]>> {
        if self.failed.has_failed() {
            if self.failed_above_stack && self.run_outbound(now).is_err() {
                self.failed_above_stack = false;
            }
            return match (self.failed.error(), self.wire_out.is_empty()) {
                (Some(e), true) => Err(e.clone()),
                _ => Ok(Some(&self.wire_out[..])),
            };
        }
        self.run_outbound(now)?;
        Ok((!self.wire_out.is_empty()).then_some(&self.wire_out[..]))
    }

    /// Flushes what was sent (or ends the stream) through the stack, as far
    /// as the room for wire bytes allows, if anything may have changed.
    fn run_outbound(&mut self, now: Instant) -> Result<()> {
        let room = self.config.write_buffer.saturating_sub(self.wire_out.len());
        if room == 0 || !self.outbound_dirty || self.write == WriteSide::Finished {
            return Ok(());
        }
        let flush = match self.write {
            WriteSide::Finishing => Flush::Finish,
            _ => Flush::Batch,
        };
        let before = self.wire_out.len();
        let result = outbound_counted(
            &mut self.counters,
            Outbound {
                now,
                input: &mut self.app_out,
                flush,
                lower: &mut self.wire_out,
                lower_room: room,
            },
            |io| self.stack.handle_outbound(io),
        );
        self.failed.record(result)?;
        let filled = self.wire_out.len() - before >= room;
        if self.write == WriteSide::Finishing
            && self.app_out.is_empty()
            && self.stack.is_write_closed()
        {
            self.write = WriteSide::Finished;
        }
        // Only a pass cut short by room leaves work that no new event announces.
        self.outbound_dirty =
            filled || !self.app_out.is_empty() || self.write == WriteSide::Finishing;
        Ok(())
    }

    /// Marks `n` bytes returned by [`poll_transmit`](Self::poll_transmit)
    /// as written.
    pub fn advance_transmit(&mut self, n: usize) {
        let n = n.min(self.wire_out.len());
        self.wire_out.advance(n);
        self.stats.wire_out += n as u64;
    }
}
