//! `keymother clock`: the appliance's clock, and setting it under dual control (two people, each with the time from their own watch).

use std::path::Path;

use clap::Subcommand;
use keymother_control as api;

use crate::client::call;

#[derive(Subcommand)]
pub enum ClockCommand {
    /// Whether the appliance's clock is trusted, and what vouches for it.
    Status,
    /// Gives your reading of the time. Two people (an operator and a custodian, or two
    /// custodians) each run this with the time from their own watch or phone, within five
    /// minutes; once their readings agree (within 2 minutes), the clock is set and audited.
    Set {
        /// The time on your watch: RFC 3339, e.g. 2026-12-06T10:15:00Z or
        /// 2026-12-06T11:15:00+01:00.
        #[arg(long)]
        time: String,
        /// Your name, as the audit trail records it.
        #[arg(long)]
        name: String,
        /// Your role: operator or custodian.
        #[arg(long, value_parser = ["operator", "custodian"])]
        role: String,
        /// Set the clock back (before the appliance's clock or the last audit record): both
        /// people must say so.
        #[arg(long)]
        backwards: bool,
    },
}

/// The status line about the clock.
pub fn clock_line(clock: &api::ClockReport) -> String {
    match (clock.trusted, clock.required) {
        (true, _) => format!("clock: {} ({}: {})", clock.now, clock.source, clock.detail),
        (false, true) => format!(
            "clock: NOT SET ({}): logins and certificate checks are refused until two people set it (keymother clock set); it reads {}",
            clock.detail, clock.now
        ),
        (false, false) => format!("clock: {} (not vouched for: {})", clock.now, clock.detail),
    }
}

pub fn run(socket: &Path, command: ClockCommand) -> anyhow::Result<()> {
    match command {
        ClockCommand::Status => {
            let status = call(socket, api::Status {})?;
            println!("{}", clock_line(&status.clock));
            Ok(())
        }
        ClockCommand::Set {
            time,
            name,
            role,
            backwards,
        } => {
            let request = api::ClockSet {
                time,
                name,
                role,
                backwards,
            };
            let result = call(socket, request)?;
            match result.state {
                api::ClockSetState::Waiting => println!(
                    "reading taken from {}; a second person (operator or custodian; not two operators) must give theirs within {} s",
                    result.witnesses,
                    result.expires_in_seconds.unwrap_or_default()
                ),
                api::ClockSetState::Set => println!(
                    "clock set from {} to {} by {}",
                    result.old.as_deref().unwrap_or("?"),
                    result.new.as_deref().unwrap_or("?"),
                    result.witnesses
                ),
            }
            Ok(())
        }
    }
}
