//! `keymother pending`: the keys reserved or sent to a terminal and never confirmed, as an aligned table or JSON, filtered by port and age.

use std::path::Path;

use clap::Args;
use keymother_control as api;

use crate::arguments::argument_error;
use crate::client::call;

#[derive(Args)]
pub struct PendingArguments {
    /// Machine-readable output: a JSON array, one object per pending key.
    #[arg(long)]
    json: bool,
    /// Only keys reserved on this port (its name in the settings, e.g. bench-1).
    #[arg(long)]
    port: Option<String>,
    /// Only keys reserved at least this long ago: seconds, or a number with s, m, h or d
    /// (90s, 15m, 2h, 1d).
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
}

/// An age as `--older-than` takes it: seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_age(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("not an age such as 90s, 15m, 2h or 1d".to_owned()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(factor))
        .ok_or_else(|| "not an age such as 90s, 15m, 2h or 1d".to_owned())
}

/// An age in words: `45s`, `12m 5s`, `3h 2m`, `2d 4h`.
pub fn age_words(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m {}s", seconds / 60, seconds % 60),
        3600..86_400 => format!("{}h {}m", seconds / 3600, seconds % 3600 / 60),
        _ => format!("{}d {}h", seconds / 86_400, seconds % 86_400 / 3600),
    }
}

/// A pending entry's key: `key 00000101`, or `BDK PIN device 00012`.
fn key_words(entry: &api::PendingEntry) -> String {
    match (&entry.key_index, &entry.bdk, &entry.device_id) {
        (Some(index), _, _) => format!("key {index}"),
        (None, Some(bdk), Some(device)) => format!("BDK {bdk} device {device}"),
        _ => "-".to_owned(),
    }
}

/// Columns padded to their widest cell, two spaces apart.
pub fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter_map(|row| row.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// "1 pending key", "2 pending keys".
fn count_words(count: usize) -> String {
    if count == 1 {
        "1 pending key".to_owned()
    } else {
        format!("{count} pending keys")
    }
}

fn print_table(entries: &[api::PendingEntry], filtered: bool) {
    if entries.is_empty() {
        if filtered {
            println!("no pending keys match the filters");
        } else {
            println!("no pending keys: every key reserved or sent was confirmed or voided");
        }
        return;
    }
    let mut rows = vec![
        [
            "KEY", "BATCH", "SERIAL", "STATE", "PORT", "MODEL", "AGE", "OPERATOR", "RESERVED",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for entry in entries {
        rows.push(vec![
            key_words(entry),
            entry
                .batch_id
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            entry.hardware_serial.to_string(),
            entry.state.clone(),
            entry.port.clone(),
            entry
                .terminal_model
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
            age_words(entry.age_seconds),
            entry.operator.clone().unwrap_or_else(|| "-".to_owned()),
            entry.reserved_at.clone(),
        ]);
    }
    print!("{}", aligned(&rows));
    println!("{}", count_words(entries.len()));
}

pub fn run(socket: &Path, arguments: PendingArguments) -> anyhow::Result<()> {
    let older_than_seconds = arguments
        .older_than
        .as_deref()
        .map(parse_age)
        .transpose()
        .map_err(|reason| argument_error("--older-than", reason))?;
    let filtered = arguments.port.is_some() || older_than_seconds.is_some();
    let request = api::Pending {
        port: arguments.port,
        older_than_seconds,
    };
    let entries = call(socket, request)?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print_table(&entries, filtered);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_with_their_units_and_bad_ones_are_refused() {
        assert_eq!(parse_age("90"), Ok(90));
        assert_eq!(parse_age("90s"), Ok(90));
        assert_eq!(parse_age("15m"), Ok(900));
        assert_eq!(parse_age("2h"), Ok(7200));
        assert_eq!(parse_age("1d"), Ok(86_400));
        for bad in ["", "m", "5x", "-5m", "1.5h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(age_words(59), "59s");
        assert_eq!(age_words(3725), "1h 2m");
    }
}
