//! Keys of the operator's other services: only a hash of each is stored, with its name and
//! scopes; a revoked key stays listed.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreResult};

/// A key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub name: String,
    /// Comma-separated: `read`, `spend`, `grant`.
    pub scopes: String,
    /// Unix milliseconds.
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, name, scopes, created_at, last_used_at, revoked_at";

fn record(row: &AnyRow) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

impl Store {
    /// Stores a new key's hash; `None` when an active key already has this name.
    pub async fn add_api_key(
        &self,
        name: &str,
        key_hash: &str,
        scopes: &str,
        now: i64,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.write().await?;
        let taken = sqlx::query("SELECT 1 FROM api_keys WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Ok(None);
        }
        let row = sqlx::query(
            "INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id",
        )
        .bind(name)
        .bind(key_hash)
        .bind(scopes)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(row.try_get(0)?))
    }

    /// Every key, the revoked ones too, oldest first.
    pub async fn api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record).collect()
    }

    /// Revokes the active key named `name`; whether there was one.
    pub async fn revoke_api_key(&self, name: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The active key with this hash.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| record(&row)).transpose()
    }

    /// Records that a key was used (at most once a minute per key, by the caller).
    pub async fn api_key_used(&self, id: i64, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
