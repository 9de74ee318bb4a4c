//! `ClientOptions::with_native_roots` trusts what the platform trusts, here
//! a private CA named by `SSL_CERT_FILE` (offline: no system store needed).
//! The environment is read once per process, so each case runs in a child
//! process of this test binary with its own `SSL_CERT_FILE`.
#![cfg(feature = "native-roots")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use netstrata_core::testing::Link;
use netstrata_tls::dev_certs::DevCa;
use netstrata_tls::{ClientOptions, ServerOptions, TlsError, pem};

/// Set in a child: the directory holding `ca.pem`, `leaf.pem`, `key.pem`.
const CHILD: &str = "NETSTRATA_NATIVE_ROOTS_CHILD";

/// In a child (only): a client with the platform's roots shakes hands with
/// a server whose leaf the files' CA signed, and prints the outcome.
#[test]
fn native_roots_child() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return; // Run by `platform_roots_come_from_ssl_cert_file`.
    };
    let dir = PathBuf::from(dir);
    let outcome = handshake(&dir);
    println!(
        "OUTCOME {}",
        outcome.map_or_else(|e| format!("error: {e}"), |()| "ok".into())
    );
}

fn handshake(dir: &Path) -> Result<(), String> {
    let client = ClientOptions::with_native_roots()
        .map_err(|e| e.to_string())?
        .build()
        .map_err(|e| e.to_string())?;
    let chain = pem::load_certs(dir.join("leaf.pem")).map_err(|e| e.to_string())?;
    let key = pem::load_private_key(dir.join("key.pem")).map_err(|e| e.to_string())?;
    let server = ServerOptions::new()
        .with_identity(netstrata_tls::Identity::new(chain, key))
        .build()
        .map_err(|e| e.to_string())?;
    let mut pair = common::pair_with(client, server, Link::new());
    pair.client.conn.send(b"hello").map_err(|e| e.to_string())?;
    pair.drive();
    if let Some(e) = pair.errors().0 {
        return Err(common::tls_error(e).to_string());
    }
    match pair.server.take_inbox().as_slice() {
        [m] if m[..] == b"hello"[..] => Ok(()),
        other => Err(format!("server got {other:?}")),
    }
}

/// Runs the child with `SSL_CERT_FILE` = `roots` and the server's leaf
/// from `dir`; returns what it printed after OUTCOME.
fn child(dir: &Path, roots: &Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "native_roots_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir)
        .env("SSL_CERT_FILE", roots)
        .env("SSL_CERT_DIR", dir.join("no-such-dir"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    stdout
        .lines()
        .find_map(|l| l.split_once("OUTCOME ").map(|(_, o)| o.to_string()))
        .unwrap_or_else(|| panic!("no outcome in {stdout}"))
}

#[test]
fn platform_roots_come_from_ssl_cert_file() {
    let dir = std::env::temp_dir().join(format!("netstrata-native-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = DevCa::new().unwrap();
    let leaf = ca.issue(&["localhost"]).unwrap();
    let rogue = DevCa::new().unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("rogue.pem"), rogue.cert_pem()).unwrap();
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    std::fs::write(dir.join("leaf.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &leaf.key_pem).unwrap();

    // The CA the file names is trusted...
    assert_eq!(child(&dir, &dir.join("ca.pem")), "ok");
    // ...and only it: another CA's file does not make the leaf trusted.
    let rogue_outcome = child(&dir, &dir.join("rogue.pem"));
    assert!(rogue_outcome.contains("UnknownIssuer"), "{rogue_outcome}");
    // No root at all is an error of its own, before any handshake.
    let empty = child(&dir, &dir.join("empty.pem"));
    let expected = TlsError::NoNativeRoots(String::new()).to_string();
    assert!(empty.starts_with(&format!("error: {expected}")), "{empty}");
    std::fs::remove_dir_all(&dir).unwrap();
}
