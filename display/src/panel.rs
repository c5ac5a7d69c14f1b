//! Where frames go: the `Panel` trait, a panel in memory, and `BenchDisplay`, which degrades a failing panel to a logged warning.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::framebuffer::Framebuffer;
use crate::{DisplayError, Screen, render};

/// A monochrome 128x64 panel that frames are sent to. `show` blocks while the frame is
/// transferred (an SSD1306 over I2C takes a few tens of milliseconds); call it from a
/// thread that may block.
pub trait Panel: Send {
    /// Shows `frame`. Errors name the device and what failed.
    fn show(&mut self, frame: &Framebuffer) -> Result<(), DisplayError>;
}

/// Keeps every frame shown, for tests and the demo. Clones share the same frames: a test
/// keeps one handle while the daemon owns another.
#[derive(Clone, Default)]
pub struct MemoryPanel {
    frames: Arc<Mutex<Vec<Framebuffer>>>,
}

impl MemoryPanel {
    /// A panel that has shown nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every frame shown so far, oldest first.
    pub fn frames(&self) -> Vec<Framebuffer> {
        self.lock().clone()
    }

    /// The frame on the panel now, if any.
    pub fn last_frame(&self) -> Option<Framebuffer> {
        self.lock().last().cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Framebuffer>> {
        // A panic while pushing a frame leaves the list usable.
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Panel for MemoryPanel {
    fn show(&mut self, frame: &Framebuffer) -> Result<(), DisplayError> {
        self.lock().push(frame.clone());
        Ok(())
    }
}

impl fmt::Debug for MemoryPanel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPanel")
            .field("frames", &self.lock().len())
            .finish()
    }
}

/// The appliance's display: renders screens and sends them to its panel, if it has one. A
/// missing or failing panel never stops the appliance: a failure is logged as a warning
/// (once until the panel works again) and the next screen is tried anew.
pub struct BenchDisplay {
    panel: Option<Box<dyn Panel>>,
    /// The screen on the panel, when the last transfer succeeded.
    shown: Option<Screen>,
    /// Whether the last transfer failed (its warning was logged).
    failing: bool,
}

impl fmt::Debug for BenchDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BenchDisplay")
            .field("has_panel", &self.panel.is_some())
            .field("shown", &self.shown)
            .field("failing", &self.failing)
            .finish()
    }
}

impl BenchDisplay {
    /// A display that sends its screens to `panel`.
    pub fn new(panel: impl Panel + 'static) -> Self {
        BenchDisplay {
            panel: Some(Box::new(panel)),
            shown: None,
            failing: false,
        }
    }

    /// A display without a panel: screens are rendered nowhere.
    pub fn without_panel() -> Self {
        BenchDisplay {
            panel: None,
            shown: None,
            failing: false,
        }
    }

    /// The SSD1306 at `address` on the I2C `bus`; when it cannot be opened, a warning is
    /// logged and the display has no panel.
    #[cfg(feature = "ssd1306")]
    pub fn open_ssd1306(bus: &std::path::Path, address: u8) -> Self {
        match crate::Ssd1306Panel::open(bus, address) {
            Ok(panel) => {
                log::info!(event = "display"; "bench display: SSD1306 at 0x{address:02X} on {}", bus.display());
                Self::new(panel)
            }
            Err(error) => {
                log::warn!(event = "display"; "bench display unavailable, running without it: {error}");
                Self::without_panel()
            }
        }
    }

    /// Whether there is a panel to show screens on.
    pub fn has_panel(&self) -> bool {
        self.panel.is_some()
    }

    /// The screen on the panel, if the last transfer succeeded.
    pub fn shown(&self) -> Option<&Screen> {
        self.shown.as_ref()
    }

    /// Shows `screen`; returns whether it is on the panel now. The same screen again is not
    /// sent again unless the last transfer failed.
    pub fn show(&mut self, screen: &Screen) -> bool {
        let Some(panel) = self.panel.as_mut() else {
            return false;
        };
        if self.shown.as_ref() == Some(screen) {
            return true;
        }
        match panel.show(&render(screen)) {
            Ok(()) => {
                if self.failing {
                    log::info!(event = "display"; "bench display works again");
                    self.failing = false;
                }
                self.shown = Some(screen.clone());
                true
            }
            Err(error) => {
                if !self.failing {
                    log::warn!(event = "display"; "bench display failed, the appliance works on without it: {error}");
                    self.failing = true;
                }
                self.shown = None;
                false
            }
        }
    }
}
