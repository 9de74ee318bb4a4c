//! `ConnectionStream` (a stack and a codec as a `Stream` + `Sink`) and live
//! changes of a `DynStack` under both streams: nothing lost, nothing
//! reordered, over pipes with tiny buffers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netstrata_core::layers::Xor;
use netstrata_core::{DynStack, Stack};
use netstrata_frame::{LengthDelimited, Lines};
use netstrata_tls::dev_certs::DevCa;
use netstrata_tls::{ClientOptions, ServerOptions, Tls};
use netstrata_tokio::{ConnectionStream, LayeredStream, StackError};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};

/// Message `i`: its number and a body whose length varies with it.
fn message(i: usize) -> Bytes {
    let mut m = format!("message {i}:").into_bytes();
    m.extend((0..(i * 37) % 700).map(|k| (i + k) as u8));
    Bytes::from(m)
}

/// Bounds a test: a hang fails instead of stalling the run.
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish"))
}

fn xor() -> Stack<(Xor,)> {
    Stack::new((Xor::new(*b"k3y"),))
}

#[tokio::test]
async fn next_is_cancel_safe_a_select_that_drops_it_loses_no_message() {
    const N: usize = 2_000;
    let (a, b) = tokio::io::duplex(61);
    let mut tx = ConnectionStream::new(a, xor(), LengthDelimited::new());
    let mut rx = ConnectionStream::new(b, xor(), LengthDelimited::new());
    let sender = tokio::spawn(async move {
        for i in 0..N {
            tx.feed(message(i)).await?;
        }
        tx.close().await
    });
    let mut got = 0;
    let mut dropped = 0;
    within("the receiver", async {
        loop {
            // `yield_now` is ready on its second poll: the select keeps
            // dropping a `next()` that is part-way through a message.
            tokio::select! {
                next = rx.next() => match next {
                    Some(m) => {
                        assert_eq!(m.unwrap(), message(got), "message {got}");
                        got += 1;
                    }
                    None => break,
                },
                () = tokio::task::yield_now() => dropped += 1,
            }
        }
    })
    .await;
    sender.await.unwrap().unwrap();
    assert_eq!(got, N);
    assert!(dropped > 100, "the select dropped next() {dropped} times");
}

#[tokio::test]
async fn a_message_the_codec_cannot_frame_fails_its_send_and_the_stream_goes_on() {
    let (a, b) = tokio::io::duplex(1024);
    let codec = || LengthDelimited::builder().max_frame_length(100).new_codec();
    let mut tx = ConnectionStream::new(a, xor(), codec());
    let rx = ConnectionStream::new(b, xor(), codec());
    let err = tx.send(Bytes::from(vec![7; 101])).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.get_ref().unwrap().is::<StackError>());
    tx.send(Bytes::from_static(b"fits")).await.unwrap();
    tx.close().await.unwrap();
    let got: Vec<_> = within("the receiver", rx.map(Result::unwrap).collect()).await;
    assert_eq!(got, [Bytes::from_static(b"fits")]);
}

#[tokio::test]
async fn into_parts_and_from_parts_keep_every_byte_the_connection_held() {
    let (a, b) = tokio::io::duplex(61);
    let mut tx = ConnectionStream::new(a, xor(), LengthDelimited::new());
    let mut rx = ConnectionStream::new(b, xor(), LengthDelimited::new());
    let sender = tokio::spawn(async move {
        for i in 0..50 {
            tx.send(message(i)).await?;
        }
        tx.close().await
    });
    for i in 0..20 {
        assert_eq!(rx.next().await.unwrap().unwrap(), message(i));
    }
    // Whatever the connection holds (messages decoded, bytes part-way up
    // the stack) travels with it.
    let (io, connection) = rx.into_parts();
    let rx = ConnectionStream::from_parts(io, connection);
    let rest: Vec<_> = within("the rest", rx.map(Result::unwrap).collect()).await;
    assert_eq!(rest, (20..50).map(message).collect::<Vec<_>>());
    sender.await.unwrap().unwrap();
}

fn tls_pair() -> (Tls, Tls) {
    let ca = DevCa::new().unwrap();
    let leaf = ca.issue(&["localhost"]).unwrap();
    let server = ServerOptions::new()
        .with_identity(leaf.identity())
        .build()
        .unwrap();
    let client = ClientOptions::new(ca.roots()).build().unwrap();
    (
        Tls::client(client, "localhost").unwrap(),
        Tls::server(Arc::clone(&server)).unwrap(),
    )
}

type LineStream = ConnectionStream<DuplexStream, DynStack, Lines>;

async fn expect(conn: &mut LineStream, line: &str) {
    let got = conn.next().await.expect("a line").unwrap();
    assert_eq!(got, line.as_bytes());
}

#[tokio::test]
async fn starttls_between_messages_then_the_same_lines_over_tls() {
    let (client_tls, server_tls) = tls_pair();
    let (a, b) = tokio::io::duplex(61);
    let server = tokio::spawn(async move {
        let mut conn: LineStream = ConnectionStream::new(b, DynStack::new(vec![]), Lines::new());
        expect(&mut conn, "STARTTLS").await;
        conn.send(Bytes::from_static(b"220 go ahead")).await?;
        // The answer has left in clear; everything after is TLS.
        conn.insert_layer(0, Box::new(server_tls))?;
        while let Some(line) = conn.next().await {
            let mut echo = b"250 ".to_vec();
            echo.extend_from_slice(&line?);
            conn.send(Bytes::from(echo)).await?;
        }
        conn.close().await?;
        std::io::Result::Ok(conn.connection().stack().len())
    });
    let mut conn: LineStream = ConnectionStream::new(a, DynStack::new(vec![]), Lines::new());
    within("the client", async {
        conn.send(Bytes::from_static(b"STARTTLS")).await.unwrap();
        expect(&mut conn, "220 go ahead").await;
        conn.insert_layer(0, Box::new(client_tls)).unwrap();
        for i in 0..100 {
            conn.send(Bytes::from(format!("MAIL {i}"))).await.unwrap();
        }
        for i in 0..100 {
            expect(&mut conn, &format!("250 MAIL {i}")).await;
        }
        conn.close().await.unwrap();
        assert!(conn.next().await.is_none(), "the server's clean end");
    })
    .await;
    assert_eq!(server.await.unwrap().unwrap(), 1, "one layer: TLS");
}

#[tokio::test]
async fn bytes_read_ahead_past_the_request_go_to_the_layer_inserted_on_top() {
    let (a, b) = tokio::io::duplex(61);
    let client = tokio::spawn(async move {
        let mut conn = LayeredStream::new(a, DynStack::new(vec![]));
        // The request and, right behind it, bytes under the new layer.
        conn.write_all(b"UPGRADE\n").await?;
        conn.insert_layer(0, Box::new(Xor::new(*b"k3y")))?;
        conn.write_all(b"secret after the upgrade").await?;
        conn.shutdown().await
    });
    let conn = LayeredStream::new(b, DynStack::new(vec![]));
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    within("the request", reader.read_line(&mut line))
        .await
        .unwrap();
    assert_eq!(line, "UPGRADE\n");
    // The reader may hold upgraded bytes it read ahead: they go back under
    // the new layer.
    let ahead = reader.buffer().to_vec();
    let mut conn = reader.into_inner();
    conn.unread(&ahead);
    conn.insert_layer(0, Box::new(Xor::new(*b"k3y"))).unwrap();
    let mut rest = Vec::new();
    within("the rest", conn.read_to_end(&mut rest))
        .await
        .unwrap();
    assert_eq!(rest, b"secret after the upgrade");
    client.await.unwrap().unwrap();
}

/// Refuses any input, answering with an alert toward the wire first, as
/// TLS does.
#[derive(Debug)]
struct Refuses;

impl netstrata_core::Layer for Refuses {
    fn name(&self) -> &'static str {
        "refuses"
    }

    fn handle_inbound(&mut self, io: netstrata_core::Inbound<'_>) -> netstrata_core::Result<()> {
        io.lower.extend_from_slice(b"alert: bad input");
        Err(netstrata_core::Error::peer("refuses", "bad input"))
    }

    fn handle_outbound(&mut self, io: netstrata_core::Outbound<'_>) -> netstrata_core::Result<()> {
        netstrata_core::transfer(io.input, io.lower, io.lower_room);
        Ok(())
    }

    fn is_read_closed(&self) -> bool {
        false
    }

    fn is_write_closed(&self) -> bool {
        false
    }
}

/// The fault matrix (netstrata-cli's tests/faults.rs) found a TLS peer
/// told nothing: the stream returned the error and the alert stayed unsent.
#[tokio::test]
async fn a_stack_that_refuses_the_peer_s_bytes_sends_its_alert_before_the_error() {
    let (mut raw, io) = tokio::io::duplex(1024);
    let mut conn = ConnectionStream::new(io, Stack::new((Refuses,)), LengthDelimited::new());
    raw.write_all(b"x").await.unwrap();
    let e = within("the error", conn.next()).await.unwrap().unwrap_err();
    let stack = e
        .get_ref()
        .and_then(|e| e.downcast_ref::<StackError>())
        .unwrap();
    assert!(matches!(
        stack.error(),
        netstrata_core::Error::PeerMisbehaved {
            layer: "refuses",
            ..
        }
    ));
    let mut alert = vec![0; 16];
    within("the alert", raw.read_exact(&mut alert))
        .await
        .unwrap();
    assert_eq!(alert, b"alert: bad input");
}

#[tokio::test]
async fn the_messages_read_with_a_layer_s_error_come_before_it() {
    use netstrata_core::layers::Checksummed;
    use netstrata_core::{Connection, Error};
    // Two messages, the end record and one byte after it, written in one
    // go: the layer fails in the same read that brings the messages.
    let mut sender = Connection::new(Stack::new((Checksummed::new(),)), LengthDelimited::new());
    let now = std::time::Instant::now();
    sender.send(b"one").unwrap();
    sender.send(b"two").unwrap();
    sender.close();
    let mut wire = netstrata_core::testing::transmit_ok(&mut sender, now);
    wire.push(0);
    let (mut a, b) = tokio::io::duplex(64 * 1024);
    a.write_all(&wire).await.unwrap();
    let mut rx =
        ConnectionStream::new(b, Stack::new((Checksummed::new(),)), LengthDelimited::new());
    within("the receiver", async {
        assert_eq!(
            rx.next().await.unwrap().unwrap(),
            Bytes::from_static(b"one")
        );
        assert_eq!(
            rx.next().await.unwrap().unwrap(),
            Bytes::from_static(b"two")
        );
        let e = rx.next().await.unwrap().unwrap_err();
        let e = e
            .get_ref()
            .and_then(|e| e.downcast_ref::<StackError>())
            .map(|e| e.error().clone());
        assert!(
            matches!(
                e,
                Some(Error::PeerMisbehaved {
                    layer: "checksummed",
                    ..
                })
            ),
            "{e:?}"
        );
    })
    .await;
}
