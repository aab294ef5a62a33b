//! Small durable values of the bot itself (the polling offset), and work that one instance at
//! a time may do (PostgreSQL advisory locks).

use super::{Engine, Store, StoreResult};

impl Store {
    /// A durable number of the bot's own (e.g. the polling offset).
    pub async fn bot_value(&self, key: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM bot_state WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn set_bot_value(&self, key: &str, value: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO bot_state (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs `work` only if no other instance is running work under the same `key` (a
    /// PostgreSQL advisory lock, held on one connection); `None` when another one is. SQLite is
    /// served by one instance, so there the work always runs.
    pub async fn exclusively<T, F>(&self, key: i64, work: F) -> StoreResult<Option<T>>
    where
        F: Future<Output = T>,
    {
        if self.engine == Engine::Sqlite {
            return Ok(Some(work.await));
        }
        let mut conn = self.pool.acquire().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        if !locked {
            return Ok(None);
        }
        let result = work.await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(Some(result))
    }
}
