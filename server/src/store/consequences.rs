//! What a committed change brings with it, as rows: the bot's messages, the signed events and
//! the balance notes for other processes. The ledger builds them from the change's outcome
//! (`ledger::books::consequences`); [`write`] writes them all in the change's transaction, so
//! they exist if and only if the change does.

use sqlx::{Any, Transaction};

use super::broadcast::{BalanceNote, StreamServer, balances_changed};
use super::events::{EventRow, record};
use super::outbox::enqueue_all;
use super::{Engine, StoreResult};
use crate::wallet::model::OutgoingMessage;

/// The rows a change's transaction writes besides the books.
#[derive(Debug, Default)]
pub struct Consequences {
    /// The buyers' notices, sent later by the notifier.
    pub messages: Vec<OutgoingMessage>,
    /// What the operator's backend hears, delivered by the outgoing events' worker.
    pub events: Vec<EventRow>,
    /// The balances that moved, for the live streams of every instance.
    pub balances: Vec<BalanceNote>,
}

/// Writes `consequences` in `tx` (a statement per kind that has rows).
pub(crate) async fn write(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    reach: StreamServer,
    consequences: &Consequences,
    now: i64,
) -> StoreResult<()> {
    enqueue_all(tx, engine, &consequences.messages, now).await?;
    record(tx, engine, &consequences.events).await?;
    balances_changed(tx, engine, reach, &consequences.balances).await
}
