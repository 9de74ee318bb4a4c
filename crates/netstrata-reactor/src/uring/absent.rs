//! Without io_uring (off Linux, or built without the `uring` feature):
//! a ring that cannot be made, so every loop runs on epoll.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::{Completion, Op, Sent};

/// No value of this type exists.
pub(crate) enum Ring {}

impl Ring {
    pub(crate) fn new(
        _count: usize,
        _len: usize,
        _one_thread: bool,
        fails_with: Option<i32>,
    ) -> io::Result<Self> {
        Err(match fails_with {
            Some(errno) => io::Error::from_raw_os_error(errno),
            None => io::Error::new(
                io::ErrorKind::Unsupported,
                "built without io_uring (Linux and the `uring` feature)",
            ),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        match *self {}
    }

    pub(crate) fn exhausted(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn poll_epoll(&mut self, _epoll: RawFd) -> io::Result<()> {
        match *self {}
    }

    pub(crate) fn accept(&mut self, _listener: RawFd, _index: usize) -> io::Result<()> {
        match *self {}
    }

    pub(crate) fn recv(&mut self, _fd: RawFd, _op: Op) -> io::Result<()> {
        match *self {}
    }

    pub(crate) fn close_later(&mut self, _fd: std::os::fd::OwnedFd, _send: Option<usize>) {
        match *self {}
    }

    pub(crate) fn cancel(&mut self, _op: Op) -> io::Result<()> {
        match *self {}
    }

    pub(crate) fn send(
        &mut self,
        _fd: RawFd,
        _owner: Op,
        _next: impl FnMut() -> Option<bytes::Bytes>,
    ) -> io::Result<Option<usize>> {
        match *self {}
    }

    pub(crate) fn sent(&mut self, _slot: usize, _result: i32) -> Sent {
        match *self {}
    }

    pub(crate) fn submit_and_wait(&mut self, _wait: Option<Duration>) -> io::Result<()> {
        match *self {}
    }

    pub(crate) fn complete(
        &mut self,
        _out: &mut Vec<Completion>,
        _received: impl FnMut(Op, &[u8]),
    ) {
        match *self {}
    }
}
