//! Storage: one sqlx pool (SQLite or PostgreSQL, chosen by `DATABASE_URL`) and the
//! transactions that carry out the wallet's rules.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use app::api::{BalanceEvent, OrderState, Package, Purchase};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row, Transaction};
use tokio::sync::{mpsc, oneshot};

use crate::wallet::{
    Order, PaymentPlan, PaymentRecord, PaymentStatus, RefundPlan, plan_payment, plan_refund,
};

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
    #[error("payment writer: {0}")]
    Writer(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A buyer as Telegram describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
    pub language_code: Option<String>,
}

impl Buyer {
    /// What is stored of the profile: without what the database cannot store (see
    /// [`make_storable`]), and with the language the shop speaks to the buyer in (`en` or
    /// `ru`), so that the Mini App and the webhook never rewrite each other's value.
    pub fn make_storable(&mut self) {
        make_storable(&mut self.first_name);
        for text in [self.username.as_mut(), self.language_code.as_mut()]
            .into_iter()
            .flatten()
        {
            make_storable(text);
        }
        if let Some(code) = self.language_code.as_mut() {
            *code = app::i18n::Lang::from_code(code).code().to_owned();
        }
    }
}

/// A buyer as stored, with their balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuyer {
    pub buyer: Buyer,
    pub balance: i64,
}

/// How many orders a buyer may create: per minute, and unpaid at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLimits {
    pub per_minute: i64,
    pub open: i64,
}

/// Whether an order was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Created,
    /// Over a limit: nothing was written; a place frees up in about this long.
    Refused {
        retry_after_ms: i64,
    },
}

/// The buyer's recent orders, as far as the limits are concerned.
struct OrderUsage {
    /// Orders created in the last minute, and when the oldest of them was created.
    last_minute: i64,
    oldest_in_minute: Option<i64>,
    /// Unpaid, unexpired orders, and when the first of them expires.
    open: i64,
    first_expiry: Option<i64>,
}

const MINUTE_MS: i64 = 60_000;

impl OrderUsage {
    fn refusal(&self, limits: OrderLimits, now: i64) -> Option<i64> {
        let wait_until = if self.last_minute >= limits.per_minute {
            self.oldest_in_minute.map(|at| at + MINUTE_MS)
        } else if self.open >= limits.open {
            self.first_expiry
        } else {
            return None;
        };
        Some(wait_until.map_or(MINUTE_MS, |at| (at - now).max(0)))
    }
}

/// Counts the buyer's orders of the last minute and the open ones, each over its own index
/// range (`orders_by_user`, and `orders_open`, which holds pending orders only).
async fn order_usage(conn: &mut AnyConnection, user_id: i64, now: i64) -> StoreResult<OrderUsage> {
    let row = sqlx::query(
        "SELECT
            (SELECT COUNT(*) FROM orders WHERE user_id = $1 AND created_at > $2),
            (SELECT MIN(created_at) FROM orders WHERE user_id = $1 AND created_at > $2),
            (SELECT COUNT(*) FROM orders
             WHERE user_id = $1 AND status = 'pending' AND expires_at > $3),
            (SELECT MIN(expires_at) FROM orders
             WHERE user_id = $1 AND status = 'pending' AND expires_at > $3)",
    )
    .bind(user_id)
    .bind(now - MINUTE_MS)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(OrderUsage {
        last_minute: row.try_get(0)?,
        oldest_in_minute: row.try_get(1)?,
        open: row.try_get(2)?,
        first_expiry: row.try_get(3)?,
    })
}

/// Removes NUL characters: valid in Telegram's JSON strings, refused by PostgreSQL's text
/// (a payment would fail on every redelivery). Nothing Telegram or we use as an id has them.
pub fn make_storable(text: &mut String) {
    if text.contains('\0') {
        text.retain(|c| c != '\0');
    }
}

/// A message to a chat, sent later by the notification worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub dedupe_key: String,
    pub chat_id: i64,
    pub text: String,
    pub reply_markup: Option<String>,
}

/// The facts of a `successful_payment` the store needs.
#[derive(Debug, Clone)]
pub struct IncomingPayment {
    pub charge_id: String,
    pub provider_charge_id: Option<String>,
    pub payload: String,
    pub currency: String,
    pub stars: i64,
}

/// A payment waiting for the group-commit writer.
struct PaymentJob {
    payer: Buyer,
    payment: IncomingPayment,
    notice: &'static (dyn Notice + Sync),
    reply: oneshot::Sender<StoreResult<PaymentOutcome>>,
}

/// The payment writer gives its connection back to the pool after this long without work.
const WRITER_KEEPS_CONNECTION: Duration = Duration::from_millis(100);

/// How often the WAL is checkpointed into the SQLite database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// A pooled connection idle this long is pinged before use.
const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// Payments committed together at most (one fsync for all of them).
const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Credited {
        user_id: i64,
        order_id: String,
        ndn: i64,
        balance: i64,
    },
    Held {
        user_id: i64,
        reason: &'static str,
    },
    /// This charge was recorded before: nothing changed.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    Debited {
        user_id: i64,
        order_id: Option<String>,
        ndn: i64,
        balance: i64,
    },
    ClosedHeld,
    RecordedUnknown,
    AlreadyRefunded,
}

/// Writes the text of a notification once the outcome (and the new balance) is known.
pub trait Notice {
    fn payment(&self, language: &str, outcome: &PaymentOutcome, stars: i64) -> Option<String>;
    fn refund(&self, language: &str, outcome: &RefundOutcome, stars: i64) -> Option<String>;
}

#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub id: i64,
    pub chat_id: i64,
    pub text: String,
    pub reply_markup: Option<String>,
    pub attempts: i64,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// The group-commit writer that applies `successful_payment`s.
    payments: mpsc::Sender<PaymentJob>,
    /// Transactions the writer committed (each holding one or more payments).
    payment_commits: Arc<AtomicU64>,
    /// Shared transactions that failed and were retried payment by payment.
    payment_batches_split: Arc<AtomicU64>,
}

pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
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
                        sqlx::query(&format!("SET statement_timeout = {millis}"))
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
        let (payments, jobs) = mpsc::channel(4 * MAX_BATCH);
        let payment_commits = Arc::new(AtomicU64::new(0));
        let payment_batches_split = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_payments(
            pool.clone(),
            engine,
            jobs,
            payment_commits.clone(),
            payment_batches_split.clone(),
        ));
        Ok(Self {
            pool,
            engine,
            payment_commits,
            payment_batches_split,
            payments,
        })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match self.engine {
            Engine::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Engine::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// How many transactions the payment writer committed so far.
    pub fn payment_commits(&self) -> u64 {
        self.payment_commits.load(Ordering::Relaxed)
    }

    /// How many shared payment transactions failed and were retried one payment at a time.
    pub fn payment_batches_split(&self) -> u64 {
        self.payment_batches_split.load(Ordering::Relaxed)
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

    async fn write(&self) -> StoreResult<Transaction<'static, Any>> {
        begin_write(&self.pool, self.engine).await
    }

    /// Stores the buyer's profile (creating the buyer if new); the balance after.
    pub async fn upsert_buyer(&self, buyer: &Buyer) -> StoreResult<i64> {
        let mut buyer = buyer.clone();
        buyer.make_storable();
        let mut tx = self.write().await?;
        let balances = upsert_buyers(&mut tx, self.engine, &[(&buyer, 0)], now_ms()).await?;
        tx.commit().await?;
        Ok(balances.get(&buyer.id).copied().unwrap_or(0))
    }

    /// The buyer as stored (profile and balance), if known.
    pub async fn buyer(&self, user_id: i64) -> StoreResult<Option<StoredBuyer>> {
        let row = sqlx::query(
            "SELECT id, first_name, username, language_code, balance FROM users WHERE id = $1",
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
                balance: row.try_get("balance")?,
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

    /// Creates a pending order of `package` for `user_id` if the buyer is within `limits`,
    /// checked and inserted in one write transaction that holds the buyer's row, so that the
    /// limits hold under concurrency and across instances. `profile`, when given, is written
    /// in the same transaction (a new buyer, or a changed name). A refusal writes nothing.
    pub async fn create_order(
        &self,
        id: &str,
        user_id: i64,
        package: &Package,
        ttl: Duration,
        limits: OrderLimits,
        profile: Option<&Buyer>,
    ) -> StoreResult<Admission> {
        let now = now_ms();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        // A read first: a buyer over the limit does not even take the write lock.
        let usage = order_usage(&mut *self.pool.acquire().await?, user_id, now).await?;
        if let Some(retry_after_ms) = usage.refusal(limits, now) {
            return Ok(Admission::Refused { retry_after_ms });
        }
        let mut tx = self.write().await?;
        match profile {
            Some(buyer) => {
                let mut buyer = buyer.clone();
                buyer.make_storable();
                upsert_buyers(&mut tx, self.engine, &[(&buyer, 0)], now).await?;
            }
            None if self.engine == Engine::Postgres => {
                // SQLite's write transaction is exclusive already.
                sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            None => {}
        }
        let usage = order_usage(&mut tx, user_id, now).await?;
        if let Some(retry_after_ms) = usage.refusal(limits, now) {
            tx.rollback().await?;
            return Ok(Admission::Refused { retry_after_ms });
        }
        sqlx::query(
            "INSERT INTO orders (id, user_id, package_id, ndn, stars, status, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
        )
        .bind(id)
        .bind(user_id)
        .bind(&package.id)
        .bind(package.ndn)
        .bind(package.stars)
        .bind(now)
        .bind(now.saturating_add(ttl_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Admission::Created)
    }

    pub async fn set_invoice_url(&self, order_id: &str, url: &str) -> StoreResult<()> {
        sqlx::query("UPDATE orders SET invoice_url = $2 WHERE id = $1")
            .bind(order_id)
            .bind(url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// An order whose invoice could not be created can never be paid.
    pub async fn fail_order(&self, order_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE orders SET status = 'failed' WHERE id = $1 AND status = 'pending'")
            .bind(order_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn order(&self, id: &str) -> StoreResult<Option<Order>> {
        if id.contains('\0') {
            // Not one of ours (and not a value PostgreSQL's text can hold).
            return Ok(None);
        }
        let row = sqlx::query(ORDER_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| order_from_row(&row)).transpose()
    }

    /// The buyer's paid and refunded orders, newest first: what they bought, not what they
    /// tapped and abandoned.
    pub async fn history(&self, user_id: i64, limit: i64) -> StoreResult<Vec<Purchase>> {
        let rows = sqlx::query(
            "SELECT id, ndn, stars, status, created_at FROM orders
             WHERE user_id = $1 AND status IN ('paid', 'refunded')
             ORDER BY created_at DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Purchase {
                    order_id: row.try_get("id")?,
                    ndn: row.try_get("ndn")?,
                    stars: row.try_get("stars")?,
                    status: parse_state(row.try_get("status")?)?,
                    created_at: row.try_get::<i64, _>("created_at")? / 1000,
                })
            })
            .collect()
    }

    /// Records a `successful_payment` and carries out its plan in one transaction: payment row
    /// (unique per charge), order, ledger, balance and the buyer's notification. Concurrent
    /// payments share a transaction (group commit); each caller gets its answer only after
    /// that transaction committed.
    pub async fn apply_payment(
        &self,
        mut payer: Buyer,
        mut payment: IncomingPayment,
        notice: &'static (dyn Notice + Sync),
    ) -> StoreResult<PaymentOutcome> {
        payer.make_storable();
        for text in [
            &mut payment.charge_id,
            &mut payment.payload,
            &mut payment.currency,
        ]
        .into_iter()
        .chain(payment.provider_charge_id.as_mut())
        {
            make_storable(text);
        }
        let stopped = || StoreError::Writer("the payment writer stopped".into());
        let (reply, answer) = oneshot::channel();
        let job = PaymentJob {
            payer,
            payment,
            notice,
            reply,
        };
        self.payments.send(job).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Applies a refund of `charge_id` once: debit, payment and order marked refunded, notice.
    pub async fn apply_refund(
        &self,
        user_id: i64,
        charge_id: &str,
        stars: i64,
        notice: &(dyn Notice + Sync),
    ) -> StoreResult<RefundOutcome> {
        let mut charge_id = charge_id.to_owned();
        make_storable(&mut charge_id);
        let charge_id = charge_id.as_str();
        let now = now_ms();
        let mut tx = self.write().await?;
        let record = match sqlx::query(
            "SELECT charge_id, user_id, order_id, ndn, stars, status FROM payments WHERE charge_id = $1",
        )
        .bind(charge_id)
        .fetch_optional(&mut *tx)
        .await?
        {
            Some(row) => Some(payment_from_row(&row)?),
            None => None,
        };
        let outcome = match plan_refund(record.as_ref()) {
            RefundPlan::AlreadyRefunded => RefundOutcome::AlreadyRefunded,
            RefundPlan::CloseHeld => {
                mark_payment_refunded(&mut tx, charge_id, now).await?;
                RefundOutcome::ClosedHeld
            }
            RefundPlan::RecordUnknown => {
                sqlx::query(
                    "INSERT INTO payments (charge_id, user_id, payload, currency, stars, ndn, status,
                         hold_reason, created_at, refunded_at)
                     VALUES ($1, $2, '', 'XTR', $3, 0, 'refunded', 'refund of an unknown charge', $4, $4)
                     ON CONFLICT (charge_id) DO NOTHING",
                )
                .bind(charge_id)
                .bind(user_id)
                .bind(stars)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                RefundOutcome::RecordedUnknown
            }
            RefundPlan::Debit {
                user_id,
                ndn,
                order_id,
            } => {
                mark_payment_refunded(&mut tx, charge_id, now).await?;
                if let Some(order_id) = &order_id {
                    sqlx::query(
                        "UPDATE orders SET status = 'refunded' WHERE id = $1 AND status = 'paid'",
                    )
                    .bind(order_id)
                    .execute(&mut *tx)
                    .await?;
                }
                let balance = post_ledger(&mut tx, user_id, -ndn, "refund", charge_id, now).await?;
                RefundOutcome::Debited {
                    user_id,
                    order_id,
                    ndn,
                    balance,
                }
            }
        };
        if let RefundOutcome::Debited { user_id, .. } = &outcome {
            let language = language_in(&mut tx, *user_id).await?;
            if let Some(text) = notice.refund(&language, &outcome, stars) {
                let message = OutgoingMessage {
                    dedupe_key: format!("refund:{charge_id}"),
                    chat_id: *user_id,
                    text,
                    reply_markup: None,
                };
                enqueue(&mut tx, self.engine, &message, now).await?;
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// The payment behind a charge id (for the operator's refund command).
    pub async fn payment(&self, charge_id: &str) -> StoreResult<Option<PaymentRecord>> {
        let mut charge_id = charge_id.to_owned();
        make_storable(&mut charge_id);
        let row = sqlx::query(
            "SELECT charge_id, user_id, order_id, ndn, stars, status FROM payments WHERE charge_id = $1",
        )
        .bind(charge_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| payment_from_row(&row)).transpose()
    }

    /// The buyer's most recent charge ids, for `/paysupport`.
    pub async fn recent_charges(&self, user_id: i64, limit: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT charge_id FROM payments WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Queues a message unless one with the same key was queued before (at-least-once updates
    /// become exactly-once replies). Returns whether it was new.
    pub async fn enqueue(&self, message: &OutgoingMessage) -> StoreResult<bool> {
        let mut tx = self.write().await?;
        let new = enqueue(&mut tx, self.engine, message, now_ms()).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Leases up to `limit` due messages for `lease`; an instance that dies loses its lease and
    /// another sends them.
    pub async fn claim_messages(
        &self,
        limit: i64,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedMessage>> {
        let now = now_ms();
        let lock = match self.engine {
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET locked_until = $1, attempts = attempts + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE status = 'pending' AND next_attempt_at <= $2 AND locked_until <= $2
                          ORDER BY id LIMIT $3 {lock})
             RETURNING id, chat_id, text, reply_markup, attempts"
        );
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.write().await?;
        let rows = sqlx::query(&sql)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(ClaimedMessage {
                    id: row.try_get("id")?,
                    chat_id: row.try_get("chat_id")?,
                    text: row.try_get("text")?,
                    reply_markup: row.try_get("reply_markup")?,
                    attempts: row.try_get("attempts")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|message| message.id);
        Ok(claimed)
    }

    /// Records messages as delivered, all in one statement.
    pub async fn messages_sent(&self, ids: &[i64]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        sqlx::query(&format!(
            "UPDATE outbox SET status = 'sent', sent_at = $1, locked_until = 0 WHERE id IN ({list})"
        ))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn message_retry(&self, id: i64, after: Duration, error: &str) -> StoreResult<()> {
        let at = now_ms().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $2, locked_until = 0, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(at)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn message_failed(&self, id: i64, error: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'failed', locked_until = 0, last_error = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(error)
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
        let locked: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
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

    /// Tells every instance listening on PostgreSQL about balance changes (no-op on SQLite,
    /// where the one instance publishes them itself).
    pub async fn notify_balance(&self, changes: &[BalanceBroadcast]) -> StoreResult<()> {
        if self.engine == Engine::Postgres {
            let mut conn = self.pool.acquire().await?;
            notify_balances(&mut conn, changes).await?;
        }
        Ok(())
    }

    /// A durable number of the bot's own (e.g. the polling offset).
    pub async fn bot_value(&self, key: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT value FROM bot_state WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
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

    /// Messages waiting to be sent (for metrics and tests).
    pub async fn pending_messages(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}

/// The PostgreSQL channel of balance events between instances.
pub const BALANCE_CHANNEL: &str = "ndn_balance";

/// A balance change as it crosses instances: each `NOTIFY` on [`BALANCE_CHANNEL`] carries a
/// JSON array of these.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BalanceBroadcast {
    pub user_id: i64,
    pub event: BalanceEvent,
}

/// PostgreSQL refuses a `NOTIFY` payload of 8000 bytes or more.
const NOTIFY_PAYLOAD_LIMIT: usize = 7_900;

/// `NOTIFY`s carrying `changes`, as few as the payload limit allows. Inside a transaction they
/// are delivered when it commits, and not at all if it does not.
async fn notify_balances(
    conn: &mut AnyConnection,
    changes: &[BalanceBroadcast],
) -> StoreResult<()> {
    for payload in balance_payloads(changes)? {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(BALANCE_CHANNEL)
            .bind(payload)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// `changes` as JSON arrays, each under [`NOTIFY_PAYLOAD_LIMIT`] bytes.
fn balance_payloads(changes: &[BalanceBroadcast]) -> StoreResult<Vec<String>> {
    let mut payloads = Vec::new();
    let mut payload = String::new();
    for change in changes {
        let item = serde_json::to_string(change)
            .map_err(|error| StoreError::Corrupt(format!("balance event: {error}")))?;
        if !payload.is_empty() && payload.len() + item.len() + 2 > NOTIFY_PAYLOAD_LIMIT {
            payload.push(']');
            payloads.push(std::mem::take(&mut payload));
        }
        payload.push(if payload.is_empty() { '[' } else { ',' });
        payload.push_str(&item);
    }
    if !payload.is_empty() {
        payload.push(']');
        payloads.push(payload);
    }
    Ok(payloads)
}

/// How a write transaction begins. SQLite takes its write lock up front, so two writers queue
/// on the busy timeout instead of failing on a lock upgrade. PostgreSQL's is READ COMMITTED
/// whatever the server's default: a statement after a row lock sees what the lock waited for.
fn begin_write_statement(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED",
    }
}

/// A write transaction on a connection from the pool.
async fn begin_write(pool: &AnyPool, engine: Engine) -> StoreResult<Transaction<'static, Any>> {
    Ok(pool.begin_with(begin_write_statement(engine)).await?)
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

/// The group-commit writer: takes every payment waiting, applies them in one transaction, and
/// answers each after the commit. If the shared transaction fails, each of its payments is
/// tried alone, so only the ones that fail by themselves get an error.
async fn write_payments(
    pool: AnyPool,
    engine: Engine,
    mut jobs: mpsc::Receiver<PaymentJob>,
    commits: Arc<AtomicU64>,
    splits: Arc<AtomicU64>,
) {
    // One connection for a run of batches: SQLite keeps its page cache across them (a cache is
    // dropped whenever another connection wrote), and no batch waits on the pool. Given back
    // after a short idle spell, or once it failed.
    let mut connection: Option<PoolConnection<Any>> = None;
    loop {
        let first = if connection.is_some() {
            match tokio::time::timeout(WRITER_KEEPS_CONNECTION, jobs.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_) => {
                    connection = None;
                    continue;
                }
            }
        } else {
            match jobs.recv().await {
                Some(job) => job,
                None => break,
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Every batch takes its row locks in the same order, so that batches of two instances
        // wait for each other instead of deadlocking.
        batch.sort_by(|a, b| {
            (a.payer.id, &a.payment.charge_id).cmp(&(b.payer.id, &b.payment.charge_id))
        });
        let mut conn = match connection.take() {
            Some(conn) => conn,
            None => match pool.acquire().await {
                Ok(conn) => conn,
                Err(error) => {
                    let error = StoreError::from(error);
                    for job in batch {
                        let _ = job.reply.send(Err(StoreError::Writer(error.to_string())));
                    }
                    continue;
                }
            },
        };
        let result = commit_payments(&mut conn, engine, &batch).await;
        if result.is_ok() {
            // Kept for the next batch; after a failure (the connection may be what broke)
            // the next batch starts on a fresh one.
            connection = Some(conn);
        }
        match result {
            Ok(outcomes) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(error) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.reply.send(Err(error));
                }
            }
            Err(error) => {
                tracing::warn!(%error, size = batch.len(), "payment batch failed; applying one by one");
                splits.fetch_add(1, Ordering::Relaxed);
                for job in batch {
                    let alone = match pool.acquire().await {
                        Ok(mut conn) => {
                            commit_payments(&mut conn, engine, std::slice::from_ref(&job)).await
                        }
                        Err(error) => Err(error.into()),
                    };
                    if alone.is_ok() {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = job.reply.send(alone.map(|mut outcomes| outcomes.remove(0)));
                }
            }
        }
    }
}

async fn commit_payments(
    conn: &mut AnyConnection,
    engine: Engine,
    jobs: &[PaymentJob],
) -> StoreResult<Vec<PaymentOutcome>> {
    let now = now_ms();
    let mut tx = conn.begin_with(begin_write_statement(engine)).await?;
    let outcomes = apply_payments_in(&mut tx, engine, jobs, now).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// A batch's rows go to the database as one JSON array in one parameter, unpacked by the
/// database: a statement keeps the same text whatever the batch size, so it is prepared once
/// and cached, and a batch of hundreds binds one value (SQLite looks each `$n` name up in a
/// list, which is quadratic in a statement with thousands of them).
///
/// The rows of parameter `$param` as a table `r` with `columns` (name, PostgreSQL type).
fn json_rows(engine: Engine, param: usize, columns: &[(&str, &str)]) -> String {
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

/// The strings of the JSON array in parameter `$param`, as a subquery.
fn json_list(engine: Engine, param: usize) -> String {
    match engine {
        Engine::Postgres => format!("SELECT json_array_elements_text(${param}::json)"),
        Engine::Sqlite => format!("SELECT value FROM json_each(${param})"),
    }
}

fn to_json<T: serde::Serialize>(rows: &T) -> StoreResult<String> {
    serde_json::to_string(rows).map_err(|error| StoreError::Corrupt(format!("rows: {error}")))
}

#[derive(serde::Serialize)]
struct PaymentRow<'a> {
    charge_id: &'a str,
    provider_charge_id: Option<&'a str>,
    user_id: i64,
    order_id: Option<&'a str>,
    payload: &'a str,
    currency: &'a str,
    stars: i64,
    ndn: i64,
    status: &'static str,
    hold_reason: Option<&'static str>,
    created_at: i64,
}

#[derive(serde::Serialize)]
struct UserRow<'a> {
    id: i64,
    first_name: &'a str,
    username: Option<&'a str>,
    language_code: &'a str,
    credit: i64,
    at: i64,
}

#[derive(serde::Serialize)]
struct LedgerRow<'a> {
    user_id: i64,
    delta: i64,
    charge_id: &'a str,
    created_at: i64,
}

#[derive(serde::Serialize)]
struct OutboxRow<'a> {
    dedupe_key: &'a str,
    chat_id: i64,
    text: &'a str,
    reply_markup: Option<&'a str>,
    at: i64,
}

/// A batch of payments inside one write transaction, with a handful of multi-row statements
/// instead of several statements per payment. The outcome of each is what applying them one
/// after another in batch order gives: a charge recorded before, or earlier in the batch,
/// changes nothing; balances in the outcomes (and notices) grow payment by payment.
async fn apply_payments_in(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    jobs: &[PaymentJob],
    now: i64,
) -> StoreResult<Vec<PaymentOutcome>> {
    // The orders the payloads name.
    let mut payloads: Vec<&str> = jobs.iter().map(|j| j.payment.payload.as_str()).collect();
    payloads.sort_unstable();
    payloads.dedup();
    let sql = format!("{ORDER_SELECT} IN ({})", json_list(engine, 1));
    let query = sqlx::query(&sql).bind(to_json(&payloads)?);
    let mut orders = HashMap::with_capacity(payloads.len());
    for row in query.fetch_all(&mut **tx).await? {
        let order = order_from_row(&row)?;
        orders.insert(order.id.clone(), order);
    }

    // A plan for the first occurrence of each charge; the plan's values do not depend on the
    // order's status, so payments of one order earlier in the batch do not change them.
    let mut seen = HashSet::with_capacity(jobs.len());
    let plans: Vec<Option<PaymentPlan>> = jobs
        .iter()
        .map(|job| {
            seen.insert(job.payment.charge_id.as_str()).then(|| {
                let order = orders.get(&job.payment.payload);
                plan_payment(order, &job.payment.currency, job.payment.stars)
            })
        })
        .collect();

    // The payment rows; a charge stored before (by an earlier batch, or by another instance
    // a moment ago) is not returned and counts as a duplicate.
    let fresh: Vec<(&PaymentJob, &PaymentPlan)> = jobs
        .iter()
        .zip(&plans)
        .filter_map(|(job, plan)| plan.as_ref().map(|plan| (job, plan)))
        .collect();
    let rows: Vec<PaymentRow> = fresh
        .iter()
        .map(|(job, plan)| {
            let (status, order_id, ndn, hold_reason) = match plan {
                PaymentPlan::Credit { order_id, ndn, .. } => {
                    (PaymentStatus::Credited, Some(order_id.as_str()), *ndn, None)
                }
                PaymentPlan::Hold { order_id, reason } => {
                    (PaymentStatus::Held, order_id.as_deref(), 0, Some(*reason))
                }
            };
            PaymentRow {
                charge_id: &job.payment.charge_id,
                provider_charge_id: job.payment.provider_charge_id.as_deref(),
                user_id: job.payer.id,
                order_id,
                payload: &job.payment.payload,
                currency: &job.payment.currency,
                stars: job.payment.stars,
                ndn,
                status: status.as_str(),
                hold_reason,
                created_at: now,
            }
        })
        .collect();
    let sql = format!(
        "INSERT INTO payments (charge_id, provider_charge_id, user_id, order_id, payload,
             currency, stars, ndn, status, hold_reason, created_at)
         SELECT charge_id, provider_charge_id, user_id, order_id, payload, currency, stars,
             ndn, status, hold_reason, created_at FROM {} WHERE true
         ON CONFLICT (charge_id) DO NOTHING RETURNING charge_id",
        json_rows(
            engine,
            1,
            &[
                ("charge_id", "text"),
                ("provider_charge_id", "text"),
                ("user_id", "bigint"),
                ("order_id", "text"),
                ("payload", "text"),
                ("currency", "text"),
                ("stars", "bigint"),
                ("ndn", "bigint"),
                ("status", "text"),
                ("hold_reason", "text"),
                ("created_at", "bigint"),
            ]
        )
    );
    let query = sqlx::query(&sql).bind(to_json(&rows)?);
    let mut recorded = HashSet::with_capacity(fresh.len());
    for row in query.fetch_all(&mut **tx).await? {
        recorded.insert(row.try_get::<String, _>(0)?);
    }
    let applied: Vec<Option<&PaymentPlan>> = jobs
        .iter()
        .zip(&plans)
        .map(|(job, plan)| {
            plan.as_ref()
                .filter(|_| recorded.contains(&job.payment.charge_id))
        })
        .collect();

    // Buyers (the latest profile of each) and their balances, moved by what they were
    // credited; one row per buyer, in id order.
    let mut buyers: Vec<(&Buyer, i64)> = Vec::new();
    for (job, plan) in jobs.iter().zip(&applied) {
        let credit = match plan {
            Some(PaymentPlan::Credit { ndn, .. }) => *ndn,
            _ => 0,
        };
        match buyers
            .iter_mut()
            .find(|(buyer, _)| buyer.id == job.payer.id)
        {
            Some(entry) => {
                entry.0 = &job.payer;
                entry.1 += credit;
            }
            None => buyers.push((&job.payer, credit)),
        }
    }
    buyers.sort_by_key(|(buyer, _)| buyer.id);
    let mut balances = upsert_buyers(tx, engine, &buyers, now).await?;

    // Ledger entries and paid orders for the credits.
    let credits: Vec<(&PaymentJob, &str, i64)> = jobs
        .iter()
        .zip(&applied)
        .filter_map(|(job, plan)| match plan {
            Some(PaymentPlan::Credit { order_id, ndn, .. }) => Some((job, order_id.as_str(), *ndn)),
            _ => None,
        })
        .collect();
    if !credits.is_empty() {
        let rows: Vec<LedgerRow> = credits
            .iter()
            .map(|(job, _, ndn)| LedgerRow {
                user_id: job.payer.id,
                delta: *ndn,
                charge_id: &job.payment.charge_id,
                created_at: now,
            })
            .collect();
        let sql = format!(
            "INSERT INTO ledger (user_id, delta, kind, charge_id, created_at)
             SELECT user_id, delta, 'payment', charge_id, created_at FROM {}",
            json_rows(
                engine,
                1,
                &[
                    ("user_id", "bigint"),
                    ("delta", "bigint"),
                    ("charge_id", "text"),
                    ("created_at", "bigint"),
                ]
            )
        );
        sqlx::query(&sql)
            .bind(to_json(&rows)?)
            .execute(&mut **tx)
            .await?;
        // A second payment of a paid order leaves it as it is; so does a refunded order.
        let mut paid: Vec<&str> = credits.iter().map(|(_, order_id, _)| *order_id).collect();
        paid.sort_unstable();
        paid.dedup();
        let sql = format!(
            "UPDATE orders SET status = 'paid', paid_at = $1
             WHERE status IN ('pending', 'expired', 'failed') AND id IN ({})",
            json_list(engine, 2)
        );
        sqlx::query(&sql)
            .bind(now)
            .bind(to_json(&paid)?)
            .execute(&mut **tx)
            .await?;
    }

    // Outcomes, with each credit's balance as it was right after that credit.
    let mut outcomes = vec![PaymentOutcome::Duplicate; jobs.len()];
    for (index, (job, plan)) in jobs.iter().zip(&applied).enumerate().rev() {
        outcomes[index] = match plan {
            None => PaymentOutcome::Duplicate,
            Some(PaymentPlan::Hold { reason, .. }) => PaymentOutcome::Held {
                user_id: job.payer.id,
                reason,
            },
            Some(PaymentPlan::Credit { order_id, ndn, .. }) => {
                let balance = balances.get_mut(&job.payer.id).ok_or_else(|| {
                    StoreError::Corrupt(format!("no balance returned for user {}", job.payer.id))
                })?;
                let after = *balance;
                *balance -= ndn;
                PaymentOutcome::Credited {
                    user_id: job.payer.id,
                    order_id: order_id.clone(),
                    ndn: *ndn,
                    balance: after,
                }
            }
        };
    }

    // The buyers' notices, sent later by the notification worker.
    let messages: Vec<OutgoingMessage> = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome != PaymentOutcome::Duplicate)
        .filter_map(|(job, outcome)| {
            let language = job.payer.language_code.as_deref().unwrap_or("en");
            let text = job.notice.payment(language, outcome, job.payment.stars)?;
            Some(OutgoingMessage {
                dedupe_key: format!("payment:{}", job.payment.charge_id),
                chat_id: job.payer.id,
                text,
                reply_markup: None,
            })
        })
        .collect();
    enqueue_all(tx, engine, &messages, now).await?;

    // Other instances hear of the credits when (and only if) this transaction commits.
    if engine == Engine::Postgres {
        let changes: Vec<BalanceBroadcast> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                PaymentOutcome::Credited {
                    user_id,
                    order_id,
                    balance,
                    ..
                } => Some(BalanceBroadcast {
                    user_id: *user_id,
                    event: BalanceEvent {
                        balance: *balance,
                        order_id: Some(order_id.clone()),
                        status: Some(OrderState::Paid),
                    },
                }),
                _ => None,
            })
            .collect();
        notify_balances(tx, &changes).await?;
    }
    Ok(outcomes)
}

macro_rules! order_select {
    () => {
        "SELECT id, user_id, package_id, ndn, stars, status, created_at, expires_at FROM orders WHERE id"
    };
}
const ORDER_SELECT: &str = order_select!();
const ORDER_BY_ID: &str = concat!(order_select!(), " = $1");

fn parse_state(text: String) -> StoreResult<OrderState> {
    OrderState::parse(&text).ok_or(StoreError::Corrupt(format!("order status `{text}`")))
}

fn order_from_row(row: &AnyRow) -> StoreResult<Order> {
    Ok(Order {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        package_id: row.try_get("package_id")?,
        ndn: row.try_get("ndn")?,
        stars: row.try_get("stars")?,
        status: parse_state(row.try_get("status")?)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn payment_from_row(row: &AnyRow) -> StoreResult<PaymentRecord> {
    let status: String = row.try_get("status")?;
    Ok(PaymentRecord {
        charge_id: row.try_get("charge_id")?,
        user_id: row.try_get("user_id")?,
        order_id: row.try_get("order_id")?,
        ndn: row.try_get("ndn")?,
        stars: row.try_get("stars")?,
        status: PaymentStatus::parse(&status)
            .ok_or(StoreError::Corrupt(format!("payment status `{status}`")))?,
    })
}

/// Stores each buyer's profile (one row per buyer: ids must not repeat) and adds their credit
/// to their balance, creating the buyer if new. Returns the balances after.
async fn upsert_buyers(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    buyers: &[(&Buyer, i64)],
    now: i64,
) -> StoreResult<HashMap<i64, i64>> {
    let rows: Vec<UserRow> = buyers
        .iter()
        .map(|(buyer, credit)| UserRow {
            id: buyer.id,
            first_name: &buyer.first_name,
            username: buyer.username.as_deref(),
            language_code: buyer.language_code.as_deref().unwrap_or("en"),
            credit: *credit,
            at: now,
        })
        .collect();
    let sql = format!(
        "INSERT INTO users (id, first_name, username, language_code, balance, created_at, updated_at)
         SELECT id, first_name, username, language_code, credit, at, at FROM {} WHERE true
         ON CONFLICT (id) DO UPDATE SET first_name = excluded.first_name,
             username = excluded.username, language_code = excluded.language_code,
             balance = users.balance + excluded.balance, updated_at = excluded.updated_at
         RETURNING id, balance",
        json_rows(
            engine,
            1,
            &[
                ("id", "bigint"),
                ("first_name", "text"),
                ("username", "text"),
                ("language_code", "text"),
                ("credit", "bigint"),
                ("at", "bigint"),
            ]
        )
    );
    let query = sqlx::query(&sql).bind(to_json(&rows)?);
    let mut balances = HashMap::with_capacity(buyers.len());
    for row in query.fetch_all(&mut **tx).await? {
        balances.insert(row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?);
    }
    Ok(balances)
}

/// Appends a ledger entry (unique per charge and kind) and moves the cached balance with it.
async fn post_ledger(
    tx: &mut Transaction<'static, Any>,
    user_id: i64,
    delta: i64,
    kind: &str,
    charge_id: &str,
    now: i64,
) -> StoreResult<i64> {
    sqlx::query(
        "INSERT INTO ledger (user_id, delta, kind, charge_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(delta)
    .bind(kind)
    .bind(charge_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(
        "UPDATE users SET balance = balance + $2, updated_at = $3 WHERE id = $1 RETURNING balance",
    )
    .bind(user_id)
    .bind(delta)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(StoreError::Corrupt(format!(
            "ledger entry for unknown user {user_id}"
        ))),
    }
}

async fn mark_payment_refunded(
    tx: &mut Transaction<'static, Any>,
    charge_id: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query("UPDATE payments SET status = 'refunded', refunded_at = $2 WHERE charge_id = $1")
        .bind(charge_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn language_in(tx: &mut Transaction<'static, Any>, user_id: i64) -> StoreResult<String> {
    let row = sqlx::query("SELECT language_code FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?
        .unwrap_or_else(|| "en".into()))
}

async fn enqueue(
    tx: &mut Transaction<'static, Any>,
    engine: Engine,
    message: &OutgoingMessage,
    now: i64,
) -> StoreResult<bool> {
    Ok(enqueue_all(tx, engine, std::slice::from_ref(message), now).await? > 0)
}

/// Queues messages (one statement for all); a dedupe key queued before is skipped. Returns
/// how many were new.
async fn enqueue_all(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    messages: &[OutgoingMessage],
    now: i64,
) -> StoreResult<u64> {
    if messages.is_empty() {
        return Ok(0);
    }
    let rows: Vec<OutboxRow> = messages
        .iter()
        .map(|message| OutboxRow {
            dedupe_key: &message.dedupe_key,
            chat_id: message.chat_id,
            text: &message.text,
            reply_markup: message.reply_markup.as_deref(),
            at: now,
        })
        .collect();
    let sql = format!(
        "INSERT INTO outbox (dedupe_key, chat_id, text, reply_markup, status, next_attempt_at, created_at)
         SELECT dedupe_key, chat_id, text, reply_markup, 'pending', at, at FROM {} WHERE true
         ON CONFLICT (dedupe_key) DO NOTHING",
        json_rows(
            engine,
            1,
            &[
                ("dedupe_key", "text"),
                ("chat_id", "bigint"),
                ("text", "text"),
                ("reply_markup", "text"),
                ("at", "bigint"),
            ]
        )
    );
    let query = sqlx::query(&sql).bind(to_json(&rows)?);
    Ok(query.execute(&mut **tx).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(user_id: i64, balance: i64) -> BalanceBroadcast {
        BalanceBroadcast {
            user_id,
            event: BalanceEvent {
                balance,
                order_id: Some(format!("order-{user_id}-{balance}")),
                status: Some(OrderState::Paid),
            },
        }
    }

    #[test]
    fn balance_events_split_into_notifications_under_the_limit_and_keep_every_change() {
        assert!(balance_payloads(&[]).unwrap().is_empty());
        let changes: Vec<BalanceBroadcast> = (0..500).map(|i| change(1_000 + i, i * 100)).collect();
        let payloads = balance_payloads(&changes).unwrap();
        assert!(payloads.len() > 1, "500 changes fit no single notification");
        let mut decoded = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8_000, "{} bytes", payload.len());
            decoded.extend(serde_json::from_str::<Vec<BalanceBroadcast>>(payload).unwrap());
        }
        assert_eq!(decoded, changes);
    }
}
