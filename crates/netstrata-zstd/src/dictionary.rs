//! Dictionaries, prepared once and shared by every connection that uses them.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use zstd::zstd_safe::{CDict, DDict};

use crate::ZstdError;

/// A zstd dictionary for both directions, prepared once and shared.
///
/// Cloning is cheap (a reference count). Connections reference the prepared
/// forms instead of loading their own copy, so a dictionary adds nothing to
/// per-connection memory; each connection's encoder loads it into its own
/// (small) match tables once, when its frame starts.
///
/// Both sides must use the same dictionary: frames carry its id, and a
/// decoder without it, or with another one, fails with
/// [`ZstdError::DictionaryMismatch`]. A dictionary larger than the window
/// (`1 << window_log` bytes) is only partly useful to the encoder; train
/// with `max_size` at most the window.
#[derive(Clone)]
pub struct Dictionary(Arc<Inner>);

struct Inner {
    content: Box<[u8]>,
    id: Option<u32>,
    decoder: DDict<'static>,
    /// zstd takes the compression level from the prepared dictionary, so
    /// there is one per level in use (normally one).
    encoders: Mutex<Vec<(i32, Arc<CDict<'static>>)>>,
}

impl Dictionary {
    /// Prepares `content`: a dictionary trained by zstd (`zstd --train`,
    /// [`Dictionary::train`]) or raw content that messages are likely to
    /// repeat. The bytes are copied.
    pub fn new(content: &[u8]) -> Result<Self, ZstdError> {
        if content.is_empty() {
            return Err(ZstdError::Dictionary {
                reason: "empty dictionary".into(),
            });
        }
        let decoder = DDict::try_create(content).ok_or_else(|| ZstdError::Dictionary {
            reason: "zstd could not load it".into(),
        })?;
        Ok(Self(Arc::new(Inner {
            id: decoder.get_dict_id().map(u32::from),
            content: content.into(),
            decoder,
            encoders: Mutex::new(Vec::new()),
        })))
    }

    /// Trains a dictionary of at most `max_size` bytes from typical messages
    /// (zstd's COVER trainer; a few hundred samples or more, a few KiB to
    /// 100 KiB of dictionary). Fails when the samples are too few or too
    /// uniform to learn from.
    pub fn train<S: AsRef<[u8]>>(samples: &[S], max_size: usize) -> Result<Self, ZstdError> {
        let content =
            zstd::dict::from_samples(samples, max_size).map_err(|e| ZstdError::Dictionary {
                reason: format!("training failed: {e}"),
            })?;
        Self::new(&content)
    }

    /// The dictionary's bytes, to store or to hand to the peer
    /// (`zstd -D file` reads them too).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.content
    }

    /// The id written into frames, `None` for a raw-content dictionary.
    pub fn id(&self) -> Option<u32> {
        self.0.id
    }

    pub(crate) fn decoder(&self) -> &DDict<'static> {
        &self.0.decoder
    }

    /// The dictionary prepared for compression at `level`, made on first use.
    pub(crate) fn encoder(&self, level: i32) -> Result<Arc<CDict<'static>>, ZstdError> {
        let mut cache = self
            .0
            .encoders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, cdict)) = cache.iter().find(|(l, _)| *l == level) {
            return Ok(Arc::clone(cdict));
        }
        let cdict = CDict::try_create(&self.0.content, level).ok_or(ZstdError::OutOfMemory)?;
        let cdict = Arc::new(cdict);
        cache.push((level, Arc::clone(&cdict)));
        Ok(cdict)
    }
}

impl fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.0.id)
            .field("len", &self.0.content.len())
            .finish_non_exhaustive()
    }
}
