//! The inbound direction: zstd frames in, bytes for the layer above out.

use std::sync::OnceLock;

use bytes::{Buf, BytesMut};
use zstd::zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer, SafeResult, WriteBuf};

use crate::budget::Reservation;
use crate::out::{self, Produce};
use crate::{Dictionary, ZstdConfig, ZstdError};

self_cell::self_cell!(
    /// A decompression context and the prepared dictionary it references.
    struct Context {
        owner: Option<Dictionary>,
        #[covariant]
        dependent: DCtx,
    }
);

/// Output slack zstd keeps past the window for its wild copies, twice.
const WILDCOPY_SLACK: u64 = 2 * 32;
/// zstd's largest block (128 KiB).
const MAX_BLOCK: u64 = 128 * 1024;

/// What a decompression context holds once it has decoded a frame with
/// `window`: the context itself, an input buffer of one block and an
/// output buffer of the window plus two blocks (zstd's own
/// `ZSTD_estimateDStreamSize`, an upper bound of what it allocates).
pub(crate) fn context_cost(window: u64) -> usize {
    static CONTEXT: OnceLock<usize> = OnceLock::new();
    let context = *CONTEXT.get_or_init(|| DCtx::try_create().map_or(0, |d| d.sizeof()));
    let block = window.min(MAX_BLOCK);
    let buffers = window
        .saturating_add(3 * block)
        .saturating_add(WILDCOPY_SLACK);
    usize::try_from(buffers)
        .unwrap_or(usize::MAX)
        .saturating_add(context)
}

/// Bounds of the output-per-input estimate that sizes each output chunk, in
/// eighths: from 1.125 (incompressible data) to 64.
const MIN_EXPANSION: usize = 9;
const MAX_EXPANSION: usize = 64 * 8;
/// Added to every chunk so that small inputs get a useful one.
const CHUNK_SLACK: usize = 256;
/// The chunk offered when only output held inside zstd is left to deliver.
const DRAIN_CHUNK: usize = 16 * 1024;

/// One `ZSTD_decompressStream` call.
struct Decompress<'c, 'd, 's> {
    dctx: &'c mut DCtx<'d>,
    source: &'c mut InBuffer<'s>,
}

impl Produce for Decompress<'_, '_, '_> {
    type Output = SafeResult;
    fn produce<C: WriteBuf + ?Sized>(self, dst: &mut OutBuffer<'_, C>) -> SafeResult {
        self.dctx.decompress_stream(dst, self.source)
    }
}

/// How a call to [`Decoder::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// zstd needs more input.
    NeedInput,
    /// The room above is used up; zstd may hold more output.
    Stalled,
    /// The frame is complete and all of it was delivered.
    FrameEnd,
}

/// A decompression context, with what it holds of the decoders' budget.
/// It decodes one frame at a time and serves the frames that follow.
pub(crate) struct Decoder {
    context: Context,
    reservation: Reservation,
    /// The window the current frame asked for.
    window: u64,
    limit: usize,
    /// Output bytes per input byte seen in the last call, in eighths and
    /// rounded up with a margin, to size output chunks: too small costs
    /// another call into zstd, too large costs zeroing (see `out::write`).
    expansion: usize,
    /// The last call filled the room: zstd may hold output, so a call with
    /// no new input still has work.
    stalled: bool,
}

impl Decoder {
    /// A context for a frame that needs `window` bytes (checked against
    /// the limit by the caller), once the budget has covered it; the
    /// window limit set and the dictionary referenced, not copied.
    pub(crate) fn new(config: &ZstdConfig, window: u64) -> Result<Self, ZstdError> {
        let reservation = Reservation::new(config.decoder_budget(), context_cost(window))?;
        let context = Context::try_new(config.dictionary().cloned(), |dict| {
            let mut dctx = DCtx::try_create().ok_or(ZstdError::OutOfMemory)?;
            dctx.set_parameter(DParameter::WindowLogMax(config.max_window_log()))
                .map_err(ZstdError::compressing)?;
            if let Some(dict) = dict {
                dctx.ref_ddict(dict.decoder())
                    .map_err(ZstdError::compressing)?;
            }
            Ok::<_, ZstdError>(dctx)
        })?;
        Ok(Self {
            context,
            reservation,
            window,
            limit: config.max_window(),
            expansion: 8 * 8,
            stalled: false,
        })
    }

    /// Readies the context, at a frame boundary, for a next frame that
    /// needs `window` bytes, growing its reservation if that is more than
    /// it holds.
    pub(crate) fn next_frame(&mut self, window: u64) -> Result<(), ZstdError> {
        self.reservation.grow_to(context_cost(window))?;
        self.window = window;
        Ok(())
    }

    /// Memory the context holds now.
    pub(crate) fn memory(&self) -> usize {
        self.context.borrow_dependent().sizeof()
    }

    /// What the context holds of the budget: at least [`Self::memory`].
    pub(crate) fn reserved(&self) -> usize {
        self.reservation.bytes()
    }

    /// Whether zstd may hold output that did not fit the last call's room.
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Decodes from the front of `input` into `up`, appending at most `room`
    /// bytes: zstd writes into an output buffer no larger than the room, so
    /// the bound is exact and a bomb costs no more than the room and zstd's
    /// own window.
    pub(crate) fn run(
        &mut self,
        input: &mut BytesMut,
        up: &mut BytesMut,
        room: usize,
    ) -> Result<Progress, ZstdError> {
        let mut room = room;
        let (mut taken, mut given) = (0usize, 0usize);
        let mut chunk = match input.len() {
            0 => DRAIN_CHUNK,
            n => (n.saturating_mul(self.expansion) / 8).saturating_add(CHUNK_SLACK),
        };
        let progress = loop {
            if room == 0 {
                break Progress::Stalled;
            }
            if input.is_empty() && !self.stalled {
                // Calling zstd with nothing to do counts against its
                // no-progress limit.
                break Progress::NeedInput;
            }
            let mut source = InBuffer::around(&input[..]);
            let out = self.context.with_dependent_mut(|_, dctx| {
                let call = Decompress {
                    dctx,
                    source: &mut source,
                };
                out::write(up, chunk.min(room), room, call)
            });
            let consumed = source.pos();
            input.advance(consumed);
            let written = out.len;
            room -= written;
            (taken, given) = (taken + consumed, given + written);
            let hint = out
                .result
                .map_err(|e| ZstdError::decoding(e, self.window, self.limit))?;
            self.stalled = written == out.offered;
            if hint == 0 {
                self.stalled = false;
                break Progress::FrameEnd;
            }
            if self.stalled {
                chunk = out.offered.saturating_mul(2);
            } else if consumed == 0 || input.is_empty() {
                // zstd stops short of a full output only when it needs input.
                break Progress::NeedInput;
            }
        };
        if taken > 0 {
            self.expansion = given
                .saturating_mul(8)
                .div_ceil(taken)
                .saturating_add(1)
                .clamp(MIN_EXPANSION, MAX_EXPANSION);
        }
        Ok(progress)
    }
}
