//! Storage: one sqlx pool (SQLite or PostgreSQL, chosen by `DATABASE_URL`), the reads and
//! writes outside the books, and the SQL helpers the features share. Nothing here changes a
//! balance: the books are written by `ledger::books` alone (the compiler keeps that door).
//! What one feature alone reads or writes lives in its folder (the notifier's queue, the
//! outgoing events' tables, the console's reads, the API's keys, the live relay). A room per
//! concern:
//!
//! | module | what it keeps |
//! |---|---|
//! | `pool` | the connection pool, SQLite's settings and WAL checkpoints |
//! | `buyers` | buyers' profiles and cached balances |
//! | `orders` | orders and the invoice limits |
//! | `statements` | a buyer's history and statement |
//! | `transfers` | the books read whole, for the audit (the ledger's `books` write them) |
//! | `writer` | group commit: many jobs in one transaction |
//! | `payments` | payments as recorded |
//! | `operations` | the service API's remembered answers, holds due, funds |
//! | `consequences` | what a change brings with it — messages, events, balance notes — in one call |
//! | `outbox` | the bot's messages, queued (the notifier's `queue` sends them) |
//! | `events` | signed events, written with their change (the `outgoing` folder sends them) |
//! | `broadcast` | balance changes told to other processes, in the change's transaction |
//! | `bot_state` | small durable values and cross-instance locks |
//! | `console` | the operator's audit log, and the console's actions outside the books |

mod bot_state;
mod broadcast;
mod buyers;
mod consequences;
mod console;
mod events;
mod operations;
mod orders;
mod outbox;
mod payments;
mod pool;
mod schema;
mod statements;
mod transfers;
pub(crate) mod writer;

use std::fmt::Write as _;
use std::time::Duration;

use sqlx::{Any, AnyPool, Transaction};

pub use writer::Faults;

pub use broadcast::{BALANCE_CHANNEL, BalanceNote, StreamServer};
pub use buyers::StoredBuyer;
pub(crate) use buyers::{language_of, write_profiles};
pub use consequences::Consequences;
pub(crate) use consequences::write as write_consequences;
pub use console::{ActionResult, NewAction};
pub(crate) use console::{earlier_result, record_action};
pub use events::EventRow;
pub(crate) use operations::{StoredHold, remembered as answer_from_row};
pub use orders::{Admission, OrderLimits};
pub(crate) use orders::{ORDER_SELECT, OrderRow};
pub(crate) use payments::PaymentRow;
pub use schema::{SchemaError, SchemaVersions};
pub use statements::{StatementCursor, StatementEntry};
pub use transfers::{Audit, TransferTotals};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database holds an unexpected value: {0}")]
    Corrupt(String),
    #[error("writer: {0}")]
    Writer(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
}

impl Store {
    /// Opens the pool (creating a SQLite file and its folder when needed); no migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::connect_with(url, max_connections, None).await
    }

    /// Like [`Store::connect`], with a PostgreSQL `statement_timeout` for every connection.
    pub async fn connect_with(
        url: &str,
        max_connections: u32,
        statement_timeout: Option<Duration>,
    ) -> StoreResult<Self> {
        let (pool, engine) = pool::open(url, max_connections, statement_timeout).await?;
        Ok(Self { pool, engine })
    }

    /// One connection with none of the server's settings (no switch to WAL, no checkpoints):
    /// for looking at a file that must not change, such as a backup (`sqlite://…?mode=ro`).
    pub async fn inspect(url: &str) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            Engine::Postgres
        };
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        Ok(Self { pool, engine })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match self.engine {
            Engine::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Engine::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection; later calls fail (used at shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A write transaction on the pool, begun as [`begin_write`] says.
    pub(crate) async fn write(&self) -> StoreResult<Transaction<'static, Any>> {
        write_transaction(&self.pool, self.engine).await
    }
}

/// How a write transaction begins. SQLite takes its write lock up front, so two writers queue
/// on the busy timeout instead of failing on a lock upgrade. PostgreSQL's is READ COMMITTED
/// whatever the server's default: a statement after a row lock sees what the lock waited for.
fn begin_write(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED",
    }
}

/// A write transaction on `pool`, begun as [`begin_write`] says.
pub(crate) async fn write_transaction(
    pool: &AnyPool,
    engine: Engine,
) -> StoreResult<Transaction<'static, Any>> {
    Ok(pool.begin_with(begin_write(engine)).await?)
}

/// A batch's rows go to the database as one JSON array in one parameter, unpacked by the
/// database: a statement keeps the same text whatever the batch size, so it is prepared once
/// and cached, and a batch of hundreds binds one value (SQLite looks each `$n` name up in a
/// list, which is quadratic in a statement with thousands of them).
///
/// The rows of parameter `$param` as a table `r` with `columns` (name, PostgreSQL type).
pub(crate) fn json_rows(engine: Engine, param: usize, columns: &[(&str, &str)]) -> String {
    let mut sql = String::new();
    match engine {
        Engine::Postgres => {
            let _ = write!(sql, "json_to_recordset(${param}::json) AS r(");
            for (index, (name, kind)) in columns.iter().enumerate() {
                let _ = write!(sql, "{}{name} {kind}", if index > 0 { ", " } else { "" });
            }
            sql.push(')');
        }
        Engine::Sqlite => {
            sql.push_str("(SELECT ");
            for (index, (name, _)) in columns.iter().enumerate() {
                let comma = if index > 0 { ", " } else { "" };
                let _ = write!(sql, "{comma}value ->> '{name}' AS {name}");
            }
            let _ = write!(sql, " FROM json_each(${param})) AS r");
        }
    }
    sql
}

/// `column` is one of the integers of the JSON array in parameter `$param`. On PostgreSQL an
/// `= ANY` of an array, which the planner answers with the column's index whatever it thinks
/// of the table's size (an `IN` subquery can become a hash join over the whole table).
pub(crate) fn in_json_ids(engine: Engine, column: &str, param: usize) -> String {
    match engine {
        Engine::Postgres => format!(
            "{column} = ANY(ARRAY(SELECT CAST(json_array_elements_text(${param}::json) AS BIGINT)))"
        ),
        Engine::Sqlite => format!("{column} IN (SELECT value FROM json_each(${param}))"),
    }
}

/// `column` is one of the strings of the JSON array in parameter `$param` (see
/// [`in_json_ids`]).
pub(crate) fn in_json_texts(engine: Engine, column: &str, param: usize) -> String {
    match engine {
        Engine::Postgres => {
            format!("{column} = ANY(ARRAY(SELECT json_array_elements_text(${param}::json)))")
        }
        Engine::Sqlite => format!("{column} IN (SELECT value FROM json_each(${param}))"),
    }
}

pub(crate) fn to_json<T: serde::Serialize>(rows: &T) -> StoreResult<String> {
    serde_json::to_string(rows).map_err(|error| StoreError::Corrupt(format!("rows: {error}")))
}
