//! The framing contract between a stack's top and the application.

use bytes::{Bytes, BytesMut};

/// Cuts the byte stream at the top of a stack into messages, and frames
/// messages for sending.
///
/// A codec is sans-IO like a layer. [`Codec::decode`] takes bytes from the
/// front of `src` and returns one message as a zero-copy [`Bytes`] (normally
/// `src.split_to(n).freeze()`), or `Ok(None)` when it needs more bytes. It must
/// not reserve memory for bytes that have not arrived: the caller grows `src`
/// as data comes in, never beyond [`Codec::max_buffered`].
///
/// Errors from `decode` are the peer's fault and close the connection;
/// errors from `encode` are the caller's (for example a message above the
/// maximum frame length) and leave the connection usable.
pub trait Codec {
    /// The codec's own error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Name used in errors and statistics.
    fn name(&self) -> &'static str;

    /// Decodes one message from the front of `src`, or returns `Ok(None)` if
    /// `src` holds no complete message yet.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Self::Error>;

    /// Decodes at the end of the stream: no byte will follow those in `src`.
    ///
    /// The default is [`Codec::decode`]; a codec whose last message may be
    /// unterminated (a final line without newline) overrides it. Bytes still
    /// left in `src` when this returns `Ok(None)` are reported by the
    /// connection as [`crate::Error::Truncated`].
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Self::Error> {
        self.decode(src)
    }

    /// Appends `msg`, framed, to `dst`.
    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), Self::Error>;

    /// Frames a message of `len` bytes as a prefix followed by the message
    /// unchanged, for a codec whose frames are laid out that way: appends
    /// the prefix to `dst` so that the prefix, then the message, are
    /// exactly what [`encode`](Codec::encode) would append, and changes the
    /// codec's state as `encode` would. `Some(Err(_))` when `encode` would
    /// refuse the message, with the same error and nothing appended.
    ///
    /// `None` (the default) when the codec cannot (it escapes or transforms
    /// the body): the caller then encodes the message with `encode`. Lets a
    /// connection queue a large message by reference instead of copying it
    /// ([`crate::Connection::send_bytes`]).
    fn encode_prefix(&mut self, len: usize, dst: &mut BytesMut) -> Option<Result<(), Self::Error>> {
        let _ = (len, dst);
        None
    }

    /// The most bytes `decode` may need buffered to return one message (the
    /// maximum frame plus its header, or the maximum line plus delimiter).
    /// The connection bounds its message buffer by this.
    fn max_buffered(&self) -> usize;
}

/// A codec that does no framing: every call to [`Codec::decode`] returns all
/// bytes available as one message, and [`Codec::encode`] appends the message
/// unchanged. For byte-stream uses such as tunnels.
#[derive(Debug, Clone)]
pub struct RawCodec {
    max_chunk: usize,
}

impl RawCodec {
    /// The default largest chunk returned by one `decode` (64 KiB).
    pub const DEFAULT_MAX_CHUNK: usize = 64 * 1024;

    /// A raw codec returning chunks of at most [`Self::DEFAULT_MAX_CHUNK`] bytes.
    pub fn new() -> Self {
        Self {
            max_chunk: Self::DEFAULT_MAX_CHUNK,
        }
    }

    /// Sets the largest chunk returned by one `decode`; at least 1.
    pub fn with_max_chunk(mut self, max_chunk: usize) -> Self {
        self.max_chunk = max_chunk.max(1);
        self
    }
}

impl Default for RawCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec for RawCodec {
    type Error = std::convert::Infallible;

    fn name(&self) -> &'static str {
        "raw"
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, Self::Error> {
        if src.is_empty() {
            return Ok(None);
        }
        let n = src.len().min(self.max_chunk);
        Ok(Some(src.split_to(n).freeze()))
    }

    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.extend_from_slice(msg);
        Ok(())
    }

    /// The empty prefix: a raw message is its own frame.
    fn encode_prefix(
        &mut self,
        _len: usize,
        _dst: &mut BytesMut,
    ) -> Option<Result<(), Self::Error>> {
        Some(Ok(()))
    }

    fn max_buffered(&self) -> usize {
        self.max_chunk
    }
}
