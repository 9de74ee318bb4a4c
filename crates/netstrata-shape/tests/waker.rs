//! Limits changed through a handle wake the connection's waker, so a driver
//! re-reads deadlines at once instead of at the deadline set for the old
//! limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};

use netstrata_core::{Connection, DynStack, Layer, RawCodec, Stack};
use netstrata_shape::{Direction, GlobalLimiter, Limit, ShapeConfig, Shaper};

#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Count>, Waker) {
    let count = Arc::new(Count::default());
    (count.clone(), Waker::from(count))
}

fn slow() -> Option<Limit> {
    Some(Limit::new(100, 1000).unwrap())
}

#[test]
fn handle_change_wakes_the_shaper_waker() {
    let mut shaper = Shaper::new(ShapeConfig::new());
    let handle = shaper.handle();
    handle.set_limit(Direction::Outbound, slow());
    let (count, waker) = counting();
    shaper.set_waker(&waker);
    handle.set_limit(Direction::Outbound, None);
    handle.set_limit(Direction::Inbound, slow());
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
}

#[test]
fn global_change_wakes_every_sharing_shaper_until_dropped() {
    let global = GlobalLimiter::new(ShapeConfig::new());
    let mut a = Shaper::unlimited().with_global(&global);
    let mut b = Shaper::unlimited().with_global(&global);
    let (count_a, waker_a) = counting();
    let (count_b, waker_b) = counting();
    a.set_waker(&waker_a);
    b.set_waker(&waker_b);
    // A second waker replaces the first, it is not added.
    let (count_b2, waker_b2) = counting();
    b.set_waker(&waker_b2);
    global.set_limit(Direction::Outbound, slow());
    assert_eq!(count_a.0.load(Ordering::SeqCst), 1);
    assert_eq!(count_b.0.load(Ordering::SeqCst), 0);
    assert_eq!(count_b2.0.load(Ordering::SeqCst), 1);
    drop(a);
    global.set_limit(Direction::Outbound, None);
    assert_eq!(count_a.0.load(Ordering::SeqCst), 1);
    assert_eq!(count_b2.0.load(Ordering::SeqCst), 2);
}

#[test]
fn connection_passes_its_waker_to_layers_inserted_later() {
    let mut conn = Connection::new(DynStack::new(Vec::new()), RawCodec::new());
    let (count, waker) = counting();
    conn.set_waker(waker);
    let shaper = Shaper::unlimited();
    let handle = shaper.handle();
    conn.insert_layer(0, Box::new(shaper)).unwrap();
    handle.set_limit(Direction::Outbound, slow());
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
}

#[test]
fn static_stack_passes_the_waker_to_every_member() {
    let lower = Shaper::unlimited();
    let upper = Shaper::unlimited();
    let (lower_handle, upper_handle) = (lower.handle(), upper.handle());
    let mut conn = Connection::new(Stack::new((upper, lower)), RawCodec::new());
    let (count, waker) = counting();
    conn.set_waker(waker);
    lower_handle.set_limit(Direction::Inbound, slow());
    upper_handle.set_limit(Direction::Outbound, slow());
    assert_eq!(count.0.load(Ordering::SeqCst), 2);
}
