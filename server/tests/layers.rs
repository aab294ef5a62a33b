//! The house's layers, read from the source: the rules use nothing of the server, the store
//! only the rules' nouns, the ledger only the layers below it (handlers → ledger → contract →
//! store → rules), and each kind of row a change brings with it has one writer. (The compiler
//! keeps the door of the books itself: see `ledger::books`.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `folder`, with its code (comment lines left out).
fn files(folder: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let code: String = std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("//"))
                    .map(|line| format!("{line}\n"))
                    .collect();
                found.push((path, code));
            }
        }
    }
    assert!(!found.is_empty(), "no source under {}", folder.display());
    found
}

/// The modules `prefix` names in `folder`'s code (`crate::store::x` gives `store`), the folder's
/// own left out.
fn uses(folder: &Path, prefix: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (_, code) in files(folder) {
        for (at, _) in code.match_indices(prefix) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = code[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    used.remove(folder.file_name().unwrap().to_str().unwrap());
    used
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[test]
fn the_rules_use_nothing_of_the_server() {
    let rules = source().join("wallet");
    assert_eq!(uses(&rules, "crate::"), set(&[]));
    // The app crate's shared nouns (an order's state, a package, a language), no wire type.
    assert_eq!(uses(&rules, "app::"), set(&["api", "i18n"]));
}

#[test]
fn the_store_uses_only_the_rules_nouns() {
    let store = source().join("store");
    assert_eq!(uses(&store, "crate::"), set(&["clock", "wallet"]));
    assert_eq!(
        uses(&store, "app::"),
        set(&[]),
        "the store builds no UI type"
    );
}

#[test]
fn the_ledger_uses_only_the_layers_below_it() {
    // What follows a commit reaches the ledger as `AfterCommit`, given by whoever runs it.
    let ledger = source().join("ledger");
    assert_eq!(
        uses(&ledger, "crate::"),
        set(&["clock", "contract", "store", "wallet"])
    );
    let contract = source().join("contract");
    assert_eq!(uses(&contract, "crate::"), set(&["store", "wallet"]));
}

/// The files whose code contains `needle`, relative to `server/src`.
fn writers_of(needle: &str) -> Vec<String> {
    let root = source();
    let mut found: Vec<String> = files(&root)
        .into_iter()
        .filter(|(_, code)| code.contains(needle))
        .map(|(path, _)| {
            path.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    found
}

#[test]
fn balances_and_each_consequence_have_one_writer() {
    for (needle, writer) in [
        ("INSERT INTO transfers", "ledger/books/accounts.rs"),
        ("balance = users.balance +", "ledger/books/accounts.rs"),
        ("held = users.held +", "ledger/books/accounts.rs"),
        ("INSERT INTO outbox", "store/outbox.rs"),
        ("INSERT INTO events (", "store/events.rs"),
        ("pg_notify(", "store/broadcast.rs"),
        ("INSERT INTO live_relay", "store/broadcast.rs"),
    ] {
        assert_eq!(writers_of(needle), vec![writer.to_owned()], "{needle}");
    }
}
