//! The books: transfers between accounts, written by `post` and nowhere else, and read whole by
//! the audit behind `server ledger verify`.

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use sqlx::{Any, Row, Transaction};

use super::buyers::{BuyerRow, write_buyers};
use super::{Engine, Store, StoreResult, json_rows, to_json};
use crate::wallet::model::{Account, Buyer, Transfer, TransferKind};

/// What a transaction changes in the books besides its transfers.
#[derive(Default)]
pub(super) struct AccountChanges<'a> {
    /// Profiles to store (each buyer once), creating buyers who are new.
    pub profiles: &'a [&'a Buyer],
    /// Changes to buyers' held NDN: (buyer, change).
    pub held: &'a [(i64, i64)],
}

/// Writes `transfers` and moves the cached balance of every buyer they touch by their net
/// amount (and their held NDN as `around` says), inside the caller's transaction: the one place
/// the books are written. Returns the balance after of every buyer written.
pub(super) async fn post(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    transfers: &[Transfer],
    around: AccountChanges<'_>,
    now: i64,
) -> StoreResult<HashMap<i64, i64>> {
    if !transfers.is_empty() {
        let rows: Vec<TransferRow> = transfers
            .iter()
            .map(|transfer| TransferRow {
                debit_account: transfer.from.id(),
                credit_account: transfer.to.id(),
                amount: transfer.amount,
                kind: transfer.kind.as_str(),
                reference: &transfer.reference,
                stars: transfer.stars,
                reason: transfer.reason.as_deref(),
                external_reference: transfer.external_reference.as_deref(),
                metadata: transfer.metadata.as_deref(),
                created_at: now,
            })
            .collect();
        let sql = format!(
            "INSERT INTO transfers (debit_account, credit_account, amount, kind, reference, stars,
                 reason, external_reference, metadata, created_at)
             SELECT debit_account, credit_account, amount, kind, reference, stars, reason,
                 external_reference, metadata, created_at FROM {}",
            json_rows(
                engine,
                1,
                &[
                    ("debit_account", "bigint"),
                    ("credit_account", "bigint"),
                    ("amount", "bigint"),
                    ("kind", "text"),
                    ("reference", "text"),
                    ("stars", "bigint"),
                    ("reason", "text"),
                    ("external_reference", "text"),
                    ("metadata", "text"),
                    ("created_at", "bigint"),
                ]
            )
        );
        sqlx::query(&sql)
            .bind(to_json(&rows)?)
            .execute(&mut **tx)
            .await?;
    }
    // Each buyer once, in id order, with their net movement, held change and profile.
    let mut buyers: BTreeMap<i64, (i64, i64, Option<&Buyer>)> = BTreeMap::new();
    for transfer in transfers {
        for account in [transfer.from, transfer.to] {
            if let Some(id) = account.buyer() {
                buyers.entry(id).or_default().0 += transfer.effect_on(account);
            }
        }
    }
    for (id, change) in around.held {
        buyers.entry(*id).or_default().1 += change;
    }
    for profile in around.profiles {
        buyers.entry(profile.id).or_default().2 = Some(profile);
    }
    let rows: Vec<BuyerRow> = buyers
        .iter()
        .map(|(id, (net, held, profile))| BuyerRow::new(*id, *net, *profile, now).holding(*held))
        .collect();
    write_buyers(tx, engine, &rows).await
}

#[derive(serde::Serialize)]
struct TransferRow<'a> {
    debit_account: i64,
    credit_account: i64,
    amount: i64,
    kind: &'static str,
    reference: &'a str,
    stars: i64,
    reason: Option<&'a str>,
    external_reference: Option<&'a str>,
    metadata: Option<&'a str>,
    created_at: i64,
}

/// Totals of the books by kind: transfers, NDN and Stars. Sums are `i128`: every balance fits
/// an `i64`, but a sum over many need not (the audit must never overflow while it counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferTotals {
    pub count: i64,
    pub ndn: i128,
    pub stars: i128,
}

/// Everything `server ledger verify` checks, read in one snapshot.
#[derive(Debug, Default)]
pub struct Audit {
    pub transfers: i64,
    pub totals: BTreeMap<&'static str, TransferTotals>,
    /// Balances of the system accounts, from their transfers.
    pub system: Vec<(Account, i128)>,
    /// The sum of every buyer's cached balance.
    pub cached_buyers: i128,
    /// Buyers whose cached balance differs from their transfers: (id, cached, from transfers).
    pub cached_mismatches: Vec<(i64, i64, i128)>,
    /// Transfers naming an account that is neither a buyer nor a system account.
    pub unknown_accounts: Vec<i64>,
    /// Transfers that left a buyer below zero without being a refund: (transfer id, buyer, after).
    pub overdrafts: Vec<(i64, i64, i128)>,
    /// Payments whose transfers do not match their status: (charge id, what is wrong).
    pub charge_mismatches: Vec<(String, String)>,
    /// Stars of the payments the books hold as credited.
    pub credited_stars: i64,
    /// Buyers whose cached held NDN differ from their active holds: (id, cached, holds).
    pub held_mismatches: Vec<(i64, i64, i64)>,
}

/// Problems listed at most per kind (the count is reported whole).
const LISTED: usize = 20;

impl Store {
    /// Reads what the books must satisfy, in one read-only snapshot, with flat memory apart
    /// from one running balance per account.
    pub async fn audit(&self) -> StoreResult<Audit> {
        let mut tx = self
            .pool
            .begin_with(match self.engine {
                Engine::Sqlite => "BEGIN",
                Engine::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            })
            .await?;
        let mut audit = Audit::default();

        // Every transfer in order: per-account balances, totals, overdrafts.
        let mut balances: HashMap<i64, i128> = HashMap::new();
        {
            let mut rows = sqlx::query(
                "SELECT id, debit_account, credit_account, amount, kind, stars FROM transfers
                 ORDER BY id",
            )
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let id: i64 = row.try_get(0)?;
                let (debit, credit, amount): (i64, i64, i64) =
                    (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                let kind_text: String = row.try_get(4)?;
                let kind = TransferKind::parse(&kind_text).ok_or_else(|| {
                    super::StoreError::Corrupt(format!("transfer kind `{kind_text}`"))
                })?;
                audit.transfers += 1;
                let totals = audit.totals.entry(kind.as_str()).or_default();
                totals.count += 1;
                totals.ndn += i128::from(amount);
                totals.stars += i128::from(row.try_get::<i64, _>(5)?);
                for account in [debit, credit] {
                    if Account::from_id(account).is_none() && audit.unknown_accounts.len() < LISTED
                    {
                        audit.unknown_accounts.push(account);
                    }
                }
                *balances.entry(credit).or_default() += i128::from(amount);
                let after = balances.entry(debit).or_default();
                *after -= i128::from(amount);
                if debit > 0 && *after < 0 && kind != TransferKind::Refund {
                    audit.overdrafts.push((id, debit, *after));
                    audit.overdrafts.truncate(LISTED);
                }
            }
        }
        audit.system = Account::SYSTEM
            .iter()
            .map(|account| (*account, balances.get(&account.id()).copied().unwrap_or(0)))
            .collect();

        // Cached balances against the transfers.
        {
            let mut rows = sqlx::query("SELECT id, balance FROM users").fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let (id, cached): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                audit.cached_buyers += i128::from(cached);
                let derived = balances.remove(&id).unwrap_or(0);
                if i128::from(cached) != derived && audit.cached_mismatches.len() < LISTED {
                    audit.cached_mismatches.push((id, cached, derived));
                }
            }
        }
        // Buyers with transfers and no row at all.
        for (id, derived) in balances.into_iter().filter(|(id, _)| *id > 0) {
            if derived != 0 && audit.cached_mismatches.len() < LISTED {
                audit.cached_mismatches.push((id, 0, derived));
            }
        }

        // Each payment against the transfers its status calls for.
        let rows = sqlx::query(
            "SELECT charge_id, status, ndn, purchases, refunds, transfers FROM (
                 SELECT p.charge_id, p.status, p.ndn, p.created_at,
                     (SELECT COUNT(*) FROM transfers t
                      WHERE t.kind = 'purchase' AND t.reference = p.charge_id
                        AND t.amount = p.ndn AND t.stars = p.stars
                        AND t.credit_account = p.user_id) AS purchases,
                     (SELECT COUNT(*) FROM transfers t
                      WHERE t.kind = 'refund' AND t.reference = p.charge_id
                        AND t.amount = p.ndn AND t.debit_account = p.user_id) AS refunds,
                     (SELECT COUNT(*) FROM transfers t
                      WHERE t.kind IN ('purchase', 'refund')
                        AND t.reference = p.charge_id) AS transfers
                 FROM payments p) AS c
             WHERE NOT ((status = 'credited' AND ndn > 0 AND purchases = 1 AND transfers = 1)
                     OR (status = 'refunded' AND ndn > 0 AND purchases = 1 AND refunds = 1)
                     OR (status IN ('held', 'refunded') AND ndn = 0 AND transfers = 0))
             ORDER BY created_at LIMIT 20",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let charge: String = row.try_get(0)?;
            let status: String = row.try_get(1)?;
            let (ndn, purchases, refunds, all): (i64, i64, i64, i64) = (
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
            );
            audit.charge_mismatches.push((
                charge,
                format!(
                    "payment {status} with {ndn} NDN has {purchases} matching purchase and \
                     {refunds} matching refund transfers ({all} in all)"
                ),
            ));
        }
        // Purchases and refunds of charges no payment has.
        let rows = sqlx::query(
            "SELECT t.reference, t.kind FROM transfers t
             WHERE t.kind IN ('purchase', 'refund')
               AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.charge_id = t.reference)
             ORDER BY t.id LIMIT 20",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let kind: String = row.try_get(1)?;
            audit.charge_mismatches.push((
                row.try_get(0)?,
                format!("a {kind} transfer without a payment"),
            ));
        }
        audit.charge_mismatches.truncate(LISTED);
        let rows = sqlx::query(
            "SELECT u.id, u.held, CAST(COALESCE(SUM(h.amount), 0) AS BIGINT)
             FROM users u LEFT JOIN holds h ON h.user_id = u.id AND h.status = 'active'
             GROUP BY u.id, u.held
             HAVING u.held <> COALESCE(SUM(h.amount), 0)
             LIMIT 20",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            audit
                .held_mismatches
                .push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
        }
        audit.credited_stars = sqlx::query(
            "SELECT CAST(COALESCE(SUM(stars), 0) AS BIGINT) FROM payments WHERE status = 'credited'",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.rollback().await?;
        Ok(audit)
    }
}
