//! The outbound direction: application bytes in, one zstd frame out.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
use zstd::zstd_safe::{
    CCtx, CDict, CParameter, DictAttachPref, InBuffer, OutBuffer, SafeResult, WriteBuf,
};

use crate::out::{self, Produce};
use crate::{ZstdConfig, ZstdError};

self_cell::self_cell!(
    /// A compression context and the prepared dictionary it references.
    struct Context {
        owner: Option<Arc<CDict<'static>>>,
        #[covariant]
        dependent: CCtx,
    }
);

/// Bytes beyond `compress_bound` an output chunk leaves for the frame
/// header (up to 18), a block header (3) and the checksum (4).
const FRAME_SLACK: usize = 32;

/// One `ZSTD_compressStream2` call.
struct Compress<'c, 'd, 's> {
    cctx: &'c mut CCtx<'d>,
    source: &'c mut InBuffer<'s>,
    op: ZSTD_EndDirective,
}

impl Produce for Compress<'_, '_, '_> {
    type Output = SafeResult;
    fn produce<C: WriteBuf + ?Sized>(self, dst: &mut OutBuffer<'_, C>) -> SafeResult {
        self.cctx.compress_stream2(dst, self.source, self.op)
    }
}

/// What the caller asks of one outbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directive {
    /// Take input, then emit everything (end of block).
    Flush,
    /// Take input, then end the frame.
    End,
}

/// An open frame.
pub(crate) struct Encoder {
    context: Context,
    /// Input zstd may hold without having emitted it (capped at one block):
    /// it sizes output chunks so that a flush rarely needs a second pass.
    held: usize,
    block_size: usize,
    /// Bytes wait inside zstd: input not yet flushed, or output that did not
    /// fit the room of the last call.
    pending: bool,
    /// `Directive::End` was started: zstd accepts nothing else until the
    /// frame is complete.
    ending: bool,
}

impl Encoder {
    /// A context for `config`, with the dictionary referenced, not copied.
    pub(crate) fn new(config: &ZstdConfig) -> Result<Self, ZstdError> {
        let owner = match config.dictionary() {
            Some(d) => Some(d.encoder(config.level())?),
            None => None,
        };
        let context = Context::try_new(owner, |cdict| {
            let mut cctx = CCtx::try_create().ok_or(ZstdError::OutOfMemory)?;
            let params = [
                CParameter::CompressionLevel(config.level()),
                CParameter::WindowLog(config.window_log()),
                CParameter::HashLog(config.hash_log()),
                CParameter::ChainLog(config.chain_log()),
                CParameter::MaxBlockSize(config.block_size()),
                CParameter::ChecksumFlag(config.checksum()),
                // A frame begun by `End` would otherwise declare its size and
                // become a single segment whose "window" is the whole
                // content, which a peer's window limit refuses.
                CParameter::ContentSizeFlag(false),
            ];
            for param in params {
                cctx.set_parameter(param).map_err(ZstdError::compressing)?;
            }
            if let Some(cdict) = cdict {
                // Load the dictionary into this context's own small tables
                // instead of attaching the prepared tables, which zstd would
                // size by the dictionary's level, not by this configuration.
                cctx.set_parameter(CParameter::ForceAttachDict(DictAttachPref::ForceLoad))
                    .map_err(ZstdError::compressing)?;
                cctx.ref_cdict(cdict).map_err(ZstdError::compressing)?;
            }
            Ok::<_, ZstdError>(cctx)
        })?;
        Ok(Self {
            context,
            held: 0,
            block_size: config.block_size() as usize,
            pending: false,
            ending: false,
        })
    }

    /// Whether a `Flush` with no new input has anything to do.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending || self.ending
    }

    /// Whether the frame is being ended: once `run` completes, it is.
    pub(crate) fn is_ending(&self) -> bool {
        self.ending
    }

    /// Memory the context holds now.
    pub(crate) fn memory(&self) -> usize {
        self.context.borrow_dependent().sizeof()
    }

    /// Compresses from the front of `input` into `down`, never past `room`
    /// bytes: what does not fit stays inside zstd (at most a block) or in
    /// `input`. Returns whether the directive completed: all input taken
    /// and, for `Flush` and `End`, everything emitted.
    pub(crate) fn run(
        &mut self,
        input: &mut BytesMut,
        down: &mut BytesMut,
        room: usize,
        directive: Directive,
    ) -> Result<bool, ZstdError> {
        let directive = if self.ending {
            Directive::End
        } else {
            directive
        };
        self.ending = directive == Directive::End;
        let op = match directive {
            Directive::Flush => ZSTD_EndDirective::ZSTD_e_flush,
            Directive::End => ZSTD_EndDirective::ZSTD_e_end,
        };
        let mut room = room;
        let mut chunk =
            zstd::zstd_safe::compress_bound(input.len() + self.held).saturating_add(FRAME_SLACK);
        loop {
            if room == 0 {
                self.pending = true;
                return Ok(false);
            }
            let mut source = InBuffer::around(&input[..]);
            let out = self.context.with_dependent_mut(|_, cctx| {
                let call = Compress {
                    cctx,
                    source: &mut source,
                    op,
                };
                out::write(down, chunk.min(room), room, call)
            });
            let consumed = source.pos();
            input.advance(consumed);
            let written = out.len;
            room -= written;
            let left = out.result.map_err(ZstdError::compressing)?;
            self.held = (self.held + consumed).min(self.block_size);
            if input.is_empty() && left == 0 {
                self.pending = false;
                self.held = 0;
                return Ok(true);
            }
            if written == out.offered {
                // The chunk was too small for what zstd had: grow it.
                chunk = out.offered.saturating_mul(2);
            } else if consumed == 0 && written == 0 {
                // zstd made no progress with room to spare; never spin.
                self.pending = true;
                return Ok(false);
            }
        }
    }
}
