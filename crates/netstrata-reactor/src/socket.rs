//! Socket options, applied through socket2.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

/// Options for listening and connected TCP sockets. Each has a default and a
/// setter; `None` leaves the operating system's default.
#[derive(Debug, Clone)]
pub struct SocketOptions {
    nodelay: bool,
    reuse_address: bool,
    reuse_port: bool,
    send_buffer: Option<usize>,
    recv_buffer: Option<usize>,
    keepalive: Option<Duration>,
    linger: Option<Duration>,
    backlog: i32,
}

impl SocketOptions {
    /// Nodelay on, `SO_REUSEADDR` and `SO_REUSEPORT` on, OS buffer sizes,
    /// no keepalive, no linger, a backlog of 1024.
    pub fn new() -> Self {
        Self {
            nodelay: true,
            reuse_address: true,
            reuse_port: true,
            send_buffer: None,
            recv_buffer: None,
            keepalive: None,
            linger: None,
            backlog: 1024,
        }
    }

    /// `TCP_NODELAY` on accepted and connected sockets (default on: the
    /// reactor batches writes itself).
    pub fn with_nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// `SO_REUSEADDR` on listeners (default on).
    pub fn with_reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT` on listeners (default on), so that one listener per
    /// event loop can share a port.
    pub fn with_reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `SO_SNDBUF`.
    pub fn with_send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = Some(bytes);
        self
    }

    /// `SO_RCVBUF`.
    pub fn with_recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = Some(bytes);
        self
    }

    /// TCP keepalive with this idle time.
    pub fn with_keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(idle);
        self
    }

    /// `SO_LINGER` with this timeout.
    pub fn with_linger(mut self, timeout: Duration) -> Self {
        self.linger = Some(timeout);
        self
    }

    /// The listen backlog (default 1024).
    pub fn with_backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog.max(1);
        self
    }

    /// A non-blocking listener bound to `addr` with these options.
    pub fn listener(&self, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(self.reuse_address)?;
        #[cfg(unix)]
        socket.set_reuse_port(self.reuse_port)?;
        self.apply_buffers(&SockRef::from(&socket))?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(self.backlog)?;
        Ok(socket.into())
    }

    /// Options of an accepted or connected stream.
    pub(crate) fn apply_stream(&self, stream: &impl std::os::fd::AsFd) -> io::Result<()> {
        let sock = SockRef::from(stream);
        sock.set_tcp_nodelay(self.nodelay)?;
        self.apply_buffers(&sock)?;
        if let Some(idle) = self.keepalive {
            sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
        }
        if self.linger.is_some() {
            sock.set_linger(self.linger)?;
        }
        Ok(())
    }

    fn apply_buffers(&self, sock: &SockRef<'_>) -> io::Result<()> {
        if let Some(n) = self.send_buffer {
            sock.set_send_buffer_size(n)?;
        }
        if let Some(n) = self.recv_buffer {
            sock.set_recv_buffer_size(n)?;
        }
        Ok(())
    }
}

impl Default for SocketOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes closing `stream` an abortive close: the kernel discards what is
/// queued and sends a reset instead of a FIN, so the peer cannot take the
/// end for a clean one.
pub(crate) fn reset_on_close(stream: &impl std::os::fd::AsFd) {
    if let Err(e) = SockRef::from(stream).set_linger(Some(Duration::ZERO)) {
        tracing::debug!(error = %e, "SO_LINGER for a reset");
    }
}

/// Receives what `stream` has, at most `max` bytes, straight into the spare
/// capacity of `buf` (no zero-filling, no copy through another buffer), and
/// appends it to `buf`. Returns `Ok` with nothing appended at end of stream.
#[allow(unsafe_code)]
pub(crate) fn recv_into(
    stream: &impl std::os::fd::AsFd,
    buf: &mut BytesMut,
    max: usize,
) -> io::Result<()> {
    buf.reserve(max);
    let spare = &mut buf.spare_capacity_mut()[..max];
    let n = SockRef::from(stream).recv(spare)?;
    // SAFETY: `recv` returned `n`: the kernel wrote the first `n` bytes of
    // `spare` (socket2's `recv` writes only through recv(2), never
    // uninitialised bytes), so `len + n` bytes of `buf` are initialised, and
    // `n <= max <= ` the spare capacity reserved above.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(())
}

/// What [`recv_datagram`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Datagram {
    /// A datagram of this many bytes, whole, from this address.
    Whole(usize, SocketAddr),
    /// A datagram larger than the buffer (`MSG_TRUNC`): the kernel kept
    /// only what fit and dropped the rest.
    Truncated(SocketAddr),
}

/// Receives one datagram into `buf`, saying whether it fit.
#[allow(unsafe_code)]
pub(crate) fn recv_datagram(
    socket: &impl std::os::fd::AsFd,
    buf: &mut [u8],
) -> io::Result<Datagram> {
    // SAFETY: `[u8]` and `[MaybeUninit<u8>]` have the same layout, and the
    // slice is initialised already; recvmsg(2) writes only initialised
    // bytes into it, so it stays initialised for `buf`'s later reads.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) };
    let mut bufs = [socket2::MaybeUninitSlice::new(uninit)];
    let (n, flags, from) = SockRef::from(socket).recv_from_vectored(&mut bufs)?;
    let from = from
        .as_socket()
        .ok_or_else(|| io::Error::other("a datagram from a non-IP address"))?;
    Ok(match flags.is_truncated() {
        true => Datagram::Truncated(from),
        false => Datagram::Whole(n, from),
    })
}

/// The socket options quinn-udp changes for QUIC that a general UDP socket
/// keeps: path-MTU discovery and `IPV6_DONTFRAG` (whether the kernel may
/// fragment) and receive timestamps. Read before, put back after.
pub(crate) struct QuicOptions {
    /// `(level, name, value)` of each option that could be read.
    kept: Vec<(libc::c_int, libc::c_int, libc::c_int)>,
}

impl QuicOptions {
    #[cfg(target_os = "linux")]
    const OPTIONS: [(libc::c_int, libc::c_int); 4] = [
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER),
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER),
        (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG),
        (libc::SOL_SOCKET, libc::SO_TIMESTAMPNS),
    ];
    #[cfg(not(target_os = "linux"))]
    const OPTIONS: [(libc::c_int, libc::c_int); 0] = [];

    /// The options of `socket` as they are now (those it has).
    pub(crate) fn read(socket: &impl std::os::fd::AsFd) -> Self {
        let kept = Self::OPTIONS
            .iter()
            .filter_map(|&(level, name)| {
                int_option(socket, level, name)
                    .ok()
                    .map(|value| (level, name, value))
            })
            .collect();
        Self { kept }
    }

    /// Sets them back on `socket`; a failure is logged, the socket works on.
    pub(crate) fn restore(&self, socket: &impl std::os::fd::AsFd) {
        for &(level, name, value) in &self.kept {
            if let Err(e) = set_int_option(socket, level, name, value) {
                tracing::debug!(error = %e, level, name, "restoring a UDP socket option");
            }
        }
    }
}

/// Turns `UDP_GRO` off on `socket` (quinn-udp turns it on), so that each
/// datagram is received on its own; a failure is logged.
pub(crate) fn disable_gro(socket: &impl std::os::fd::AsFd) {
    #[cfg(target_os = "linux")]
    if let Err(e) = set_int_option(socket, libc::SOL_UDP, libc::UDP_GRO, 0) {
        tracing::debug!(error = %e, "turning UDP_GRO off");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

/// An integer socket option of `socket`.
#[allow(unsafe_code)]
fn int_option(
    socket: &impl std::os::fd::AsFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals for the call, `len` says
    // how many bytes `value` has, and the kernel writes at most that many;
    // the descriptor is borrowed from an open socket.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    match rc {
        0 => Ok(value),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Sets an integer socket option of `socket`.
#[allow(unsafe_code)]
fn set_int_option(
    socket: &impl std::os::fd::AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `value` is a live local of the size given, which the kernel
    // only reads; the descriptor is borrowed from an open socket.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Datagrams one [`send_many`] call takes at most (one where the system
/// has no `sendmmsg`).
pub(crate) const SEND_MANY: usize = if cfg!(target_os = "linux") { 32 } else { 1 };

/// Sends `datagrams` (each to its own address; at most [`SEND_MANY`] are
/// looked at) with one `sendmmsg`. Returns how many the kernel took, from
/// the first; an error is the first datagram's (the ones after it were not
/// tried).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn send_many(
    socket: &impl std::os::fd::AsFd,
    datagrams: &[(SocketAddr, &[u8])],
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let Some(&(first, _)) = datagrams.first() else {
        return Ok(0);
    };
    let n = datagrams.len().min(SEND_MANY);
    let addrs: [socket2::SockAddr; SEND_MANY] =
        std::array::from_fn(|i| datagrams.get(i).map_or(first, |d| d.0).into());
    let mut iovecs: [libc::iovec; SEND_MANY] = std::array::from_fn(|i| libc::iovec {
        iov_base: datagrams
            .get(i)
            .map_or(std::ptr::null_mut(), |d| d.1.as_ptr().cast_mut().cast()),
        iov_len: datagrams.get(i).map_or(0, |d| d.1.len()),
    });
    // SAFETY: an all-zero `mmsghdr` is a valid value (null pointers, zero
    // lengths and flags); the fields that matter are set below.
    let mut msgs: [libc::mmsghdr; SEND_MANY] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = addrs[i].as_ptr().cast_mut().cast();
        hdr.msg_namelen = addrs[i].len();
        hdr.msg_iov = &mut iovecs[i];
        hdr.msg_iovlen = 1;
    }
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `msgs[..n]` point at `addrs[i]` and `iovecs[i]`, locals that
    // outlive the call, and each iovec at the bytes of a borrowed slice of
    // its length; sendmmsg(2) only reads them and writes each header's
    // `msg_len`. The descriptor is borrowed from an open socket.
    retrying(|| unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as _, 0) } as isize)
}

/// Calls `f` (a system call's wrapper) again while it fails with `EINTR`;
/// its result, or the error of `errno`.
#[cfg(target_os = "linux")]
fn retrying(mut f: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let rc = f();
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sends the first of `datagrams` with one `sendto`, and says it sent one
/// (none of none): [`send_many`] where the system has no `sendmmsg`, and
/// the send of a socket that moves one datagram per call.
pub(crate) fn send_first(
    socket: &impl std::os::fd::AsFd,
    datagrams: &[(SocketAddr, &[u8])],
) -> io::Result<usize> {
    let Some(&(to, data)) = datagrams.first() else {
        return Ok(0);
    };
    SockRef::from(socket).send_to(data, &to.into())?;
    Ok(1)
}

#[cfg(not(target_os = "linux"))]
pub(crate) use send_first as send_many;

/// Sends `data` to `to` as datagrams of `segment` bytes (the last may be
/// shorter) with one `sendmsg` carrying `UDP_SEGMENT` (GSO) and no other
/// control message, so the socket's own options (its TOS byte, say) hold.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) fn send_segmented(
    socket: &impl std::os::fd::AsFd,
    data: &[u8],
    to: SocketAddr,
    segment: u16,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let addr = socket2::SockAddr::from(to);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // Room for one control message of a `u16`, aligned for `cmsghdr`.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero `msghdr` is a valid value; the fields that
    // matter are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_ptr().cast_mut().cast();
    msg.msg_namelen = addr.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes. `control` (32
    // bytes, 8-aligned) holds CMSG_SPACE(2) (24 on 64-bit Linux, 16 on
    // 32-bit), so CMSG_FIRSTHDR gives a header within it, and CMSG_DATA a
    // place for the `u16` within it too (written unaligned, as the kernel
    // reads it).
    unsafe {
        msg.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as _;
        debug_assert!(msg.msg_controllen as usize <= size_of_val(&control));
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
    }
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `msg` points at `addr`, `iov` and `control`, locals that
    // outlive the call, and `iov` at `data`, borrowed for it; sendmsg(2)
    // only reads them. The descriptor is borrowed from an open socket.
    retrying(|| unsafe { libc::sendmsg(fd, &msg, 0) }).map(drop)
}

/// No segmentation offload on this system.
#[cfg(not(target_os = "linux"))]
pub(crate) fn send_segmented(
    _: &impl std::os::fd::AsFd,
    _: &[u8],
    _: SocketAddr,
    _: u16,
) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}
