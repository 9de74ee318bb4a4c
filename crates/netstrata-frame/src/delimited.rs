//! Frames ended by a delimiter: lines, NUL-terminated records, HTTP-style
//! header blocks.

use bytes::{Buf, Bytes, BytesMut};
use netstrata_core::Codec;

use crate::{FrameError, Oversize};

/// The default maximum line (or record) length: 64 KiB, delimiter excluded.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 64 * 1024;

/// Frames ended by a delimiter of one or more bytes (`b"\0"`, `b"\r\n\r\n"`).
///
/// Decoded frames exclude the delimiter. A frame longer than the maximum
/// length (default [`DEFAULT_MAX_LINE_LENGTH`], delimiter excluded) is
/// [`FrameError::LineTooLong`], or with [`Oversize::Skip`] dropped up to and
/// including the next delimiter, without buffering it. At the end of the
/// stream, [`Codec::decode_eof`] returns the unterminated rest as a last frame.
///
/// Each byte is searched once however the input is chunked (byte-at-a-time
/// input costs O(n)); a delimiter split across two chunks is found.
///
/// ```
/// use bytes::BytesMut;
/// use netstrata_core::Codec;
/// use netstrata_frame::Delimited;
///
/// let mut codec = Delimited::new(b"\r\n\r\n");
/// let mut wire = BytesMut::from(&b"Host: a\r\n\r"[..]);
/// assert_eq!(codec.decode(&mut wire)?, None);
/// wire.extend_from_slice(b"\nnext");
/// assert_eq!(&codec.decode(&mut wire)?.unwrap()[..], b"Host: a");
/// assert_eq!(&wire[..], b"next");
/// # Ok::<(), netstrata_frame::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Delimited {
    delimiter: Box<[u8]>,
    max_len: usize,
    oversize: Oversize,
    /// Also drop a `\r` before the delimiter (for [`Lines`]).
    strip_cr: bool,
    state: State,
    skipped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No delimiter starts before `from` in the buffer.
    Searching { from: usize },
    /// Dropping an oversized frame up to the next delimiter; the buffer holds
    /// at most `delimiter.len() - 1` bytes of it between calls.
    Discarding,
}

impl Delimited {
    /// A codec for frames ended by `delimiter`, at most 64 KiB long.
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub fn new(delimiter: &[u8]) -> Self {
        assert!(!delimiter.is_empty(), "the delimiter must not be empty");
        Self {
            delimiter: delimiter.into(),
            max_len: DEFAULT_MAX_LINE_LENGTH,
            oversize: Oversize::Error,
            strip_cr: false,
            state: State::Searching { from: 0 },
            skipped: 0,
        }
    }

    /// Sets the maximum frame length, delimiter excluded (default 64 KiB), on
    /// decode and encode.
    #[must_use]
    pub fn with_max_length(mut self, max: usize) -> Self {
        self.max_len = max;
        self
    }

    /// Sets what the decoder does with an oversized frame (default
    /// [`Oversize::Error`]).
    #[must_use]
    pub fn with_oversize(mut self, oversize: Oversize) -> Self {
        self.oversize = oversize;
        self
    }

    /// The delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// The maximum frame length, delimiter excluded.
    pub fn max_length(&self) -> usize {
        self.max_len
    }

    /// Number of oversized frames skipped so far (with [`Oversize::Skip`]).
    pub fn skipped_frames(&self) -> u64 {
        self.skipped
    }

    /// Cuts the frame whose delimiter starts at `at`.
    fn take_frame(&mut self, src: &mut BytesMut, at: usize) -> Bytes {
        let mut frame = src.split_to(at + self.delimiter.len()).freeze();
        frame.truncate(self.content_len(&frame[..at]));
        self.state = State::Searching { from: 0 };
        frame
    }

    /// Length of `frame` without a trailing `\r` if those are stripped.
    fn content_len(&self, frame: &[u8]) -> usize {
        match frame {
            [rest @ .., b'\r'] if self.strip_cr => rest.len(),
            _ => frame.len(),
        }
    }

    /// Whether `msg` followed by the delimiter decodes back to `msg`.
    fn decodes_back(&self, msg: &[u8]) -> bool {
        let delim = &self.delimiter[..];
        if find(msg, delim).is_some() {
            return false;
        }
        // A delimiter starting in the message's tail and ending inside the
        // appended delimiter (`a\r\n` + `\r\n\r\n`).
        let straddles = (1..delim.len())
            .any(|k| msg.ends_with(&delim[..k]) && delim[k..] == delim[..delim.len() - k]);
        !straddles && self.content_len(msg) == msg.len()
    }
}

impl Codec for Delimited {
    type Error = FrameError;

    fn name(&self) -> &'static str {
        "delimited"
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let d = self.delimiter.len();
        loop {
            match self.state {
                State::Discarding => {
                    if let Some(at) = find(src, &self.delimiter) {
                        src.advance(at + d);
                        self.state = State::Searching { from: 0 };
                        continue;
                    }
                    // Keep what may be the start of a split delimiter.
                    let keep = (d - 1).min(src.len());
                    src.advance(src.len() - keep);
                    return Ok(None);
                }
                State::Searching { from } => {
                    // A delimiter may start anywhere in 0..=max_len.
                    let window = self.max_len.saturating_add(d);
                    let end = src.len().min(window);
                    let from = from.min(end);
                    let hay = src.get(from..end).unwrap_or_default();
                    if let Some(i) = find(hay, &self.delimiter) {
                        return Ok(Some(self.take_frame(src, from + i)));
                    }
                    if end < window {
                        // Delimiters starting from here on are not ruled out.
                        self.state = State::Searching {
                            from: end.saturating_sub(d - 1).max(from),
                        };
                        return Ok(None);
                    }
                    match self.oversize {
                        Oversize::Error => {
                            return Err(FrameError::LineTooLong { max: self.max_len });
                        }
                        Oversize::Skip => {
                            // No delimiter starts in the first max_len + 1 bytes.
                            self.skipped = self.skipped.saturating_add(1);
                            src.advance(self.max_len.saturating_add(1).min(src.len()));
                            self.state = State::Discarding;
                        }
                    }
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if self.state == State::Discarding {
            // The end of the stream ends the skipped frame.
            src.clear();
            self.state = State::Searching { from: 0 };
            return Ok(None);
        }
        if src.is_empty() {
            return Ok(None);
        }
        if src.len() > self.max_len {
            if self.oversize == Oversize::Error {
                return Err(FrameError::LineTooLong { max: self.max_len });
            }
            self.skipped = self.skipped.saturating_add(1);
            src.clear();
            self.state = State::Searching { from: 0 };
            return Ok(None);
        }
        let mut frame = src.split().freeze();
        frame.truncate(self.content_len(&frame));
        self.state = State::Searching { from: 0 };
        Ok(Some(frame))
    }

    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        if msg.len() > self.max_len {
            return Err(FrameError::MessageTooLong {
                len: msg.len(),
                max: self.max_len,
            });
        }
        if !self.decodes_back(msg) {
            return Err(FrameError::MessageContainsDelimiter);
        }
        dst.reserve(msg.len().saturating_add(self.delimiter.len()));
        dst.extend_from_slice(msg);
        dst.extend_from_slice(&self.delimiter);
        Ok(())
    }

    fn max_buffered(&self) -> usize {
        self.max_len.saturating_add(self.delimiter.len())
    }
}

/// Lines ended by `\n`, with a `\r` before it dropped too (so `\r\n` works).
///
/// A line may be at most 64 KiB long ([`DEFAULT_MAX_LINE_LENGTH`]); the limit
/// counts a `\r` before the `\n`, like tokio-util's `LinesCodec`. Encoding
/// appends `\n`; a message holding `\n` or ending with `\r` is refused
/// ([`FrameError::MessageContainsDelimiter`]), as it would not decode back.
/// Lines are bytes: no UTF-8 check. [`Codec::decode_eof`] returns a last line
/// without `\n`. Otherwise as [`Delimited`].
///
/// ```
/// use bytes::BytesMut;
/// use netstrata_core::Codec;
/// use netstrata_frame::Lines;
///
/// let mut codec = Lines::new();
/// let mut wire = BytesMut::from(&b"GET /\r\nlast"[..]);
/// assert_eq!(&codec.decode(&mut wire)?.unwrap()[..], b"GET /");
/// assert_eq!(codec.decode(&mut wire)?, None);
/// assert_eq!(&codec.decode_eof(&mut wire)?.unwrap()[..], b"last");
/// # Ok::<(), netstrata_frame::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Lines {
    inner: Delimited,
}

impl Lines {
    /// A line codec with a 64 KiB maximum line length.
    pub fn new() -> Self {
        let mut inner = Delimited::new(b"\n");
        inner.strip_cr = true;
        Self { inner }
    }

    /// Sets the maximum line length, `\n` excluded (default 64 KiB), on
    /// decode and encode.
    #[must_use]
    pub fn with_max_length(mut self, max: usize) -> Self {
        self.inner = self.inner.with_max_length(max);
        self
    }

    /// Sets what the decoder does with an oversized line (default
    /// [`Oversize::Error`]).
    #[must_use]
    pub fn with_oversize(mut self, oversize: Oversize) -> Self {
        self.inner = self.inner.with_oversize(oversize);
        self
    }

    /// The maximum line length, `\n` excluded.
    pub fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    /// Number of oversized lines skipped so far (with [`Oversize::Skip`]).
    pub fn skipped_frames(&self) -> u64 {
        self.inner.skipped_frames()
    }
}

impl Default for Lines {
    fn default() -> Self {
        Self::new()
    }
}

impl Codec for Lines {
    type Error = FrameError;

    fn name(&self) -> &'static str {
        "lines"
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.inner.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.inner.decode_eof(src)
    }

    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        self.inner.encode(msg, dst)
    }

    fn max_buffered(&self) -> usize {
        self.inner.max_buffered()
    }
}

/// Start of the first `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [byte] => hay.iter().position(|b| b == byte),
        _ => hay.windows(needle.len()).position(|w| w == needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fed a byte at a time, the search resumes where it stopped (less the
    /// bytes that may start a split delimiter), so each byte is looked at a
    /// bounded number of times.
    #[test]
    fn search_resumes_where_it_stopped() {
        let mut codec = Delimited::new(b"\r\n\r\n");
        let mut src = BytesMut::new();
        for (i, byte) in b"abcdefgh\r\n\r".iter().enumerate() {
            src.extend_from_slice(&[*byte]);
            assert_eq!(codec.decode(&mut src), Ok(None));
            let len = i + 1;
            assert_eq!(
                codec.state,
                State::Searching {
                    from: len.saturating_sub(3)
                }
            );
        }
        src.extend_from_slice(b"\n");
        assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"abcdefgh");
        assert_eq!(codec.state, State::Searching { from: 0 });
    }

    /// Skipping keeps at most `delimiter.len() - 1` bytes buffered.
    #[test]
    fn discarding_keeps_only_a_possible_delimiter_start() {
        let mut codec = Delimited::new(b"\r\n\r\n")
            .with_max_length(2)
            .with_oversize(Oversize::Skip);
        let mut src = BytesMut::from(&b"0123456789\r\n"[..]);
        assert_eq!(codec.decode(&mut src), Ok(None));
        assert_eq!(codec.state, State::Discarding);
        assert_eq!(&src[..], b"9\r\n");
    }
}
