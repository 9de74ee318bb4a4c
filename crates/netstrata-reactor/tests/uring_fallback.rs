//! Where io_uring cannot be set up (no such system call, refused by a
//! seccomp policy), a loop asked for it logs why and runs on epoll,
//! serving as before. (A test binary of its own: it installs the process's
//! log subscriber.)

// The server tests' helpers; these tests use a few of them.
#[allow(dead_code)]
mod common;

#[path = "common/log.rs"]
mod log;

use std::thread;

use bytes::Bytes;
use netstrata_reactor::{Context, Driver, EventLoop, Handler, LoopConfig};

use common::{client, plain};
use log::Captured;

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        let _ = cx.send(&msg);
    }
}

#[test]
fn a_loop_without_io_uring_says_why_and_serves_on_epoll() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    for (errno, says) in [
        (libc::ENOSYS, "Function not implemented"),
        (libc::EPERM, "Operation not permitted"),
    ] {
        let config = LoopConfig::new()
            .with_driver(Driver::Uring)
            .with_uring_failing(errno);
        let mut event_loop = EventLoop::new(config).unwrap();
        assert_eq!(event_loop.driver(), Driver::Epoll);
        assert_eq!(event_loop.handle().driver(), Driver::Epoll);
        let lines = captured.lines();
        let line = lines
            .iter()
            .rfind(|l| l.contains("io_uring is unavailable"))
            .unwrap_or_else(|| panic!("no warning in {lines:?}"));
        assert!(line.contains("WARN") && line.contains(says), "{line}");

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        event_loop.listen(listener, plain, |_| Echo).unwrap();
        let handle = event_loop.handle();
        let serving = thread::spawn(move || event_loop.run());
        let mut conn = client(addr);
        conn.send(b"still served").unwrap();
        conn.flush().unwrap();
        assert_eq!(conn.recv().unwrap().as_deref(), Some(&b"still served"[..]));
        handle.stop().unwrap();
        serving.join().unwrap().unwrap();
    }
}
