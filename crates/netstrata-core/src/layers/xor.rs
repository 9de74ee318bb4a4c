use bytes::BytesMut;

use crate::layer::{Inbound, Layer, Outbound};
use crate::layers::{End, Ends};
use crate::{Error, Result};

/// XORs every byte with a repeating key, separately in each direction.
///
/// **This is obfuscation, not security**: anyone who sees enough traffic
/// recovers the key. It exists to show a layer that really changes bytes
/// (and to catch a stack that skips or reorders a layer: without the same
/// key at the same offset on both sides nothing decodes). Byte `i` of each
/// direction's stream is XORed with `key[i % key.len()]`, so the output does
/// not depend on how the input was chunked.
#[derive(Debug, Clone)]
pub struct Xor {
    key: Box<[u8]>,
    in_pos: usize,
    out_pos: usize,
    ends: Ends,
}

impl Xor {
    /// An XOR layer with `key`.
    ///
    /// # Panics
    /// If `key` is empty (a caller error found at construction, never from
    /// network input).
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Self::try_new(key).expect("Xor key must not be empty")
    }

    /// An XOR layer with `key`, or [`Error::Misuse`] if `key` is empty.
    pub fn try_new(key: impl AsRef<[u8]>) -> Result<Self> {
        let key: Box<[u8]> = key.as_ref().into();
        if key.is_empty() {
            return Err(Error::misuse("xor", "empty key"));
        }
        Ok(Self {
            key,
            in_pos: 0,
            out_pos: 0,
            ends: Ends::default(),
        })
    }
}

/// Moves up to `max` bytes from `src` to `dst`, XORing them with `key`
/// starting at key offset `*pos`.
fn xor_into(key: &[u8], pos: &mut usize, src: &mut BytesMut, dst: &mut BytesMut, max: usize) {
    let n = src.len().min(max);
    let start = dst.len();
    dst.extend_from_slice(&src.split_to(n));
    for (b, k) in dst[start..].iter_mut().zip(key.iter().cycle().skip(*pos)) {
        *b ^= k;
    }
    *pos = (*pos + n) % key.len();
}

impl Layer for Xor {
    fn name(&self) -> &'static str {
        "xor"
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        self.ends.before_inbound()?;
        if self.ends.read == End::Open {
            xor_into(
                &self.key,
                &mut self.in_pos,
                io.input,
                io.upper,
                io.upper_room,
            );
        }
        self.ends.after_inbound(io.input_ended, io.input.is_empty());
        Ok(())
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        self.ends
            .before_outbound(self.name(), io.input.is_empty())?;
        xor_into(
            &self.key,
            &mut self.out_pos,
            io.input,
            io.lower,
            io.lower_room,
        );
        self.ends.after_outbound(io.flush, io.input.is_empty());
        Ok(())
    }

    fn wants_read(&self) -> bool {
        self.ends.wants_read()
    }

    fn is_read_closed(&self) -> bool {
        self.ends.read == End::Closed
    }

    fn is_write_closed(&self) -> bool {
        self.ends.write == End::Closed
    }
}
