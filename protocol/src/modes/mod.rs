//! The injection modes' rules behind one interface both sessions call, one file per mode, and the one place listing the implemented modes.
//!
//! The appliance and terminal sessions run the same steps in every mode (HELLO, WELCOME,
//! KEY_REQUEST, KEY_DELIVERY, CONFIRM); what a mode changes is asked of its [`ModeRules`]: may
//! it be chosen, what WELCOME, KEY_REQUEST and KEY_DELIVERY carry as mode data, what the
//! terminal checks on WELCOME, what a key request becomes for the adapter, and whether the
//! session delivers a device profile (profile mode: DUKPT keys after the master key). The
//! sessions never name a mode.
//!
//! A trait rather than one `match` per step: a mode's rules for both sides sit together in its
//! file, [`rules`] is the only `match` on [`Mode`], and the compiler lists every rule a new mode
//! must decide (the trait has no default methods).
//!
//! Adding a mode: its variant, id and name in `mode.rs`; a file here with a type implementing
//! [`ModeRules`]; its arm in [`rules`]; its variant in [`ModeRequest`]; and, if it keeps state per
//! port (as certificate mode's rate limit does), a field in [`PortState`].

use std::time::Duration;

use crate::appliance::{ApplianceConfig, TerminalIdentity};
use crate::codes::{AbortReason, ErrorCode};
use crate::message::{EncodeError, Welcome};
use crate::mode::Mode;
use crate::terminal::{TerminalAction, TerminalConfig};

pub mod certificate;
pub mod profile;
mod tr31;

use certificate::{CertificateDelivery, CertificateFreshness, CertificateRequest};
use profile::Profile;

/// The rules of an implemented mode, for both sessions.
pub(crate) trait ModeRules: Sync {
    /// The mode these rules are for.
    fn mode(&self) -> Mode;

    /// Whether WELCOME and KEY_REQUEST carry fields of this mode after their own; when not, the
    /// codec refuses any bytes there.
    fn carries_mode_data(&self) -> bool;

    // The appliance's side.

    /// Whether the appliance can run this mode with `config` for `terminal`, beyond listing it
    /// (certificate mode: a KDH credential token is installed; profile mode: a profile is offered to
    /// the terminal's model).
    fn appliance_can_serve(&self, config: &ApplianceConfig, terminal: &TerminalIdentity) -> bool;

    /// WELCOME's mode data for `terminal`.
    fn welcome_data(
        &self,
        config: &ApplianceConfig,
        terminal: &TerminalIdentity,
    ) -> Result<Vec<u8>, EncodeError>;

    /// The device profile a session with `terminal` delivers (profile mode); `None` in the
    /// modes that deliver one master key.
    fn session_profile(
        &self,
        config: &ApplianceConfig,
        terminal: &TerminalIdentity,
    ) -> Option<Profile>;

    /// KEY_REQUEST's mode data, received at `now`, as the request the adapter reserves for; or
    /// the ERROR that refuses it.
    fn accept_request(
        &self,
        config: &ApplianceConfig,
        mode_data: &[u8],
        now: Duration,
        port: &mut PortState,
    ) -> Result<ModeRequest, RequestRefusal>;

    // The terminal's side.

    /// Whether the terminal can run this mode with `config` (certificate mode: it has a KRD
    /// credential token).
    fn terminal_can_run(&self, config: &TerminalConfig) -> bool;

    /// What the terminal does on a WELCOME choosing this mode: go on to the key, have the
    /// caller verify the appliance first, or abort.
    fn check_welcome(
        &self,
        config: &TerminalConfig,
        welcome: &Welcome,
    ) -> Result<AfterWelcome, TerminalAbort>;

    /// KEY_REQUEST's mode data. `freshness` is what the caller chose when it verified the
    /// appliance ([`AfterWelcome::VerifyAppliance`]); `None` in modes without that step.
    fn request_data(
        &self,
        config: &TerminalConfig,
        freshness: Option<&CertificateFreshness>,
    ) -> Result<Vec<u8>, EncodeError>;

    /// KEY_DELIVERY's mode data, as [`TerminalAction::InstallKey`]'s `certificate`; or why the
    /// terminal aborts.
    fn open_delivery(&self, mode_data: &[u8])
    -> Result<Option<CertificateDelivery>, TerminalAbort>;
}

/// The rules of `mode`; `None` for a mode that is only reserved (never chosen, whatever the
/// configuration says).
pub(crate) fn rules(mode: Mode) -> Option<&'static dyn ModeRules> {
    match mode {
        Mode::Tr31 => Some(&tr31::Tr31),
        Mode::Certificate => Some(&certificate::Certificate),
        Mode::Profile => Some(&profile::ProfileMode),
    }
}

/// Whether WELCOME and KEY_REQUEST naming `mode_id` carry mode data: every id but that of an
/// implemented mode without any (tr31), so fields of modes this version does not know are read
/// whole.
pub(crate) fn carries_mode_data(mode_id: u8) -> bool {
    Mode::from_id(mode_id)
        .and_then(rules)
        .is_none_or(|rules| rules.carries_mode_data())
}

/// What the terminal's KEY_REQUEST asked for, by mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeRequest {
    /// The master key as a TR-31 key block under the transport key.
    Tr31,
    /// Certificate mode: the adapter checks the KRD credential token (the device certificate)
    /// and the random number token before reserving, and answers with a TR-34 key token for
    /// them (two-pass: bound to the token's nonce; one-pass: with a signing time).
    Certificate(CertificateRequest),
    /// Profile mode: the profile's master key, delivered as in tr31 mode (a TR-31 key block
    /// under the transport key); the DUKPT keys that follow have their own actions.
    Profile,
}

/// What the modes keep per serial port on the appliance, for as long as the daemon runs.
#[derive(Default)]
pub(crate) struct PortState {
    pub(crate) certificate: certificate::RequestRate,
}

/// The ERROR the appliance answers a KEY_REQUEST with.
pub(crate) struct RequestRefusal {
    pub(crate) code: ErrorCode,
    /// Goes to the terminal; never key material.
    pub(crate) detail: String,
}

/// Why the terminal aborts the session: ABORT's reason and detail, and the session's failure.
pub(crate) struct TerminalAbort {
    pub(crate) reason: AbortReason,
    pub(crate) detail: String,
    pub(crate) failure: String,
}

/// What the terminal does after a WELCOME it accepts.
pub(crate) enum AfterWelcome {
    /// Confirm the key held from an earlier session, or ask for one.
    RequestKey,
    /// Have the caller verify the appliance first (this action); the session goes on with
    /// [`TerminalSession::handle_appliance_verified`](crate::TerminalSession::handle_appliance_verified).
    VerifyAppliance(TerminalAction),
    /// Run this profile: its master key (if any) as [`RequestKey`](Self::RequestKey) does,
    /// then its DUKPT slots in order.
    RunProfile(Profile),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_registered_rules_are_for_their_own_mode() {
        for mode in Mode::ALL {
            if let Some(rules) = rules(mode) {
                assert_eq!(rules.mode(), mode);
            }
        }
        assert!(Mode::ALL.into_iter().all(Mode::is_implemented));
    }

    #[test]
    fn only_tr31_has_no_mode_data_and_unknown_ids_keep_theirs() {
        assert!(!carries_mode_data(Mode::Tr31.id()));
        assert!(carries_mode_data(Mode::Certificate.id()));
        assert!(carries_mode_data(Mode::Profile.id()));
        assert!(carries_mode_data(0xEE));
    }
}
