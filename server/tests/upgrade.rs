//! A deployment of the single-entry schema upgrades in place: a database that schema (migrations
//! 1-3) filled through real flows is migrated to the double-entry books, every balance stays
//! what it was, and `ledger verify` finds nothing wrong.

mod support;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use server::wallet::amounts::Stars;
use server::wallet::ids::UserId;
use sqlx::Row;
use sqlx::migrate::Migrator;
use support::*;

on_both_databases!(the_single_entry_ledger_becomes_transfers_with_every_balance_kept);

/// The last migration of the single-entry schema.
const BEFORE_TRANSFERS: i64 = 3;

async fn balances(pool: &sqlx::AnyPool) -> BTreeMap<i64, i64> {
    sqlx::query("SELECT id, balance FROM users ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.try_get(0).unwrap(), row.try_get(1).unwrap()))
        .collect()
}

async fn the_single_entry_ledger_becomes_transfers_with_every_balance_kept(database: Database) {
    let store = server::store::Store::connect(&database.url, 2)
        .await
        .unwrap();
    let engine = match store.engine() {
        server::store::Engine::Sqlite => "sqlite",
        server::store::Engine::Postgres => "postgres",
    };
    // The schema as it was, filled with what that server wrote.
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(engine);
    let mut old = Migrator::new(folder.as_path()).await.unwrap();
    old.migrations = Cow::Owned(
        old.migrations
            .iter()
            .filter(|migration| migration.version <= BEFORE_TRANSFERS)
            .cloned()
            .collect(),
    );
    old.run(store.pool()).await.unwrap();
    let fixture = include_str!("fixtures/before_transfers.sql");
    for statement in fixture
        .lines()
        .filter(|line| line.starts_with("INSERT INTO"))
    {
        sqlx::query(statement)
            .execute(store.pool())
            .await
            .unwrap_or_else(|error| panic!("{statement}: {error}"));
    }
    let before = balances(store.pool()).await;
    let ledger_rows = scalar(&store, "SELECT COUNT(*) FROM ledger").await;
    assert_eq!(
        ledger_rows, 5,
        "the fixture holds four credits and a refund"
    );

    store.migrate().await.unwrap();

    assert_eq!(balances(store.pool()).await, before, "no balance moved");
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM transfers").await,
        ledger_rows
    );
    for (buyer, balance) in &before {
        assert_eq!(
            balance_from_transfers(&store, *buyer).await,
            *balance,
            "buyer {buyer}"
        );
    }
    // Alice: two payments of one link, the first refunded; 225 Stars kept.
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM transfers WHERE credit_account = 279058397
             AND debit_account = -1 AND kind = 'purchase' AND amount = 500 AND stars = 225"
        )
        .await,
        2
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM transfers WHERE debit_account = 279058397
             AND credit_account = -2 AND kind = 'refund' AND reference = 'charge-alice-1'"
        )
        .await,
        1
    );
    assert_eq!(balance_from_transfers(&store, -1).await, -2_100, "sales");
    assert_eq!(balance_from_transfers(&store, -2).await, 500, "refunds");
    let report = server::ledger::verify::verify(&store).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(
        report
            .to_string()
            .contains("purchase: 4 transfers, 2100 NDN, 900 Stars"),
        "{report}"
    );

    // The upgraded books go on as before: a refund of a charge converted from the old ledger.
    let ledger = ledger(&store);
    ledger
        .refund(UserId(555_000_111), &"charge-bob-1".into(), Stars(50))
        .await
        .unwrap();
    assert_eq!(store.balance(UserId(555_000_111)).await.unwrap(), 0);
    assert_books_balance(&store).await;
}
