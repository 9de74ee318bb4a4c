//! The transport under every variant: two in-memory tokio pipes, one per
//! direction, so each end owns its read side and its write side and no
//! variant needs a lock to use them apart (async-compression's decoder and
//! encoder each take one).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncWrite, DuplexStream, Join};

/// Bytes each pipe holds before a write waits for the reader.
const PIPE_BUFFER: usize = 64 * 1024;

/// The write side of a pipe, counting the bytes it took.
#[derive(Debug)]
pub(crate) struct Wire {
    pipe: DuplexStream,
    sent: Arc<AtomicU64>,
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.pipe).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            self.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}

/// One end of a connection: what the peer wrote, and where to write.
#[derive(Debug)]
pub(crate) struct End {
    /// The read side.
    pub(crate) rx: DuplexStream,
    /// The write side.
    pub(crate) tx: Wire,
}

impl End {
    /// The two sides as one `AsyncRead + AsyncWrite`.
    pub(crate) fn joined(self) -> Join<DuplexStream, Wire> {
        tokio::io::join(self.rx, self.tx)
    }
}

/// A client's end and a server's, and the count of bytes the client has
/// written (the wire bytes of the client-to-server direction).
pub(crate) fn connection() -> (End, End, Arc<AtomicU64>) {
    let (up_tx, up_rx) = tokio::io::duplex(PIPE_BUFFER);
    let (down_tx, down_rx) = tokio::io::duplex(PIPE_BUFFER);
    let client_sent = Arc::new(AtomicU64::new(0));
    let client = End {
        rx: down_rx,
        tx: Wire {
            pipe: up_tx,
            sent: Arc::clone(&client_sent),
        },
    };
    let server = End {
        rx: up_rx,
        tx: Wire {
            pipe: down_tx,
            sent: Arc::new(AtomicU64::new(0)),
        },
    };
    (client, server, client_sent)
}
