//! The 128x64 one-bit framebuffer every screen is drawn into, and its PNG form.

use std::convert::Infallible;
use std::fmt;
use std::io::Cursor;

use embedded_graphics::Pixel;
use embedded_graphics::draw_target::DrawTarget;
use embedded_graphics::geometry::{OriginDimensions, Size};
use embedded_graphics::pixelcolor::BinaryColor;

use crate::{DisplayError, HEIGHT, WIDTH};

/// Bytes in one row: one bit per pixel, the leftmost pixel in the most significant bit.
const ROW_BYTES: usize = WIDTH as usize / 8;
const BYTES: usize = ROW_BYTES * HEIGHT as usize;

/// The largest factor [`Framebuffer::to_png_scaled`] enlarges by.
pub const MAX_PNG_SCALE: u32 = 16;

/// One bit per pixel, 128x64, row after row (a set bit is a lit pixel). Implements
/// embedded-graphics' `DrawTarget<Color = BinaryColor>`: `On` lights a pixel, pixels outside
/// the panel are ignored. `Debug` prints it as ASCII art (`#` lit, `.` dark).
#[derive(Clone, PartialEq, Eq)]
pub struct Framebuffer {
    bits: [u8; BYTES],
}

impl Default for Framebuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framebuffer {
    /// A dark frame.
    pub fn new() -> Self {
        Framebuffer { bits: [0; BYTES] }
    }

    /// Whether the pixel at (x, y) is lit; false outside the panel.
    pub fn pixel(&self, x: u32, y: u32) -> bool {
        match Self::position(x, y) {
            Some((byte, mask)) => self.bits[byte] & mask != 0,
            None => false,
        }
    }

    /// Lights (`true`) or darkens the pixel at (x, y); ignored outside the panel.
    pub fn set_pixel(&mut self, x: u32, y: u32, lit: bool) {
        if let Some((byte, mask)) = Self::position(x, y) {
            if lit {
                self.bits[byte] |= mask;
            } else {
                self.bits[byte] &= !mask;
            }
        }
    }

    /// Number of lit pixels.
    pub fn lit_pixels(&self) -> usize {
        self.bits
            .iter()
            .map(|byte| byte.count_ones() as usize)
            .sum()
    }

    /// Number of pixels that differ between two frames.
    pub fn differing_pixels(&self, other: &Framebuffer) -> usize {
        self.bits
            .iter()
            .zip(other.bits.iter())
            .map(|(mine, theirs)| (mine ^ theirs).count_ones() as usize)
            .sum()
    }

    /// The frame as a 128x64 one-bit grayscale PNG: lit pixels white, dark pixels black.
    pub fn to_png(&self) -> Vec<u8> {
        self.to_png_scaled(1)
    }

    /// The frame as a PNG enlarged `scale` times (each pixel a `scale` x `scale` square), for
    /// documentation; `scale` is clamped to 1..=[`MAX_PNG_SCALE`]. [`Framebuffer::from_png`]
    /// reads back only scale 1.
    pub fn to_png_scaled(&self, scale: u32) -> Vec<u8> {
        let scale = scale.clamp(1, MAX_PNG_SCALE);
        let width = WIDTH * scale;
        let height = HEIGHT * scale;
        let row_bytes = (width as usize).div_ceil(8);
        let mut data = vec![0u8; row_bytes * height as usize];
        for (y, row) in data.chunks_exact_mut(row_bytes).enumerate() {
            // y < HEIGHT * MAX_PNG_SCALE, far below u32::MAX.
            let source_y = y as u32 / scale;
            for x in 0..width {
                if self.pixel(x / scale, source_y) {
                    row[x as usize / 8] |= 0x80 >> (x % 8);
                }
            }
        }
        let mut png = Vec::new();
        let mut encoder = png::Encoder::new(&mut png, width, height);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::One);
        // Encoding fixed, valid parameters (non-zero size, one-bit grayscale, exactly one
        // image's worth of rows) into a Vec cannot fail: the only other errors are I/O errors
        // of the writer, and writing to a Vec does not fail.
        #[allow(clippy::expect_used)]
        encoder
            .write_header()
            .and_then(|mut writer| {
                writer.write_image_data(&data)?;
                writer.finish()
            })
            .expect("encoding a one-bit PNG into memory");
        png
    }

    /// Reads a 128x64 PNG of any color type and bit depth: a pixel is lit where its
    /// luminance is at least half (alpha is ignored). Errors name what is wrong with it.
    pub fn from_png(bytes: &[u8]) -> Result<Framebuffer, DisplayError> {
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder
            .read_info()
            .map_err(|source| DisplayError::PngDecode { source })?;
        let (width, height) = {
            let info = reader.info();
            (info.width, info.height)
        };
        if (width, height) != (WIDTH, HEIGHT) {
            return Err(DisplayError::PngSize { width, height });
        }
        let size = reader
            .output_buffer_size()
            .ok_or(DisplayError::PngSize { width, height })?;
        let mut data = vec![0u8; size];
        let output = reader
            .next_frame(&mut data)
            .map_err(|source| DisplayError::PngDecode { source })?;
        let channels = match output.color_type {
            png::ColorType::Grayscale => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other @ png::ColorType::Indexed => {
                return Err(DisplayError::PngColor {
                    color: format!("{other:?}"),
                });
            }
        };
        let mut frame = Framebuffer::new();
        for (y, row) in data
            .chunks(output.line_size)
            .take(HEIGHT as usize)
            .enumerate()
        {
            for (x, pixel) in row.chunks(channels).take(WIDTH as usize).enumerate() {
                let luminance = match pixel {
                    [gray] | [gray, _] => u32::from(*gray),
                    // ITU-R BT.601 weights, in thousandths.
                    [red, green, blue, ..] => {
                        (299 * u32::from(*red) + 587 * u32::from(*green) + 114 * u32::from(*blue))
                            / 1000
                    }
                    [] => 0,
                };
                // x < WIDTH and y < HEIGHT: both fit in u32.
                frame.set_pixel(x as u32, y as u32, luminance >= 128);
            }
        }
        Ok(frame)
    }

    fn position(x: u32, y: u32) -> Option<(usize, u8)> {
        if x < WIDTH && y < HEIGHT {
            Some((y as usize * ROW_BYTES + x as usize / 8, 0x80 >> (x % 8)))
        } else {
            None
        }
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        Size::new(WIDTH, HEIGHT)
    }
}

impl DrawTarget for Framebuffer {
    type Color = BinaryColor;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, color) in pixels {
            if let (Ok(x), Ok(y)) = (u32::try_from(point.x), u32::try_from(point.y)) {
                self.set_pixel(x, y, color.is_on());
            }
        }
        Ok(())
    }

    fn clear(&mut self, color: Self::Color) -> Result<(), Self::Error> {
        self.bits.fill(if color.is_on() { 0xFF } else { 0 });
        Ok(())
    }
}

impl fmt::Debug for Framebuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let border = "-".repeat(WIDTH as usize);
        writeln!(f, "Framebuffer {WIDTH}x{HEIGHT}, {} lit", self.lit_pixels())?;
        writeln!(f, "+{border}+")?;
        for y in 0..HEIGHT {
            let row: String = (0..WIDTH)
                .map(|x| if self.pixel(x, y) { '#' } else { '.' })
                .collect();
            writeln!(f, "|{row}|")?;
        }
        write!(f, "+{border}+")
    }
}
