//! `server keys`: the service API's keys.

use clap::Subcommand;

use super::format_time;
use crate::keys::table::KeyStore;
use crate::keys::{self, Scope};
use crate::store::Store;

#[derive(Subcommand)]
pub enum KeysAction {
    /// Make a key and print it, once (only its hash is kept).
    #[command(after_help = concat!(reads_database!(), "Examples:
  server keys create --name game-server --scopes read,spend
  server keys create --name rewards --scopes grant"))]
    Create {
        /// A name for the service that will use it (revoke by it).
        #[arg(long)]
        name: String,
        /// What it may do, comma-separated: read (balances, statements), spend (debits,
        /// holds), grant (credits).
        #[arg(
            long,
            value_delimiter = ',',
            value_parser = ["read", "spend", "grant"],
            default_value = "read"
        )]
        scopes: Vec<String>,
    },
    /// The keys: name, scopes, when created and last used, revoked or not (never the key).
    #[command(after_help = concat!(reads_database!(), "Examples:
  server keys list
  server keys list --json | jq '.[] | select(.revoked_at == null) | .name'"))]
    List {
        /// One JSON array (times in Unix milliseconds) instead of lines for people.
        #[arg(long)]
        json: bool,
    },
    /// Revoke the active key of this name: running servers refuse it within 2 s (the console's
    /// Revoke holds at once on the instance that serves it).
    #[command(after_help = concat!(reads_database!(), "Example:
  server keys revoke game-server"))]
    Revoke { name: String },
}

pub async fn run(action: KeysAction, store: &Store) -> anyhow::Result<()> {
    match action {
        KeysAction::Create { name, scopes } => {
            let scopes =
                Scope::parse_list(&scopes.join(",")).map_err(|problem| anyhow::anyhow!(problem))?;
            let key = keys::create(store, &name, &scopes)
                .await
                .map_err(|problem| anyhow::anyhow!(problem))?;
            println!("{key}");
            eprintln!("key `{name}` created; it is shown this once, store it as a secret");
        }
        KeysAction::List { json } => {
            let listed = KeyStore::new(store).list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
                return Ok(());
            }
            if listed.is_empty() {
                println!("no keys: `server keys create --name NAME --scopes read,spend`");
            }
            for key in listed {
                let when = |ms: Option<i64>| ms.map_or("never".to_owned(), format_time);
                println!(
                    "{:<24} {:<18} created {}  last used {}{}",
                    key.name,
                    key.scopes,
                    format_time(key.created_at),
                    when(key.last_used_at),
                    key.revoked_at
                        .map_or(String::new(), |at| format!("  REVOKED {}", format_time(at))),
                );
            }
        }
        KeysAction::Revoke { name } => {
            if !KeyStore::new(store)
                .revoke(&name, crate::clock::now_ms())
                .await?
            {
                anyhow::bail!("no active key named `{name}`");
            }
            println!("key `{name}` revoked");
        }
    }
    Ok(())
}
