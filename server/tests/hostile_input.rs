//! Bounded-time fuzzing (property tests) of everything that reads outside input: the update
//! decoder and webhook dispatch, initData validation, server-function arguments. Nothing may
//! panic, hang or answer 5xx for bad input. Regressions found are kept as explicit cases.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};
use server::telegram::init_data::InitDataValidator;
use support::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn cases(count: u32) -> ProptestConfig {
    ProptestConfig {
        cases: count,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON, biased towards the keys and shapes of Telegram updates.
fn hostile_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("update_id".to_owned()),
        Just("message".to_owned()),
        Just("pre_checkout_query".to_owned()),
        Just("successful_payment".to_owned()),
        Just("refunded_payment".to_owned()),
        Just("from".to_owned()),
        Just("chat".to_owned()),
        Just("id".to_owned()),
        Just("text".to_owned()),
        Just("total_amount".to_owned()),
        Just("currency".to_owned()),
        Just("invoice_payload".to_owned()),
        Just("telegram_payment_charge_id".to_owned()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(json!("/start")),
        Just(json!("XTR")),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

#[test]
fn webhook_survives_hostile_bodies() {
    let runtime = runtime();
    let app = runtime.block_on(TestApp::spawn(Database::sqlite()));
    let post = |body: Vec<u8>| {
        runtime.block_on(async {
            let response = app
                .http
                .post(format!("{}/webhook/telegram", app.base))
                .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
                .header("Content-Type", "application/json")
                .timeout(Duration::from_secs(10))
                .body(body)
                .send()
                .await
                .expect("the server answers");
            response.status().as_u16()
        })
    };
    proptest!(cases(256), |(bytes in prop::collection::vec(any::<u8>(), 0..512))| {
        let status = post(bytes);
        prop_assert!(status == 200 || status == 400, "status {}", status);
    });
    proptest!(cases(256), |(mut value in hostile_json(), update_id in any::<i64>())| {
        if let Some(object) = value.as_object_mut() {
            object.insert("update_id".into(), json!(update_id));
        }
        let status = post(serde_json::to_vec(&value).unwrap());
        prop_assert!(status == 200 || status == 400, "status {} for {}", status, value);
    });
    // Regressions: shapes that once needed care.
    for body in [
        json!({ "update_id": 1, "message": { "message_id": 1, "chat": { "id": 1 }, "text": "/" } }),
        json!({ "update_id": 1, "message": { "message_id": 1, "chat": { "id": 1 }, "text": "/@" } }),
        json!({ "update_id": -1, "pre_checkout_query": { "id": "", "from": { "id": 0 }, "currency": "", "total_amount": -5, "invoice_payload": "" } }),
        json!({ "update_id": 2, "message": { "message_id": 1, "chat": { "id": 1 }, "refunded_payment": { "currency": "XTR", "total_amount": 0, "invoice_payload": "", "telegram_payment_charge_id": "" } } }),
    ] {
        let status = post(serde_json::to_vec(&body).unwrap());
        assert!(status == 200 || status == 400, "{status} for {body}");
    }
    let ready = runtime.block_on(async {
        app.http
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(ready, 200);
}

#[test]
fn server_functions_answer_bad_arguments_with_4xx() {
    let runtime = runtime();
    let app = runtime.block_on(TestApp::spawn(Database::sqlite()));
    let auth = format!("tma {}", app.init_data(BUYER));
    let call = |function: &str, body: String| {
        runtime.block_on(async {
            app.http
                .post(format!("{}/api/{function}", app.base))
                .header("Authorization", &auth)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("the server answers")
                .status()
                .as_u16()
        })
    };
    proptest!(cases(128), |(body in ".{0,200}", function in prop_oneof![Just("create_invoice"), Just("order_status"), Just("wallet")])| {
        let status = call(function, body.clone());
        prop_assert!(status < 500, "{} answered {} for {:?}", function, status, body);
    });
    assert_eq!(
        call("create_invoice", String::new()),
        400,
        "a missing argument is the caller's error"
    );
    assert_eq!(call("order_status", "order_id=%FF%FE".into()), 404);
}

#[test]
fn init_data_validation_never_panics_and_rejects_any_change() {
    let validator = InitDataValidator::new(TOKEN, Duration::from_secs(86_400));
    proptest!(cases(512), |(raw in ".{0,300}")| {
        let _ = validator.validate(&raw, 1_700_000_000);
    });
    proptest!(cases(256), |(name in "[^&=]{1,20}", extra in "[a-z0-9]{1,8}", field in 0usize..3)| {
        let user = json!({ "id": 42, "first_name": name }).to_string();
        let fields = [("user", user.as_str()), ("auth_date", "1700000000"), ("query_id", "AAE")];
        let signed = validator.sign(&fields);
        prop_assert_eq!(validator.validate(&signed, 1_700_000_000).map(|d| d.user.id.get()), Ok(42));
        // Any field with more content no longer matches its signature.
        let mut changed: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
        changed[field].1.push_str(&extra);
        let mut tampered = form_urlencoded::Serializer::new(String::new());
        for (key, value) in &changed {
            tampered.append_pair(key, value);
        }
        let hash = signed.rsplit_once("hash=").map(|(_, h)| h.to_owned()).unwrap();
        tampered.append_pair("hash", &hash);
        prop_assert!(validator.validate(&tampered.finish(), 1_700_000_000).is_err());
    });
}
