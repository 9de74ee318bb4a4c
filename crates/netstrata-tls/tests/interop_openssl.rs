//! Interop with the `openssl` command line tool on loopback: `s_client`
//! against our server, our client against `s_server`. Skipped, with a
//! printed reason, when `openssl` is not installed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::certs;
use netstrata_core::{Blocking, Connection, RawCodec};
use netstrata_tls::rustls::ProtocolVersion;
use netstrata_tls::{ClientOptions, Identity, ServerOptions, Tls, pem};

const LIMIT: Duration = Duration::from_secs(20);

fn openssl_available() -> bool {
    netstrata_core::testing::external_tool("openssl", &["version"])
}

/// A temporary directory with the CA and the localhost leaf as PEM files.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("netstrata-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = certs();
        std::fs::write(dir.join("ca.pem"), c.ca.cert_pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), &c.localhost.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &c.localhost.key_pem).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process killed when dropped, whatever happened.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of `stream`, sent over a channel by a reader thread.
fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`; returns every line seen.
fn wait_for(rx: &Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} within {LIMIT:?}; saw {seen:#?}");
}

/// Our server over a blocking TCP connection: echoes each chunk in upper
/// case until the peer's clean end. Returns the negotiated version.
fn serve_one(listener: TcpListener, options: ServerOptions) -> thread::JoinHandle<ProtocolVersion> {
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let tls = Tls::server(options.build().unwrap()).unwrap();
        let mut conn = Blocking::new(stream, Connection::new(tls, RawCodec::new()));
        conn.handshake().unwrap();
        // A clean end (close_notify) makes `recv` return `None`; a
        // truncation would be an error here.
        while let Some(chunk) = conn.recv().unwrap() {
            conn.send(&chunk.to_ascii_uppercase()).unwrap();
            conn.flush().unwrap();
        }
        let version = conn.connection().stack().protocol_version().unwrap();
        conn.shutdown().unwrap();
        version
    })
}

fn s_client_against_our_server(extra: &[&str], options: ServerOptions, expect: ProtocolVersion) {
    let files = Files::new(&format!("s-client{}", extra.len()));
    // The PEM helpers load what openssl is given.
    let identity = Identity::from_pem_files(files.path("cert.pem"), files.path("key.pem")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = serve_one(listener, options.with_identity(identity));

    let mut child = Killed(
        Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "localhost", "-CAfile", &files.path("ca.pem")])
            .args(["-verify_return_error", "-no_ign_eof"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = lines(child.0.stdout.take().unwrap());
    let err = lines(child.0.stderr.take().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(b"hello from openssl\n").unwrap();
    stdin.flush().unwrap();
    let seen = wait_for(&out, "HELLO FROM OPENSSL");
    assert!(
        seen.iter()
            .any(|l| l.contains("Verify return code: 0 (ok)")),
        "{seen:#?}"
    );
    // End of input: s_client sends close_notify and exits.
    drop(stdin);
    let version = server.join().expect("our server saw a clean end");
    assert_eq!(version, expect);
    let status = child.0.wait().unwrap();
    let stderr: Vec<String> = err.try_iter().collect();
    assert!(status.success(), "{status}: {stderr:#?}");
}

#[test]
fn openssl_s_client_against_our_server_tls13() {
    if !openssl_available() {
        return;
    }
    s_client_against_our_server(&[], ServerOptions::new(), ProtocolVersion::TLSv1_3);
}

#[test]
fn openssl_s_client_against_our_server_tls12() {
    if !openssl_available() {
        return;
    }
    let options = ServerOptions::new().with_tls12(true);
    s_client_against_our_server(&["-tls1_2"], options, ProtocolVersion::TLSv1_2);
}

#[test]
fn our_client_against_openssl_s_server() {
    if !openssl_available() {
        return;
    }
    let files = Files::new("s-server");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Killed(
        Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .args([
                "-cert",
                &files.path("cert.pem"),
                "-key",
                &files.path("key.pem"),
            ])
            .args(["-alpn", "netstrata/1", "-rev", "-naccept", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = lines(child.0.stdout.take().unwrap());
    let _err = lines(child.0.stderr.take().unwrap());
    wait_for(&out, "ACCEPT");

    let roots = pem::load_roots(files.path("ca.pem")).unwrap();
    let config = ClientOptions::new(roots)
        .with_alpn([b"netstrata/1".to_vec()])
        .build()
        .unwrap();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let tls = Tls::client(config, "localhost").unwrap();
    let mut conn = Blocking::new(stream, Connection::new(tls, RawCodec::new()));
    conn.handshake().unwrap();
    let tls = conn.connection().stack();
    assert_eq!(tls.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(tls.alpn_protocol(), Some(&b"netstrata/1"[..]));

    conn.send(b"hello from netstrata\n").unwrap();
    conn.flush().unwrap();
    let mut reply = Vec::new();
    while !reply.ends_with(b"\n") {
        let chunk = conn.recv().unwrap().expect("a reply before the end");
        reply.extend_from_slice(&chunk);
    }
    assert_eq!(reply, b"atartsten morf olleh\n");
    conn.shutdown().unwrap();
}
