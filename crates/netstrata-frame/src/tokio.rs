//! tokio-util `Decoder`/`Encoder` implementations (feature `tokio-util`).
//!
//! Every codec of the crate implements `Decoder<Item = Bytes, Error =
//! io::Error>`, `Encoder<Bytes>` and `Encoder<&[u8]>`, so it plugs into
//! `FramedRead`, `FramedWrite` and `Framed`. [`FrameError`](crate::FrameError)s
//! become `io::Error`s of kind `InvalidData` (peer) or `InvalidInput`
//! (caller), with the `FrameError` inside. As with tokio-util's own codecs,
//! bytes left over at the end of the stream are an error ("bytes remaining on
//! stream").

use std::io;

use bytes::{Bytes, BytesMut};
use netstrata_core::Codec;
use tokio_util::codec::{Decoder, Encoder};

use crate::{Delimited, LengthDelimited, Lines, Varint};

macro_rules! tokio_codec {
    ($($codec:ty),+ $(,)?) => {$(
        #[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
        impl Decoder for $codec {
            type Item = Bytes;
            type Error = io::Error;

            #[inline]
            fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
                Ok(Codec::decode(self, src)?)
            }

            fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
                match Codec::decode_eof(self, src)? {
                    Some(frame) => Ok(Some(frame)),
                    None if src.is_empty() => Ok(None),
                    None => Err(io::Error::other("bytes remaining on stream")),
                }
            }
        }

        #[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
        impl Encoder<Bytes> for $codec {
            type Error = io::Error;

            fn encode(&mut self, msg: Bytes, dst: &mut BytesMut) -> io::Result<()> {
                Ok(Codec::encode(self, &msg, dst)?)
            }
        }

        #[cfg_attr(docsrs, doc(cfg(feature = "tokio-util")))]
        impl Encoder<&[u8]> for $codec {
            type Error = io::Error;

            fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> io::Result<()> {
                Ok(Codec::encode(self, msg, dst)?)
            }
        }
    )+};
}

tokio_codec!(LengthDelimited, Varint, Lines, Delimited);
