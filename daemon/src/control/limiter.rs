//! The cap on control connections: a newcomer takes the place of the oldest connection still silent, and is refused only when every connection is busy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

struct State {
    open: usize,
    next_id: u64,
    /// Connections that have not sent their request yet, oldest first.
    silent: VecDeque<(u64, Arc<Notify>)>,
}

/// Counts the open control connections.
pub(crate) struct Limiter {
    max: usize,
    state: Mutex<State>,
}

/// An admitted connection's place; given back when dropped.
pub(crate) struct Slot {
    limiter: Arc<Limiter>,
    id: u64,
    evicted: Arc<Notify>,
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
    /// (which is told to close); `None` when all `max` connections are busy.
    pub(crate) fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.state();
        // Evicted connections count until they are closed, which takes a moment: never more
        // than twice the cap at once.
        if state.open >= 2 * self.max {
            return None;
        }
        if state.open >= self.max {
            let (_, oldest) = state.silent.pop_front()?;
            oldest.notify_one();
        }
        state.open += 1;
        state.next_id += 1;
        let id = state.next_id;
        let evicted = Arc::new(Notify::new());
        state.silent.push_back((id, Arc::clone(&evicted)));
        Some(Slot {
            limiter: Arc::clone(self),
            id,
            evicted,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.state().open
    }
}

impl Slot {
    /// The connection sent its request: it is not evicted any more.
    pub(crate) fn busy(&self) {
        self.limiter.state().silent.retain(|(id, _)| *id != self.id);
    }

    /// Completes when a newcomer took this connection's place.
    pub(crate) async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.limiter.state();
        // An evicted slot still counts until its connection is closed.
        state.open = state.open.saturating_sub(1);
        state.silent.retain(|(id, _)| *id != self.id);
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
        // Full: the silent first one makes way.
        let third = limiter.admit().expect("the silent one makes way");
        tokio::time::timeout(std::time::Duration::from_secs(1), first.evicted())
            .await
            .expect("the first is told to close");
        drop(first);
        third.busy();
        // Full of busy connections: refused.
        assert!(limiter.admit().is_none());
        assert_eq!(limiter.open(), 2);
        drop(second);
        assert!(limiter.admit().is_some());
    }
}
