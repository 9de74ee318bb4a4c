//! UDP on the reactor, with datagram shaping on both ends.
//!
//! ```text
//! cargo run --example udp --features reactor,shape
//! ```
//!
//! A server on an event loop echoes datagrams through a `DatagramShaper`
//! that *polices* (drops what exceeds 500 kB/s: a datagram handler cannot
//! wait); a client paces its sends with a `DatagramShaper` that *waits*
//! (it sleeps until the instant the shaper names) at 1 MB/s, sends 1000
//! datagrams of 1000 bytes, and asks the server for its figures with a
//! `STATS` datagram. It prints the client's achieved rate, and how many
//! datagrams the server received, echoed and dropped; about half must come
//! back.
//!
//! What to look at: `EventLoop::bind_udp` with a `DatagramHandler` (one call
//! per datagram, `DatagramContext::send_to` to answer), and
//! `DatagramShaper::poll_send`, whose verdict is send now, wait until an
//! instant, or drop. A datagram passes whole or not at all.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use netstrata::reactor::{Context, DatagramContext, DatagramHandler, EventLoop, LoopConfig};
use netstrata::shape::{DatagramPolicy, DatagramShaper, Limit, ShapeConfig, Verdict};
use netstrata::{RawCodec, Stack};

const DATAGRAMS: u32 = 1000;
const SIZE: usize = 1000;
const CLIENT_RATE: u64 = 1_000_000;
const ECHO_RATE: u64 = 500_000;

/// The server: echoes data, answers `STATS`.
struct Echo {
    shaper: DatagramShaper,
    received: u64,
    echoed: u64,
}

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        if data == b"STATS" {
            let figures = format!(
                "{} {} {}",
                self.received,
                self.echoed,
                self.shaper.dropped()
            );
            // Unshaped: a control answer, and the client waits for it.
            let _ = cx.send_to(figures.as_bytes(), from);
            return;
        }
        self.received += 1;
        // Policing: send within the budget, drop beyond it.
        if self.shaper.poll_send(Instant::now(), data.len()) == Verdict::Send
            && matches!(cx.send_to(data, from), Ok(true))
        {
            self.echoed += 1;
        }
    }
}

/// The loop's TCP handler type: this loop has no TCP connections.
enum NoTcp {}

impl netstrata::reactor::Handler for NoTcp {
    fn on_message(&mut self, _: &mut Context<'_>, _: Bytes) {
        match *self {}
    }
}

fn start_server() -> std::io::Result<(
    SocketAddr,
    netstrata::reactor::Handle,
    thread::JoinHandle<std::io::Result<()>>,
)> {
    let (tx, rx) = mpsc::sync_channel(1);
    let thread = thread::spawn(move || {
        let mut event_loop: EventLoop<Stack<()>, RawCodec, NoTcp> =
            EventLoop::new(LoopConfig::new())?;
        let limit = Limit::per_second(ECHO_RATE).map_err(std::io::Error::other)?;
        let echo = Echo {
            shaper: DatagramShaper::new(
                ShapeConfig::new().with_outbound(limit),
                DatagramPolicy::Drop,
            ),
            received: 0,
            echoed: 0,
        };
        let addr = event_loop.bind_udp(UdpSocket::bind("127.0.0.1:0")?, echo)?;
        let _ = tx.send((addr, event_loop.handle()));
        event_loop.run()
    });
    let (addr, handle) = rx
        .recv()
        .map_err(|_| std::io::Error::other("the server failed to start"))?;
    Ok((addr, handle, thread))
}

/// Datagram `seq`: its number, then filler derived from it.
fn datagram(seq: u32) -> Vec<u8> {
    let mut d = seq.to_be_bytes().to_vec();
    d.extend((4..SIZE).map(|i| (seq as usize + i) as u8));
    d
}

/// Counts the intact echoes on `socket` until the answer to `STATS`.
fn count_echoes(socket: &UdpSocket) -> Result<(u32, String), String> {
    let (mut echoes, mut buf) = (0, [0u8; 2048]);
    loop {
        let n = socket
            .recv(&mut buf)
            .map_err(|e| format!("no STATS answer: {e}"))?;
        match &buf[..n] {
            data if n == SIZE => {
                let seq = u32::from_be_bytes(data[..4].try_into().expect("4 bytes"));
                if data != datagram(seq) {
                    return Err(format!("echo of datagram {seq} differs"));
                }
                echoes += 1;
            }
            stats => return Ok((echoes, String::from_utf8_lossy(stats).into_owned())),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (server, handle, server_thread) = start_server()?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(Duration::from_millis(500)))?;

    // Echoes are counted on another thread while this one sends; it ends
    // with the answer to STATS.
    let receiver = socket.try_clone()?;
    let (counted, count) = mpsc::channel();
    let counter = thread::spawn(move || {
        let _ = counted.send(count_echoes(&receiver));
    });

    let limit = Limit::per_second(CLIENT_RATE)?;
    let mut pacer = DatagramShaper::new(
        ShapeConfig::new().with_outbound(limit),
        DatagramPolicy::Wait,
    );
    let start = Instant::now();
    for seq in 0..DATAGRAMS {
        let d = datagram(seq);
        loop {
            match pacer.poll_send(Instant::now(), d.len()) {
                Verdict::Send => break,
                Verdict::WaitUntil(at) => {
                    thread::sleep(at.saturating_duration_since(Instant::now()))
                }
                Verdict::Drop => return Err("a datagram larger than the burst".into()),
            }
        }
        socket.send(&d)?;
    }
    let secs = start.elapsed().as_secs_f64();
    // The server answers STATS after the datagrams sent before it, so the
    // answer comes after their echoes. Ask again should the question or the
    // answer be lost (the counter gives up 500 ms after the last datagram).
    let mut answer = None;
    for _ in 0..3 {
        socket.send(b"STATS")?;
        if let Ok(result) = count.recv_timeout(Duration::from_millis(100)) {
            answer = Some(result);
            break;
        }
    }
    let answer = match answer {
        Some(answer) => answer,
        None => count.recv().map_err(|_| "receiver panicked")?,
    };
    counter.join().map_err(|_| "receiver panicked")?;
    let (echoes, stats) = answer?;
    handle.stop()?;
    server_thread.join().map_err(|_| "server panicked")??;

    let figures: Vec<u64> = stats.split(' ').filter_map(|s| s.parse().ok()).collect();
    let [received, echoed, dropped] = figures[..] else {
        return Err(format!("odd STATS answer {stats:?}").into());
    };
    let sent_bytes = u64::from(DATAGRAMS) * SIZE as u64;
    println!(
        "client: sent {DATAGRAMS} × {SIZE} B in {secs:.2} s: {:.2} MB/s (configured {:.2} MB/s, \
         burst {} kB first)",
        sent_bytes as f64 / secs / 1e6,
        CLIENT_RATE as f64 / 1e6,
        limit.burst() / 1000
    );
    println!(
        "server: received {received}, echoed {echoed}, dropped {dropped} (policing at {:.2} MB/s)",
        ECHO_RATE as f64 / 1e6
    );
    println!("client: {echoes} echoes came back intact");
    if received == 0 || echoes == 0 || u64::from(echoes) > echoed || dropped == 0 {
        return Err("the figures do not add up".into());
    }
    Ok(())
}
