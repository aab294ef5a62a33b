//! Buyers: their profile as Telegram describes them, and the cached balance of their account
//! (moved only by `transfers::post`, in the transaction that writes the transfers).

use std::collections::HashMap;

use sqlx::{Any, Row, Transaction};

use super::{Engine, Store, StoreResult, json_rows, to_json};
use crate::clock::now_ms;
use crate::wallet::model::Buyer;
use crate::wallet::operations::Funds;

/// A buyer as stored, with their balance and held NDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuyer {
    pub buyer: Buyer,
    pub funds: Funds,
}

impl Store {
    /// Stores the buyer's profile (creating the buyer if new); the balance after.
    pub async fn upsert_buyer(&self, buyer: &Buyer) -> StoreResult<i64> {
        let mut buyer = buyer.clone();
        buyer.make_storable();
        let mut tx = self.write().await?;
        let row = BuyerRow::new(buyer.id, 0, Some(&buyer), now_ms());
        let balances = write_buyers(&mut tx, self.engine, &[row]).await?;
        tx.commit().await?;
        Ok(balances.get(&buyer.id).copied().unwrap_or(0))
    }

    /// The buyer as stored (profile and balance), if known.
    pub async fn buyer(&self, user_id: i64) -> StoreResult<Option<StoredBuyer>> {
        let row = sqlx::query(
            "SELECT id, first_name, username, language_code, balance, held FROM users
             WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredBuyer {
                buyer: Buyer {
                    id: row.try_get("id")?,
                    first_name: row.try_get("first_name")?,
                    username: row.try_get("username")?,
                    language_code: Some(row.try_get("language_code")?),
                },
                funds: Funds {
                    balance: row.try_get("balance")?,
                    held: row.try_get("held")?,
                },
            })
        })
        .transpose()
    }

    pub async fn balance(&self, user_id: i64) -> StoreResult<i64> {
        let row = sqlx::query("SELECT balance FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .unwrap_or(0))
    }
}

/// One buyer's row to write: their balance moved by `net`, their held NDN by `held`, and their
/// profile when given.
#[derive(serde::Serialize)]
pub(super) struct BuyerRow<'a> {
    id: i64,
    net: i64,
    held: i64,
    first_name: &'a str,
    username: Option<&'a str>,
    language_code: &'a str,
    at: i64,
    #[serde(skip)]
    has_profile: bool,
}

impl<'a> BuyerRow<'a> {
    /// The same row, moving the buyer's held NDN by `held` too.
    pub(super) fn holding(self, held: i64) -> Self {
        Self { held, ..self }
    }

    pub(super) fn new(id: i64, net: i64, profile: Option<&'a Buyer>, at: i64) -> Self {
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
            has_profile: profile.is_some(),
        }
    }
}

/// Writes `rows` (ids unique, in id order: every transaction takes its row locks in that order,
/// so that concurrent ones wait for each other instead of deadlocking), creating buyers who
/// are new. Returns each buyer's balance after. One statement when every row carries a
/// profile (a batch of payments), two otherwise.
pub(super) async fn write_buyers(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    rows: &[BuyerRow<'_>],
) -> StoreResult<HashMap<i64, i64>> {
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
    let profiles: Vec<&BuyerRow> = rows.iter().filter(|row| row.has_profile).collect();
    if profiles.len() < rows.len() && !profiles.is_empty() {
        // The profiles first (balances unmoved), then every balance below.
        let sql = format!(
            "{insert} first_name = excluded.first_name, username = excluded.username,
                 language_code = excluded.language_code, updated_at = excluded.updated_at
             WHERE users.first_name IS DISTINCT FROM excluded.first_name
                OR users.username IS DISTINCT FROM excluded.username
                OR users.language_code IS DISTINCT FROM excluded.language_code"
        );
        let unmoved: Vec<BuyerRow> = profiles
            .iter()
            .map(|row| BuyerRow {
                net: 0,
                held: 0,
                ..**row
            })
            .collect();
        sqlx::query(&sql)
            .bind(to_json(&unmoved)?)
            .execute(&mut **tx)
            .await?;
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
    for row in sqlx::query(&sql)
        .bind(to_json(&rows)?)
        .fetch_all(&mut **tx)
        .await?
    {
        balances.insert(row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?);
    }
    // Held NDN apart: a buyer's row may not even for a moment be proposed with a negative held.
    let holding: Vec<&BuyerRow> = rows.iter().filter(|row| row.held != 0).collect();
    if !holding.is_empty() {
        let sql = format!(
            "UPDATE users SET held = users.held + r.held FROM {} WHERE users.id = r.id",
            json_rows(engine, 1, &[("id", "bigint"), ("held", "bigint")])
        );
        sqlx::query(&sql)
            .bind(to_json(&holding)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok(balances)
}
