//! The io_uring side of a loop ([`crate::Driver::Uring`]): the ring, its
//! receive buffers, the buffers of sends in flight, and what each
//! completion is about. The event loop decides what to submit; this module
//! owns every piece of memory the kernel may touch, so that the unsafe code
//! io_uring needs stays here and in [`buffers`].
//!
//! Operations:
//! - one multishot poll of the loop's epoll descriptor: the waker, UDP
//!   sockets and connects in progress stay on epoll, and wake the ring;
//! - a multishot accept per listener;
//! - a multishot receive per connection, from the ring of provided
//!   buffers;
//! - at most one send per connection, from a buffer this module holds until
//!   the send completes.

#[cfg(all(target_os = "linux", feature = "uring"))]
mod buffers;
mod op;
#[cfg(all(target_os = "linux", feature = "uring"))]
mod ring;
#[cfg(not(all(target_os = "linux", feature = "uring")))]
#[path = "absent.rs"]
mod ring;
#[cfg(all(target_os = "linux", feature = "uring"))]
mod send;

pub(crate) use op::{Completion, Op, Sent};
pub(crate) use ring::Ring;
