//! The pieces screens are made of: text placement with font fallback, the status bar, the step indicator.

use embedded_graphics::Drawable;
use embedded_graphics::mono_font::iso_8859_1::{
    FONT_4X6, FONT_5X8, FONT_6X10, FONT_7X13_BOLD, FONT_9X15_BOLD, FONT_10X20,
};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{Point, Primitive, Size};
use embedded_graphics::primitives::{PrimitiveStyleBuilder, Rectangle, StrokeAlignment};
use embedded_graphics::text::{Baseline, Text};

use crate::framebuffer::Framebuffer;
use crate::text::{columns, elide_middle};
use crate::{HEIGHT, WIDTH};

/// The state word and the main figure: read at arm's length.
pub(crate) const BIG: &MonoFont<'static> = &FONT_10X20;
/// Figures that must be read but are too long for [`BIG`] (key index, key count).
pub(crate) const FIGURE: &MonoFont<'static> = &FONT_9X15_BOLD;
/// Between [`FIGURE`] and [`SMALL`]: long error reasons.
pub(crate) const MEDIUM: &MonoFont<'static> = &FONT_7X13_BOLD;
/// Details: 21 characters to a line.
pub(crate) const SMALL: &MonoFont<'static> = &FONT_6X10;
/// Details too long for [`SMALL`]: 25 characters to a line.
pub(crate) const SMALLER: &MonoFont<'static> = &FONT_5X8;
/// The last resort: 32 characters to a line, for a bench-side look, not at arm's length.
pub(crate) const TINY: &MonoFont<'static> = &FONT_4X6;

/// Draws anything onto a framebuffer (which cannot fail).
pub(crate) fn draw<D>(frame: &mut Framebuffer, drawable: &D)
where
    D: Drawable<Color = BinaryColor>,
{
    if let Err(never) = drawable.draw(frame) {
        match never {}
    }
}

/// Width in pixels of `text` in `font`.
pub(crate) fn text_width(text: &str, font: &MonoFont<'_>) -> u32 {
    let count = u32::try_from(columns(text)).unwrap_or(u32::MAX);
    let advance = font.character_size.width + font.character_spacing;
    count.saturating_mul(advance)
}

/// Characters of `font` that fit across `width` pixels.
pub(crate) fn fitting_columns(font: &MonoFont<'_>, width: u32) -> usize {
    let advance = (font.character_size.width + font.character_spacing).max(1);
    (width / advance) as usize
}

/// Draws `text` with its top-left corner at (x, y).
pub(crate) fn text_at(
    frame: &mut Framebuffer,
    text: &str,
    font: &MonoFont<'_>,
    x: i32,
    y: i32,
    color: BinaryColor,
) {
    let style = MonoTextStyle::new(font, color);
    draw(
        frame,
        &Text::with_baseline(text, Point::new(x, y), style, Baseline::Top),
    );
}

/// Left edge that centers `width` pixels on the panel.
pub(crate) fn centered_x(width: u32) -> i32 {
    // Both are at most WIDTH (or the difference is clamped to 0): no overflow.
    (WIDTH.saturating_sub(width) / 2) as i32
}

/// Draws `text` centered horizontally, its top at `y`.
pub(crate) fn centered(
    frame: &mut Framebuffer,
    text: &str,
    font: &MonoFont<'_>,
    y: i32,
    color: BinaryColor,
) {
    let x = centered_x(text_width(text, font));
    text_at(frame, text, font, x, y, color);
}

/// The first of `choices` (text and font) that fits across the panel; failing all, the
/// last text elided in the middle to fit in the last font.
pub(crate) fn fit<'a>(choices: &[(String, &'a MonoFont<'a>)]) -> (String, &'a MonoFont<'a>) {
    for (text, font) in choices {
        if text_width(text, font) <= WIDTH {
            return (text.clone(), font);
        }
    }
    match choices.last() {
        Some((text, font)) => (elide_middle(text, fitting_columns(font, WIDTH)), *font),
        None => (String::new(), SMALL),
    }
}

/// Draws the first of `choices` that fits (see [`fit`]), centered, its top at `y`; a smaller
/// font is moved down to sit on the same bottom line as the first choice's.
pub(crate) fn centered_fit(
    frame: &mut Framebuffer,
    choices: &[(String, &MonoFont<'_>)],
    y: i32,
    color: BinaryColor,
) {
    let first_height = choices
        .first()
        .map_or(0, |(_, font)| font.character_size.height);
    let (text, font) = fit(choices);
    let drop = first_height.saturating_sub(font.character_size.height);
    // Font heights are at most 20 pixels.
    centered(frame, &text, font, y + drop as i32, color);
}

/// How the status bar looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BarStyle {
    /// Light text over a line: normal operation.
    Plain,
    /// Dark text on a lit band: something needs attention.
    Inverted,
}

/// Height of the status bar; the screen body starts below it.
pub(crate) const STATUS_BAR_HEIGHT: u32 = 12;
/// Characters the right-hand text of the status bar keeps at most.
const STATUS_RIGHT_MAX: usize = 12;

/// The top 12 rows: a context on the left (operator, port, alert), a short status on the
/// right, in [`SMALL`]. Rows 1 to 10 hold the text (left text from x = 1, right text ending
/// at x = 126); a plain bar has its line on row 11, an inverted bar lights rows 0 to 11.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusBar<'a> {
    pub(crate) left: &'a str,
    pub(crate) right: &'a str,
    pub(crate) style: BarStyle,
}

impl StatusBar<'_> {
    pub(crate) fn draw(&self, frame: &mut Framebuffer) {
        let text_color = match self.style {
            BarStyle::Plain => {
                fill(frame, 0, STATUS_BAR_HEIGHT - 1, WIDTH, 1);
                BinaryColor::On
            }
            BarStyle::Inverted => {
                fill(frame, 0, 0, WIDTH, STATUS_BAR_HEIGHT);
                BinaryColor::Off
            }
        };
        let capacity = fitting_columns(SMALL, WIDTH - 2);
        let right = elide_middle(self.right, STATUS_RIGHT_MAX);
        let right_columns = columns(&right);
        let left_capacity = if right_columns == 0 {
            capacity
        } else {
            capacity.saturating_sub(right_columns + 1)
        };
        let left = elide_middle(self.left, left_capacity);
        text_at(frame, &left, SMALL, 1, 1, text_color);
        // The right text is at most 12 characters (72 pixels) wide.
        let right_x = (WIDTH - 1 - text_width(&right, SMALL)) as i32;
        text_at(frame, &right, SMALL, right_x, 1, text_color);
    }
}

/// Lights a `width` x `height` rectangle whose top-left corner is (x, y).
pub(crate) fn fill(frame: &mut Framebuffer, x: u32, y: u32, width: u32, height: u32) {
    for row in y..(y + height).min(HEIGHT) {
        for column in x..(x + width).min(WIDTH) {
            frame.set_pixel(column, row, true);
        }
    }
}

/// Height of the step indicator.
pub(crate) const STEPS_HEIGHT: u32 = 7;
/// Gap between two steps.
const STEPS_GAP: u32 = 4;

/// A row of `total` boxes across the panel, the first `done` of them filled, the others
/// outlined: with 4 steps each box is 29 pixels wide and they start at x = 0, 33, 66 and 99.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepIndicator {
    pub(crate) done: u32,
    pub(crate) total: u32,
    pub(crate) top: u32,
}

impl StepIndicator {
    pub(crate) fn draw(&self, frame: &mut Framebuffer) {
        let total = self.total.max(1);
        let box_width = (WIDTH - STEPS_GAP * (total - 1)) / total;
        let outline = PrimitiveStyleBuilder::new()
            .stroke_color(BinaryColor::On)
            .stroke_width(1)
            .stroke_alignment(StrokeAlignment::Inside)
            .build();
        for step in 0..total {
            let x = step * (box_width + STEPS_GAP);
            if step < self.done {
                fill(frame, x, self.top, box_width, STEPS_HEIGHT);
            } else {
                // Coordinates are below WIDTH and HEIGHT.
                let rectangle = Rectangle::new(
                    Point::new(x as i32, self.top as i32),
                    Size::new(box_width, STEPS_HEIGHT),
                );
                draw(frame, &rectangle.into_styled(outline));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(frame: &Framebuffer, y: u32) -> String {
        (0..WIDTH)
            .map(|x| if frame.pixel(x, y) { '#' } else { '.' })
            .collect()
    }

    fn lit_in(frame: &Framebuffer, xs: std::ops::Range<u32>, ys: std::ops::Range<u32>) -> usize {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| frame.pixel(x, y))
            .count()
    }

    #[test]
    fn step_indicator_fills_done_steps_and_outlines_the_rest() {
        let mut frame = Framebuffer::new();
        StepIndicator {
            done: 2,
            total: 4,
            top: 40,
        }
        .draw(&mut frame);
        let filled = format!("{0}....{0}....", "#".repeat(29));
        let outlined_edge = "#".repeat(29);
        let outlined_middle = format!("#{}#", ".".repeat(27));
        let top_and_bottom = format!("{filled}{outlined_edge}....{outlined_edge}");
        let middle = format!("{filled}{outlined_middle}....{outlined_middle}");
        assert_eq!(row(&frame, 40), top_and_bottom);
        for y in 41..46 {
            assert_eq!(row(&frame, y), middle, "row {y}");
        }
        assert_eq!(row(&frame, 46), top_and_bottom);
        assert_eq!(row(&frame, 39), ".".repeat(128));
        assert_eq!(row(&frame, 47), ".".repeat(128));
        // 2 boxes of 29 x 7, and 2 outlines of 2 * 29 + 2 * 5 pixels.
        assert_eq!(frame.lit_pixels(), 2 * 29 * 7 + 2 * (2 * 29 + 2 * 5));
    }

    #[test]
    fn step_indicator_all_done_and_none_done() {
        let mut all = Framebuffer::new();
        StepIndicator {
            done: 4,
            total: 4,
            top: 0,
        }
        .draw(&mut all);
        assert_eq!(all.lit_pixels(), 4 * 29 * 7);
        for x in [29, 30, 31, 32, 62, 63, 64, 65, 95, 96, 97, 98] {
            assert!(!all.pixel(x, 3), "gap column {x} is lit");
        }
        let mut none = Framebuffer::new();
        StepIndicator {
            done: 0,
            total: 4,
            top: 0,
        }
        .draw(&mut none);
        assert_eq!(none.lit_pixels(), 4 * (2 * 29 + 2 * 5));
        assert!(none.pixel(0, 0) && none.pixel(127, 6) && !none.pixel(1, 1));
    }

    #[test]
    fn plain_status_bar_has_its_line_on_row_11_and_text_above() {
        let mut frame = Framebuffer::new();
        StatusBar {
            left: "bench-1",
            right: "step 2/4",
            style: BarStyle::Plain,
        }
        .draw(&mut frame);
        assert_eq!(row(&frame, 11), "#".repeat(128));
        assert_eq!(row(&frame, 0), ".".repeat(128), "row 0 stays dark");
        // "bench-1": 7 characters from x = 1 (x 1..43); "step 2/4": 8 characters ending at
        // x = 126 (x 79..127); nothing in between, nothing at the edges, nothing below.
        assert!(lit_in(&frame, 1..43, 1..11) > 0);
        assert!(lit_in(&frame, 79..127, 1..11) > 0);
        assert_eq!(lit_in(&frame, 43..79, 0..11), 0);
        assert_eq!(lit_in(&frame, 0..1, 0..11), 0);
        assert_eq!(lit_in(&frame, 127..128, 0..11), 0);
        assert_eq!(lit_in(&frame, 0..128, 12..64), 0);
    }

    #[test]
    fn inverted_status_bar_lights_rows_0_to_11_around_dark_text() {
        let mut empty = Framebuffer::new();
        StatusBar {
            left: "",
            right: "",
            style: BarStyle::Inverted,
        }
        .draw(&mut empty);
        for y in 0..12 {
            assert_eq!(row(&empty, y), "#".repeat(128), "row {y}");
        }
        assert_eq!(empty.lit_pixels(), 128 * 12);

        let mut frame = Framebuffer::new();
        StatusBar {
            left: "ERROR",
            right: "bench-2",
            style: BarStyle::Inverted,
        }
        .draw(&mut frame);
        // Row 0 and row 11 stay fully lit; the text darkens pixels only within its boxes:
        // "ERROR" in x 1..31, "bench-2" in x 85..127.
        assert_eq!(row(&frame, 0), "#".repeat(128));
        assert_eq!(row(&frame, 11), "#".repeat(128));
        let dark_in = |xs: std::ops::Range<u32>| {
            (1..11)
                .flat_map(|y| xs.clone().map(move |x| (x, y)))
                .filter(|&(x, y)| !frame.pixel(x, y))
                .count()
        };
        assert!(dark_in(1..31) > 0);
        assert!(dark_in(85..127) > 0);
        assert_eq!(dark_in(31..85), 0);
        assert_eq!(dark_in(0..1) + dark_in(127..128), 0);
    }

    #[test]
    fn status_bar_elides_a_long_left_text_before_the_right_one() {
        let mut frame = Framebuffer::new();
        let long = "a-very-long-port-name-of-32-char";
        StatusBar {
            left: long,
            right: "step 2/4",
            style: BarStyle::Plain,
        }
        .draw(&mut frame);
        // 21 columns fit between x = 1 and x = 126; "step 2/4" and a space take 9 of them,
        // so the left text is cut to 12 characters (x 1..73), and the space x 73..79 stays dark.
        assert!(lit_in(&frame, 67..73, 1..11) > 0);
        assert_eq!(lit_in(&frame, 73..79, 1..11), 0);
        assert!(lit_in(&frame, 79..127, 1..11) > 0);
    }

    #[test]
    fn fit_falls_back_to_smaller_fonts_then_elides() {
        let serial = "ABCDEFGHIJKLMNOPQRSTUVWX".to_owned();
        let choices = [
            (format!("SN {serial}"), SMALL),
            (serial.clone(), SMALL),
            (serial.clone(), SMALLER),
        ];
        let (text, font) = fit(&choices);
        assert_eq!(text, serial);
        assert_eq!(font.character_size, SMALLER.character_size);
        let too_long = "X".repeat(40);
        let (text, font) = fit(&[(too_long, TINY)]);
        assert_eq!(columns(&text), 32);
        assert!(text.contains(".."));
        assert_eq!(font.character_size, TINY.character_size);
    }
}
