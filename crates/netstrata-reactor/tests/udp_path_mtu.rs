//! A path whose MTU is below what a segmented send assumed: the kernel
//! refuses the segments (`EMSGSIZE` or `EINVAL`), the datagrams go one by one (and are
//! fragmented) instead, none is lost or reported failed, and segmentation
//! stays on for datagrams that fit.
//!
//! The test runs itself again in a network namespace of its own (`unshare
//! -n`) whose loopback has an MTU of 1 400, set with `ip`: the child does
//! the exchange, the parent checks that it passed.

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use netstrata_core::Stack;
use netstrata_core::testing::external_tool;
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{DatagramContext, DatagramHandler, EventLoop, Handler, LoopConfig};

const CHILD: &str = "NETSTRATA_PATH_MTU_CHILD";

/// On `go`: ten datagrams of 1 472 bytes (a segmented run whose segments
/// the 1 400-byte MTU refuses), then 64 of 100 (a run that fits). On
/// `stats`: sent, failed and send calls so far.
struct Runs;

impl DatagramHandler for Runs {
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        if data == b"stats" {
            let c = cx.counters();
            let said = format!("{} {} {}", c.sent, c.failed, c.send_calls);
            cx.send_to(said.as_bytes(), from).unwrap();
            return;
        }
        for i in 0..10u8 {
            cx.send_to(&[i; 1472], from).unwrap();
        }
        for i in 0..64u8 {
            cx.send_to(&[i; 100], from).unwrap();
        }
    }
}

struct NoConnections;

impl Handler for NoConnections {
    fn on_message(&mut self, _: &mut netstrata_reactor::Context<'_>, _: bytes::Bytes) {}
}

#[test]
fn segments_above_the_path_mtu_go_one_by_one_and_segmentation_stays_on() {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    if !external_tool("unshare", &["-n", "true"]) || !external_tool("ip", &["-V"]) {
        return;
    }
    let me = std::env::current_exe().unwrap();
    let script = format!(
        "ip link set lo mtu 1400 up && exec '{}' --exact {} --nocapture",
        me.display(),
        "segments_above_the_path_mtu_go_one_by_one_and_segmentation_stays_on"
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    println!("{said}");
    assert!(
        out.status.success(),
        "child: {said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("path MTU child passed"), "{said}");
}

/// In the namespace: two rounds of `go`, and what the socket counted.
fn child() {
    let (tx, rx) = mpsc::channel();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let thread = thread::spawn(move || {
        let mut event_loop: EventLoop<Stack<()>, LengthDelimited, NoConnections> =
            EventLoop::new(LoopConfig::new())?;
        let addr = event_loop.bind_udp(socket, Runs)?;
        tx.send((addr, event_loop.handle())).unwrap();
        event_loop.run()
    });
    let (addr, handle) = rx.recv().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0; 4096];
    let mut stats = Vec::new();
    for _ in 0..2 {
        client.send_to(b"go", addr).unwrap();
        for i in 0..10u8 {
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 1472], "fragmented, whole");
        }
        for i in 0..64u8 {
            let n = client.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &[i; 100]);
        }
        client.send_to(b"stats", addr).unwrap();
        let n = client.recv(&mut buf).unwrap();
        stats.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    // Round one: the refused segmented send (the ten and the first
    // 100-byte datagram, a shorter last segment), eleven single sends, the
    // other 63 in one. Then the answer to `stats`. Round two: the ten in
    // one `sendmmsg` (no more segments that large), the 64 in one.
    assert_eq!(stats, ["74 0 13", "149 0 16"]);
    handle.stop().unwrap();
    thread.join().unwrap().unwrap();
    println!("path MTU child passed");
}
