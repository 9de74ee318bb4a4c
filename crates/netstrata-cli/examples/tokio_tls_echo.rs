//! Baseline for the TLS echo comparison: `tokio_echo` over tokio-rustls.
//! TLS 1.3 only, rustls with the aws-lc-rs provider and stateless session
//! tickets, as `netstrata echo-server --tls` configures it; the certificate
//! chain and key come from the same PEM files.
//!
//! `cargo run --release -p netstrata-cli --example tokio_tls_echo -- 127.0.0.1:7003 cert.pem key.pem`

mod common;

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

fn config(cert: &str, key: &str) -> io::Result<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| io::Error::other(format!("{cert}: {e}")))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| io::Error::other(format!("{key}: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(io::Error::other)?;
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(io::Error::other)?;
    Ok(config)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cert), Some(key)) = (args.get(2), args.get(3)) else {
        return Err(io::Error::other(
            "usage: tokio_tls_echo ADDR CERT.pem KEY.pem",
        ));
    };
    let acceptor = TlsAcceptor::from(Arc::new(config(cert, key)?));
    common::serve("tokio-rustls echo", "127.0.0.1:7003", move |stream| {
        let acceptor = acceptor.clone();
        async move { acceptor.accept(stream).await }
    })
}
