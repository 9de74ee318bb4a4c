//! Hostile bytes into the TLS layer (rustls' unbuffered API, decrypted in
//! place in the layer's input): no panic, the upward room is honoured, and
//! an error sticks. Two modes, chosen by the first byte:
//! - arbitrary bytes as a client's, into a server;
//! - a real handshake between a client and a server, with the input XORed
//!   over the server's records on their way to the client (bit flips in
//!   real records reach deeper than random bytes).
//!
//! Writes are interleaved with the reads in both: the layer must hold them
//! while a handshake message is incomplete, and never let rustls see a
//! write at the wrong moment.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use netstrata_core::{Flush, Inbound, Layer, Outbound, Stack};
use netstrata_tls::dev_certs::DevCa;
use netstrata_tls::rustls::{ClientConfig, ServerConfig};
use netstrata_tls::{ClientOptions, ServerOptions, Tls};

#[path = "common.rs"]
mod common;
use common::Sticky;

struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn configs() -> &'static Configs {
    static CONFIGS: OnceLock<Configs> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let ca = DevCa::new().unwrap();
        let leaf = ca.issue(&["localhost"]).unwrap();
        Configs {
            server: ServerOptions::new()
                .with_identity(leaf.identity())
                .with_tls12(true)
                .build()
                .unwrap(),
            client: ClientOptions::new(ca.roots())
                .with_tls12(true)
                .build()
                .unwrap(),
        }
    })
}

/// One end: a stack (so the first error sticks) and its buffers.
struct End {
    stack: Stack<(Tls,)>,
    /// Bytes from the peer, not yet taken.
    input: BytesMut,
    /// Plaintext to send.
    plain: BytesMut,
    /// Bytes for the peer.
    down: BytesMut,
    errors: Sticky,
    /// Plaintext received.
    got: usize,
}

impl End {
    fn new(tls: Tls) -> Self {
        Self {
            stack: Stack::new((tls,)),
            input: BytesMut::new(),
            plain: BytesMut::new(),
            down: BytesMut::new(),
            errors: Sticky::default(),
            got: 0,
        }
    }

    fn read(&mut self, now: Instant, room: usize, ended: bool) {
        let mut up = BytesMut::new();
        let result = self.stack.handle_inbound(Inbound::new(now, &mut self.input, &mut up, &mut self.down).with_upper_room(room).with_input_ended(ended));
        assert!(up.len() <= room);
        self.got += up.len();
        self.errors.check(result);
    }

    fn write(&mut self, now: Instant, flush: Flush) {
        self.plain.extend_from_slice(b"ping");
        let result = self.stack.handle_outbound(Outbound::new(now, &mut self.plain, flush, &mut self.down).with_lower_room(1 << 16));
        self.errors.check(result);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let chunk = usize::from(control >> 2) + 1;
    let configs = configs();
    let mut server = End::new(Tls::server(configs.server.clone()).unwrap());
    if control & 1 == 0 {
        for (i, piece) in data.chunks(chunk).enumerate() {
            server.input.extend_from_slice(piece);
            let last = (i + 1) * chunk >= data.len();
            server.read(now, (i * 97) % 20_000 + 1, last);
            if i % 3 == 0 {
                server.write(now, if last { Flush::Finish } else { Flush::Batch });
            }
            server.down.clear();
        }
        return;
    }
    let mut client = End::new(Tls::client(configs.client.clone(), "localhost").unwrap());
    let mut mask = data.iter().copied().cycle();
    let flips = !data.is_empty();
    for step in 0..24 {
        client.write(now, Flush::Batch);
        let to_server = client.down.split();
        server.input.extend_from_slice(&to_server);
        server.read(now, 1 << 16, false);
        server.write(now, Flush::Batch);
        let mut to_client = server.down.split();
        if flips {
            for byte in to_client.iter_mut() {
                *byte ^= mask.next().unwrap_or(0);
            }
        }
        // The client sees the server's bytes in pieces of `chunk`.
        for piece in to_client.chunks(chunk) {
            client.input.extend_from_slice(piece);
            client.read(now, (step * 131) % 5000 + 1, false);
        }
        if client.errors.failed() && server.errors.failed() {
            break;
        }
    }
    if !flips {
        // Untouched records: the handshake completes and the held writes
        // arrive both ways.
        assert!(!client.errors.failed() && !server.errors.failed());
        assert!(client.got > 0 && server.got > 0);
    }
});
