//! `server migrate`, `server backup` and `server restore`: the database itself.
//!
//! SQLite is copied by the database (`VACUUM INTO`: one read transaction, so a snapshot of one
//! moment however many payments arrive meanwhile; a `cp` of a WAL database is not a backup).
//! PostgreSQL is dumped and restored by its own tools, `pg_dump` and `pg_restore`, which do the
//! same in one transaction; there is no point writing our own.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use sqlx::AssertSqlSafe;

use super::format_time;
use crate::config::DatabaseConfig;
use crate::store::{Engine, SchemaError, Store};

pub async fn migrate(database: &DatabaseConfig) -> anyhow::Result<()> {
    let store = Store::connect(&database.url, 2).await?;
    let applied = store.migrate_to_current().await?;
    let versions = store.schema_versions().await?;
    println!(
        "schema at version {}: {applied} migrations applied",
        versions.database
    );
    Ok(())
}

pub async fn backup(database: &DatabaseConfig, file: &Path) -> anyhow::Result<()> {
    if file.exists() {
        anyhow::bail!(
            "{} exists: a backup never overwrites a file",
            file.display()
        );
    }
    if let Some(folder) = file
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
    }
    let store = Store::connect(&database.url, 1).await?;
    let versions = store.schema_versions().await?;
    if versions.database == 0 {
        anyhow::bail!("the database is empty (no schema): nothing to back up");
    }
    let started = crate::clock::now_ms();
    match store.engine() {
        Engine::Sqlite => {
            let path = utf8(file)?;
            sqlx::query(AssertSqlSafe(format!(
                "VACUUM INTO '{}'",
                path.replace('\'', "''")
            )))
            .execute(store.pool())
            .await
            .context("VACUUM INTO")?;
            store.close().await;
            let copy = inspect_sqlite_file(file).await?;
            check_sqlite(&copy).await?;
            copy.close().await;
        }
        Engine::Postgres => {
            store.close().await;
            run_tool(
                "pg_dump",
                &[
                    "--format=custom",
                    "--no-owner",
                    "--file",
                    utf8(file)?,
                    "--dbname",
                    &database.url,
                ],
            )
            .await?;
        }
    }
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backup written to {}: {bytes} bytes, schema version {}, a snapshot as of {}",
        file.display(),
        versions.database,
        format_time(started)
    );
    Ok(())
}

pub async fn restore(database: &DatabaseConfig, file: &Path, replace: bool) -> anyhow::Result<()> {
    if !file.is_file() {
        anyhow::bail!("{} is not a file", file.display());
    }
    if database.url.starts_with("sqlite:") {
        restore_sqlite(database, file, replace).await
    } else {
        restore_postgres(database, file).await
    }
}

async fn restore_sqlite(
    database: &DatabaseConfig,
    file: &Path,
    replace: bool,
) -> anyhow::Result<()> {
    let backup = inspect_sqlite_file(file)
        .await
        .with_context(|| format!("{} is not a SQLite database", file.display()))?;
    check_sqlite(&backup).await?;
    let versions = backup.schema_versions().await?;
    backup.close().await;
    if versions.database > versions.binary {
        return Err(SchemaError::Newer {
            database: versions.database,
            binary: versions.binary,
        }
        .into());
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&database.url)?;
    let target = options.get_filename().to_path_buf();
    let exists = std::fs::metadata(&target).is_ok_and(|meta| meta.len() > 0);
    let mut kept = None;
    if exists {
        if !replace {
            anyhow::bail!(
                "{} exists: stop the server, then `server restore --replace {}` (the current \
                 database is kept beside it)",
                target.display(),
                file.display()
            );
        }
        // The database with its WAL and shared memory, moved aside together: a WAL left beside
        // the restored file would be replayed into it.
        let aside = suffixed(&target, &format!(".replaced-{}", crate::clock::now_ms()));
        for suffix in ["", "-wal", "-shm"] {
            let from = suffixed(&target, suffix);
            if from.exists() {
                std::fs::rename(&from, suffixed(&aside, suffix))
                    .with_context(|| format!("cannot move {} aside", from.display()))?;
            }
        }
        kept = Some(aside);
    } else {
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(suffixed(&target, suffix));
        }
        if let Some(folder) = target.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)?;
        }
    }
    // Copied under another name, synced, then renamed: the database is whole or absent.
    let partial = suffixed(&target, ".restoring");
    std::fs::copy(file, &partial).with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &target)?;
    println!(
        "restored {} to {} (schema version {}){}",
        file.display(),
        target.display(),
        versions.database,
        kept.map_or(String::new(), |aside| format!(
            "; the database it replaced is at {}",
            aside.display()
        ))
    );
    if versions.database < versions.binary {
        println!("run `server migrate` (or `server serve`) to bring it to this binary's schema");
    }
    Ok(())
}

async fn restore_postgres(database: &DatabaseConfig, file: &Path) -> anyhow::Result<()> {
    let store = Store::connect(&database.url, 1).await?;
    if store.schema_versions().await?.database != 0 {
        anyhow::bail!(
            "the database of DATABASE_URL is not empty: restore into a new one (createdb), then \
             point DATABASE_URL at it"
        );
    }
    store.close().await;
    run_tool(
        "pg_restore",
        &[
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            "--dbname",
            &database.url,
            utf8(file)?,
        ],
    )
    .await?;
    let store = Store::connect(&database.url, 1).await?;
    let versions = store.schema_versions().await?;
    store.close().await;
    println!(
        "restored {} into DATABASE_URL's database (schema version {})",
        file.display(),
        versions.database
    );
    if versions.database > versions.binary {
        return Err(SchemaError::Newer {
            database: versions.database,
            binary: versions.binary,
        }
        .into());
    }
    Ok(())
}

/// A SQLite file by path, read-only, as it is.
async fn inspect_sqlite_file(path: &Path) -> anyhow::Result<Store> {
    Ok(Store::inspect(&format!("sqlite://{}?mode=ro", utf8(path)?)).await?)
}

/// SQLite's own check of every page and index.
async fn check_sqlite(store: &Store) -> anyhow::Result<()> {
    let (answer,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(store.pool())
        .await?;
    if answer != "ok" {
        anyhow::bail!("the copy fails SQLite's integrity check: {answer}");
    }
    Ok(())
}

/// Runs PostgreSQL's `tool`; its own error output goes to ours.
async fn run_tool(tool: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = tokio::process::Command::new(tool)
        .args(args)
        .status()
        .await
        .with_context(|| format!("cannot run {tool}: is PostgreSQL's client on PATH?"))?;
    if !status.success() {
        anyhow::bail!("{tool} failed ({status})");
    }
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn utf8(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
