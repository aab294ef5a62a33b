//! The connection pool: SQLite's file and settings, PostgreSQL's statement timeout, pings only
//! for idle connections, and SQLite's WAL checkpoints off the hot path.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe, Connection};

use super::{Engine, StoreError, StoreResult};

/// How often the WAL is checkpointed into the SQLite database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// A pooled connection idle this long is pinged before use.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// Opens the pool for `url` (creating a SQLite file and its folder when needed).
pub(super) async fn open(
    url: &str,
    max_connections: u32,
    statement_timeout: Option<Duration>,
) -> StoreResult<(AnyPool, Engine)> {
    sqlx::any::install_default_drivers();
    let engine = if url.starts_with("sqlite:") {
        Engine::Sqlite
    } else {
        Engine::Postgres
    };
    let mut url = url.to_owned();
    if engine == Engine::Sqlite {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?;
        if let Some(folder) = options.get_filename().parent()
            && !folder.as_os_str().is_empty()
        {
            std::fs::create_dir_all(folder).map_err(|e| StoreError::Database(e.into()))?;
        }
        if !url.contains("mode=") {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("mode=rwc");
        }
    }
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A connection in steady use is known to work; only one that sat idle is pinged
        // before it is handed out (a ping per acquire is a round trip per query).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_PING_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if let (Engine::Postgres, Some(timeout)) = (engine, statement_timeout) {
                    let millis = timeout.as_millis();
                    sqlx::query(AssertSqlSafe(format!("SET statement_timeout = {millis}")))
                        .execute(&mut *conn)
                        .await?;
                }
                if engine == Engine::Sqlite {
                    // WAL for concurrent readers; FULL so that an acknowledged payment
                    // survives a power cut; a busy timeout instead of instant SQLITE_BUSY.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA foreign_keys = ON",
                        // Checkpoints run in the background (see `checkpoint_wal`), not
                        // inside whichever commit crosses the WAL size limit.
                        "PRAGMA wal_autocheckpoint = 0",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    if engine == Engine::Sqlite {
        tokio::spawn(checkpoint_wal(pool.clone()));
    }
    Ok((pool, engine))
}

/// Copies committed pages from SQLite's WAL into the database file, a few times a second,
/// until the pool is closed. PASSIVE waits for nobody, so writers go on appending to the WAL
/// meanwhile; left to SQLite, the commit that crosses the size limit would do this work while
/// every webhook in its batch waits.
async fn checkpoint_wal(pool: AnyPool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        if pool.is_closed() {
            return;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            Ok(_) if failing => {
                tracing::info!("WAL checkpoints work again");
                failing = false;
            }
            Ok(_) => {}
            Err(_) if pool.is_closed() => return,
            Err(error) if !failing => {
                tracing::warn!(%error, "WAL checkpoint failed; trying again");
                failing = true;
            }
            Err(_) => {}
        }
    }
}
