//! `server keys`: the service API's keys.

use clap::Subcommand;

use super::format_time;
use crate::keys::table::KeyStore;
use crate::keys::{self, Scope};
use crate::store::Store;

#[derive(Subcommand)]
pub enum KeysAction {
    /// Make a key and print it, once (only its hash is kept).
    Create {
        /// A name for the service that will use it (revoke by it).
        #[arg(long)]
        name: String,
        /// What it may do: read (balances, statements), spend (debits, holds), grant (credits).
        #[arg(long, default_value = "read")]
        scopes: String,
    },
    /// The keys: name, scopes, when created and last used, revoked or not (never the key).
    List,
    /// Revoke the active key of this name: running servers refuse it within 2 s (the console's
    /// Revoke holds at once on the instance that serves it).
    Revoke { name: String },
}

pub async fn run(action: KeysAction, store: &Store) -> anyhow::Result<()> {
    match action {
        KeysAction::Create { name, scopes } => {
            let scopes = Scope::parse_list(&scopes).map_err(|problem| anyhow::anyhow!(problem))?;
            let key = keys::create(store, &name, &scopes)
                .await
                .map_err(|problem| anyhow::anyhow!(problem))?;
            println!("{key}");
            eprintln!("key `{name}` created; it is shown this once, store it as a secret");
        }
        KeysAction::List => {
            let listed = KeyStore::new(store).list().await?;
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
