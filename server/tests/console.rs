//! The operator console's server functions, on both databases: only `ADMIN_USER_IDS` get in
//! (everyone else a 403, whatever the function); Credit on a held payment gives its NDN once
//! however often it is tapped; a console refund does what `server refund` does; every action
//! lands in the audit log with its effect; the download is the CLI's export, byte for byte.

mod support;

use serde_json::{Value, json};
use server::clock::now_ms;
use server::wallet::ids::UserId;
use support::*;

on_both_databases!(
    only_operators_reach_the_console,
    credit_on_a_held_payment_twice_gives_one_credit,
    a_console_refund_equals_server_refund,
    the_audit_log_records_every_action_once,
    the_overview_counts_the_period_and_the_download_is_the_export,
);

const OPERATOR: i64 = 424_242;
const OPERATORS: &str = "424242, 777";

async fn console(database: Database) -> TestApp {
    TestApp::spawn_configured(database, &[("ADMIN_USER_IDS", OPERATORS)]).await
}

/// Every console function, with arguments it would accept from an operator.
const FUNCTIONS: [(&str, &[(&str, &str)]); 11] = [
    ("console_overview", &[]),
    ("console_held", &[]),
    (
        "console_credit",
        &[("action_id", "t1"), ("charge_id", "c1")],
    ),
    (
        "console_refund",
        &[("action_id", "t2"), ("charge_id", "c1")],
    ),
    ("console_find", &[("query", "279058397")]),
    (
        "console_grant",
        &[
            ("action_id", "t3"),
            ("user_id", "279058397"),
            ("amount", "10"),
            ("reason", "sorry"),
        ],
    ),
    ("console_health", &[]),
    ("console_reconcile", &[("action_id", "t4")]),
    ("console_retry", &[("action_id", "t5"), ("message_id", "1")]),
    ("console_revoke", &[("action_id", "t6"), ("key_id", "1")]),
    (
        "console_export",
        &[
            ("from", "2026-12-01"),
            ("to", "2026-12-31"),
            ("format", "csv"),
        ],
    ),
];

/// A credited purchase of `package` by `buyer`; its charge id.
async fn purchase(app: &TestApp, update: i64, buyer: i64, package: &str, stars: i64) -> String {
    let order_id = app.create_order(buyer, package).await;
    let charge = app.telegram.record_charge(UserId(buyer), stars, &order_id);
    let (status, _) = app
        .deliver(&successful_payment(
            update, buyer, &order_id, stars, &charge,
        ))
        .await;
    assert_eq!(status, 200);
    charge
}

async fn act(app: &TestApp, function: &str, form: &[(&str, &str)]) -> Value {
    let (status, answer) = app.call_as(OPERATOR, function, form).await;
    assert_eq!(status, 200, "{function}: {answer}");
    answer
}

async fn only_operators_reach_the_console(database: Database) {
    let app = console(database).await;
    let charge = purchase(&app, 1, BUYER, "ndn-500", 225).await;
    let before = scalar(&app.server.state.store, "SELECT COUNT(*) FROM transfers").await;

    for (function, form) in FUNCTIONS {
        let (status, answer) = app.call_as(BUYER, function, form).await;
        assert_eq!(status, 403, "{function} answered a buyer: {answer}");
        assert_eq!(
            answer,
            json!("Forbidden"),
            "{function} tells a buyer nothing more"
        );
        let (status, _) = app.call(function, None, form).await;
        assert_eq!(status, 401, "{function} without launch data");
        let (status, _) = app
            .call(function, Some("tma user=%7B%7D&hash=00"), form)
            .await;
        assert_eq!(status, 401, "{function} with forged launch data");
    }
    // The buyer's taps changed nothing: no transfer, no refund at Telegram, no audit row.
    assert_eq!(
        scalar(&app.server.state.store, "SELECT COUNT(*) FROM transfers").await,
        before
    );
    assert!(!app.telegram.is_refunded(&charge));
    assert_eq!(app.count("SELECT COUNT(*) FROM operator_actions").await, 0);

    // A buyer's wallet bears no trace of the console; an operator's says so.
    let (_, wallet) = app.call_as(BUYER, "wallet", &[]).await;
    assert!(wallet.get("operator").is_none(), "{wallet}");
    let (_, wallet) = app.call_as(OPERATOR, "wallet", &[]).await;
    assert_eq!(wallet["operator"], json!(true));
    // The second id of the list is an operator too; read functions answer them.
    let (status, _) = app.call_as(777, "console_overview", &[]).await;
    assert_eq!(status, 200);
    act(&app, "console_held", &[]).await;

    // A download link works for its period only while it is genuine.
    let link = act(
        &app,
        "console_export",
        &[
            ("from", "2026-12-01"),
            ("to", "2026-12-31"),
            ("format", "csv"),
        ],
    )
    .await;
    let link = link.as_str().unwrap();
    // The same link claimed for the other operator.
    let forged = link.replace("token=424242.", "token=777.");
    assert_ne!(forged, link);
    for (url, expected) in [
        (format!("{}{link}", app.base), 200),
        (format!("{}{forged}", app.base), 403),
        (format!("{}/api/console/export?token=x", app.base), 403),
    ] {
        let status = app.http.get(&url).send().await.unwrap().status();
        assert_eq!(status, expected, "{url}");
    }

    // With ADMIN_USER_IDS empty there is no console at all.
    let app = app.restart_configured(&[("ADMIN_USER_IDS", "")]).await;
    let (status, _) = app.call_as(OPERATOR, "console_overview", &[]).await;
    assert_eq!(status, 403);
}

async fn credit_on_a_held_payment_twice_gives_one_credit(database: Database) {
    let app = console(database).await;
    let charge = app.held_payment(1, BUYER).await;
    let stream = EventStream::open(&app.http, &app.base, BUYER).await;

    let held = act(&app, "console_held", &[]).await;
    assert_eq!(held.as_array().unwrap().len(), 1, "{held}");
    assert_eq!(held[0]["charge_id"], json!(charge));
    assert_eq!(held[0]["stars"], json!(200));
    assert_eq!(held[0]["ndn"], json!(500), "the order's NDN");
    assert_eq!(
        held[0]["reason"],
        json!("amount differs from the order's price")
    );

    let first = act(
        &app,
        "console_credit",
        &[("action_id", "tap-1"), ("charge_id", &charge)],
    )
    .await;
    assert_eq!(first["repeated"], json!(false), "{first}");
    assert!(
        first["result"]
            .as_str()
            .unwrap()
            .contains("credited 500 NDN"),
        "{first}"
    );
    // The same tap again, and a second tap (another id) on the same payment.
    let again = act(
        &app,
        "console_credit",
        &[("action_id", "tap-1"), ("charge_id", &charge)],
    )
    .await;
    assert_eq!(
        again,
        json!({ "result": first["result"], "repeated": true })
    );
    let second = act(
        &app,
        "console_credit",
        &[("action_id", "tap-2"), ("charge_id", &charge)],
    )
    .await;
    assert_eq!(second["repeated"], json!(false));
    assert!(
        second["result"]
            .as_str()
            .unwrap()
            .contains("the payment is credited: nothing to credit"),
        "{second}"
    );

    assert_eq!(app.balance(BUYER).await, 500);
    let store = &app.server.state.store;
    assert_eq!(
        scalar(
            store,
            &format!("SELECT COUNT(*) FROM transfers WHERE reference = '{charge}'")
        )
        .await,
        1,
        "one credit of the charge"
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM payments WHERE charge_id = '{charge}' AND status = 'credited' AND ndn = 500"
        ))
        .await,
        1
    );
    assert_eq!(act(&app, "console_held", &[]).await, json!([]));
    assert_books_balance(store).await;
    let report = server::ledger::verify::verify(store).await.unwrap();
    assert!(report.is_clean(), "{report}");
    // The buyer's open app hears of it, and the bot tells them.
    assert!(
        stream
            .wait_for(|event| event["balance"] == json!(500))
            .await
            .is_some(),
        "{:?}",
        stream.events()
    );
    let messages = app.messages_once_drained(2).await;
    assert!(
        messages
            .iter()
            .any(|m| m.chat_id == BUYER && m.text.contains("500")),
        "{messages:?}"
    );
    // Two taps, two audit rows; the repeated one wrote nothing.
    assert_eq!(app.count("SELECT COUNT(*) FROM operator_actions").await, 2);
    // Unknown charges are answered, and recorded, without a change.
    let unknown = act(
        &app,
        "console_credit",
        &[("action_id", "tap-3"), ("charge_id", "no-such-charge")],
    )
    .await;
    assert!(
        unknown["result"].as_str().unwrap().contains("no payment"),
        "{unknown}"
    );
    assert_eq!(app.balance(BUYER).await, 500);
}

async fn a_console_refund_equals_server_refund(database: Database) {
    let app = console(database).await;
    let by_console = purchase(&app, 1, BUYER, "ndn-500", 225).await;
    let by_cli = purchase(&app, 2, OTHER_BUYER, "ndn-500", 225).await;
    let stream = EventStream::open(&app.http, &app.base, BUYER).await;

    let answer = act(
        &app,
        "console_refund",
        &[("action_id", "refund-1"), ("charge_id", &by_console)],
    )
    .await;
    let (code, output) = app.cli(&["refund", &by_cli]).await;
    assert_eq!(code, 0, "{output}");
    // The same words, the same effects.
    assert_eq!(
        answer["result"].as_str().unwrap(),
        output.trim().replace(&by_cli, &by_console),
        "{answer}"
    );
    assert!(app.telegram.is_refunded(&by_console) && app.telegram.is_refunded(&by_cli));
    assert_eq!(app.balance(BUYER).await, 0);
    assert_eq!(app.balance(OTHER_BUYER).await, 0);
    let store = &app.server.state.store;
    let shape = |charge: &str| {
        format!(
            "SELECT COUNT(*) FROM transfers t JOIN payments p ON p.charge_id = t.reference
             WHERE t.reference = '{charge}' AND t.kind = 'refund' AND t.amount = 500
               AND t.stars = 225 AND p.status = 'refunded' AND p.refunded_at IS NOT NULL"
        )
    };
    assert_eq!(scalar(store, &shape(&by_console)).await, 1);
    assert_eq!(scalar(store, &shape(&by_cli)).await, 1);
    assert!(
        stream
            .wait_for(|event| event["status"] == json!("refunded"))
            .await
            .is_some()
    );

    // The same tap again asks Telegram nothing and changes nothing.
    let calls = app.telegram.calls("refundStarPayment");
    let again = act(
        &app,
        "console_refund",
        &[("action_id", "refund-1"), ("charge_id", &by_console)],
    )
    .await;
    assert_eq!(
        again,
        json!({ "result": answer["result"], "repeated": true })
    );
    assert_eq!(app.telegram.calls("refundStarPayment"), calls);
    // Another tap: Telegram says it was refunded already, and the books agree.
    let later = act(
        &app,
        "console_refund",
        &[("action_id", "refund-2"), ("charge_id", &by_console)],
    )
    .await;
    assert!(
        later["result"]
            .as_str()
            .unwrap()
            .contains("the ledger already had the refund"),
        "{later}"
    );
    assert_eq!(app.balance(BUYER).await, 0);
    // A refund Telegram refuses (no such charge there) is recorded, and nothing moves.
    let refused = act(
        &app,
        "console_refund",
        &[("action_id", "refund-3"), ("charge_id", "no-such-charge")],
    )
    .await;
    assert!(
        refused["result"]
            .as_str()
            .unwrap()
            .starts_with("not refunded"),
        "{refused}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM operator_actions WHERE action = 'refund'")
            .await,
        3
    );
    assert_books_balance(store).await;
}

async fn the_audit_log_records_every_action_once(database: Database) {
    let app = console(database).await;
    purchase(&app, 1, BUYER, "ndn-500", 225).await;
    let store = &app.server.state.store;

    // Grant: once per tap, refused for a buyer the shop does not know.
    let grant = [
        ("action_id", "grant-1"),
        ("user_id", "279058397"),
        ("amount", "70"),
        ("reason", "Компенсация"),
    ];
    let granted = act(&app, "console_grant", &grant).await;
    assert!(
        granted["result"]
            .as_str()
            .unwrap()
            .contains("granted 70 NDN"),
        "{granted}"
    );
    let again = act(&app, "console_grant", &grant).await;
    assert_eq!(again["repeated"], json!(true));
    assert_eq!(app.balance(BUYER).await, 570);
    assert_eq!(
        scalar(store, "SELECT COUNT(*) FROM transfers WHERE kind = 'grant'").await,
        1
    );
    let refused = act(
        &app,
        "console_grant",
        &[
            ("action_id", "grant-2"),
            ("user_id", "99"),
            ("amount", "5"),
            ("reason", "x"),
        ],
    )
    .await;
    assert_eq!(refused["result"], json!("refused: no such buyer"));
    let (status, _) = app
        .call_as(
            OPERATOR,
            "console_grant",
            &[
                ("action_id", "grant-3"),
                ("user_id", "279058397"),
                ("amount", "0"),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(status, 400, "a zero grant is bad input");

    // Retry a failed message: queued again once, then sent.
    sqlx::query(
        "INSERT INTO outbox (dedupe_key, chat_id, text, status, attempts, next_attempt_at,
             last_error, created_at)
         VALUES ('test:failed', $1, 'lost message', 'failed', 8, 0, 'chat not found', $2)",
    )
    .bind(BUYER)
    .bind(now_ms())
    .execute(store.pool())
    .await
    .unwrap();
    let failed = scalar(
        store,
        "SELECT id FROM outbox WHERE dedupe_key = 'test:failed'",
    )
    .await;
    let health = act(&app, "console_health", &[]).await;
    assert_eq!(
        health["failed"][0]["text"],
        json!("lost message"),
        "{health}"
    );
    let id = failed.to_string();
    let retried = act(
        &app,
        "console_retry",
        &[("action_id", "retry-1"), ("message_id", &id)],
    )
    .await;
    assert_eq!(
        retried["result"],
        json!(format!("message {id} queued again"))
    );
    let messages = app.messages_once_drained(3).await;
    assert!(
        messages.iter().any(|m| m.text == "lost message"),
        "{messages:?}"
    );

    // Revoke a key: it stops working.
    let (code, created) = app
        .cli(&["keys", "create", "--name", "shop", "--scopes", "read"])
        .await;
    assert_eq!(code, 0, "{created}");
    let key = created
        .lines()
        .find(|l| l.starts_with("ndn_"))
        .unwrap()
        .to_owned();
    let key_id = scalar(store, "SELECT id FROM api_keys WHERE name = 'shop'")
        .await
        .to_string();
    let revoked = act(
        &app,
        "console_revoke",
        &[("action_id", "revoke-1"), ("key_id", &key_id)],
    )
    .await;
    assert_eq!(revoked["result"], json!("key `shop` revoked"));
    let status = app
        .http
        .get(format!("{}/v1/accounts/{BUYER}", app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);

    // Reconcile: nothing missing, and it says so.
    let reconciled = act(&app, "console_reconcile", &[("action_id", "reconcile-1")]).await;
    assert!(
        reconciled["result"]
            .as_str()
            .unwrap()
            .contains("credited: 0"),
        "{reconciled}"
    );

    // The log: each action once, newest first, with who, what, on what, and the result.
    let health = act(&app, "console_health", &[]).await;
    let actions = health["actions"].as_array().unwrap();
    let summary: Vec<(String, String)> = actions
        .iter()
        .map(|a| {
            assert_eq!(a["operator_id"], json!(OPERATOR));
            (
                a["action"].as_str().unwrap().into(),
                a["target"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("grant", "279058397"),
        ("grant", "99"),
        ("retry", format!("message {id}").as_str()),
        ("revoke", format!("key {key_id}").as_str()),
        ("reconcile", "Star transactions"),
    ] {
        assert_eq!(
            summary
                .iter()
                .filter(|(a, t)| a == expected.0 && t == expected.1)
                .count(),
            1,
            "{expected:?} in {summary:?}"
        );
    }
    assert_eq!(actions.len(), 5, "{summary:?}");
    assert_eq!(health["keys"][0]["name"], json!("shop"));
    assert!(health["keys"][0]["revoked_at"].is_i64());
    assert_books_balance(store).await;
}

async fn the_overview_counts_the_period_and_the_download_is_the_export(database: Database) {
    let app = console(database).await;
    purchase(&app, 1, BUYER, "ndn-500", 225).await;
    let refunded = purchase(&app, 2, OTHER_BUYER, "ndn-100", 50).await;
    app.held_payment(3, OTHER_BUYER).await;
    let (code, output) = app.cli(&["refund", &refunded]).await;
    assert_eq!(code, 0, "{output}");

    let overview = act(&app, "console_overview", &[]).await;
    for period in ["today", "week", "month"] {
        let figures = &overview[period];
        assert_eq!(figures["purchases"], json!(2), "{period}: {overview}");
        assert_eq!(figures["stars"], json!(275));
        assert_eq!(figures["ndn_sold"], json!(600));
        assert_eq!(figures["refunds"], json!(1));
        assert_eq!(figures["refunded_stars"], json!(50));
    }
    let days = overview["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[29]["purchases"], json!(2), "today is the last day");
    assert_eq!(days[29]["stars"], json!(275));
    assert!(days[..29].iter().all(|day| day["purchases"] == json!(0)));
    assert_eq!(days[29]["start"].as_i64().unwrap() % 86_400, 0);
    assert_eq!(overview["held_payments"], json!(1));
    // The fake's Stars: three charges, one refunded.
    assert_eq!(overview["star_balance"]["amount"], json!(425));

    // The console's download is `server export`, byte for byte, for both formats.
    let today = &server::clock::iso_time(now_ms())[..10];
    for format in ["csv", "json"] {
        let link = act(
            &app,
            "console_export",
            &[("from", today), ("to", today), ("format", format)],
        )
        .await;
        let response = app
            .http
            .get(format!("{}{}", app.base, link.as_str().unwrap()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(disposition.contains(&format!("ndn-transfers-{today}-to-{today}.{format}")));
        let downloaded = String::from_utf8(response.bytes().await.unwrap().to_vec()).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        let (code, output) = app
            .cli(&[
                "export", "--from", today, "--to", today, "--format", format, "--output", path,
            ])
            .await;
        assert_eq!(code, 0, "{output}");
        let exported = std::fs::read_to_string(path).unwrap();
        assert_eq!(downloaded, exported, "{format}");
        assert!(downloaded.contains("total"), "{downloaded}");
    }
}
