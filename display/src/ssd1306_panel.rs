//! The SSD1306 128x64 OLED over Linux I2C (`/dev/i2c-N`), sending only what changed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use embedded_hal::i2c::{ErrorType, I2c, Operation, SevenBitAddress};
use linux_embedded_hal::i2cdev::linux::LinuxI2CError;
use linux_embedded_hal::{I2CError, I2cdev};
use ssd1306::mode::{BufferedGraphicsMode, DisplayConfig};
use ssd1306::prelude::{DisplayRotation, I2CInterface};
use ssd1306::size::DisplaySize128x64;
use ssd1306::{I2CDisplayInterface, Ssd1306};

use crate::framebuffer::Framebuffer;
use crate::panel::Panel;
use crate::{DisplayError, HEIGHT, WIDTH};

/// The address most SSD1306 modules answer at (0x3D with the address pin high).
pub const SSD1306_DEFAULT_ADDRESS: u8 = 0x3C;

type Driver =
    Ssd1306<I2CInterface<RecordingI2c>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

/// An SSD1306 128x64 panel on a Linux I2C bus. Each frame sends only the columns and
/// pages that changed since the last successful one.
pub struct Ssd1306Panel {
    driver: Driver,
    bus: PathBuf,
    address: u8,
    /// What the panel shows, when known (after a successful transfer).
    on_panel: Option<Framebuffer>,
    /// The last I2C error, kept by the bus adapter for the error message.
    last_error: LastError,
}

impl fmt::Debug for Ssd1306Panel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ssd1306Panel")
            .field("bus", &self.bus)
            .field("address", &format_args!("0x{:02X}", self.address))
            .finish()
    }
}

impl Ssd1306Panel {
    /// Opens the I2C `bus` (for example `/dev/i2c-1` on a Raspberry Pi), initialises the
    /// SSD1306 at the 7-bit `address` (usually [`SSD1306_DEFAULT_ADDRESS`]) and clears it.
    /// Fails, naming the bus, when the bus cannot be opened (off the Pi, I2C disabled, no
    /// permission) or no panel answers.
    pub fn open(bus: &Path, address: u8) -> Result<Self, DisplayError> {
        if address > 0x7F {
            return Err(DisplayError::InvalidAddress {
                bus: bus.to_owned(),
                address,
            });
        }
        let device = I2cdev::new(bus).map_err(|error| DisplayError::OpenBus {
            bus: bus.to_owned(),
            source: io_error(&error),
        })?;
        let last_error = LastError::default();
        let interface = I2CDisplayInterface::new_custom_address(
            RecordingI2c {
                device,
                last_error: last_error.clone(),
            },
            address,
        );
        let driver = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0)
            .into_buffered_graphics_mode();
        let mut panel = Ssd1306Panel {
            driver,
            bus: bus.to_owned(),
            address,
            on_panel: None,
            last_error,
        };
        let result = panel.driver.init();
        panel.check(result, "initialising the panel")?;
        panel.show(&Framebuffer::new())?;
        Ok(panel)
    }

    /// Turns a driver result into an error naming the bus, the address and the I2C error.
    fn check<E: fmt::Debug>(
        &self,
        result: Result<(), E>,
        action: &'static str,
    ) -> Result<(), DisplayError> {
        result.map_err(|driver_error| {
            // The driver reports only "bus write error"; the bus adapter kept the real one.
            let recorded = self.last_error.take();
            DisplayError::Panel {
                bus: self.bus.clone(),
                address: self.address,
                action,
                source: recorded.unwrap_or_else(|| io::Error::other(format!("{driver_error:?}"))),
            }
        })
    }
}

impl Panel for Ssd1306Panel {
    fn show(&mut self, frame: &Framebuffer) -> Result<(), DisplayError> {
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                let lit = frame.pixel(x, y);
                let known = self.on_panel.as_ref().map(|shown| shown.pixel(x, y));
                if known != Some(lit) {
                    self.driver.set_pixel(x, y, lit);
                }
            }
        }
        // Until the transfer succeeds, what the panel shows is unknown: a failed flush has
        // already forgotten its changed area, so the next frame is sent whole.
        self.on_panel = None;
        let result = self.driver.flush();
        self.check(result, "sending a frame")?;
        self.on_panel = Some(frame.clone());
        Ok(())
    }
}

/// The last failed transfer's error, shared by the panel and its bus adapter.
#[derive(Clone, Default)]
struct LastError(Arc<Mutex<Option<io::Error>>>);

impl LastError {
    fn set(&self, error: io::Error) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    fn take(&self) -> Option<io::Error> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// `I2cdev`, recording the operating-system error of a failed transfer, which the driver
/// would otherwise reduce to "bus write error".
struct RecordingI2c {
    device: I2cdev,
    last_error: LastError,
}

impl ErrorType for RecordingI2c {
    type Error = I2CError;
}

impl I2c<SevenBitAddress> for RecordingI2c {
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let result = self.device.transaction(address, operations);
        if let Err(error) = &result {
            self.last_error.set(io_error(error.inner()));
        }
        result
    }
}

fn io_error(error: &LinuxI2CError) -> io::Error {
    match error {
        LinuxI2CError::Errno(number) => io::Error::from_raw_os_error(*number),
        LinuxI2CError::Io(error) => io::Error::new(error.kind(), error.to_string()),
    }
}
