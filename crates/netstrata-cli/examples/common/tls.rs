//! The TLS server configuration of the baselines: TLS 1.3 only, rustls with
//! the aws-lc-rs provider and stateless session tickets, as
//! `netstrata echo-server --tls` configures it; the certificate chain and
//! key come from PEM files.

use std::io;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The configuration serving the chain in `cert` with the key in `key`.
pub(crate) fn server_config(cert: &str, key: &str) -> io::Result<rustls::ServerConfig> {
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
