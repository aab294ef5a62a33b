//! The binary's start: bad configuration stops it with exit code 3 and one line.

use std::process::Command;

fn run_with(vars: &[(&str, &str)]) -> std::process::Output {
    run(&["serve"], vars)
}

/// Runs the binary; a server that starts instead of stopping is killed after 20 s (and the
/// test then fails on its exit status rather than hanging).
fn run(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    // Run where no .env file can interfere.
    command.current_dir(std::env::temp_dir());
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child
        .try_wait()
        .expect("the child can be waited for")
        .is_none()
    {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("the output can be read")
}

#[test]
fn invalid_configuration_exits_3_with_one_line_naming_the_variable() {
    for (variable, value) in [
        ("TELEGRAM_BOT_TOKEN", "not-a-token"),
        ("DATABASE_URL", "mysql://localhost/ndn"),
        ("LEPTOS_SITE_ADDR", "nowhere"),
        ("NDN_PACKAGES", "100:zero"),
        ("LOG_FORMAT", "xml"),
    ] {
        let sandbox = (
            "NDN_SANDBOX",
            if variable == "TELEGRAM_BOT_TOKEN" {
                ""
            } else {
                "1"
            },
        );
        let output = run_with(&[(variable, value), sandbox]);
        assert_eq!(output.status.code(), Some(3), "{variable}");
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
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("TELEGRAM_WEBHOOK_SECRET"));
}

/// Exit code 3 and one line naming `variable` and containing `hint`, before anything starts.
fn assert_refused(output: &std::process::Output, variable: &str, hint: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("configuration error: {variable}: ")),
        "{stderr}"
    );
    assert!(lines[0].contains(hint), "{stderr}");
    assert!(
        String::from_utf8_lossy(&output.stdout).is_empty(),
        "nothing was served"
    );
}

#[test]
fn an_empty_bot_token_stops_the_server_instead_of_starting_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ndn.db", dir.path().display());
    // A secret that failed to inject, on a deployment.
    let output = run(
        &["serve"],
        &[
            ("TELEGRAM_BOT_TOKEN", ""),
            ("TELEGRAM_WEBHOOK_SECRET", "deployed_secret"),
            ("PUBLIC_URL", "https://ndn.example.org"),
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("DATABASE_URL", &url),
        ],
    );
    assert_refused(&output, "TELEGRAM_BOT_TOKEN", "NDN_SANDBOX=1");
    assert!(
        !dir.path().join("ndn.db").exists(),
        "no database was opened"
    );
    // Nothing set at all: the same line, saying what to set.
    let output = run(&["serve"], &[("LEPTOS_SITE_ADDR", "127.0.0.1:0")]);
    assert_refused(&output, "TELEGRAM_BOT_TOKEN", "is not set");
}

#[test]
fn the_sandbox_refuses_to_start_where_others_could_reach_it() {
    let output = run(
        &["serve"],
        &[
            ("NDN_SANDBOX", "1"),
            ("PUBLIC_URL", "https://ndn.example.org"),
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ],
    );
    assert_refused(&output, "NDN_SANDBOX", "PUBLIC_URL");
    let output = run(
        &["serve"],
        &[("NDN_SANDBOX", "1"), ("LEPTOS_SITE_ADDR", "0.0.0.0:0")],
    );
    assert_refused(&output, "NDN_SANDBOX", "LEPTOS_SITE_ADDR");
}

#[test]
fn a_real_bot_refuses_a_plain_http_public_url() {
    let output = run(
        &["serve"],
        &[
            ("TELEGRAM_BOT_TOKEN", "123:abc"),
            ("TELEGRAM_WEBHOOK_SECRET", "deployed_secret"),
            ("PUBLIC_URL", "http://ndn.example.org"),
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
        ],
    );
    assert_refused(&output, "PUBLIC_URL", "https://");
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/ndn.db", dir.path().display());
    // Only the database: `migrate` needs no token and no sandbox.
    let output = run(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("nested/ndn.db").exists());
}

/// Starts the sandbox with `LOG_FORMAT=format` (stdout piped, as under systemd), asks it for
/// `/healthz` once it runs, and returns its stdout lines up to the request's log line.
fn serve_and_log_one_request(format: &str) -> Vec<String> {
    use std::io::{BufRead, BufReader, Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ndn.db", dir.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NDN_SANDBOX", "1")
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", &url)
        .env("LOG_FORMAT", format)
        .env("RUST_LOG", "info,tower_http=warn")
        .current_dir(dir.path())
        .spawn()
        .expect("binary runs");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    // The sandbox's own calls to its fake Bot API are served and logged too, in any order
    // with ours: wait for the line that has every word asked for.
    let mut next = |until: &[&str]| loop {
        let line = lines_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line with {until:?} in 30 s: {lines:?}"));
        lines.push(line.clone());
        if until.iter().all(|word| line.contains(word)) {
            break line;
        }
    };
    let started = next(&["running"]);
    let at = started.find("http://127.0.0.1:").unwrap() + "http://".len();
    let host: String = started[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    let get = |extra_header: &str| {
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {host}\r\n{extra_header}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        answer
    };
    // Without a request id, then with the one a proxy set: kept, returned and logged.
    assert!(get("").contains("x-request-id: "));
    next(&["served", "/healthz"]);
    assert!(get("X-Request-Id: trace-me-7\r\n").contains("x-request-id: trace-me-7"));
    next(&["served", "/healthz", "trace-me-7"]);
    let _ = child.kill();
    let _ = child.wait();
    lines
}

/// With `LOG_FORMAT=json`, stdout carries one JSON object per line and nothing else (no colour
/// codes, no banner): the server's start is a log line with its address, and a request served
/// is one too, with its path.
#[test]
fn json_logs_are_one_object_per_line_and_nothing_else() {
    let lines = serve_and_log_one_request("json");
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| {
            assert!(!line.contains('\u{1b}'), "a colour code: {line:?}");
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line:?}"))
        })
        .collect();
    assert!(objects.iter().all(serde_json::Value::is_object));
    assert!(
        objects
            .iter()
            .any(|object| object["fields"]["message"] == "running"
                && object["fields"]["url"].is_string()),
        "{lines:?}"
    );
    let served = objects.last().unwrap();
    assert_eq!(served["fields"]["message"], "served", "{served}");
    assert_eq!(served["fields"]["status"], 200, "{served}");
    assert_eq!(served["span"]["path"], "/healthz", "{served}");
    assert_eq!(served["span"]["request_id"], "trace-me-7", "{served}");
    // The request without one got one of this process's.
    let made = objects
        .iter()
        .filter(|object| object["span"]["path"] == "/healthz")
        .find_map(|object| object["span"]["request_id"].as_str())
        .unwrap();
    assert!(
        made.len() > 9 && made.contains('-') && made != "trace-me-7",
        "{made}"
    );
}

/// Plain text for people, but no colour codes when stdout is not a terminal (journald, files).
#[test]
fn text_logs_carry_no_colour_codes_off_a_terminal() {
    let lines = serve_and_log_one_request("text");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("NDN sandbox is running")),
        "{lines:?}"
    );
    assert!(lines.last().unwrap().contains("served"), "{lines:?}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "a colour code: {line:?}");
    }
}
