//! The stacks of the fault matrix, both sides, and where each one's wire
//! units (frames, records, blocks) end in a recorded direction.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use netstrata_core::layers::Checksummed;
use netstrata_core::{BoxedLayer, Codec, Connection, DynStack};
use netstrata_frame::{FrameError, LengthDelimited, Varint};
use netstrata_shape::{Limit, ShapeConfig, Shaper};
use netstrata_tls::Tls;
use netstrata_zstd::{Zstd, ZstdConfig};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A stack of the matrix, top to bottom under its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    /// The default wire profile's framing alone: 4-byte big-endian lengths.
    Plain,
    /// netstrata-frame's other length prefix: LEB128 varints.
    Frame,
    /// Length-delimited over TLS 1.3.
    Tls,
    /// Length-delimited over zstd (default configuration: no checksum).
    Zstd,
    /// Length-delimited over zstd over TLS.
    TlsZstd,
    /// Length-delimited over core's `Checksummed` record layer.
    Checksummed,
}

/// Which end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// A generous per-connection limit: the shaper is on the path, never the
/// bottleneck.
const SHAPED_RATE: u64 = 50_000_000;

/// The layers of `kind` for `side`, top first; a shaper at the bottom if
/// `shaped`.
pub fn layers(kind: StackKind, side: Side, shaped: bool) -> Vec<BoxedLayer> {
    let mut layers: Vec<BoxedLayer> = Vec::new();
    if matches!(kind, StackKind::Zstd | StackKind::TlsZstd) {
        layers.push(Box::new(Zstd::with_config(ZstdConfig::new())));
    }
    if matches!(kind, StackKind::Tls | StackKind::TlsZstd) {
        let (server, client) = tls_configs();
        layers.push(match side {
            Side::Server => Box::new(Tls::server(Arc::clone(server)).unwrap()),
            Side::Client => Box::new(Tls::client(Arc::clone(client), "localhost").unwrap()),
        });
    }
    if kind == StackKind::Checksummed {
        layers.push(Box::new(Checksummed::new()));
    }
    if shaped {
        let limit = Limit::per_second(SHAPED_RATE).unwrap();
        let config = ShapeConfig::new().with_inbound(limit).with_outbound(limit);
        layers.push(Box::new(Shaper::new(config)));
    }
    layers
}

/// The framing of `kind`.
pub fn framing(kind: StackKind) -> Framing {
    match kind {
        StackKind::Frame => Framing::Varint(Varint::new()),
        _ => Framing::Length(LengthDelimited::new()),
    }
}

/// A connection of `kind` for `side`.
pub fn connection(kind: StackKind, side: Side, shaped: bool) -> Connection<DynStack, Framing> {
    Connection::new(DynStack::new(layers(kind, side, shaped)), framing(kind))
}

/// Either length prefix, so one loop type carries every stack.
#[derive(Debug)]
pub enum Framing {
    Length(LengthDelimited),
    Varint(Varint),
}

impl Codec for Framing {
    type Error = FrameError;

    fn name(&self) -> &'static str {
        match self {
            Self::Length(c) => c.name(),
            Self::Varint(c) => c.name(),
        }
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self {
            Self::Length(c) => c.decode(src),
            Self::Varint(c) => c.decode(src),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match self {
            Self::Length(c) => c.decode_eof(src),
            Self::Varint(c) => c.decode_eof(src),
        }
    }

    fn encode(&mut self, msg: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        match self {
            Self::Length(c) => c.encode(msg, dst),
            Self::Varint(c) => c.encode(msg, dst),
        }
    }

    fn max_buffered(&self) -> usize {
        match self {
            Self::Length(c) => c.max_buffered(),
            Self::Varint(c) => c.max_buffered(),
        }
    }
}

/// One server identity for the whole run: an Ed25519 certificate, whose
/// signatures are always 64 bytes, and no session tickets or resumption,
/// so a handshake is the same length on every connection and a recorded
/// run tells where the next one's records end.
fn tls_configs() -> &'static (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    static CONFIGS: OnceLock<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>)> =
        OnceLock::new();
    CONFIGS.get_or_init(|| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der: CertificateDer<'static> = cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = netstrata_tls::provider();
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        server.send_tls13_tickets = 0;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.resumption = Resumption::disabled();
        (Arc::new(server), Arc::new(client))
    })
}

/// Where the outermost wire units of `kind` end in `wire` (one direction
/// from its first byte): frames for plain and frame, TLS records, zstd
/// blocks (the first unit is the frame header), checksummed records.
pub fn unit_ends(kind: StackKind, wire: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut at = 0;
    let next = |at: usize| -> Option<usize> {
        let rest = wire.get(at..)?;
        match kind {
            StackKind::Plain => {
                let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                Some(at + 4 + len)
            }
            StackKind::Frame => {
                let (mut len, mut shift) = (0usize, 0);
                for (i, b) in rest.iter().enumerate().take(10) {
                    len |= usize::from(b & 0x7f) << shift;
                    shift += 7;
                    if b & 0x80 == 0 {
                        return Some(at + i + 1 + len);
                    }
                }
                None
            }
            StackKind::Tls | StackKind::TlsZstd => {
                let len = u16::from_be_bytes(rest.get(3..5)?.try_into().ok()?) as usize;
                Some(at + 5 + len)
            }
            StackKind::Checksummed => {
                let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
                // The end record: a zero length and the 8-byte checksum.
                Some(at + 2 + if len == 0 { 8 } else { len })
            }
            StackKind::Zstd if at == 0 => Some(zstd_frame_header_len(rest)?),
            StackKind::Zstd => {
                let header = u32::from(*rest.first()?)
                    | u32::from(*rest.get(1)?) << 8
                    | u32::from(*rest.get(2)?) << 16;
                let size = (header >> 3) as usize;
                let content = if (header >> 1) & 3 == 1 { 1 } else { size };
                Some(at + 3 + content)
            }
        }
    };
    while let Some(end) = next(at) {
        if end > wire.len() {
            break;
        }
        ends.push(end);
        at = end;
    }
    ends
}

/// The length of a zstd frame header (RFC 8878 §3.1.1.1).
fn zstd_frame_header_len(wire: &[u8]) -> Option<usize> {
    let descriptor = *wire.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    let dictionary = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let content_size = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    Some(4 + 1 + usize::from(!single_segment) + dictionary + content_size)
}
