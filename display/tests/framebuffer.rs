//! The framebuffer: pixels, drawing bounds, the ASCII-art Debug, and the PNG form both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use embedded_graphics::Drawable;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Point, Primitive, Size};
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use keymother_display::{DisplayError, Framebuffer, HEIGHT, MAX_PNG_SCALE, WIDTH};
use proptest::prelude::*;

fn frame_from_bits(bits: &[bool]) -> Framebuffer {
    let mut frame = Framebuffer::new();
    for (index, &lit) in bits.iter().enumerate() {
        let index = index as u32;
        frame.set_pixel(index % WIDTH, index / WIDTH, lit);
    }
    frame
}

fn encode(
    width: u32,
    height: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(data).unwrap();
    writer.finish().unwrap();
    bytes
}

proptest! {
    #[test]
    fn png_round_trip_keeps_every_pixel(bits in proptest::collection::vec(any::<bool>(), (WIDTH * HEIGHT) as usize)) {
        let frame = frame_from_bits(&bits);
        let back = Framebuffer::from_png(&frame.to_png()).unwrap();
        prop_assert_eq!(back.differing_pixels(&frame), 0);
        prop_assert_eq!(back, frame);
    }
}

#[test]
fn a_new_frame_is_dark_and_128_by_64() {
    let frame = Framebuffer::new();
    assert_eq!(frame.size(), Size::new(128, 64));
    assert_eq!(frame.lit_pixels(), 0);
    assert!(!frame.pixel(0, 0));
}

#[test]
fn drawing_outside_the_panel_is_ignored() {
    let mut frame = Framebuffer::new();
    Rectangle::new(Point::new(-5, -5), Size::new(10, 10))
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(&mut frame)
        .unwrap();
    Rectangle::new(Point::new(125, 62), Size::new(10, 10))
        .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
        .draw(&mut frame)
        .unwrap();
    // x, y in 0..5, and x in 125..128 with y in 62..64.
    assert_eq!(frame.lit_pixels(), 25 + 6);
    assert!(frame.pixel(4, 4) && !frame.pixel(5, 4) && !frame.pixel(4, 5));
    assert!(frame.pixel(127, 63) && !frame.pixel(124, 63));
    assert!(
        !frame.pixel(128, 0) && !frame.pixel(0, 64),
        "outside reads dark"
    );
    frame.set_pixel(500, 500, true);
    assert_eq!(frame.lit_pixels(), 31);
    frame.clear(BinaryColor::On).unwrap();
    assert_eq!(frame.lit_pixels(), 128 * 64);
}

#[test]
fn debug_prints_ascii_art() {
    let mut frame = Framebuffer::new();
    frame.set_pixel(0, 0, true);
    frame.set_pixel(127, 63, true);
    let art = format!("{frame:?}");
    let lines: Vec<&str> = art.lines().collect();
    assert_eq!(lines[0], "Framebuffer 128x64, 2 lit");
    assert_eq!(lines.len(), 1 + 1 + 64 + 1);
    assert_eq!(lines[2], format!("|#{}|", ".".repeat(127)));
    assert_eq!(lines[65], format!("|{}#|", ".".repeat(127)));
}

#[test]
fn the_png_is_one_bit_gray_with_lit_pixels_white() {
    let mut frame = Framebuffer::new();
    frame.set_pixel(1, 0, true);
    let bytes = frame.to_png();
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (128, 64));
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::One);
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut data).unwrap();
    assert_eq!(data[0], 0b0100_0000);
}

#[test]
fn scaled_pngs_enlarge_each_pixel() {
    let mut frame = Framebuffer::new();
    frame.set_pixel(0, 0, true);
    let bytes = frame.to_png_scaled(3);
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes))
        .read_info()
        .unwrap();
    assert_eq!((reader.info().width, reader.info().height), (384, 192));
    let mut data = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut data).unwrap();
    let row_bytes = 384 / 8;
    for row in 0..3 {
        assert_eq!(data[row * row_bytes], 0b1110_0000, "row {row}");
    }
    assert_eq!(data[3 * row_bytes], 0);
    let largest = frame.to_png_scaled(1000);
    let reader = png::Decoder::new(std::io::Cursor::new(&largest))
        .read_info()
        .unwrap();
    assert_eq!(reader.info().width, 128 * MAX_PNG_SCALE);
    assert_eq!(frame.to_png_scaled(0), frame.to_png());
    match Framebuffer::from_png(&bytes) {
        Err(
            error @ DisplayError::PngSize {
                width: 384,
                height: 192,
            },
        ) => {
            assert_eq!(
                error.to_string(),
                "the PNG image is 384x192 pixels; a display frame is 128x64"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn from_png_reads_gray_and_color_images_by_luminance() {
    // 8-bit gray: 127 is dark, 128 lit.
    let mut gray = vec![0u8; 128 * 64];
    gray[0] = 127;
    gray[1] = 128;
    gray[128 * 63 + 127] = 255;
    let frame = Framebuffer::from_png(&encode(
        128,
        64,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &gray,
    ))
    .unwrap();
    assert_eq!(frame.lit_pixels(), 2);
    assert!(!frame.pixel(0, 0) && frame.pixel(1, 0) && frame.pixel(127, 63));

    // RGBA: pure green is bright enough (587/1000 of 255), pure blue is not; alpha is ignored.
    let mut rgba = vec![0u8; 128 * 64 * 4];
    rgba[..4].copy_from_slice(&[0, 255, 0, 0]);
    rgba[4..8].copy_from_slice(&[0, 0, 255, 255]);
    let frame = Framebuffer::from_png(&encode(
        128,
        64,
        png::ColorType::Rgba,
        png::BitDepth::Eight,
        &rgba,
    ))
    .unwrap();
    assert!(frame.pixel(0, 0) && !frame.pixel(1, 0));
    assert_eq!(frame.lit_pixels(), 1);

    // 16-bit gray.
    let mut wide = vec![0u8; 128 * 64 * 2];
    wide[2] = 0xFF;
    let frame = Framebuffer::from_png(&encode(
        128,
        64,
        png::ColorType::Grayscale,
        png::BitDepth::Sixteen,
        &wide,
    ))
    .unwrap();
    assert!(frame.pixel(1, 0));
    assert_eq!(frame.lit_pixels(), 1);
}

#[test]
fn from_png_refuses_other_sizes_and_other_bytes() {
    let small = encode(
        64,
        32,
        png::ColorType::Grayscale,
        png::BitDepth::Eight,
        &[0; 64 * 32],
    );
    assert!(matches!(
        Framebuffer::from_png(&small),
        Err(DisplayError::PngSize {
            width: 64,
            height: 32
        })
    ));
    let error = Framebuffer::from_png(b"GIF89a not a png").unwrap_err();
    assert!(matches!(error, DisplayError::PngDecode { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with("not a readable PNG image: "),
        "{error}"
    );
    let mut truncated = Framebuffer::new().to_png();
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        Framebuffer::from_png(&truncated),
        Err(DisplayError::PngDecode { .. })
    ));
    assert!(Framebuffer::from_png(&[]).is_err());
}
