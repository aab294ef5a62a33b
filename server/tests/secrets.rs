//! What reaches the logs: never the bot token or the webhook secret, through failures and a
//! purchase; and client text only escaped, so that nobody can write a log line of their own.

mod support;

use server::sandbox::fake_telegram::Fault;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_text_cannot_forge_a_log_line() {
    let captured = captured_logs();
    let app = TestApp::spawn(Database::sqlite()).await;
    let forged = "FORGED-LINE payment credited user_id=1 ndn=1000000";
    let key = format!("x\n{forged}");
    let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
    // A duplicate key is refused before the signature is checked, and its error is logged.
    let init_data = format!("{encoded}=1&{encoded}=2&{}", app.init_data(BUYER));
    let (status, _) = app
        .call("wallet", Some(&format!("tma {init_data}")), &[])
        .await;
    assert_eq!(status, 401);
    // A path is client text too.
    let path = format!("/%0A{}", forged.replace(' ', "%20"));
    app.status_of(&path).await;

    let logs = captured.text();
    assert!(logs.contains("initData refused"), "the refusal was logged");
    assert!(logs.contains("x\\nFORGED-LINE"), "shown escaped:\n{logs}");
    for line in logs.lines() {
        assert!(
            !line.starts_with("FORGED-LINE"),
            "a client wrote a log line: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_webhook_secret_never_appear_in_logs() {
    let captured = captured_logs();

    let app = TestApp::spawn(Database::sqlite()).await;
    tracing::info!(config = ?app.server.state.config, "configuration");
    // Bot API failures (their errors are logged), a wrong secret, forged initData, a purchase.
    app.telegram.inject(Fault {
        method: "createInvoiceLink".into(),
        status: 500,
        retry_after: None,
        times: 1,
    });
    let (status, _) = app
        .call_as(BUYER, "create_invoice", &[("package_id", "ndn-100")])
        .await;
    assert_eq!(status, 503);
    assert_eq!(
        app.deliver_with_secret(&command(1, BUYER, "en", "/help"), Some("wrong"))
            .await
            .0,
        401
    );
    let forged = app.init_data(BUYER).replace("Vladislav", "Mallory");
    assert_eq!(
        app.call("wallet", Some(&format!("tma {forged}")), &[])
            .await
            .0,
        401
    );
    app.telegram.inject(Fault {
        method: "sendMessage".into(),
        status: 502,
        retry_after: None,
        times: 1,
    });
    let order = app.create_order(BUYER, "ndn-100").await;
    app.deliver(&successful_payment(2, BUYER, &order, 50, "secrets-charge"))
        .await;
    app.messages_once_drained(1).await;
    let unreachable = server::telegram::bot_api::BotApi::new("http://127.0.0.1:1", TOKEN, false);
    let error = unreachable.get_me().await.unwrap_err();
    tracing::error!(%error, "unreachable Bot API");
    assert!(!error.to_string().contains(TOKEN));
    // A service API key: used, refused for a scope, mistyped.
    let key = server::keys::create(
        &app.server.state.store,
        "secrets",
        &[server::keys::Scope::Read],
    )
    .await
    .unwrap();
    for presented in [key.clone(), format!("{key}x")] {
        let status = app
            .http
            .post(format!("{}/v1/debits", app.base))
            .bearer_auth(&presented)
            .header("Idempotency-Key", "k")
            .json(&serde_json::json!({ "user_id": BUYER, "amount": 1, "reason": "r" }))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 401 || status == 403, "{status}");
    }

    let logs = captured.text();
    assert!(
        logs.contains("createInvoiceLink failed"),
        "the failures were logged"
    );
    assert!(logs.contains("payment credited"));
    let token_secret = TOKEN.split_once(':').unwrap().1;
    let key_secret = &key[4..];
    for secret in [TOKEN, token_secret, SECRET, key_secret] {
        assert!(!logs.contains(secret), "`{secret}` leaked into the logs");
    }
}
