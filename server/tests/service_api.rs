//! The service API (`/v1/…`): debits that never overdraw under any concurrency, idempotency
//! keys across restarts and instances, holds that reserve, capture, void and expire, credits,
//! key scopes and revocation, bad input, the statement, and the OpenAPI document. Every test
//! ends with `ledger verify`.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use server::keys::{self, Scope};
use support::*;

on_both_databases!(
    concurrent_debits_never_spend_more_than_there_is,
    an_idempotency_key_answers_the_same_across_a_restart_and_refuses_another_body,
    idempotency_keys_are_answered_for_48_hours_then_forgotten,
    holds_reserve_then_capture_void_or_expire,
    keys_need_their_scopes_and_stop_working_once_revoked,
    bad_input_is_refused_naming_the_field_and_writes_nothing,
    the_statement_pages_newest_first_and_new_entries_do_not_disturb_it,
    credits_and_debits_reach_the_buyer,
);

/// A client of the service API with one key.
struct Service {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Service {
    async fn new(app: &TestApp, scopes: &[Scope]) -> Self {
        let name = format!("svc-{}", uuid::Uuid::new_v4().simple());
        let key = keys::create(&app.server.state.store, &name, scopes)
            .await
            .unwrap();
        Self::with_key(&app.base, key)
    }

    fn with_key(base: &str, key: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            key,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value, bool) {
        let response = request.bearer_auth(&self.key).send().await.unwrap();
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            replayed,
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, body, _) = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await;
        (status, body)
    }

    async fn post(
        &self,
        path: impl Into<String>,
        key: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value, bool) {
        let mut request = self
            .http
            .post(format!("{}{}", self.base, path.into()))
            .json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    async fn debit(
        &self,
        user_id: i64,
        amount: i64,
        key: impl Into<String>,
    ) -> (StatusCode, Value, bool) {
        let key = key.into();
        let body = json!({ "user_id": user_id, "amount": amount, "reason": "sword of dawn" });
        self.post("/v1/debits", Some(&key), &body).await
    }

    async fn credit(
        &self,
        user_id: i64,
        amount: i64,
        key: impl Into<String>,
    ) -> (StatusCode, Value, bool) {
        let key = key.into();
        let body = json!({ "user_id": user_id, "amount": amount, "reason": "welcome gift" });
        self.post("/v1/credits", Some(&key), &body).await
    }

    async fn account(&self, user_id: i64) -> Value {
        let (status, body) = self.get(&format!("/v1/accounts/{user_id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// A buyer who opened the Mini App (an account exists), with `ndn` granted.
async fn funded_buyer(app: &TestApp, service: &Service, user_id: i64, ndn: i64) {
    app.balance(user_id).await;
    let (status, body, _) = service
        .credit(user_id, ndn, format!("fund-{user_id}"))
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn concurrent_debits_never_spend_more_than_there_is(database: Database) {
    let app = TestApp::spawn(database).await;
    let service = Service::new(&app, &[Scope::Read, Scope::Spend, Scope::Grant]).await;
    funded_buyer(&app, &service, BUYER, 500).await;
    let statuses = futures::future::join_all(
        (0..1_000).map(|i| service.debit(BUYER, 1, format!("debit-{i}"))),
    )
    .await;
    let created = statuses.iter().filter(|(s, _, _)| *s == 201).count();
    let refused: Vec<&Value> = statuses
        .iter()
        .filter(|(s, _, _)| *s == 409)
        .map(|(_, body, _)| body)
        .collect();
    assert_eq!((created, refused.len()), (500, 500));
    assert!(
        refused
            .iter()
            .all(|body| body["error"] == "insufficient_funds" && body["available"] == 0)
    );
    let account = service.account(BUYER).await;
    assert_eq!(account["balance"], 0);
    assert_eq!(account["available"], 0);
    let store = &app.server.state.store;
    assert_eq!(
        scalar(store, "SELECT COUNT(*) FROM transfers WHERE kind = 'spend'").await,
        500
    );
    assert_books_balance(store).await;
}

async fn an_idempotency_key_answers_the_same_across_a_restart_and_refuses_another_body(
    database: Database,
) {
    let app = TestApp::spawn(database).await;
    let service = Service::new(&app, &[Scope::Read, Scope::Spend, Scope::Grant]).await;
    funded_buyer(&app, &service, BUYER, 100).await;
    let (status, first, replayed) = service.debit(BUYER, 30, "order-77").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    assert_eq!(first["account"]["balance"], 70);
    // The same key at once, many times: one debit.
    let copies =
        futures::future::join_all((0..10).map(|_| service.debit(BUYER, 30, "order-78"))).await;
    let ids: std::collections::HashSet<String> = copies
        .iter()
        .map(|(status, body, _)| {
            assert_eq!(*status, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one debit for one key");
    assert_eq!(
        copies.iter().filter(|(_, _, replayed)| *replayed).count(),
        9
    );

    let app = app.restart().await;
    let service = Service::with_key(&app.base, service.key);
    let (status, again, replayed) = service.debit(BUYER, 30, "order-77").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, first, "the first answer, word for word");
    let (status, body, _) = service.debit(BUYER, 31, "order-77").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "idempotency_key_reused");
    // The same body with its keys in another order is the same request.
    let (status, _, replayed) = service
        .post(
            "/v1/debits",
            Some("order-77"),
            &json!({ "reason": "sword of dawn", "amount": 30, "user_id": BUYER }),
        )
        .await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(service.account_balance(BUYER).await, 40);
    assert_books_balance(&app.server.state.store).await;
}

/// Keys are kept the documented 48 hours: one written 47 hours ago is still answered, one
/// written just over 48 hours ago is forgotten by the upkeep (which runs at every start) and
/// the same key then makes a new debit.
async fn idempotency_keys_are_answered_for_48_hours_then_forgotten(database: Database) {
    const HOUR_MS: i64 = 3_600_000;
    let app = TestApp::spawn(database).await;
    let service = Service::new(&app, &[Scope::Read, Scope::Spend, Scope::Grant]).await;
    funded_buyer(&app, &service, BUYER, 100).await;
    let (status, kept, _) = service.debit(BUYER, 10, "written-47h-ago").await;
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    let (status, gone, _) = service.debit(BUYER, 10, "written-48h-ago").await;
    assert_eq!(status, StatusCode::CREATED, "{gone}");
    for (key, age) in [
        ("written-47h-ago", 47 * HOUR_MS),
        ("written-48h-ago", 48 * HOUR_MS + 60_000),
    ] {
        sqlx::query(
            "UPDATE api_requests SET created_at = created_at - $1 WHERE idempotency_key = $2",
        )
        .bind(age)
        .bind(key)
        .execute(app.server.state.store.pool())
        .await
        .unwrap();
    }
    let app = app.restart().await;
    let service = Service::with_key(&app.base, service.key);
    let left = "SELECT COUNT(*) FROM api_requests WHERE idempotency_key LIKE 'written-%'";
    for _ in 0..200 {
        if app.count(left).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count(left).await,
        1,
        "only the older answer is forgotten"
    );
    let (status, again, replayed) = service.debit(BUYER, 10, "written-47h-ago").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again, kept, "the first answer, at 47 hours");
    let (status, anew, replayed) = service.debit(BUYER, 10, "written-48h-ago").await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{anew}");
    assert_ne!(anew["id"], gone["id"], "a new debit: the key was forgotten");
    assert_eq!(service.account_balance(BUYER).await, 70);
    assert_books_balance(&app.server.state.store).await;
}

impl Service {
    async fn account_balance(&self, user_id: i64) -> i64 {
        let (status, body) = self.get(&format!("/v1/accounts/{user_id}")).await;
        assert_eq!(status, 200, "{body}");
        body["balance"].as_i64().unwrap()
    }
}

async fn holds_reserve_then_capture_void_or_expire(database: Database) {
    let app = TestApp::spawn(database).await;
    let service = Service::new(&app, &[Scope::Read, Scope::Spend, Scope::Grant]).await;
    funded_buyer(&app, &service, BUYER, 500).await;
    let hold = |amount: i64, expires_in: i64| {
        let service = &service;
        async move {
            let body = json!({ "user_id": BUYER, "amount": amount, "expires_in": expires_in,
                               "reason": "tournament entry" });
            let key = format!("hold-{amount}-{expires_in}");
            service.post("/v1/holds", Some(&key), &body).await
        }
    };
    let (status, held, _) = hold(300, 600).await;
    assert_eq!(status, 201, "{held}");
    assert_eq!(held["status"], "active");
    assert_eq!(
        held["account"],
        json!({ "user_id": BUYER, "balance": 500, "held": 300, "available": 200 })
    );
    let hold_id = held["id"].as_str().unwrap().to_owned();
    let (status, refused, _) = service.debit(BUYER, 300, "too-much").await;
    assert_eq!(status, 409);
    assert_eq!(refused["available"], 200);

    let capture = |id: String, body: Value| {
        let service = &service;
        async move {
            service
                .post(
                    &format!("/v1/holds/{id}/capture"),
                    Some(&format!("capture-{id}-{body}")),
                    &body,
                )
                .await
        }
    };
    let (status, captured, _) = capture(hold_id.clone(), json!({ "amount": 120 })).await;
    assert_eq!(status, 200, "{captured}");
    assert_eq!(
        (captured["status"].as_str(), captured["captured"].as_i64()),
        (Some("captured"), Some(120))
    );
    assert_eq!(captured["account"]["balance"], 380);
    assert_eq!(captured["account"]["held"], 0);
    let (status, again, _) = capture(hold_id.clone(), json!({ "amount": 120 })).await;
    assert_eq!(
        (status, &again["captured"]),
        (StatusCode::OK, &json!(120)),
        "capture is idempotent"
    );
    let (status, _, _) = capture(hold_id.clone(), json!({ "amount": 121 })).await;
    assert_eq!(status, 409);
    let (status, body, _) = service
        .post(
            &format!("/v1/holds/{hold_id}/void"),
            Some("void-captured"),
            &json!({}),
        )
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::CONFLICT, &json!("captured"))
    );

    // Voided: released, void again answers the same, capture refused.
    let (_, second, _) = hold(50, 600).await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    let void = |id: &str| {
        let (service, path) = (&service, format!("/v1/holds/{id}/void"));
        async move { service.post(&path, Some(&path), &json!({})).await }
    };
    let (status, voided, _) = void(&second_id).await;
    assert_eq!(
        (status, &voided["status"]),
        (StatusCode::OK, &json!("voided"))
    );
    assert_eq!(voided["account"]["held"], 0);
    assert_eq!(void(&second_id).await.0, 200);
    let (status, body, _) = capture(second_id, json!({})).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("hold_not_active"))
    );

    // A hold left alone is released by itself once its time runs out.
    let (_, short, _) = hold(200, 1).await;
    let short_id = short["id"].as_str().unwrap().to_owned();
    assert_eq!(service.account(BUYER).await["held"], 200);
    let mut released = false;
    for _ in 0..60 {
        if service.account(BUYER).await["held"] == 0 {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(released, "the expired hold still holds");
    let (status, body, _) = capture(short_id, json!({})).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::CONFLICT, &json!("expired"))
    );
    assert_eq!(capture("hold_unknown".into(), json!({})).await.0, 404);
    assert_eq!(service.account(BUYER).await["balance"], 380);
    assert_books_balance(&app.server.state.store).await;
}

async fn keys_need_their_scopes_and_stop_working_once_revoked(database: Database) {
    let app = TestApp::spawn(database).await;
    let granter = Service::new(&app, &[Scope::Grant]).await;
    funded_buyer(&app, &granter, BUYER, 10).await;
    let (code, created) = app
        .cli(&["keys", "create", "--name", "reader", "--scopes", "read"])
        .await;
    assert_eq!(code, 0, "{created}");
    let key = created
        .lines()
        .find(|line| line.starts_with("ndn_"))
        .expect("the key is printed")
        .to_owned();
    assert!(key.len() >= 4 + 32, "at least 128 bits: {key}");
    let reader = Service::with_key(&app.base, key.clone());
    assert_eq!(reader.account(BUYER).await["balance"], 10);
    let (status, body, _) = reader.debit(BUYER, 1, "k").await;
    assert_eq!(
        (status, &body["scope"]),
        (StatusCode::FORBIDDEN, &json!("spend"))
    );
    assert_eq!(granter.get(&format!("/v1/accounts/{BUYER}")).await.0, 403);

    for wrong in ["", "ndn_nope", &key[..key.len() - 1]] {
        let stranger = Service::with_key(&app.base, wrong.to_owned());
        assert_eq!(
            stranger.get(&format!("/v1/accounts/{BUYER}")).await.0,
            401,
            "{wrong}"
        );
    }
    let anonymous = reqwest::get(format!("{}/v1/accounts/{BUYER}", app.base))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let (code, listed) = app.cli(&["keys", "list"]).await;
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed.contains("reader") && listed.contains("read"),
        "{listed}"
    );
    assert!(!listed.contains(&key[4..]), "a key is never shown again");
    let (code, output) = app.cli(&["keys", "revoke", "reader"]).await;
    assert_eq!(code, 0, "{output}");
    let mut refused = false;
    for _ in 0..40 {
        if reader.get(&format!("/v1/accounts/{BUYER}")).await.0 == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "a revoked key still works");
    let (code, listed) = app.cli(&["keys", "list"]).await;
    assert!(code == 0 && listed.contains("REVOKED"), "{listed}");
    assert_ne!(app.cli(&["keys", "revoke", "reader"]).await.0, 0);
    assert_ne!(
        app.cli(&["keys", "create", "--name", "x", "--scopes", "admin"])
            .await
            .0,
        0
    );
}

async fn bad_input_is_refused_naming_the_field_and_writes_nothing(database: Database) {
    let app = TestApp::spawn(database).await;
    let service = Service::new(&app, &[Scope::Read, Scope::Spend, Scope::Grant]).await;
    funded_buyer(&app, &service, BUYER, 100).await;
    let store = &app.server.state.store;
    let before = scalar(store, "SELECT COUNT(*) FROM transfers").await;
    let base = json!({ "user_id": BUYER, "amount": 1, "reason": "ok" });
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (body, field) in [
        (with("amount", json!(0)), "amount"),
        (with("amount", json!(-5)), "amount"),
        (with("amount", json!(1.5)), "amount"),
        (with("amount", json!("3")), "amount"),
        (with("amount", json!(1_000_000_000_001_i64)), "amount"),
        (with("reason", json!("")), "reason"),
        (with("reason", json!("r".repeat(201))), "reason"),
        (with("reference", json!("f".repeat(129))), "reference"),
        (with("metadata", json!("text")), "metadata"),
        (
            with("metadata", json!({ "blob": "m".repeat(4_100) })),
            "metadata",
        ),
        (with("colour", json!("red")), "colour"),
        (with("user_id", json!(-1)), "user_id"),
        (json!({ "amount": 1, "reason": "ok" }), "user_id"),
        (json!([1, 2]), "body"),
    ] {
        let (status, answer, _) = service.post("/v1/debits", Some("bad"), &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"], "invalid_request");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let (status, answer, _) = service.post("/v1/debits", None, &base).await;
    assert_eq!(
        (status, &answer["field"]),
        (StatusCode::BAD_REQUEST, &json!("Idempotency-Key"))
    );
    let huge = json!({ "user_id": BUYER, "amount": 1, "reason": "x".repeat(17 * 1024) });
    let (status, answer, _) = service.post("/v1/debits", Some("huge"), &huge).await;
    assert_eq!(
        (status, &answer["error"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("body_too_large"))
    );
    let (status, _, _) = service.debit(999_999_999, 1, "nobody").await;
    assert_eq!(status, 404);
    assert_eq!(service.get("/v1/accounts/abc").await.0, 400);
    assert_eq!(service.get("/v1/accounts/999999999").await.0, 404);
    assert_eq!(service.get("/v1/nowhere").await.0, 404);
    assert_eq!(
        scalar(store, "SELECT COUNT(*) FROM transfers").await,
        before
    );
    assert_eq!(scalar(store, "SELECT COUNT(*) FROM api_requests").await, 1);
    assert_eq!(service.account(BUYER).await["balance"], 100);
}

async fn the_statement_pages_newest_first_and_new_entries_do_not_disturb_it(database: Database) {
    let app = TestApp::spawn(database).await;
    let service = Service::new(&app, &[Scope::Read, Scope::Spend, Scope::Grant]).await;
    let order_id = app.create_order(BUYER, "ndn-500").await;
    app.deliver(&successful_payment(
        1,
        BUYER,
        &order_id,
        225,
        "statement-charge",
    ))
    .await;
    service.credit(BUYER, 100, "gift").await;
    service.debit(BUYER, 40, "first").await;
    service
        .post(
            "/v1/holds",
            Some("statement-hold"),
            &json!({ "user_id": BUYER, "amount": 10, "expires_in": 600 }),
        )
        .await;
    service.debit(BUYER, 5, "second").await;
    // Five entries, read two at a time while new debits keep arriving.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..10 {
        let path = match &cursor {
            Some(cursor) => format!("/v1/accounts/{BUYER}/transactions?limit=2&cursor={cursor}"),
            None => format!("/v1/accounts/{BUYER}/transactions?limit=2"),
        };
        let (status, body) = service.get(&path).await;
        assert_eq!(status, 200, "{body}");
        for entry in body["data"].as_array().unwrap() {
            seen.push((
                entry["type"].as_str().unwrap().to_owned(),
                entry["amount"].as_i64().unwrap(),
            ));
        }
        service.debit(BUYER, 1, format!("meanwhile-{page}")).await;
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let kinds: Vec<(&str, i64)> = seen
        .iter()
        .map(|(kind, amount)| (kind.as_str(), *amount))
        .collect();
    assert_eq!(
        kinds,
        [
            ("debit", -5),
            ("hold", 10),
            ("debit", -40),
            ("credit", 100),
            ("purchase", 500)
        ],
        "newest first, each once"
    );
    let (status, body) = service
        .get(&format!("/v1/accounts/{BUYER}/transactions?cursor=zz"))
        .await;
    assert_eq!(
        (status, &body["field"]),
        (StatusCode::BAD_REQUEST, &json!("cursor"))
    );
    assert_eq!(
        service
            .get(&format!("/v1/accounts/{BUYER}/transactions?limit=0"))
            .await
            .0,
        400
    );
    assert_books_balance(&app.server.state.store).await;
}

async fn credits_and_debits_reach_the_buyer(database: Database) {
    let app = TestApp::spawn(database).await;
    let service = Service::new(&app, &[Scope::Spend, Scope::Grant]).await;
    app.balance(BUYER).await;
    let stream = EventStream::open(&app.http, &app.base, BUYER).await;
    service.credit(BUYER, 100, "gift-1").await;
    assert!(
        stream
            .wait_for(|event| event["balance"] == 100)
            .await
            .is_some()
    );
    service.debit(BUYER, 30, "spend-1").await;
    assert!(
        stream
            .wait_for(|event| event["balance"] == 70)
            .await
            .is_some()
    );
    let messages = app.messages_once_drained(1).await;
    assert_eq!(
        messages.len(),
        1,
        "a credit is told, a debit is not: {messages:?}"
    );
    assert_eq!(
        messages[0].text,
        "+100 NDN: welcome gift — balance 100 NDN."
    );
    let (_, wallet) = app.call_as(BUYER, "wallet", &[]).await;
    let history = &wallet["history"];
    assert_eq!(history[0]["kind"], "spend");
    assert_eq!(history[0]["ndn"], -30);
    assert_eq!(history[0]["reason"], "sword of dawn");
    assert_eq!(history[1]["kind"], "credit");
    assert_eq!(history[1]["reason"], "welcome gift");
    assert_eq!(wallet["balance"], 70);
    assert_books_balance(&app.server.state.store).await;
}

/// The document is the contract: every operation it lists is routed (it answers 401 without a
/// key, not the JSON 404 of an unknown path), each has a summary and an operation id every
/// common client generator can use, its server is this one, and its licence is named.
#[tokio::test]
async fn the_openapi_document_is_the_routes() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let text = reqwest::get(format!("{}/v1/openapi.json", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let document = oas3::from_json(&text).expect("a valid OpenAPI 3.1 document");
    assert!(document.openapi.starts_with("3.1"), "{}", document.openapi);
    let raw: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        raw["servers"][0]["url"], "https://ndn.example.org",
        "{}",
        raw["servers"]
    );
    assert_eq!(raw["info"]["license"]["identifier"], "MIT");
    // Words some generator's language reserves (TypeScript, Python, Go, Java, C#).
    let reserved = [
        "void",
        "delete",
        "new",
        "default",
        "class",
        "function",
        "return",
        "import",
        "package",
        "interface",
        "type",
        "func",
        "go",
        "select",
        "range",
        "break",
        "continue",
        "case",
        "switch",
        "for",
        "while",
        "if",
        "else",
        "try",
        "catch",
        "finally",
        "with",
        "yield",
        "async",
        "await",
        "let",
        "var",
        "const",
        "enum",
        "static",
        "public",
        "private",
        "object",
    ];
    let mut operations = 0;
    for (path, item) in raw["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                id.starts_with(|c: char| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric())
                    && !reserved.contains(&id),
                "{method} {path}: operation id `{id}`"
            );
            assert!(
                operation["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path} has no summary"
            );
            let concrete = path
                .replace("{user_id}", "279058397")
                .replace("{hold_id}", "hold_0123");
            let request = app.http.request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{concrete}", app.base),
            );
            let (status, body) = send(request).await;
            assert_eq!(status, 401, "{method} {path} is not routed: {body}");
        }
    }
    assert!(operations >= 7, "{operations} operations");
    let (status, body) = send(app.http.get(format!("{}/v1/nowhere", app.base))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
}

/// Two instances on one PostgreSQL database, one key.
async fn two_instances() -> Option<(Vec<server::Running>, Service, Service, Database)> {
    let database = Database::postgres().await?;
    let (_telegram, telegram_url) = serve_fake_telegram().await;
    let mut instances = Vec::new();
    for _ in 0..2 {
        let vars = production_vars(&database.url, &telegram_url);
        let config = server::config::Config::from_vars(&vars).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        instances.push(server::start(config, listener).await.unwrap());
    }
    let store = &instances[0].state.store;
    let key = keys::create(store, "two", &[Scope::Read, Scope::Spend, Scope::Grant])
        .await
        .unwrap();
    let a = Service::with_key(&format!("http://{}", instances[0].addr), key.clone());
    let b = Service::with_key(&format!("http://{}", instances[1].addr), key);
    let wallet = server_function(&a.http, &a.base, "wallet", &signed_init_data(BUYER), "").await;
    assert_eq!(wallet["balance"], 0);
    Some((instances, a, b, database))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_never_overdraw_and_share_idempotency_keys() {
    let Some((instances, a, b, _database)) = two_instances().await else {
        return;
    };
    assert_eq!(a.credit(BUYER, 500, "fund").await.0, 201);
    let debits = (0..1_000).map(|i| {
        let service = if i % 2 == 0 { &a } else { &b };
        service.debit(BUYER, 1, format!("two-{i}"))
    });
    let results = futures::future::join_all(debits).await;
    assert_eq!(results.iter().filter(|(s, _, _)| *s == 201).count(), 500);
    assert_eq!(results.iter().filter(|(s, _, _)| *s == 409).count(), 500);
    assert_eq!(a.account(BUYER).await["balance"], 0);

    assert_eq!(b.credit(BUYER, 50, "refill").await.0, 201);
    // One key, sent to both instances at once.
    let same = (0..20).map(|i| {
        let service = if i % 2 == 0 { &a } else { &b };
        service.debit(BUYER, 7, "shared-key")
    });
    let results = futures::future::join_all(same).await;
    assert!(results.iter().all(|(s, _, _)| *s == 201), "{results:?}");
    let ids: std::collections::HashSet<&str> = results
        .iter()
        .map(|(_, body, _)| body["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(b.account(BUYER).await["balance"], 43);
    let (status, body, _) = a.debit(BUYER, 8, "shared-key").await;
    assert_eq!(
        (status, &body["error"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!("idempotency_key_reused")
        )
    );
    assert_books_balance(&instances[0].state.store).await;
    for instance in instances {
        instance.stop().await;
    }
}
