//! The appliance's clock: the system clock plus the offset set under dual control when nothing else vouches for the time (docs/SECURITY.md, "Time").
//!
//! keymotherd may not set the system clock (the unit's `ProtectClock=yes`, no capability),
//! and an appliance without a real-time clock boots with whatever time systemd falls back
//! to. When custodians set the time, keymotherd keeps the difference here, for its own use
//! only: audit rows, SMN rows, login windows, sessions and certificate validity all read
//! [`now`]. The offset lives in memory: after a restart the clock must be vouched for again.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

/// Seconds to add to the system clock.
static OFFSET_SECONDS: AtomicI64 = AtomicI64::new(0);

/// The appliance's time now.
pub fn now() -> SystemTime {
    shifted(SystemTime::now(), OFFSET_SECONDS.load(Ordering::Acquire))
}

/// The offset in force, in seconds.
pub fn offset_seconds() -> i64 {
    OFFSET_SECONDS.load(Ordering::Acquire)
}

/// From now on the appliance's time is the system clock plus `seconds`.
pub fn set_offset_seconds(seconds: i64) {
    OFFSET_SECONDS.store(seconds, Ordering::Release);
}

/// `time` moved by `seconds`, either way.
pub fn shifted(time: SystemTime, seconds: i64) -> SystemTime {
    let step = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        time.checked_add(step).unwrap_or(time)
    } else {
        time.checked_sub(step).unwrap_or(time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_moves_the_appliance_clock_both_ways() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(shifted(base, 60), base + Duration::from_secs(60));
        assert_eq!(shifted(base, -60), base - Duration::from_secs(60));
        assert_eq!(shifted(base, 0), base);
    }
}
