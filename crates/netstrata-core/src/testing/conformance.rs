//! The layer contract, checked on any layer: the suite every shipped layer
//! runs, exported for layers of your own.

use std::fmt;
use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use super::{Chunking, Link, Pair, Side, buf};
use crate::{
    ByteCounters, Connection, ConnectionConfig, Error, Flush, Inbound, Layer, LayerStats, Outbound,
    RawCodec, Result, State,
};

/// Runs [`Conformance`] on the layers `make` builds, with its defaults.
///
/// # Panics
/// With the rule broken and the layer's name, when the layer fails a check.
pub fn check_layer<L: Layer, F: FnMut(Side) -> L>(make: F) {
    Conformance::new(make).run();
}

/// The conformance suite of the [`Layer`] contract, for any layer.
///
/// `make` builds a fresh layer for one end of a connection: for
/// [`Side::Client`] and [`Side::Server`] where the two ends differ (a TLS
/// client and server), the same layer for both where they do not. The
/// suite puts two of them back to back in a [`Pair`] on the virtual clock,
/// each alone under a [`Connection`] with small buffers, and checks the
/// numbered rules of the contract:
///
/// - **chunking does not matter** (rule 3): messages sent from both ends
///   arrive whole and in order when the link delivers the wire bytes whole,
///   one byte at a time, and in random pieces;
/// - **room is respected** (rule 4): no call appends more than
///   `upper_room` upward, or more than `lower_room` (plus the slack the
///   layer documents, [`with_lower_slack`](Self::with_lower_slack)) toward
///   the wire once the layer is past its handshake; no call grows its input;
/// - **finish propagates** (rule 6): after one end's
///   [`close`](Connection::close), the other end sees a clean end, and both
///   reach [`State::Closed`] without an error;
/// - **errors are sticky, nothing comes out after one** (rule 7): a write
///   after `Flush::Finish` fails, and from then on every call fails with
///   that same error and appends no byte ([`Layer::handle_timeout`] may
///   keep its default `Ok`), [`Layer::poll_timeout`] is `None` and
///   [`Layer::wants_read`] `false`; the same for whatever error the
///   peer's layer meets when the transport ends early;
/// - **the optional hint** [`Layer::passes_bytes_through`]: a layer that
///   gives it passes outbound bytes on unchanged, behind those already
///   below it, and gives it no more after an error.
///
/// It panics, naming the layer and the rule, at the first check that fails.
///
/// ```
/// use netstrata_core::layers::Xor;
/// use netstrata_core::testing::Conformance;
///
/// Conformance::new(|_side| Xor::new(*b"key")).run();
/// ```
pub struct Conformance<F> {
    make: F,
    lower_slack: usize,
}

impl<F> fmt::Debug for Conformance<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conformance")
            .field("lower_slack", &self.lower_slack)
            .finish_non_exhaustive()
    }
}

/// Messages each end sends, of lengths that cross any record size.
const MESSAGE_LENS: [usize; 6] = [1, 7, 300, 1500, 2048, 4000];

/// The connections' buffer limits: small, so the rooms a layer is given
/// are small and uneven.
fn config() -> ConnectionConfig {
    ConnectionConfig::new()
        .with_write_buffer(83)
        .with_message_buffer(97)
}

impl<F> Conformance<F> {
    /// The suite for the layers `make` builds.
    pub fn new(make: F) -> Self {
        Self {
            make,
            lower_slack: 0,
        }
    }

    /// Lets the layer append up to `bytes` beyond `lower_room` in one call:
    /// the one indivisible unit it documents (a record's overhead, an end
    /// marker). Default 0: the room is kept exactly.
    #[must_use]
    pub fn with_lower_slack(mut self, bytes: usize) -> Self {
        self.lower_slack = bytes;
        self
    }
}

impl<L: Layer, F: FnMut(Side) -> L> Conformance<F> {
    /// Runs every check.
    ///
    /// # Panics
    /// With the rule broken and the layer's name, at the first failed check.
    pub fn run(mut self) {
        for chunking in [
            Chunking::Whole,
            Chunking::Fixed(1),
            Chunking::Random { seed: 7, max: 50 },
        ] {
            self.exchange(chunking);
        }
        self.truncation();
        self.pass_through_hint();
    }

    fn pair(&mut self, chunking: Chunking) -> Pair<Checked<L>, RawCodec, Checked<L>, RawCodec> {
        let mut conn = |side| {
            let layer = Checked {
                inner: (self.make)(side),
                lower_slack: self.lower_slack,
            };
            Connection::with_config(layer, RawCodec::new(), config())
        };
        let (client, server) = (conn(Side::Client), conn(Side::Server));
        Pair::new(client, server, Link::new().with_chunking(chunking))
    }

    /// Messages both ways under `chunking`, then an orderly close of each
    /// end, then a write after the end.
    fn exchange(&mut self, chunking: Chunking) {
        let mut pair = self.pair(chunking);
        let name = pair.client.conn.stack().inner.name();
        let msgs = messages();
        pair.send_both(&msgs).expect("sending the messages");
        pair.drive();
        let errors = pair.errors();
        assert!(
            errors.0.is_none() && errors.1.is_none(),
            "{name}: an exchange under {chunking:?} failed: {errors:?}"
        );
        let sent = msgs.concat();
        for (side, peer) in [("client", &pair.client), ("server", &pair.server)] {
            assert!(
                peer.received() == sent,
                "{name} (rule 3): under {chunking:?} the {side} received {} bytes that are not the {} sent",
                peer.received().len(),
                sent.len()
            );
        }

        pair.client.conn.close();
        pair.drive();
        assert!(
            pair.client.conn.is_write_closed(),
            "{name} (rule 6): under {chunking:?} the client did not finish its stream after close()"
        );
        assert!(
            pair.server.conn.is_read_closed(),
            "{name} (rule 6): under {chunking:?} the server did not see the client's clean end"
        );
        pair.server.conn.close();
        pair.drive();
        let states = (pair.client.conn.state(), pair.server.conn.state());
        assert!(
            states == (State::Closed, State::Closed) && matches!(pair.errors(), (None, None)),
            "{name} (rule 6): under {chunking:?} both ends closed but reached {states:?}, errors {:?}",
            pair.errors()
        );

        let now = pair.now();
        let layer = &mut pair.client.conn.stack_mut().inner;
        let mut lower = BytesMut::new();
        let input = &mut buf(b"after the end");
        let first = layer
            .handle_outbound(Outbound::new(now, input, Flush::Batch, &mut lower))
            .expect_err("rule 6: a write after Flush::Finish must fail");
        after_error(layer, now, &first);
    }

    /// The transport ends before the client's layer finished its stream:
    /// whatever the server's layer makes of it, a clean end or an error,
    /// an error must stick.
    fn truncation(&mut self) {
        let mut pair = self.pair(Chunking::Whole);
        pair.send_both(&messages()).expect("sending the messages");
        pair.drive();
        pair.end_transport(Side::Client);
        pair.drive();
        if let Some(first) = pair.server.conn.error().cloned() {
            let now = pair.now();
            after_error(&mut pair.server.conn.stack_mut().inner, now, &first);
        }
    }
}

impl<L: Layer, F: FnMut(Side) -> L> Conformance<F> {
    /// A layer that says it passes outbound bytes through does: a driver
    /// that trusts the hint skips its calls.
    fn pass_through_hint(&mut self) {
        let mut layer = (self.make)(Side::Client);
        if !layer.passes_bytes_through() {
            return;
        }
        let name = layer.name();
        let sent = messages().concat();
        let (mut input, mut lower) = (buf(&sent), buf(b"below"));
        let result = layer.handle_outbound(Outbound::new(
            Instant::now(),
            &mut input,
            Flush::Batch,
            &mut lower,
        ));
        let expected = [&b"below"[..], &sent].concat();
        assert!(
            result.is_ok() && input.is_empty() && lower[..] == expected[..],
            "{name} (passes_bytes_through): outbound bytes did not pass unchanged: {result:?}, \
             {} of {} bytes left, {} bytes below",
            input.len(),
            sent.len(),
            lower.len()
        );
    }
}

fn messages() -> Vec<Vec<u8>> {
    MESSAGE_LENS
        .iter()
        .enumerate()
        .map(|(m, &len)| (0..len).map(|i| ((i * 31 + m * 7) % 251) as u8).collect())
        .collect()
}

/// Rule 7 on a layer that returned `first`: every call fails with it and
/// appends nothing, no deadline, no reads.
fn after_error<L: Layer + ?Sized>(layer: &mut L, now: Instant, first: &Error) {
    let name = layer.name();
    let same = |call: &str, result: Result<()>| match result {
        Err(e) if e.to_string() == first.to_string() => {}
        other => panic!("{name} (rule 7): after `{first}`, {call} returned {other:?}"),
    };
    let (mut upper, mut lower) = (BytesMut::new(), BytesMut::new());
    let mut input = buf(b"more bytes from the peer");
    same(
        "handle_inbound",
        layer.handle_inbound(Inbound::new(now, &mut input, &mut upper, &mut lower)),
    );
    let mut input = buf(b"more bytes to send");
    same(
        "handle_outbound",
        layer.handle_outbound(Outbound::new(now, &mut input, Flush::Batch, &mut lower)),
    );
    let mut input = BytesMut::new();
    same(
        "handle_outbound (Finish)",
        layer.handle_outbound(Outbound::new(now, &mut input, Flush::Finish, &mut lower)),
    );
    // Drivers never call it after an error (no deadline), so a layer
    // without deadlines may keep the default; it must still send nothing.
    if let Err(e) = layer.handle_timeout(now, &mut lower) {
        same("handle_timeout", Err(e));
    }
    assert!(
        upper.is_empty() && lower.is_empty(),
        "{name} (rule 7): {} bytes up and {} down came out after `{first}`",
        upper.len(),
        lower.len()
    );
    assert_eq!(
        layer.poll_timeout(),
        None,
        "{name} (rule 7): a deadline after `{first}`"
    );
    assert!(
        !layer.wants_read(),
        "{name} (rule 7): still wants to read after `{first}`"
    );
    assert!(
        !layer.passes_bytes_through(),
        "{name} (rule 7): still says it passes bytes through after `{first}`"
    );
}

/// A layer with the room rules checked around every call.
struct Checked<L> {
    inner: L,
    lower_slack: usize,
}

impl<L: Layer> Checked<L> {
    fn check_input(&self, call: &str, before: usize, after: usize) {
        assert!(
            after <= before,
            "{} (rule 2): {call} grew its input from {before} to {after} bytes",
            self.inner.name()
        );
    }
}

impl<L: Layer> Layer for Checked<L> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn handle_inbound(&mut self, io: Inbound<'_>) -> Result<()> {
        let Inbound {
            now,
            input,
            input_ended,
            upper,
            upper_room,
            lower,
        } = io;
        let before = (input.len(), upper.len());
        let result = self.inner.handle_inbound(
            Inbound::new(now, &mut *input, &mut *upper, lower)
                .with_upper_room(upper_room)
                .with_input_ended(input_ended),
        );
        self.check_input("handle_inbound", before.0, input.len());
        let appended = upper.len().saturating_sub(before.1);
        assert!(
            appended <= upper_room,
            "{} (rule 4): handle_inbound appended {appended} bytes upward with room for {upper_room}",
            self.inner.name()
        );
        result
    }

    fn handle_outbound(&mut self, io: Outbound<'_>) -> Result<()> {
        let Outbound {
            now,
            input,
            flush,
            lower,
            lower_room,
        } = io;
        let handshaking = self.inner.is_handshaking();
        let before = (input.len(), lower.len());
        let result = self.inner.handle_outbound(
            Outbound::new(now, &mut *input, flush, &mut *lower).with_lower_room(lower_room),
        );
        self.check_input("handle_outbound", before.0, input.len());
        let appended = lower.len().saturating_sub(before.1);
        let limit = lower_room.saturating_add(self.lower_slack);
        assert!(
            handshaking || appended <= limit,
            "{} (rule 4): handle_outbound appended {appended} bytes with room for {lower_room} \
             and a slack of {}",
            self.inner.name(),
            self.lower_slack
        );
        result
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant, lower: &mut BytesMut) -> Result<()> {
        self.inner.handle_timeout(now, lower)
    }

    fn wants_read(&self) -> bool {
        self.inner.wants_read()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn is_read_closed(&self) -> bool {
        self.inner.is_read_closed()
    }

    fn is_write_closed(&self) -> bool {
        self.inner.is_write_closed()
    }

    fn release_buffers(&mut self) {
        self.inner.release_buffers();
    }

    fn set_waker(&mut self, waker: &Waker) {
        self.inner.set_waker(waker);
    }

    fn collect_stats(&self, own: &ByteCounters, out: &mut Vec<LayerStats>) {
        self.inner.collect_stats(own, out);
    }
}
