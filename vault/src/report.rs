//! Reports for a period: master-key injections, failures, pending and voided keys per operator, batch, terminal model and port, read from the registry, the inventory and the audit trail (read only).

use std::collections::BTreeMap;

use rusqlite::params;

use crate::{Vault, VaultError};

/// The audit event a delivered key that was never confirmed leaves (idle timeout, port lost,
/// ABORT); its `details` name the port, the hardware serial, the key index when a master key
/// was delivered, and the cause.
pub const INJECTION_FAILED_EVENT: &str = "injection-failed";

/// What a report row counts over, from `from` (included) to `to` (excluded): RFC 3339 UTC
/// times as the vault writes them (`2026-12-06T08:00:00Z`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPeriod {
    pub from: String,
    pub to: String,
}

/// The group a report row counts: each part `None` where the vault does not know it (no
/// operator was logged in; a key reserved before terminal models were recorded; a failure
/// with no master key delivered).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReportGroup {
    pub operator: Option<String>,
    pub batch_id: Option<String>,
    pub terminal_model: Option<String>,
    pub port: Option<String>,
}

/// The counts of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportCounts {
    /// Confirmed injections (SMN registry rows) in the period.
    pub injections: u64,
    /// `injection-failed` audit rows in the period.
    pub failures: u64,
    /// Keys reserved in the period that are still reserved or sent (never confirmed).
    pub pending: u64,
    /// Keys voided one by one (`void` audit rows) in the period.
    pub voided: u64,
}

impl ReportCounts {
    fn add(&mut self, other: &ReportCounts) {
        self.injections += other.injections;
        self.failures += other.failures;
        self.pending += other.pending;
        self.voided += other.voided;
    }
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub group: ReportGroup,
    pub counts: ReportCounts,
}

/// A report: its rows, ordered by operator, batch, model and port, and their totals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub rows: Vec<ReportRow>,
    pub totals: ReportCounts,
}

/// Which count a grouped query fills.
#[derive(Clone, Copy)]
enum Count {
    Injections,
    Pending,
    Voided,
}

/// The grouped queries: each selects operator, batch, model, port and a count, for `?1`
/// (from, included) and `?2` (to, excluded).
const INJECTIONS: &str = "SELECT operator, batch_id, terminal_model, port, count(*)
       FROM smn_registry WHERE injected_at >= ?1 AND injected_at < ?2
      GROUP BY 1, 2, 3, 4";
const PENDING: &str = "SELECT operator, batch_id, terminal_model, port, count(*)
       FROM key_inventory
      WHERE state IN ('reserved', 'sent') AND reserved_at >= ?1 AND reserved_at < ?2
      GROUP BY 1, 2, 3, 4";
/// A `void` row's details start with `key_index=` and the index's eight digits (a value never
/// holds `;` or `=` unescaped).
const VOIDED: &str = "SELECT k.operator, k.batch_id, k.terminal_model, k.port, count(*)
       FROM audit_log AS a
       JOIN key_inventory AS k ON k.key_index = CAST(substr(a.details, 11, 8) AS INTEGER)
      WHERE a.event = 'void' AND substr(a.details, 1, 10) = 'key_index='
        AND a.at >= ?1 AND a.at < ?2
      GROUP BY 1, 2, 3, 4";

/// A `details` value as written (`%XX` escapes) back to its text.
fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| value.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A field of an audit row's `details` (`name=value; name=value`), unescaped.
fn detail(details: &str, name: &str) -> Option<String> {
    details.split("; ").find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| unescape(value))
    })
}

impl Vault {
    /// The report of `period`: per operator, batch, terminal model and port, the master-key
    /// injections, failures, pending and voided keys. Reads only.
    pub fn report(&self, period: &ReportPeriod) -> Result<Report, VaultError> {
        let mut groups: BTreeMap<ReportGroup, ReportCounts> = BTreeMap::new();
        for (sql, count) in [
            (INJECTIONS, Count::Injections),
            (PENDING, Count::Pending),
            (VOIDED, Count::Voided),
        ] {
            let mut statement = self.connection.prepare(sql)?;
            let rows = statement
                .query_map(params![period.from, period.to], |row| {
                    Ok((
                        ReportGroup {
                            operator: row.get(0)?,
                            batch_id: row.get(1)?,
                            terminal_model: row.get(2)?,
                            port: row.get(3)?,
                        },
                        row.get::<_, i64>(4)? as u64,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            for (group, number) in rows {
                let counts = groups.entry(group).or_default();
                match count {
                    Count::Injections => counts.injections += number,
                    Count::Pending => counts.pending += number,
                    Count::Voided => counts.voided += number,
                }
            }
        }
        for group in self.failure_groups(period)? {
            groups.entry(group).or_default().failures += 1;
        }
        let rows: Vec<ReportRow> = groups
            .into_iter()
            .map(|(group, counts)| ReportRow { group, counts })
            .collect();
        let mut totals = ReportCounts::default();
        for row in &rows {
            totals.add(&row.counts);
        }
        Ok(Report { rows, totals })
    }

    /// The group of each `injection-failed` row in the period: its port, and the delivered
    /// key's operator, batch and model when it names a master key.
    fn failure_groups(&self, period: &ReportPeriod) -> Result<Vec<ReportGroup>, VaultError> {
        let mut statement = self.connection.prepare(
            "SELECT details FROM audit_log WHERE event = ?1 AND at >= ?2 AND at < ?3
              ORDER BY sequence",
        )?;
        let failures: Vec<String> = statement
            .query_map(
                params![INJECTION_FAILED_EVENT, period.from, period.to],
                |row| row.get(0),
            )?
            .collect::<Result<_, _>>()?;
        let mut key = self.connection.prepare(
            "SELECT operator, batch_id, terminal_model FROM key_inventory WHERE key_index = ?1",
        )?;
        let mut groups = Vec::with_capacity(failures.len());
        for details in failures {
            let port = detail(&details, "port");
            let index = detail(&details, "key_index").and_then(|index| index.parse::<u32>().ok());
            let known = match index {
                Some(index) => key
                    .query_map([index], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                    .next()
                    .transpose()?,
                None => None,
            };
            let (operator, batch_id, terminal_model) = known.unwrap_or((None, None, None));
            groups.push(ReportGroup {
                operator,
                batch_id,
                terminal_model,
                port,
            });
        }
        Ok(groups)
    }
}
