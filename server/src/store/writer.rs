//! Group commit: one writer task takes every job waiting (up to a batch), applies them in one
//! transaction — one fsync for many — and answers each only after that transaction committed.
//! If the shared transaction fails, each of its jobs is tried alone, so only a job that fails by
//! itself gets the error. A panic in a batch's code counts as such a failure (its transaction
//! was never committed): the writer goes on, and only a job that panics alone answers an error.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{Engine, StoreError, StoreResult, begin_write};
use crate::clock::now_ms;

/// Jobs committed together at most.
const MAX_BATCH: usize = 256;

/// A writer gives its connection back to the pool after this long without work.
const KEEPS_CONNECTION: Duration = Duration::from_millis(100);

/// What a writer applies: a batch of jobs inside one write transaction, each job's outcome
/// what applying them one at a time in batch order gives.
pub(crate) trait Batch: Send + Sync + 'static {
    type Job: Send + Sync + 'static;
    type Outcome: Send + 'static;

    /// What the writer's log lines call a batch.
    const NAME: &'static str;

    /// The order a batch is applied in. Jobs that take row locks as they go (payments) are
    /// sorted so that the batches of two instances wait for each other instead of
    /// deadlocking; jobs that lock everything up front keep their arrival order.
    fn lock_order(_a: &Self::Job, _b: &Self::Job) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }

    /// Whether a failed batch is worth one more attempt as it is (a conflict with another
    /// instance that the next attempt sees and answers), before its jobs are tried alone.
    fn retry(_error: &StoreError) -> bool {
        false
    }

    /// Applies `jobs`; `attempt` counts from 0 (a retry, or a job tried alone, is 1).
    fn apply(
        &self,
        tx: &mut Transaction<'_, Any>,
        engine: Engine,
        jobs: &[Self::Job],
        now: i64,
        attempt: u32,
    ) -> impl Future<Output = StoreResult<Vec<Self::Outcome>>> + Send;
}

type Envelope<B> = (
    <B as Batch>::Job,
    oneshot::Sender<StoreResult<<B as Batch>::Outcome>>,
);

/// A running writer; jobs reach it through [`Writer::submit`].
pub(crate) struct Writer<B: Batch> {
    jobs: mpsc::Sender<Envelope<B>>,
}

impl<B: Batch> Clone for Writer<B> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

/// How many transactions a writer committed, how many shared ones failed and were split, how
/// many attempts panicked, and whether the writer runs.
#[derive(Clone, Default)]
pub(crate) struct Counters {
    pub commits: Arc<AtomicU64>,
    pub splits: Arc<AtomicU64>,
    pub panics: Arc<AtomicU64>,
    pub running: Arc<AtomicBool>,
    pub faults: Faults,
}

/// Faults a test injects into a writer, to see that the money path survives them; the server
/// itself never sets them.
#[derive(Clone, Default)]
pub struct Faults {
    /// The next this many attempts panic inside their transaction (as a bug in a batch would).
    pub panics: Arc<AtomicU32>,
    /// The writer's task panics outside any batch and ends (as a bug in the writer would).
    pub crash: Arc<AtomicBool>,
}

impl Faults {
    fn take_panic(&self) -> bool {
        self.panics
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// Marks the writer stopped when its task ends, however it ends (a panic unwinds through it).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl<B: Batch> Writer<B> {
    pub(crate) fn start(pool: AnyPool, engine: Engine, batch: B, counters: Counters) -> Self {
        let (jobs, queue) = mpsc::channel(4 * MAX_BATCH);
        counters.running.store(true, Ordering::SeqCst);
        tokio::spawn(write(pool, engine, batch, queue, counters));
        Self { jobs }
    }

    /// Applies `job` with the others waiting; answers once its transaction committed.
    pub(crate) async fn submit(&self, job: B::Job) -> StoreResult<B::Outcome> {
        let stopped = || StoreError::Writer(format!("the {} writer stopped", B::NAME));
        let (reply, answer) = oneshot::channel();
        self.jobs.send((job, reply)).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn write<B: Batch>(
    pool: AnyPool,
    engine: Engine,
    batch_kind: B,
    mut queue: mpsc::Receiver<Envelope<B>>,
    counters: Counters,
) {
    let _running = Running(counters.running.clone());
    // One connection for a run of batches: SQLite keeps its page cache across them (a cache is
    // dropped whenever another connection wrote), and no batch waits on the pool. Given back
    // after a short idle spell, or once it failed.
    let mut connection: Option<PoolConnection<Any>> = None;
    loop {
        let first = if connection.is_some() {
            match tokio::time::timeout(KEEPS_CONNECTION, queue.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_) => {
                    connection = None;
                    continue;
                }
            }
        } else {
            match queue.recv().await {
                Some(job) => job,
                None => break,
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if counters.faults.crash.swap(false, Ordering::SeqCst) {
            panic!("the {} writer crashed (an injected fault)", B::NAME);
        }
        batch.sort_by(|(a, _), (b, _)| B::lock_order(a, b));
        let (jobs, replies): (Vec<B::Job>, Vec<_>) = batch.into_iter().unzip();
        let mut conn = match connection.take() {
            Some(conn) => conn,
            None => match pool.acquire().await {
                Ok(conn) => conn,
                Err(error) => {
                    let error = StoreError::from(error);
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Writer(error.to_string())));
                    }
                    continue;
                }
            },
        };
        let mut result = commit(&batch_kind, &mut conn, engine, &jobs, 0, &counters).await;
        if let Err(error) = &result
            && B::retry(error)
        {
            result = match pool.acquire().await {
                Ok(mut fresh) => commit(&batch_kind, &mut fresh, engine, &jobs, 1, &counters).await,
                Err(error) => Err(error.into()),
            };
        }
        if result.is_ok() {
            // Kept for the next batch; after a failure (the connection may be what broke)
            // the next batch starts on a fresh one.
            connection = Some(conn);
        } else {
            // A panic may have left it inside a transaction: closed, not given back.
            drop(conn.detach());
        }
        match result {
            Ok(outcomes) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) if jobs.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
            Err(error) => {
                tracing::warn!(%error, size = jobs.len(), "{} batch failed; applying one by one", B::NAME);
                counters.splits.fetch_add(1, Ordering::Relaxed);
                for (job, reply) in jobs.iter().zip(replies) {
                    let alone = match pool.acquire().await {
                        Ok(mut conn) => {
                            let job = std::slice::from_ref(job);
                            let alone =
                                commit(&batch_kind, &mut conn, engine, job, 1, &counters).await;
                            if alone.is_err() {
                                drop(conn.detach());
                            }
                            alone
                        }
                        Err(error) => Err(error.into()),
                    };
                    if alone.is_ok() {
                        counters.commits.fetch_add(1, Ordering::Relaxed);
                    }
                    let outcome = alone.and_then(|outcomes| {
                        outcomes.into_iter().next().ok_or_else(|| {
                            StoreError::Writer(format!("the {} batch answered nothing", B::NAME))
                        })
                    });
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}

/// One attempt at `jobs` in a transaction of their own. A panic inside it (a bug, or an
/// arithmetic overflow in a debug build) is this attempt's error, counted and logged, and never
/// ends the writer: every later batch would wait for it forever.
async fn commit<B: Batch>(
    batch_kind: &B,
    conn: &mut AnyConnection,
    engine: Engine,
    jobs: &[B::Job],
    attempt: u32,
    counters: &Counters,
) -> StoreResult<Vec<B::Outcome>> {
    let transaction = async {
        let now = now_ms();
        let mut tx = conn.begin_with(begin_write(engine)).await?;
        let outcomes = batch_kind
            .apply(&mut tx, engine, jobs, now, attempt)
            .await?;
        if counters.faults.take_panic() {
            panic!("an injected fault in a {} batch", B::NAME);
        }
        tx.commit().await?;
        Ok(outcomes)
    };
    match AssertUnwindSafe(transaction).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            counters.panics.fetch_add(1, Ordering::Relaxed);
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%message, size = jobs.len(), "a {} batch panicked; rolled back", B::NAME);
            Err(StoreError::Writer(format!("a {} batch failed", B::NAME)))
        }
    }
}
