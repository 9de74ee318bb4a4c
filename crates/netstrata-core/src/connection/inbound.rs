//! The inbound path: wire bytes in, up the stack, cut into messages.

use std::convert::Infallible;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{Connection, NAME, ReadSide};
use crate::layer::{Inbound, Layer};
use crate::stack::prepend;
use crate::stack::room::{inbound_counted, room_exceeded};
use crate::{Codec, Error, Result};

impl<S: Layer, C: Codec> Connection<S, C> {
    // ---- input ----

    /// Takes wire bytes from the transport, at most
    /// [`read_room`](Self::read_room) of them, and runs them up the stack.
    /// Returns how many were taken.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<usize> {
        let copied = self.read_with(now, |buf, room| {
            buf.extend_from_slice(&data[..data.len().min(room)]);
            Ok::<_, Infallible>(())
        })?;
        Ok(copied.unwrap_or_else(|never| match never {}))
    }

    /// Like [`handle_input`](Self::handle_input), but the transport writes
    /// straight into the connection's input buffer, with no copy through a
    /// buffer of the driver's. `read` is given that buffer and how many
    /// bytes it may append ([`read_room`](Self::read_room)); it appends what
    /// the transport has, or fails having appended nothing. What it appended
    /// runs up the stack.
    ///
    /// Returns how many bytes `read` appended (0: the transport gave none,
    /// e.g. at end of stream), or `read`'s error; the outer error is the
    /// connection's, as from [`handle_input`](Self::handle_input).
    pub fn read_with<E>(
        &mut self,
        now: Instant,
        read: impl FnOnce(&mut BytesMut, usize) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<usize, E>> {
        self.failed.check()?;
        if self.read != ReadSide::Open {
            return Err(Error::misuse(NAME, "input after end of stream"));
        }
        let (before, room) = (self.wire_in.len(), self.read_room());
        if let Err(e) = read(&mut self.wire_in, room) {
            return Ok(Err(e));
        }
        let n = self.wire_in.len().saturating_sub(before);
        if n > 0 {
            self.stats.wire_in += n as u64;
            self.run_inbound(now)?;
        }
        Ok(Ok(n))
    }

    /// Tells the connection that the transport reached end of stream. The
    /// stack decides whether that was a clean end or a truncation.
    pub fn handle_input_eof(&mut self, now: Instant) -> Result<()> {
        self.failed.check()?;
        if self.read == ReadSide::Open {
            self.read = ReadSide::TransportEnded;
        }
        self.run_inbound(now)
    }

    /// Runs the layers' deadlines that `now` has reached.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        self.failed.check()?;
        self.outbound_dirty = true;
        let before = self.wire_out.len();
        let result = self.stack.handle_timeout(now, &mut self.wire_out);
        let sent = self.wire_out.len().saturating_sub(before);
        self.counters.count_outbound(0, sent);
        self.failed.record(result)?;
        // A deadline may have returned read budget (shaping).
        self.run_inbound(now)
    }

    fn run_inbound(&mut self, now: Instant) -> Result<()> {
        let upper_room = self.message_buffer().saturating_sub(self.app_in.len());
        let result = inbound_counted(
            &mut self.counters,
            Inbound {
                now,
                input: &mut self.wire_in,
                // Only a transport that ended: a stack whose top ended first
                // may still hold its lower layers' last bytes, unread.
                input_ended: matches!(
                    self.read,
                    ReadSide::TransportEnded | ReadSide::Ended { transport: true }
                ),
                upper: &mut self.app_in,
                upper_room,
                lower: &mut self.wire_out,
            },
            |io| self.stack.handle_inbound(io),
        );
        let appended = self.failed.record(result)?;
        if appended > upper_room {
            return Err(self
                .failed
                .fail(room_exceeded(self.stack.name(), appended, upper_room)));
        }
        self.inbound_stalled = appended == upper_room;
        // Inbound work may answer toward the wire or end a handshake that
        // releases held writes.
        self.outbound_dirty = true;
        Ok(())
    }

    /// Puts `front` back ahead of the inbound bytes not yet decoded, as if
    /// the stack had not delivered it yet: bytes a caller took from
    /// [`poll_message`](Self::poll_message) and did not use, such as a
    /// byte-stream reader's read-ahead. The next `poll_message` decodes them
    /// first, and a layer inserted at the top of a live stack
    /// ([`insert_layer`](Connection::insert_layer)) reads them as its input:
    /// a STARTTLS peer's first TLS bytes that arrived right behind its
    /// request.
    pub fn unread(&mut self, front: &[u8]) {
        if !front.is_empty() {
            prepend(&mut self.app_in, BytesMut::from(front));
        }
    }

    // ---- output ----

    /// The next message from the peer, or `None` if no complete message is
    /// buffered. After `None`, [`is_read_closed`](Self::is_read_closed) tells
    /// whether more can come.
    ///
    /// After an error, the messages decoded whole before it are still
    /// returned, one per call; then the error is.
    #[must_use = "a message is lost if the result is dropped"]
    pub fn poll_message(&mut self, now: Instant) -> Result<Option<Bytes>> {
        if self.failed.has_failed() {
            return match self.codec.decode(&mut self.app_in) {
                Ok(Some(msg)) => self.delivered(msg),
                _ => self.failed.check().map(|()| None),
            };
        }
        loop {
            let decoded = self.codec.decode(&mut self.app_in);
            match decoded.map_err(|e| Error::peer(self.codec.name(), e)) {
                Ok(Some(msg)) => return self.delivered(msg),
                Ok(None) => {}
                Err(e) => return Err(self.fail_decoding(e)),
            }
            if self.inbound_stalled {
                let buffered = self.app_in.len();
                self.run_inbound(now)?;
                if self.app_in.len() != buffered {
                    continue;
                }
            }
            if matches!(self.read, ReadSide::Ended { .. }) || !self.stack.is_read_closed() {
                return Ok(None);
            }
            // The stack has delivered its last byte.
            let last = self.codec.decode_eof(&mut self.app_in);
            return match last.map_err(|e| Error::peer(self.codec.name(), e)) {
                Ok(Some(msg)) => self.delivered(msg),
                Ok(None) if self.app_in.is_empty() => {
                    self.read = ReadSide::Ended {
                        transport: self.read == ReadSide::TransportEnded,
                    };
                    Ok(None)
                }
                Ok(None) => Err(self.fail_decoding(Error::Truncated {
                    layer: self.codec.name(),
                    detail: "partial message at end of stream",
                })),
                Err(e) => Err(self.fail_decoding(e)),
            };
        }
    }

    /// Hands `msg` to the application, counted.
    fn delivered(&mut self, msg: Bytes) -> Result<Option<Bytes>> {
        self.stats.messages_in += 1;
        Ok(Some(msg))
    }

    /// Ends the connection with the codec's error `e`: the stack did not
    /// fail and still carries what was sent before.
    fn fail_decoding(&mut self, e: Error) -> Error {
        self.failed_above_stack = !self.failed.has_failed();
        self.failed.fail(e)
    }
}
