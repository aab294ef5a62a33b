use super::*;

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_vars(&vars)
}

#[test]
fn the_sandbox_runs_only_when_asked_for() {
    let config = config(&[("NDN_SANDBOX", "1")]).unwrap();
    assert_eq!(config.mode, Mode::Sandbox);
    assert_eq!(config.telegram.api_url, None);
    assert_eq!(config.database.url, "sqlite://data/ndn.db");
    let summary: Vec<_> = config
        .shop
        .packages
        .iter()
        .map(|p| (p.ndn, p.stars))
        .collect();
    assert_eq!(summary, [(100, 50), (500, 225), (1000, 400)]);
}

#[test]
fn without_a_token_or_the_sandbox_switch_the_server_says_what_to_set() {
    let unset = config(&[]).unwrap_err();
    assert_eq!(unset.variable, "TELEGRAM_BOT_TOKEN");
    assert!(unset.problem.contains("is not set"), "{unset}");
    assert!(unset.problem.contains("NDN_SANDBOX=1"), "{unset}");
    // A secret that failed to inject is not a request for the sandbox.
    for empty in ["", "   "] {
        let error = config(&[
            ("TELEGRAM_BOT_TOKEN", empty),
            ("PUBLIC_URL", "https://ndn.example.org"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, "TELEGRAM_BOT_TOKEN");
        assert!(error.problem.contains("is empty"), "{error}");
    }
    let both = config(&[("TELEGRAM_BOT_TOKEN", "123:abc"), ("NDN_SANDBOX", "1")]).unwrap_err();
    assert_eq!(both.variable, "NDN_SANDBOX");
}

#[test]
fn operators_are_listed_by_user_id() {
    let production = [
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("TELEGRAM_WEBHOOK_SECRET", "s3cret"),
    ];
    let listed = config(&[
        production[0],
        production[1],
        ("ADMIN_USER_IDS", " 7, 279058397 ,"),
    ])
    .unwrap();
    assert_eq!(
        listed.console.admin_user_ids,
        vec![UserId(7), UserId(279_058_397)]
    );
    assert!(listed.is_operator(UserId(7)) && !listed.is_operator(UserId(8)));
    assert!(
        config(&production)
            .unwrap()
            .console
            .admin_user_ids
            .is_empty(),
        "no console by default"
    );
    for wrong in ["@boss", "-5", "7;8", "0"] {
        let error = config(&[production[0], production[1], ("ADMIN_USER_IDS", wrong)]).unwrap_err();
        assert_eq!(error.variable, "ADMIN_USER_IDS", "{wrong}");
    }
    // The sandbox's operator, unless the variable is set (even to nothing).
    let sandbox = config(&[("NDN_SANDBOX", "1")]).unwrap();
    assert_eq!(
        sandbox.console.admin_user_ids,
        vec![super::SANDBOX_OPERATOR_ID]
    );
    let none = config(&[("NDN_SANDBOX", "1"), ("ADMIN_USER_IDS", "")]).unwrap();
    assert!(none.console.admin_user_ids.is_empty());
}

#[test]
fn the_sandbox_refuses_a_public_url_or_a_public_address() {
    let public = config(&[
        ("NDN_SANDBOX", "1"),
        ("PUBLIC_URL", "https://ndn.example.org"),
    ])
    .unwrap_err();
    assert_eq!(public.variable, "NDN_SANDBOX");
    assert!(public.problem.contains("PUBLIC_URL"), "{public}");
    for address in ["0.0.0.0:3000", "192.168.1.10:3000", "[::]:3000"] {
        let error = config(&[("NDN_SANDBOX", "1"), ("LEPTOS_SITE_ADDR", address)]).unwrap_err();
        assert_eq!(error.variable, "NDN_SANDBOX", "{address}");
        assert!(error.problem.contains("LEPTOS_SITE_ADDR"), "{error}");
    }
    for disguised in [
        "http://evil.example\\@127.0.0.1:3000",
        "http://evil.example@127.0.0.1:3000",
        "http://127.0.0.1:3000@evil.example",
    ] {
        let error = config(&[("NDN_SANDBOX", "1"), ("PUBLIC_URL", disguised)]).unwrap_err();
        assert_eq!(error.variable, "PUBLIC_URL", "{disguised}");
    }
    for loopback in [
        "http://127.0.0.1:3000",
        "http://localhost:3000/",
        "http://[::1]:3000",
    ] {
        let config = config(&[("NDN_SANDBOX", "1"), ("PUBLIC_URL", loopback)]).unwrap();
        assert_eq!(config.mode, Mode::Sandbox, "{loopback}");
    }
    let ipv6 = config(&[("NDN_SANDBOX", "1"), ("LEPTOS_SITE_ADDR", "[::1]:3000")]).unwrap();
    assert_eq!(ipv6.mode, Mode::Sandbox);
}

#[test]
fn a_real_bot_needs_an_https_public_url() {
    let bot = [
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("TELEGRAM_WEBHOOK_SECRET", "s3cr_t"),
    ];
    for url in ["http://ndn.example.org", "http://127.0.0.1:3000"] {
        let mut vars = bot.to_vec();
        vars.push(("PUBLIC_URL", url));
        let error = config(&vars).unwrap_err();
        assert_eq!(error.variable, "PUBLIC_URL", "{url}");
        assert!(error.problem.contains("https://"), "{error}");
    }
    let mut vars = bot.to_vec();
    vars.push(("PUBLIC_URL", "https://ndn.example.org/"));
    assert_eq!(
        config(&vars).unwrap().http.public_url.as_deref(),
        Some("https://ndn.example.org")
    );
}

#[test]
fn metrics_protection_is_validated() {
    let short = config(&[("NDN_SANDBOX", "1"), ("METRICS_TOKEN", "short")]).unwrap_err();
    assert_eq!(short.variable, "METRICS_TOKEN");
    let bad = config(&[("NDN_SANDBOX", "1"), ("METRICS_ADDR", "metrics")]).unwrap_err();
    assert_eq!(bad.variable, "METRICS_ADDR");
    let everywhere = config(&[("NDN_SANDBOX", "1"), ("METRICS_ADDR", "0.0.0.0:9100")]);
    assert_eq!(everywhere.unwrap_err().variable, "METRICS_ADDR");
    let good = config(&[
        ("NDN_SANDBOX", "1"),
        ("METRICS_TOKEN", "0123456789abcdef0123"),
        ("METRICS_ADDR", "0.0.0.0:9100"),
    ])
    .unwrap();
    assert_eq!(
        good.http.metrics_token.as_deref(),
        Some("0123456789abcdef0123")
    );
    assert!(!format!("{good:?}").contains("0123456789abcdef"));
}

#[test]
fn token_requires_a_valid_webhook_secret() {
    let err = config(&[("TELEGRAM_BOT_TOKEN", "123:abc")]).unwrap_err();
    assert_eq!(err.variable, "TELEGRAM_WEBHOOK_SECRET");
    let err = config(&[
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("TELEGRAM_WEBHOOK_SECRET", "123:abc"),
    ])
    .unwrap_err();
    assert_eq!(err.variable, "TELEGRAM_WEBHOOK_SECRET");
    let ok = config(&[
        ("TELEGRAM_BOT_TOKEN", "123:abc"),
        ("TELEGRAM_WEBHOOK_SECRET", "s3cr_t"),
    ])
    .unwrap();
    assert_eq!(ok.mode, Mode::Production);
    assert_eq!(
        ok.telegram.api_url.as_deref(),
        Some("https://api.telegram.org")
    );
}

#[test]
fn malformed_values_name_their_variable() {
    for (var, value) in [
        ("TELEGRAM_BOT_TOKEN", "not a token"),
        ("LEPTOS_SITE_ADDR", "localhost"),
        ("DATABASE_URL", "mysql://x"),
        ("NDN_PACKAGES", "100"),
        ("NDN_PACKAGES", "100:0"),
        ("NDN_PACKAGES", "100:50,100:60"),
        ("TELEGRAM_TEST_ENV", "maybe"),
        ("INIT_DATA_MAX_AGE", "-5"),
        ("PUBLIC_URL", "ftp://example.org"),
        ("WEBHOOK_ALLOWED_NETWORKS", "149.154.160.0/40"),
        ("TRUSTED_PROXY_HEADER", "bad header"),
        ("MAX_PENDING_ORDERS", "0"),
        ("NDN_SANDBOX", "perhaps"),
    ] {
        let mut vars = vec![(var, value)];
        if var != "TELEGRAM_BOT_TOKEN" && var != "NDN_SANDBOX" {
            vars.push(("NDN_SANDBOX", "1"));
        }
        let err = config(&vars).unwrap_err();
        assert_eq!(err.variable, var, "{value}");
        assert!(
            err.to_string()
                .starts_with(&format!("configuration error: {var}: "))
        );
    }
}

#[test]
fn debug_output_hides_secrets() {
    let config = config(&[
        ("TELEGRAM_BOT_TOKEN", "123:very-secret-token"),
        ("TELEGRAM_WEBHOOK_SECRET", "hook-secret"),
        ("DATABASE_URL", "postgres://app:hunter2@db/ndn"),
    ])
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("very-secret-token"));
    assert!(!shown.contains("hook-secret"));
    assert!(!shown.contains("hunter2"));
    assert!(shown.contains("postgres://app:***@db/ndn"));
}
