//! The outbound path: messages in, down the stack in batches, wire bytes out.

use std::io::IoSlice;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use super::{Connection, NAME, WriteSide};
use crate::layer::{Flush, Layer, Outbound};
use crate::stack::room::outbound_counted;
use crate::{Codec, Error, Result};

/// The smallest message [`Connection::send_bytes`] queues by reference.
/// A reference is not free: a chain entry, one more slice per write, and
/// the send buffer's bytes frozen ahead of the message (its tail runs out,
/// and a fresh buffer is needed, sooner); below a few KiB the copy costs
/// less. 4 KiB is a first guess, to tune by measurement: well above small
/// requests and answers, below the 16 KiB frames whose copy shows in the
/// echo server's profile.
const BY_REFERENCE_MIN: usize = 4 * 1024;

impl<S: Layer, C: Codec> Connection<S, C> {
    // ---- application commands ----

    /// Encodes `msg` for sending. It goes out, with everything else sent
    /// since, on the next [`poll_transmit`](Self::poll_transmit).
    ///
    /// Fails with [`Error::SendBufferFull`] (transmit, then retry) or with
    /// the codec's error for a message it cannot frame; neither ends the
    /// connection.
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.check_send()?;
        self.encode_with(|codec, dst| codec.encode(msg, dst))?;
        self.stats.messages_out += 1;
        self.outbound_dirty = true;
        Ok(())
    }

    /// Like [`send`](Self::send), with the same errors and counting, for a
    /// message held as [`Bytes`] (one taken from
    /// [`poll_message`](Self::poll_message), to echo it). A large message
    /// (4 KiB or more) is queued by reference instead of copied when the
    /// stack passes bytes through unchanged
    /// ([`Layer::passes_bytes_through`]: a stack without layers, a
    /// [`PassThrough`](crate::layers::PassThrough)) and the codec frames it
    /// as a prefix followed by the message ([`Codec::encode_prefix`]). The
    /// wire bytes are the same either way, in the same order;
    /// [`poll_transmit_vectored`](Self::poll_transmit_vectored) then hands
    /// the message itself to the transport. Otherwise it is copied, as by
    /// `send`.
    ///
    /// A message queued by reference keeps the buffer it was cut from
    /// alive until it is transmitted (for a received message, the input
    /// buffer it arrived in).
    pub fn send_bytes(&mut self, msg: Bytes) -> Result<()> {
        if msg.len() < BY_REFERENCE_MIN || !self.stack.passes_bytes_through() {
            return self.send(&msg);
        }
        self.check_send()?;
        let len = msg.len();
        let framed = self.encode_with(|codec, dst| codec.encode_prefix(len, dst).transpose())?;
        if framed.is_none() {
            return self.send(&msg);
        }
        // What the stack would do, without the copy: the messages waiting
        // above it, the new prefix last, cross it unchanged and queue
        // behind the wire bytes already below it; the message follows.
        let crossed = self.app_out.len() + msg.len();
        self.counters.count_outbound(crossed, crossed);
        for waiting in [&mut self.wire_out, &mut self.app_out] {
            if !waiting.is_empty() {
                self.chain.push(waiting.split().freeze());
            }
        }
        self.chain.push(msg);
        self.stats.messages_out += 1;
        Ok(())
    }

    /// Runs `encode` on the send buffer; if the codec refuses the message
    /// (the caller's misuse: too large to frame), takes back what it
    /// appended.
    fn encode_with<T>(
        &mut self,
        encode: impl FnOnce(&mut C, &mut BytesMut) -> std::result::Result<T, C::Error>,
    ) -> Result<T> {
        let before = self.app_out.len();
        encode(&mut self.codec, &mut self.app_out).map_err(|e| {
            self.app_out.truncate(before);
            Error::misuse(self.codec.name(), e)
        })
    }

    /// Refuses a message after an error or [`close`](Self::close), or with
    /// the send buffer full.
    fn check_send(&self) -> Result<()> {
        self.failed.check()?;
        if self.write != WriteSide::Open {
            return Err(Error::misuse(NAME, "send after close"));
        }
        let queued = self.send_queued();
        if queued >= self.config.send_buffer {
            return Err(Error::SendBufferFull {
                queued,
                limit: self.config.send_buffer,
            });
        }
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
    /// ends the stream after [`close`](Self::close)) and returns the first
    /// run of wire bytes waiting to be written, or `None` if there are
    /// none. Write them, then call
    /// [`advance_transmit`](Self::advance_transmit). A message queued by
    /// reference ([`send_bytes`](Self::send_bytes)) is a run of its own:
    /// [`poll_transmit_vectored`](Self::poll_transmit_vectored) returns
    /// several runs for one write.
    ///
    /// After an error, the wire bytes the stack had already produced (a TLS
    /// alert telling the peer why) are still returned until they are
    /// written; when the codec failed, not the stack, so are the messages
    /// sent before the error, flushed through the stack. Then the error is
    /// returned.
    #[must_use = "returned bytes must be written to the transport"]
    pub fn poll_transmit(&mut self, now: Instant) -> Result<Option<&[u8]>> {
        self.prepare_transmit(now)?;
        let wire_out = (!self.wire_out.is_empty()).then_some(&self.wire_out[..]);
        Ok(self.chain.front().or(wire_out))
    }

    /// Like [`poll_transmit`](Self::poll_transmit), with the same rules
    /// after an error, but fills `out` with up to `out.len()` runs of wire
    /// bytes, in order, for one vectored write
    /// ([`std::io::Write::write_vectored`]). Returns how many slices it
    /// filled; `0` when there is nothing to write. Call
    /// [`advance_transmit`](Self::advance_transmit) with the number of
    /// bytes written, which may end inside any slice.
    #[must_use = "returned bytes must be written to the transport"]
    pub fn poll_transmit_vectored<'a>(
        &'a mut self,
        now: Instant,
        out: &mut [IoSlice<'a>],
    ) -> Result<usize> {
        self.prepare_transmit(now)?;
        let this: &'a Self = self;
        let mut filled = this.chain.slices(out);
        if let Some(slot) = out.get_mut(filled)
            && !this.wire_out.is_empty()
        {
            *slot = IoSlice::new(&this.wire_out);
            filled += 1;
        }
        Ok(filled)
    }

    /// The outbound pass before a transmit. After an error, `Ok` while
    /// bytes the peer is still owed wait, then the error.
    fn prepare_transmit(&mut self, now: Instant) -> Result<()> {
        if self.failed.has_failed() {
            if self.failed_above_stack && self.run_outbound(now).is_err() {
                self.failed_above_stack = false;
            }
            return match self.unsent() {
                0 => self.failed.check(),
                _ => Ok(()),
            };
        }
        self.run_outbound(now)
    }

    /// Flushes what was sent (or ends the stream) through the stack, as far
    /// as the room for wire bytes allows, if anything may have changed.
    /// Bytes queued by reference take room as those in `wire_out` do.
    fn run_outbound(&mut self, now: Instant) -> Result<()> {
        let room = self.config.write_buffer.saturating_sub(self.unsent());
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
    /// or [`poll_transmit_vectored`](Self::poll_transmit_vectored) as
    /// written.
    pub fn advance_transmit(&mut self, n: usize) {
        let n = n.min(self.unsent());
        let past_chain = self.chain.advance(n);
        self.wire_out.advance(past_chain);
        self.stats.wire_out += n as u64;
    }

    /// Like [`poll_transmit`](Self::poll_transmit), with the same rules
    /// after an error, but hands over the first run of wire bytes, at most
    /// `max`, as [`Bytes`] the caller keeps: they count as written at once
    /// (no [`advance_transmit`](Self::advance_transmit)). For a driver whose
    /// write completes later and needs the bytes to stay where they are
    /// until then (io_uring). No copy: the run is split off the connection's
    /// buffer, or is a message queued by reference. `None` when nothing
    /// waits, and always for a `max` of 0. While a run split off the buffer
    /// is alive, the buffer cannot take its room back: take further runs
    /// for the same write only while [`wire_ready`](Self::wire_ready) says
    /// some are ready.
    #[must_use = "returned bytes must be written to the transport"]
    pub fn take_transmit(&mut self, now: Instant, max: usize) -> Result<Option<Bytes>> {
        self.prepare_transmit(now)?;
        let run = match self.chain.take_front(max) {
            Some(run) => run,
            None if self.wire_out.is_empty() || max == 0 => return Ok(None),
            None => {
                let n = self.wire_out.len().min(max);
                self.wire_out.split_to(n).freeze()
            }
        };
        self.stats.wire_out += run.len() as u64;
        Ok(Some(run))
    }
}
