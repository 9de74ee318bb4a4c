//! Echoes queued by reference (`Context::send_bytes`) over real sockets:
//! large frames leave in vectored writes, cut anywhere by a small socket
//! send buffer, and every echo arrives whole and in order.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use netstrata_core::{Connection, ConnectionStats, Stack};
use netstrata_frame::LengthDelimited;
use netstrata_reactor::{
    CloseReason, Context, Handler, LoopConfig, Sent, Server, ServerConfig, SocketOptions,
};

/// Echoes by reference; pauses reading at the high watermark, as the CLI's
/// echo server does, and reports how its connection ended.
struct EchoBytes {
    closed: mpsc::Sender<(CloseReason, ConnectionStats)>,
}

impl Handler for EchoBytes {
    fn on_message(&mut self, cx: &mut Context<'_>, msg: Bytes) {
        match cx.send_bytes(msg) {
            Ok(Sent::Queued | Sent::Closed) => {}
            Ok(Sent::HighWatermark) => cx.pause_reading(),
            Err(_) => cx.abort(),
        }
    }

    fn on_writable(&mut self, cx: &mut Context<'_>) {
        cx.resume_reading();
    }

    fn on_close(&mut self, reason: &CloseReason, stats: &ConnectionStats) {
        let _ = self.closed.send((reason.clone(), stats.clone()));
    }
}

const FRAMES: usize = 1200;

/// Frame `seq`'s body: mostly 16 KiB, some small ones between (copied, not
/// queued by reference), each unlike any other.
fn body(seq: usize) -> Vec<u8> {
    let len = if seq % 5 == 4 { 37 } else { 16 * 1024 };
    let mut body: Vec<u8> = (0..len)
        .map(|i: usize| (i.wrapping_mul(13) ^ seq.wrapping_mul(101)) as u8)
        .collect();
    body[..4].copy_from_slice(&(seq as u32).to_be_bytes());
    body
}

fn frame(seq: usize) -> Vec<u8> {
    let body = body(seq);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn large_frames_echoed_by_reference_arrive_whole_and_in_order() {
    let (tx, closed) = mpsc::channel();
    let tx = Mutex::new(tx);
    let config = LoopConfig::new()
        // Small kernel buffers: writes stop inside prefixes and messages.
        .with_socket(
            SocketOptions::new()
                .with_send_buffer(24 * 1024)
                .with_recv_buffer(24 * 1024),
        )
        .with_watermarks(64 * 1024, 256 * 1024);
    let server = Server::bind(
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ServerConfig::new().with_threads(1).with_loop(config),
        || Connection::new(Stack::new(()), LengthDelimited::new()),
        move |_| EchoBytes {
            closed: tx.lock().unwrap().clone(),
        },
    )
    .unwrap();

    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = thread::spawn(move || {
        let mut sent = 0;
        for seq in 0..FRAMES {
            let frame = frame(seq);
            writer.write_all(&frame).unwrap();
            sent += frame.len();
        }
        sent
    });

    let mut reader = stream;
    let mut received = 0;
    for seq in 0..FRAMES {
        let mut head = [0u8; 4];
        reader.read_exact(&mut head).unwrap();
        let mut echo = vec![0u8; u32::from_be_bytes(head) as usize];
        reader.read_exact(&mut echo).unwrap();
        assert!(echo == body(seq), "echo {seq} differs from frame {seq}");
        received += 4 + echo.len();
    }
    let sent = sending.join().unwrap();
    assert_eq!(received, sent);

    reader.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{} bytes after the last echo", rest.len());
    let (reason, stats) = closed.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(reason, CloseReason::Clean), "{reason:?}");
    assert_eq!(stats.messages_in, FRAMES as u64);
    assert_eq!(stats.messages_out, FRAMES as u64);
    assert_eq!(stats.wire_out, sent as u64);
    server.stop().unwrap();
}
