//! Signed events for the operator's backend: written with their change (the transactional
//! outbox) and handed to the delivery worker one endpoint at a time under a lease. Each
//! endpoint keeps a position in the events (the last one it is done with): the change's
//! transaction writes nothing for the endpoints, and a delivered batch moves the position once.
//! `deliveries` holds only the exceptions: events given up after the retry window, and events
//! queued again by a replay.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Engine, Store, StoreResult, in_json_ids, json_rows, to_json};
use crate::outgoing::event::{EventType, NewEvent};

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

/// Where an event stands in the order endpoints receive events in: the transaction that
/// wrote it (PostgreSQL's transaction id; always 0 in SQLite, which commits one write
/// transaction at a time in the order of `seq`), then the order it was written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
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

/// A POST that failed, for [`Store::delivery_failed`].
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
#[derive(Debug, Clone)]
pub struct EventLine {
    pub id: String,
    pub kind: String,
    pub user_id: i64,
    pub created_at: i64,
    pub endpoint_id: Option<i64>,
    pub status: Option<String>,
    /// Known for events given up or replayed; an event delivered in its endpoint's stream
    /// keeps no count.
    pub attempts: Option<i64>,
    pub last_error: Option<String>,
}

/// Writes `events` in the change's transaction (one statement, whatever their number). The
/// endpoints' positions find them there: nothing is written per endpoint.
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
    // xid takes its default: the writing transaction's id in PostgreSQL, 0 in SQLite.
    let sql = format!(
        "INSERT INTO events (id, type, user_id, body, created_at)
         SELECT id, kind, user_id, body, created_at FROM {}",
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
    sqlx::query(&sql)
        .bind(to_json(&rows)?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The last event every later event will come after: in PostgreSQL, of the events written by
/// transactions older than every transaction still running (a transaction still running may
/// yet commit events, all of them after this one); in SQLite, the last event written.
fn final_position_sql(engine: Engine) -> &'static str {
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
const IN_STREAM: &str = "(ev.xid, ev.seq) > (e.after_xid, e.after_seq)
     AND ev.type IN (SELECT s.event_type FROM subscriptions s WHERE s.endpoint_id = e.id)";

/// An event read as `seq, xid, id, type, body, created_at`, as its stream sends it: queued
/// when written, no attempt made.
fn pending_event(row: &AnyRow) -> StoreResult<PendingDelivery> {
    let created_at = row.try_get(5)?;
    Ok(PendingDelivery {
        position: Position {
            xid: row.try_get(1)?,
            seq: row.try_get(0)?,
        },
        event_id: row.try_get(2)?,
        kind: row.try_get(3)?,
        body: row.try_get(4)?,
        created_at,
        queued_at: created_at,
        attempts: 0,
    })
}

/// Moves an endpoint's position to `($2, $3)` if that is further on: a position never moves
/// back (an `UPDATE endpoints SET` list's first items).
const MOVE_FORWARD: &str =
    "after_xid = CASE WHEN (after_xid, after_seq) < ($2, $3) THEN $2 ELSE after_xid END,
     after_seq = CASE WHEN (after_xid, after_seq) < ($2, $3) THEN $3 ELSE after_seq END";

fn position(row: &AnyRow, first: usize) -> StoreResult<Position> {
    Ok(Position {
        xid: row.try_get(first)?,
        seq: row.try_get(first + 1)?,
    })
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
        // It receives the events written from now on: its stream begins after the last one.
        let start =
            match sqlx::query("SELECT xid, seq FROM events ORDER BY xid DESC, seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(row) => position(&row, 0)?,
                None => Position::default(),
            };
        let id: i64 = sqlx::query(
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
        let rows = sqlx::query(&format!(
            "SELECT e.id, e.url, e.created_at, e.previous_until, e.failures, e.retry_at,
                 e.last_success_at, e.last_error,
                 (SELECT COUNT(*) FROM events ev WHERE {IN_STREAM})
                   + (SELECT COUNT(*) FROM deliveries d
                      WHERE d.endpoint_id = e.id AND d.status = 'pending'),
                 e.delivered,
                 (SELECT COUNT(*) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'failed'),
                 e.batch_size
             FROM endpoints e ORDER BY e.id"
        ))
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

    /// Endpoints with something to send now that no worker holds: a replayed event, or an
    /// event written after its position (of any type: its sender moves the position past the
    /// types it does not take, so that they are not read again and again).
    pub async fn due_endpoints(&self, now: i64) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT e.id FROM endpoints e
             WHERE e.retry_at <= $1 AND e.locked_until <= $1
               AND (EXISTS (SELECT 1 FROM events ev
                            WHERE (ev.xid, ev.seq) > (e.after_xid, e.after_seq))
                    OR EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.endpoint_id = e.id AND d.status = 'pending'))
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

    /// What `endpoint` sends next, `limit` events at most: the replayed events waiting for it
    /// (oldest first), else the next events of its stream in order, as far as every later
    /// event is sure to come after them.
    pub async fn outgoing(&self, endpoint: i64, limit: i64) -> StoreResult<Outgoing> {
        let rows = sqlx::query(
            "SELECT d.event_seq, e.xid, e.id, e.type, e.body, e.created_at, d.queued_at, d.attempts
             FROM deliveries d JOIN events e ON e.seq = d.event_seq
             WHERE d.endpoint_id = $1 AND d.status = 'pending'
             ORDER BY d.event_seq LIMIT $2",
        )
        .bind(endpoint)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        if !rows.is_empty() {
            return Ok(Outgoing {
                events: rows
                    .iter()
                    .map(|row| {
                        Ok(PendingDelivery {
                            queued_at: row.try_get(6)?,
                            attempts: row.try_get(7)?,
                            ..pending_event(row)?
                        })
                    })
                    .collect::<StoreResult<_>>()?,
                replayed: true,
                through: None,
            });
        }
        let Some(row) =
            sqlx::query("SELECT after_xid, after_seq, failures FROM endpoints WHERE id = $1")
                .bind(endpoint)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(Outgoing::default());
        };
        let after = position(&row, 0)?;
        let failures: i64 = row.try_get(2)?;
        // First how far to read, then what is there up to it: an event committed between the
        // two statements lies past that bound and waits for the next read.
        let Some(last) = sqlx::query(final_position_sql(self.engine))
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(Outgoing::default());
        };
        let last = position(&last, 0)?;
        if last <= after {
            return Ok(Outgoing::default());
        }
        let rows = sqlx::query(
            "SELECT ev.seq, ev.xid, ev.id, ev.type, ev.body, ev.created_at FROM events ev
             WHERE (ev.xid, ev.seq) > ($2, $3) AND (ev.xid, ev.seq) <= ($4, $5)
               AND ev.type IN (SELECT event_type FROM subscriptions WHERE endpoint_id = $1)
             ORDER BY ev.xid, ev.seq LIMIT $6",
        )
        .bind(endpoint)
        .bind(after.xid)
        .bind(after.seq)
        .bind(last.xid)
        .bind(last.seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let events: Vec<PendingDelivery> = rows
            .iter()
            .enumerate()
            .map(|(index, row)| {
                Ok(PendingDelivery {
                    attempts: if index == 0 { failures } else { 0 },
                    ..pending_event(row)?
                })
            })
            .collect::<StoreResult<_>>()?;
        // A full read may stop short of `last`: the endpoint is done up to its last event.
        let full = i64::try_from(events.len()).unwrap_or(i64::MAX) >= limit;
        let through = match events.last() {
            Some(event) if full => event.position,
            _ => last,
        };
        Ok(Outgoing {
            events,
            replayed: false,
            through: Some(through),
        })
    }

    /// Records that `endpoint` is done with its stream up to `to`, `delivered` events of it
    /// accepted (the position never moves back; a success clears the endpoint's failures).
    pub async fn advance_endpoint(
        &self,
        endpoint: i64,
        to: Position,
        delivered: i64,
        now: i64,
    ) -> StoreResult<()> {
        let success = if delivered > 0 {
            ", failures = 0, retry_at = 0, last_success_at = $5, last_error = NULL"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE endpoints SET {MOVE_FORWARD}, delivered = delivered + $4{success} WHERE id = $1"
        );
        let query = sqlx::query(&sql)
            .bind(endpoint)
            .bind(to.xid)
            .bind(to.seq)
            .bind(delivered);
        let query = if delivered > 0 {
            query.bind(now)
        } else {
            query
        };
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// Records the replayed events a receiver accepted (one statement for the lot) and clears
    /// the endpoint's failures.
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
            "UPDATE endpoints SET failures = 0, retry_at = 0, last_success_at = $2, last_error = NULL,
                 delivered = delivered + $3
             WHERE id = $1",
        )
        .bind(endpoint)
        .bind(now)
        .bind(i64::try_from(seqs.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a failed POST to `endpoint`: it waits until `retry_at` (and its lease is given
    /// back); the POST's events past their retry window are marked failed. A replayed event
    /// has its row; an event of the stream gets a failed row, and the position moves past it.
    pub async fn delivery_failed(&self, endpoint: i64, post: &FailedPost<'_>) -> StoreResult<()> {
        let seqs = |events: &[PendingDelivery]| -> StoreResult<String> {
            to_json(
                &events
                    .iter()
                    .map(|event| event.position.seq)
                    .collect::<Vec<_>>(),
            )
        };
        let status = post.status.map(i64::from);
        let mut tx = self.write().await?;
        if post.replayed {
            sqlx::query(&format!(
                "UPDATE deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3
                 WHERE endpoint_id = $1 AND status = 'pending' AND {}",
                in_json_ids(self.engine, "event_seq", 4)
            ))
            .bind(endpoint)
            .bind(status)
            .bind(post.error)
            .bind(seqs(post.events)?)
            .execute(&mut *tx)
            .await?;
            if !post.given_up.is_empty() {
                sqlx::query(&format!(
                    "UPDATE deliveries SET status = 'failed'
                     WHERE endpoint_id = $1 AND status = 'pending' AND {}",
                    in_json_ids(self.engine, "event_seq", 2)
                ))
                .bind(endpoint)
                .bind(seqs(post.given_up)?)
                .execute(&mut *tx)
                .await?;
            }
        } else if let Some(last) = post.given_up.last() {
            sqlx::query(&format!(
                "INSERT INTO deliveries (endpoint_id, event_seq, status, attempts, queued_at,
                     last_status, last_error)
                 SELECT $1, ev.seq, 'failed', $2, ev.created_at, $3, $4 FROM events ev
                 WHERE {}
                 ON CONFLICT (endpoint_id, event_seq) DO UPDATE SET status = 'failed',
                     attempts = excluded.attempts, last_status = excluded.last_status,
                     last_error = excluded.last_error",
                in_json_ids(self.engine, "ev.seq", 5)
            ))
            .bind(endpoint)
            .bind(post.failures)
            .bind(status)
            .bind(post.error)
            .bind(seqs(post.given_up)?)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "UPDATE endpoints SET {MOVE_FORWARD} WHERE id = $1"
            ))
            .bind(endpoint)
            .bind(last.position.xid)
            .bind(last.position.seq)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE endpoints SET failures = $2, retry_at = $3, last_error = $4, locked_until = 0
             WHERE id = $1",
        )
        .bind(endpoint)
        .bind(post.failures)
        .bind(post.retry_at)
        .bind(post.error)
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
        // Each event with every endpoint that existed when it was written and takes its type:
        // a row of `deliveries` says what became of it there (given up, or replayed); without
        // one it was delivered if the endpoint's stream has passed it, else it is waiting.
        let rows = sqlx::query(&format!(
            "SELECT e.id, e.type, e.user_id, e.created_at, p.id,
                 CASE WHEN d.status IS NOT NULL THEN d.status
                      WHEN (e.xid, e.seq) <= (p.after_xid, p.after_seq) THEN 'delivered'
                      ELSE 'pending' END,
                 d.attempts, d.last_error
             FROM (SELECT * FROM events e {filter} ORDER BY e.seq DESC LIMIT $1) e
             LEFT JOIN endpoints p
               ON ((e.xid, e.seq) > (p.from_xid, p.from_seq)
                   AND e.type IN (SELECT s.event_type FROM subscriptions s
                                  WHERE s.endpoint_id = p.id))
                  OR EXISTS (SELECT 1 FROM deliveries r
                             WHERE r.endpoint_id = p.id AND r.event_seq = e.seq)
             LEFT JOIN deliveries d ON d.event_seq = e.seq AND d.endpoint_id = p.id
             ORDER BY e.seq DESC, p.id"
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
                    attempts: row.try_get(6)?,
                    last_error: row.try_get(7)?,
                })
            })
            .collect()
    }

    /// Queues events again for every endpoint subscribed to them now whose stream has passed
    /// them (delivered or failed before, they are sent again; receivers deduplicate by id; one
    /// still ahead in a stream is sent anyway): the event `id`, or every event written since
    /// `since` (Unix ms). Returns how many deliveries were queued.
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
             JOIN endpoints p ON p.id = s.endpoint_id
             WHERE {which} AND (e.xid, e.seq) <= (p.after_xid, p.after_seq)
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

    /// Deletes up to `limit` events written before `before` (Unix ms) that no endpoint needs
    /// any more — every endpoint that takes its type is past it, and no replay of it waits —
    /// with their given-up rows; never the newest event (SQLite numbers the next event after
    /// the largest seq left, and a seq below an endpoint's position must never come again).
    /// Returns how many were deleted.
    pub async fn prune_events(&self, before: i64, limit: i64, now: i64) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let pruned: Vec<i64> = sqlx::query(&format!(
            "DELETE FROM events WHERE seq IN (
                 SELECT ev.seq FROM events ev
                 WHERE ev.created_at < $1
                   AND ev.seq < (SELECT MAX(seq) FROM events)
                   AND NOT EXISTS (SELECT 1 FROM endpoints e WHERE {IN_STREAM})
                   AND NOT EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.event_seq = ev.seq AND d.status = 'pending')
                 ORDER BY ev.seq LIMIT $2)
             RETURNING seq"
        ))
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
        if pruned.is_empty() {
            return Ok(0);
        }
        sqlx::query(&format!(
            "DELETE FROM deliveries WHERE {}",
            in_json_ids(self.engine, "event_seq", 1)
        ))
        .bind(to_json(&pruned)?)
        .execute(&mut *tx)
        .await?;
        let count = i64::try_from(pruned.len()).unwrap_or(i64::MAX);
        sqlx::query("UPDATE events_pruned SET pruned = pruned + $1, last_at = $2 WHERE id = 1")
            .bind(count)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(u64::try_from(pruned.len()).unwrap_or(u64::MAX))
    }

    /// How many events were pruned so far, and when last (Unix ms).
    pub async fn events_pruned(&self) -> StoreResult<(i64, Option<i64>)> {
        let row = sqlx::query("SELECT pruned, last_at FROM events_pruned WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => (row.try_get(0)?, row.try_get(1)?),
            None => (0, None),
        })
    }

    /// Whether an event with this id was written.
    pub async fn event_exists(&self, id: &str) -> StoreResult<bool> {
        Ok(sqlx::query("SELECT 1 FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Deliveries waiting over all endpoints (events ahead in their streams, and replayed
    /// ones), and the age in ms of the oldest (for the metrics).
    pub async fn deliveries_waiting(&self, now: i64) -> StoreResult<(i64, i64)> {
        let streams = sqlx::query(&format!(
            "SELECT COUNT(*), MIN(ev.created_at) FROM endpoints e JOIN events ev ON {IN_STREAM}"
        ))
        .fetch_one(&self.pool)
        .await?;
        let replays =
            sqlx::query("SELECT COUNT(*), MIN(queued_at) FROM deliveries WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        let count = streams.try_get::<i64, _>(0)? + replays.try_get::<i64, _>(0)?;
        let oldest = [
            streams.try_get::<Option<i64>, _>(1)?,
            replays.try_get::<Option<i64>, _>(1)?,
        ]
        .into_iter()
        .flatten()
        .min();
        Ok((count, oldest.map_or(0, |at| now - at)))
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
