//! The console's download of a million transfers, on both databases, with the resident memory
//! of this process — the server, its database driver (SQLite runs inside it) and the client —
//! sampled throughout: streamed from the database to the socket, it must grow by less than
//! 50 MB. Alone in its file, so that no other test shares the process while it measures.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use server::clock::{iso_time, now_ms};
use server::store::Engine;
use support::*;

const TRANSFERS: i64 = 1_000_000;
const OPERATOR: i64 = 424_242;
const LIMIT_BYTES: u64 = 50 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_transfers_download_in_flat_memory() {
    download_a_million(Database::sqlite()).await;
    if let Some(database) = Database::postgres().await {
        download_a_million(database).await;
    }
}

/// This process's resident memory, in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmRSS")
        * 1024
}

async fn download_a_million(database: Database) {
    let app = TestApp::spawn_configured(database, &[("ADMIN_USER_IDS", "424242")]).await;
    let store = &app.server.state.store;
    let start = now_ms() - 60_000;
    // A thousand buyers with Cyrillic names, a million purchases among them, written by the
    // database itself.
    let (buyers, transfers) = match store.engine() {
        Engine::Sqlite => (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO users (id, first_name, username, language_code, balance, created_at, updated_at)
             SELECT 100000 + i, 'Покупатель ' || i, 'buyer_' || i, 'ru', 0, $1, $1 FROM n",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2)
             INSERT INTO transfers (debit_account, credit_account, amount, kind, reference, stars, created_at)
             SELECT -1, 100001 + i % 1000, 500, 'purchase', 'charge-' || i, 225, $1 + i / 20 FROM n",
        ),
        Engine::Postgres => (
            "INSERT INTO users (id, first_name, username, language_code, balance, created_at, updated_at)
             SELECT 100000 + i, 'Покупатель ' || i, 'buyer_' || i, 'ru', 0, $1, $1
             FROM generate_series(1, 1000) AS i",
            "INSERT INTO transfers (debit_account, credit_account, amount, kind, reference, stars, created_at)
             SELECT -1, 100001 + i % 1000, 500, 'purchase', 'charge-' || i, 225, $1 + i / 20
             FROM generate_series(1, $2::bigint) AS i",
        ),
    };
    sqlx::query(buyers)
        .bind(start)
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query(transfers)
        .bind(start)
        .bind(TRANSFERS)
        .execute(store.pool())
        .await
        .unwrap();

    let day = &iso_time(start)[..10];
    let last = &iso_time(start + TRANSFERS)[..10];
    let (status, link) = app
        .call_as(
            OPERATOR,
            "console_export",
            &[("from", day), ("to", last), ("format", "csv")],
        )
        .await;
    assert_eq!(status, 200, "{link}");
    let Value::String(link) = link else {
        panic!("a link: {link}")
    };

    let before = resident();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            loop {
                peak.fetch_max(resident(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let began = Instant::now();
    let mut response = app
        .http
        .get(format!("{}{link}", app.base))
        .header("Accept-Encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (mut bytes, mut lines, mut tail) = (0usize, 0usize, Vec::new());
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
        tail.extend_from_slice(&chunk);
        let keep = tail.len().saturating_sub(200);
        tail.drain(..keep);
    }
    sampler.abort();
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    println!(
        "{:?}: {lines} lines, {} MB in {:.1} s; resident memory grew by {:.1} MB",
        store.engine(),
        bytes / 1_000_000,
        began.elapsed().as_secs_f64(),
        growth as f64 / 1_048_576.0
    );
    // The header, a million transfers, one totals line.
    assert_eq!(lines, 1 + TRANSFERS as usize + 1);
    let tail = String::from_utf8_lossy(&tail);
    assert!(
        tail.ends_with(&format!(
            "total,purchase,,,,{},{},,,,{TRANSFERS} transfers\r\n",
            500 * TRANSFERS,
            225 * TRANSFERS
        )),
        "{tail}"
    );
    assert!(
        growth < LIMIT_BYTES,
        "resident memory grew by {growth} bytes"
    );
}
