//! The `batch-withdraw` command: an operator takes the keys of a batch that are still available out of service for good, with a reason; audited.

use keymother_control as api;

use super::handlers::{Context, blocking};

pub(crate) async fn batch_withdraw(
    context: &Context,
    request: api::BatchWithdraw,
) -> Result<api::BatchWithdrawReport, String> {
    let api::BatchWithdraw { batch_id, reason } = request;
    // An operator action, like `void`: refused without a session when login is required.
    let operator = context.acting_operator(true).await?;
    let dispenser = context.dispenser();
    blocking(move || {
        let withdrawn = dispenser
            .with_vault(|vault| vault.withdraw_batch(&batch_id, &reason, &operator))
            .map_err(|error| error.to_string())?;
        log::warn!(
            event = "batch-withdrawn", batch = batch_id.as_str(), keys = withdrawn.withdrawn,
            pending = withdrawn.pending, operator = operator.as_str();
            "batch {batch_id} withdrawn: {} available {} out of service, {} reserved or sent \
             finish normally: {reason}",
            withdrawn.withdrawn, if withdrawn.withdrawn == 1 { "key" } else { "keys" },
            withdrawn.pending
        );
        Ok(api::BatchWithdrawReport {
            batch_id: withdrawn.batch_id.to_string(),
            withdrawn: withdrawn.withdrawn,
            pending: withdrawn.pending,
            used: withdrawn.used,
        })
    })
    .await?
}
