//! The tables of the signed events: endpoints with their subscriptions and secrets, the events
//! (written with their change by the store), and `deliveries`, which holds only the exceptions:
//! events given up after the retry window, and events queued again by a replay. Each endpoint
//! keeps a position in the events (the last one it is done with): the change's transaction
//! writes nothing for the endpoints, and a delivered batch moves the position once. This file
//! keeps the types and the endpoints; `deliveries.rs` what the worker and the CLI do with events.

use sqlx::{AnyPool, AssertSqlSafe};

use crate::contract::event::EventType;
use crate::store::{Engine, Store, StoreResult, write_transaction};
use crate::wallet::ids::UserId;

/// An endpoint, for `server endpoints list` and the metrics.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct EndpointRecord {
    pub id: i64,
    pub url: String,
    /// Read from `subscriptions`, after the endpoint's row.
    #[sqlx(skip)]
    #[serde(rename = "events")]
    pub types: Vec<String>,
    pub created_at: i64,
    /// Events per POST at most (1: one event per POST).
    #[sqlx(rename = "batch_size")]
    pub batch: i64,
    /// Until when the secret before the last rotation still signs.
    pub previous_until: Option<i64>,
    /// Attempts failed in a row, and when the next one may go.
    pub failures: i64,
    pub retry_at: i64,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

/// An endpoint this worker holds the lease of: where to send and what to sign with.
#[derive(Debug, Clone)]
pub struct EndpointLease {
    pub id: i64,
    pub url: String,
    /// The current secret first, then the previous one while it is still valid.
    pub secrets: Vec<String>,
    /// Events per POST at most: 1 sends each alone (its id and type in the headers), more
    /// sends a JSON array of them.
    pub batch: i64,
    pub failures: i64,
}

/// Where an event stands in the order endpoints receive events in: the transaction that
/// wrote it (PostgreSQL's transaction id; always 0 in SQLite, which commits one write
/// transaction at a time in the order of `seq`), then the order it was written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct Position {
    pub xid: i64,
    pub seq: i64,
}

/// An event waiting for one endpoint.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    /// Its place in the order of events; `position.seq` is the event's `seq`.
    pub position: Position,
    pub event_id: String,
    pub kind: String,
    pub body: String,
    pub created_at: i64,
    /// When it was written or replayed: its retry window starts here.
    pub queued_at: i64,
    /// Attempts made before (a replayed event's own; the endpoint's failures in a row for the
    /// next event of its stream).
    pub attempts: i64,
}

/// What an endpoint has to send next: events queued again by a replay first, else the next
/// events of its stream.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub events: Vec<PendingDelivery>,
    /// The events are replayed ones (each with its own row in `deliveries`).
    pub replayed: bool,
    /// For the stream: the position the endpoint is done with once all of `events` are
    /// accepted (past them, and past the events of types it does not take); `None` if nothing
    /// new was written.
    pub through: Option<Position>,
}

/// A POST that failed, for [`EventStore::delivery_failed`].
#[derive(Debug, Clone)]
pub struct FailedPost<'a> {
    /// The events it carried, and whether they were replayed ones.
    pub events: &'a [PendingDelivery],
    pub replayed: bool,
    /// Of those, the ones past their retry window: marked failed (for the stream, a prefix of
    /// `events`: the endpoint's position moves past it).
    pub given_up: &'a [PendingDelivery],
    /// The endpoint's failed attempts in a row, this one included.
    pub failures: i64,
    pub status: Option<u16>,
    pub error: &'a str,
    /// When the endpoint may be tried again.
    pub retry_at: i64,
}
/// An event and what became of it at each endpoint, for `server events list`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventLine {
    pub id: String,
    pub kind: String,
    pub user_id: UserId,
    pub created_at: i64,
    pub endpoint_id: Option<i64>,
    pub status: Option<String>,
    /// Known for events given up or replayed; an event delivered in its endpoint's stream
    /// keeps no count.
    pub attempts: Option<i64>,
    pub last_error: Option<String>,
}

/// The last event every later event will come after: in PostgreSQL, of the events written by
/// transactions older than every transaction still running (a transaction still running may
/// yet commit events, all of them after this one); in SQLite, the last event written.
pub(super) fn final_position_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => {
            "SELECT xid, seq FROM events
             WHERE xid < (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
             ORDER BY xid DESC, seq DESC LIMIT 1"
        }
        Engine::Sqlite => "SELECT xid, seq FROM events ORDER BY seq DESC LIMIT 1",
    }
}

/// The endpoint's events still to send in its stream: after its position, of the types it
/// takes (the query's `e` is the endpoint, `ev` the event).
pub(super) const IN_STREAM: &str = "(ev.xid, ev.seq) > (e.after_xid, e.after_seq)
     AND ev.type IN (SELECT s.event_type FROM subscriptions s WHERE s.endpoint_id = e.id)";

/// An event's row as read to send it: columns `seq, xid, id, kind` (its type), `body` and
/// `created_at`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct EventRow {
    seq: i64,
    xid: i64,
    id: String,
    kind: String,
    body: String,
    created_at: i64,
}

impl EventRow {
    /// The event as its stream sends it: queued when written, no attempt made.
    pub(super) fn pending(self) -> PendingDelivery {
        PendingDelivery {
            position: Position {
                xid: self.xid,
                seq: self.seq,
            },
            event_id: self.id,
            kind: self.kind,
            body: self.body,
            created_at: self.created_at,
            queued_at: self.created_at,
            attempts: 0,
        }
    }
}

/// Moves an endpoint's position to `($2, $3)` if that is further on: a position never moves
/// back (an `UPDATE endpoints SET` list's first items).
pub(super) const MOVE_FORWARD: &str =
    "after_xid = CASE WHEN (after_xid, after_seq) < ($2, $3) THEN $2 ELSE after_xid END,
     after_seq = CASE WHEN (after_xid, after_seq) < ($2, $3) THEN $3 ELSE after_seq END";

/// An endpoint's secrets as stored: columns `secret`, `previous_secret` and `previous_until`
/// (until when the previous one signs).
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct StoredSecrets {
    secret: String,
    previous_secret: Option<String>,
    previous_until: Option<i64>,
}

impl StoredSecrets {
    /// The secrets that sign now: the current one first.
    pub(super) fn signing(self, now: i64) -> Vec<String> {
        let mut secrets = vec![self.secret];
        if let (Some(previous), Some(until)) = (self.previous_secret, self.previous_until)
            && until > now
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// The signed events' tables, over the store's pool.
#[derive(Clone)]
pub struct EventStore {
    pub(super) pool: AnyPool,
    pub(super) engine: Engine,
}

impl EventStore {
    pub fn new(store: &Store) -> Self {
        Self {
            pool: store.pool().clone(),
            engine: store.engine(),
        }
    }

    /// Adds an endpoint receiving `types`; returns its id.
    pub async fn add(
        &self,
        url: &str,
        secret: &str,
        types: &[EventType],
        batch: i64,
        now: i64,
    ) -> StoreResult<i64> {
        let mut tx = write_transaction(&self.pool, self.engine).await?;
        // It receives the events written from now on: its stream begins after the last one.
        let start = sqlx::query_as::<_, Position>(
            "SELECT xid, seq FROM events ORDER BY xid DESC, seq DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or_default();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO endpoints (url, secret, created_at, batch_size, after_xid, after_seq,
                 from_xid, from_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $5, $6)
             RETURNING id",
        )
        .bind(url)
        .bind(secret)
        .bind(now)
        .bind(batch)
        .bind(start.xid)
        .bind(start.seq)
        .fetch_one(&mut *tx)
        .await?;
        for kind in types {
            sqlx::query("INSERT INTO subscriptions (endpoint_id, event_type) VALUES ($1, $2)")
                .bind(id)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Every endpoint with its subscriptions and delivery counts, oldest first.
    pub async fn list(&self) -> StoreResult<Vec<EndpointRecord>> {
        let mut endpoints: Vec<EndpointRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT e.id AS id, e.url AS url, e.created_at AS created_at,
                 e.previous_until AS previous_until, e.failures AS failures,
                 e.retry_at AS retry_at, e.last_success_at AS last_success_at,
                 e.last_error AS last_error,
                 (SELECT COUNT(*) FROM events ev WHERE {IN_STREAM})
                   + (SELECT COUNT(*) FROM deliveries d
                      WHERE d.endpoint_id = e.id AND d.status = 'pending') AS pending,
                 e.delivered AS delivered,
                 (SELECT COUNT(*) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'failed')
                   AS failed,
                 e.batch_size AS batch_size
             FROM endpoints e ORDER BY e.id"
        )))
        .fetch_all(&self.pool)
        .await?;
        for endpoint in &mut endpoints {
            endpoint.types = sqlx::query_scalar(
                "SELECT event_type FROM subscriptions WHERE endpoint_id = $1 ORDER BY event_type",
            )
            .bind(endpoint.id)
            .fetch_all(&self.pool)
            .await?;
        }
        Ok(endpoints)
    }

    /// Removes an endpoint with its subscriptions and deliveries; `false` if there is none.
    pub async fn remove(&self, id: i64) -> StoreResult<bool> {
        let mut tx = write_transaction(&self.pool, self.engine).await?;
        sqlx::query("DELETE FROM subscriptions WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM deliveries WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let removed = sqlx::query("DELETE FROM endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(removed == 1)
    }

    /// Gives an endpoint a new secret; the current one keeps signing until `previous_until`.
    pub async fn rotate_secret(
        &self,
        id: i64,
        secret: &str,
        previous_until: i64,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE endpoints SET previous_secret = secret, previous_until = $3, secret = $2
             WHERE id = $1",
        )
        .bind(id)
        .bind(secret)
        .bind(previous_until)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Sets how many events endpoint `id` takes in one POST; `false` if there is no such
    /// endpoint.
    pub async fn set_batch(&self, id: i64, batch: i64) -> StoreResult<bool> {
        let changed = sqlx::query("UPDATE endpoints SET batch_size = $2 WHERE id = $1")
            .bind(id)
            .bind(batch)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// The secrets that sign events to `url` now (a receiver's view: the sandbox's receiver
    /// checks its signatures with these).
    pub async fn secrets_for(&self, url: &str, now: i64) -> StoreResult<Vec<String>> {
        let rows: Vec<StoredSecrets> = sqlx::query_as(
            "SELECT secret, previous_secret, previous_until FROM endpoints WHERE url = $1",
        )
        .bind(url)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().flat_map(|row| row.signing(now)).collect())
    }

    /// Points endpoint `id` at `url` (the sandbox's receiver, when the sandbox moved port).
    pub async fn move_to(&self, id: i64, url: &str) -> StoreResult<()> {
        sqlx::query("UPDATE endpoints SET url = $2 WHERE id = $1")
            .bind(id)
            .bind(url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
