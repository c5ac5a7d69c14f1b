//! Text shaping for a 21-column panel: cleaning, eliding, wrapping and number formatting.

/// `text` on one line: control characters (line breaks, tabs, ...) become spaces, runs of
/// spaces collapse to one, and the ends are trimmed.
pub(crate) fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for character in text.chars() {
        let character = if character.is_control() || character.is_whitespace() {
            ' '
        } else {
            character
        };
        if character == ' ' && (line.is_empty() || line.ends_with(' ')) {
            continue;
        }
        line.push(character);
    }
    if line.ends_with(' ') {
        line.pop();
    }
    line
}

/// Number of characters (every glyph of a mono font has the same width).
pub(crate) fn columns(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to at most `max` characters by replacing its middle with "..": both the start
/// and the distinctive end of serials, SMNs and port names stay readable.
pub(crate) fn elide_middle(text: &str, max: usize) -> String {
    let length = columns(text);
    if length <= max {
        return text.to_owned();
    }
    if max < 4 {
        return text.chars().take(max).collect();
    }
    let kept = max - 2;
    let head = kept.div_ceil(2);
    let tail = kept - head;
    let mut elided: String = text.chars().take(head).collect();
    elided.push_str("..");
    elided.extend(text.chars().skip(length - tail));
    elided
}

/// Greedy word wrap to lines of at most `width` characters; a word longer than a line is
/// split. The text is first put on one line (see [`one_line`]). An empty text gives no line.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in one_line(text).split(' ').filter(|word| !word.is_empty()) {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = columns(&current);
            let needed = if used == 0 {
                word.len()
            } else {
                used + 1 + word.len()
            };
            if needed <= width {
                if used > 0 {
                    current.push(' ');
                }
                current.extend(word.iter());
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut current));
                continue;
            }
            // An empty line and a word longer than it: split the word.
            let rest = word.split_off(width);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

/// `number` with a comma between groups of three digits: 99999999 -> "99,999,999".
pub(crate) fn thousands(number: u64) -> String {
    let digits = number.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A port name as the display shows it: without a leading "/dev/".
pub(crate) fn port_label(port: &str) -> String {
    let port = one_line(port);
    match port.strip_prefix("/dev/") {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_removes_line_breaks_and_repeated_spaces() {
        assert_eq!(one_line("  no\nTTK\t\tloaded \r\n"), "no TTK loaded");
        assert_eq!(one_line(""), "");
        assert_eq!(one_line(" \n "), "");
    }

    #[test]
    fn elide_middle_keeps_both_ends() {
        assert_eq!(elide_middle("123L013K", 8), "123L013K");
        assert_eq!(elide_middle("ABCDEFGHIJKLMNOPQRSTUVWX", 12), "ABCDE..TUVWX");
        assert_eq!(elide_middle("ABCDEFGHIJ", 9), "ABCD..HIJ");
        assert_eq!(columns(&elide_middle("ABCDEFGHIJ", 9)), 9);
        assert_eq!(elide_middle("ABCDEFGHIJ", 3), "ABC");
    }

    #[test]
    fn wrap_breaks_between_words_and_splits_long_words() {
        assert_eq!(
            wrap("KCV mismatch: check the terminal", 14),
            ["KCV mismatch:", "check the", "terminal"]
        );
        assert_eq!(wrap("ABCDEFGHIJKLMNOP", 6), ["ABCDEF", "GHIJKL", "MNOP"]);
        assert_eq!(wrap("ab ABCDEFGHIJ", 6), ["ab", "ABCDEF", "GHIJ"]);
        assert!(wrap("  ", 6).is_empty());
        for line in wrap("a bb ccc dddd eeeee ffffff ggggggg", 6) {
            assert!(columns(&line) <= 6, "{line:?}");
        }
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(99_999_999), "99,999,999");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn port_label_drops_dev() {
        assert_eq!(port_label("/dev/ttyUSB0"), "ttyUSB0");
        assert_eq!(port_label("bench-1"), "bench-1");
        assert_eq!(port_label("/dev/"), "/dev/");
    }
}
