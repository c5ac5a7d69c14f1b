//! Operator sessions: login challenges, logins and logouts, their end when their time is up, and the operator a key is reserved under, all audited.

use std::time::SystemTime;

use keymother_pki::login::LoginResponse;
use keymother_vault::VaultError;

use super::Dispenser;
use crate::operator::{Challenge, LoginFailure, OperatorEvent, OperatorSession, Sessions};

impl Dispenser {
    /// Writes an operator event to the journal and the audit chain; `peer` is the local user
    /// who asked, if anyone did.
    pub(super) fn record(
        &self,
        event: &OperatorEvent,
        peer: Option<&str>,
    ) -> Result<(), VaultError> {
        event.log(peer);
        self.touch();
        let recorded = self.vault().record_audit(event.audit(peer)).map(drop);
        if let Err(error) = &recorded {
            log::error!(event = "audit-failed"; "an operator event could not be audited: {error}");
        }
        recorded
    }

    /// The operator logged in now, after recording the end of a session whose time is up.
    pub(super) fn current_operator(
        &self,
        sessions: &mut Sessions,
        now: SystemTime,
    ) -> Option<String> {
        if let Some(ended) = sessions.expire(now) {
            let _ = self.record(&ended, None);
        }
        sessions.current(now).map(|session| session.name.clone())
    }

    /// Whether keys (and voids and SMN exports) need an operator session.
    pub fn operator_required(&self) -> bool {
        self.sessions().required()
    }

    /// Whether operator login is required but there is no operator CA (`[pki]`) to log in
    /// against: nobody can log in, so nothing is dispensed until the settings have one.
    pub fn operator_ca_missing(&self) -> bool {
        self.operator_required() && self.trust().is_none()
    }

    /// The operator session open now, if any.
    pub fn operator_session(&self, now: SystemTime) -> Option<OperatorSession> {
        let mut sessions = self.sessions();
        self.current_operator(&mut sessions, now);
        sessions.current(now).cloned()
    }

    /// A new single-use login challenge, and the login window.
    pub fn login_challenge(
        &self,
        now: SystemTime,
    ) -> Result<(Challenge, std::time::Duration), LoginFailure> {
        if self.trust().is_none() {
            return Err(LoginFailure::NotConfigured);
        }
        self.clock.check().map_err(LoginFailure::ClockNotSet)?;
        let mut sessions = self.sessions();
        let challenge = sessions
            .challenge(now)
            .map_err(|error| LoginFailure::Random(error.to_string()))?;
        Ok((challenge, sessions.window()))
    }

    /// Checks a signed login answer and opens the operator's session (ending the one before);
    /// every attempt is audited. `peer` is the local user who sent it. Without an operator CA
    /// the answer is refused before anything is looked at, unaudited like the challenge it
    /// could not have had: nothing changes.
    pub fn login(
        &self,
        response: &LoginResponse,
        peer: &str,
        now: SystemTime,
    ) -> Result<OperatorSession, LoginFailure> {
        let Some(trust) = self.trust() else {
            // No challenge can have been issued; nothing to check, use up or audit.
            return Err(LoginFailure::NotConfigured);
        };
        // Nor while the clock is not set: the time window would be judged by a wrong clock.
        self.clock.check().map_err(LoginFailure::ClockNotSet)?;
        let mut sessions = self.sessions();
        let (outcome, events) = sessions.login(Some(&trust), response, now);
        for event in &events {
            if self.record(event, Some(peer)).is_err()
                && matches!(event, OperatorEvent::LoggedIn(_))
            {
                // A session the audit trail does not know of must not dispense.
                sessions.end_all("the login could not be audited");
                return Err(LoginFailure::NotAudited);
            }
        }
        outcome
    }

    /// Ends the operator session; `None` when none was open.
    pub fn logout(&self, peer: &str, now: SystemTime) -> Option<OperatorSession> {
        let mut sessions = self.sessions();
        self.current_operator(&mut sessions, now);
        let ended = sessions.logout()?;
        let _ = self.record(&ended, Some(peer));
        match ended {
            OperatorEvent::Ended { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Ends the session if its time is up (called on a timer, so the end is recorded when it
    /// happens rather than at the next key request).
    pub fn expire_operator_session(&self, now: SystemTime) {
        let mut sessions = self.sessions();
        self.current_operator(&mut sessions, now);
    }

    /// When the open session ends, if one is open.
    pub fn operator_session_ends(&self) -> Option<SystemTime> {
        self.sessions().next_expiry()
    }

    /// Records a delivery its terminal never confirmed (`injection-failed`), under the
    /// operator logged in now, if any. Only the audit row is written: the key stays reserved
    /// for the terminal, never released or given to another.
    pub fn record_injection_failure(
        &self,
        port: &str,
        hardware_serial: &keymother_domain::HardwareSerial,
        key_index: Option<keymother_domain::KeyIndex>,
        cause: keymother_vault::InjectionFailureCause,
    ) -> Result<(), VaultError> {
        let operator = self
            .operator_session(keymother_vault::clock::now())
            .map(|session| session.name);
        self.vault()
            .record_injection_failure(port, hardware_serial, key_index, cause, operator.as_deref())
            .map(drop)
    }

    /// Ends the operator session and forgets all login challenges at once: the hook for a
    /// zeroize and for the tamper input. `reason` goes to the audit trail.
    pub fn end_operator_sessions(&self, reason: &str) {
        let mut sessions = self.sessions();
        if let Some(ended) = sessions.end_all(reason) {
            let _ = self.record(&ended, None);
        }
    }
}
