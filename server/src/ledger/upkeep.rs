//! What the books need doing by themselves: holds whose time ran out are released (through the
//! door, like any request, so several instances may do it at once), and answers remembered
//! under idempotency keys are forgotten after two days.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Ledger;
use crate::clock::now_ms;
use crate::wallet::operations::{Operation, Request};

/// How often due holds are looked for.
const EXPIRY_EVERY: Duration = Duration::from_secs(1);
/// Idempotency keys are answered for at least a day; kept two.
pub const ANSWERS_KEPT: Duration = Duration::from_secs(2 * 86_400);
const FORGET_EVERY: Duration = Duration::from_secs(3_600);

pub async fn run_upkeep(ledger: Ledger, shutdown: CancellationToken) {
    let mut expiry = tokio::time::interval(EXPIRY_EVERY);
    let mut forgetting = tokio::time::interval(FORGET_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = expiry.tick() => expire_due(&ledger).await,
            _ = forgetting.tick() => {
                let before = now_ms() - i64::try_from(ANSWERS_KEPT.as_millis()).unwrap_or(i64::MAX);
                match ledger.store().forget_answers(before).await {
                    Ok(0) => {}
                    Ok(forgotten) => tracing::info!(forgotten, "old idempotency keys forgotten"),
                    Err(error) => tracing::warn!(%error, "cannot forget old idempotency keys"),
                }
            }
        }
    }
}

async fn expire_due(ledger: &Ledger) {
    let due = match ledger.store().holds_due(now_ms(), 500).await {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "cannot look for expired holds");
            return;
        }
    };
    let expiries = due.into_iter().map(|hold_id| {
        ledger.operate(Request {
            operation: Operation::Expire { hold_id },
            key: None,
        })
    });
    for result in futures::future::join_all(expiries).await {
        if let Err(error) = result {
            tracing::warn!(%error, "cannot release an expired hold");
        }
    }
}
