//! Event loops that threads take turns to run ([`crate::Server::bind_shared`]).
//!
//! Each loop keeps its own epoll, listener, connections and timers, as a
//! loop of [`crate::Server::bind`] does. What changes is who runs it: an
//! outer epoll holds every loop's epoll descriptor, one thread at a time
//! waits in it, queues the loops that have events (or a deadline due) and
//! wakes another thread; any free thread runs a queued loop's turn. A loop
//! whose thread the kernel has set aside no longer holds up its
//! connections: the other threads run it. A loop is run by one thread at a
//! time (its mutex), so what a turn sees is what a loop on its own thread
//! sees.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use netstrata_core::{Codec, Layer};

use crate::{EventLoop, Handler};

/// The outer epoll's token for its waker; loops are tokens 0..N.
const WAKER: Token = Token(usize::MAX);
/// No deadline.
const NEVER: u64 = u64::MAX;
/// `waiting_until` when no thread waits in the outer epoll.
const NOBODY: u64 = 0;
/// How long a thread with nothing to run sleeps while another runs a
/// turn, before it looks at the outer epoll itself: the longest a loop
/// waits for a thread when the one running a turn is held (set aside by
/// the kernel, or a handler that takes long).
const TAKE_OVER: Duration = Duration::from_millis(1);
/// How long it sleeps when no turn runs (a check now and then, so that a
/// turn that starts while it sleeps is covered within this).
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// The loops and what the threads that run them share.
pub(crate) struct Turns<S, C, H> {
    loops: Vec<Mutex<EventLoop<S, C, H>>>,
    /// Set while a loop waits in `ready` (it is queued once).
    queued: Vec<AtomicBool>,
    /// Set when a loop was due a turn while another thread ran one: that
    /// thread queues it again when done.
    again: Vec<AtomicBool>,
    /// Each loop's next deadline, µs since `base`, or [`NEVER`].
    due: Vec<AtomicU64>,
    base: Instant,
    ready: Mutex<VecDeque<usize>>,
    /// Threads with nothing to run wait here for queued loops.
    idle: Condvar,
    outer: Mutex<(Poll, Events)>,
    /// Ends the outer wait: a deadline came closer, or the loops stopped.
    outer_waker: Waker,
    /// The deadline the thread in the outer epoll waits for ([`NEVER`]
    /// while it works it out), or [`NOBODY`].
    waiting_until: AtomicU64,
    /// Threads inside a turn.
    running: AtomicUsize,
    stopped: AtomicUsize,
    /// The first error of a loop's turn (that loop stopped on it), for
    /// [`Turns::run`] to return.
    error: Mutex<Option<io::Error>>,
    /// The outer epoll failed: every thread ends.
    failed: AtomicBool,
}

/// Counts a thread out of `running` however its turn ends.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A poisoned lock means another thread panicked inside a turn; the loops'
/// state is still whole between turns, and the panic ends that thread's
/// `join` with an error.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S, C, H> Turns<S, C, H>
where
    S: Layer + Send + 'static,
    C: Codec + Send + 'static,
    H: Handler + Send,
{
    /// Registers every loop's epoll in a new outer one.
    pub(crate) fn new(loops: Vec<EventLoop<S, C, H>>) -> io::Result<Self> {
        let outer = Poll::new()?;
        for (k, event_loop) in loops.iter().enumerate() {
            outer.registry().register(
                &mut SourceFd(&event_loop.poll_fd()),
                Token(k),
                Interest::READABLE,
            )?;
        }
        let outer_waker = Waker::new(outer.registry(), WAKER)?;
        let n = loops.len();
        let base = Instant::now();
        let turns = Self {
            // A loop's first turn sets its deadlines.
            queued: (0..n).map(|_| AtomicBool::new(true)).collect(),
            again: (0..n).map(|_| AtomicBool::new(false)).collect(),
            due: (0..n).map(|_| AtomicU64::new(NEVER)).collect(),
            base,
            ready: Mutex::new((0..n).collect()),
            idle: Condvar::new(),
            outer: Mutex::new((outer, Events::with_capacity(n.max(16)))),
            outer_waker,
            waiting_until: AtomicU64::new(NOBODY),
            running: AtomicUsize::new(0),
            stopped: AtomicUsize::new(0),
            error: Mutex::new(None),
            failed: AtomicBool::new(false),
            loops: loops.into_iter().map(Mutex::new).collect(),
        };
        Ok(turns)
    }

    /// One thread's work until every loop has stopped. Returns the first
    /// error a loop stopped on (to one thread), or the outer epoll's.
    pub(crate) fn run(&self) -> io::Result<()> {
        let result = self.take_turns();
        if result.is_err() {
            self.failed.store(true, Ordering::Release);
            self.wake_everyone();
        }
        result?;
        lock(&self.error).take().map_or(Ok(()), Err)
    }

    fn take_turns(&self) -> io::Result<()> {
        loop {
            if self.all_stopped() {
                return Ok(());
            }
            let next = lock(&self.ready).pop_front();
            if let Some(k) = next {
                self.turn(k);
                continue;
            }
            if let Ok(mut outer) = self.outer.try_lock() {
                let (poll, events) = &mut *outer;
                self.wait(poll, events)?;
                continue;
            }
            let ready = lock(&self.ready);
            if ready.is_empty() && !self.all_stopped() {
                // The thread in the outer epoll calls when it queues more
                // than it runs; if the thread running a turn is held, this
                // one looks at the outer epoll itself after a while.
                let nap = match self.running.load(Ordering::Acquire) {
                    0 => IDLE_CHECK,
                    _ => TAKE_OVER,
                };
                let slept = self.idle.wait_timeout(ready, nap);
                drop(slept.unwrap_or_else(PoisonError::into_inner));
            }
        }
    }

    fn all_stopped(&self) -> bool {
        self.failed.load(Ordering::Acquire)
            || self.stopped.load(Ordering::Acquire) == self.loops.len()
    }

    /// Every thread looks again: on the condvar and in the outer epoll.
    fn wake_everyone(&self) {
        let _ready = lock(&self.ready);
        self.idle.notify_all();
        // If this fails, a thread waiting in the outer epoll with no
        // deadline stays there; nothing better can be done about it.
        let _ = self.outer_waker.wake();
    }

    /// Waits in the outer epoll until a loop has events or a deadline
    /// comes, queues those loops and calls a thread to help.
    fn wait(&self, poll: &mut Poll, events: &mut Events) -> io::Result<()> {
        // Said before the deadlines are read: a turn that sets an earlier
        // one after this either is read below or sees a thread waiting and
        // wakes it (every access here and in `turn` is SeqCst).
        self.waiting_until.store(NEVER, Ordering::SeqCst);
        let until = self
            .due
            .iter()
            .map(|d| d.load(Ordering::SeqCst))
            .min()
            .unwrap_or(NEVER);
        self.waiting_until.store(until, Ordering::SeqCst);
        let timeout = (until != NEVER).then(|| {
            (self.base + Duration::from_micros(until)).saturating_duration_since(Instant::now())
        });
        let waited = poll.poll(events, timeout);
        self.waiting_until.store(NOBODY, Ordering::SeqCst);
        match waited {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = self.micros(Instant::now());
        let mut ready = lock(&self.ready);
        for event in events.iter().filter(|e| e.token() != WAKER) {
            self.enqueue(&mut ready, event.token().0);
        }
        for (k, due) in self.due.iter().enumerate() {
            // Taken (set to NEVER) as it is queued: until its turn says
            // when next, no other wait queues it again.
            let at = due.load(Ordering::SeqCst);
            if at <= now
                && due
                    .compare_exchange(at, NEVER, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                self.enqueue(&mut ready, k);
            }
        }
        if ready.len() > 1 {
            // More than this thread can run at once: another helps. (Waking
            // one for every poll, to wait in the outer epoll while this one
            // runs a loop, measured worse: p99 1.5x, CPU per message 1.15x,
            // from the wake-ups.)
            self.idle.notify_one();
        }
        Ok(())
    }

    fn enqueue(&self, ready: &mut VecDeque<usize>, k: usize) {
        if !self.queued[k].swap(true, Ordering::AcqRel) {
            ready.push_back(k);
        }
    }

    /// Runs one turn of loop `k` with the events it has, then says when it
    /// needs the next one. A loop whose turn fails stops, as a loop on a
    /// thread of its own does; the others go on.
    fn turn(&self, k: usize) {
        self.running.fetch_add(1, Ordering::AcqRel);
        let _running = Running(&self.running);
        self.queued[k].store(false, Ordering::Release);
        // A loop another thread is running (held there, perhaps) is left to
        // it rather than waited for: it runs the loop again when done. Said
        // before the second try, so that either this thread gets the loop
        // or that one sees the flag after letting go of it.
        let mut event_loop = match self.loops[k].try_lock() {
            Ok(l) => l,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.again[k].store(true, Ordering::SeqCst);
                match self.loops[k].try_lock() {
                    Ok(l) => l,
                    Err(TryLockError::Poisoned(e)) => e.into_inner(),
                    Err(TryLockError::WouldBlock) => return,
                }
            }
        };
        self.again[k].store(false, Ordering::SeqCst);
        if event_loop.is_stopped() {
            return;
        }
        if let Err(e) = event_loop.turn(Some(Duration::ZERO)) {
            lock(&self.error).get_or_insert(e);
            event_loop.stop();
        }
        if event_loop.is_stopped() {
            event_loop.finish();
            drop(event_loop);
            self.due[k].store(NEVER, Ordering::SeqCst);
            if self.stopped.fetch_add(1, Ordering::AcqRel) + 1 == self.loops.len() {
                self.wake_everyone();
            }
            return;
        }
        // When next, said while the loop is held: a later turn's deadline
        // is never overwritten by this one's. A loop with work left, or a
        // deadline already past, is queued again rather than waited for.
        let deadline = event_loop.next_deadline();
        let left = event_loop.has_work_left()
            || event_loop.took_full_batch()
            || deadline.is_some_and(|at| at <= Instant::now());
        let at = match deadline {
            Some(at) if !left => self.micros(at),
            _ => NEVER,
        };
        self.due[k].store(at, Ordering::SeqCst);
        if at < self.waiting_until.load(Ordering::SeqCst) {
            let _ = self.outer_waker.wake();
        }
        drop(event_loop);
        // Work left, or asked for by a thread that found the loop busy: the
        // next turn comes after the loops queued before it.
        if self.again[k].swap(false, Ordering::SeqCst) || left {
            self.enqueue(&mut lock(&self.ready), k);
        }
    }

    /// `at` in whole µs since `base`, rounded up: a wait never ends
    /// before the deadline it waits for.
    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base)
            .as_nanos()
            .div_ceil(1000) as u64
    }
}
