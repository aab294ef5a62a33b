//! Buyers: their profile as Telegram describes them, and the cached balance of their account
//! (moved only by the ledger's books, in the transaction that writes the transfers).

use sqlx::{Any, AssertSqlSafe, Transaction};

use super::{Engine, Store, StoreResult, json_rows, to_json};
use crate::clock::now_ms;
use crate::wallet::ids::UserId;
use crate::wallet::model::Buyer;
use crate::wallet::operations::Funds;

/// A buyer as stored, with their balance and held NDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuyer {
    pub buyer: Buyer,
    pub funds: Funds,
}

impl Store {
    /// Stores the buyer's profile, creating the buyer (with nothing) if new.
    pub async fn upsert_buyer(&self, buyer: &Buyer) -> StoreResult<()> {
        let mut buyer = buyer.clone();
        buyer.make_storable();
        let mut tx = self.write().await?;
        write_profiles(&mut tx, self.engine, &[&buyer], now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The buyer as stored (profile and balance), if known.
    pub async fn buyer(&self, user_id: UserId) -> StoreResult<Option<StoredBuyer>> {
        let row = sqlx::query_as::<_, (UserId, String, Option<String>, String, i64, i64)>(
            "SELECT id, first_name, username, language_code, balance, held FROM users
             WHERE id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(id, first_name, username, language_code, balance, held)| StoredBuyer {
                buyer: Buyer {
                    id,
                    first_name,
                    username,
                    language_code: Some(language_code),
                },
                funds: Funds { balance, held },
            },
        ))
    }

    pub async fn balance(&self, user_id: UserId) -> StoreResult<i64> {
        let balance: Option<i64> = sqlx::query_scalar("SELECT balance FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(balance.unwrap_or(0))
    }
}

/// A buyer's language as stored, read in a change's transaction ("en" for a buyer not stored).
pub(crate) async fn language_of(
    tx: &mut Transaction<'_, Any>,
    user_id: UserId,
) -> StoreResult<String> {
    let language: Option<String> =
        sqlx::query_scalar("SELECT language_code FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(language.unwrap_or_else(|| "en".into()))
}

/// Stores `profiles` (in id order, each buyer once: the row locks of every transaction are taken
/// in that order), creating the buyers who are new with nothing; a row is rewritten only when
/// its profile changed. Balances stay as they are: the ledger's books move them.
pub(crate) async fn write_profiles(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    profiles: &[&Buyer],
    now: i64,
) -> StoreResult<()> {
    #[derive(serde::Serialize)]
    struct ProfileRow<'a> {
        id: UserId,
        first_name: &'a str,
        username: Option<&'a str>,
        language_code: &'a str,
        at: i64,
    }
    if profiles.is_empty() {
        return Ok(());
    }
    let rows: Vec<ProfileRow> = profiles
        .iter()
        .map(|buyer| ProfileRow {
            id: buyer.id,
            first_name: &buyer.first_name,
            username: buyer.username.as_deref(),
            language_code: buyer.language_code.as_deref().unwrap_or("en"),
            at: now,
        })
        .collect();
    let sql = format!(
        "INSERT INTO users (id, first_name, username, language_code, balance, created_at, updated_at)
         SELECT id, first_name, username, language_code, 0, at, at FROM {} WHERE true
         ON CONFLICT (id) DO UPDATE SET first_name = excluded.first_name,
             username = excluded.username, language_code = excluded.language_code,
             updated_at = excluded.updated_at
         WHERE users.first_name IS DISTINCT FROM excluded.first_name
            OR users.username IS DISTINCT FROM excluded.username
            OR users.language_code IS DISTINCT FROM excluded.language_code",
        json_rows(
            engine,
            1,
            &[
                ("id", "bigint"),
                ("first_name", "text"),
                ("username", "text"),
                ("language_code", "text"),
                ("at", "bigint"),
            ]
        )
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(to_json(&rows)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
