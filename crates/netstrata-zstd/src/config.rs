//! Settings of a zstd layer: compression, memory limits, dictionary.

use zstd::zstd_safe;

use crate::{DecoderBudget, Dictionary};

/// Settings of a [`crate::Zstd`] layer. Every setting has a documented
/// default and a setter; setters panic on values zstd does not accept.
///
/// # Memory per connection
///
/// Our encoder keeps a small window so that our own peers stay cheap, and
/// our decoder accepts the windows other peers use at their defaults, with
/// what they cost drawn from a budget the process's decoders share
/// ([`DecoderBudget`]). Measured with zstd 1.5.7
/// (`ZSTD_sizeof_CCtx`/`ZSTD_sizeof_DCtx`, see [`crate::Zstd::encoder_memory`]):
///
/// | direction | setting | bytes |
/// |---|---|---|
/// | encoder | default: level 3, window 2^15, hash 2^14, chain 2^13, 16 KiB blocks | 251,025 |
/// | decoder | a peer at our window, 2^15 | 227,112 |
/// | decoder | a peer at zstd's level-3 stream window, 2^21 | 2,586,408 |
/// | decoder | a peer at the default limit, 2^23 (`zstd -19`, `--long=23`) | 8,877,864 |
///
/// Up to level 15 the encoder costs about
/// `window + 5.5 * block_size + 4 * (1 << hash_log) + 4 * (1 << chain_log) + 30 KiB`
/// (a little less at levels 1 and 2, which use one table); levels 16 and up
/// (optimal parsing) add 150 to 300 KiB. The decoder costs
/// `4 * window + 94 KiB` for windows up to 128 KiB and `window + 478 KiB`
/// above, where the window is the peer's, at most `1 << max_window_log`:
/// that is what it reserves of the budget when a frame header arrives,
/// before zstd allocates. A direction costs nothing until it is first used;
/// the encoder's context goes when its frame ends, the decoder's when the
/// stream ends or the connection goes idle between frames.
///
/// The trade-off: a 32 KiB encoder window finds repeats only within the
/// last 32 KiB, which loses little when messages resemble recent ones (log
/// lines, RPC calls) and more on long, varied streams; raise `window_log`
/// there (the peer must accept it: any zstd decoder at its defaults takes
/// up to 2^23 or more). A peer that compresses with a window above our
/// limit is refused with [`crate::ZstdError::WindowTooLarge`], which names
/// both; tell it the limit (`zstd --zstd=wlog=23`, async-compression's
/// `CParameter::window_log(23)`), or raise the limit.
#[derive(Debug, Clone)]
pub struct ZstdConfig {
    level: i32,
    window_log: u32,
    hash_log: u32,
    chain_log: u32,
    block_size: u32,
    checksum: bool,
    max_window_log: u32,
    decoder_budget: DecoderBudget,
    dictionary: Option<Dictionary>,
}

impl ZstdConfig {
    /// Default compression level (zstd's own default).
    pub const DEFAULT_LEVEL: i32 = 3;
    /// Default encoder window: 2^15 = 32 KiB.
    pub const DEFAULT_WINDOW_LOG: u32 = 15;
    /// Default size of the encoder's main match table: 2^14 entries (64 KiB).
    pub const DEFAULT_HASH_LOG: u32 = 14;
    /// Default size of the encoder's second match table: 2^13 entries (32 KiB).
    pub const DEFAULT_CHAIN_LOG: u32 = 13;
    /// Default largest block the encoder emits (16 KiB; zstd's is 128 KiB).
    pub const DEFAULT_BLOCK_SIZE: u32 = 16 * 1024;
    /// Default decoder window limit: 2^23 = 8 MiB, the limit RFC 9659 sets
    /// for HTTP's zstd content coding, enough for what zstd and the libraries
    /// on it send at their defaults (2^21 at level 3, 2^23 at level 19);
    /// zstd's own limit is 2^27 = 128 MiB.
    pub const DEFAULT_MAX_WINDOW_LOG: u32 = 23;

    /// Smallest window log zstd accepts.
    pub const MIN_WINDOW_LOG: u32 = 10;
    /// Largest window log accepted here (zstd's own limit on 64-bit machines).
    pub const MAX_WINDOW_LOG: u32 = 31;

    /// The defaults: level 3, a 32 KiB encoder window, small match tables,
    /// no checksum, a decoder that accepts windows up to 8 MiB within the
    /// process's [`DecoderBudget`], no dictionary.
    pub fn new() -> Self {
        Self {
            level: Self::DEFAULT_LEVEL,
            window_log: Self::DEFAULT_WINDOW_LOG,
            hash_log: Self::DEFAULT_HASH_LOG,
            chain_log: Self::DEFAULT_CHAIN_LOG,
            block_size: Self::DEFAULT_BLOCK_SIZE,
            checksum: false,
            max_window_log: Self::DEFAULT_MAX_WINDOW_LOG,
            decoder_budget: DecoderBudget::process(),
            dictionary: None,
        }
    }

    /// Sets the compression level: 1 (fast) to 22 (small), negative for
    /// faster still, 0 for zstd's default (3). Window and table sizes stay as
    /// set here whatever the level, so memory does not grow with it.
    ///
    /// # Panics
    /// Outside zstd's range (about -131072 to 22).
    pub fn with_level(mut self, level: i32) -> Self {
        let range = zstd_safe::min_c_level()..=zstd_safe::max_c_level();
        assert!(
            range.contains(&level),
            "zstd level {level} outside {range:?}"
        );
        self.level = level;
        self
    }

    /// Sets the encoder's window, `1 << log` bytes: how far back it looks for
    /// repeats. The peer's decoder must allow it (its `max_window_log`).
    ///
    /// # Panics
    /// Outside `10..=31`.
    pub fn with_window_log(mut self, log: u32) -> Self {
        self.window_log = check_log(
            "window_log",
            log,
            Self::MIN_WINDOW_LOG,
            Self::MAX_WINDOW_LOG,
        );
        self
    }

    /// Sets the size of the encoder's main match table, `1 << log` entries of
    /// 4 bytes. Larger finds more matches and costs memory.
    ///
    /// # Panics
    /// Outside `6..=30`.
    pub fn with_hash_log(mut self, log: u32) -> Self {
        self.hash_log = check_log("hash_log", log, 6, 30);
        self
    }

    /// Sets the size of the encoder's second match table (a chain or short
    /// hash, depending on the level's strategy), `1 << log` entries of 4 bytes.
    ///
    /// # Panics
    /// Outside `6..=30`.
    pub fn with_chain_log(mut self, log: u32) -> Self {
        self.chain_log = check_log("chain_log", log, 6, 30);
        self
    }

    /// Sets the largest block the encoder emits, in bytes. The encoder's
    /// buffers scale with it (about 4 bytes per block byte); the decoder does
    /// not depend on it. Smaller blocks cost a little ratio on large messages.
    ///
    /// # Panics
    /// Outside `1024..=131072`.
    pub fn with_block_size(mut self, bytes: u32) -> Self {
        assert!(
            (1024..=128 * 1024).contains(&bytes),
            "zstd block size {bytes} outside 1024..=131072"
        );
        self.block_size = bytes;
        self
    }

    /// Sets whether the encoder appends a content checksum (4 bytes) at the
    /// end of the frame. Default `false`: the checksum is only checked when
    /// the frame ends, at orderly shutdown, long after the messages were
    /// delivered; TLS or TCP already guard the bytes in transit.
    pub fn with_checksum(mut self, on: bool) -> Self {
        self.checksum = on;
        self
    }

    /// Sets the decoder's window limit, `1 << log` bytes (default 2^23): a
    /// frame asking for more is refused ([`crate::ZstdError::WindowTooLarge`])
    /// before anything is allocated for it. A decoder then holds at most
    /// `(1 << log) + 478 KiB` (above 2^17; see the table above), whatever
    /// the peer sends, and only while its budget covers it.
    ///
    /// # Panics
    /// Outside `10..=31`.
    pub fn with_max_window_log(mut self, log: u32) -> Self {
        self.max_window_log = check_log(
            "max_window_log",
            log,
            Self::MIN_WINDOW_LOG,
            Self::MAX_WINDOW_LOG,
        );
        self
    }

    /// Sets the budget the decoder draws its memory from (default: the
    /// process's, [`DecoderBudget::process`], 1 GiB). Connections whose
    /// configurations hold clones of one budget share it.
    pub fn with_decoder_budget(mut self, budget: DecoderBudget) -> Self {
        self.decoder_budget = budget;
        self
    }

    /// Sets the dictionary for both directions (default: none). The peer
    /// must use the same one.
    pub fn with_dictionary(mut self, dictionary: Dictionary) -> Self {
        self.dictionary = Some(dictionary);
        self
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// The encoder's window log.
    pub fn window_log(&self) -> u32 {
        self.window_log
    }

    /// The encoder's main match table log.
    pub fn hash_log(&self) -> u32 {
        self.hash_log
    }

    /// The encoder's second match table log.
    pub fn chain_log(&self) -> u32 {
        self.chain_log
    }

    /// The encoder's largest block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Whether the encoder appends a content checksum.
    pub fn checksum(&self) -> bool {
        self.checksum
    }

    /// The decoder's window limit log.
    pub fn max_window_log(&self) -> u32 {
        self.max_window_log
    }

    /// The decoder's window limit in bytes.
    pub fn max_window(&self) -> usize {
        1usize << self.max_window_log
    }

    /// The budget the decoder draws from.
    pub fn decoder_budget(&self) -> &DecoderBudget {
        &self.decoder_budget
    }

    /// The dictionary, if any.
    pub fn dictionary(&self) -> Option<&Dictionary> {
        self.dictionary.as_ref()
    }
}

impl Default for ZstdConfig {
    fn default() -> Self {
        Self::new()
    }
}

fn check_log(name: &str, log: u32, min: u32, max: u32) -> u32 {
    assert!(
        (min..=max).contains(&log),
        "zstd {name} {log} outside {min}..={max}"
    );
    log
}
