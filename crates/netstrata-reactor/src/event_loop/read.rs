//! Reading a connection's socket into its stack.

use std::io;
use std::time::Instant;

use netstrata_core::{Codec, Layer};

use super::connections::Connections;
use super::entry::SocketIn;
use crate::{CloseReason, Handler, socket};

/// A connection's first read, and the smallest: what a read reserves stays
/// allocated until the messages cut from it are dropped, so reads start
/// small and grow only as the peer sends more.
pub(super) const MIN_READ: usize = 512;

impl<S: Layer + 'static, C: Codec + 'static, H: Handler> Connections<S, C, H> {
    /// Reads connection `token`'s socket straight into its stack while it
    /// has bytes, the stack has room, and the turn's read budget lasts (on
    /// io_uring: what its receives put in its inbox).
    ///
    /// An error of the stack's stops the reading but does not end the
    /// connection here: the connection keeps it, and delivering hands the
    /// handler the messages decoded before it, then ends with it.
    pub(super) fn read(&mut self, token: usize, now: Instant) -> Result<(), CloseReason> {
        let max = self.config.read_chunk;
        let mut budget = self.config.read_budget;
        let on_ring = self.ring.is_some();
        let entry = &mut self.slab[token];
        while budget > 0 && entry.reads() {
            let room = entry.conn.read_room().min(entry.read_size);
            let (socket, ring_io) = (&entry.socket, &mut entry.ring_io);
            let Ok(read) = entry.conn.read_with(now, |buf, _| match on_ring {
                true => ring_io.read_into(buf, room),
                false => socket::recv_into(socket, buf, room),
            }) else {
                return Ok(());
            };
            match read {
                Ok(0) => {
                    entry.socket_in = SocketIn::Ended;
                    entry.last_activity = now;
                    // An error stays with the connection, as above.
                    let _ = entry.conn.handle_input_eof(now);
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    entry.read_size = next_read_size(entry.read_size, room, n, max);
                    entry.last_activity = now;
                    entry.socket_in = entry.socket_in.after_read(n, room);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.socket_in = SocketIn::Waiting;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e.kind())),
            }
        }
        Ok(())
    }
}

/// The size of a connection's next read, after a read of `asked` bytes
/// returned `n` with `size` the current one: doubled after a full read (the
/// peer sends more than that per turn), else twice the last read but at
/// least half the current size (shrinking over a few small reads), within
/// [`MIN_READ`]..=`max`.
fn next_read_size(size: usize, asked: usize, n: usize, max: usize) -> usize {
    let next = if n >= asked {
        size.max(asked.saturating_mul(2))
    } else {
        n.saturating_mul(2).max(size / 2)
    };
    next.clamp(MIN_READ, max.max(MIN_READ))
}
#[cfg(test)]
mod tests {
    use super::{MIN_READ, next_read_size};

    const MAX: usize = 64 * 1024;

    #[test]
    fn reads_double_while_they_come_back_full() {
        let mut size = MIN_READ;
        let mut sizes = Vec::new();
        for _ in 0..9 {
            size = next_read_size(size, size, size, MAX);
            sizes.push(size);
        }
        let expected = [1, 2, 4, 8, 16, 32, 64, 64, 64].map(|k| k * 1024);
        assert_eq!(sizes, expected);
    }

    #[test]
    fn reads_shrink_over_a_few_short_ones_and_follow_the_traffic() {
        let mut size = MAX;
        let mut sizes = Vec::new();
        for _ in 0..8 {
            size = next_read_size(size, size, 100, MAX);
            sizes.push(size);
        }
        let expected = [32 * 1024, 16 * 1024, 8192, 4096, 2048, 1024, 512, 512];
        assert_eq!(sizes, expected);
        // 1 088 bytes a turn (16 small frames): twice that, no more.
        assert_eq!(next_read_size(512, 512, 512, MAX), 1024);
        assert_eq!(next_read_size(1024, 1024, 1024, MAX), 2048);
        assert_eq!(next_read_size(2048, 2048, 1088, MAX), 2176);
        assert_eq!(next_read_size(2176, 2176, 1088, MAX), 2176);
    }

    #[test]
    fn a_read_cut_short_by_the_buffer_room_does_not_shrink_the_next() {
        // The connection had room for 10 000 bytes only, and got them all.
        assert_eq!(next_read_size(MAX, 10_000, 10_000, MAX), MAX);
    }
}
