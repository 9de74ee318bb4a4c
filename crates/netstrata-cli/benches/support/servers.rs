//! The servers the comparisons start, and the flags and files they share:
//! `netstrata echo-server` with some layers, development certificates in a
//! directory removed afterwards, and the benches' own `--name value` flags.

use std::path::{Path, PathBuf};

use netstrata_cli::stack::{StackOptions, TlsSide};
use netstrata_tls::ClientOptions;
use netstrata_tls::dev_certs::DevCa;

use super::process::Server;

/// The value after `name` on the command line.
pub(crate) fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The number after `name`, or `default`.
pub(crate) fn num(name: &str, default: f64) -> f64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The comma-separated list after `name` (or `default`), each item one of
/// `known`; exits with a message naming an unknown one.
pub(crate) fn list(bench: &str, name: &str, default: &str, known: &[&str]) -> Vec<String> {
    let value = arg(name).unwrap_or_else(|| default.into());
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    if let Some(unknown) = items.iter().find(|s| !known.contains(&s.as_str())) {
        eprintln!(
            "{bench}: {name}: unknown {unknown:?} ({})",
            known.join(", ")
        );
        std::process::exit(2);
    }
    items
}

/// Whether cargo runs the bench as a test (`cargo test --benches`), where
/// it has nothing to check.
pub(crate) fn listing_only() -> bool {
    std::env::args().any(|a| a == "--list" || a == "--test")
}

/// The netstrata server with `loops` event loops and `layers` flags.
pub(crate) fn netstrata(name: &'static str, loops: &str, layers: &[&str]) -> Server {
    let mut args = vec!["echo-server", "--addr", "ADDR", "--threads", loops];
    args.extend_from_slice(layers);
    Server::release(name, "netstrata", &args)
}

/// A directory removed when dropped, a failed run included.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A directory of this process under the system's temporary one.
    pub(crate) fn new(bench: &str) -> Self {
        Self(std::env::temp_dir().join(format!("netstrata-{bench}-{}", std::process::id())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Files of a development CA and a certificate it issued, and the client
/// configuration that trusts it.
pub(crate) struct Certificates {
    /// The server's certificate chain (PEM).
    pub(crate) cert: String,
    /// Its key (PEM).
    pub(crate) key: String,
    /// The CA's certificate (PEM), for clients of other processes.
    pub(crate) ca: String,
    /// The netstrata client's stack, trusting the CA.
    pub(crate) client: StackOptions,
}

/// A development certificate for `localhost` and its CA, in `dir`.
pub(crate) fn certificates(dir: &Path) -> Certificates {
    let ca = DevCa::new().expect("CA");
    let leaf = ca.issue(&["localhost", "127.0.0.1"]).expect("certificate");
    std::fs::create_dir_all(dir).expect("certificate directory");
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write a PEM file");
        path.to_string_lossy().into_owned()
    };
    let config = ClientOptions::new(ca.roots()).build().expect("client TLS");
    Certificates {
        cert: write("cert.pem", &leaf.cert_pem),
        key: write("key.pem", &leaf.key_pem),
        ca: write("ca.pem", ca.cert_pem()),
        client: StackOptions {
            tls: Some(TlsSide::Client {
                config,
                server_name: "localhost".into(),
            }),
            ..StackOptions::default()
        },
    }
}
