//! The cap on control connections: a newcomer takes the place of the oldest connection still silent, and is refused only when every connection is busy.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// What the limiter and a connection's task share about one place.
struct Place {
    id: u64,
    /// Told when a newcomer took this place.
    evicted: Notify,
    /// Whether this place still counts as open: false once evicted or given back.
    counted: AtomicBool,
}

struct State {
    open: usize,
    next_id: u64,
    /// Places whose connection has not sent its request yet, oldest first.
    silent: VecDeque<Arc<Place>>,
}

/// Counts the open control connections.
pub(crate) struct Limiter {
    max: usize,
    state: Mutex<State>,
}

/// An admitted connection's place; given back when dropped.
pub(crate) struct Slot {
    limiter: Arc<Limiter>,
    place: Arc<Place>,
}

impl Limiter {
    pub(crate) fn new(max: usize) -> Arc<Limiter> {
        Arc::new(Limiter {
            max,
            state: Mutex::new(State {
                open: 0,
                next_id: 0,
                silent: VecDeque::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a new connection: free, or taken from the oldest silent connection
    /// (which is told to close, and stops counting at once, before its task has run);
    /// `None` when all `max` connections are busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.state();
        if state.open >= self.max {
            let oldest = state.silent.pop_front()?;
            if oldest.counted.swap(false, Ordering::AcqRel) {
                state.open -= 1;
            }
            oldest.evicted.notify_one();
        }
        state.open += 1;
        state.next_id += 1;
        let place = Arc::new(Place {
            id: state.next_id,
            evicted: Notify::new(),
            counted: AtomicBool::new(true),
        });
        state.silent.push_back(Arc::clone(&place));
        Some(Slot {
            limiter: Arc::clone(self),
            place,
        })
    }

    /// Connections that count now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.state().open
    }
}

impl Slot {
    /// The connection sent its request: it is not evicted any more.
    pub(crate) fn busy(&self) {
        let id = self.place.id;
        self.limiter.state().silent.retain(|place| place.id != id);
    }

    /// Completes when a newcomer took this connection's place.
    pub(crate) async fn evicted(&self) {
        self.place.evicted.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        if self.place.counted.swap(false, Ordering::AcqRel) {
            state.open -= 1;
        }
        let id = self.place.id;
        state.silent.retain(|place| place.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newcomer_evicts_the_oldest_silent_connection_and_busy_ones_are_never_evicted() {
        let limiter = Limiter::new(2);
        let first = limiter.admit().expect("room");
        let second = limiter.admit().expect("room");
        second.busy();
        // Full: the silent first one makes way, and stops counting before it is closed.
        let third = limiter.admit().expect("the silent one makes way");
        assert_eq!(limiter.open(), 2);
        tokio::time::timeout(std::time::Duration::from_secs(1), first.evicted())
            .await
            .expect("the first is told to close");
        drop(first);
        assert_eq!(limiter.open(), 2);
        third.busy();
        // Full of busy connections: refused.
        assert!(limiter.admit().is_none());
        drop(second);
        assert_eq!(limiter.open(), 1);
        assert!(limiter.admit().is_some());
    }

    #[tokio::test]
    async fn a_flood_of_silent_connections_never_fills_the_cap() {
        let limiter = Limiter::new(4);
        // Nobody closes the evicted ones: the newcomers are admitted all the same.
        let slots: Vec<Slot> = (0..1_000)
            .map(|_| limiter.admit().expect("admitted"))
            .collect();
        assert_eq!(limiter.open(), 4);
        let speaker = limiter.admit().expect("admitted");
        speaker.busy();
        drop(slots);
        assert_eq!(limiter.open(), 1);
    }
}
