//! The loop's figures through the `metrics` facade: connections, closes by
//! reason, messages and bytes per layer, handshakes, published on the
//! loop's timer.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use netstrata_core::layers::PassThrough;
use netstrata_core::{Blocking, Connection, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{Context, Handler, LoopConfig, Server, ServerConfig};

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        cx.send(&msg).unwrap();
    }
}

type Wire = Stack<(PassThrough,)>;

fn conn() -> Connection<Wire, LengthDelimited> {
    Connection::new(
        Stack::new((PassThrough::named("wire"),)),
        LengthDelimited::new(),
    )
}

/// The latest value of every series published so far. The debugging
/// recorder hands a counter's value to one snapshot and starts it again
/// from zero; the loop publishes totals, so the largest value a snapshot
/// showed is the latest total.
#[derive(Default)]
struct Published(HashMap<metrics_util::CompositeKey, f64>);

impl Published {
    fn take(&mut self, snapshotter: &Snapshotter) {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let entry = self.0.entry(key).or_insert(0.0);
            match value {
                DebugValue::Counter(n) => *entry = entry.max(n as f64),
                DebugValue::Gauge(g) => *entry = g.into_inner(),
                DebugValue::Histogram(_) => {}
            }
        }
    }

    /// The value of counter or gauge `name` whose labels include `labels`,
    /// summed over the series that match.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(key, _)| {
                let key = key.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Takes snapshots (for at most 10 s) until the figures satisfy `done`.
    fn until(&mut self, snapshotter: &Snapshotter, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.take(snapshotter);
            if done(self) {
                return;
            }
            assert!(Instant::now() < deadline, "never published: {what}");
            std::thread::yield_now();
        }
    }
}

#[test]
fn a_servers_figures_are_published_through_the_metrics_facade() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let config = LoopConfig::new().with_metrics_every(Duration::from_millis(10));
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new()
            .with_threads(1)
            .with_loop(config.clone()),
        conn,
        |_| Echo,
    )
    .unwrap();
    let mut client = Blocking::new(TcpStream::connect(server.local_addr()).unwrap(), conn());
    for _ in 0..10 {
        client.send(&[7; 100]).unwrap();
    }
    client.flush().unwrap();
    for _ in 0..10 {
        client.recv().unwrap().unwrap();
    }
    // While open: one connection, its echoes counted both ways.
    let mut seen = Published::default();
    seen.until(
        &snapshotter,
        "one open connection, 10 messages each way",
        |s| {
            s.value("netstrata_connections_open", &[]) == 1.0
                && s.value("netstrata_messages_total", &[("direction", "in")]) == 10.0
                && s.value("netstrata_messages_total", &[("direction", "out")]) == 10.0
        },
    );
    client.shutdown().unwrap();
    assert!(client.recv().unwrap().is_none());
    // After the close: counted by reason; the 10 frames of 4 + 100 bytes
    // each way it carried through the "wire" layer stay in the totals.
    seen.until(
        &snapshotter,
        "the clean close and the bytes it carried",
        |s| {
            s.value("netstrata_connections_open", &[]) == 0.0
                && s.value("netstrata_connections_closed_total", &[("reason", "clean")]) == 1.0
                && s.value("netstrata_layer_bytes_total", &[("side", "lower")]) == 2080.0
        },
    );
    assert_eq!(seen.value("netstrata_connections_opened_total", &[]), 1.0);
    for (direction, side) in [
        ("inbound", "lower"),
        ("inbound", "upper"),
        ("outbound", "upper"),
        ("outbound", "lower"),
    ] {
        let labels = [("layer", "wire"), ("direction", direction), ("side", side)];
        let bytes = seen.value("netstrata_layer_bytes_total", &labels);
        assert_eq!(bytes, 1040.0, "{direction} {side}");
    }
    for direction in ["in", "out"] {
        let labels = [("direction", direction)];
        assert_eq!(seen.value("netstrata_wire_bytes_total", &labels), 1040.0);
    }
    // A stack without a handshake counts none.
    assert_eq!(seen.value("netstrata_handshakes_total", &[]), 0.0);
    server.shutdown(Duration::from_secs(1)).unwrap();

    handshakes_completed_and_failed(&snapshotter, config, &mut seen);
}

/// (Part of the test above: one recorder per process.) A TLS server: one
/// client completes its handshake and is echoed, one sends bytes that are
/// not TLS and is refused; each counted by outcome, while open and after.
fn handshakes_completed_and_failed(
    snapshotter: &Snapshotter,
    config: LoopConfig,
    seen: &mut Published,
) {
    use netstrata_tls::dev_certs::DevCa;
    use netstrata_tls::{ClientOptions, ServerOptions, Tls};
    use std::io::Write;

    let ca = DevCa::new().unwrap();
    let leaf = ca.issue(&["localhost"]).unwrap();
    let server_config = ServerOptions::new()
        .with_identity(leaf.identity())
        .build()
        .unwrap();
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::new().with_threads(1).with_loop(config),
        move || {
            let tls = Tls::server(server_config.clone()).unwrap();
            Connection::new(Stack::new((tls,)), LengthDelimited::new())
        },
        |_| Echo,
    )
    .unwrap();
    let completed = [("outcome", "completed")];
    let failed = [("outcome", "failed")];

    let tls = Tls::client(ClientOptions::new(ca.roots()).build().unwrap(), "localhost").unwrap();
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    let mut client = Blocking::new(
        stream,
        Connection::new(Stack::new((tls,)), LengthDelimited::new()),
    );
    client.send(b"over TLS").unwrap();
    client.flush().unwrap();
    assert_eq!(&client.recv().unwrap().unwrap()[..], b"over TLS");
    seen.until(snapshotter, "a completed handshake, still open", |s| {
        s.value("netstrata_handshakes_total", &completed) == 1.0
    });

    let mut not_tls = TcpStream::connect(server.local_addr()).unwrap();
    not_tls.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    seen.until(snapshotter, "a failed handshake", |s| {
        s.value("netstrata_handshakes_total", &failed) == 1.0
    });
    client.shutdown().unwrap();
    assert!(client.recv().unwrap().is_none());
    seen.until(
        snapshotter,
        "the completed one closed, still counted",
        |s| s.value("netstrata_connections_open", &[]) == 0.0,
    );
    assert_eq!(seen.value("netstrata_handshakes_total", &completed), 1.0);
    assert_eq!(seen.value("netstrata_handshakes_total", &failed), 1.0);
    server.shutdown(Duration::from_secs(1)).unwrap();
}
