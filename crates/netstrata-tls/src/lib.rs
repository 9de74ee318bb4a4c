//! netstrata-tls: TLS as a sans-IO netstrata [`Layer`](netstrata_core::Layer),
//! on rustls 0.23.
//!
//! [`Tls`] is a client or a server that sits anywhere in a stack: ciphertext
//! on its lower side, plaintext on its upper side. It does TLS 1.3 (and
//! TLS 1.2 when allowed), ALPN, SNI with a certificate per name, client
//! certificates, session resumption, a handshake timeout, `close_notify`
//! both ways and truncation detection, and exposes what was negotiated.
//!
//! ```text
//!   upper side   plaintext: app bytes (frames, zstd output)
//!                   │ handle_outbound            ▲ handle_inbound (≤ upper_room;
//!                   ▼                            │  a record's rest held)
//!              ┌─────────────── Tls ─────────────┴───┐
//!              │ encrypt ─┐    rustls unbuffered   ▲ │ decrypt in place,
//!              └──────────┼────────────────────────┼─┘ in the caller's input
//!                         ▼ down (+ handshake,     │ input (ciphertext)
//!   lower side   ciphertext  alerts from inbound)  │
//! ```
//!
//! It does no I/O and reads no clock of its own: time comes in as `now`
//! and the handshake deadline goes out through `poll_timeout`. (rustls
//! itself reads the system time to check certificate validity and ticket
//! lifetimes.) Trust comes from a CA file ([`pem::load_roots`]), Mozilla's
//! root set bundled in the binary (`ClientOptions::with_webpki_roots`,
//! feature `webpki-roots`) or the platform's store
//! (`ClientOptions::with_native_roots`, feature `native-roots`;
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` override it).
//!
//! # Features
//!
//! | feature | default | what it does |
//! |---|---|---|
//! | `aws-lc-rs` | yes | rustls' aws-lc-rs crypto provider |
//! | `ring` | no | rustls' ring provider, used when `aws-lc-rs` is off |
//! | `webpki-roots` | yes | Mozilla's roots, bundled: `ClientOptions::with_webpki_roots` |
//! | `native-roots` | no | the platform's roots (rustls-native-certs): `ClientOptions::with_native_roots` |
//! | `dev-certs` | no | development certificates from a generated CA ([`dev_certs`]) |
//!
//! One provider is used for every configuration this crate builds
//! ([`provider`]): aws-lc-rs when its feature is on — also when `ring` is on
//! too, as with `--all-features` — else ring (`default-features = false,
//! features = ["ring"]`). A build with neither does not compile. rustls'
//! own `ClientConfig::builder()` needs a process-wide provider once both are
//! compiled in; this crate never relies on it.
//!
//! - [`Tls`]: the layer; its docs state the buffering bounds and behaviour.
//! - [`ServerOptions`], [`ClientOptions`], [`Identity`]: rustls
//!   configurations with this crate's defaults (TLS 1.3 only, session
//!   tickets and resumption on); any `rustls` configuration works too.
//! - [`pem`]: certificate chains, keys and CA files from PEM.
//! - [`dev_certs`] (feature `dev-certs`): a generated CA and leaves it signs.
//! - [`TlsError`]: what failed, inside the core `Error`.
//!
//! # Example
//!
//! A client and a server over the deterministic test harness; the client's
//! message is held until the handshake completes.
//!
//! ```
//! # #[cfg(feature = "dev-certs")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use netstrata_core::Connection;
//! use netstrata_core::testing::{Link, Pair};
//! use netstrata_frame::LengthDelimited;
//! use netstrata_tls::{ClientOptions, ServerOptions, Tls, dev_certs::DevCa};
//! use rustls::ProtocolVersion;
//!
//! let ca = DevCa::new()?;
//! let server = ServerOptions::new()
//!     .with_identity(ca.issue(&["localhost"])?.identity())
//!     .build()?;
//! let client = ClientOptions::new(ca.roots()).build()?;
//!
//! let mut pair = Pair::new(
//!     Connection::new(Tls::client(client, "localhost")?, LengthDelimited::new()),
//!     Connection::new(Tls::server(server)?, LengthDelimited::new()),
//!     Link::new(),
//! );
//! pair.client.conn.send(b"hello")?;
//! pair.drive();
//! assert_eq!(pair.server.take_inbox(), [&b"hello"[..]]);
//!
//! let tls = pair.server.conn.stack();
//! assert_eq!(tls.protocol_version(), Some(ProtocolVersion::TLSv1_3));
//! assert_eq!(tls.server_name(), Some("localhost"));
//!
//! // Orderly close: close_notify, then the peer sees a clean end.
//! pair.client.conn.close();
//! pair.drive();
//! assert!(pair.server.conn.is_read_closed());
//! # Ok(()) }
//! # #[cfg(not(feature = "dev-certs"))]
//! # fn main() {}
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
#[cfg(feature = "dev-certs")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-certs")))]
pub mod dev_certs;
mod engine;
mod error;
mod layer;
pub mod pem;
mod sni;

pub use config::{ClientOptions, Identity, ServerOptions, provider};
pub use engine::UnbufferedConnection;
pub use error::TlsError;
pub use layer::Tls;
pub use rustls;

/// The layer's name in errors and statistics.
const NAME: &str = "tls";

// The layer moves with its connection between threads; configurations are
// shared by connections on many threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Tls>();
    send_sync::<UnbufferedConnection>();
    send_sync::<ServerOptions>();
    send_sync::<ClientOptions>();
    send_sync::<Identity>();
    send_sync::<TlsError>();
    #[cfg(feature = "dev-certs")]
    {
        send_sync::<dev_certs::DevCa>();
        send_sync::<dev_certs::DevCert>();
    }
};

/// Runs the crate README's example as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
