//! The service API's requests (debits, holds, captures, voids, expiries, grants), applied by a
//! group-commit writer: a batch reads the answers remembered under its idempotency keys, locks
//! the holds and buyers its other requests name (in id order), lets the wallet's rules decide
//! every request in order, and writes what they decided — transfers, holds, held NDN, the
//! answers, notices and balance events — in one transaction.

use std::collections::HashMap;

use app::i18n::Lang;
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::Books;
use super::accounts::{self, AccountChanges};
use super::consequences::{Committed, Consequences};
use crate::store::writer::Batch;
use crate::store::{
    Engine, NewAction, StoreError, StoreResult, StoredHold, StreamServer, answer_from_row,
    in_json_ids, in_json_texts, json_rows, record_action, to_json,
};
use crate::wallet::amounts::Ndn;
use crate::wallet::ids::{HoldId, UserId};
use crate::wallet::model::Notice;
use crate::wallet::operations::{BatchReads, Decision, Funds, Hold, Receipt, Request, decide};

/// A request waiting for the operations writer.
pub(super) struct OperationJob {
    request: Request,
    /// The operator's action this request carries out (a grant from the console): its audit
    /// row is written in the batch's transaction.
    action: Option<NewAction>,
    reach: StreamServer,
}

/// The operations writer's batches.
pub(super) struct Operations {
    pub(super) notice: &'static (dyn Notice + Sync),
}

impl Batch for Operations {
    type Job = OperationJob;
    type Outcome = Decision;
    const NAME: &'static str = "operation";

    /// Another instance took one of the batch's idempotency keys a moment ago.
    fn retry(error: &StoreError) -> bool {
        matches!(error, StoreError::Database(sqlx::Error::Database(error))
            if error.is_unique_violation())
    }

    async fn apply(
        &self,
        tx: &mut Transaction<'_, Any>,
        engine: Engine,
        jobs: &[OperationJob],
        now: i64,
        attempt: u32,
    ) -> StoreResult<Vec<Decision>> {
        apply_operations_in(tx, engine, jobs, now, attempt > 0, self.notice).await
    }
}

impl Books {
    /// Decides and applies a service request with the others arriving at the same moment; the
    /// decision comes back once its transaction committed.
    pub(in crate::ledger) async fn operate(
        &self,
        request: Request,
        action: Option<NewAction>,
        reach: StreamServer,
    ) -> StoreResult<Decision> {
        self.operations
            .submit(OperationJob {
                request,
                action,
                reach,
            })
            .await
    }
}

/// `recheck`: read the answers remembered under the batch's keys (the ledger read them before
/// the batch, so a first attempt does not; a retry after a key conflict, or a job tried alone,
/// does, and answers from them).
async fn apply_operations_in(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    jobs: &[OperationJob],
    now: i64,
    recheck: bool,
    notice: &'static (dyn Notice + Sync),
) -> StoreResult<Vec<Decision>> {
    // The answers remembered under the batch's keys. The ledger answered the keys it found
    // before the batch; one another instance takes meanwhile fails the insert below, and the
    // retry reads it here and answers from it.
    let mut books = BatchReads::default();
    let keys: Vec<KeyRow> = jobs
        .iter()
        .filter_map(|job| job.request.key.as_ref())
        .map(|key| KeyRow {
            api_key_id: key.api_key_id,
            idempotency_key: &key.key,
        })
        .collect();
    if recheck && !keys.is_empty() {
        let sql = format!(
            "SELECT a.api_key_id, a.idempotency_key, a.fingerprint, a.receipt
             FROM api_requests a JOIN {} ON a.api_key_id = r.api_key_id
                 AND a.idempotency_key = r.idempotency_key",
            json_rows(
                engine,
                1,
                &[("api_key_id", "bigint"), ("idempotency_key", "text")]
            )
        );
        for (api_key_id, key, fingerprint, receipt) in
            sqlx::query_as::<_, (i64, String, String, String)>(AssertSqlSafe(sql))
                .bind(to_json(&keys)?)
                .fetch_all(&mut **tx)
                .await?
        {
            books
                .remembered
                .insert((api_key_id, key), answer_from_row(fingerprint, &receipt)?);
        }
    }
    let fresh: Vec<&Request> = jobs
        .iter()
        .map(|job| &job.request)
        .filter(|request| {
            request.key.as_ref().is_none_or(|key| {
                !books
                    .remembered
                    .contains_key(&(key.api_key_id, key.key.clone()))
            })
        })
        .collect();

    // The holds the fresh requests name, then every buyer involved: locked in id order, holds
    // first (as every batch does), so concurrent batches wait for each other instead of
    // deadlocking.
    let lock = match engine {
        // No key column changes: orders may still take their key-share locks meanwhile.
        Engine::Postgres => " FOR NO KEY UPDATE",
        Engine::Sqlite => "",
    };
    let mut hold_ids: Vec<&HoldId> = fresh
        .iter()
        .filter_map(|request| request.operation.hold_id())
        .collect();
    hold_ids.sort_unstable();
    hold_ids.dedup();
    if !hold_ids.is_empty() {
        let sql = format!(
            "SELECT id, user_id, amount, status, captured, reason, external_reference,
                 created_at, expires_at, api_key_id
             FROM holds WHERE {} ORDER BY id{lock}",
            in_json_texts(engine, "id", 1)
        );
        for row in sqlx::query_as::<_, StoredHold>(AssertSqlSafe(sql))
            .bind(to_json(&hold_ids)?)
            .fetch_all(&mut **tx)
            .await?
        {
            let hold = row.into_hold()?;
            books.holds.insert(hold.id.clone(), hold);
        }
    }
    let mut user_ids: Vec<UserId> = fresh
        .iter()
        .filter_map(|request| request.operation.user_id())
        .chain(books.holds.values().map(|hold| hold.user_id))
        .collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let mut languages: HashMap<UserId, Lang> = HashMap::new();
    if !user_ids.is_empty() {
        let sql = format!(
            "SELECT id, balance, held, language_code FROM users WHERE {} ORDER BY id{lock}",
            in_json_ids(engine, "id", 1)
        );
        for (id, balance, held, language) in
            sqlx::query_as::<_, (UserId, i64, i64, String)>(AssertSqlSafe(sql))
                .bind(to_json(&user_ids)?)
                .fetch_all(&mut **tx)
                .await?
        {
            books.funds.insert(id, Funds { balance, held });
            languages.insert(id, Lang::from_code(&language));
        }
    }

    let requests: Vec<Request> = jobs.iter().map(|job| job.request.clone()).collect();
    let decisions = decide(&requests, &books, now);

    // What the decisions change.
    let mut transfers = Vec::new();
    let mut held: Vec<(UserId, i64)> = Vec::new();
    let mut opened = Vec::new();
    let mut closed = Vec::new();
    let mut answers = Vec::new();
    let mut consequences = Consequences::new(notice);
    for (job, decision) in jobs.iter().zip(&decisions) {
        let Decision::Applied(change) = decision else {
            continue;
        };
        let user_id = change.receipt.user_id();
        transfers.extend(change.transfer.clone());
        if change.held != 0 {
            held.push((user_id, change.held));
        }
        if let Some(hold) = &change.opened {
            opened.push(HoldRow::from(hold, now));
        }
        if let Some((id, status, captured)) = &change.closed {
            closed.push(ClosedHoldRow {
                id: id.clone(),
                status: status.as_str(),
                captured: *captured,
                closed_at: now,
            });
        }
        if let Some(key) = &job.request.key {
            answers.push(AnswerRow {
                api_key_id: key.api_key_id,
                idempotency_key: key.key.clone(),
                fingerprint: key.fingerprint.clone(),
                receipt: to_json(&change.receipt)?,
                created_at: now,
            });
        }
        let language = languages.get(&user_id).copied().unwrap_or_default();
        consequences.add(
            Committed::Operation {
                receipt: &change.receipt,
                language,
            },
            now,
        )?;
    }
    // Operators' actions are recorded whatever was decided (a refused grant too); a second
    // tap with the same id is answered from its remembered answer and writes nothing here.
    // (Rare: one row per console grant, so one statement each.)
    for (job, decision) in jobs.iter().zip(&decisions) {
        if let (Some(action), Decision::Applied(_) | Decision::Refused(_)) = (&job.action, decision)
        {
            record_action(tx, action, &describe_decision(decision), now).await?;
        }
    }
    let reach = jobs
        .first()
        .map_or(StreamServer::ThisProcess, |job| job.reach);
    consequences.write(tx, engine, reach, now).await?;
    if transfers.is_empty() && held.is_empty() {
        return Ok(decisions);
    }
    accounts::post(
        tx,
        engine,
        &transfers,
        AccountChanges {
            profiles: &[],
            held: &held,
        },
        now,
    )
    .await?;
    if !opened.is_empty() {
        let sql = format!(
            "INSERT INTO holds (id, user_id, amount, status, reason, external_reference,
                 created_at, expires_at, api_key_id)
             SELECT id, user_id, amount, 'active', reason, external_reference, created_at,
                 expires_at, api_key_id FROM {}",
            json_rows(
                engine,
                1,
                &[
                    ("id", "text"),
                    ("user_id", "bigint"),
                    ("amount", "bigint"),
                    ("reason", "text"),
                    ("external_reference", "text"),
                    ("created_at", "bigint"),
                    ("expires_at", "bigint"),
                    ("api_key_id", "bigint"),
                ]
            )
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(to_json(&opened)?)
            .execute(&mut **tx)
            .await?;
    }
    if !closed.is_empty() {
        let sql = format!(
            "UPDATE holds SET status = r.status, captured = r.captured, closed_at = r.closed_at
             FROM {} WHERE holds.id = r.id",
            json_rows(
                engine,
                1,
                &[
                    ("id", "text"),
                    ("status", "text"),
                    ("captured", "bigint"),
                    ("closed_at", "bigint"),
                ]
            )
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(to_json(&closed)?)
            .execute(&mut **tx)
            .await?;
    }
    if !answers.is_empty() {
        // A key another instance took a moment ago fails the batch; alone, the request then
        // finds the answer remembered and is answered with it.
        let sql = format!(
            "INSERT INTO api_requests (api_key_id, idempotency_key, fingerprint, receipt,
                 created_at)
             SELECT api_key_id, idempotency_key, fingerprint, receipt, created_at FROM {}",
            json_rows(
                engine,
                1,
                &[
                    ("api_key_id", "bigint"),
                    ("idempotency_key", "text"),
                    ("fingerprint", "text"),
                    ("receipt", "text"),
                    ("created_at", "bigint"),
                ]
            )
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(to_json(&answers)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok(decisions)
}

#[derive(serde::Serialize)]
struct KeyRow<'a> {
    api_key_id: i64,
    idempotency_key: &'a str,
}

#[derive(serde::Serialize)]
struct HoldRow {
    id: HoldId,
    user_id: UserId,
    amount: Ndn,
    reason: Option<String>,
    external_reference: Option<String>,
    created_at: i64,
    expires_at: i64,
    api_key_id: Option<i64>,
}

impl HoldRow {
    fn from(hold: &Hold, now: i64) -> Self {
        Self {
            id: hold.id.clone(),
            user_id: hold.user_id,
            amount: hold.amount,
            reason: hold.reason.clone(),
            external_reference: hold.reference.clone(),
            created_at: now,
            expires_at: hold.expires_at,
            api_key_id: hold.owner,
        }
    }
}

#[derive(serde::Serialize)]
struct ClosedHoldRow {
    id: HoldId,
    status: &'static str,
    captured: Option<Ndn>,
    closed_at: i64,
}

#[derive(serde::Serialize)]
struct AnswerRow {
    api_key_id: i64,
    idempotency_key: String,
    fingerprint: String,
    receipt: String,
    created_at: i64,
}

/// A decision in the audit log's words.
fn describe_decision(decision: &Decision) -> String {
    match decision {
        Decision::Applied(change) => match &change.receipt {
            Receipt::Credit {
                amount,
                user_id,
                funds,
                ..
            } => format!(
                "granted {amount} NDN to buyer {user_id}; balance now {}",
                funds.balance
            ),
            Receipt::Debit {
                amount,
                user_id,
                funds,
                ..
            } => format!(
                "debited {amount} NDN from buyer {user_id}; balance now {}",
                funds.balance
            ),
            Receipt::Hold { hold, .. } => {
                format!("held {} NDN of buyer {}", hold.amount, hold.user_id)
            }
        },
        Decision::Refused(refusal) => format!("refused: {}", refusal.describe()),
        Decision::Repeated(_) => "answered as before".into(),
        Decision::NothingToExpire => "nothing to do".into(),
    }
}
