//! UDP where loopback cannot show it: each test runs itself again in a
//! network namespace of its own (`unshare -n`) whose loopback `ip` or `tc`
//! changed; the child does the exchange, the parent checks that it passed.
//!
//! - A path whose MTU (1 400) is below what a segmented send assumed: the
//!   kernel refuses the segments (`EMSGSIZE` or `EINVAL`), the datagrams go
//!   one by one (and are fragmented) instead, none is lost or reported
//!   failed, and segmentation stays on for datagrams that fit.
//! - A link slower than the sender (a `tbf` queue of 8 Mbit/s): the
//!   socket's buffer fills, the sends wait for it to drain and then all
//!   leave, with nothing else happening on the socket to prompt them.

#[path = "common/udp.rs"]
mod udp;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use netstrata_core::testing::external_tool;
use netstrata_reactor::{DatagramContext, DatagramHandler, LoopConfig};
use udp::Served;

const CHILD: &str = "NETSTRATA_UDP_NAMESPACE_CHILD";

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

/// Runs test `name` again as a child in a new network namespace set up by
/// `setup` (a shell command); false if it cannot here (outside CI).
fn in_namespace(name: &str, setup: &str) -> bool {
    let tools = [
        ("unshare", &["-n", "true"][..]),
        ("ip", &["-V"]),
        ("tc", &["-V"]),
    ];
    if !tools.iter().all(|(tool, probe)| external_tool(tool, probe)) {
        return false;
    }
    let me = std::env::current_exe().unwrap();
    let script = format!(
        "{setup} && exec '{}' --exact {name} --nocapture",
        me.display()
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env(CHILD, name)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    println!("{said}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child: {said}\n{err}");
    assert!(said.contains(&format!("{name}: child passed")), "{said}");
    true
}

/// Whether this process is the child that runs test `name`.
fn child_of(name: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|n| n == name)
}

#[test]
fn segments_above_the_path_mtu_go_one_by_one_and_segmentation_stays_on() {
    let name = "segments_above_the_path_mtu_go_one_by_one_and_segmentation_stays_on";
    if child_of(name) {
        path_mtu_child();
        println!("{name}: child passed");
        return;
    }
    in_namespace(name, "ip link set lo mtu 1400 up");
}

/// In the namespace: two rounds of `go`, and what the socket counted.
fn path_mtu_child() {
    let server = Served::start(LoopConfig::new(), Runs);
    let addr = server.addr;
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
    server.stop();
}

/// On `go`: 600 datagrams of 1 000 bytes, more than the socket's buffer
/// holds while the link drains them at 1 MB/s. On `stats`: sent, dropped,
/// failed.
struct Burst;

impl DatagramHandler for Burst {
    fn on_datagram(&mut self, cx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        if data == b"stats" {
            let c = cx.counters();
            let said = format!("{} {} {}", c.sent, c.dropped, c.failed);
            cx.send_to(said.as_bytes(), from).unwrap();
            return;
        }
        for i in 0..600u32 {
            let mut datagram = [0u8; 1000];
            datagram[..4].copy_from_slice(&i.to_be_bytes());
            assert!(cx.send_to(&datagram, from).unwrap(), "queued");
        }
    }
}

#[test]
fn sends_that_fill_the_socket_leave_once_it_drains() {
    let name = "sends_that_fill_the_socket_leave_once_it_drains";
    if child_of(name) {
        full_socket_child();
        println!("{name}: child passed");
        return;
    }
    in_namespace(
        name,
        "ip link set lo up && tc qdisc add dev lo root tbf rate 8mbit burst 16kb latency 5s",
    );
}

/// In the namespace: the burst arrives whole and in order, prompted by
/// nothing but the socket's writable events.
fn full_socket_child() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A small send buffer (the kernel doubles it), so the burst fills it.
    socket2::SockRef::from(&socket)
        .set_send_buffer_size(32 * 1024)
        .unwrap();
    let server = Served::start_on(socket, LoopConfig::new(), Burst);
    let addr = server.addr;
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket2::SockRef::from(&client)
        .set_recv_buffer_size(4 * 1024 * 1024)
        .unwrap();
    client.send_to(b"go", addr).unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..600u32 {
        let n = client.recv(&mut buf).expect("the rest of the burst");
        assert_eq!(n, 1000);
        assert_eq!(buf[..4], i.to_be_bytes(), "in order");
    }
    client.send_to(b"stats", addr).unwrap();
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"600 0 0", "sent, dropped, failed");
    server.stop();
}
