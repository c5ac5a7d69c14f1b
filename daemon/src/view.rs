//! What a bench screen shows ([`BenchView`]) and the hook a display implements ([`DisplaySink`]): the vocabulary between the bench's rules and the screens.

use std::collections::BTreeMap;

use crate::events::{InjectionStep, Reason, UnconfirmedDelivery};

/// An error a display reports.
pub type DisplayError = Box<dyn std::error::Error + Send + Sync>;

/// A screen that shows the bench. **The display hook**: `keymother-display` implements this
/// for its SSD1306 and in-memory panels; hand one to `run_with` in
/// `BenchBackends::display`, or let the bench build it from `[bench]`.
pub trait DisplaySink: Send {
    /// Draws `view`. Called on the bench thread when the view changed, at most every
    /// the bench's display interval; an error switches the display off (one warning).
    fn show(&mut self, view: &BenchView) -> Result<(), DisplayError>;
}

/// A port's injection in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortActivity {
    pub hardware_serial: String,
    pub step: InjectionStep,
}

/// The last confirmed injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastInjection {
    pub port: String,
    pub hardware_serial: String,
    pub key_index: u32,
    pub smn: String,
    pub operator: Option<String>,
}

/// The last failure, for the technician.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub port: String,
    /// Short and actionable: "no operator logged in", "KCV mismatch", ...
    pub reason: String,
    /// A delivery its terminal never confirmed, when that is the failure: its screen names
    /// the terminal's serial and the key kept for it.
    pub unconfirmed: Option<UnconfirmedDelivery>,
}

/// Everything a bench screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchView {
    /// Keys flow now.
    pub ready: bool,
    /// Why keys do not flow; [`Reason::Starting`] until the daemon first reports.
    pub reason: Reason,
    /// The tamper input fired and the key ceremonies were not held again since: show the
    /// tamper screen.
    pub tampered: bool,
    /// Available keys.
    pub keys_left: u64,
    /// The threshold of `[bench] low_inventory`.
    pub low_inventory_threshold: u64,
    /// `keys_left` is below the threshold: time to import a key file.
    pub low_inventory: bool,
    pub ports_open: usize,
    pub ports_total: usize,
    /// The operator logged in, if any.
    pub operator: Option<String>,
    /// Confirmed injections since the daemon started.
    pub injections: u64,
    pub last_injection: Option<LastInjection>,
    /// Injections in progress, by port name.
    pub active: BTreeMap<String, PortActivity>,
    pub last_error: Option<LastError>,
    /// The GPIO or the display was switched off after an error.
    pub bench_warning: Option<String>,
}

impl BenchView {
    pub(crate) fn new(ports_total: usize, low_inventory_threshold: u64) -> BenchView {
        BenchView {
            ready: false,
            reason: Reason::Starting,
            tampered: false,
            keys_left: 0,
            low_inventory_threshold,
            low_inventory: false,
            ports_open: 0,
            ports_total,
            operator: None,
            injections: 0,
            last_injection: None,
            active: BTreeMap::new(),
            last_error: None,
            bench_warning: None,
        }
    }
}
