//! What the delivery worker and the CLI do with the events: endpoints due and leased, the events
//! each has to send, positions moved on, failures and replays recorded, old events pruned.

use sqlx::AssertSqlSafe;

use super::tables::{
    EndpointLease, EventLine, EventRow, EventStore, FailedPost, IN_STREAM, MOVE_FORWARD, Outgoing,
    PendingDelivery, Position, StoredSecrets, final_position_sql,
};
use crate::store::{StoreResult, in_json_ids, to_json, write_transaction};

/// The row a lease returns: where to send, what signs, and the endpoint's failures and batch
/// size.
#[derive(sqlx::FromRow)]
struct LeaseRow {
    url: String,
    #[sqlx(flatten)]
    secrets: StoredSecrets,
    failures: i64,
    batch_size: i64,
}

/// Where an endpoint is now, what signs for it and its batch size.
#[derive(sqlx::FromRow)]
struct TargetRow {
    url: String,
    #[sqlx(flatten)]
    secrets: StoredSecrets,
    batch_size: i64,
}

/// A replayed event waiting in `deliveries`: the event, queued again at `queued_at`.
#[derive(sqlx::FromRow)]
struct ReplayRow {
    #[sqlx(flatten)]
    event: EventRow,
    queued_at: i64,
    attempts: i64,
}

impl EventStore {
    /// Endpoints with something to send now that no worker holds: a replayed event, or an
    /// event written after its position (of any type: its sender moves the position past the
    /// types it does not take, so that they are not read again and again).
    pub async fn due_endpoints(&self, now: i64) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar(
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
        .await?)
    }

    /// Takes an endpoint's lease until `until` if it is free and due: while held, only this
    /// worker sends to it (one event at a time, in order). `None` if another worker has it.
    pub async fn lease_endpoint(
        &self,
        id: i64,
        now: i64,
        until: i64,
    ) -> StoreResult<Option<EndpointLease>> {
        let row: Option<LeaseRow> = sqlx::query_as(
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
            url: row.url,
            secrets: row.secrets.signing(now),
            failures: row.failures,
            batch: row.batch_size,
        }))
    }

    /// Updates `lease` to where its endpoint is now, what signs for it and how many events go
    /// in one POST (`false` once the endpoint is removed): a sender that keeps its lease through
    /// a sale rereads them, so a move, a rotation or a new batch size applies to the next batch.
    pub async fn endpoint_target(&self, lease: &mut EndpointLease, now: i64) -> StoreResult<bool> {
        let row: Option<TargetRow> = sqlx::query_as(
            "SELECT url, secret, previous_secret, previous_until, batch_size
             FROM endpoints WHERE id = $1",
        )
        .bind(lease.id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        lease.url = row.url;
        lease.secrets = row.secrets.signing(now);
        lease.batch = row.batch_size;
        Ok(true)
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
        let rows: Vec<ReplayRow> = sqlx::query_as(
            "SELECT d.event_seq AS seq, e.xid AS xid, e.id AS id, e.type AS kind, e.body AS body,
                 e.created_at AS created_at, d.queued_at AS queued_at, d.attempts AS attempts
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
                    .into_iter()
                    .map(|row| PendingDelivery {
                        queued_at: row.queued_at,
                        attempts: row.attempts,
                        ..row.event.pending()
                    })
                    .collect(),
                replayed: true,
                through: None,
            });
        }
        let Some((after_xid, after_seq, failures)) = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT after_xid, after_seq, failures FROM endpoints WHERE id = $1",
        )
        .bind(endpoint)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(Outgoing::default());
        };
        let after = Position {
            xid: after_xid,
            seq: after_seq,
        };
        // First how far to read, then what is there up to it: an event committed between the
        // two statements lies past that bound and waits for the next read.
        let Some(last) = sqlx::query_as::<_, Position>(final_position_sql(self.engine))
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(Outgoing::default());
        };
        if last <= after {
            return Ok(Outgoing::default());
        }
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT ev.seq AS seq, ev.xid AS xid, ev.id AS id, ev.type AS kind, ev.body AS body,
                 ev.created_at AS created_at
             FROM events ev
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
            .into_iter()
            .enumerate()
            .map(|(index, row)| PendingDelivery {
                attempts: if index == 0 { failures } else { 0 },
                ..row.pending()
            })
            .collect();
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
        let query = sqlx::query(AssertSqlSafe(sql))
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
    pub async fn delivered(&self, endpoint: i64, seqs: &[i64], now: i64) -> StoreResult<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut tx = write_transaction(&self.pool, self.engine).await?;
        // One statement text whatever the count, prepared once.
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE deliveries SET status = 'delivered', delivered_at = $2, attempts = attempts + 1,
                 last_status = 200, last_error = NULL
             WHERE endpoint_id = $1 AND status = 'pending' AND {}",
            in_json_ids(self.engine, "event_seq", 3)
        )))
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
        let mut tx = write_transaction(&self.pool, self.engine).await?;
        if post.replayed {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3
                 WHERE endpoint_id = $1 AND status = 'pending' AND {}",
                in_json_ids(self.engine, "event_seq", 4)
            )))
            .bind(endpoint)
            .bind(status)
            .bind(post.error)
            .bind(seqs(post.events)?)
            .execute(&mut *tx)
            .await?;
            if !post.given_up.is_empty() {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE deliveries SET status = 'failed'
                     WHERE endpoint_id = $1 AND status = 'pending' AND {}",
                    in_json_ids(self.engine, "event_seq", 2)
                )))
                .bind(endpoint)
                .bind(seqs(post.given_up)?)
                .execute(&mut *tx)
                .await?;
            }
        } else if let Some(last) = post.given_up.last() {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO deliveries (endpoint_id, event_seq, status, attempts, queued_at,
                     last_status, last_error)
                 SELECT $1, ev.seq, 'failed', $2, ev.created_at, $3, $4 FROM events ev
                 WHERE {}
                 ON CONFLICT (endpoint_id, event_seq) DO UPDATE SET status = 'failed',
                     attempts = excluded.attempts, last_status = excluded.last_status,
                     last_error = excluded.last_error",
                in_json_ids(self.engine, "ev.seq", 5)
            )))
            .bind(endpoint)
            .bind(post.failures)
            .bind(status)
            .bind(post.error)
            .bind(seqs(post.given_up)?)
            .execute(&mut *tx)
            .await?;
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE endpoints SET {MOVE_FORWARD} WHERE id = $1"
            )))
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
    pub async fn lines(&self, failed_only: bool, limit: i64) -> StoreResult<Vec<EventLine>> {
        let filter = if failed_only {
            "WHERE e.seq IN (SELECT event_seq FROM deliveries WHERE status = 'failed')"
        } else {
            ""
        };
        // Each event with every endpoint that existed when it was written and takes its type:
        // a row of `deliveries` says what became of it there (given up, or replayed); without
        // one it was delivered if the endpoint's stream has passed it, else it is waiting.
        Ok(sqlx::query_as::<_, EventLine>(AssertSqlSafe(format!(
            "SELECT e.id AS id, e.type AS kind, e.user_id AS user_id, e.created_at AS created_at,
                 p.id AS endpoint_id,
                 CASE WHEN d.status IS NOT NULL THEN d.status
                      WHEN (e.xid, e.seq) <= (p.after_xid, p.after_seq) THEN 'delivered'
                      ELSE 'pending' END AS status,
                 d.attempts AS attempts, d.last_error AS last_error
             FROM (SELECT * FROM events e {filter} ORDER BY e.seq DESC LIMIT $1) e
             LEFT JOIN endpoints p
               ON ((e.xid, e.seq) > (p.from_xid, p.from_seq)
                   AND e.type IN (SELECT s.event_type FROM subscriptions s
                                  WHERE s.endpoint_id = p.id))
                  OR EXISTS (SELECT 1 FROM deliveries r
                             WHERE r.endpoint_id = p.id AND r.event_seq = e.seq)
             LEFT JOIN deliveries d ON d.event_seq = e.seq AND d.endpoint_id = p.id
             ORDER BY e.seq DESC, p.id"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queues events again for every endpoint subscribed to them now whose stream has passed
    /// them (delivered or failed before, they are sent again; receivers deduplicate by id; one
    /// still ahead in a stream is sent anyway): the event `id`, or every event written since
    /// `since` (Unix ms). Returns how many deliveries were queued.
    pub async fn replay(&self, id: Option<&str>, since: Option<i64>, now: i64) -> StoreResult<u64> {
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
        let query = sqlx::query(AssertSqlSafe(sql)).bind(now);
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
    pub async fn prune(&self, before: i64, limit: i64, now: i64) -> StoreResult<u64> {
        let mut tx = write_transaction(&self.pool, self.engine).await?;
        let pruned: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "DELETE FROM events WHERE seq IN (
                 SELECT ev.seq FROM events ev
                 WHERE ev.created_at < $1
                   AND ev.seq < (SELECT MAX(seq) FROM events)
                   AND NOT EXISTS (SELECT 1 FROM endpoints e WHERE {IN_STREAM})
                   AND NOT EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.event_seq = ev.seq AND d.status = 'pending')
                 ORDER BY ev.seq LIMIT $2)
             RETURNING seq"
        )))
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if pruned.is_empty() {
            return Ok(0);
        }
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM deliveries WHERE {}",
            in_json_ids(self.engine, "event_seq", 1)
        )))
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
    pub async fn pruned(&self) -> StoreResult<(i64, Option<i64>)> {
        Ok(sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT pruned, last_at FROM events_pruned WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or((0, None)))
    }

    /// Whether an event with this id was written.
    pub async fn exists(&self, id: &str) -> StoreResult<bool> {
        Ok(sqlx::query("SELECT 1 FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Deliveries waiting over all endpoints (events ahead in their streams, and replayed
    /// ones), and the age in ms of the oldest (for the metrics).
    pub async fn waiting(&self, now: i64) -> StoreResult<(i64, i64)> {
        let (streams, streams_oldest) =
            sqlx::query_as::<_, (i64, Option<i64>)>(AssertSqlSafe(format!(
                "SELECT COUNT(*), MIN(ev.created_at) FROM endpoints e JOIN events ev ON {IN_STREAM}"
            )))
            .fetch_one(&self.pool)
            .await?;
        let (replays, replays_oldest) = sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(queued_at) FROM deliveries WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        let count = streams + replays;
        let oldest = [streams_oldest, replays_oldest].into_iter().flatten().min();
        Ok((count, oldest.map_or(0, |at| now - at)))
    }
}
