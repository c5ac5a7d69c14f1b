//! What can go wrong with a panel or a PNG, each naming the bus, address or image at fault.

use std::path::PathBuf;

use crate::{HEIGHT, WIDTH};

/// A display failure. The appliance works on without its display: callers log these (see
/// [`crate::BenchDisplay`]) rather than stop.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    /// The bytes are not a PNG this crate can read.
    #[error("not a readable PNG image: {source}")]
    PngDecode {
        #[source]
        source: png::DecodingError,
    },
    /// A PNG of the wrong size.
    #[error("the PNG image is {width}x{height} pixels; a display frame is {WIDTH}x{HEIGHT}")]
    PngSize { width: u32, height: u32 },
    /// A PNG whose pixels could not be converted to gray.
    #[error("the PNG image's pixels ({color}) cannot be read as gray levels")]
    PngColor { color: String },
    /// An I2C address outside the 7-bit range.
    #[error("I2C address 0x{address:02X} on {} is not a 7-bit address (0x00 to 0x7F)", bus.display())]
    InvalidAddress { bus: PathBuf, address: u8 },
    /// The I2C bus device could not be opened (absent off the Pi or with I2C disabled,
    /// or not readable by the daemon's user).
    #[error("cannot open the I2C bus {}: {source}", bus.display())]
    OpenBus {
        bus: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The panel did not answer or the transfer failed.
    #[error("SSD1306 display at address 0x{address:02X} on {}: {action} failed: {source}", bus.display())]
    Panel {
        bus: PathBuf,
        address: u8,
        /// What was being done: "initialising the panel", "sending a frame".
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}
