//! How a setting names a GPIO line: a BCM number, a line name, or a chip and an offset; parsed and checked here, found on the machine by the character-device back end.

use std::fmt;

/// The highest BCM line on the Raspberry Pi's 40-pin header.
pub const MAX_BCM: u8 = 27;

/// The longest line name the kernel reports (`GPIO_MAX_NAMELEN` is 32 bytes with the NUL).
pub const MAX_LINE_NAME: usize = 31;

/// One GPIO line as `[bench]` names it.
///
/// - `23` (a number): BCM 23, the line at offset 23 of the Raspberry Pi's own GPIO chip
///   (the one labelled `pinctrl-bcm2835`, `pinctrl-bcm2711` or `pinctrl-rp1`; see
///   [`crate::PI_CHIP_LABELS`]). On the Pi, BCM numbers are that chip's offsets whatever
///   the device tree calls the lines.
/// - `"GPIO23"` (a name): the line the device tree names so (`gpio-line-names`), searched
///   on every `/dev/gpiochip*`; exactly one line may have the name.
/// - `"gpiochip0:23"`: the line at offset 23 of `/dev/gpiochip0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LineSpec {
    /// A BCM GPIO number: an offset of the Raspberry Pi's own GPIO chip.
    Bcm(u8),
    /// A line name, unique among all GPIO chips.
    Name(String),
    /// A chip's device name (`gpiochipN`, under `/dev`) and a line offset on it.
    ChipOffset { chip: String, offset: u32 },
}

impl LineSpec {
    /// A line named by a number in the settings: BCM 0 to [`MAX_BCM`].
    pub fn bcm(number: i64) -> Result<LineSpec, String> {
        match u8::try_from(number) {
            Ok(pin) if pin <= MAX_BCM => Ok(LineSpec::Bcm(pin)),
            _ => Err(format!(
                "{number} is outside 0 to {MAX_BCM} (a BCM GPIO number on the 40-pin header)"
            )),
        }
    }

    /// A line named by a string in the settings: `"gpiochipN:OFFSET"` or a line name. The
    /// error says what is wrong, for the settings' error (which adds file, line and key).
    pub fn parse(text: &str) -> Result<LineSpec, String> {
        const EXAMPLES: &str =
            "a line name such as \"GPIO23\", or a chip and offset such as \"gpiochip0:23\"";
        if text.is_empty() {
            return Err(format!("the line is empty: give {EXAMPLES}"));
        }
        if text.trim() != text {
            return Err(format!("{text:?} has spaces around it"));
        }
        if text.chars().any(char::is_control) {
            return Err(format!("{text:?} holds a control character"));
        }
        if text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(format!(
                "{text:?} is a number in quotes: write {text} without quotes for BCM {text}, or the line's name (\"GPIO{text}\")"
            ));
        }
        if text.starts_with("/dev/") {
            return Err(format!(
                "{text:?}: name the chip without /dev/ (e.g. \"gpiochip0:23\")"
            ));
        }
        if let Some((chip, offset)) = text.split_once(':') {
            let chip_ok = chip.strip_prefix("gpiochip").is_some_and(is_number);
            let offset = if is_number(offset) {
                offset.parse::<u32>().ok()
            } else {
                None
            };
            return match (chip_ok, offset) {
                (true, Some(offset)) => Ok(LineSpec::ChipOffset {
                    chip: chip.to_owned(),
                    offset,
                }),
                _ => Err(format!(
                    "{text:?} is not gpiochipN:OFFSET (a chip under /dev and a line offset on it, e.g. \"gpiochip0:23\"); a line name has no colon"
                )),
            };
        }
        if text.strip_prefix("gpiochip").is_some_and(is_number) {
            return Err(format!(
                "{text:?} names a chip, not a line: add the line's offset (e.g. \"{text}:23\")"
            ));
        }
        if text.len() > MAX_LINE_NAME {
            return Err(format!(
                "{text:?} is longer than {MAX_LINE_NAME} bytes, more than the kernel keeps of a line name"
            ));
        }
        Ok(LineSpec::Name(text.to_owned()))
    }

    /// Whether two settings name the same line for sure, or most likely: BCM n and the
    /// name GPIOn are the same line on a Raspberry Pi.
    pub fn same_line(&self, other: &LineSpec) -> bool {
        match (self, other) {
            (LineSpec::Bcm(number), LineSpec::Name(name))
            | (LineSpec::Name(name), LineSpec::Bcm(number)) => *name == format!("GPIO{number}"),
            _ => self == other,
        }
    }

    /// How an error about the settings names it: `BCM 23`, `"GPIO23"`, `gpiochip0:23`.
    pub fn describe(&self) -> String {
        match self {
            LineSpec::Bcm(number) => format!("BCM {number}"),
            LineSpec::Name(name) => format!("{name:?}"),
            LineSpec::ChipOffset { chip, offset } => format!("{chip}:{offset}"),
        }
    }
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

impl fmt::Display for LineSpec {
    /// The name the journal, the audit trail and `keymother status` use: `GPIO23` for BCM
    /// 23 (as pinout diagrams print it), the name itself, or `gpiochip0:23`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineSpec::Bcm(number) => write!(f, "GPIO{number}"),
            LineSpec::Name(name) => f.write_str(name),
            LineSpec::ChipOffset { chip, offset } => write!(f, "{chip}:{offset}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chip(chip: &str, offset: u32) -> LineSpec {
        LineSpec::ChipOffset {
            chip: chip.to_owned(),
            offset,
        }
    }

    #[test]
    fn names_and_chip_offsets_parse() {
        let cases = [
            ("GPIO23", LineSpec::Name("GPIO23".to_owned())),
            ("SPI_CE0_N", LineSpec::Name("SPI_CE0_N".to_owned())),
            ("tamper switch", LineSpec::Name("tamper switch".to_owned())),
            ("gpiochip0:23", chip("gpiochip0", 23)),
            ("gpiochip12:0", chip("gpiochip12", 0)),
            ("gpiochip1:007", chip("gpiochip1", 7)),
        ];
        for (text, expected) in cases {
            assert_eq!(LineSpec::parse(text), Ok(expected), "{text}");
        }
        assert_eq!(LineSpec::parse(&"A".repeat(31)).map(|_| ()), Ok(()));
    }

    #[test]
    fn bad_lines_are_refused_saying_why() {
        let cases = [
            ("", "the line is empty"),
            (" GPIO23", "has spaces around it"),
            ("GPIO23\n", "has spaces around it"),
            ("GP\u{7}IO", "control character"),
            (
                "23",
                "write 23 without quotes for BCM 23, or the line's name (\"GPIO23\")",
            ),
            ("/dev/gpiochip0:23", "name the chip without /dev/"),
            ("gpiochip0:", "is not gpiochipN:OFFSET"),
            ("gpiochip0:x", "is not gpiochipN:OFFSET"),
            ("gpiochip0:-1", "is not gpiochipN:OFFSET"),
            ("gpiochip:3", "is not gpiochipN:OFFSET"),
            ("chip0:3", "is not gpiochipN:OFFSET"),
            ("gpiochip0:99999999999", "is not gpiochipN:OFFSET"),
            ("gpiochip0:1:2", "is not gpiochipN:OFFSET"),
            (
                "gpiochip0",
                "names a chip, not a line: add the line's offset (e.g. \"gpiochip0:23\")",
            ),
            (
                "a-very-long-line-name-beyond-the-limit",
                "longer than 31 bytes",
            ),
        ];
        for (text, problem) in cases {
            let error = LineSpec::parse(text).unwrap_err();
            assert!(error.contains(problem), "{text:?}: {error}");
        }
    }

    #[test]
    fn bcm_numbers_are_the_header_lines() {
        assert_eq!(LineSpec::bcm(0), Ok(LineSpec::Bcm(0)));
        assert_eq!(LineSpec::bcm(27), Ok(LineSpec::Bcm(27)));
        for number in [28, -1, 256, i64::MAX] {
            let error = LineSpec::bcm(number).unwrap_err();
            assert_eq!(
                error,
                format!("{number} is outside 0 to 27 (a BCM GPIO number on the 40-pin header)")
            );
        }
    }

    #[test]
    fn display_same_line_and_describe() {
        assert_eq!(LineSpec::Bcm(23).to_string(), "GPIO23");
        assert_eq!(LineSpec::Name("GPIO23".to_owned()).to_string(), "GPIO23");
        assert_eq!(chip("gpiochip1", 4).to_string(), "gpiochip1:4");
        assert_eq!(LineSpec::Bcm(5).describe(), "BCM 5");
        assert_eq!(LineSpec::Name("GPIO5".to_owned()).describe(), "\"GPIO5\"");
        assert!(LineSpec::Bcm(5).same_line(&LineSpec::Name("GPIO5".to_owned())));
        assert!(LineSpec::Name("GPIO5".to_owned()).same_line(&LineSpec::Bcm(5)));
        assert!(!LineSpec::Bcm(5).same_line(&LineSpec::Name("GPIO6".to_owned())));
        assert!(!LineSpec::Bcm(5).same_line(&chip("gpiochip0", 5)));
        assert!(chip("gpiochip0", 5).same_line(&chip("gpiochip0", 5)));
        // Every display form parses back to the same line (a number displays as its name).
        for spec in [LineSpec::Name("GPIO23".to_owned()), chip("gpiochip0", 23)] {
            assert_eq!(LineSpec::parse(&spec.to_string()), Ok(spec));
        }
    }
}
