//! The codecs as tokio-util `Decoder`s and `Encoder`s, through `FramedRead`
//! and `FramedWrite` (polled by hand: `&[u8]` and `Vec<u8>` are always ready).
#![cfg(feature = "tokio-util")]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use netstrata_frame::{Delimited, FrameError, LengthDelimited, Lines, Varint};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

fn poll<T>(f: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match f(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("in-memory I/O is never pending"),
    }
}

/// Writes `msgs` through `FramedWrite`, reads them back through `FramedRead`.
fn through_framed<C>(codec: C, msgs: &[&[u8]]) -> Vec<io::Result<Bytes>>
where
    C: Decoder<Item = Bytes, Error = io::Error> + Encoder<Bytes, Error = io::Error> + Clone,
{
    let mut sink = FramedWrite::new(Vec::new(), codec.clone());
    for msg in msgs {
        poll(|cx| Pin::new(&mut sink).poll_ready(cx)).unwrap();
        Pin::new(&mut sink)
            .start_send(Bytes::copy_from_slice(msg))
            .unwrap();
    }
    poll(|cx| Pin::new(&mut sink).poll_flush(cx)).unwrap();
    let wire = sink.into_inner();

    let mut stream = FramedRead::new(&wire[..], codec);
    let mut out = Vec::new();
    while let Some(item) = poll(|cx| Pin::new(&mut stream).poll_next(cx)) {
        let failed = item.is_err();
        out.push(item);
        if failed {
            break;
        }
    }
    out
}

fn ok(items: Vec<io::Result<Bytes>>) -> Vec<Bytes> {
    items.into_iter().map(Result::unwrap).collect()
}

#[test]
fn every_codec_works_with_framed_read_and_write() {
    let msgs: [&[u8]; 3] = [b"one", b"", b"three"];
    assert_eq!(ok(through_framed(LengthDelimited::new(), &msgs)), msgs);
    assert_eq!(ok(through_framed(Varint::new(), &msgs)), msgs);
    assert_eq!(ok(through_framed(Lines::new(), &msgs)), msgs);
    assert_eq!(ok(through_framed(Delimited::new(b"\0"), &msgs)), msgs);
}

#[test]
fn errors_become_io_errors_of_the_right_kind() {
    let mut codec = LengthDelimited::builder().max_frame_length(2).new_codec();
    let err = Encoder::<&[u8]>::encode(&mut codec, b"abc", &mut BytesMut::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

    let mut src = BytesMut::from(&[0, 0, 0, 9][..]);
    let err = Decoder::decode(&mut codec, &mut src).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let inner = err.get_ref().and_then(|e| e.downcast_ref::<FrameError>());
    assert_eq!(inner, Some(&FrameError::FrameTooLong { len: 9, max: 2 }));
}

#[test]
fn end_of_stream_inside_a_frame_is_an_error_but_a_last_line_is_not() {
    let mut stream = FramedRead::new(&b"\0\0\0\x05abc"[..], LengthDelimited::new());
    let item = poll(|cx| Pin::new(&mut stream).poll_next(cx)).unwrap();
    assert!(item.is_err());

    let mut stream = FramedRead::new(&b"a\r\nlast"[..], Lines::new());
    let mut lines = Vec::new();
    while let Some(line) = poll(|cx| Pin::new(&mut stream).poll_next(cx)) {
        lines.push(line.unwrap());
    }
    assert_eq!(lines, [&b"a"[..], b"last"]);
}
