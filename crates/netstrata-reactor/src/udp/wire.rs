//! A UDP socket and how it moves datagrams: quinn-udp's set-up and
//! batched, coalescing receives; the reactor's own sends (segmented,
//! `sendmmsg` or one at a time); or one call per datagram.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use mio::net::UdpSocket;
use quinn_udp::{RecvMeta, UdpSocketState};

use crate::{DatagramIo, socket};

/// A loop's UDP socket with quinn-udp's state for it when batching is on.
pub(crate) struct UdpIo {
    pub(crate) socket: UdpSocket,
    state: Option<UdpSocketState>,
    /// Whether sends may be segmented (GSO).
    segment: bool,
    /// Whether receives may be coalesced (GRO).
    gro: bool,
}

impl UdpIo {
    /// `socket` (non-blocking already), moving datagrams as `how` says
    /// where quinn-udp can set the socket up; one call per datagram
    /// otherwise, with the reason logged.
    pub(crate) fn new(socket: UdpSocket, how: DatagramIo) -> Self {
        let state = (how != DatagramIo::Single)
            .then(|| quic_neutral_state(&socket))
            .and_then(|state| {
                state
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "UDP batching unavailable; one system call per datagram")
                    })
                    .ok()
            });
        let offloaded = how == DatagramIo::Offload;
        let gro = offloaded && state.as_ref().is_some_and(|s| s.gro_segments() > 1);
        if state.is_some() && !gro {
            socket::disable_gro(&socket);
        }
        if let Some(state) = &state {
            tracing::debug!(
                local = ?socket.local_addr().ok(),
                gso_segments = if offloaded { state.max_gso_segments() } else { 1 },
                gro,
                "UDP batching on",
            );
        }
        Self {
            socket,
            state,
            segment: offloaded,
            gro,
        }
    }

    /// Datagrams one send may carry (1 without GSO).
    pub(crate) fn max_segments(&self) -> usize {
        match (&self.state, self.segment) {
            (Some(state), true) => state.max_gso_segments(),
            _ => 1,
        }
    }

    /// Whether one receive may return datagrams coalesced by `UDP_GRO`.
    pub(crate) fn gro(&self) -> bool {
        self.gro
    }

    /// Whether receives are batched.
    pub(crate) fn batched(&self) -> bool {
        self.state.is_some()
    }

    /// Sends `data` to `to`: one datagram (`sendto`), or datagrams of
    /// `segment` bytes (the last may be shorter) in one segmented
    /// `sendmsg`. Neither adds control messages of its own (quinn-udp's
    /// send would set the TOS byte), and the caller decides what a failed
    /// segmented send means.
    pub(crate) fn send(
        &self,
        data: &[u8],
        to: SocketAddr,
        segment: Option<usize>,
    ) -> io::Result<()> {
        match segment {
            Some(size) => {
                let size = u16::try_from(size)
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
                socket::send_segmented(&self.socket, data, to, size)
            }
            None => self.socket.send_to(data, to).map(drop),
        }
    }

    /// Datagrams one [`send_many`](Self::send_many) sends at most.
    pub(crate) fn send_many_limit(&self) -> usize {
        match self.state {
            Some(_) => socket::SEND_MANY,
            None => 1,
        }
    }

    /// Sends each datagram to its own peer, as many as one `sendmmsg`
    /// takes (batched; the first with one `sendto` otherwise): how many
    /// left, from the first. An error is the first one's.
    pub(crate) fn send_many(&self, datagrams: &[(SocketAddr, &[u8])]) -> io::Result<usize> {
        match self.state {
            Some(_) => socket::send_many(&self.socket, datagrams),
            None => socket::send_first(&self.socket, datagrams),
        }
    }

    /// Receives into `bufs` (batched only): how many of them were filled,
    /// each described by its `meta`.
    pub(crate) fn recv_batch(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        match &self.state {
            Some(state) => state.recv((&self.socket).into(), bufs, meta),
            None => Err(io::Error::other(
                "receive batches need DatagramIo::Batch or Offload",
            )),
        }
    }

    /// Receives one datagram into `buf` (one call per datagram).
    pub(crate) fn recv_one(&self, buf: &mut [u8]) -> io::Result<socket::Datagram> {
        socket::recv_datagram(&self.socket, buf)
    }
}

/// quinn-udp's state for `socket`, with the socket options it sets for
/// QUIC that a general UDP socket should not get put back: fragmentation
/// stays as it was (QUIC forbids it; other protocols rely on it) and
/// receive timestamps stay off (they cost every packet).
fn quic_neutral_state(socket: &UdpSocket) -> io::Result<UdpSocketState> {
    let kept = socket::QuicOptions::read(socket);
    let state = UdpSocketState::new(socket.into())?;
    kept.restore(socket);
    Ok(state)
}
