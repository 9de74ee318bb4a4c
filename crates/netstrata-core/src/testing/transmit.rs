//! A connection's wire bytes, drained as a driver would write them.

use std::time::Instant;

use crate::{Codec, Connection, Error, Layer};

/// Everything `conn` transmits now, as a driver would write it: the wire
/// bytes until [`Connection::poll_transmit`] returns `None`, or until it
/// returns an error, which comes back beside the bytes written before it
/// (a failed connection still sends what its stack owes the peer).
pub fn transmit_all<S: Layer, C: Codec>(
    conn: &mut Connection<S, C>,
    now: Instant,
) -> (Vec<u8>, Option<Error>) {
    let mut wire = Vec::new();
    loop {
        match conn.poll_transmit(now) {
            Ok(Some(bytes)) => {
                let n = bytes.len();
                wire.extend_from_slice(bytes);
                conn.advance_transmit(n);
            }
            Ok(None) => return (wire, None),
            Err(e) => return (wire, Some(e)),
        }
    }
}

/// [`transmit_all`] for a connection that must not fail: its wire bytes.
///
/// # Panics
/// If the connection fails.
pub fn transmit_ok<S: Layer, C: Codec>(conn: &mut Connection<S, C>, now: Instant) -> Vec<u8> {
    match transmit_all(conn, now) {
        (wire, None) => wire,
        (_, Some(e)) => panic!("the connection failed while transmitting: {e}"),
    }
}
