//! UDP with batched system calls against one call per datagram, on the
//! same echo, the same client, in the same run: a netstrata loop echoing
//! 1 200-byte datagrams of one flow, on a thread of this process, with
//! each `DatagramIo`: `Single` (one call per datagram), `Batch`
//! (`sendmmsg`, `recvmmsg`) and `Offload` (GSO and GRO besides; the
//! default).
//!
//! The client keeps `--window` datagrams in flight, sends them in
//! segmented batches and receives coalesced ones (quinn-udp, GSO and GRO),
//! so that it is not what limits the server. A window lost (loopback drops
//! what overflows a socket's buffer) is sent again after 20 ms and counted.
//! Figures: datagrams echoed per second, the loop thread's CPU time per
//! datagram (`/proc/self/task/TID/stat`), system calls per datagram (the
//! socket's own counters); medians of interleaved rounds, and the ratios.
//!
//! `--peer plain`: the client sends one datagram per `sendmsg`, as most
//! peers do, so the server's receives batch by `recvmmsg` alone.
//!
//! `cargo bench -p netstrata-cli --bench udp_offload [-- --secs 3 --rounds 5 --window 256 --size 1200 --peer gso|plain]`

// Shared with the other benches; this one uses a part of it.
#[allow(dead_code)]
mod support;

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use netstrata_cli::cpu::CpuTime;
use netstrata_core::Stack;
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{
    Context, DatagramContext, DatagramCounters, DatagramHandler, DatagramIo, EventLoop, Handle,
    Handler, LoopConfig,
};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use support::median;
use support::servers::{listing_only, num};

/// Socket buffers of both ends: the largest this machine allows by
/// default (`net.core.rmem_max`), so a window fits.
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Receive slots of the client.
const SLOTS: usize = 32;

/// Echoes every datagram and answers `stats` with nothing but keeping its
/// counters where the bench reads them.
struct Echo {
    counters: mpsc::Sender<DatagramCounters>,
}

impl DatagramHandler for Echo {
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        if data == b"stats" {
            let _ = self.counters.send(cx.counters());
            return;
        }
        let _ = cx.send_to(data, from);
    }
}

/// No connections on this loop.
struct NoConnections;

impl Handler for NoConnections {
    fn on_message(&mut self, _: &mut Context<'_>, _: bytes::Bytes) {}
}

/// The echo loop on a thread: where it listens, its thread id (for its
/// CPU time), its handle and its counters.
struct Server {
    addr: SocketAddr,
    tid: String,
    handle: Handle,
    thread: thread::JoinHandle<std::io::Result<()>>,
    counters: mpsc::Receiver<DatagramCounters>,
}

impl Server {
    fn start(way: DatagramIo) -> Self {
        let (tx, rx) = mpsc::channel();
        let (counters_tx, counters) = mpsc::channel();
        let thread = thread::spawn(move || {
            let config = LoopConfig::new().with_datagram_io(way);
            let mut event_loop: EventLoop<Stack<()>, LengthDelimited, NoConnections> =
                EventLoop::new(config)?;
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            sized(&socket);
            let echo = Echo {
                counters: counters_tx,
            };
            let addr = event_loop.bind_udp(socket, echo)?;
            let tid = std::fs::read_link("/proc/thread-self")?;
            let tid = tid
                .to_string_lossy()
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned();
            tx.send((addr, tid, event_loop.handle())).unwrap();
            event_loop.run()
        });
        let (addr, tid, handle) = rx.recv().expect("the echo loop started");
        Self {
            addr,
            tid,
            handle,
            thread,
            counters,
        }
    }

    fn cpu(&self) -> CpuTime {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid));
        CpuTime::from_stat(&stat.expect("the loop thread")).expect("a stat line")
    }

    fn stop(self) {
        self.handle.stop().unwrap();
        self.thread.join().unwrap().unwrap();
    }
}

/// Gives `socket` large buffers.
fn sized(socket: &UdpSocket) {
    let socket = socket2::SockRef::from(socket);
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
}

/// The client: keeps a window of datagrams in flight to one server.
struct Client {
    socket: UdpSocket,
    state: UdpSocketState,
    poll: mio::Poll,
    events: mio::Events,
    payload: Vec<u8>,
    size: usize,
    buf: Vec<u8>,
}

impl Client {
    /// A client of `size`-byte datagrams that segments its sends when
    /// `gso` (one `sendmsg` per datagram otherwise).
    fn new(size: usize, gso: bool) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        sized(&socket);
        // Non-blocking (quinn-udp makes it so): `recvmmsg` on a blocking
        // socket would wait for all its slots to fill.
        let state = UdpSocketState::new((&socket).into()).unwrap();
        let poll = mio::Poll::new().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&fd),
                mio::Token(0),
                mio::Interest::READABLE,
            )
            .unwrap();
        let per_send = match gso {
            true => (DatagramContext::MAX_DATAGRAM / size).min(state.max_gso_segments()),
            false => 1,
        };
        Self {
            socket,
            state,
            poll,
            events: mio::Events::with_capacity(4),
            payload: vec![7; size * per_send],
            size,
            buf: vec![0; SLOTS * 64 * 1024],
        }
    }

    /// Sends `count` datagrams in as few calls as segmentation allows.
    fn send(&self, to: SocketAddr, mut count: usize) {
        while count > 0 {
            let n = count.min(self.payload.len() / self.size);
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: &self.payload[..n * self.size],
                segment_size: (n > 1).then_some(self.size),
                src_ip: None,
            };
            match self.state.try_send((&self.socket).into(), &transmit) {
                Ok(()) => count -= n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("send: {e}"),
            }
        }
    }

    /// Datagrams of one receive call (up to 32 slots of 64 KiB, each one
    /// datagram or a coalesced run); 0 if none came within 20 ms.
    fn receive(&mut self) -> usize {
        let mut meta = [RecvMeta::default(); SLOTS];
        loop {
            let mut chunks = self.buf.chunks_mut(64 * 1024);
            let mut bufs: [IoSliceMut<'_>; SLOTS] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            match self.state.recv((&self.socket).into(), &mut bufs, &mut meta) {
                Ok(n) => {
                    return meta[..n]
                        .iter()
                        .map(|m| m.len.div_ceil(m.stride.max(1)))
                        .sum();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("receive: {e}"),
            }
            let quiet = Some(Duration::from_millis(20));
            self.poll.poll(&mut self.events, quiet).expect("poll");
            if self.events.is_empty() {
                return 0;
            }
        }
    }
}

/// One run's figures.
struct Run {
    per_sec: f64,
    cpu_us: f64,
    calls: f64,
    lost: u64,
}

fn run(way: DatagramIo, secs: f64, window: usize, size: usize, gso: bool) -> Run {
    let server = Server::start(way);
    let mut client = Client::new(size, gso);
    let until = |d: f64| Instant::now() + Duration::from_secs_f64(d);
    let mut echoed = 0u64;
    let mut lost = 0u64;
    let mut in_flight = window;
    client.send(server.addr, window);
    // A warm-up of a fifth of the run, then the measured part.
    let warm = until(secs / 5.0);
    while Instant::now() < warm {
        pump(&mut client, server.addr, window, &mut in_flight, &mut lost);
    }
    let (cpu0, start) = (server.cpu(), Instant::now());
    let stats0 = stats(&client, &server);
    let end = start + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        echoed += pump(&mut client, server.addr, window, &mut in_flight, &mut lost);
    }
    let (cpu, elapsed) = (server.cpu() - cpu0, start.elapsed());
    let stats = stats(&client, &server);
    let datagrams = (stats.received - stats0.received) as f64;
    let calls =
        (stats.receive_calls + stats.send_calls - stats0.receive_calls - stats0.send_calls) as f64;
    server.stop();
    Run {
        per_sec: echoed as f64 / elapsed.as_secs_f64(),
        cpu_us: cpu.total().as_secs_f64() * 1e6 / echoed.max(1) as f64,
        calls: calls / datagrams.max(1.0),
        lost,
    }
}

/// Receives once and sends as many as came; a window gone quiet for
/// 20 ms is counted lost and sent again. Returns the datagrams echoed.
fn pump(
    client: &mut Client,
    to: SocketAddr,
    window: usize,
    in_flight: &mut usize,
    lost: &mut u64,
) -> u64 {
    let got = client.receive().min(*in_flight);
    if got == 0 {
        *lost += *in_flight as u64;
        client.send(to, window);
        *in_flight = window;
        return 0;
    }
    client.send(to, got);
    got as u64
}

/// The server's counters now (its answer to `stats`).
fn stats(client: &Client, server: &Server) -> DatagramCounters {
    client.socket.send_to(b"stats", server.addr).unwrap();
    server.counters.recv().expect("the echo's counters")
}

fn main() {
    if listing_only() {
        return;
    }
    let secs = num("--secs", 3.0);
    let rounds = num("--rounds", 5.0) as usize;
    let window = num("--window", 256.0) as usize;
    let size = num("--size", 1200.0) as usize;
    let gso = support::servers::arg("--peer").is_none_or(|p| p != "plain");
    let peer = if gso {
        "segments (GSO)"
    } else {
        "one sendmsg per datagram"
    };
    println!(
        "UDP echo, {size}-byte datagrams, one flow, {window} in flight, {rounds} rounds of {secs} s"
    );
    println!("the client receives coalesced (GRO) and sends {peer}");
    let ways = [DatagramIo::Single, DatagramIo::Batch, DatagramIo::Offload];
    let names = ["Single (one per call)", "Batch (mmsg)", "Offload (default)"];
    let mut per_sec = [Vec::new(), Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new(), Vec::new()];
    let mut calls = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds {
        // Interleaved, the order turning each round.
        for k in 0..ways.len() {
            let i = (k + round) % ways.len();
            let r = run(ways[i], secs, window, size, gso);
            println!(
                "round {round} {:<22} {:>10.0} dgrams/s {:>7.3} us/dgram {:>6.3} calls/dgram lost {}",
                names[i], r.per_sec, r.cpu_us, r.calls, r.lost
            );
            per_sec[i].push(r.per_sec);
            cpu[i].push(r.cpu_us);
            calls[i].push(r.calls);
        }
    }
    println!("\nmedians, and ratios to Single");
    let (s0, c0) = (median(&mut per_sec[0]), median(&mut cpu[0]));
    for i in 0..ways.len() {
        let (s, c, k) = (
            median(&mut per_sec[i]),
            median(&mut cpu[i]),
            median(&mut calls[i]),
        );
        println!(
            "{:<22} {s:>10.0} dgrams/s {c:>7.3} us/dgram {k:>6.3} calls/dgram  {:>6.2}x dgrams/s {:>6.2}x less CPU",
            names[i],
            s / s0,
            c0 / c
        );
    }
}
