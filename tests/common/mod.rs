//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use netstrata::layers::{Checksummed, PassThrough, Xor};
use netstrata::{BoxedLayer, Codec, DynStack, Error, Flush, Inbound, Layer, Outbound, Stack};

/// A one-byte length prefix codec, so core tests need no framing crate.
#[derive(Debug, Default)]
pub struct Tiny;

#[derive(Debug, thiserror::Error)]
#[error("message of {0} bytes does not fit a one-byte length")]
pub struct TooLong(pub usize);

impl Codec for Tiny {
    type Error = TooLong;
    fn name(&self) -> &'static str {
        "tiny"
    }
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TooLong> {
        match src.first() {
            Some(&len) if src.len() > usize::from(len) => {
                src.advance(1);
                Ok(Some(src.split_to(len.into()).freeze()))
            }
            _ => Ok(None),
        }
    }
    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), TooLong> {
        let len = u8::try_from(msg.len()).map_err(|_| TooLong(msg.len()))?;
        dst.extend_from_slice(&[len]);
        dst.extend_from_slice(msg);
        Ok(())
    }
    fn max_buffered(&self) -> usize {
        256
    }
}

/// The three demo layers, statically stacked.
pub type Static3 = Stack<(Xor, Checksummed, PassThrough)>;

pub fn static3() -> Static3 {
    Stack::new((
        Xor::new(*b"0123456789"),
        Checksummed::new(),
        PassThrough::new(),
    ))
}

pub fn dynamic3() -> DynStack {
    let layers: Vec<BoxedLayer> = vec![
        Box::new(Xor::new(*b"0123456789")),
        Box::new(Checksummed::new()),
        Box::new(PassThrough::new()),
    ];
    DynStack::new(layers)
}

/// A user-written layer with a handshake and a deadline: each side sends
/// one `H` byte and holds application bytes until it has received the
/// peer's; no `H` within `timeout` of the first call is a [`Error::TimedOut`].
/// The initiator sends its `H` first; a responder sends its `H` only in
/// answer, from inbound work (as a TLS server answers a ClientHello).
#[derive(Debug)]
pub struct Hello {
    timeout: Duration,
    deadline: Option<Instant>,
    initiator: bool,
    sent: bool,
    received: bool,
}

impl Hello {
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            deadline: None,
            initiator: true,
            sent: false,
            received: false,
        }
    }
    pub fn responder(timeout: Duration) -> Self {
        Self {
            initiator: false,
            ..Self::new(timeout)
        }
    }
    fn start(&mut self, now: Instant) {
        self.deadline.get_or_insert(now + self.timeout);
    }
}

impl Layer for Hello {
    fn name(&self) -> &'static str {
        "hello"
    }
    fn handle_inbound(&mut self, io: Inbound<'_>) -> netstrata::Result<()> {
        self.start(io.now);
        if !self.received {
            match io.input.first() {
                Some(b'H') => {
                    io.input.advance(1);
                    self.received = true;
                    if !self.sent {
                        io.lower.extend_from_slice(b"H");
                        self.sent = true;
                    }
                }
                Some(_) => return Err(Error::peer("hello", "expected H")),
                None if io.input_ended => {
                    return Err(Error::Truncated {
                        layer: "hello",
                        detail: "end before hello",
                    });
                }
                None => return Ok(()),
            }
        }
        netstrata::transfer(io.input, io.upper, io.upper_room);
        Ok(())
    }
    fn handle_outbound(&mut self, io: Outbound<'_>) -> netstrata::Result<()> {
        self.start(io.now);
        if !self.sent && self.initiator {
            io.lower.extend_from_slice(b"H");
            self.sent = true;
        }
        if self.received {
            netstrata::transfer(io.input, io.lower, io.lower_room);
        }
        Ok(())
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.filter(|_| !self.received)
    }
    fn handle_timeout(&mut self, now: Instant, _down: &mut BytesMut) -> netstrata::Result<()> {
        match self.deadline {
            Some(at) if now >= at && !self.received => Err(Error::TimedOut {
                layer: "hello",
                what: "no hello from the peer",
            }),
            _ => Ok(()),
        }
    }
    fn is_handshaking(&self) -> bool {
        !self.received
    }
    fn is_read_closed(&self) -> bool {
        false
    }
    fn is_write_closed(&self) -> bool {
        false
    }
}

/// Runs `layer`'s inbound side over `chunks` with up-room limits taken in
/// turn from `rooms`, asserting the room is honoured; returns what came up.
pub fn feed_inbound<L: Layer>(layer: &mut L, chunks: &[Vec<u8>], rooms: &[usize]) -> Vec<u8> {
    let now = Instant::now();
    let (mut input, mut up, mut down) = (BytesMut::new(), BytesMut::new(), BytesMut::new());
    let mut out = Vec::new();
    let mut turn = 0;
    let mut feed = |layer: &mut L, input: &mut BytesMut, ended: bool| {
        loop {
            let room = rooms[turn % rooms.len()].max(1);
            turn += 1;
            let before = input.len();
            layer
                .handle_inbound(
                    Inbound::new(now, input, &mut up, &mut down)
                        .with_upper_room(room)
                        .with_input_ended(ended),
                )
                .expect("valid input");
            assert!(
                up.len() <= room,
                "{} appended {} with room {room}",
                layer.name(),
                up.len()
            );
            let moved = !up.is_empty() || input.len() != before;
            out.extend_from_slice(&up.split());
            if !moved {
                break;
            }
        }
    };
    for chunk in chunks {
        input.extend_from_slice(chunk);
        feed(layer, &mut input, false);
    }
    feed(layer, &mut input, true);
    out
}

/// Runs `layer`'s outbound side over `chunks`, flushing after each chunk
/// with `flush` and finishing at the end; returns the wire bytes.
pub fn feed_outbound<L: Layer>(layer: &mut L, chunks: &[Vec<u8>], flush: Flush) -> Vec<u8> {
    let now = Instant::now();
    let (mut input, mut down) = (BytesMut::new(), BytesMut::new());
    for (i, chunk) in chunks.iter().enumerate() {
        input.extend_from_slice(chunk);
        let flush = if i + 1 == chunks.len() {
            Flush::Batch
        } else {
            flush
        };
        layer
            .handle_outbound(Outbound::new(now, &mut input, flush, &mut down))
            .expect("outbound");
    }
    layer
        .handle_outbound(Outbound::new(now, &mut input, Flush::Finish, &mut down))
        .expect("finish");
    assert!(input.is_empty());
    assert!(layer.is_write_closed());
    down.to_vec()
}

/// Splits `data` at the given cut points (taken modulo its length).
pub fn split_at(data: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points.into_iter().chain([data.len()]) {
        chunks.push(data[last..p].to_vec());
        last = p;
    }
    chunks
}
