//! Tr31 mode's rules (mode 1): no mode data anywhere; the terminal checks WELCOME's transport key check value against its own.

use std::time::Duration;

use super::certificate::{CertificateDelivery, CertificateFreshness};
use super::profile::Profile;
use super::{AfterWelcome, ModeRequest, ModeRules, PortState, RequestRefusal, TerminalAbort};
use crate::appliance::{ApplianceConfig, TerminalIdentity};
use crate::codes::AbortReason;
use crate::message::{EncodeError, Welcome};
use crate::mode::Mode;
use crate::terminal::{TerminalConfig, hex};

/// Tr31 mode: the master key as a TR-31 key block under the transport key the terminal holds.
pub(crate) struct Tr31;

impl ModeRules for Tr31 {
    fn mode(&self) -> Mode {
        Mode::Tr31
    }

    fn carries_mode_data(&self) -> bool {
        false
    }

    fn appliance_can_serve(&self, _config: &ApplianceConfig, _terminal: &TerminalIdentity) -> bool {
        true
    }

    fn welcome_data(
        &self,
        _config: &ApplianceConfig,
        _terminal: &TerminalIdentity,
    ) -> Result<Vec<u8>, EncodeError> {
        Ok(Vec::new())
    }

    fn session_profile(
        &self,
        _config: &ApplianceConfig,
        _terminal: &TerminalIdentity,
    ) -> Option<Profile> {
        None
    }

    /// Nothing to check: KEY_REQUEST's decoder has already refused any mode data.
    fn accept_request(
        &self,
        _config: &ApplianceConfig,
        _mode_data: &[u8],
        _now: Duration,
        _port: &mut PortState,
    ) -> Result<ModeRequest, RequestRefusal> {
        Ok(ModeRequest::Tr31)
    }

    fn terminal_can_run(&self, _config: &TerminalConfig) -> bool {
        true
    }

    /// The appliance's transport key must be the terminal's, or no key block will unwrap.
    fn check_welcome(
        &self,
        config: &TerminalConfig,
        welcome: &Welcome,
    ) -> Result<AfterWelcome, TerminalAbort> {
        check_transport_key(config, welcome)?;
        Ok(AfterWelcome::RequestKey)
    }

    fn request_data(
        &self,
        _config: &TerminalConfig,
        _freshness: Option<&CertificateFreshness>,
    ) -> Result<Vec<u8>, EncodeError> {
        Ok(Vec::new())
    }

    /// A tr31 delivery carries nothing after the KCV.
    fn open_delivery(
        &self,
        mode_data: &[u8],
    ) -> Result<Option<CertificateDelivery>, TerminalAbort> {
        refuse_delivery_mode_data(Mode::Tr31, mode_data)
    }
}

/// WELCOME's transport key check value must be the terminal's (tr31 and profile mode), or no
/// key block will unwrap: the terminal aborts before asking for anything.
pub(super) fn check_transport_key(
    config: &TerminalConfig,
    welcome: &Welcome,
) -> Result<(), TerminalAbort> {
    if welcome.ttk_kcv == config.ttk_kcv {
        return Ok(());
    }
    let detail = format!(
        "appliance TTK KCV {}, terminal TTK KCV {}",
        hex(&welcome.ttk_kcv),
        hex(&config.ttk_kcv)
    );
    Err(TerminalAbort {
        reason: AbortReason::TTK_KCV_MISMATCH,
        failure: format!("transport key check value differs: {detail}"),
        detail,
    })
}

/// A KEY_DELIVERY of a mode without delivery fields (tr31, profile) carries nothing after the
/// KCV.
pub(super) fn refuse_delivery_mode_data(
    mode: Mode,
    mode_data: &[u8],
) -> Result<Option<CertificateDelivery>, TerminalAbort> {
    if mode_data.is_empty() {
        return Ok(None);
    }
    let detail = format!(
        "a {mode} KEY_DELIVERY carries {} byte(s) after the KCV",
        mode_data.len()
    );
    Err(TerminalAbort {
        reason: AbortReason::UNEXPECTED_RESPONSE,
        failure: format!("malformed KEY_DELIVERY: {detail}"),
        detail,
    })
}
