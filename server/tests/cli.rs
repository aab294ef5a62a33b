//! The command line an operator uses without the README: only `serve` and `migrate` change the
//! schema, nothing runs on a schema newer than it knows, commands that need only the database
//! ask for nothing else, list commands speak JSON, every command's help shows an example and
//! the variables it reads, and the exit codes say what happened.

mod support;

use std::borrow::Cow;
use std::path::Path;

use server::store::{Engine, Store};
use sqlx::AssertSqlSafe;
use sqlx::migrate::Migrator;
use support::*;

on_both_databases!(
    an_older_schema_is_migrated_only_by_migrate_and_serve,
    a_newer_schema_is_refused_by_every_command,
    database_commands_need_nothing_but_the_database,
);

/// An environment variable: name and value.
type Var<'a> = (&'a str, &'a str);

/// Runs the binary with only `vars` (no `.env` can interfere); its exit code and output.
async fn run(args: &[&str], vars: &[(&str, &str)]) -> (i32, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true);
    for (key, value) in vars {
        command.env(key, value);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("the command ends within a minute")
        .expect("the server binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn as_vars(vars: &std::collections::HashMap<String, String>) -> Vec<Var<'_>> {
    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The schema's last migration, read directly.
async fn schema_version(store: &Store) -> i64 {
    scalar(store, "SELECT MAX(version) FROM _sqlx_migrations").await
}

fn engine_folder(store: &Store) -> &'static str {
    match store.engine() {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    }
}

/// The migrations this binary carries.
async fn migrations(store: &Store) -> Migrator {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(engine_folder(store));
    Migrator::new(folder.as_path()).await.unwrap()
}

/// The commands that only read or change rows, as an operator types them.
const ROW_COMMANDS: [&[&str]; 6] = [
    &["keys", "list"],
    &["events", "list"],
    &["endpoints", "list"],
    &["ledger", "verify"],
    &["export", "--from", "2026-12-01", "--to", "2026-12-31"],
    &["keys", "create", "--name", "shop"],
];

/// A database left by the previous release (every migration but the last), then this release's
/// commands: the ones that read refuse with one line naming both versions and change nothing;
/// `serve --no-migrate` refuses too; `migrate` brings it up, and then they run.
async fn an_older_schema_is_migrated_only_by_migrate_and_serve(database: Database) {
    let store = Store::connect(&database.url, 2).await.unwrap();
    let mut previous = migrations(&store).await;
    let last = previous.iter().map(|m| m.version).max().unwrap();
    previous.migrations = Cow::Owned(
        previous
            .migrations
            .iter()
            .filter(|migration| migration.version < last)
            .cloned()
            .collect(),
    );
    previous.run(store.pool()).await.unwrap();
    let vars = [("DATABASE_URL", database.url.as_str())];
    for command in ROW_COMMANDS {
        let (code, output) = run(command, &vars).await;
        assert_eq!(code, 2, "{command:?}: {output}");
        assert!(
            output.contains(&format!(
                "schema is at version {} and this binary's is {last}",
                last - 1
            )) && output.contains("server migrate"),
            "{command:?}: {output}"
        );
        assert_eq!(output.trim().lines().count(), 1, "{output}");
        assert_eq!(
            schema_version(&store).await,
            last - 1,
            "{command:?} migrated"
        );
    }
    let (telegram, telegram_url) = serve_fake_telegram().await;
    let production = production_vars(&database.url, &telegram_url);
    let production = as_vars(&production);
    let (code, output) = run(&["serve", "--no-migrate"], &production).await;
    assert_eq!(code, 2, "{output}");
    assert_eq!(schema_version(&store).await, last - 1);
    assert!(telegram.sent_messages().is_empty());

    let (code, output) = run(&["migrate"], &vars).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains(&format!("schema at version {last}: 1 migrations applied")),
        "{output}"
    );
    assert_eq!(schema_version(&store).await, last);
    for command in ROW_COMMANDS {
        let (code, output) = run(command, &vars).await;
        assert_eq!(code, 0, "{command:?}: {output}");
    }
}

/// A database a newer release migrated (a rollback without the restore): every command
/// refuses it with exit code 2 and one line naming both versions, `serve` and `migrate` too,
/// and nothing in it changes.
async fn a_newer_schema_is_refused_by_every_command(database: Database) {
    let store = Store::connect(&database.url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let known = schema_version(&store).await;
    let newer = known + 1;
    let blob = match store.engine() {
        Engine::Sqlite => "x'00'",
        Engine::Postgres => "'\\x00'::bytea",
    };
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ({newer}, 'from a newer release', TRUE, {blob}, 0)"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let vars = [("DATABASE_URL", database.url.as_str())];
    let (telegram, telegram_url) = serve_fake_telegram().await;
    let production = production_vars(&database.url, &telegram_url);
    let production = as_vars(&production);
    let mut commands: Vec<(&[&str], &[Var])> = ROW_COMMANDS
        .iter()
        .map(|command| (*command, &vars[..]))
        .collect();
    commands.push((&["migrate"], &vars));
    commands.push((&["serve"], &production));
    commands.push((&["reconcile"], &production));
    for (command, vars) in commands {
        let (code, output) = run(command, vars).await;
        assert_eq!(code, 2, "{command:?}: {output}");
        assert!(
            output.contains(&format!(
                "schema is at version {newer}, newer than this binary knows ({known})"
            )),
            "{command:?}: {output}"
        );
        assert_eq!(output.trim().lines().count(), 1, "{output}");
    }
    assert_eq!(schema_version(&store).await, newer);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM api_keys").await, 0);
    assert!(telegram.sent_messages().is_empty());
}

/// With only `DATABASE_URL` set (no token, no sandbox, no URL), the database's commands run;
/// the ones that talk to Telegram say what is missing (exit 3). Their lists speak JSON.
async fn database_commands_need_nothing_but_the_database(database: Database) {
    let vars = [
        ("DATABASE_URL", database.url.as_str()),
        ("ENDPOINTS_ALLOW_PRIVATE", "true"),
    ];
    let (code, output) = run(&["migrate"], &vars).await;
    assert_eq!(code, 0, "{output}");
    let (code, output) = run(
        &["keys", "create", "--name", "game", "--scopes", "read,spend"],
        &vars,
    )
    .await;
    assert_eq!(code, 0, "{output}");
    let key = output.lines().next().unwrap().to_owned();
    let (code, output) = run(
        &[
            "endpoints",
            "add",
            "http://127.0.0.1:9/events",
            "--events",
            "payment.credited,payment.refunded",
        ],
        &vars,
    )
    .await;
    assert_eq!(code, 0, "{output}");

    let (code, output) = run(&["keys", "list", "--json"], &vars).await;
    assert_eq!(code, 0, "{output}");
    let keys: serde_json::Value = serde_json::from_str(&output).expect(&output);
    assert_eq!(keys[0]["name"], "game", "{keys}");
    assert_eq!(keys[0]["scopes"], "read,spend", "{keys}");
    assert!(keys[0]["created_at"].is_i64(), "{keys}");
    assert!(keys[0]["revoked_at"].is_null(), "{keys}");
    assert!(!output.contains(&key), "the key itself is never listed");

    let (code, output) = run(&["endpoints", "list", "--json"], &vars).await;
    assert_eq!(code, 0, "{output}");
    let endpoints: serde_json::Value = serde_json::from_str(&output).expect(&output);
    assert_eq!(endpoints[0]["url"], "http://127.0.0.1:9/events");
    assert_eq!(
        endpoints[0]["events"],
        serde_json::json!(["payment.credited", "payment.refunded"])
    );
    assert_eq!(endpoints[0]["pending"], 0);

    let (code, output) = run(&["events", "list", "--json"], &vars).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&output).expect(&output),
        serde_json::json!([])
    );
    let (code, output) = run(&["ledger", "verify"], &vars).await;
    assert_eq!(code, 0, "{output}");

    for command in [&["webhook", "info"][..], &["reconcile"], &["serve"]] {
        let (code, output) = run(command, &vars).await;
        assert_eq!(code, 3, "{command:?}: {output}");
        assert!(
            output.starts_with("configuration error: TELEGRAM_BOT_TOKEN: is not set"),
            "{output}"
        );
    }
}

/// 0 ok, 2 a wrong command line, 3 an invalid configuration, whatever the command (4, for
/// `ledger verify`'s discrepancies, is in `ledger_verify.rs`).
#[tokio::test]
async fn exit_codes_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ndn.db", dir.path().display());
    let vars = [("DATABASE_URL", url.as_str())];
    assert_eq!(run(&["migrate"], &vars).await.0, 0);
    for wrong in [
        &["keys", "nope"][..],
        &["keys", "create"],
        &["keys", "create", "--name", "x", "--scopes", "read,admin"],
        &[
            "export",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-01",
            "--format",
            "xlsx",
        ],
        &[
            "endpoints",
            "add",
            "https://x.example",
            "--events",
            "payment.lost",
        ],
    ] {
        let (code, output) = run(wrong, &vars).await;
        assert_eq!(code, 2, "{wrong:?}: {output}");
    }
    let (code, output) = run(
        &["keys", "list"],
        &[("DATABASE_URL", url.as_str()), ("LOG_FORMAT", "xml")],
    )
    .await;
    assert_eq!(code, 3, "{output}");
    assert!(
        output.starts_with("configuration error: LOG_FORMAT:"),
        "{output}"
    );
    let (code, output) = run(&["keys", "revoke", "nobody"], &vars).await;
    assert_eq!(code, 1, "{output}");
}

/// Each command's `--help` shows an example and the variables it reads; the top one lists the
/// exit codes; `--version` names the commit.
#[tokio::test]
async fn every_command_explains_itself() {
    let (_, top) = run(&["--help"], &[]).await;
    assert!(
        top.contains("Exit codes: 0 ok, 1 failure, 2 refused"),
        "{top}"
    );
    let mut commands: Vec<Vec<String>> = Vec::new();
    for line in top
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
    {
        let Some(name) = line.split_whitespace().next() else {
            break;
        };
        if name != "help" {
            commands.push(vec![name.to_owned()]);
        }
    }
    assert!(commands.len() >= 13, "{commands:?}");
    // Leaf commands: a group's subcommands replace it.
    let mut leaves = Vec::new();
    while let Some(command) = commands.pop() {
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let (code, help) = run(&[&args[..], &["--help"]].concat(), &[]).await;
        assert_eq!(code, 0, "{args:?}: {help}");
        if help.contains("\nCommands:") {
            for line in help
                .lines()
                .skip_while(|l| !l.starts_with("Commands:"))
                .skip(1)
            {
                match line.split_whitespace().next() {
                    Some("help") => {}
                    Some(name) => commands.push([command.clone(), vec![name.to_owned()]].concat()),
                    None => break,
                }
            }
        } else {
            leaves.push((command, help));
        }
    }
    assert!(leaves.len() >= 22, "{}", leaves.len());
    for (command, help) in &leaves {
        assert!(
            help.contains("Example"),
            "no example in {command:?}: {help}"
        );
        assert!(
            help.contains(&format!("server {}", command.join(" "))),
            "the example of {command:?} is not of it: {help}"
        );
        assert!(
            help.contains("Reads ")
                && ["DATABASE_URL", "TELEGRAM_BOT_TOKEN", "LEPTOS_SITE_ADDR"]
                    .iter()
                    .any(|variable| help.contains(variable)),
            "{command:?} does not say what it reads: {help}"
        );
    }
    let (code, version) = run(&["--version"], &[]).await;
    assert_eq!(code, 0);
    assert!(
        version.starts_with(&format!("server {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
}

/// `server health` says whether the server at its address answers `/healthz`: 0 or 1.
#[tokio::test]
async fn health_asks_the_running_server() {
    let app = TestApp::spawn(Database::sqlite()).await;
    let (code, output) = run(&["health", "--url", &app.base], &[]).await;
    assert_eq!(code, 0, "{output}");
    let addr = app.base.trim_start_matches("http://");
    let (code, output) = run(&["health"], &[("LEPTOS_SITE_ADDR", addr)]).await;
    assert_eq!(code, 0, "{output}");
    app.server.stop().await;
    let (code, output) = run(&["health"], &[("LEPTOS_SITE_ADDR", addr)]).await;
    assert_eq!(code, 1, "{output}");
}
