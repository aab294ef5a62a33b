//! `server backup` and `server restore` on both databases: a backup taken while payments keep
//! arriving is one consistent moment of the books (`ledger verify` clean on it), the live
//! database loses nothing meanwhile, and the backup restores into a new place.

mod support;

use futures::StreamExt;
use server::store::Store;
use server::wallet::ids::UserId;
use support::*;

on_both_databases!(a_backup_during_a_thousand_payments_is_a_consistent_snapshot);

const PAYMENTS: usize = 1_000;
const BUYERS: i64 = 20;

async fn a_backup_during_a_thousand_payments_is_a_consistent_snapshot(database: Database) {
    let postgres = database.admin.is_some();
    let app = TestApp::spawn_configured(
        database,
        &[
            ("INVOICE_RATE_PER_MINUTE", "1000"),
            ("MAX_PENDING_ORDERS", "1000"),
        ],
    )
    .await;
    let mut orders = Vec::with_capacity(PAYMENTS);
    for n in 0..PAYMENTS {
        let buyer = BUYER + (n as i64 % BUYERS);
        orders.push((buyer, app.create_order(buyer, "ndn-100").await));
    }
    let folder = tempfile::tempdir().unwrap();
    let copy = folder
        .path()
        .join(if postgres { "ndn.dump" } else { "ndn.db" });

    // The payments arrive, 16 at a time, while the backup runs.
    let payments = {
        let (base, http, telegram) = (app.base.clone(), app.http.clone(), app.telegram.clone());
        tokio::spawn(async move {
            futures::stream::iter(orders.into_iter().enumerate())
                .map(|(n, (buyer, order))| {
                    let (base, http) = (base.clone(), http.clone());
                    let charge = telegram.record_charge(UserId(buyer), 50, &order);
                    async move {
                        let update = successful_payment(n as i64 + 1, buyer, &order, 50, &charge);
                        deliver_to(&http, &base, &update).await
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<u16>>()
                .await
        })
    };
    while app.count("SELECT COUNT(*) FROM payments").await < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (code, output) = app.cli(&["backup", copy.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("backup written to"), "{output}");
    let during = app.count("SELECT COUNT(*) FROM payments").await;
    let statuses = payments.await.unwrap();
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");

    // The live database has every payment, credited once, and its books balance.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM payments WHERE status = 'credited'")
            .await,
        PAYMENTS as i64
    );
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");

    // The copy, restored into a new place, is one moment of those books.
    let (restored, _keep) = if postgres {
        let fresh = Database::postgres().await.unwrap();
        (fresh.url.clone(), Some(fresh))
    } else {
        let path = folder.path().join("restored/ndn.db");
        (format!("sqlite://{}", path.display()), None)
    };
    let (code, output) = app
        .cli_env(
            &["restore", copy.to_str().unwrap()],
            &[("DATABASE_URL", &restored)],
        )
        .await;
    assert_eq!(code, 0, "{output}");
    let (code, report) = app
        .cli_env(&["ledger", "verify"], &[("DATABASE_URL", &restored)])
        .await;
    assert_eq!(code, 0, "the copy's books: {report}");
    let store = Store::connect(&restored, 1).await.unwrap();
    let copied = scalar(&store, "SELECT COUNT(*) FROM payments").await;
    println!("{copied} of {PAYMENTS} payments were in the backup ({during} when it ended)");
    assert!(
        (100..=during).contains(&copied),
        "the copy has {copied} payments: at least the 100 before it began, at most the \
         {during} after it ended"
    );
    // Every payment in the copy is credited there, as it is in the live database.
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM payments WHERE status = 'credited'"
        )
        .await,
        copied
    );
}

/// Posts an update as Telegram does; the status.
async fn deliver_to(http: &reqwest::Client, base: &str, update: &serde_json::Value) -> u16 {
    http.post(format!("{base}/webhook/telegram"))
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .json(update)
        .send()
        .await
        .map_or(0, |answer| answer.status().as_u16())
}

/// A backup never overwrites a file, and a restore never overwrites a database unless told to,
/// keeping the one it replaced.
#[tokio::test]
async fn backup_and_restore_refuse_to_overwrite() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let folder = tempfile::tempdir().unwrap();
    let copy = folder.path().join("ndn.db");
    std::fs::write(&copy, b"precious").unwrap();
    let (code, output) = app.cli(&["backup", copy.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("never overwrites"), "{output}");
    assert_eq!(std::fs::read(&copy).unwrap(), b"precious");

    std::fs::remove_file(&copy).unwrap();
    let (code, output) = app.cli(&["backup", copy.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{output}");
    // The live database exists: a restore over it needs --replace.
    let (code, output) = app.cli(&["restore", copy.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("--replace"), "{output}");

    // Into another file that exists: replaced, the old one kept beside it.
    let target = folder.path().join("live/ndn.db");
    let url = format!("sqlite://{}", target.display());
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::write(&target, b"old database").unwrap();
    let (code, output) = app
        .cli_env(
            &["restore", "--replace", copy.to_str().unwrap()],
            &[("DATABASE_URL", &url)],
        )
        .await;
    assert_eq!(code, 0, "{output}");
    let kept: Vec<_> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("ndn.db.replaced-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read(target.parent().unwrap().join(&kept[0])).unwrap(),
        b"old database"
    );
    let (code, report) = app
        .cli_env(&["ledger", "verify"], &[("DATABASE_URL", &url)])
        .await;
    assert_eq!(code, 0, "{report}");

    // Not a database at all.
    let junk = folder.path().join("junk.db");
    std::fs::write(&junk, b"not sqlite").unwrap();
    let (code, output) = app
        .cli_env(
            &["restore", junk.to_str().unwrap()],
            &[(
                "DATABASE_URL",
                &format!("sqlite://{}/other.db", folder.path().display()),
            )],
        )
        .await;
    assert_eq!(code, 1, "{output}");
    assert!(!folder.path().join("other.db").exists());
}
