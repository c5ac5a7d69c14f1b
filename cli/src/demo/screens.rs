//! The demo's bench display: every screen the daemon shows, kept in order, saved as PNG files named after what they show (`007-injected.png`).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use keymother_daemon::BenchView;
use keymother_daemon::screen::screen_for;
use keymother_daemon::view::{DisplayError, DisplaySink};
use keymother_display::Screen;

/// The screens shown so far, oldest first; each differs from the one before it.
#[derive(Clone, Default)]
pub(super) struct ScreenLog {
    screens: Arc<Mutex<Vec<Screen>>>,
}

impl ScreenLog {
    /// The daemon's display sink, recording into this log.
    pub(super) fn sink(&self) -> Box<dyn DisplaySink> {
        Box::new(self.clone())
    }

    fn screens(&self) -> std::sync::MutexGuard<'_, Vec<Screen>> {
        // A panic while pushing a screen leaves the list usable.
        self.screens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits (at most `within`) until the screen shown is an INJECTED one: the display shows a
    /// change at most every 100 ms, so the last injection's screen comes a moment after the
    /// terminal's CONFIRMED. Whether it came.
    pub(super) fn wait_for_injected(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if matches!(self.screens().last(), Some(Screen::Injected { .. })) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Writes each screen as `NNN-<kind>.png` into `directory`; how many.
    pub(super) fn save(&self, directory: &Path) -> std::io::Result<usize> {
        let screens = self.screens().clone();
        for (number, screen) in screens.iter().enumerate() {
            std::fs::write(
                directory.join(format!("{number:03}-{}.png", kind(screen))),
                keymother_display::render(screen).to_png_scaled(2),
            )?;
        }
        Ok(screens.len())
    }
}

impl DisplaySink for ScreenLog {
    fn show(&mut self, view: &BenchView) -> Result<(), DisplayError> {
        let screen = screen_for(view);
        let mut screens = self.screens();
        if screens.last() != Some(&screen) {
            screens.push(screen);
        }
        Ok(())
    }
}

/// The word a saved screen's file name carries.
pub(super) fn kind(screen: &Screen) -> &'static str {
    match screen {
        Screen::Booting { .. } => "booting",
        Screen::Locked { .. } => "locked",
        Screen::Ready { .. } => "ready",
        Screen::Injecting { .. } => "injecting",
        Screen::Injected { .. } => "injected",
        Screen::Error { .. } => "error",
        Screen::NotConfirmed { .. } => "not-confirmed",
        Screen::LowInventory { .. } => "low-inventory",
        Screen::Tamper => "tamper",
    }
}
