//! `server export`: every transfer of a period, as CSV a spreadsheet opens (UTF-8, Cyrillic,
//! quoting) and as JSON, with totals per kind that match `ledger verify`, on both databases.

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use server::clock::{iso_time, now_ms};
use server::wallet::ids::UserId;
use support::*;

on_both_databases!(the_export_lists_every_transfer_of_the_period_with_verified_totals);

const BORIS: i64 = 5_550_001;

async fn post(app: &TestApp, key: &str, path: &str, idempotency: &str, body: Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(key)
        .header("Idempotency-Key", idempotency)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// Purchases by two buyers (one named in Cyrillic, with a username a CSV must quote), a refund,
/// a grant and a debit whose texts need quoting and would be a formula in a spreadsheet.
async fn seeded(database: Database) -> TestApp {
    let app = TestApp::spawn(database).await;
    let mut charges = Vec::new();
    for (update, buyer) in [(1, BUYER), (2, BORIS)] {
        let order_id = app.create_order(buyer, "ndn-500").await;
        let charge = app.telegram.record_charge(UserId(buyer), 225, &order_id);
        app.deliver(&successful_payment(update, buyer, &order_id, 225, &charge))
            .await;
        charges.push(charge);
    }
    sqlx::query(
        "UPDATE users SET first_name = 'Борис', username = 'boris, \"the\" buyer' WHERE id = $1",
    )
    .bind(BORIS)
    .execute(app.server.state.store.pool())
    .await
    .unwrap();
    let (code, output) = app.cli(&["refund", &charges[0]]).await;
    assert_eq!(code, 0, "{output}");
    let (code, created) = app
        .cli(&[
            "keys",
            "create",
            "--name",
            "shop",
            "--scopes",
            "spend,grant",
        ])
        .await;
    assert_eq!(code, 0, "{created}");
    let key = created
        .lines()
        .find(|line| line.starts_with("ndn_"))
        .unwrap()
        .to_owned();
    post(
        &app,
        &key,
        "/v1/credits",
        "grant-1",
        json!({"user_id": BORIS, "amount": 50, "reason": "Компенсация, \"извините\""}),
    )
    .await;
    post(
        &app,
        &key,
        "/v1/debits",
        "debit-1",
        json!({"user_id": BORIS, "amount": 120, "reason": "=1+1", "reference": "order-7"}),
    )
    .await;
    app
}

/// `ledger verify`'s per-kind lines: kind → (count, NDN, Stars).
async fn verified_totals(app: &TestApp) -> BTreeMap<String, (i64, i64, i64)> {
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");
    report
        .lines()
        .filter_map(|line| {
            let (kind, rest) = line.trim().split_once(": ")?;
            let numbers: Vec<i64> = rest
                .split(", ")
                .map(|part| part.split(' ').next()?.parse().ok())
                .collect::<Option<_>>()?;
            (numbers.len() == 3 && rest.contains("transfers"))
                .then(|| (kind.to_owned(), (numbers[0], numbers[1], numbers[2])))
        })
        .collect()
}

async fn export(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export");
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", path.to_str().unwrap()]);
    let (code, output) = app.cli(&all).await;
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    (code, written, output)
}

/// Splits one CSV record as RFC 4180 says (quoted fields may hold commas and doubled quotes).
fn csv_record(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

async fn the_export_lists_every_transfer_of_the_period_with_verified_totals(database: Database) {
    let app = seeded(database).await;
    let today = &iso_time(now_ms())[..10];
    let verified = verified_totals(&app).await;
    assert_eq!(verified.len(), 4, "{verified:?}");

    let (code, csv, output) = export(&app, &["--from", today, "--to", today]).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("5 transfers exported"), "{output}");
    let csv = csv
        .strip_prefix('\u{feff}')
        .expect("a UTF-8 byte order mark");
    let records: Vec<Vec<String>> = csv
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(csv_record)
        .collect();
    assert_eq!(
        records[0][..6],
        ["time", "kind", "user_id", "username", "first_name", "ndn"]
    );
    let transfers: Vec<&Vec<String>> = records[1..].iter().filter(|r| r[0] != "total").collect();
    let totals: Vec<&Vec<String>> = records[1..].iter().filter(|r| r[0] == "total").collect();
    assert_eq!(transfers.len(), 5);
    assert!(
        records.iter().all(|record| record.len() == 11),
        "{records:?}"
    );
    let kinds: Vec<&str> = transfers.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(kinds, ["purchase", "purchase", "refund", "grant", "spend"]);
    // Boris, named in Cyrillic, with his quoted username; NDN signed from the buyer's side.
    let grant = transfers[3];
    assert_eq!(
        (grant[2].as_str(), grant[3].as_str(), grant[4].as_str()),
        (&*BORIS.to_string(), "boris, \"the\" buyer", "Борис")
    );
    assert_eq!(
        (grant[5].as_str(), grant[10].as_str()),
        ("50", "Компенсация, \"извините\"")
    );
    let spend = transfers[4];
    assert_eq!(
        (spend[5].as_str(), spend[9].as_str(), spend[10].as_str()),
        ("-120", "order-7", "'=1+1")
    );
    assert!(spend[8].starts_with("dbt_"), "{spend:?}");
    let refund = transfers[2];
    assert_eq!((refund[5].as_str(), refund[6].as_str()), ("-500", "225"));
    assert!(
        !refund[7].is_empty() && refund[8].is_empty(),
        "the charge id: {refund:?}"
    );
    // A totals line per kind, equal to what `ledger verify` counts.
    assert_eq!(totals.len(), verified.len());
    for total in totals {
        let (count, ndn, stars) = verified[&total[1]];
        assert_eq!(total[10], format!("{count} transfers"));
        assert_eq!(total[5].parse::<i64>().unwrap().abs(), ndn, "{total:?}");
        assert_eq!(total[6].parse::<i64>().unwrap(), stars);
    }

    let (code, json, output) =
        export(&app, &["--from", today, "--to", today, "--format", "json"]).await;
    assert_eq!(code, 0, "{output}");
    let json: Value = serde_json::from_str(&json).expect("one JSON document");
    assert_eq!(json["transfers"].as_array().unwrap().len(), 5);
    assert_eq!(json["transfers"][3]["first_name"], "Борис");
    assert_eq!(json["transfers"][4]["reason"], "=1+1");
    for (kind, (count, ndn, stars)) in &verified {
        let total = &json["totals"][kind];
        assert_eq!(total["count"], *count);
        assert_eq!(total["ndn"].as_i64().unwrap().abs(), *ndn);
        assert_eq!(total["stars"], *stars);
    }

    // Another period holds none of them; a wrong date is refused.
    let (code, csv, _) = export(&app, &["--from", "2020-01-01", "--to", "2020-12-31"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        csv.split("\r\n").filter(|l| !l.is_empty()).count(),
        1,
        "the header only"
    );
    let (code, _, output) = export(&app, &["--from", "2026-02-30", "--to", today]).await;
    assert_ne!(code, 0);
    assert!(output.contains("not a date"), "{output}");
}
