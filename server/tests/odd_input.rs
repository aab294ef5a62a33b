//! What outside testing found, as a hostile client would send it, on both databases: formulas
//! behind a `;` in the CSV export, NUL in ids, cursors and console arguments, dates past year
//! 9999, repeated JSON keys, money moved without an idempotency key, holds settled by another
//! key, two figures for "available" after a clawback, and a revoked key still working. Each
//! ends with the books verified.

mod support;

use serde_json::{Value, json};
use server::clock::{iso_time, now_ms};
use server::keys::{self, Scope};
use server::wallet::ids::UserId;
use support::*;

on_both_databases!(
    the_csv_export_hides_no_formula_behind_a_separator,
    nul_in_an_id_a_cursor_or_a_console_argument_is_refused_at_the_edge,
    dates_outside_years_1970_to_9999_are_refused_naming_the_field,
    a_body_with_a_repeated_key_is_refused_naming_it,
    every_money_moving_request_needs_an_idempotency_key,
    only_the_key_that_made_a_hold_settles_it,
    after_a_clawback_the_account_and_a_capture_report_one_available,
    a_key_revoked_in_the_console_stops_at_once_on_that_instance,
);

const OPERATOR: i64 = 424_242;

async fn app_with_console(database: Database) -> TestApp {
    TestApp::spawn_configured(database, &[("ADMIN_USER_IDS", "424242")]).await
}

async fn new_key(app: &TestApp, scopes: &[Scope]) -> String {
    let name = format!("svc-{}", uuid::Uuid::new_v4().simple());
    keys::create(&app.server.state.store, &name, scopes)
        .await
        .unwrap()
}

/// A service-API request with a body sent as typed; status and JSON answer.
async fn send(
    app: &TestApp,
    key: &str,
    path: &str,
    idempotency: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut request = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(key)
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(idempotency) = idempotency {
        request = request.header("Idempotency-Key", idempotency);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A buyer with `ndn` bought through the webhook; the charge id.
async fn bought(app: &TestApp, update: i64, buyer: i64) -> String {
    let order_id = app.create_order(buyer, "ndn-500").await;
    let charge = app.telegram.record_charge(UserId(buyer), 225, &order_id);
    let (status, _) = app
        .deliver(&successful_payment(update, buyer, &order_id, 225, &charge))
        .await;
    assert_eq!(status, 200);
    charge
}

async fn assert_verified(app: &TestApp) {
    let (code, report) = app.cli(&["ledger", "verify"]).await;
    assert_eq!(code, 0, "{report}");
}

async fn the_csv_export_hides_no_formula_behind_a_separator(database: Database) {
    let app = TestApp::spawn(database).await;
    const SECOND: i64 = 5_550_002;
    bought(&app, 1, BUYER).await;
    bought(&app, 2, SECOND).await;
    let pool = app.server.state.store.pool();
    for (id, name, username) in [(BUYER, "x;=2+5;", "@evil"), (SECOND, ";=1+1", "a,-3+3")] {
        sqlx::query("UPDATE users SET first_name = $1, username = $2 WHERE id = $3")
            .bind(name)
            .bind(username)
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    }
    let key = new_key(&app, &[Scope::Spend]).await;
    let debit = json!({"user_id": BUYER, "amount": 5, "reason": "ok;=4+4;",
                       "reference": "r;@SUM(A1)"})
    .to_string();
    let (status, answer) = send(&app, &key, "/v1/debits", Some("d1"), &debit).await;
    assert_eq!(status, 201, "{answer}");

    let today = &iso_time(now_ms())[..10];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("books.csv");
    let (code, output) = app
        .cli(&[
            "export",
            "--from",
            today,
            "--to",
            today,
            "--output",
            path.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, 0, "{output}");
    let csv = std::fs::read_to_string(&path).unwrap();
    // Excel in a `;` locale splits each line on `;` (quotes or not): no cell may start a
    // formula. The first cell of every line is a time, a column name or `total`.
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert_eq!(
        lines.len(),
        7,
        "a header, 3 transfers, 2 totals, the last break: {csv}"
    );
    for line in lines {
        for cell in line.split(';') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "a live formula in `{cell}` of line `{line}`"
            );
        }
    }
    // The names are still there for a reader, each made inert where a cell could begin.
    for inert in [
        "x;'=2+5;",
        ";'=1+1",
        "'@evil",
        "a,'-3+3",
        "ok;'=4+4;",
        "r;'@SUM(A1)",
    ] {
        assert!(csv.contains(inert), "{inert} not in {csv}");
    }
    assert_verified(&app).await;
}

async fn nul_in_an_id_a_cursor_or_a_console_argument_is_refused_at_the_edge(database: Database) {
    let app = app_with_console(database).await;
    let charge = bought(&app, 1, BUYER).await;
    let key = new_key(&app, &[Scope::Read, Scope::Spend]).await;
    let logs_before = app.count("SELECT COUNT(*) FROM transfers").await;
    for id in ["a%00b", "hold%00", "a%01b", "a%20b"] {
        for action in ["capture", "void"] {
            let path = format!("/v1/holds/{id}/{action}");
            let (status, answer) = send(&app, &key, &path, Some(&path), "{}").await;
            assert_eq!(
                (status, &answer["error"]),
                (404, &json!("not_found")),
                "{path}"
            );
        }
    }
    let cursor = hex::encode("1.0.0.evil\0");
    let (status, answer) = get(
        &app,
        &key,
        &format!("/v1/accounts/{BUYER}/transactions?cursor={cursor}"),
    )
    .await;
    assert_eq!(
        (status, &answer["field"]),
        (400, &json!("cursor")),
        "{answer}"
    );
    for (function, form) in [
        ("console_find", vec![("query", "27905\0")]),
        (
            "console_credit",
            vec![("action_id", "n1"), ("charge_id", "c\0")],
        ),
        (
            "console_refund",
            vec![("action_id", "n2"), ("charge_id", "c\0")],
        ),
        (
            "console_grant",
            vec![
                ("action_id", "n3"),
                ("user_id", "279058397"),
                ("amount", "5"),
                ("reason", "a\0b"),
            ],
        ),
    ] {
        let (status, answer) = app.call_as(OPERATOR, function, &form).await;
        assert_eq!(status, 400, "{function}: {answer}");
        assert!(answer.to_string().contains("control character"), "{answer}");
    }
    // Nothing reached the books; the same arguments without the NUL still work.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM transfers").await,
        logs_before
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM operator_actions").await,
        0,
        "no action recorded"
    );
    let (status, card) = app
        .call_as(OPERATOR, "console_find", &[("query", &charge)])
        .await;
    assert_eq!((status, &card["user_id"]), (200, &json!(BUYER)), "{card}");
    assert_verified(&app).await;
}

async fn dates_outside_years_1970_to_9999_are_refused_naming_the_field(database: Database) {
    let app = app_with_console(database).await;
    bought(&app, 1, BUYER).await;
    for (from, to, field) in [
        ("2026-12-01", "99999999999999-12-31", "--to"),
        ("1969-12-31", "2026-12-01", "--from"),
        ("2026-12-01", "10000-01-01", "--to"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let (code, output) = app
            .cli(&[
                "export",
                "--from",
                from,
                "--to",
                to,
                "--output",
                path.to_str().unwrap(),
            ])
            .await;
        assert_eq!(code, 2, "{output}");
        assert!(
            output.contains(field) && output.contains("1970-9999"),
            "{output}"
        );
        assert!(!path.exists(), "nothing written for {to}");
        let (status, answer) = app
            .call_as(
                OPERATOR,
                "console_export",
                &[("from", from), ("to", to), ("format", "csv")],
            )
            .await;
        let named = field.trim_start_matches('-');
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer.to_string().contains(&format!("{named}: ")),
            "{answer}"
        );
    }
    let (status, _) = app
        .call_as(
            OPERATOR,
            "console_export",
            &[
                ("from", "1970-01-01"),
                ("to", "9999-12-31"),
                ("format", "csv"),
            ],
        )
        .await;
    assert_eq!(status, 200, "the whole range is a period");
    assert_verified(&app).await;
}

async fn a_body_with_a_repeated_key_is_refused_naming_it(database: Database) {
    let app = TestApp::spawn(database).await;
    bought(&app, 1, BUYER).await;
    let key = new_key(&app, &[Scope::Read, Scope::Spend, Scope::Grant]).await;
    let bodies = [
        (
            "/v1/debits",
            format!(r#"{{"user_id":{BUYER},"amount":1,"amount":400,"reason":"r"}}"#),
            "amount",
        ),
        (
            "/v1/credits",
            format!(r#"{{"user_id":{BUYER},"amount":1,"reason":"a","reason":"b"}}"#),
            "reason",
        ),
        (
            "/v1/debits",
            format!(r#"{{"user_id":{BUYER},"amount":1,"reason":"r","metadata":{{"x":1,"x":2}}}}"#),
            "x",
        ),
        (
            "/v1/holds",
            format!(r#"{{"user_id":{BUYER},"user_id":1,"amount":1,"expires_in":60}}"#),
            "user_id",
        ),
    ];
    for (index, (path, body, field)) in bodies.iter().enumerate() {
        let idempotency = format!("dup-{index}");
        let (status, answer) = send(&app, &key, path, Some(&idempotency), body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(
            (&answer["error"], &answer["field"]),
            (&json!("invalid_request"), &json!(field)),
            "{answer}"
        );
    }
    let (_, account) = get(&app, &key, &format!("/v1/accounts/{BUYER}")).await;
    assert_eq!(
        (&account["balance"], &account["held"]),
        (&json!(500), &json!(0))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 0);
    assert_verified(&app).await;
}

async fn every_money_moving_request_needs_an_idempotency_key(database: Database) {
    let app = TestApp::spawn(database).await;
    bought(&app, 1, BUYER).await;
    let key = new_key(&app, &[Scope::Read, Scope::Spend, Scope::Grant]).await;
    let hold = json!({"user_id": BUYER, "amount": 10, "expires_in": 600}).to_string();
    let (status, made) = send(&app, &key, "/v1/holds", Some("h1"), &hold).await;
    assert_eq!(status, 201, "{made}");
    let hold_id = made["id"].as_str().unwrap().to_owned();
    let requests = [
        ("/v1/holds".to_owned(), hold.clone()),
        ("/v1/holds".to_owned(), hold.clone()),
        (format!("/v1/holds/{hold_id}/capture"), "{}".to_owned()),
        (format!("/v1/holds/{hold_id}/void"), "{}".to_owned()),
        (
            "/v1/debits".to_owned(),
            json!({"user_id": BUYER, "amount": 1, "reason": "r"}).to_string(),
        ),
        (
            "/v1/credits".to_owned(),
            json!({"user_id": BUYER, "amount": 1, "reason": "r"}).to_string(),
        ),
    ];
    for (path, body) in &requests {
        let (status, answer) = send(&app, &key, path, None, body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(
            (&answer["error"], &answer["field"]),
            (
                &json!("idempotency_key_required"),
                &json!("Idempotency-Key")
            ),
            "{path}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM holds").await, 1);
    let (_, account) = get(&app, &key, &format!("/v1/accounts/{BUYER}")).await;
    assert_eq!(
        (&account["balance"], &account["held"]),
        (&json!(500), &json!(10))
    );
    // With keys: a capture sent twice captures once, a reused key for another hold is refused.
    let capture = format!("/v1/holds/{hold_id}/capture");
    for _ in 0..2 {
        let (status, answer) = send(&app, &key, &capture, Some("c1"), r#"{"amount":4}"#).await;
        assert_eq!((status, &answer["captured"]), (200, &json!(4)), "{answer}");
    }
    let (status, _) = send(&app, &key, "/v1/holds", Some("c1"), &hold).await;
    assert_eq!(status, 422, "one key, another request");
    let (_, account) = get(&app, &key, &format!("/v1/accounts/{BUYER}")).await;
    assert_eq!(
        (&account["balance"], &account["held"]),
        (&json!(496), &json!(0))
    );
    let document: Value = app
        .http
        .get(format!("{}/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/holds",
        "/v1/holds/{hold_id}/capture",
        "/v1/holds/{hold_id}/void",
    ] {
        let parameters = &document["paths"][path]["post"]["parameters"];
        let header = parameters
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Idempotency-Key")
            .unwrap_or_else(|| panic!("{path}: {parameters}"));
        assert_eq!(header["required"], true, "{path}");
    }
    assert_verified(&app).await;
}

async fn only_the_key_that_made_a_hold_settles_it(database: Database) {
    let app = TestApp::spawn(database).await;
    bought(&app, 1, BUYER).await;
    let (game, shop) = (
        new_key(&app, &[Scope::Read, Scope::Spend]).await,
        new_key(&app, &[Scope::Read, Scope::Spend]).await,
    );
    let hold = json!({"user_id": BUYER, "amount": 100, "expires_in": 600}).to_string();
    let (_, made) = send(&app, &game, "/v1/holds", Some("h"), &hold).await;
    let hold_id = made["id"].as_str().unwrap().to_owned();
    for action in ["capture", "void"] {
        let path = format!("/v1/holds/{hold_id}/{action}");
        let (status, answer) = send(&app, &shop, &path, Some(action), "{}").await;
        assert_eq!(
            (status, &answer["error"]),
            (403, &json!("hold_of_another_key")),
            "{action}: {answer}"
        );
    }
    let (_, account) = get(&app, &shop, &format!("/v1/accounts/{BUYER}")).await;
    assert_eq!(
        (&account["balance"], &account["held"]),
        (&json!(500), &json!(100))
    );
    let path = format!("/v1/holds/{hold_id}/capture");
    let (status, captured) = send(&app, &game, &path, Some("mine"), "{}").await;
    assert_eq!((status, &captured["status"]), (200, &json!("captured")));
    assert_eq!(captured["account"]["balance"], 400);
    assert_verified(&app).await;
}

async fn after_a_clawback_the_account_and_a_capture_report_one_available(database: Database) {
    let app = TestApp::spawn(database).await;
    let charge = bought(&app, 1, BUYER).await;
    let key = new_key(&app, &[Scope::Read, Scope::Spend]).await;
    let hold = json!({"user_id": BUYER, "amount": 500, "expires_in": 600}).to_string();
    let (_, made) = send(&app, &key, "/v1/holds", Some("h"), &hold).await;
    let hold_id = made["id"].as_str().unwrap().to_owned();
    // Telegram refunds the purchase: its 500 NDN are taken back, though a hold reserved them.
    let order_id: String = sqlx::query_scalar("SELECT order_id FROM payments WHERE charge_id = $1")
        .bind(&charge)
        .fetch_one(app.server.state.store.pool())
        .await
        .unwrap();
    let (status, _) = app
        .deliver(&refunded_payment(2, BUYER, &order_id, 225, &charge))
        .await;
    assert_eq!(status, 200);
    let (_, account) = get(&app, &key, &format!("/v1/accounts/{BUYER}")).await;
    assert_eq!(
        (&account["balance"], &account["held"], &account["available"]),
        (&json!(0), &json!(500), &json!(-500)),
        "{account}"
    );
    let path = format!("/v1/holds/{hold_id}/capture");
    for (index, body) in [r#"{}"#, r#"{"amount":1}"#].iter().enumerate() {
        let (status, refused) = send(&app, &key, &path, Some(&format!("c{index}")), body).await;
        assert_eq!(
            (status, &refused["error"], &refused["available"]),
            (409, &json!("insufficient_funds"), &account["available"]),
            "{refused}"
        );
    }
    // The hold stays until voided (or expired): then it releases, and available is the balance.
    let void = format!("/v1/holds/{hold_id}/void");
    let (status, voided) = send(&app, &key, &void, Some("v"), "{}").await;
    assert_eq!(
        (status, &voided["status"]),
        (200, &json!("voided")),
        "{voided}"
    );
    let (_, account) = get(&app, &key, &format!("/v1/accounts/{BUYER}")).await;
    assert_eq!(
        (&account["balance"], &account["held"], &account["available"]),
        (&json!(0), &json!(0), &json!(0))
    );
    assert_verified(&app).await;
}

async fn a_key_revoked_in_the_console_stops_at_once_on_that_instance(database: Database) {
    let app = app_with_console(database).await;
    bought(&app, 1, BUYER).await;
    let key = new_key(&app, &[Scope::Read]).await;
    let account = format!("/v1/accounts/{BUYER}");
    assert_eq!(get(&app, &key, &account).await.0, 200, "remembered now");
    let key_id: i64 = sqlx::query_scalar("SELECT id FROM api_keys WHERE revoked_at IS NULL")
        .fetch_one(app.server.state.store.pool())
        .await
        .unwrap();
    let (status, done) = app
        .call_as(
            OPERATOR,
            "console_revoke",
            &[("action_id", "r1"), ("key_id", &key_id.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let (status, answer) = get(&app, &key, &account).await;
    assert_eq!((status, &answer["error"]), (401, &json!("unauthorized")));
    assert_verified(&app).await;
}
