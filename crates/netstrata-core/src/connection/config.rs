//! The limits of a connection's own buffers.

#[cfg(doc)]
use crate::{Codec, Connection, Error};

/// Limits of a [`Connection`]'s own buffers. Every limit has a default and a
/// setter; the stack's internal buffers are set on the stack
/// ([`crate::Stack::with_buffer_limit`]).
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub(super) read_buffer: usize,
    pub(super) write_buffer: usize,
    pub(super) send_buffer: usize,
    pub(super) message_buffer: Option<usize>,
}

impl ConnectionConfig {
    /// Default bound of wire bytes read but not yet taken by the stack (64 KiB).
    pub const DEFAULT_READ_BUFFER: usize = 64 * 1024;
    /// Default bound of wire bytes produced but not yet transmitted (64 KiB).
    pub const DEFAULT_WRITE_BUFFER: usize = 64 * 1024;
    /// Default bound of encoded messages waiting for the stack (1 MiB).
    pub const DEFAULT_SEND_BUFFER: usize = 1024 * 1024;

    /// The defaults.
    pub fn new() -> Self {
        Self {
            read_buffer: Self::DEFAULT_READ_BUFFER,
            write_buffer: Self::DEFAULT_WRITE_BUFFER,
            send_buffer: Self::DEFAULT_SEND_BUFFER,
            message_buffer: None,
        }
    }

    /// Sets the bound of wire bytes read but not yet taken by the stack. When
    /// it is reached, [`Connection::wants_read`] turns `false`.
    pub fn with_read_buffer(mut self, bytes: usize) -> Self {
        self.read_buffer = bytes.max(1);
        self
    }

    /// Sets the room offered to the stack for wire bytes not yet transmitted
    /// (those of messages queued by reference,
    /// [`Connection::send_bytes`], take it too). Layers treat it as a soft
    /// bound (one record or block beyond it).
    pub fn with_write_buffer(mut self, bytes: usize) -> Self {
        self.write_buffer = bytes.max(1);
        self
    }

    /// Sets the bound of encoded messages waiting for the stack (with the
    /// messages queued by reference beyond the write buffer:
    /// [`Connection::send_queued`]). A message is refused
    /// ([`Error::SendBufferFull`]) only when the bound is already reached,
    /// so one message of any allowed size always fits.
    pub fn with_send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes.max(1);
        self
    }

    /// Sets the bound of decoded bytes waiting to be cut into messages.
    /// Default: the codec's [`Codec::max_buffered`], the least that lets the
    /// largest allowed message through.
    pub fn with_message_buffer(mut self, bytes: usize) -> Self {
        self.message_buffer = Some(bytes.max(1));
        self
    }

    /// The read buffer bound.
    pub fn read_buffer(&self) -> usize {
        self.read_buffer
    }

    /// The write buffer bound.
    pub fn write_buffer(&self) -> usize {
        self.write_buffer
    }

    /// The send buffer bound.
    pub fn send_buffer(&self) -> usize {
        self.send_buffer
    }
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self::new()
    }
}
