//! Operator sessions (source document 003): single-use login challenges, the check of a signed answer, and the one operator session of the bench that keys are dispensed under.
//!
//! Sans-IO: every method takes the time, none logs or touches the vault. What happened comes
//! back as [`OperatorEvent`]s, which the dispenser writes to the audit chain and the journal.
//!
//! - A challenge is 32 random bytes, usable once, for the login window after it was issued;
//!   at most [`MAX_OUTSTANDING_CHALLENGES`] are outstanding (the oldest is dropped for a new
//!   one). Any login attempt consumes the challenge it names, whatever the outcome, so a
//!   replayed answer finds its challenge gone.
//! - One session at a time: the bench has one operator. A new login replaces the session
//!   before it (which is recorded as ended). A session ends on logout, when its time is up
//!   (the session limit or the certificate's notAfter, whichever comes first), or when
//!   everything is ended at once (zeroize, tamper).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use keymother_pki::login::{CHALLENGE_LENGTH, Login, LoginResponse, verify_login_chain};
use keymother_vault::AuditEvent;

use crate::config::OperatorSettings;
use crate::trust::Trust;

/// Challenges outstanding at once: far more than operators logging in at one bench need.
pub const MAX_OUTSTANDING_CHALLENGES: usize = 16;

/// A login challenge as handed to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub bytes: [u8; CHALLENGE_LENGTH],
    /// After this the challenge is refused.
    pub expires_at: SystemTime,
}

struct Outstanding {
    bytes: [u8; CHALLENGE_LENGTH],
    issued_at: SystemTime,
}

/// The operator logged in at the bench.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    /// The certificate's common name (or its whole subject when it has none): what injection
    /// and control records name.
    pub name: String,
    /// The certificate's subject (RFC 4514).
    pub subject: String,
    /// The certificate's serial number, upper-case hex.
    pub serial: String,
    pub since: SystemTime,
    /// The session ends here: `since` + the session limit, or the certificate's notAfter if
    /// earlier.
    pub until: SystemTime,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    LoggedOut,
    /// The session limit or the certificate's notAfter was reached.
    Expired,
    /// Another login opened a new session.
    Replaced {
        by: String,
    },
    /// Everything was ended at once (zeroize, tamper): the text says why.
    Ended(String),
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::LoggedOut => f.write_str("logged out"),
            EndReason::Expired => f.write_str("expired"),
            EndReason::Replaced { by } => write!(f, "replaced by a login of {by}"),
            EndReason::Ended(why) => f.write_str(why),
        }
    }
}

/// Why a login was refused. Nothing changed, except that the challenge named is used up.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    #[error("operator login is not possible: no operator CA is configured ([pki] operator_ca)")]
    NotConfigured,
    #[error(
        "unknown or already used login challenge: each challenge works once; ask for a new one (keymother operator login does)"
    )]
    UnknownChallenge,
    #[error(
        "the login challenge expired: it was issued {age} s ago and is usable for {window} s; ask for a new one"
    )]
    ChallengeExpired { age: u64, window: u64 },
    #[error(transparent)]
    Refused(#[from] keymother_pki::login::LoginError),
    #[error("no login challenge could be made: the random source failed: {0}")]
    Random(String),
    #[error(
        "the login could not be recorded in the audit trail, so no session was opened (see the journal)"
    )]
    NotAudited,
    /// The clock is not trusted: the words of [`crate::clock::Clock::check`].
    #[error("{0}")]
    ClockNotSet(String),
}

/// Something to record: in the audit chain and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorEvent {
    LoggedIn(OperatorSession),
    LoginRefused {
        reason: String,
    },
    Ended {
        session: OperatorSession,
        reason: EndReason,
    },
}

impl OperatorEvent {
    /// The audit row; `peer` is the local user of the control socket who asked (`None` when
    /// the appliance acted on its own: an expiry).
    pub fn audit(&self, peer: Option<&str>) -> AuditEvent {
        match self {
            OperatorEvent::LoggedIn(session) => AuditEvent::Login {
                operator: session.name.clone(),
                subject: session.subject.clone(),
                serial: session.serial.clone(),
                until: rfc3339(session.until),
            },
            OperatorEvent::LoginRefused { reason } => AuditEvent::LoginRefused {
                peer: peer.unwrap_or("unknown").to_owned(),
                reason: reason.clone(),
            },
            OperatorEvent::Ended { session, reason } => AuditEvent::Logout {
                operator: session.name.clone(),
                reason: reason.to_string(),
            },
        }
    }

    /// Writes the journal line (structured fields; never anything secret: there is nothing
    /// secret in a login).
    pub fn log(&self, peer: Option<&str>) {
        let peer = peer.unwrap_or("system");
        match self {
            OperatorEvent::LoggedIn(session) => log::info!(
                event = "login", operator = session.name.as_str(),
                serial = session.serial.as_str(), peer = peer;
                "operator {} logged in (certificate serial {}, {}) until {}",
                session.name, session.serial, session.subject, rfc3339(session.until)
            ),
            OperatorEvent::LoginRefused { reason } => log::warn!(
                event = "login-refused", peer = peer;
                "operator login refused: {reason}"
            ),
            OperatorEvent::Ended { session, reason } => log::info!(
                event = "logout", operator = session.name.as_str(),
                serial = session.serial.as_str(), reason = reason.to_string().as_str();
                "operator session of {} ended: {reason}", session.name
            ),
        }
    }
}

/// Challenges and the session. Owned by the dispenser behind a lock.
pub struct Sessions {
    device_id: String,
    settings: OperatorSettings,
    outstanding: VecDeque<Outstanding>,
    session: Option<OperatorSession>,
}

impl Sessions {
    pub fn new(device_id: &str, settings: OperatorSettings) -> Sessions {
        Sessions {
            device_id: device_id.to_owned(),
            settings,
            outstanding: VecDeque::new(),
            session: None,
        }
    }

    /// Whether dispensing and some control actions need a session.
    pub fn required(&self) -> bool {
        self.settings.require
    }

    /// The login window.
    pub fn window(&self) -> Duration {
        self.settings.login_window
    }

    /// A fresh challenge from the operating system's random source.
    pub fn challenge(&mut self, now: SystemTime) -> Result<Challenge, getrandom::Error> {
        let mut bytes = [0u8; CHALLENGE_LENGTH];
        getrandom::fill(&mut bytes)?;
        Ok(self.challenge_with(bytes, now))
    }

    /// Issues `bytes` as a challenge (tests choose them; the daemon uses [`Sessions::challenge`]).
    pub fn challenge_with(&mut self, bytes: [u8; CHALLENGE_LENGTH], now: SystemTime) -> Challenge {
        self.forget_stale_challenges(now);
        while self.outstanding.len() >= MAX_OUTSTANDING_CHALLENGES {
            self.outstanding.pop_front();
        }
        self.outstanding.push_back(Outstanding {
            bytes,
            issued_at: now,
        });
        Challenge {
            bytes,
            expires_at: now + self.settings.login_window,
        }
    }

    fn forget_stale_challenges(&mut self, now: SystemTime) {
        let window = self.settings.login_window;
        self.outstanding
            .retain(|challenge| challenge.issued_at + window >= now);
    }

    /// Checks a login answer and, when it holds, opens the session (ending the one before).
    /// The challenge it names is used up whatever the outcome. The events say what to record.
    pub fn login(
        &mut self,
        trust: Option<&Trust>,
        response: &LoginResponse,
        now: SystemTime,
    ) -> (Result<OperatorSession, LoginFailure>, Vec<OperatorEvent>) {
        let outcome = self.check(trust, response, now);
        let mut events = Vec::new();
        match &outcome {
            Ok(session) => {
                if let Some(previous) = self.session.replace(session.clone()) {
                    events.push(OperatorEvent::Ended {
                        session: previous,
                        reason: EndReason::Replaced {
                            by: session.name.clone(),
                        },
                    });
                }
                events.push(OperatorEvent::LoggedIn(session.clone()));
            }
            Err(failure) => events.push(OperatorEvent::LoginRefused {
                reason: failure.to_string(),
            }),
        }
        (outcome, events)
    }

    fn check(
        &mut self,
        trust: Option<&Trust>,
        response: &LoginResponse,
        now: SystemTime,
    ) -> Result<OperatorSession, LoginFailure> {
        let position = self
            .outstanding
            .iter()
            .position(|challenge| challenge.bytes == response.challenge)
            .ok_or(LoginFailure::UnknownChallenge)?;
        // Used up here, before anything else is looked at: a second attempt with the same
        // challenge (a replay, or a retry after a refusal) finds it gone.
        let issued = self
            .outstanding
            .remove(position)
            .ok_or(LoginFailure::UnknownChallenge)?;
        let window = self.settings.login_window;
        let age = now
            .duration_since(issued.issued_at)
            .unwrap_or(Duration::ZERO);
        if age > window {
            return Err(LoginFailure::ChallengeExpired {
                age: age.as_secs(),
                window: window.as_secs(),
            });
        }
        let trust = trust.ok_or(LoginFailure::NotConfigured)?;
        let login = Login {
            device_id: &self.device_id,
            challenge: &issued.bytes,
            now,
            window,
        };
        let operator = verify_login_chain(
            &trust.anchors,
            &trust.operator_crls,
            &trust.operator_intermediates,
            &login,
            response,
        )?;
        let until = (now + self.settings.session_limit).min(operator.not_after);
        Ok(OperatorSession {
            name: operator.name,
            subject: operator.subject,
            serial: operator.serial,
            since: now,
            until,
        })
    }

    /// The session open at `now`, if any (one whose time is up counts as ended; see
    /// [`Sessions::expire`] to record that).
    pub fn current(&self, now: SystemTime) -> Option<&OperatorSession> {
        self.session.as_ref().filter(|session| now < session.until)
    }

    /// Ends the session on the operator's request.
    pub fn logout(&mut self) -> Option<OperatorEvent> {
        self.session.take().map(|session| OperatorEvent::Ended {
            session,
            reason: EndReason::LoggedOut,
        })
    }

    /// Ends the session if its time is up at `now`.
    pub fn expire(&mut self, now: SystemTime) -> Option<OperatorEvent> {
        if self
            .session
            .as_ref()
            .is_some_and(|session| now >= session.until)
        {
            return self.session.take().map(|session| OperatorEvent::Ended {
                session,
                reason: EndReason::Expired,
            });
        }
        None
    }

    /// When the open session ends, to wake up for its expiry.
    pub fn next_expiry(&self) -> Option<SystemTime> {
        self.session.as_ref().map(|session| session.until)
    }

    /// Ends the session and forgets every outstanding challenge (zeroize, tamper).
    pub fn end_all(&mut self, reason: &str) -> Option<OperatorEvent> {
        self.outstanding.clear();
        self.session.take().map(|session| OperatorEvent::Ended {
            session,
            reason: EndReason::Ended(reason.to_owned()),
        })
    }
}

pub use crate::clock::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn sessions(window: u64) -> Sessions {
        Sessions::new(
            "KM-TEST-0001",
            OperatorSettings {
                require: true,
                login_window: Duration::from_secs(window),
                session_limit: Duration::from_secs(3600),
            },
        )
    }

    fn answer(challenge: [u8; CHALLENGE_LENGTH]) -> LoginResponse {
        LoginResponse {
            certificate: Vec::new(),
            challenge,
            signed_at: 0,
            signature: Vec::new(),
            intermediates: Vec::new(),
        }
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_900_000_000 + seconds)
    }

    /// Without trust anchors every check after the challenge's fails with NotConfigured, so
    /// these tests see the challenge bookkeeping alone.
    fn attempt(sessions: &mut Sessions, challenge: [u8; 32], now: SystemTime) -> String {
        let (outcome, events) = sessions.login(None, &answer(challenge), now);
        let failure = outcome.unwrap_err().to_string();
        assert_eq!(
            events,
            [OperatorEvent::LoginRefused {
                reason: failure.clone()
            }]
        );
        failure
    }

    #[test]
    fn a_challenge_is_used_up_by_any_attempt() {
        let mut sessions = sessions(120);
        let issued = sessions.challenge(at(0)).unwrap();
        assert_eq!(issued.expires_at, at(120));
        assert!(
            attempt(&mut sessions, issued.bytes, at(1)).contains("no operator CA is configured")
        );
        assert!(attempt(&mut sessions, issued.bytes, at(2)).contains("unknown or already used"));
        assert!(attempt(&mut sessions, [7; 32], at(2)).contains("unknown or already used"));
    }

    #[test]
    fn a_challenge_expires_with_the_login_window() {
        let mut sessions = sessions(60);
        let first = sessions.challenge_with([1; 32], at(0));
        let second = sessions.challenge_with([2; 32], at(0));
        assert!(
            attempt(&mut sessions, first.bytes, at(61))
                .contains("issued 61 s ago and is usable for 60 s")
        );
        // Stale challenges are forgotten when new ones are issued.
        sessions.challenge_with([3; 32], at(200));
        assert!(attempt(&mut sessions, second.bytes, at(200)).contains("unknown or already used"));
    }

    #[test]
    fn outstanding_challenges_are_bounded_oldest_first() {
        let mut sessions = sessions(120);
        for number in 0..=MAX_OUTSTANDING_CHALLENGES {
            sessions.challenge_with([number as u8; 32], at(0));
        }
        assert!(attempt(&mut sessions, [0; 32], at(1)).contains("unknown or already used"));
        assert!(attempt(&mut sessions, [1; 32], at(1)).contains("no operator CA is configured"));
        assert!(
            attempt(&mut sessions, [MAX_OUTSTANDING_CHALLENGES as u8; 32], at(1))
                .contains("no operator CA is configured")
        );
    }

    #[test]
    fn end_all_forgets_challenges_and_reasons_read_well() {
        let mut sessions = sessions(120);
        let issued = sessions.challenge_with([9; 32], at(0));
        assert_eq!(sessions.end_all("tamper: GPIO17"), None);
        assert!(attempt(&mut sessions, issued.bytes, at(1)).contains("unknown or already used"));
        assert_eq!(sessions.logout(), None);
        assert_eq!(sessions.expire(at(5)), None);
        assert_eq!(
            EndReason::Replaced {
                by: "Bob".to_owned()
            }
            .to_string(),
            "replaced by a login of Bob"
        );
        assert_eq!(rfc3339(at(0)), "2030-03-17T17:46:40Z");
    }
}
