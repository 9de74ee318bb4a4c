//! One proxied connection: a thread per direction, each running
//! [`forward`] between two blocking sockets, then ending its direction as
//! the outcome says.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::forward::{Clock, Faults, Outcome, forward};
use super::spec::Ending;
use super::{ConnectionRecord, FaultConfig, Injected, Shared};

/// How often a blocked read or write looks whether to give up.
const POLL: Duration = Duration::from_millis(20);
/// Bytes in flight per direction: the proxy's only buffer.
const BUFFER: usize = 16 * 1024;
/// How long the connect to the upstream may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Real time, giving up when the proxy stops or the connection was reset.
struct Wall<'a> {
    proxy: &'a AtomicBool,
    conn: &'a AtomicBool,
}

impl Clock for Wall<'_> {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&mut self, pause: Duration) {
        // The injected stall or delay itself, in slices so a stop is heard.
        // Past the end of time (a hand-built spec): until stopped.
        let until = Instant::now().checked_add(pause);
        while !self.stopped() {
            let left = until.map_or(POLL, |u| u.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(POLL));
        }
    }

    fn stopped(&self) -> bool {
        self.proxy.load(Ordering::Relaxed) || self.conn.load(Ordering::Relaxed)
    }
}

/// Writes to a socket with a send timeout, retrying until done or told to
/// stop; keeps a copy of what it wrote up to `limit` bytes.
struct Receiver<'a> {
    socket: &'a TcpStream,
    clock: &'a Wall<'a>,
    copy: Vec<u8>,
    limit: usize,
}

impl Write for Receiver<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            match (&*self.socket).write(data) {
                Ok(n) => {
                    let keep = n.min(self.limit - self.copy.len());
                    self.copy.extend_from_slice(&data[..keep]);
                    return Ok(n);
                }
                Err(e) if retry(&e) && !self.clock.stopped() => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// What one direction did.
struct Direction {
    outcome: Outcome,
    forwarded: u64,
    injected: Injected,
    copy: Vec<u8>,
}

/// Runs one direction, `from` → `to`, and ends it: the sender's end or a
/// cut becomes a FIN toward the receiver (after a cut, the sender's later
/// bytes are read and dropped); a reset, or a failure of either socket,
/// resets both ends.
fn run_direction(
    mut faults: Faults,
    from: &TcpStream,
    to: &TcpStream,
    proxy: &AtomicBool,
    conn: &AtomicBool,
    record: usize,
) -> Direction {
    let mut clock = Wall { proxy, conn };
    let mut buf = vec![0; BUFFER];
    let (outcome, copy) = {
        let wall = Wall { proxy, conn };
        let mut receiver = Receiver {
            socket: to,
            clock: &wall,
            copy: Vec::new(),
            limit: record,
        };
        let outcome = forward(
            &mut faults,
            &mut &*from,
            &mut receiver,
            &mut clock,
            &mut buf,
        );
        (outcome, receiver.copy)
    };
    match outcome {
        Outcome::Eof => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Outcome::Ended(Ending::Cut { .. }) => {
            let _ = to.shutdown(Shutdown::Write);
            // Dropped, not buffered: the sender is not held up by a cut.
            loop {
                match (&*from).read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if retry(&e) && !clock.stopped() => {}
                    Err(_) => break,
                }
            }
        }
        Outcome::Ended(Ending::Reset { .. }) | Outcome::ReadFailed(_) | Outcome::WriteFailed(_) => {
            reset(from, to, conn);
        }
        Outcome::Stopped => {}
    }
    Direction {
        outcome,
        forwarded: faults.offset(),
        injected: faults.injected(outcome),
        copy,
    }
}

/// Both sockets close with an RST once the last handle to them drops (when
/// both directions have given up, within [`POLL`]).
fn reset(a: &TcpStream, b: &TcpStream, conn: &AtomicBool) {
    for socket in [a, b] {
        let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
    }
    conn.store(true, Ordering::Relaxed);
}

/// Relays the accepted `client` to `config.upstream` until both directions
/// end; records the outcome in `shared` as connection `index`.
pub(super) fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    config: &FaultConfig,
    index: u64,
    shared: &Shared,
) {
    let mut record = ConnectionRecord::new(index);
    let server = match TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT) {
        Ok(server) => server,
        Err(e) => {
            // The client learns with a reset, as if the upstream had refused it.
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
            record.connect_error = Some(e.kind());
            shared.finish(record);
            return;
        }
    };
    for socket in [&client, &server] {
        let _ = socket.set_nodelay(true);
        let _ = socket.set_read_timeout(Some(POLL));
        let _ = socket.set_write_timeout(Some(POLL));
    }
    let conn = AtomicBool::new(false);
    let proxy = &shared.stop;
    let seeds = config.seeds(index);
    let (upstream_spec, downstream_spec) = config.specs(index);
    let (up, down) = std::thread::scope(|scope| {
        let down = scope.spawn(|| {
            let faults = Faults::new(downstream_spec, seeds.1);
            run_direction(faults, &server, &client, proxy, &conn, config.record)
        });
        let faults = Faults::new(upstream_spec, seeds.0);
        let up = run_direction(faults, &client, &server, proxy, &conn, config.record);
        (up, down.join().expect("a direction does not panic"))
    });
    record.upstream = Some(up.outcome);
    record.downstream = Some(down.outcome);
    record.forwarded = (up.forwarded, down.forwarded);
    record.wire = (up.copy, down.copy);
    record.injected = up.injected.plus(down.injected);
    drop((client, server));
    shared.finish(record);
}
