//! `keymother report`: master-key injections, failures, pending and voided keys of a shift, a day or a period, per operator, batch, terminal model and port, as an aligned table, JSON or CSV.

use std::path::Path;

use clap::Args;
use keymother_control as api;

use crate::client::call;
use crate::pending::aligned;

#[derive(Args)]
pub struct ReportArguments {
    /// The current shift: since the logged-in operator's login, or the last 8 hours when
    /// nobody is logged in (the default).
    #[arg(long, conflicts_with_all = ["day", "from", "to"])]
    shift: bool,
    /// One day, 00:00 to 24:00 UTC: YYYY-MM-DD, or today without a value.
    #[arg(long, value_name = "YYYY-MM-DD", num_args = 0..=1, default_missing_value = "",
          conflicts_with_all = ["from", "to"])]
    day: Option<String>,
    /// The start (included): RFC 3339 (2026-12-06T08:00:00Z) or a date (its 00:00 UTC).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// The end (excluded): RFC 3339, or a date (up to the end of that day, UTC); now without it.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Machine-readable output: the report as one JSON object.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV output: a header line, then one line per group and a last `total` line.
    #[arg(long)]
    csv: bool,
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 8] = [
    "operator",
    "batch",
    "model",
    "port",
    "injections",
    "failures",
    "pending",
    "voided",
];

/// A CSV cell: quoted when it holds a comma, a quote or a line break.
fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A group's part, `-` where the appliance does not know it.
fn part(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_owned())
}

fn counts(counts: &api::ReportCounts) -> [String; 4] {
    [
        counts.injections,
        counts.failures,
        counts.pending,
        counts.voided,
    ]
    .map(|count| count.to_string())
}

/// Each row's cells, then the totals' (`total` in the first column).
fn cells(report: &api::ReportAnswer) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| {
            let line = api::ReportCounts {
                injections: row.injections,
                failures: row.failures,
                pending: row.pending,
                voided: row.voided,
            };
            [
                part(&row.operator),
                part(&row.batch_id),
                part(&row.terminal_model),
                part(&row.port),
            ]
            .into_iter()
            .chain(counts(&line))
            .collect()
        })
        .collect();
    rows.push(
        ["total", "", "", ""]
            .map(str::to_owned)
            .into_iter()
            .chain(counts(&report.totals))
            .collect(),
    );
    rows
}

/// The report as CSV.
pub fn csv(report: &api::ReportAnswer) -> String {
    let mut text = CSV_COLUMNS.join(",");
    text.push('\n');
    for row in cells(report) {
        let line: Vec<String> = row.iter().map(|cell| csv_cell(cell)).collect();
        text.push_str(&line.join(","));
        text.push('\n');
    }
    text
}

/// The report as an aligned table under a line naming the period.
pub fn table(report: &api::ReportAnswer) -> String {
    let mut text = format!(
        "report for {}: {} to {}\n",
        report.period, report.from, report.to
    );
    let mut rows = vec![
        [
            "OPERATOR",
            "BATCH",
            "MODEL",
            "PORT",
            "INJECTIONS",
            "FAILURES",
            "PENDING",
            "VOIDED",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    rows.extend(cells(report));
    text.push_str(&aligned(&rows));
    text
}

pub fn run(socket: &Path, arguments: ReportArguments) -> anyhow::Result<()> {
    let request = if arguments.shift {
        api::Report::default()
    } else if let Some(day) = arguments.day {
        api::Report {
            period: api::ReportSpan::Day,
            day: (!day.trim().is_empty()).then_some(day),
            ..api::Report::default()
        }
    } else if arguments.from.is_some() || arguments.to.is_some() {
        api::Report {
            period: api::ReportSpan::Range,
            from: arguments.from,
            to: arguments.to,
            ..api::Report::default()
        }
    } else {
        api::Report::default()
    };
    let report = call(socket, request)?;
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if arguments.csv {
        print!("{}", csv(&report));
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}
