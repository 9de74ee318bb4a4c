//! Baseline for the TLS echo comparison: `tokio_echo` over tokio-rustls.
//! TLS 1.3 only, rustls with the aws-lc-rs provider and stateless session
//! tickets, as `netstrata echo-server --tls` configures it; the certificate
//! chain and key come from the same PEM files.
//!
//! `cargo run --release -p netstrata-cli --example tokio_tls_echo -- 127.0.0.1:7003 cert.pem key.pem`

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cert), Some(key)) = (args.get(2), args.get(3)) else {
        return Err(io::Error::other(
            "usage: tokio_tls_echo ADDR CERT.pem KEY.pem",
        ));
    };
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(cert, key)?));
    common::serve("tokio-rustls echo", "127.0.0.1:7003", move |stream| {
        let acceptor = acceptor.clone();
        async move { acceptor.accept(stream).await }
    })
}
