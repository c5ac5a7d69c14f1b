//! `report`: master-key injections, failures, pending and voided keys of a period (the shift, a day, or from/to), per operator, batch, terminal model and port, computed by the vault.

use std::time::{Duration, SystemTime};

use keymother_control as api;
use keymother_vault::{Report, ReportPeriod};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, Time};

use super::handlers::{Context, blocking};
use crate::operator::rfc3339;

/// The shift when nobody is logged in: the last 8 hours.
pub(crate) const SHIFT_WITHOUT_OPERATOR: Duration = Duration::from_secs(8 * 3600);

/// A day's date, `YYYY-MM-DD`.
fn parse_date(field: &str, text: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), &format)
        .map_err(|_| format!("{field}: not a date such as 2026-12-06 (YYYY-MM-DD)"))
}

/// The start of a day, UTC.
fn midnight(date: Date) -> SystemTime {
    SystemTime::from(OffsetDateTime::new_utc(date, Time::MIDNIGHT))
}

/// A bound given as RFC 3339, or as a date: its midnight (`end_of_day`: the next midnight).
fn parse_bound(field: &str, text: &str, end_of_day: bool) -> Result<SystemTime, String> {
    if let Ok(at) = OffsetDateTime::parse(text.trim(), &Rfc3339) {
        return Ok(SystemTime::from(at));
    }
    let date = parse_date(field, text).map_err(|_| {
        format!("{field}: not an RFC 3339 time (2026-12-06T08:00:00Z) or a date (2026-12-06)")
    })?;
    let day = midnight(date);
    Ok(if end_of_day {
        day + Duration::from_secs(24 * 3600)
    } else {
        day
    })
}

/// The period of a request, its bounds and its words.
fn period(
    request: &api::Report,
    now: SystemTime,
    login: Option<(String, SystemTime)>,
) -> Result<(SystemTime, SystemTime, String), String> {
    let only = |allowed: &[&str]| {
        let given = [
            ("day", request.day.is_some()),
            ("from", request.from.is_some()),
            ("to", request.to.is_some()),
        ];
        match given
            .iter()
            .find(|(name, present)| *present && !allowed.contains(name))
        {
            Some((name, _)) => Err(format!(
                "{name}: not allowed with period {:?}",
                match request.period {
                    api::ReportSpan::Shift => "shift",
                    api::ReportSpan::Day => "day",
                    api::ReportSpan::Range => "range",
                }
            )),
            None => Ok(()),
        }
    };
    // Up to now, this second included.
    let until_now = now + Duration::from_secs(1);
    match request.period {
        api::ReportSpan::Shift => {
            only(&[])?;
            Ok(match login {
                Some((operator, since)) => (
                    since,
                    until_now,
                    format!("the shift of {operator} since {}", rfc3339(since)),
                ),
                None => (
                    now.checked_sub(SHIFT_WITHOUT_OPERATOR)
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                    until_now,
                    "the last 8 hours (nobody is logged in)".to_owned(),
                ),
            })
        }
        api::ReportSpan::Day => {
            only(&["day"])?;
            let date = match &request.day {
                Some(day) => parse_date("day", day)?,
                None => OffsetDateTime::from(now).date(),
            };
            let start = midnight(date);
            Ok((
                start,
                start + Duration::from_secs(24 * 3600),
                format!("the day {date} (UTC)"),
            ))
        }
        api::ReportSpan::Range => {
            only(&["from", "to"])?;
            let from = match &request.from {
                Some(text) => parse_bound("from", text, false)?,
                None => SystemTime::UNIX_EPOCH,
            };
            let to = match &request.to {
                Some(text) => parse_bound("to", text, true)?,
                None => until_now,
            };
            if to <= from {
                return Err(format!(
                    "to: {} is not after from ({})",
                    rfc3339(to),
                    rfc3339(from)
                ));
            }
            Ok((
                from,
                to,
                format!("from {} to {}", rfc3339(from), rfc3339(to)),
            ))
        }
    }
}

/// The vault's report as the control socket shows it.
fn answer(report: Report, period: &ReportPeriod, words: String) -> api::ReportAnswer {
    let counts = |counts: &keymother_vault::ReportCounts| api::ReportCounts {
        injections: counts.injections,
        failures: counts.failures,
        pending: counts.pending,
        voided: counts.voided,
    };
    api::ReportAnswer {
        from: period.from.clone(),
        to: period.to.clone(),
        period: words,
        rows: report
            .rows
            .iter()
            .map(|row| api::ReportLine {
                operator: row.group.operator.clone(),
                batch_id: row.group.batch_id.clone(),
                terminal_model: row.group.terminal_model.clone(),
                port: row.group.port.clone(),
                injections: row.counts.injections,
                failures: row.counts.failures,
                pending: row.counts.pending,
                voided: row.counts.voided,
            })
            .collect(),
        totals: counts(&report.totals),
    }
}

pub(crate) async fn report(
    context: &Context,
    request: api::Report,
) -> Result<api::ReportAnswer, String> {
    let dispenser = context.dispenser();
    blocking(move || {
        let now = keymother_vault::clock::now();
        let login = dispenser
            .operator_session(now)
            .map(|session| (session.name, session.since));
        let (from, to, words) = period(&request, now, login)?;
        let period = ReportPeriod {
            from: rfc3339(from),
            to: rfc3339(to),
        };
        let report = dispenser
            .with_vault(|vault| vault.report(&period))
            .map_err(|error| error.to_string())?;
        Ok(answer(report, &period, words))
    })
    .await?
}
