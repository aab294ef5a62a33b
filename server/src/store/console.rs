//! The operator's audit log, written in the transaction of what it records, and the console's
//! actions outside the books (retrying a message, revoking a key), each with its audit row.
//! What the console reads is `console::reads`.

use sqlx::{Any, Transaction};

use super::{Store, StoreResult};

/// An operator action about to be taken: the audit row's columns but the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAction {
    /// Chosen by the tap that asked; the same id again changes nothing.
    pub id: String,
    pub operator_id: i64,
    /// `credit`, `refund`, `grant`, `retry`, `revoke`, `reconcile`.
    pub action: &'static str,
    /// The charge, buyer, message or key acted on.
    pub target: String,
}

/// What an action did: now, or (`Repeated`) under the same id before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    Done(String),
    Repeated(String),
}

/// Writes the audit row of `action` in `tx`; `false` when a row with its id exists already (a
/// concurrent tap with the same id: the caller answers with that row's result).
pub(crate) async fn record_action(
    tx: &mut Transaction<'_, Any>,
    action: &NewAction,
    result: &str,
    now: i64,
) -> StoreResult<bool> {
    let written = sqlx::query(
        "INSERT INTO operator_actions (id, operator_id, action, target, result, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&action.id)
    .bind(action.operator_id)
    .bind(action.action)
    .bind(&action.target)
    .bind(result)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// The result recorded under an action id, read in a transaction or from the pool.
pub(crate) async fn earlier_result<'e, E>(executor: E, id: &str) -> StoreResult<Option<String>>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    Ok(
        sqlx::query_scalar("SELECT result FROM operator_actions WHERE id = $1")
            .bind(id)
            .fetch_optional(executor)
            .await?,
    )
}

impl Store {
    /// Records an action whose effects took transactions of their own (a reconciliation, a
    /// refund Telegram refused), once per id.
    pub async fn record_action(
        &self,
        action: &NewAction,
        result: &str,
        now: i64,
    ) -> StoreResult<ActionResult> {
        let mut tx = self.write().await?;
        if let Some(earlier) = earlier_result(&mut *tx, &action.id).await? {
            return Ok(ActionResult::Repeated(earlier));
        }
        self.finish(tx, action, result.to_owned(), now).await
    }

    /// Writes the action's audit row and commits its effect with it, or, when a concurrent tap
    /// with the same id wrote it first, rolls the effect back and answers with that tap's result.
    pub(crate) async fn finish(
        &self,
        mut tx: Transaction<'static, Any>,
        action: &NewAction,
        result: String,
        now: i64,
    ) -> StoreResult<ActionResult> {
        let written = record_action(&mut tx, action, &result, now).await?;
        if written {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        self.acted(action, written, result).await
    }

    /// The answer of an action that wrote its row (`written`), or of the tap that got there
    /// first.
    pub(super) async fn acted(
        &self,
        action: &NewAction,
        written: bool,
        result: String,
    ) -> StoreResult<ActionResult> {
        if written {
            return Ok(ActionResult::Done(result));
        }
        let earlier = earlier_result(&self.pool, &action.id).await?;
        Ok(ActionResult::Repeated(earlier.unwrap_or(result)))
    }

    /// Puts a failed message back in the queue, due now, with its attempts counted afresh.
    pub async fn retry_message(
        &self,
        id: i64,
        action: &NewAction,
        now: i64,
    ) -> StoreResult<ActionResult> {
        let mut tx = self.write().await?;
        if let Some(earlier) = earlier_result(&mut *tx, &action.id).await? {
            return Ok(ActionResult::Repeated(earlier));
        }
        let done = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2,
                 locked_until = 0
             WHERE id = $1 AND status = 'failed'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let result = if done.rows_affected() == 1 {
            format!("message {id} queued again")
        } else {
            format!("message {id} is not failed: nothing to retry")
        };
        self.finish(tx, action, result, now).await
    }

    /// Revokes an API key by id.
    pub async fn revoke_key(
        &self,
        id: i64,
        action: &NewAction,
        now: i64,
    ) -> StoreResult<ActionResult> {
        let mut tx = self.write().await?;
        if let Some(earlier) = earlier_result(&mut *tx, &action.id).await? {
            return Ok(ActionResult::Repeated(earlier));
        }
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL
             RETURNING name",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let result = match name {
            Some(name) => format!("key `{name}` revoked"),
            None => format!("key {id} is not active: nothing to revoke"),
        };
        self.finish(tx, action, result, now).await
    }
}
