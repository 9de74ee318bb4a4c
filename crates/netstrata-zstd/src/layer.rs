//! The layer: an encoder and a decoder, each created on first use.

use std::fmt;

use bytes::BytesMut;
use netstrata_core::{Error, Flush, Inbound, Layer, Outbound, Result};

use crate::decoder::{self, Decoder, Progress};
use crate::encoder::{Directive, Encoder};
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

/// The inbound direction.
enum ReadSide {
    /// No byte of the frame decoded yet: no context.
    Idle,
    /// Inside the frame.
    Open(Decoder),
    /// The frame ended cleanly; the context is gone.
    Ended,
    /// An error ended the direction (the peer's fault or a truncation); the
    /// context is gone.
    Failed,
}

/// A streaming zstd layer: one zstd frame per direction for the life of the
/// connection, with the compression context kept across messages.
///
/// Outbound, [`Flush::Hold`] lets zstd gather bytes into larger blocks,
/// [`Flush::Batch`] ends the block so the peer can decode everything sent so
/// far on arrival, and [`Flush::Finish`] ends the frame, after which
/// [`Layer::is_write_closed`] is `true`. Output never exceeds the room
/// offered below (the bound is kept strictly, not just softly): the rest
/// waits inside zstd, at most one block, and input waits in the caller's
/// buffer.
///
/// Inbound, the end of the frame is the clean end ([`Layer::is_read_closed`]);
/// the transport ending anywhere before it is [`Error::Truncated`], and bytes
/// after it are [`ZstdError::TrailingData`]. Decoded bytes never exceed the
/// room above, whatever the input, and the layer reports
/// [`Layer::wants_read`] `false` while that room keeps it from delivering
/// what zstd holds. A frame asking for a window above the limit, corrupt
/// data or a wrong dictionary fail with [`Error::PeerMisbehaved`] carrying a
/// [`ZstdError`].
///
/// Contexts are created when a direction is first used and dropped when its
/// frame ends; [`ZstdConfig`] documents what they cost.
pub struct Zstd {
    config: ZstdConfig,
    write: WriteSide,
    read: ReadSide,
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
            read: ReadSide::Idle,
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
    /// before the first byte arrives and after the frame has ended.
    pub fn decoder_memory(&self) -> usize {
        match &self.read {
            ReadSide::Open(d) => d.memory(),
            ReadSide::Idle | ReadSide::Ended | ReadSide::Failed => 0,
        }
    }

    /// Both contexts together: the layer's memory beyond its own few bytes.
    pub fn memory(&self) -> usize {
        self.encoder_memory() + self.decoder_memory()
    }

    fn inbound(
        &mut self,
        input: &mut BytesMut,
        up: &mut BytesMut,
        room: usize,
    ) -> Result<(), ZstdError> {
        if let ReadSide::Idle = self.read {
            // Check the magic number before allocating anything, and refuse
            // what is not a standard frame (skippable and legacy frames
            // included: legacy decoders ignore the window limit).
            let have = input.len().min(decoder::MAGIC.len());
            if input[..have] != decoder::MAGIC[..have] {
                return Err(ZstdError::NotZstd);
            }
            if have < decoder::MAGIC.len() || room == 0 {
                return Ok(());
            }
            self.read = ReadSide::Open(Decoder::new(&self.config)?);
        }
        let ReadSide::Open(decoder) = &mut self.read else {
            return match input.len() {
                0 => Ok(()),
                bytes => Err(ZstdError::TrailingData { bytes }),
            };
        };
        if decoder.run(input, up, room)? == Progress::FrameEnd {
            self.read = ReadSide::Ended;
            if !input.is_empty() {
                return Err(ZstdError::TrailingData { bytes: input.len() });
            }
        }
        Ok(())
    }

    fn outbound(&mut self, io: Outbound<'_>) -> Result<(), ZstdError> {
        let directive = match io.flush {
            Flush::Hold => Directive::Continue,
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
            && encoder.run(io.input, io.down, io.down_room, directive)?
            && encoder.is_ending()
        {
            // The frame is complete: free the context.
            self.write = WriteSide::Ended;
        }
        Ok(())
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
            ReadSide::Idle => "idle",
            ReadSide::Open(_) => "open",
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
        let Inbound {
            input,
            input_ended,
            up,
            up_room,
            ..
        } = io;
        if let Err(e) = self.inbound(input, up, up_room) {
            // The connection is over: free the context now.
            self.read = ReadSide::Failed;
            return Err(Error::peer(NAME, e));
        }
        if !input_ended {
            return Ok(());
        }
        let detail = match &self.read {
            // Fewer bytes than the magic number, and no more to come.
            ReadSide::Idle if input.len() < decoder::MAGIC.len() => {
                "transport ended before the zstd frame began"
            }
            ReadSide::Open(d) if input.is_empty() && !d.is_stalled() => {
                "transport ended inside the zstd frame"
            }
            // Still delivering what zstd or the caller holds, or done.
            ReadSide::Idle | ReadSide::Open(_) | ReadSide::Ended | ReadSide::Failed => {
                return Ok(());
            }
        };
        self.read = ReadSide::Failed;
        Err(Error::Truncated {
            layer: NAME,
            detail,
        })
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        self.outbound(io).map_err(|e| {
            self.write = WriteSide::Failed;
            Error::misuse(NAME, e)
        })
    }

    fn wants_read(&self) -> bool {
        match &self.read {
            ReadSide::Open(d) => !d.is_stalled(),
            ReadSide::Idle | ReadSide::Ended => true,
            ReadSide::Failed => false,
        }
    }

    fn is_read_closed(&self) -> bool {
        matches!(self.read, ReadSide::Ended)
    }

    fn is_write_closed(&self) -> bool {
        matches!(self.write, WriteSide::Ended)
    }
}
