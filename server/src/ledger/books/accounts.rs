//! The one writer of the books: transfers between accounts, and the cached balance and held NDN
//! of every buyer they touch, in the caller's transaction. Nothing outside `ledger` reaches it.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Any, AssertSqlSafe, Transaction};

use crate::store::{Engine, StoreResult, json_rows, to_json, write_profiles};
use crate::wallet::amounts::{Ndn, Stars};
use crate::wallet::ids::UserId;
use crate::wallet::model::{Buyer, Transfer};

/// What a transaction changes in the books besides its transfers.
#[derive(Default)]
pub(super) struct AccountChanges<'a> {
    /// Profiles to store (each buyer once), creating buyers who are new.
    pub profiles: &'a [&'a Buyer],
    /// Changes to buyers' held NDN: (buyer, change).
    pub held: &'a [(UserId, i64)],
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
) -> StoreResult<HashMap<UserId, i64>> {
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
        sqlx::query(AssertSqlSafe(sql))
            .bind(to_json(&rows)?)
            .execute(&mut **tx)
            .await?;
    }
    // Each buyer once, in id order, with their net movement, held change and profile.
    let mut buyers: BTreeMap<UserId, (i64, i64, Option<&Buyer>)> = BTreeMap::new();
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
    let profiles: Vec<&Buyer> = buyers
        .values()
        .filter_map(|(_, _, profile)| *profile)
        .collect();
    write_buyers(tx, engine, &rows, &profiles, now).await
}

#[derive(serde::Serialize)]
struct TransferRow<'a> {
    debit_account: i64,
    credit_account: i64,
    amount: Ndn,
    kind: &'static str,
    reference: &'a str,
    stars: Stars,
    reason: Option<&'a str>,
    external_reference: Option<&'a str>,
    metadata: Option<&'a str>,
    created_at: i64,
}

/// One buyer's row to write: their balance moved by `net`, their held NDN by `held`, and their
/// profile when given.
#[derive(serde::Serialize)]
struct BuyerRow<'a> {
    id: UserId,
    net: i64,
    held: i64,
    first_name: &'a str,
    username: Option<&'a str>,
    language_code: &'a str,
    at: i64,
}

impl<'a> BuyerRow<'a> {
    /// The same row, moving the buyer's held NDN by `held` too.
    fn holding(self, held: i64) -> Self {
        Self { held, ..self }
    }

    fn new(id: UserId, net: i64, profile: Option<&'a Buyer>, at: i64) -> Self {
        Self {
            id,
            net,
            held: 0,
            first_name: profile.map_or("", |buyer| buyer.first_name.as_str()),
            username: profile.and_then(|buyer| buyer.username.as_deref()),
            language_code: profile
                .and_then(|buyer| buyer.language_code.as_deref())
                .unwrap_or("en"),
            at,
        }
    }
}

/// Writes `rows` (ids unique, in id order: every transaction takes its row locks in that order,
/// so that concurrent ones wait for each other instead of deadlocking), creating buyers who
/// are new. Returns each buyer's balance after. One statement when every row carries a
/// profile (a batch of payments), two otherwise.
async fn write_buyers(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    rows: &[BuyerRow<'_>],
    profiles: &[&Buyer],
    now: i64,
) -> StoreResult<HashMap<UserId, i64>> {
    if rows.is_empty() {
        return Ok(HashMap::new());
    }
    let table = json_rows(
        engine,
        1,
        &[
            ("id", "bigint"),
            ("net", "bigint"),
            ("held", "bigint"),
            ("first_name", "text"),
            ("username", "text"),
            ("language_code", "text"),
            ("at", "bigint"),
        ],
    );
    let insert = format!(
        "INSERT INTO users (id, first_name, username, language_code, balance, created_at, updated_at)
         SELECT id, first_name, username, language_code, net, at, at FROM {table} WHERE true
         ON CONFLICT (id) DO UPDATE SET"
    );
    if profiles.len() < rows.len() && !profiles.is_empty() {
        // The profiles first (balances unmoved), then every balance below.
        write_profiles(tx, engine, profiles, now).await?;
    }
    let sql = if profiles.len() == rows.len() {
        format!(
            "{insert} first_name = excluded.first_name, username = excluded.username,
                 language_code = excluded.language_code,
                 balance = users.balance + excluded.balance, updated_at = excluded.updated_at
             RETURNING id, balance"
        )
    } else {
        format!(
            "{insert} balance = users.balance + excluded.balance, updated_at = excluded.updated_at
             RETURNING id, balance"
        )
    };
    let mut balances = HashMap::with_capacity(rows.len());
    for (id, balance) in sqlx::query_as::<_, (UserId, i64)>(AssertSqlSafe(sql))
        .bind(to_json(&rows)?)
        .fetch_all(&mut **tx)
        .await?
    {
        balances.insert(id, balance);
    }
    // Held NDN apart: a buyer's row may not even for a moment be proposed with a negative held.
    let holding: Vec<&BuyerRow> = rows.iter().filter(|row| row.held != 0).collect();
    if !holding.is_empty() {
        let sql = format!(
            "UPDATE users SET held = users.held + r.held FROM {} WHERE users.id = r.id",
            json_rows(engine, 1, &[("id", "bigint"), ("held", "bigint")])
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(to_json(&holding)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok(balances)
}
