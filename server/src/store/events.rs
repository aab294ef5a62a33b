//! Signed events for the operator's backend: written with their change (the transactional
//! outbox), fanned out to the subscribed endpoints in the same statement pair, and handed to
//! the delivery worker one endpoint at a time under a lease.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Engine, Store, StoreResult, in_json_ids, json_rows, to_json};
use crate::hooks::event::{EventType, NewEvent};

/// An endpoint, for `server endpoints list` and the metrics.
#[derive(Debug, Clone)]
pub struct EndpointRecord {
    pub id: i64,
    pub url: String,
    pub types: Vec<String>,
    pub created_at: i64,
    /// Events per POST at most (1: one event per POST).
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

/// An event waiting for one endpoint.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub seq: i64,
    pub event_id: String,
    pub kind: String,
    pub body: String,
    pub created_at: i64,
    /// When it was written or replayed: its retry window starts here.
    pub queued_at: i64,
    pub attempts: i64,
}

/// An event and what became of it at each endpoint, for `server events list`.
#[derive(Debug, Clone)]
pub struct EventLine {
    pub id: String,
    pub kind: String,
    pub user_id: i64,
    pub created_at: i64,
    pub endpoint_id: Option<i64>,
    pub status: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Writes `events` in the change's transaction and queues a delivery to every endpoint
/// subscribed to each (two statements, whatever their number).
pub(super) async fn record(
    tx: &mut Transaction<'_, Any>,
    engine: Engine,
    events: &[NewEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    #[derive(serde::Serialize)]
    struct EventRow<'a> {
        id: &'a str,
        kind: &'static str,
        user_id: i64,
        body: &'a str,
        created_at: i64,
    }
    let rows: Vec<EventRow> = events
        .iter()
        .map(|event| EventRow {
            id: &event.id,
            kind: event.kind.as_str(),
            user_id: event.user_id,
            body: &event.body,
            created_at: event.created_at,
        })
        .collect();
    let sql = format!(
        "INSERT INTO events (id, type, user_id, body, created_at)
         SELECT id, kind, user_id, body, created_at FROM {}
         RETURNING seq, type, created_at",
        json_rows(
            engine,
            1,
            &[
                ("id", "text"),
                ("kind", "text"),
                ("user_id", "bigint"),
                ("body", "text"),
                ("created_at", "bigint"),
            ]
        )
    );
    let written = sqlx::query(&sql)
        .bind(to_json(&rows)?)
        .fetch_all(&mut **tx)
        .await?;
    #[derive(serde::Serialize)]
    struct Written {
        seq: i64,
        kind: String,
        created_at: i64,
    }
    let written: Vec<Written> = written
        .iter()
        .map(|row| {
            Ok(Written {
                seq: row.try_get(0)?,
                kind: row.try_get(1)?,
                created_at: row.try_get(2)?,
            })
        })
        .collect::<StoreResult<_>>()?;
    // The deliveries come from what was just written, not from looking the events up again:
    // PostgreSQL may keep a plan made while the table was small that scans it whole.
    let sql = format!(
        "INSERT INTO deliveries (endpoint_id, event_seq, queued_at)
         SELECT s.endpoint_id, r.seq, r.created_at
         FROM {} JOIN subscriptions s ON s.event_type = r.kind",
        json_rows(
            engine,
            1,
            &[
                ("seq", "bigint"),
                ("kind", "text"),
                ("created_at", "bigint")
            ]
        )
    );
    sqlx::query(&sql)
        .bind(to_json(&written)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The secrets that sign now, from columns `first` (secret), `first + 1` (previous secret)
/// and `first + 2` (until when the previous one signs): the current one first.
fn signing_secrets(row: &AnyRow, first: usize, now: i64) -> StoreResult<Vec<String>> {
    let mut secrets = vec![row.try_get::<String, _>(first)?];
    let previous: Option<String> = row.try_get(first + 1)?;
    let until: Option<i64> = row.try_get(first + 2)?;
    if let (Some(previous), Some(until)) = (previous, until)
        && until > now
    {
        secrets.push(previous);
    }
    Ok(secrets)
}

impl Store {
    /// Adds an endpoint receiving `types`; returns its id.
    pub async fn add_endpoint(
        &self,
        url: &str,
        secret: &str,
        types: &[EventType],
        batch: i64,
        now: i64,
    ) -> StoreResult<i64> {
        let mut tx = self.write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO endpoints (url, secret, created_at, batch_size) VALUES ($1, $2, $3, $4)
             RETURNING id",
        )
        .bind(url)
        .bind(secret)
        .bind(now)
        .bind(batch)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
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
    pub async fn endpoints(&self) -> StoreResult<Vec<EndpointRecord>> {
        let rows = sqlx::query(
            "SELECT e.id, e.url, e.created_at, e.previous_until, e.failures, e.retry_at,
                 e.last_success_at, e.last_error,
                 (SELECT COUNT(*) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending'),
                 (SELECT COUNT(*) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'delivered'),
                 (SELECT COUNT(*) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'failed'),
                 e.batch_size
             FROM endpoints e ORDER BY e.id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut endpoints = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let types = sqlx::query(
                "SELECT event_type FROM subscriptions WHERE endpoint_id = $1 ORDER BY event_type",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
            endpoints.push(EndpointRecord {
                id,
                url: row.try_get(1)?,
                types,
                created_at: row.try_get(2)?,
                previous_until: row.try_get(3)?,
                failures: row.try_get(4)?,
                retry_at: row.try_get(5)?,
                last_success_at: row.try_get(6)?,
                last_error: row.try_get(7)?,
                pending: row.try_get(8)?,
                delivered: row.try_get(9)?,
                failed: row.try_get(10)?,
                batch: row.try_get(11)?,
            });
        }
        Ok(endpoints)
    }

    /// Removes an endpoint with its subscriptions and deliveries; `false` if there is none.
    pub async fn remove_endpoint(&self, id: i64) -> StoreResult<bool> {
        let mut tx = self.write().await?;
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
    pub async fn rotate_endpoint_secret(
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

    /// Endpoints with something to send now that no worker holds.
    pub async fn due_endpoints(&self, now: i64) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT e.id FROM endpoints e
             WHERE e.retry_at <= $1 AND e.locked_until <= $1
               AND EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.endpoint_id = e.id AND d.status = 'pending')
             ORDER BY e.id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get(0)?))
            .collect::<StoreResult<_>>()
    }

    /// Takes an endpoint's lease until `until` if it is free and due: while held, only this
    /// worker sends to it (one event at a time, in order). `None` if another worker has it.
    pub async fn lease_endpoint(
        &self,
        id: i64,
        now: i64,
        until: i64,
    ) -> StoreResult<Option<EndpointLease>> {
        let row = sqlx::query(
            "UPDATE endpoints SET locked_until = $2
             WHERE id = $1 AND locked_until <= $3 AND retry_at <= $3
             RETURNING url, secret, previous_secret, previous_until, failures, batch_size",
        )
        .bind(id)
        .bind(until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(EndpointLease {
            id,
            url: row.try_get(0)?,
            secrets: signing_secrets(&row, 1, now)?,
            failures: row.try_get(4)?,
            batch: row.try_get(5)?,
        }))
    }

    /// Updates `lease` to where its endpoint is now, what signs for it and how many events go
    /// in one POST (`false` once the endpoint is removed): a sender that keeps its lease through
    /// a sale rereads them, so a move, a rotation or a new batch size applies to the next batch.
    pub async fn endpoint_target(&self, lease: &mut EndpointLease, now: i64) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT url, secret, previous_secret, previous_until, batch_size
             FROM endpoints WHERE id = $1",
        )
        .bind(lease.id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        lease.url = row.try_get(0)?;
        lease.secrets = signing_secrets(&row, 1, now)?;
        lease.batch = row.try_get(4)?;
        Ok(true)
    }

    /// Sets how many events endpoint `id` takes in one POST; `false` if there is no such
    /// endpoint.
    pub async fn set_endpoint_batch(&self, id: i64, batch: i64) -> StoreResult<bool> {
        let changed = sqlx::query("UPDATE endpoints SET batch_size = $2 WHERE id = $1")
            .bind(id)
            .bind(batch)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    /// Extends a lease this worker holds.
    pub async fn renew_endpoint(&self, id: i64, until: i64) -> StoreResult<()> {
        sqlx::query("UPDATE endpoints SET locked_until = $2 WHERE id = $1")
            .bind(id)
            .bind(until)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives a lease back, so that any worker may send to the endpoint again.
    pub async fn release_endpoint(&self, id: i64) -> StoreResult<()> {
        self.renew_endpoint(id, 0).await
    }

    /// The oldest events waiting for `endpoint`, in the order they were written.
    pub async fn pending_deliveries(
        &self,
        endpoint: i64,
        limit: i64,
    ) -> StoreResult<Vec<PendingDelivery>> {
        let rows = sqlx::query(
            "SELECT d.event_seq, e.id, e.type, e.body, e.created_at, d.queued_at, d.attempts
             FROM deliveries d JOIN events e ON e.seq = d.event_seq
             WHERE d.endpoint_id = $1 AND d.status = 'pending'
             ORDER BY d.event_seq LIMIT $2",
        )
        .bind(endpoint)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PendingDelivery {
                    seq: row.try_get(0)?,
                    event_id: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    body: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                    queued_at: row.try_get(5)?,
                    attempts: row.try_get(6)?,
                })
            })
            .collect()
    }

    /// Records the events a receiver accepted (one statement for the lot) and clears the
    /// endpoint's failures.
    pub async fn deliveries_done(&self, endpoint: i64, seqs: &[i64], now: i64) -> StoreResult<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        // One statement text whatever the count, prepared once.
        sqlx::query(&format!(
            "UPDATE deliveries SET status = 'delivered', delivered_at = $2, attempts = attempts + 1,
                 last_status = 200, last_error = NULL
             WHERE endpoint_id = $1 AND status = 'pending' AND {}",
            in_json_ids(self.engine, "event_seq", 3)
        ))
        .bind(endpoint)
        .bind(now)
        .bind(to_json(&seqs)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE endpoints SET failures = 0, retry_at = 0, last_success_at = $2, last_error = NULL
             WHERE id = $1",
        )
        .bind(endpoint)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed attempt at the events `attempted` (one, or one POST's batch): the
    /// endpoint waits until `retry_at` (and its lease is given back); those of them in
    /// `given_up` are marked failed.
    pub async fn delivery_failed(
        &self,
        endpoint: i64,
        attempted: &[i64],
        given_up: &[i64],
        status: Option<u16>,
        error: &str,
        retry_at: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write().await?;
        sqlx::query(&format!(
            "UPDATE deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3
             WHERE endpoint_id = $1 AND status = 'pending' AND {}",
            in_json_ids(self.engine, "event_seq", 4)
        ))
        .bind(endpoint)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(to_json(&attempted)?)
        .execute(&mut *tx)
        .await?;
        if !given_up.is_empty() {
            sqlx::query(&format!(
                "UPDATE deliveries SET status = 'failed'
                 WHERE endpoint_id = $1 AND status = 'pending' AND {}",
                in_json_ids(self.engine, "event_seq", 2)
            ))
            .bind(endpoint)
            .bind(to_json(&given_up)?)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE endpoints SET failures = failures + 1, retry_at = $2, last_error = $3,
                 locked_until = 0
             WHERE id = $1",
        )
        .bind(endpoint)
        .bind(retry_at)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest events (each with its deliveries), newest first; only those with a failed
    /// delivery if `failed_only`.
    pub async fn event_lines(&self, failed_only: bool, limit: i64) -> StoreResult<Vec<EventLine>> {
        let filter = if failed_only {
            "WHERE e.seq IN (SELECT event_seq FROM deliveries WHERE status = 'failed')"
        } else {
            ""
        };
        let rows = sqlx::query(&format!(
            "SELECT e.id, e.type, e.user_id, e.created_at, d.endpoint_id, d.status, d.attempts,
                 d.last_error
             FROM (SELECT * FROM events e {filter} ORDER BY e.seq DESC LIMIT $1) e
             LEFT JOIN deliveries d ON d.event_seq = e.seq
             ORDER BY e.seq DESC, d.endpoint_id"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EventLine {
                    id: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    user_id: row.try_get(2)?,
                    created_at: row.try_get(3)?,
                    endpoint_id: row.try_get(4)?,
                    status: row.try_get(5)?,
                    attempts: row.try_get::<Option<i64>, _>(6)?.unwrap_or(0),
                    last_error: row.try_get(7)?,
                })
            })
            .collect()
    }

    /// Queues events again for every endpoint subscribed to them now (delivered or failed
    /// before, they are sent again; receivers deduplicate by id): the event `id`, or every
    /// event written since `since` (Unix ms). Returns how many deliveries were queued.
    pub async fn replay_events(
        &self,
        id: Option<&str>,
        since: Option<i64>,
        now: i64,
    ) -> StoreResult<u64> {
        let which = match (id, since) {
            (Some(_), _) => "e.id = $2",
            (None, Some(_)) => "e.created_at >= $2",
            (None, None) => return Ok(0),
        };
        let sql = format!(
            "INSERT INTO deliveries (endpoint_id, event_seq, queued_at)
             SELECT s.endpoint_id, e.seq, $1
             FROM events e JOIN subscriptions s ON s.event_type = e.type
             WHERE {which}
             ON CONFLICT (endpoint_id, event_seq) DO UPDATE SET status = 'pending', attempts = 0,
                 queued_at = excluded.queued_at, last_status = NULL, last_error = NULL,
                 delivered_at = NULL"
        );
        let query = sqlx::query(&sql).bind(now);
        let query = match (id, since) {
            (Some(id), _) => query.bind(id.to_owned()),
            (None, since) => query.bind(since.unwrap_or(0)),
        };
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    /// Whether an event with this id was written.
    pub async fn event_exists(&self, id: &str) -> StoreResult<bool> {
        Ok(sqlx::query("SELECT 1 FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Deliveries waiting, and the age in ms of the oldest one's event (for the metrics).
    pub async fn deliveries_waiting(&self, now: i64) -> StoreResult<(i64, i64)> {
        let row =
            sqlx::query("SELECT COUNT(*), MIN(queued_at) FROM deliveries WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let oldest: Option<i64> = row.try_get(1)?;
        Ok((row.try_get(0)?, oldest.map_or(0, |at| now - at)))
    }
}

impl Store {
    /// The secrets that sign events to `url` now (a receiver's view: the sandbox's receiver
    /// checks its signatures with these).
    pub async fn endpoint_secrets(&self, url: &str, now: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT secret, previous_secret, previous_until FROM endpoints WHERE url = $1",
        )
        .bind(url)
        .fetch_all(&self.pool)
        .await?;
        let mut secrets = Vec::new();
        for row in rows {
            secrets.extend(signing_secrets(&row, 0, now)?);
        }
        Ok(secrets)
    }
}

impl Store {
    /// Points endpoint `id` at `url` (the sandbox's receiver, when the sandbox moved port).
    pub async fn move_endpoint(&self, id: i64, url: &str) -> StoreResult<()> {
        sqlx::query("UPDATE endpoints SET url = $2 WHERE id = $1")
            .bind(id)
            .bind(url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
