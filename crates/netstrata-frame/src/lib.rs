//! Framing codecs (work in progress).
#![forbid(unsafe_code)]
