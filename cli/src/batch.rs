//! `keymother batch`: withdraw the unused rest of a key batch, so its keys are never dispensed (an operator action, audited).

use std::path::Path;

use clap::Subcommand;
use keymother_control as api;

use crate::arguments::argument_error;
use crate::client::call;

#[derive(Subcommand)]
pub enum BatchCommand {
    /// Withdraws the keys of a batch that are still available: they are never dispensed.
    /// Keys already reserved or sent to a terminal finish normally. Audited.
    Withdraw {
        /// The batch id, as `keymother inventory` shows it.
        batch: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

pub fn run(socket: &Path, command: BatchCommand) -> anyhow::Result<()> {
    match command {
        BatchCommand::Withdraw { batch, reason } => {
            let batch_id = batch
                .parse()
                .map_err(|error| argument_error("BATCH", error))?;
            let result = call(socket, api::BatchWithdraw { batch_id, reason })?;
            println!(
                "batch {} withdrawn: {} available {} never be dispensed; {} reserved or \
                 sent finish normally; {} used before",
                result.batch_id,
                result.withdrawn,
                if result.withdrawn == 1 {
                    "key will"
                } else {
                    "keys will"
                },
                result.pending,
                result.used
            );
            Ok(())
        }
    }
}
