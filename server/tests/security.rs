//! Abuse limits and headers: invoice rate limit and open-order cap, the webhook's source
//! allowlist, the Content-Security-Policy, request ids.

mod support;

use support::*;

#[tokio::test]
async fn invoices_are_rate_limited_per_buyer_with_a_retry_hint() {
    let app =
        TestApp::spawn_configured(Database::sqlite(), &[("INVOICE_RATE_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        app.create_order(BUYER, "ndn-100").await;
    }
    let auth = format!("tma {}", app.init_data(BUYER));
    let response = app
        .http
        .post(format!("{}/api/create_invoice", app.base))
        .header("Authorization", &auth)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("package_id=ndn-100")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // Three in any 60 seconds: a place frees up when the first of them is a minute old.
    assert!((45..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["RateLimited"]["retry_after_secs"], retry);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 3);
    assert_eq!(
        app.telegram.calls("createInvoiceLink"),
        3,
        "no invoice made"
    );
    // Another buyer is not affected.
    app.create_order(OTHER_BUYER, "ndn-100").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 4);
}

#[tokio::test]
async fn open_orders_are_capped() {
    let app = TestApp::spawn_configured(
        Database::sqlite(),
        &[
            ("INVOICE_RATE_PER_MINUTE", "100"),
            ("MAX_PENDING_ORDERS", "2"),
        ],
    )
    .await;
    let first = app.create_order(BUYER, "ndn-100").await;
    app.create_order(BUYER, "ndn-100").await;
    let (status, body) = app
        .call_as(BUYER, "create_invoice", &[("package_id", "ndn-100")])
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 2);
    assert_eq!(
        app.telegram.calls("createInvoiceLink"),
        2,
        "no invoice made"
    );
    // Paying one frees a place.
    app.deliver(&successful_payment(1, BUYER, &first, 50, "cap-charge"))
        .await;
    let (status, _) = app
        .call_as(BUYER, "create_invoice", &[("package_id", "ndn-100")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.count("SELECT COUNT(*) FROM orders").await, 3);
}

/// Posts a `/help` command (a new update id each time) as if from `forwarded`; the status,
/// after checking that exactly the accepted ones were answered (a reply queued).
async fn post_from(app: &TestApp, forwarded: Option<&str>) -> u16 {
    let queued = app.count("SELECT COUNT(*) FROM outbox").await;
    let update_id = 1000 + queued;
    let mut request = app
        .http
        .post(format!("{}/webhook/telegram", app.base))
        .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
        .json(&command(update_id, BUYER, "en", "/help"));
    if let Some(address) = forwarded {
        request = request.header("X-Forwarded-For", address);
    }
    let status = request.send().await.unwrap().status().as_u16();
    let answered = app.count("SELECT COUNT(*) FROM outbox").await - queued;
    assert_eq!(answered, i64::from(status == 200), "status {status}");
    status
}

#[tokio::test]
async fn webhook_allowlist_is_off_by_default_and_enforced_when_set() {
    let open = TestApp::spawn(Database::sqlite()).await;
    assert_eq!(post_from(&open, None).await, 200);

    let direct = TestApp::spawn_configured(
        Database::sqlite(),
        &[("WEBHOOK_ALLOWED_NETWORKS", "149.154.160.0/20,91.108.4.0/22")],
    )
    .await;
    assert_eq!(
        post_from(&direct, None).await,
        403,
        "loopback is not Telegram"
    );
    assert_eq!(
        post_from(&direct, Some("149.154.160.7")).await,
        403,
        "headers are not trusted unless configured"
    );

    let proxied = TestApp::spawn_configured(
        Database::sqlite(),
        &[
            ("WEBHOOK_ALLOWED_NETWORKS", "149.154.160.0/20"),
            ("TRUSTED_PROXY_HEADER", "X-Forwarded-For"),
        ],
    )
    .await;
    assert_eq!(
        post_from(&proxied, Some("10.0.0.1, 149.154.160.7")).await,
        200
    );
    assert_eq!(
        post_from(&proxied, Some("149.154.160.7, 6.6.6.6")).await,
        403,
        "only the proxy's own entry counts"
    );
    assert_eq!(post_from(&proxied, None).await, 403);
}

#[tokio::test]
async fn pages_carry_a_content_security_policy() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let page = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    // The inline scripts are allowed by their hashes (`assets.rs` checks each one), no nonce.
    assert!(policy.contains("script-src 'self' 'sha256-"), "{policy}");
    assert!(!policy.contains("'nonce-") && !html.contains("nonce="));
    assert!(policy.contains("https://telegram.org"));
    assert!(
        policy.contains("frame-ancestors 'self' https://web.telegram.org https://*.telegram.org")
    );
    assert!(
        !policy.contains("'unsafe-inline' 'wasm"),
        "no inline scripts beyond the hashed ones"
    );

    let privacy = app
        .http
        .get(format!("{}/privacy", app.base))
        .send()
        .await
        .unwrap();
    let policy = privacy.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.starts_with(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' https://telegram.org;"
    ));
}

/// Every answer carries its request's id as `Request-Id` and `X-Request-Id`: the caller's when
/// well-formed, one made here otherwise (never an echo of whatever was sent), on pages, the
/// service API's errors and 404s alike.
#[tokio::test]
async fn every_answer_carries_a_well_formed_request_id() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let ids_of = |response: &reqwest::Response| {
        let header = |name: &str| {
            response.headers()[name]
                .to_str()
                .unwrap_or_else(|_| panic!("{name} is not text"))
                .to_owned()
        };
        let (id, x_id) = (header("request-id"), header("x-request-id"));
        assert_eq!(id, x_id);
        id
    };
    let get = |path: &str, id: Option<&str>| {
        let mut request = app.http.get(format!("{}{path}", app.base));
        if let Some(id) = id {
            request = request.header("X-Request-Id", id);
        }
        request.send()
    };
    let mut made = std::collections::HashSet::new();
    for path in ["/healthz", "/v1/accounts/1", "/v1/nowhere", "/privacy"] {
        let response = get(path, None).await.unwrap();
        let id = ids_of(&response);
        assert!(
            id.len() > 9 && id.contains('-') && id.is_ascii(),
            "{path}: made id {id:?}"
        );
        assert!(made.insert(id), "{path}: an id made twice");
        let kept = "req_8f3a-01:trace.7";
        assert_eq!(
            ids_of(&get(path, Some(kept)).await.unwrap()),
            kept,
            "{path}"
        );
    }
    let too_long = "a".repeat(129);
    for malformed in [too_long.as_str(), "a b", "<script>", "id\"quoted", "%00"] {
        let response = get("/v1/accounts/1", Some(malformed)).await.unwrap();
        assert_eq!(response.status(), 401);
        let id = ids_of(&response);
        assert_ne!(id, malformed);
        assert!(made.insert(id), "a made id repeated");
    }
    assert_eq!(
        ids_of(&get("/healthz", Some(&"b".repeat(128))).await.unwrap()),
        "b".repeat(128)
    );
}
