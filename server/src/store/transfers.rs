//! The books read whole: the audit behind `server ledger verify` (the ledger's `books` write
//! them, and nothing else does).

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;

use super::{Engine, Store, StoreResult};
use crate::wallet::model::{Account, TransferKind};

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
            let mut rows = sqlx::query_as::<_, (i64, i64, i64, i64, String, i64)>(
                "SELECT id, debit_account, credit_account, amount, kind, stars FROM transfers
                 ORDER BY id",
            )
            .fetch(&mut *tx);
            while let Some((id, debit, credit, amount, kind_text, stars)) = rows.try_next().await? {
                let kind = TransferKind::parse(&kind_text).ok_or_else(|| {
                    super::StoreError::Corrupt(format!("transfer kind `{kind_text}`"))
                })?;
                audit.transfers += 1;
                let totals = audit.totals.entry(kind.as_str()).or_default();
                totals.count += 1;
                totals.ndn += i128::from(amount);
                totals.stars += i128::from(stars);
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
            let mut rows =
                sqlx::query_as::<_, (i64, i64)>("SELECT id, balance FROM users").fetch(&mut *tx);
            while let Some((id, cached)) = rows.try_next().await? {
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
        let rows = sqlx::query_as::<_, (String, String, i64, i64, i64, i64)>(
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
        for (charge, status, ndn, purchases, refunds, all) in rows {
            audit.charge_mismatches.push((
                charge,
                format!(
                    "payment {status} with {ndn} NDN has {purchases} matching purchase and \
                     {refunds} matching refund transfers ({all} in all)"
                ),
            ));
        }
        // Purchases and refunds of charges no payment has.
        let rows = sqlx::query_as::<_, (String, String)>(
            "SELECT t.reference, t.kind FROM transfers t
             WHERE t.kind IN ('purchase', 'refund')
               AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.charge_id = t.reference)
             ORDER BY t.id LIMIT 20",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (reference, kind) in rows {
            audit
                .charge_mismatches
                .push((reference, format!("a {kind} transfer without a payment")));
        }
        audit.charge_mismatches.truncate(LISTED);
        audit.held_mismatches = sqlx::query_as(
            "SELECT u.id, u.held, CAST(COALESCE(SUM(h.amount), 0) AS BIGINT)
             FROM users u LEFT JOIN holds h ON h.user_id = u.id AND h.status = 'active'
             GROUP BY u.id, u.held
             HAVING u.held <> COALESCE(SUM(h.amount), 0)
             LIMIT 20",
        )
        .fetch_all(&mut *tx)
        .await?;
        audit.credited_stars = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(stars), 0) AS BIGINT) FROM payments WHERE status = 'credited'",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(audit)
    }
}
