//! Each screen's layout: the state word or main figure big, details small, from fixed rows.

use embedded_graphics::mono_font::MonoFont;
use embedded_graphics::pixelcolor::BinaryColor;

use crate::framebuffer::Framebuffer;
use crate::text::{elide_middle, one_line, port_label, thousands, wrap};
use crate::widgets::{
    BIG, BarStyle, FIGURE, MEDIUM, SMALL, SMALLER, STATUS_BAR_HEIGHT, StatusBar, StepIndicator,
    TINY, centered, centered_fit, centered_x, fill, fitting_columns, text_at, text_width,
};
use crate::{HEIGHT, InjectionStep, LockReason, NotConfirmedCause, Screen, WIDTH};

const ON: BinaryColor = BinaryColor::On;
const OFF: BinaryColor = BinaryColor::Off;

/// Draws `screen` into a fresh frame.
pub(crate) fn render(screen: &Screen) -> Framebuffer {
    let mut frame = Framebuffer::new();
    match screen {
        Screen::Booting { version } => booting(&mut frame, version),
        Screen::Locked { reason } => locked(&mut frame, reason),
        Screen::Ready {
            keys_left,
            ports_open,
            ports_total,
            operator,
        } => ready(
            &mut frame,
            *keys_left,
            *ports_open,
            *ports_total,
            operator.as_deref(),
        ),
        Screen::Injecting {
            port,
            hardware_serial,
            step,
        } => injecting(&mut frame, port, hardware_serial, *step),
        Screen::Injected {
            port,
            key_index,
            smn,
            low_inventory,
        } => injected(&mut frame, port, *key_index, smn, *low_inventory),
        Screen::NotConfirmed {
            port,
            hardware_serial,
            key_index,
            cause,
        } => not_confirmed(&mut frame, port, hardware_serial, *key_index, *cause),
        Screen::Error { port, reason } => error(&mut frame, port.as_deref(), reason),
        Screen::LowInventory {
            keys_left,
            ports_open,
            operator,
        } => low_inventory(&mut frame, *keys_left, *ports_open, operator.as_deref()),
        Screen::Tamper => tamper(&mut frame),
    }
    frame
}

/// What the status bar shows on the left when no operator or port is to be named.
const PRODUCT: &str = "keymother";

fn booting(frame: &mut Framebuffer, version: &str) {
    let version = one_line(version);
    let version = if version.is_empty() || version.starts_with(['v', 'V']) {
        version
    } else {
        format!("v{version}")
    };
    StatusBar {
        left: PRODUCT,
        right: "",
        style: BarStyle::Plain,
    }
    .draw(frame);
    centered(frame, "STARTING", BIG, 15, ON);
    centered(frame, "please wait", SMALL, 40, ON);
    let version = elide_middle(&version, fitting_columns(SMALL, WIDTH));
    centered(frame, &version, SMALL, 52, ON);
}

/// The two short lines under LOCKED: what is wrong, then who acts.
pub(crate) fn lock_lines(reason: &LockReason) -> [&'static str; 2] {
    match reason {
        LockReason::NoKeys => ["KEK/TTK not loaded", "key ceremony needed"],
        LockReason::NoOperator => ["no operator logged in", "log in to inject"],
        LockReason::Tampered => ["tamper: keys erased", "call the custodians"],
        LockReason::Zeroized => ["keys zeroized", "call the custodians"],
    }
}

fn locked(frame: &mut Framebuffer, reason: &LockReason) {
    StatusBar {
        left: PRODUCT,
        right: "",
        style: BarStyle::Plain,
    }
    .draw(frame);
    centered(frame, "LOCKED", BIG, 15, ON);
    let [what, action] = lock_lines(reason);
    centered(frame, what, SMALL, 40, ON);
    centered(frame, action, SMALL, 52, ON);
}

/// "1 key" / "12 keys".
fn keys_word(count: u64) -> &'static str {
    if count == 1 { "key" } else { "keys" }
}

fn ready(
    frame: &mut Framebuffer,
    keys_left: u64,
    ports_open: usize,
    ports_total: usize,
    operator: Option<&str>,
) {
    let operator = operator.map(one_line).filter(|name| !name.is_empty());
    StatusBar {
        left: operator.as_deref().unwrap_or(PRODUCT),
        right: &format!("ports {ports_open}/{ports_total}"),
        style: BarStyle::Plain,
    }
    .draw(frame);
    centered(frame, "READY", BIG, 13, ON);
    key_count(frame, keys_left, 35);
    centered(frame, "connect a terminal", SMALL, 54, ON);
}

/// "99,999,999 keys": the number in [`FIGURE`] and the word in [`SMALL`], sharing their
/// bottom line, centered; smaller fonts for numbers too long for that.
fn key_count(frame: &mut Framebuffer, count: u64, top: i32) {
    let number = thousands(count);
    let word = format!(" {}", keys_word(count));
    let pairs: [(&MonoFont<'_>, &MonoFont<'_>); 5] = [
        (FIGURE, SMALL),
        (MEDIUM, SMALL),
        (SMALL, SMALL),
        (SMALLER, SMALLER),
        (TINY, TINY),
    ];
    let (number_font, word_font) = pairs
        .iter()
        .copied()
        .find(|(number_font, word_font)| {
            text_width(&number, number_font) + text_width(&word, word_font) <= WIDTH
        })
        .unwrap_or((TINY, TINY));
    let number_width = text_width(&number, number_font);
    let x = centered_x(number_width + text_width(&word, word_font));
    // Bottom-align both parts on the bottom of a FIGURE line; fonts are at most 20 pixels.
    let bottom = top + FIGURE.character_size.height as i32;
    let number_top = bottom - number_font.character_size.height as i32;
    let word_top = bottom - word_font.character_size.height as i32;
    text_at(frame, &number, number_font, x, number_top, ON);
    let word_x = x.saturating_add(i32::try_from(number_width).unwrap_or(i32::MAX));
    text_at(frame, &word, word_font, word_x, word_top, ON);
}

/// Where an injection is, as "step N/4" and a few words.
pub(crate) fn step_number_and_label(step: InjectionStep) -> (u32, &'static str) {
    match step {
        InjectionStep::Hello => (1, "terminal connected"),
        InjectionStep::KeyRequested => (2, "key requested"),
        InjectionStep::Delivered => (3, "key sent"),
        InjectionStep::Confirming => (4, "confirming"),
    }
}

/// Number of steps an injection goes through.
const INJECTION_STEPS: u32 = 4;

fn injecting(frame: &mut Framebuffer, port: &str, hardware_serial: &str, step: InjectionStep) {
    let (number, label) = step_number_and_label(step);
    StatusBar {
        left: &port_label(port),
        right: &format!("step {number}/{INJECTION_STEPS}"),
        style: BarStyle::Plain,
    }
    .draw(frame);
    centered(frame, "INJECTING", BIG, 13, ON);
    let serial = one_line(hardware_serial);
    centered_fit(
        frame,
        &[
            (format!("SN {serial}"), SMALL),
            (serial.clone(), SMALL),
            (serial, SMALLER),
        ],
        34,
        ON,
    );
    StepIndicator {
        done: number,
        total: INJECTION_STEPS,
        top: 45,
    }
    .draw(frame);
    centered(frame, label, SMALL, 54, ON);
}

fn injected(
    frame: &mut Framebuffer,
    port: &str,
    key_index: u32,
    smn: &str,
    low_inventory: Option<u64>,
) {
    let port = port_label(port);
    let (right, style) = match low_inventory {
        None => ("SMN saved".to_owned(), BarStyle::Plain),
        Some(keys_left) => (keys_left_note(keys_left), BarStyle::Inverted),
    };
    StatusBar {
        left: &port,
        right: &right,
        style,
    }
    .draw(frame);
    centered(frame, "INJECTED", BIG, 13, ON);
    centered(frame, &format!("key {key_index:08}"), FIGURE, 34, ON);
    let smn = one_line(smn);
    centered_fit(
        frame,
        &[
            (format!("SMN {smn}"), SMALL),
            (smn.clone(), SMALL),
            (smn.clone(), SMALLER),
            (smn, TINY),
        ],
        53,
        ON,
    );
}

/// The low-inventory note of an INJECTED status bar, at most 12 characters where it can
/// be: "1 key left", "12 keys left", "1,000 left".
pub(crate) fn keys_left_note(keys_left: u64) -> String {
    let long = format!("{keys_left} {} left", keys_word(keys_left));
    if long.chars().count() <= 12 {
        long
    } else {
        format!("{} left", thousands(keys_left))
    }
}

/// The words of the error screen for a delivery never confirmed: why, in plain words.
pub(crate) fn not_confirmed_words(cause: NotConfirmedCause) -> &'static str {
    match cause {
        NotConfirmedCause::StoppedAnswering => "stopped answering",
        NotConfirmedCause::PortLost => "port or cable lost",
        NotConfirmedCause::Aborted => "terminal aborted",
    }
}

/// A delivery never confirmed: ERROR and the port in the inverted bar, NOT CONFIRMED, the
/// terminal's serial, why, and the key kept for it.
fn not_confirmed(
    frame: &mut Framebuffer,
    port: &str,
    hardware_serial: &str,
    key_index: Option<u32>,
    cause: NotConfirmedCause,
) {
    StatusBar {
        left: "ERROR",
        right: &port_label(port),
        style: BarStyle::Inverted,
    }
    .draw(frame);
    centered(frame, "NOT CONFIRMED", FIGURE, 14, ON);
    let serial = one_line(hardware_serial);
    centered_fit(
        frame,
        &[
            (format!("SN {serial}"), SMALL),
            (serial.clone(), SMALL),
            (serial.clone(), SMALLER),
            (serial, TINY),
        ],
        31,
        ON,
    );
    centered(frame, not_confirmed_words(cause), SMALL, 42, ON);
    let kept = match key_index {
        Some(key_index) => format!("key {key_index:08} kept"),
        None => "its key is kept".to_owned(),
    };
    centered(frame, &kept, SMALL, 53, ON);
}

/// What the error screen says when the caller gave no reason.
const NO_REASON: &str = "see the journal";

fn error(frame: &mut Framebuffer, port: Option<&str>, reason: &str) {
    let port = port.map(port_label).unwrap_or_default();
    StatusBar {
        left: "ERROR",
        right: &port,
        style: BarStyle::Inverted,
    }
    .draw(frame);
    let reason = match one_line(reason) {
        empty if empty.is_empty() => NO_REASON.to_owned(),
        reason => reason,
    };
    let (lines, font) = reason_lines(&reason);
    body_lines(frame, &lines, font, ON);
}

/// The body below the status bar: rows 12 to 63.
const BODY_TOP: u32 = STATUS_BAR_HEIGHT;
const BODY_HEIGHT: u32 = HEIGHT - STATUS_BAR_HEIGHT;

/// An error reason wrapped in the largest font it fits in; too long for the smallest, its
/// last line ends with "..".
fn reason_lines(reason: &str) -> (Vec<String>, &'static MonoFont<'static>) {
    let fonts: [&'static MonoFont<'static>; 3] = [FIGURE, MEDIUM, SMALL];
    for font in fonts {
        let lines = wrap(reason, fitting_columns(font, WIDTH));
        let capacity = (BODY_HEIGHT / font.character_size.height) as usize;
        if lines.len() <= capacity {
            return (lines, font);
        }
    }
    let width = fitting_columns(SMALL, WIDTH);
    let capacity = (BODY_HEIGHT / SMALL.character_size.height) as usize;
    let mut lines = wrap(reason, width);
    lines.truncate(capacity);
    if let Some(last) = lines.last_mut() {
        // The text goes on: end the last line with "..", within the width.
        let mut cut: String = last.chars().take(width.saturating_sub(2)).collect();
        cut.truncate(cut.trim_end().len());
        cut.push_str("..");
        *last = cut;
    }
    (lines, SMALL)
}

/// Lines centered horizontally, and as a block vertically in the body.
fn body_lines(frame: &mut Framebuffer, lines: &[String], font: &MonoFont<'_>, color: BinaryColor) {
    let line_height = font.character_size.height;
    let count = u32::try_from(lines.len()).unwrap_or(u32::MAX);
    let block = count.saturating_mul(line_height).min(BODY_HEIGHT);
    let mut y = BODY_TOP + (BODY_HEIGHT - block) / 2;
    for line in lines {
        // y < HEIGHT.
        centered(frame, line, font, y as i32, color);
        y += line_height;
    }
}

fn low_inventory(
    frame: &mut Framebuffer,
    keys_left: u64,
    ports_open: usize,
    operator: Option<&str>,
) {
    StatusBar {
        left: "LOW INVENTORY",
        right: &format!("ports {ports_open}"),
        style: BarStyle::Inverted,
    }
    .draw(frame);
    let number = thousands(keys_left);
    centered_fit(
        frame,
        &[
            (number.clone(), BIG),
            (number.clone(), FIGURE),
            (number.clone(), MEDIUM),
            (number.clone(), SMALL),
            (number, TINY),
        ],
        13,
        ON,
    );
    let left = if keys_left == 1 {
        "key left"
    } else {
        "keys left"
    };
    centered(frame, left, SMALL, 33, ON);
    centered(frame, "load a key file soon", SMALL, 43, ON);
    if let Some(operator) = operator.map(one_line).filter(|name| !name.is_empty()) {
        let line = format!("operator {operator}");
        let line = elide_middle(&line, fitting_columns(SMALL, WIDTH));
        centered(frame, &line, SMALL, 54, ON);
    }
}

fn tamper(frame: &mut Framebuffer) {
    fill(frame, 0, 0, WIDTH, HEIGHT);
    centered(frame, "TAMPER", BIG, 13, OFF);
    centered(frame, "keys erased", SMALL, 38, OFF);
    centered(frame, "call security officer", SMALL, 50, OFF);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_line_fits_the_panel() {
        let reasons = [
            LockReason::NoKeys,
            LockReason::NoOperator,
            LockReason::Tampered,
            LockReason::Zeroized,
        ];
        let steps = [
            InjectionStep::Hello,
            InjectionStep::KeyRequested,
            InjectionStep::Delivered,
            InjectionStep::Confirming,
        ];
        let small_lines = reasons
            .iter()
            .flat_map(lock_lines)
            .chain(steps.iter().map(|step| step_number_and_label(*step).1))
            .chain([
                "please wait",
                "connect a terminal",
                "load a key file soon",
                "keys erased",
                "call security officer",
                NO_REASON,
                "its key is kept",
            ])
            .chain(
                [
                    NotConfirmedCause::StoppedAnswering,
                    NotConfirmedCause::PortLost,
                    NotConfirmedCause::Aborted,
                ]
                .map(not_confirmed_words),
            );
        for line in small_lines {
            assert!(text_width(line, SMALL) <= WIDTH - 2, "{line:?}");
        }
        for word in [
            "STARTING",
            "LOCKED",
            "READY",
            "INJECTING",
            "INJECTED",
            "TAMPER",
        ] {
            assert!(text_width(word, BIG) <= WIDTH - 2, "{word:?}");
        }
        assert!(text_width(&format!("key {:08}", u32::MAX), FIGURE) <= WIDTH);
        assert!(text_width("NOT CONFIRMED", FIGURE) <= WIDTH - 2);
        assert!(text_width(&format!("key {:08} kept", u32::MAX), SMALL) <= WIDTH);
    }

    #[test]
    fn the_low_inventory_note_fits_the_status_bar() {
        assert_eq!(keys_left_note(1), "1 key left");
        assert_eq!(keys_left_note(12), "12 keys left");
        assert_eq!(keys_left_note(0), "0 keys left");
        assert_eq!(keys_left_note(999), "999 left");
        assert_eq!(keys_left_note(12_000), "12,000 left");
    }

    #[test]
    fn short_reasons_use_the_figure_font() {
        let (lines, font) = reason_lines("no TTK loaded");
        assert_eq!(lines, ["no TTK loaded"]);
        assert_eq!(font.character_size, FIGURE.character_size);
    }

    #[test]
    fn longer_reasons_step_down_and_the_longest_are_cut() {
        let (lines, font) = reason_lines(
            "terminal sent a KCV that does not match the key: check the terminal's key slot",
        );
        assert!(lines.len() <= 5);
        assert_eq!(font.character_size, SMALL.character_size);
        let (lines, font) = reason_lines(&"word ".repeat(60));
        assert_eq!(lines.len(), 5);
        assert_eq!(font.character_size, SMALL.character_size);
        let last = lines.last().cloned().unwrap_or_default();
        assert!(last.ends_with(".."), "{last:?}");
        assert!(last.chars().count() <= 21, "{last:?}");
    }
}
