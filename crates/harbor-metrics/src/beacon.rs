//! Readiness beacons: a long-running part of the broker (the commit thread, the notifier, the
//! historian) holds a [`BeaconGuard`] while it runs. The guard lights its beacon when taken
//! and puts it out when dropped, which also happens when the task panics or is aborted, so a
//! part that died is seen as down without anyone having to report it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Where a part of the broker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeaconState {
    /// Not running yet.
    Starting,
    /// Running.
    Up,
    /// Was running and stopped.
    Down,
}

impl BeaconState {
    pub fn as_str(self) -> &'static str {
        match self {
            BeaconState::Starting => "starting",
            BeaconState::Up => "up",
            BeaconState::Down => "down",
        }
    }
}

/// The state of one part, shared by whoever runs it and whoever asks. Starts as
/// [`BeaconState::Starting`].
#[derive(Debug, Clone, Default)]
pub struct Beacon(Arc<Holders>);

#[derive(Debug, Default)]
struct Holders {
    /// Guards alive, or [`DOWN`] once one was dropped.
    alive: AtomicU8,
}

const DOWN: u8 = u8::MAX;

impl Beacon {
    pub fn new() -> Self {
        Beacon::default()
    }

    /// A beacon that is up for good, for a part that cannot stop on its own.
    pub fn always_up() -> Self {
        let b = Beacon::new();
        std::mem::forget(b.hold());
        b
    }

    /// Lights the beacon for as long as the guard lives. A part made of several loops takes
    /// one guard per loop: when any of them stops, the part is down, and stays down.
    pub fn hold(&self) -> BeaconGuard {
        let _ = self
            .0
            .alive
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| match n {
                DOWN => None,
                n => Some(n.saturating_add(1).min(DOWN - 1)),
            });
        BeaconGuard(self.clone())
    }

    pub fn state(&self) -> BeaconState {
        match self.0.alive.load(Ordering::Acquire) {
            0 => BeaconState::Starting,
            DOWN => BeaconState::Down,
            _ => BeaconState::Up,
        }
    }
}

/// Keeps a [`Beacon`] lit; see [`Beacon::hold`].
#[derive(Debug)]
pub struct BeaconGuard(Beacon);

impl Drop for BeaconGuard {
    fn drop(&mut self) {
        self.0 .0.alive.store(DOWN, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beacon_is_up_while_held_and_down_for_good_after() {
        let b = Beacon::new();
        assert_eq!(b.state(), BeaconState::Starting);
        let first = b.hold();
        let second = b.hold();
        assert_eq!(b.state(), BeaconState::Up);
        drop(second);
        assert_eq!(b.state(), BeaconState::Down, "one loop of two stopped");
        drop(first);
        let _again = b.hold();
        assert_eq!(b.state(), BeaconState::Down, "a stopped part stays down");
    }

    #[test]
    fn a_panicking_holder_puts_its_beacon_out() {
        let b = Beacon::new();
        let held = b.clone();
        let r = std::thread::spawn(move || {
            let _g = held.hold();
            panic!("the part died");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(b.state(), BeaconState::Down);
    }
}
