//! What to do with a frame above the limit, and the bookkeeping of skipping one.

use bytes::{Buf, BytesMut};

/// What a decoder does with a frame (or line) above its maximum length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Oversize {
    /// Fail with [`FrameError::FrameTooLong`](crate::FrameError::FrameTooLong)
    /// or [`FrameError::LineTooLong`](crate::FrameError::LineTooLong), a peer
    /// fault. The default.
    #[default]
    Error,
    /// Drop the oversized frame's bytes as they arrive, without buffering
    /// them, then go on with the next frame. Each skipped frame is counted
    /// (`skipped_frames()` on the codec). For length-prefixed codecs, a
    /// stream that ends inside a skipped frame is cut short:
    /// [`FrameError::EndInSkippedFrame`](crate::FrameError::EndInSkippedFrame).
    Skip,
}

/// Bytes still to drop of a skipped frame whose length is known, carried
/// across `decode` calls, and the count of frames skipped so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Discard {
    remaining: u64,
    skipped: u64,
}

impl Discard {
    /// Starts skipping a frame of `len` bytes that begins at the front of `src`.
    pub(crate) fn start(&mut self, len: u64, src: &mut BytesMut) {
        self.skipped = self.skipped.saturating_add(1);
        self.remaining = len;
        self.drain(src);
    }

    /// Drops what it can of the frame being skipped; true when none is left
    /// to drop (decoding may go on).
    #[inline]
    pub(crate) fn drain(&mut self, src: &mut BytesMut) -> bool {
        if self.remaining == 0 {
            return true;
        }
        let n = usize::try_from(self.remaining).map_or(src.len(), |r| r.min(src.len()));
        src.advance(n);
        // `n` is at most `remaining`, so this cannot underflow.
        self.remaining -= n as u64;
        self.remaining == 0
    }

    /// At end of stream: an error if a skipped frame was cut short.
    pub(crate) fn check_eof(&self) -> Result<(), crate::FrameError> {
        match self.remaining {
            0 => Ok(()),
            missing => Err(crate::FrameError::EndInSkippedFrame { missing }),
        }
    }

    /// Frames skipped so far.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }
}
