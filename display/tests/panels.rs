//! Panels: the shared in-memory panel, the display that survives a failing panel, and the SSD1306 refusing a bus that is not there.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keymother_display::{
    BenchDisplay, DisplayError, Framebuffer, LockReason, MemoryPanel, Panel, Screen, render,
};

fn locked() -> Screen {
    Screen::Locked {
        reason: LockReason::NoOperator,
    }
}

#[test]
fn memory_panel_clones_share_their_frames() {
    let panel = MemoryPanel::new();
    let mut owned = panel.clone();
    assert!(panel.frames().is_empty());
    assert_eq!(panel.last_frame(), None);
    owned.show(&render(&Screen::Tamper)).unwrap();
    owned.show(&render(&locked())).unwrap();
    let frames = panel.frames();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0], render(&Screen::Tamper));
    assert_eq!(panel.last_frame(), Some(render(&locked())));
    assert_eq!(format!("{panel:?}"), "MemoryPanel { frames: 2 }");
}

#[test]
fn memory_panel_moves_to_another_thread() {
    let panel = MemoryPanel::new();
    let mut display = BenchDisplay::new(panel.clone());
    std::thread::spawn(move || {
        assert!(display.show(&Screen::Tamper));
    })
    .join()
    .unwrap();
    assert_eq!(panel.frames(), vec![render(&Screen::Tamper)]);
}

#[test]
fn bench_display_sends_a_screen_once() {
    let panel = MemoryPanel::new();
    let mut display = BenchDisplay::new(panel.clone());
    assert!(display.has_panel());
    assert!(display.show(&Screen::Tamper));
    assert!(display.show(&Screen::Tamper));
    assert!(display.show(&locked()));
    assert_eq!(panel.frames().len(), 2);
    assert_eq!(display.shown(), Some(&locked()));
}

#[test]
fn bench_display_without_panel_shows_nothing_and_does_not_fail() {
    let mut display = BenchDisplay::without_panel();
    assert!(!display.has_panel());
    assert!(!display.show(&Screen::Tamper));
    assert_eq!(display.shown(), None);
}

/// A panel that fails while `broken` is set, recording the frames it did show.
struct FlakyPanel {
    broken: Arc<AtomicBool>,
    shown: MemoryPanel,
}

impl Panel for FlakyPanel {
    fn show(&mut self, frame: &Framebuffer) -> Result<(), DisplayError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(DisplayError::Panel {
                bus: "/dev/i2c-1".into(),
                address: 0x3C,
                action: "sending a frame",
                source: std::io::Error::from_raw_os_error(121),
            });
        }
        self.shown.show(frame)
    }
}

#[test]
fn a_failing_panel_degrades_and_recovers() {
    let broken = Arc::new(AtomicBool::new(true));
    let shown = MemoryPanel::new();
    let mut display = BenchDisplay::new(FlakyPanel {
        broken: broken.clone(),
        shown: shown.clone(),
    });
    assert!(!display.show(&Screen::Tamper));
    assert!(!display.show(&Screen::Tamper), "tried again, fails again");
    assert_eq!(display.shown(), None);
    broken.store(false, Ordering::SeqCst);
    assert!(
        display.show(&Screen::Tamper),
        "the same screen is sent once the panel works"
    );
    assert_eq!(shown.frames(), vec![render(&Screen::Tamper)]);
}

#[cfg(feature = "ssd1306")]
mod ssd1306 {
    use super::*;
    use keymother_display::{SSD1306_DEFAULT_ADDRESS, Ssd1306Panel};
    use std::path::Path;

    #[test]
    fn opening_a_missing_bus_names_it() {
        let bus = Path::new("/dev/i2c-keymother-test-missing");
        let error = Ssd1306Panel::open(bus, SSD1306_DEFAULT_ADDRESS).unwrap_err();
        assert!(matches!(error, DisplayError::OpenBus { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with("cannot open the I2C bus /dev/i2c-keymother-test-missing: "),
            "{message}"
        );
        assert!(message.contains("No such file or directory"), "{message}");
    }

    #[test]
    fn a_file_that_is_no_i2c_bus_is_refused_naming_it() {
        let error = Ssd1306Panel::open(Path::new("/dev/null"), 0x3D).unwrap_err();
        assert!(matches!(error, DisplayError::OpenBus { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with("cannot open the I2C bus /dev/null: "),
            "{message}"
        );
    }

    #[test]
    fn addresses_beyond_seven_bits_are_refused() {
        let error = Ssd1306Panel::open(Path::new("/dev/i2c-1"), 0x80).unwrap_err();
        assert_eq!(
            error.to_string(),
            "I2C address 0x80 on /dev/i2c-1 is not a 7-bit address (0x00 to 0x7F)"
        );
    }

    #[test]
    fn a_display_whose_panel_cannot_open_runs_without_it() {
        let mut display =
            BenchDisplay::open_ssd1306(Path::new("/dev/i2c-keymother-test-missing"), 0x3C);
        assert!(!display.has_panel());
        assert!(!display.show(&Screen::Tamper));
    }
}

#[test]
fn errors_and_frames_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<DisplayError>();
    send_sync::<Framebuffer>();
    send_sync::<MemoryPanel>();
    send::<BenchDisplay>();
    #[cfg(feature = "ssd1306")]
    send::<keymother_display::Ssd1306Panel>();
}
