//! Fixtures shared by the TLS tests: a development CA, configurations and
//! connection pairs over the virtual-clock harness.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use netstrata_core::testing::{Chunking, Link, Pair};
use netstrata_core::{Connection, ConnectionConfig, Error};
use netstrata_frame::LengthDelimited;
use netstrata_tls::dev_certs::{DevCa, DevCert};
use netstrata_tls::rustls::{ClientConfig, ServerConfig};
use netstrata_tls::{ClientOptions, ServerOptions, Tls, TlsError};

/// One CA and its leaves for the whole test binary (key generation is the
/// slow part of a test).
pub struct Certs {
    pub ca: DevCa,
    pub localhost: DevCert,
    pub api: DevCert,
    pub client: DevCert,
    pub expired: DevCert,
    /// A second CA nobody trusts, and a leaf it signed for "localhost".
    pub rogue: DevCert,
}

pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let ca = DevCa::new().unwrap();
        let rogue_ca = DevCa::new().unwrap();
        Certs {
            localhost: ca.issue(&["localhost", "127.0.0.1"]).unwrap(),
            api: ca.issue(&["api.example"]).unwrap(),
            client: ca.issue(&["client.example"]).unwrap(),
            expired: ca.issue_expired(&["localhost"]).unwrap(),
            rogue: rogue_ca.issue(&["localhost"]).unwrap(),
            ca,
        }
    })
}

pub fn server_options() -> ServerOptions {
    ServerOptions::new().with_identity(certs().localhost.identity())
}

pub fn client_options() -> ClientOptions {
    ClientOptions::new(certs().ca.roots())
}

pub fn server_config() -> Arc<ServerConfig> {
    server_options().build().unwrap()
}

pub fn client_config() -> Arc<ClientConfig> {
    client_options().build().unwrap()
}

/// A client that speaks TLS 1.2 only.
pub fn tls12_only_client() -> Arc<ClientConfig> {
    use netstrata_tls::rustls;
    let config = ClientConfig::builder_with_provider(netstrata_tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(certs().ca.roots())
        .with_no_client_auth();
    Arc::new(config)
}

pub type TlsConn = Connection<Tls, LengthDelimited>;
pub type TlsPair = Pair<Tls, LengthDelimited, Tls, LengthDelimited>;

pub fn client_conn(config: Arc<ClientConfig>, name: &str) -> TlsConn {
    Connection::new(Tls::client(config, name).unwrap(), LengthDelimited::new())
}

pub fn server_conn(config: Arc<ServerConfig>) -> TlsConn {
    Connection::new(Tls::server(config).unwrap(), LengthDelimited::new())
}

pub fn pair_with(client: Arc<ClientConfig>, server: Arc<ServerConfig>, link: Link) -> TlsPair {
    Pair::new(client_conn(client, "localhost"), server_conn(server), link)
}

pub fn pair(link: Link) -> TlsPair {
    pair_with(client_config(), server_config(), link)
}

/// Every chunking the issue asks for, plus latency and bandwidth.
pub fn links() -> Vec<Link> {
    vec![
        Link::new(),
        Link::new().with_chunking(Chunking::Fixed(1)),
        Link::new().with_chunking(Chunking::Random { seed: 7, max: 700 }),
        Link::new().with_chunking(Chunking::Random { seed: 99, max: 20 }),
        Link::new()
            .with_latency(Duration::from_millis(30))
            .with_bandwidth(1_000_000),
    ]
}

/// Small connection buffers for backpressure tests.
pub fn small_buffers() -> ConnectionConfig {
    ConnectionConfig::new()
        .with_read_buffer(4096)
        .with_write_buffer(4096)
        .with_send_buffer(16 * 1024)
        .with_message_buffer(4096)
}

/// The `TlsError` inside a core error, or a panic naming what was there.
pub fn tls_error(e: &Error) -> &TlsError {
    e.downcast_ref::<TlsError>()
        .unwrap_or_else(|| panic!("expected a TlsError inside, got {e}"))
}

pub fn messages(n: usize, seed: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let len = (i * 7919 + seed * 31) % 3000;
            (0..len).map(|j| (i + j + seed) as u8).collect()
        })
        .collect()
}

/// Driving two layers by hand, without a `Connection`.
pub mod direct {
    use std::time::Instant;

    use bytes::BytesMut;
    use netstrata_core::{Flush, Inbound, Layer, Outbound};
    use netstrata_tls::Tls;

    pub fn outbound(tls: &mut Tls, now: Instant, input: &mut BytesMut, flush: Flush) -> BytesMut {
        let mut down = BytesMut::new();
        tls.handle_outbound(Outbound::new(now, input, flush, &mut down))
            .unwrap();
        down
    }

    /// Runs inbound work; returns (plaintext up, bytes owed to the peer).
    pub fn inbound(
        tls: &mut Tls,
        now: Instant,
        input: &mut BytesMut,
        up_room: usize,
    ) -> netstrata_core::Result<(BytesMut, BytesMut)> {
        let (mut up, mut down) = (BytesMut::new(), BytesMut::new());
        tls.handle_inbound(Inbound::new(now, input, &mut up, &mut down).with_upper_room(up_room))?;
        Ok((up, down))
    }

    /// Completes a handshake between `client` and `server`.
    pub fn handshake(client: &mut Tls, server: &mut Tls, now: Instant) {
        let (mut c2s, mut s2c) = (BytesMut::new(), BytesMut::new());
        for _ in 0..20 {
            c2s.extend_from_slice(&outbound(client, now, &mut BytesMut::new(), Flush::Batch));
            let (_, owed) = inbound(server, now, &mut c2s, usize::MAX).unwrap();
            s2c.extend_from_slice(&owed);
            s2c.extend_from_slice(&outbound(server, now, &mut BytesMut::new(), Flush::Batch));
            let (_, owed) = inbound(client, now, &mut s2c, usize::MAX).unwrap();
            c2s.extend_from_slice(&owed);
            if !client.is_handshaking() && !server.is_handshaking() && c2s.is_empty() {
                return;
            }
        }
        panic!("no handshake after 20 rounds");
    }

    /// The lengths of the TLS records in `wire` (which holds whole records).
    pub fn record_lengths(wire: &[u8]) -> Vec<usize> {
        let mut lens = Vec::new();
        let mut rest = wire;
        while rest.len() >= 5 {
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            lens.push(len);
            rest = &rest[5 + len..];
        }
        assert!(rest.is_empty(), "a partial record");
        lens
    }
}
