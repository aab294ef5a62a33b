//! The binary's start: bad configuration stops it with exit code 2 and one line.

use std::process::Command;

fn run_with(vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    // Run where no .env file can interfere.
    command.current_dir(std::env::temp_dir());
    for (key, value) in vars {
        command.env(key, value);
    }
    command.output().expect("binary runs")
}

#[test]
fn invalid_configuration_exits_2_with_one_line_naming_the_variable() {
    for (variable, value) in [
        ("TELEGRAM_BOT_TOKEN", "not-a-token"),
        ("DATABASE_URL", "mysql://localhost/ndn"),
        ("LEPTOS_SITE_ADDR", "nowhere"),
        ("NDN_PACKAGES", "100:zero"),
    ] {
        let output = run_with(&[(variable, value)]);
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].starts_with(&format!("configuration error: {variable}: ")),
            "{stderr}"
        );
    }
}

#[test]
fn token_without_webhook_secret_is_refused_at_start() {
    let output = run_with(&[("TELEGRAM_BOT_TOKEN", "123:abc")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TELEGRAM_WEBHOOK_SECRET"));
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/ndn.db", dir.path().display());
    let output = run_with(&[("DATABASE_URL", &url)]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("nested/ndn.db").exists());
}
