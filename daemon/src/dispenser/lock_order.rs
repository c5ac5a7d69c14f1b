//! The lock order's check: each guard of the dispenser's locks carries its [`Rank`], and in debug builds taking a lock out of order panics.

use std::ops::{Deref, DerefMut};

use super::Rank;

#[cfg(debug_assertions)]
thread_local! {
    /// The ranks of the dispenser's locks this thread holds, one bit each. Guards of std
    /// locks are not `Send`, so a lock is released on the thread that took it.
    static HELD: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// A guard of one of the dispenser's locks, counted as held by this thread until dropped.
pub(super) struct Ordered<G> {
    guard: G,
    rank: Rank,
}

impl<G> Ordered<G> {
    /// Takes a lock of `rank` with `lock`. In debug builds, first panics if this thread holds
    /// a lock of the same or a later rank: the order would be broken.
    pub(super) fn take(rank: Rank, lock: impl FnOnce() -> G) -> Ordered<G> {
        taking(rank);
        let guard = lock();
        held(rank);
        Ordered { guard, rank }
    }
}

impl<G> Drop for Ordered<G> {
    fn drop(&mut self) {
        released(self.rank);
    }
}

impl<G: Deref> Deref for Ordered<G> {
    type Target = G::Target;

    fn deref(&self) -> &G::Target {
        &self.guard
    }
}

impl<G: DerefMut> DerefMut for Ordered<G> {
    fn deref_mut(&mut self) -> &mut G::Target {
        &mut self.guard
    }
}

/// The bit of `rank` in [`HELD`].
#[cfg(debug_assertions)]
fn bit(rank: Rank) -> u8 {
    1 << rank as u8
}

/// Checks that no lock of `rank` or a later one is held by this thread.
#[cfg(debug_assertions)]
fn taking(rank: Rank) {
    let held = HELD.with(std::cell::Cell::get);
    debug_assert!(
        held >> rank as u8 == 0,
        "the dispenser's lock order is broken: a {rank:?} lock taken while holding the locks \
         of ranks {held:#06b} (see dispenser::Rank)"
    );
}

#[cfg(debug_assertions)]
fn held(rank: Rank) {
    HELD.with(|held| held.set(held.get() | bit(rank)));
}

#[cfg(debug_assertions)]
fn released(rank: Rank) {
    HELD.with(|held| held.set(held.get() & !bit(rank)));
}

#[cfg(not(debug_assertions))]
fn taking(_rank: Rank) {}

#[cfg(not(debug_assertions))]
fn held(_rank: Rank) {}

#[cfg(not(debug_assertions))]
fn released(_rank: Rank) {}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn locks_taken_in_the_order_are_let_through() {
        let keys = Ordered::take(Rank::Keys, || ());
        let sessions = Ordered::take(Rank::Sessions, || ());
        let vault = Ordered::take(Rank::Vault, || ());
        drop(vault);
        let vault_again = Ordered::take(Rank::Vault, || ());
        let leaf = Ordered::take(Rank::Leaf, || ());
        drop((leaf, vault_again, sessions, keys));
        // All released: any lock may be taken first again.
        drop(Ordered::take(Rank::Vault, || ()));
        drop(Ordered::take(Rank::Keys, || ()));
    }

    #[test]
    #[should_panic(expected = "lock order is broken")]
    fn the_sessions_under_the_vault_panic() {
        let _vault = Ordered::take(Rank::Vault, || ());
        let _sessions = Ordered::take(Rank::Sessions, || ());
    }

    #[test]
    #[should_panic(expected = "lock order is broken")]
    fn a_lock_under_a_leaf_panics() {
        let _tamper = Ordered::take(Rank::Leaf, || ());
        let _trust = Ordered::take(Rank::Leaf, || ());
    }

    #[test]
    #[should_panic(expected = "lock order is broken")]
    fn a_lock_taken_twice_panics() {
        let _keys = Ordered::take(Rank::Keys, || ());
        let _again = Ordered::take(Rank::Keys, || ());
    }
}
