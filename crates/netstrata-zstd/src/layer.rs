//! The layer: an encoder and a decoder, each created on first use.

use std::fmt;

use bytes::{Buf, BytesMut};
use netstrata_core::{Error, Flush, Inbound, Layer, Outbound, Result, StickyError};

use crate::decoder::{Decoder, Progress};
use crate::encoder::{Directive, Encoder};
use crate::header::{self, Header};
use crate::{ZstdConfig, ZstdError};

const NAME: &str = "zstd";

/// The outbound direction.
enum WriteSide {
    /// Nothing written yet: no context.
    Idle,
    /// The frame is open.
    Open(Encoder),
    /// The frame has ended; the context is gone.
    Ended,
    /// An error ended the direction; the context is gone.
    Failed,
}

/// The inbound direction: a stream of frames, read as `zstd -d` reads
/// one (frames one after another, skippable frames skipped), that ends
/// where the transport ends.
enum ReadSide {
    /// At a frame boundary: the next bytes begin a frame, or the stream
    /// ends here. `kept` is the last frame's context, which serves the next
    /// frame unless the connection goes idle first.
    Boundary {
        kept: Option<Decoder>,
        /// A frame has ended: the stream may end here cleanly.
        after_frame: bool,
    },
    /// Inside a skippable frame, with `left` bytes of it to discard.
    Skipping { left: u64, kept: Option<Decoder> },
    /// Inside a zstd frame.
    Frame(Decoder),
    /// The transport ended at a frame boundary: the clean end. The
    /// context is gone.
    Ended,
    /// An error ended the direction (the peer's fault, a truncation or a
    /// local limit); the context is gone.
    Failed,
}

impl ReadSide {
    /// The live context, if any.
    fn decoder(&self) -> Option<&Decoder> {
        match self {
            Self::Frame(d)
            | Self::Boundary { kept: Some(d), .. }
            | Self::Skipping { kept: Some(d), .. } => Some(d),
            Self::Boundary { kept: None, .. }
            | Self::Skipping { kept: None, .. }
            | Self::Ended
            | Self::Failed => None,
        }
    }
}

/// A streaming zstd layer: one zstd frame per direction for the life of the
/// connection, with the compression context kept across messages.
///
/// Outbound, zstd gathers each call's input (a whole write batch) into
/// blocks, [`Flush::Batch`] ends the block so the peer can decode everything sent so
/// far on arrival, and [`Flush::Finish`] ends the frame, after which
/// [`Layer::is_write_closed`] is `true`. Output never exceeds the room
/// offered below (the bound is kept strictly, not just softly): the rest
/// waits inside zstd, at most one block, and input waits in the caller's
/// buffer.
///
/// Inbound, the layer reads a stream of frames as `zstd -d` does: frames
/// one after another (ours, or one per message from another peer) and
/// skippable frames, each frame's header checked before zstd allocates for
/// it. The transport ending at a frame boundary is the clean end
/// ([`Layer::is_read_closed`]); ending inside a frame, or before the first,
/// is [`Error::Truncated`]. Decoded bytes never exceed the room above,
/// whatever the input, and the layer reports [`Layer::wants_read`] `false`
/// while that room keeps it from delivering what zstd holds. A frame asking
/// for a window above the limit, corrupt data, a legacy frame, bytes that
/// are not a frame or a wrong dictionary fail with [`Error::PeerMisbehaved`]
/// carrying a [`ZstdError`]; a frame the decoders' shared
/// [`crate::DecoderBudget`] cannot cover fails with [`Error::LocalLimit`].
///
/// Contexts are created when a direction is first used. The encoder's is
/// dropped when its frame ends; the decoder's is kept from one frame to the
/// next and dropped when the stream ends, fails, or goes idle at a frame
/// boundary ([`Layer::release_buffers`]). [`ZstdConfig`] documents what
/// they cost.
pub struct Zstd {
    config: ZstdConfig,
    write: WriteSide,
    read: ReadSide,
    /// The first error; the layer is dead after it.
    failed: StickyError,
}

impl Zstd {
    /// A layer with the default settings ([`ZstdConfig::new`]).
    pub fn new() -> Self {
        Self::with_config(ZstdConfig::new())
    }

    /// A layer with `config`.
    pub fn with_config(config: ZstdConfig) -> Self {
        Self {
            config,
            write: WriteSide::Idle,
            read: ReadSide::Boundary {
                kept: None,
                after_frame: false,
            },
            failed: StickyError::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ZstdConfig {
        &self.config
    }

    /// Bytes the compression context holds now (`ZSTD_sizeof_CCtx`): 0
    /// before the first write and after the frame has ended.
    pub fn encoder_memory(&self) -> usize {
        match &self.write {
            WriteSide::Open(e) => e.memory(),
            WriteSide::Idle | WriteSide::Ended | WriteSide::Failed => 0,
        }
    }

    /// Bytes the decompression context holds now (`ZSTD_sizeof_DCtx`): 0
    /// before the first frame header arrives, once the stream has ended or
    /// failed, and after the context was released between frames.
    pub fn decoder_memory(&self) -> usize {
        self.read.decoder().map_or(0, Decoder::memory)
    }

    /// Bytes the decompression context holds of the decoders' budget
    /// ([`ZstdConfig::decoder_budget`]): what zstd will need for the largest
    /// window it has seen, never less than [`Self::decoder_memory`].
    pub fn decoder_reserved(&self) -> usize {
        self.read.decoder().map_or(0, Decoder::reserved)
    }

    /// Both contexts together: the layer's memory beyond its own few bytes.
    pub fn memory(&self) -> usize {
        self.encoder_memory() + self.decoder_memory()
    }

    /// Decodes what `input` holds, frame after frame, into at most `room`
    /// bytes of `up`.
    fn inbound(
        &mut self,
        input: &mut BytesMut,
        up: &mut BytesMut,
        room: usize,
    ) -> Result<(), ZstdError> {
        let start = up.len();
        loop {
            match std::mem::replace(&mut self.read, ReadSide::Failed) {
                ReadSide::Boundary { kept, after_frame } => {
                    let Some(header) = header::parse(input)? else {
                        self.read = ReadSide::Boundary { kept, after_frame };
                        return Ok(());
                    };
                    self.read = self.begin(header, kept)?;
                    if let ReadSide::Skipping { .. } = self.read {
                        input.advance(header::SKIPPABLE_HEADER);
                    }
                }
                ReadSide::Skipping { left, kept } => {
                    let skip = left.min(input.len() as u64);
                    input.advance(skip as usize);
                    self.read = match left - skip {
                        0 => ReadSide::Boundary {
                            kept,
                            after_frame: true,
                        },
                        left => ReadSide::Skipping { left, kept },
                    };
                    if input.is_empty() {
                        return Ok(());
                    }
                }
                ReadSide::Frame(mut decoder) => {
                    let left = room.saturating_sub(up.len() - start);
                    let progress = decoder.run(input, up, left)?;
                    if progress != Progress::FrameEnd {
                        self.read = ReadSide::Frame(decoder);
                        return Ok(());
                    }
                    self.read = ReadSide::Boundary {
                        kept: Some(decoder),
                        after_frame: true,
                    };
                }
                side @ (ReadSide::Ended | ReadSide::Failed) => {
                    self.read = side;
                    return Ok(());
                }
            }
        }
    }

    /// The state after a frame header: the frame's window checked against
    /// the limit and covered by the budget (the kept context grown, or a
    /// new one) before zstd allocates for it.
    fn begin(&self, header: Header, kept: Option<Decoder>) -> Result<ReadSide, ZstdError> {
        let window = match header {
            Header::Skippable { len } => {
                return Ok(ReadSide::Skipping {
                    left: u64::from(len),
                    kept,
                });
            }
            Header::Frame { window } => window,
        };
        let limit = self.config.max_window();
        if window > limit as u64 {
            return Err(ZstdError::WindowTooLarge { window, limit });
        }
        let decoder = match kept {
            Some(mut decoder) => {
                decoder.next_frame(window)?;
                decoder
            }
            None => Decoder::new(&self.config, window)?,
        };
        Ok(ReadSide::Frame(decoder))
    }

    fn outbound(&mut self, io: Outbound<'_>) -> Result<(), ZstdError> {
        let directive = match io.flush {
            Flush::Batch => Directive::Flush,
            Flush::Finish => Directive::End,
        };
        let nothing_pending = match &self.write {
            WriteSide::Ended | WriteSide::Failed if io.input.is_empty() => return Ok(()),
            WriteSide::Ended | WriteSide::Failed => return Err(ZstdError::WriteAfterEnd),
            WriteSide::Idle => true,
            WriteSide::Open(e) => !e.is_pending(),
        };
        // Nothing to write and nothing to end: no context is needed.
        if io.input.is_empty() && nothing_pending && directive != Directive::End {
            return Ok(());
        }
        if let WriteSide::Idle = self.write {
            self.write = WriteSide::Open(Encoder::new(&self.config)?);
        }
        if let WriteSide::Open(encoder) = &mut self.write
            && encoder.run(io.input, io.lower, io.lower_room, directive)?
            && encoder.is_ending()
        {
            // The frame is complete: free the context.
            self.write = WriteSide::Ended;
        }
        Ok(())
    }

    /// One outbound call; an error ends the direction.
    fn write_stream(&mut self, io: Outbound<'_>) -> Result<()> {
        self.outbound(io).map_err(|e| {
            self.write = WriteSide::Failed;
            e.into_core(NAME)
        })
    }

    /// One inbound call: frames decoded, the end of the transport judged.
    fn read_stream(&mut self, io: Inbound<'_>) -> Result<()> {
        let Inbound {
            input,
            input_ended,
            upper,
            upper_room,
            ..
        } = io;
        if let Err(e) = self.inbound(input, upper, upper_room) {
            // The connection is over: free the context now.
            self.read = ReadSide::Failed;
            return Err(e.into_core(NAME));
        }
        if !input_ended {
            return Ok(());
        }
        let detail = match &self.read {
            ReadSide::Boundary { after_frame, .. } if input.is_empty() => {
                if *after_frame {
                    // The end of the transport at a frame boundary.
                    self.read = ReadSide::Ended;
                    return Ok(());
                }
                "transport ended before the first zstd frame"
            }
            ReadSide::Boundary { .. } => "transport ended inside a zstd frame header",
            ReadSide::Skipping { .. } => "transport ended inside a skippable frame",
            ReadSide::Frame(d) if input.is_empty() && !d.is_stalled() => {
                "transport ended inside a zstd frame"
            }
            // Still delivering what zstd or the caller holds, or done.
            ReadSide::Frame(_) | ReadSide::Ended | ReadSide::Failed => return Ok(()),
        };
        self.read = ReadSide::Failed;
        Err(Error::Truncated {
            layer: NAME,
            detail,
        })
    }
}

impl Default for Zstd {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Zstd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let write = match self.write {
            WriteSide::Idle => "idle",
            WriteSide::Open(_) => "open",
            WriteSide::Ended => "ended",
            WriteSide::Failed => "failed",
        };
        let read = match self.read {
            ReadSide::Boundary { .. } => "between frames",
            ReadSide::Skipping { .. } => "skipping",
            ReadSide::Frame(_) => "in a frame",
            ReadSide::Ended => "ended",
            ReadSide::Failed => "failed",
        };
        f.debug_struct("Zstd")
            .field("config", &self.config)
            .field("write", &write)
            .field("read", &read)
            .finish()
    }
}

impl Layer for Zstd {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        StickyError::guard(self, |z| &mut z.failed, |z| z.read_stream(io))
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        StickyError::guard(self, |z| &mut z.failed, |z| z.write_stream(io))
    }

    fn wants_read(&self) -> bool {
        match &self.read {
            _ if self.failed.has_failed() => false,
            ReadSide::Frame(d) => !d.is_stalled(),
            ReadSide::Boundary { .. } | ReadSide::Skipping { .. } | ReadSide::Ended => true,
            ReadSide::Failed => false,
        }
    }

    /// Drops a context kept between frames (and gives its memory back to
    /// the budget): a context inside a frame holds that frame's window and
    /// stays.
    fn release_buffers(&mut self) {
        if let ReadSide::Boundary { kept, .. } | ReadSide::Skipping { kept, .. } = &mut self.read {
            *kept = None;
        }
    }

    fn is_read_closed(&self) -> bool {
        matches!(self.read, ReadSide::Ended)
    }

    fn is_write_closed(&self) -> bool {
        matches!(self.write, WriteSide::Ended)
    }
}
