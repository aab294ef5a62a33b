//! Keys of the operator's other services: only a hash of each is stored, with its name and
//! scopes; a revoked key stays listed.

use sqlx::{AnyPool, AssertSqlSafe};

use crate::store::{Engine, Store, StoreResult, write_transaction};

/// A key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ApiKeyRecord {
    #[serde(skip)]
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

/// The keys' table, over the store's pool.
pub struct KeyStore {
    pool: AnyPool,
    engine: Engine,
}

impl KeyStore {
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.pool().clone(),
            engine: store.engine(),
        }
    }

    /// Stores a new key's hash; `None` when an active key already has this name.
    pub async fn add(
        &self,
        name: &str,
        key_hash: &str,
        scopes: &str,
        now: i64,
    ) -> StoreResult<Option<i64>> {
        let mut tx = write_transaction(&self.pool, self.engine).await?;
        let taken = sqlx::query("SELECT 1 FROM api_keys WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Ok(None);
        }
        let id: i64 = sqlx::query_scalar(
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
        Ok(Some(id))
    }

    /// Every key, the revoked ones too, oldest first.
    pub async fn list(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Revokes the active key named `name`; whether there was one.
    pub async fn revoke(&self, name: &str, now: i64) -> StoreResult<bool> {
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
    pub async fn by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRecord>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"
        )))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records that a key was used (at most once a minute per key, by the caller).
    pub async fn used(&self, id: i64, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
