//! `keymother reinject`: re-injection grants, so a terminal that already holds a confirmed key gets one new key (grant, list, revoke).

use std::path::Path;

use clap::Subcommand;
use keymother_control as api;

use crate::arguments::argument_error;
use crate::client::call;

#[derive(Subcommand)]
pub enum ReinjectCommand {
    /// Grants one re-injection to a terminal that already holds a confirmed key of a slot:
    /// its next request for that slot gets a new key, and both registry rows are marked.
    /// Audited; needs the operator's session when login is required.
    Grant {
        /// The terminal's hardware serial.
        serial: String,
        /// `master` (the master key, in any mode), or a profile's DUKPT slot by its BDK name.
        #[arg(long, default_value = "master")]
        slot: String,
        /// Why (recorded with the grant and in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// The open grants (with --all, the used and revoked ones too).
    List {
        /// Used and revoked grants too.
        #[arg(long)]
        all: bool,
    },
    /// Revokes an open grant before a terminal uses it. Audited.
    Revoke {
        /// The grant's number (keymother reinject list).
        grant: u64,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

/// `master` or a BDK's name, as the control socket takes it (absent: the master key).
fn slot_argument(slot: &str) -> anyhow::Result<Option<keymother_domain::BdkName>> {
    if slot == "master" {
        return Ok(None);
    }
    slot.parse().map(Some).map_err(|error| {
        argument_error(
            "--slot",
            format!("{slot:?} is neither \"master\" nor a BDK's name ({error})"),
        )
    })
}

/// One grant, on one line.
fn grant_line(grant: &api::ReinjectionGrantReport) -> String {
    let closed = match (grant.state.as_str(), &grant.used_for, &grant.revoke_reason) {
        ("used", Some(key), _) => format!(
            ", used {} for {key}",
            grant.closed_at.as_deref().unwrap_or("?")
        ),
        ("revoked", _, Some(why)) => format!(
            ", revoked {} by {}: {why}",
            grant.closed_at.as_deref().unwrap_or("?"),
            grant.closed_by.as_deref().unwrap_or("?")
        ),
        _ => String::new(),
    };
    format!(
        "grant {}  serial {}  slot {}  {}  granted {} by {}: {}{closed}",
        grant.grant,
        grant.hardware_serial,
        grant.slot,
        grant.state,
        grant.granted_at,
        grant.granted_by,
        grant.reason
    )
}

pub fn run(socket: &Path, command: ReinjectCommand) -> anyhow::Result<()> {
    match command {
        ReinjectCommand::Grant {
            serial,
            slot,
            reason,
        } => {
            let hardware_serial = serial
                .parse()
                .map_err(|error| argument_error("SERIAL", error))?;
            let request = api::ReinjectGrant {
                hardware_serial,
                slot: slot_argument(&slot)?,
                reason,
            };
            let grant = call(socket, request)?;
            println!("{}", grant_line(&grant));
            println!(
                "the terminal's next request for its {} key gets a new one",
                grant.slot
            );
            Ok(())
        }
        ReinjectCommand::List { all } => {
            let grants = call(socket, api::ReinjectList { all })?;
            if grants.is_empty() {
                println!("no {}re-injection grants", if all { "" } else { "open " });
            }
            for grant in &grants {
                println!("{}", grant_line(grant));
            }
            Ok(())
        }
        ReinjectCommand::Revoke { grant, reason } => {
            let revoked = call(socket, api::ReinjectRevoke { grant, reason })?;
            println!("{}", grant_line(&revoked));
            Ok(())
        }
    }
}
