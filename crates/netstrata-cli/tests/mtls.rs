//! Mutual TLS through the binary: two tunnels back to back, the far one
//! requiring client certificates (`--client-ca`), the near one showing one
//! (`--client-cert`, `--client-key`), with certificates from development
//! CAs written to files. Every wait is on an event, never a sleep.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ChildStderr;
use std::thread;
use std::time::Duration;

use netstrata_tls::dev_certs::DevCa;

mod common;
use common::{Running, listening_addr, stop};

/// Certificate files in a directory of their own.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("netstrata-mtls-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_string()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Paths of the certificate files: the servers' CA, the server's
/// certificate and key, the clients' CA, a client's certificate and key.
struct Paths {
    ca: String,
    server_cert: String,
    server_key: String,
    client_ca: String,
    client_cert: String,
    client_key: String,
}

/// Two development CAs, one for servers and one for clients, and a
/// certificate of each kind, written to `files`.
fn certificates(files: &Files) -> Paths {
    let server_ca = DevCa::new().unwrap();
    let server = server_ca.issue(&["localhost", "127.0.0.1"]).unwrap();
    let client_ca = DevCa::new().unwrap();
    let client = client_ca.issue(&["client.test"]).unwrap();
    Paths {
        ca: files.write("ca.pem", server_ca.cert_pem()),
        server_cert: files.write("server.pem", &server.cert_pem),
        server_key: files.write("server.key", &server.key_pem),
        client_ca: files.write("clients.pem", client_ca.cert_pem()),
        client_cert: files.write("client.pem", &client.cert_pem),
        client_key: files.write("client.key", &client.key_pem),
    }
}

/// A plain echo server: every connection gets its bytes back.
fn echo_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
                let _ = writer.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

fn spawn_tunnel(args: &[&str]) -> Running {
    let mut command = common::command(&["tunnel", "--listen", "127.0.0.1:0"]);
    Running(command.args(args).spawn().unwrap())
}

/// A tunnel and where it listens; its stderr stays piped for its log.
fn tunnel(args: &[&str]) -> (Running, SocketAddr) {
    let mut child = spawn_tunnel(args);
    let addr = listening_addr(&mut BufReader::new(child.0.stdout.take().unwrap()));
    (child, addr)
}

/// The far tunnel: TLS server in front of `target`, requiring client
/// certificates from the clients' CA.
fn far_tunnel(target: SocketAddr, paths: &Paths) -> (Running, SocketAddr) {
    let target = target.to_string();
    tunnel(&[
        "--connect",
        &target,
        "--stack-side",
        "listen",
        "--tls",
        "--cert",
        &paths.server_cert,
        "--key",
        &paths.server_key,
        "--client-ca",
        &paths.client_ca,
    ])
}

/// Reads `stderr` up to the tunnel's first close line.
fn close_line(stderr: ChildStderr) -> String {
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines.next().expect("no close line").unwrap();
        if line.contains("netstrata tunnel: closed: ") {
            return line;
        }
    }
}

fn client_of(addr: SocketAddr) -> TcpStream {
    let client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    client
}

#[test]
fn mutual_tls_carries_bytes_through_two_tunnels() {
    let files = Files::new("ok");
    let paths = certificates(&files);
    let (far, far_addr) = far_tunnel(echo_target(), &paths);
    let far_addr = far_addr.to_string();
    let (near, near_addr) = tunnel(&[
        "--connect",
        &far_addr,
        "--stack-side",
        "connect",
        "--tls",
        "--ca",
        &paths.ca,
        "--client-cert",
        &paths.client_cert,
        "--client-key",
        &paths.client_key,
    ]);

    let mut client = client_of(near_addr);
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut client = client.try_clone().unwrap();
        let body = body.clone();
        thread::spawn(move || {
            client.write_all(&body).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut echoed = Vec::new();
    client.read_to_end(&mut echoed).unwrap();
    writer.join().unwrap();
    assert!(
        echoed == body,
        "{} of {} bytes came back",
        echoed.len(),
        body.len()
    );

    stop(near);
    stop(far);
}

#[test]
fn without_a_client_certificate_the_far_end_refuses() {
    let files = Files::new("refused");
    let paths = certificates(&files);
    let (far, far_addr) = far_tunnel(echo_target(), &paths);
    let far_addr = far_addr.to_string();
    let (mut near, near_addr) = tunnel(&[
        "--connect",
        &far_addr,
        "--stack-side",
        "connect",
        "--tls",
        "--ca",
        &paths.ca,
    ]);
    let stderr = near.0.stderr.take().unwrap();

    let mut client = client_of(near_addr);
    // Written before or after the refusal: either is fine.
    let _ = client.write_all(b"let me in");
    let mut rest = Vec::new();
    match client.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "bytes came back: {rest:?}"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
    let line = close_line(stderr);
    // The near end's TLS client leg, refused with an alert.
    assert!(line.contains("(target side) tls: "), "{line}");
    assert!(line.to_lowercase().contains("certificate"), "{line}");

    stop(near);
    stop(far);
}
