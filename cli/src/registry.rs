//! `keymother smn` and `keymother inventory` with `--json` and filters: the SMN registry by batch, model and injection time, and the inventory by batch.

use std::path::Path;

use clap::Args;
use keymother_control as api;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::arguments::argument_error;
use crate::client::call;

#[derive(Args)]
pub struct SmnArguments {
    /// Machine-readable output: a JSON array, one object per SMN row.
    #[arg(long)]
    json: bool,
    /// Only rows of keys from this batch.
    #[arg(long)]
    batch: Option<String>,
    /// Only rows of terminals of this model (as their HELLO gave it).
    #[arg(long)]
    model: Option<String>,
    /// Only rows injected at or after this time: RFC 3339 (2026-12-06T08:00:00Z) or a date
    /// (its 00:00 UTC).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only rows injected before this time: RFC 3339, or a date (up to the end of that day,
    /// UTC).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

#[derive(Args)]
pub struct InventoryArguments {
    /// Machine-readable output: the counts and the batches as one JSON object.
    #[arg(long)]
    json: bool,
    /// Only this batch's line (the key counts per state stay the whole inventory's).
    #[arg(long)]
    batch: Option<String>,
}

/// A time as `--since`/`--until` take it: RFC 3339, or a date at 00:00 UTC (`end_of_day`:
/// the next day's 00:00).
fn parse_time(argument: &str, text: &str, end_of_day: bool) -> anyhow::Result<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
        return Ok(at);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text.trim(), &format).map_err(|_| {
        argument_error(
            argument,
            "not an RFC 3339 time (2026-12-06T08:00:00Z) or a date (2026-12-06)",
        )
    })?;
    let midnight = OffsetDateTime::new_utc(date, time::Time::MIDNIGHT);
    Ok(if end_of_day {
        midnight + time::Duration::days(1)
    } else {
        midnight
    })
}

/// Whether a row's injection time is within the bounds (a time that does not read is kept
/// only without bounds).
fn within(row: &api::SmnRow, since: Option<OffsetDateTime>, until: Option<OffsetDateTime>) -> bool {
    if since.is_none() && until.is_none() {
        return true;
    }
    let Ok(at) = OffsetDateTime::parse(&row.injected_at, &Rfc3339) else {
        return false;
    };
    since.is_none_or(|since| at >= since) && until.is_none_or(|until| at < until)
}

/// A registry row's re-injection marks: what it replaces (and under which grant), and what
/// replaced it.
fn reinjection_marks(row: &api::SmnRow) -> String {
    let mut marks = String::new();
    if let Some(earlier) = &row.replaces {
        marks.push_str(&format!("  RE-INJECTION of {earlier}"));
        if let (Some(grant), Some(reason)) = (row.reinjection_grant, &row.reinjection_reason) {
            marks.push_str(&format!(" (grant {grant}: {reason})"));
        }
    }
    if let Some(later) = &row.replaced_by {
        marks.push_str(&format!("  REPLACED by {later}"));
    }
    marks
}

pub fn smn(socket: &Path, arguments: SmnArguments) -> anyhow::Result<()> {
    let since = arguments
        .since
        .as_deref()
        .map(|text| parse_time("--since", text, false))
        .transpose()?;
    let until = arguments
        .until
        .as_deref()
        .map(|text| parse_time("--until", text, true))
        .transpose()?;
    let rows: Vec<api::SmnRow> = call(socket, api::SmnRows {})?
        .into_iter()
        .filter(|row| {
            arguments
                .batch
                .as_ref()
                .is_none_or(|batch| row.batch_id == batch.as_str())
        })
        .filter(|row| {
            arguments
                .model
                .as_ref()
                .is_none_or(|model| row.terminal_model == *model)
        })
        .filter(|row| within(row, since, until))
        .collect();
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    for row in &rows {
        println!(
            "{}  serial {:<12} key {:08}  KCV {}  batch {}  model {}  port {}  {}  operator {}{}",
            row.smn,
            row.hardware_serial,
            row.key_index,
            row.kcv,
            row.batch_id,
            row.terminal_model,
            row.port,
            row.injected_at,
            row.operator.as_deref().unwrap_or("-"),
            reinjection_marks(row)
        );
    }
    Ok(())
}

fn print_counts(keys: &std::collections::BTreeMap<String, u64>) {
    let parts: Vec<String> = keys
        .iter()
        .map(|(state, count)| format!("{state} {count}"))
        .collect();
    println!("keys: {}", parts.join(", "));
}

pub fn inventory(socket: &Path, arguments: InventoryArguments) -> anyhow::Result<()> {
    let mut result = call(socket, api::Inventory {})?;
    if let Some(batch) = &arguments.batch {
        result
            .batches
            .retain(|candidate| candidate.batch_id == *batch);
        if result.batches.is_empty() {
            anyhow::bail!("no batch {batch} was imported on this appliance");
        }
    }
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    print_counts(&result.keys);
    for batch in &result.batches {
        println!(
            "  batch {:<20} {:<10} {:>9} keys, {:>9} available, imported {} from {}{}",
            batch.batch_id,
            batch.algorithm,
            batch.records,
            batch.available,
            batch.imported_at,
            batch.issuer,
            if batch.withdrawn > 0 {
                format!(", {} withdrawn", batch.withdrawn)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
