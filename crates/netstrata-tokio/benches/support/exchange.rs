//! The client and the echo server every variant runs: the same code over
//! whichever `AsyncRead + AsyncWrite` the variant builds.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};

use super::text::Corpus;

/// What each read asks for, at both ends.
const READ_BUFFER: usize = 64 * 1024;

/// How often the client looks at the clock: every this many messages.
const CLOCK_EVERY: u64 = 32;

/// Echoes what it reads until the peer ends its stream, then ends its
/// own: one write and one flush per read.
pub(crate) async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<()> {
    let mut buf = vec![0; READ_BUFFER];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown().await;
        }
        stream.write_all(&buf[..n]).await?;
        stream.flush().await?;
    }
}

/// Messages of `size` bytes, `depth` of them in flight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) size: usize,
    pub(crate) depth: u64,
}

/// When a client stops sending new messages: once the time is up and the
/// bytes sent reach a floor.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Until {
    pub(crate) at: Instant,
    pub(crate) bytes: u64,
}

/// Sends `load`'s messages on `stream`, from message `first` of the
/// corpus on, until `until`, then waits for the echoes still in flight;
/// checks every echoed byte against what was sent. Returns the number of
/// messages echoed.
///
/// One task reads and writes (no split, so no lock between the halves):
/// it writes while fewer than `depth` messages are in flight, flushes once
/// it can write no more, and reads whatever has come back.
pub(crate) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    corpus: &Corpus,
    load: Load,
    first: u64,
    until: Until,
) -> io::Result<u64> {
    let mut client = Client {
        corpus,
        load,
        first,
        until,
        stopped: false,
        sent: 0,
        written: 0,
        echoed: 0,
        unflushed: false,
        buf: vec![0; READ_BUFFER],
    };
    poll_fn(|cx| client.poll(cx, Pin::new(&mut *stream))).await
}

struct Client<'a> {
    corpus: &'a Corpus,
    load: Load,
    /// The corpus' index of the first message.
    first: u64,
    until: Until,
    /// The time is up: no more new messages.
    stopped: bool,
    /// Messages written whole.
    sent: u64,
    /// Bytes of message `sent` written so far.
    written: usize,
    /// Bytes echoed back and checked.
    echoed: u64,
    /// Written since the last completed flush.
    unflushed: bool,
    buf: Vec<u8>,
}

impl Client<'_> {
    fn poll<S: AsyncRead + AsyncWrite>(
        &mut self,
        cx: &mut Context<'_>,
        mut stream: Pin<&mut S>,
    ) -> Poll<io::Result<u64>> {
        let size = self.load.size as u64;
        loop {
            let mut progress = false;
            while !self.stopped && self.sent - self.echoed / size < self.load.depth {
                let msg = self.corpus.message(self.first + self.sent, self.load.size);
                match stream.as_mut().poll_write(cx, &msg[self.written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        progress = true;
                        self.unflushed = true;
                        self.written += n;
                        if self.written == self.load.size {
                            self.written = 0;
                            self.sent += 1;
                            if self.sent % CLOCK_EVERY == 1
                                && self.sent * size >= self.until.bytes
                                && Instant::now() >= self.until.at
                            {
                                self.stopped = true;
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if self.unflushed {
                match stream.as_mut().poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            let out = self.sent * size + self.written as u64;
            if self.echoed < out {
                let mut buf = ReadBuf::new(&mut self.buf);
                match stream.as_mut().poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => {
                        let n = buf.filled().len();
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                        }
                        self.check(n)?;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if self.stopped && self.written == 0 && self.echoed == self.sent * size {
                return Poll::Ready(Ok(self.sent));
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Compares the `n` bytes just read with the messages they echo.
    fn check(&mut self, n: usize) -> io::Result<()> {
        let size = self.load.size;
        let mut got = &self.buf[..n];
        while !got.is_empty() {
            let (i, at) = (
                self.echoed / size as u64,
                (self.echoed % size as u64) as usize,
            );
            let want = &self.corpus.message(self.first + i, size)[at..];
            let m = want.len().min(got.len());
            if got[..m] != want[..m] {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("echo of message {i} differs from what was sent"),
                ));
            }
            got = &got[m..];
            self.echoed += m as u64;
        }
        Ok(())
    }
}

/// What a measured stretch of one connection cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Messages echoed in the warm-up, before measuring.
    pub(crate) warm_up_messages: u64,
    /// Messages echoed.
    pub(crate) messages: u64,
    /// Wall time.
    pub(crate) wall: Duration,
    /// The process's CPU time in user space and in the kernel, seconds.
    pub(crate) user: f64,
    pub(crate) system: f64,
    /// Wire bytes the client wrote.
    pub(crate) wire: u64,
}

/// How a session runs: its warm-up, its measured stretch, and whether the
/// client writes through a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// At least this long before measuring (the handshake, the buffers)...
    pub(crate) warm_up: Duration,
    /// ...and at least this many bytes sent: a zstd window's buffers are
    /// first touched as the data fills them (page faults of a new
    /// connection, not a cost per message).
    pub(crate) warm_up_bytes: u64,
    /// The measured stretch.
    pub(crate) secs: Duration,
    /// The client writes through a tokio `BufWriter` (64 KiB), as a
    /// tokio-util `Framed` does: one write per flush instead of one per
    /// message.
    pub(crate) client_buffer: bool,
}

/// One connection of a variant: runs `serve` (the server's end, built from
/// its side of the pipes and echoing) as a task, builds the client's
/// stream with `connect`, warms up, measures, and ends both sides in
/// order. `wire` counts the client's wire bytes.
pub(crate) async fn session<C, F, V>(
    connect: F,
    serve: V,
    wire: &AtomicU64,
    corpus: &Corpus,
    load: Load,
    plan: Plan,
) -> io::Result<Sample>
where
    C: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = io::Result<C>>,
    V: Future<Output = io::Result<()>> + Send + 'static,
{
    let server = tokio::spawn(serve);
    let client = connect.await?;
    let sample = if plan.client_buffer {
        let client = BufWriter::with_capacity(READ_BUFFER, client);
        measure(client, wire, corpus, load, plan).await?
    } else {
        measure(client, wire, corpus, load, plan).await?
    };
    server.await.map_err(io::Error::other)??;
    Ok(sample)
}

/// Warms up, measures, then ends the client's stream and reads it to its end.
async fn measure<S: AsyncRead + AsyncWrite + Unpin>(
    mut client: S,
    wire: &AtomicU64,
    corpus: &Corpus,
    load: Load,
    plan: Plan,
) -> io::Result<Sample> {
    let warm_up = Until {
        at: Instant::now() + plan.warm_up,
        bytes: plan.warm_up_bytes,
    };
    let warmed = exchange(&mut client, corpus, load, 0, warm_up).await?;

    let (usage, wire_before, start) = (super::cpu(), wire.load(Ordering::Relaxed), Instant::now());
    let until = Until {
        at: start + plan.secs,
        bytes: 0,
    };
    // The text goes on where the warm-up stopped: no message repeats one
    // still within a zstd window.
    let messages = exchange(&mut client, corpus, load, warmed, until).await?;
    let wall = start.elapsed();
    let used = super::cpu() - usage;
    let wire = wire.load(Ordering::Relaxed) - wire_before;

    client.shutdown().await?;
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await?;
    if !rest.is_empty() {
        return Err(io::Error::other("bytes after the last echo"));
    }
    Ok(Sample {
        warm_up_messages: warmed,
        messages,
        wall,
        user: used.user,
        system: used.system,
        wire,
    })
}
