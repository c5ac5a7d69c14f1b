//! Whether the appliance's clock can be trusted, and setting it under dual control when it cannot (docs/SECURITY.md, "Time").
//!
//! Operator logins, sessions and certificate checks all trust the clock. A Raspberry Pi has
//! no real-time clock and the appliance no network: after a power cycle its clock restarts
//! wherever systemd's fallback puts it. With `[clock] require_trusted`, the clock is trusted
//! only when an RTC set it at boot (the kernel's `hctosys`) and it is not behind the last
//! audit record, or once two people (an operator and a custodian, or two custodians) have
//! each read the time from their own watch and typed it in. Until then logins and
//! certificate checks are refused with "clock not set". The setting is kept as an offset of
//! the appliance's clock ([`keymother_vault::clock`]); keymotherd never sets the system clock.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use keymother_vault::clock;

/// How far two witnesses' readings may lie apart, and how far back a new time may go
/// without counting as a step backwards.
pub const AGREEMENT: Duration = Duration::from_secs(120);

/// How long the first witness's reading waits for the second.
pub const PENDING_FOR: Duration = Duration::from_secs(300);

/// Where the kernel lists its real-time clocks.
pub const DEFAULT_RTC_CLASS: &str = "/sys/class/rtc";

/// The `[clock]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSettings {
    /// Refuse logins and certificate checks until the clock is trusted. Off by default (a
    /// development machine's clock is kept by NTP); on in the appliance's shipped settings.
    pub require_trusted: bool,
    /// The kernel's RTC class directory (`/sys/class/rtc`; another in tests).
    pub rtc_class: PathBuf,
}

impl Default for ClockSettings {
    fn default() -> Self {
        ClockSettings {
            require_trusted: false,
            rtc_class: PathBuf::from(DEFAULT_RTC_CLASS),
        }
    }
}

/// What vouches for the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockSource {
    /// Nothing needs to: `[clock] require_trusted = false`.
    System,
    /// This real-time clock set the system clock at boot.
    Rtc { device: String },
    /// Two people set it since keymotherd started.
    DualControl { witnesses: String, at: SystemTime },
}

/// In words, for the journal.
impl std::fmt::Display for ClockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockSource::System => {
                f.write_str("the system clock ([clock] require_trusted = false)")
            }
            ClockSource::Rtc { device } => write!(f, "set at boot by {device}"),
            ClockSource::DualControl { witnesses, .. } => write!(f, "set by {witnesses}"),
        }
    }
}

/// Whether the clock can be trusted now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockTrust {
    Trusted(ClockSource),
    /// Not trusted: why, in words.
    NotSet {
        reason: String,
    },
}

/// Who a witness is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessRole {
    Operator,
    Custodian,
}

impl std::str::FromStr for WitnessRole {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "operator" => Ok(WitnessRole::Operator),
            "custodian" => Ok(WitnessRole::Custodian),
            other => Err(format!(
                "role: {other:?} is neither \"operator\" nor \"custodian\""
            )),
        }
    }
}

impl std::fmt::Display for WitnessRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WitnessRole::Operator => "operator",
            WitnessRole::Custodian => "custodian",
        })
    }
}

/// One person's reading of the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub name: String,
    pub role: WitnessRole,
    /// The local user who sent it.
    pub peer: String,
    /// The time they read from their own watch or phone.
    pub reading: SystemTime,
    /// They mean to set the clock back.
    pub backwards: bool,
}

impl Witness {
    fn describe(&self) -> String {
        format!("{} ({}, user {})", self.name, self.role, self.peer)
    }
}

/// What a witness's reading led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockStep {
    /// The first reading: it waits for a second person until then.
    Waiting { first: String, expires_in: Duration },
    /// The clock is set: from `old` to `new`, on the word of `witnesses`.
    Set {
        old: SystemTime,
        new: SystemTime,
        offset_seconds: i64,
        witnesses: String,
    },
}

/// A reading that was not taken. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockRefusal {
    #[error("name: give your name, as the audit trail should record it")]
    NoName,
    #[error("the second reading must come from another person than {first}, who gave the first")]
    SamePerson { first: String },
    #[error("two operators cannot set the clock: one of the two must be a custodian")]
    TwoOperators,
    #[error(
        "the two readings differ by {difference} s, more than {} s: read the time again, both of you (the first reading is dropped)",
        AGREEMENT.as_secs()
    )]
    Disagree { difference: u64 },
    #[error(
        "{new} is {seconds} s before {what} ({then}): setting the clock back needs --backwards from both people"
    )]
    Backwards {
        new: String,
        seconds: u64,
        what: &'static str,
        then: String,
    },
    #[error(
        "the first reading asked to set the clock back and this one does not, or the other way round: both must say --backwards"
    )]
    BackwardsDisagree,
}

/// The first reading, waiting for the second.
#[derive(Debug, Clone)]
struct Pending {
    first: Witness,
    offset: i64,
    made: Instant,
}

/// Setting the clock under dual control, without I/O: times come in as arguments.
#[derive(Debug, Default)]
pub struct DualControl {
    pending: Option<Pending>,
}

/// Seconds from `from` to `to`, either way.
fn seconds_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(ahead) => i64::try_from(ahead.as_secs()).unwrap_or(i64::MAX),
        Err(behind) => -i64::try_from(behind.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl DualControl {
    /// Takes `witness`'s reading, given the system clock (`system`), the monotonic clock
    /// (`at`), the appliance's clock now (`appliance`) and the last audit record's time
    /// (`floor`).
    pub fn witness(
        &mut self,
        witness: Witness,
        system: SystemTime,
        at: Instant,
        appliance: SystemTime,
        floor: Option<SystemTime>,
    ) -> Result<ClockStep, ClockRefusal> {
        if witness.name.trim().is_empty() {
            return Err(ClockRefusal::NoName);
        }
        let offset = seconds_between(system, witness.reading);
        if self
            .pending
            .as_ref()
            .is_some_and(|pending| at.duration_since(pending.made) > PENDING_FOR)
        {
            self.pending = None;
        }
        let Some(pending) = self.pending.take() else {
            check_forward(witness.reading, witness.backwards, appliance, floor)?;
            let first = witness.describe();
            self.pending = Some(Pending {
                first: witness,
                offset,
                made: at,
            });
            return Ok(ClockStep::Waiting {
                first,
                expires_in: PENDING_FOR,
            });
        };
        let refused = |refusal: ClockRefusal, pending: Pending, this: &mut Self| {
            // Disagreeing readings drop the first; the other refusals keep it for someone else.
            if !matches!(refusal, ClockRefusal::Disagree { .. }) {
                this.pending = Some(pending);
            }
            Err(refusal)
        };
        if pending
            .first
            .name
            .trim()
            .eq_ignore_ascii_case(witness.name.trim())
        {
            let first = pending.first.name.clone();
            return refused(ClockRefusal::SamePerson { first }, pending, self);
        }
        if pending.first.role == WitnessRole::Operator && witness.role == WitnessRole::Operator {
            return refused(ClockRefusal::TwoOperators, pending, self);
        }
        if pending.first.backwards != witness.backwards {
            return refused(ClockRefusal::BackwardsDisagree, pending, self);
        }
        let difference = pending.offset.abs_diff(offset);
        if difference > AGREEMENT.as_secs() {
            return refused(ClockRefusal::Disagree { difference }, pending, self);
        }
        let offset_seconds = pending.offset + (offset - pending.offset) / 2;
        let new = clock::shifted(system, offset_seconds);
        if let Err(refusal) = check_forward(new, witness.backwards, appliance, floor) {
            return refused(refusal, pending, self);
        }
        Ok(ClockStep::Set {
            old: appliance,
            new,
            offset_seconds,
            witnesses: format!("{} and {}", pending.first.describe(), witness.describe()),
        })
    }
}

/// `new` may be set without `--backwards`: not more than [`AGREEMENT`] before the
/// appliance's clock, and not before the last audit record.
fn check_forward(
    new: SystemTime,
    backwards: bool,
    appliance: SystemTime,
    floor: Option<SystemTime>,
) -> Result<(), ClockRefusal> {
    if backwards {
        return Ok(());
    }
    let before = |then: SystemTime, slack: Duration, what: &'static str| {
        let seconds = then.duration_since(new).unwrap_or_default();
        if seconds > slack {
            Err(ClockRefusal::Backwards {
                new: rfc3339(new),
                seconds: seconds.as_secs(),
                what,
                then: rfc3339(then),
            })
        } else {
            Ok(())
        }
    };
    before(appliance, AGREEMENT, "the appliance's clock")?;
    if let Some(floor) = floor {
        before(floor, Duration::ZERO, "the last audit record")?;
    }
    Ok(())
}

/// The RTC that set the system clock at boot, if any: `rtcN (name)` of the first device in
/// `rtc_class` whose `hctosys` is 1.
fn rtc_that_set_the_clock(rtc_class: &Path) -> Option<String> {
    let mut devices: Vec<_> = std::fs::read_dir(rtc_class)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    devices.sort();
    devices.into_iter().find_map(|device| {
        let hctosys = std::fs::read_to_string(device.join("hctosys")).ok()?;
        if hctosys.trim() != "1" {
            return None;
        }
        let node = device.file_name()?.to_string_lossy().into_owned();
        let name = std::fs::read_to_string(device.join("name")).unwrap_or_default();
        Some(match name.trim() {
            "" => node,
            name => format!("{node} ({name})"),
        })
    })
}

/// Why the clock is not trusted at start, or what vouches for it.
pub fn detect(settings: &ClockSettings, now: SystemTime, floor: Option<SystemTime>) -> ClockTrust {
    if !settings.require_trusted {
        return ClockTrust::Trusted(ClockSource::System);
    }
    let Some(device) = rtc_that_set_the_clock(&settings.rtc_class) else {
        return ClockTrust::NotSet {
            reason: "no real-time clock set the time at boot".to_owned(),
        };
    };
    if let Some(floor) = floor.filter(|floor| *floor > now) {
        return ClockTrust::NotSet {
            reason: format!(
                "{device} says {}, before the last audit record ({}): its battery may be flat",
                rfc3339(now),
                rfc3339(floor)
            ),
        };
    }
    ClockTrust::Trusted(ClockSource::Rtc { device })
}

/// The appliance's clock: whether it is trusted, and the dual control that sets it.
#[derive(Debug)]
pub struct Clock {
    required: bool,
    trust: Mutex<ClockTrust>,
    dual_control: Mutex<DualControl>,
}

/// What [`Clock::check`] refuses with, before the reason.
pub const CLOCK_NOT_SET: &str = "clock not set";

/// "clock not set: `why`; what to do": the words of every refusal for want of a clock.
pub fn not_set_words(why: &str) -> String {
    format!("{CLOCK_NOT_SET}: {why}; two people set it with keymother clock set")
}

/// `at` as RFC 3339, UTC, whole seconds.
pub fn rfc3339(at: SystemTime) -> String {
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(i64::MAX))
        .ok()
        .and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("Unix {seconds}"))
}

impl Clock {
    pub fn new(settings: &ClockSettings, trust: ClockTrust) -> Clock {
        Clock {
            required: settings.require_trusted,
            trust: Mutex::new(trust),
            dual_control: Mutex::new(DualControl::default()),
        }
    }

    /// `[clock] require_trusted`.
    pub fn required(&self) -> bool {
        self.required
    }

    pub fn trust(&self) -> ClockTrust {
        self.trust
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Why the clock may not be trusted now: `Some` only while it must be and is not.
    pub fn not_set(&self) -> Option<String> {
        match self.trust() {
            ClockTrust::NotSet { reason } if self.required => Some(reason),
            _ => None,
        }
    }

    /// `Err` with "clock not set: why; what to do" while the clock must be trusted and is not.
    pub fn check(&self) -> Result<(), String> {
        match self.not_set() {
            Some(why) => Err(not_set_words(&why)),
            None => Ok(()),
        }
    }

    /// Takes a witness's reading; once two agree, the appliance's clock is set and trusted.
    /// The caller audits a [`ClockStep::Set`].
    pub fn witness(
        &self,
        witness: Witness,
        floor: Option<SystemTime>,
    ) -> Result<ClockStep, ClockRefusal> {
        let mut dual_control = self
            .dual_control
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let step = dual_control.witness(
            witness,
            SystemTime::now(),
            Instant::now(),
            clock::now(),
            floor,
        )?;
        if let ClockStep::Set {
            offset_seconds,
            witnesses,
            new,
            ..
        } = &step
        {
            clock::set_offset_seconds(*offset_seconds);
            *self.trust.lock().unwrap_or_else(PoisonError::into_inner) =
                ClockTrust::Trusted(ClockSource::DualControl {
                    witnesses: witnesses.clone(),
                    at: *new,
                });
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn witness(name: &str, role: WitnessRole, reading: SystemTime) -> Witness {
        Witness {
            name: name.to_owned(),
            role,
            peer: "root".to_owned(),
            reading,
            backwards: false,
        }
    }

    /// A Pi booted at the built-in epoch (day 100) when it is really day 340.
    struct Bench {
        control: DualControl,
        start: Instant,
    }

    impl Bench {
        fn new() -> Bench {
            Bench {
                control: DualControl::default(),
                start: Instant::now(),
            }
        }

        /// A reading `after` seconds into the test, the system clock still at day 100.
        fn read(&mut self, who: Witness, after: u64) -> Result<ClockStep, ClockRefusal> {
            let system = at(100 * DAY + after);
            self.control.witness(
                who,
                system,
                self.start + Duration::from_secs(after),
                system,
                Some(at(99 * DAY)),
            )
        }
    }

    #[test]
    fn a_custodian_and_an_operator_who_agree_set_the_clock_forward() {
        let mut bench = Bench::new();
        let first = bench.read(witness("Alice", WitnessRole::Custodian, at(340 * DAY)), 0);
        assert!(matches!(first, Ok(ClockStep::Waiting { .. })), "{first:?}");
        // Bob reads 30 s later, and his watch is 20 s ahead of hers.
        let step = bench
            .read(
                witness("Bob", WitnessRole::Operator, at(340 * DAY + 50)),
                30,
            )
            .unwrap();
        let ClockStep::Set {
            old,
            new,
            offset_seconds,
            witnesses,
        } = step
        else {
            panic!("not set: {step:?}");
        };
        assert_eq!(old, at(100 * DAY + 30));
        // Halfway between the two readings, at the second one's moment.
        assert_eq!(new, at(340 * DAY + 40));
        assert_eq!(offset_seconds, (240 * DAY + 10) as i64);
        assert!(witnesses.contains("Alice (custodian") && witnesses.contains("Bob (operator"));
    }

    #[test]
    fn one_person_two_operators_or_disagreeing_readings_set_nothing() {
        let mut bench = Bench::new();
        bench
            .read(witness("Alice", WitnessRole::Operator, at(340 * DAY)), 0)
            .unwrap();
        assert_eq!(
            bench.read(witness("alice ", WitnessRole::Custodian, at(340 * DAY)), 5),
            Err(ClockRefusal::SamePerson {
                first: "Alice".to_owned()
            })
        );
        assert_eq!(
            bench.read(witness("Bob", WitnessRole::Operator, at(340 * DAY)), 5),
            Err(ClockRefusal::TwoOperators)
        );
        assert_eq!(
            bench.read(
                witness("Carol", WitnessRole::Custodian, at(340 * DAY + 500)),
                5
            ),
            Err(ClockRefusal::Disagree { difference: 495 })
        );
        // The disagreement dropped the first reading: Carol's next one starts anew.
        let step = bench.read(witness("Carol", WitnessRole::Custodian, at(340 * DAY)), 6);
        assert!(matches!(step, Ok(ClockStep::Waiting { .. })), "{step:?}");
        assert_eq!(
            bench.read(witness("", WitnessRole::Custodian, at(340 * DAY)), 7),
            Err(ClockRefusal::NoName)
        );
    }

    #[test]
    fn a_first_reading_left_alone_expires() {
        let mut bench = Bench::new();
        bench
            .read(witness("Alice", WitnessRole::Custodian, at(340 * DAY)), 0)
            .unwrap();
        let late = PENDING_FOR.as_secs() + 1;
        let step = bench.read(
            witness("Bob", WitnessRole::Custodian, at(340 * DAY + late)),
            late,
        );
        assert!(matches!(step, Ok(ClockStep::Waiting { .. })), "{step:?}");
    }

    #[test]
    fn a_step_backwards_needs_both_to_say_so() {
        let mut bench = Bench::new();
        // Before the last audit record (day 99): refused without --backwards.
        let refused = bench.read(witness("Alice", WitnessRole::Custodian, at(50 * DAY)), 0);
        assert!(
            matches!(
                refused,
                Err(ClockRefusal::Backwards {
                    what: "the appliance's clock",
                    ..
                })
            ),
            "{refused:?}"
        );
        let mut alice = witness("Alice", WitnessRole::Custodian, at(50 * DAY));
        alice.backwards = true;
        bench.read(alice, 0).unwrap();
        assert_eq!(
            bench.read(witness("Bob", WitnessRole::Custodian, at(50 * DAY)), 1),
            Err(ClockRefusal::BackwardsDisagree)
        );
        let mut bob = witness("Bob", WitnessRole::Custodian, at(50 * DAY + 1));
        bob.backwards = true;
        let step = bench.read(bob, 1).unwrap();
        assert!(matches!(step, ClockStep::Set { .. }), "{step:?}");
    }

    #[test]
    fn the_clock_is_trusted_from_an_rtc_that_set_it_and_is_not_behind_the_audit_trail() {
        let directory = tempfile::tempdir().unwrap();
        let settings = ClockSettings {
            require_trusted: true,
            rtc_class: directory.path().to_path_buf(),
        };
        let now = at(340 * DAY);
        assert!(matches!(
            detect(&settings, now, None),
            ClockTrust::NotSet { .. }
        ));
        let rtc = directory.path().join("rtc0");
        std::fs::create_dir(&rtc).unwrap();
        std::fs::write(rtc.join("hctosys"), "0\n").unwrap();
        std::fs::write(rtc.join("name"), "rtc-ds1307 1-0068\n").unwrap();
        assert!(matches!(
            detect(&settings, now, None),
            ClockTrust::NotSet { .. }
        ));
        std::fs::write(rtc.join("hctosys"), "1\n").unwrap();
        assert_eq!(
            detect(&settings, now, Some(at(339 * DAY))),
            ClockTrust::Trusted(ClockSource::Rtc {
                device: "rtc0 (rtc-ds1307 1-0068)".to_owned()
            })
        );
        let behind = detect(&settings, now, Some(at(341 * DAY)));
        assert!(
            matches!(&behind, ClockTrust::NotSet { reason } if reason.contains("before the last audit record")),
            "{behind:?}"
        );
        let relaxed = ClockSettings::default();
        assert_eq!(
            detect(&relaxed, now, Some(at(341 * DAY))),
            ClockTrust::Trusted(ClockSource::System)
        );
    }
}
