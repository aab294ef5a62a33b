//! No secret reaches the logs: the bot token and the webhook secret are absent from every
//! line logged while the server runs through failures and a purchase.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use server::fake_telegram::Fault;
use support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_webhook_secret_never_appear_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

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
    app.messages_after_settling(1).await;
    let unreachable = server::bot_api::BotApi::new("http://127.0.0.1:1", TOKEN, false);
    let error = unreachable.get_me().await.unwrap_err();
    tracing::error!(%error, "unreachable Bot API");
    assert!(!error.to_string().contains(TOKEN));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("createInvoiceLink failed"),
        "the failures were logged"
    );
    assert!(logs.contains("payment credited"));
    let token_secret = TOKEN.split_once(':').unwrap().1;
    for secret in [TOKEN, token_secret, SECRET] {
        assert!(!logs.contains(secret), "`{secret}` leaked into the logs");
    }
}
