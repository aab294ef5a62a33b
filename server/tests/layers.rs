//! The house's layers, read from the source: no folder reaches back into one that uses it (no
//! cycle), the rules use nothing of the server, the store only the rules' nouns, the ledger only
//! the layers below it (handlers → ledger → contract → store → rules), what every handler shares
//! (`state.rs`) no handler, and each kind of row a change brings with it has one writer. (The
//! compiler keeps the door of the books itself: see `ledger::books`.)

use std::collections::{BTreeMap, BTreeSet};
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
    // The app crate's shared nouns (an order's state, a package, a language, a buyer's id),
    // no wire type.
    assert_eq!(uses(&rules, "app::"), set(&["api", "i18n", "ids"]));
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

/// Every top-level module of `server/src` but `lib.rs` and `main.rs` (which assemble it all),
/// with the modules its code names.
fn folders() -> BTreeMap<String, BTreeSet<String>> {
    let root = source();
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let used = if path.is_dir() {
            uses(&path, "crate::")
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let code = std::fs::read_to_string(&path).unwrap();
            let mut used = BTreeSet::new();
            for (at, _) in code.match_indices("crate::") {
                let name: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                used.insert(name);
            }
            used.remove(&name);
            used
        } else {
            continue;
        };
        graph.insert(name, used);
    }
    // Only modules count (not items of the crate's root, such as `crate::start`).
    let names: BTreeSet<String> = graph.keys().cloned().collect();
    for used in graph.values_mut() {
        used.retain(|name| names.contains(name));
    }
    graph
}

/// A path that comes back to where it started, if the graph has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|seen| seen == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_folder_reaches_back_into_one_that_uses_it() {
    let graph = folders();
    assert!(graph.len() > 15, "modules found: {:?}", graph.keys());
    assert_eq!(cycle(&graph), None, "an import cycle between folders");
    // The check itself finds a cycle when there is one.
    let mut broken = graph.clone();
    broken.get_mut("wallet").unwrap().insert("api".into());
    assert!(cycle(&broken).is_some());
}

#[test]
fn what_every_handler_shares_names_no_handler() {
    let graph = folders();
    // `state.rs` holds the services below the handlers; the router and the start (`http/`,
    // `lib.rs`) put the handlers together above it.
    assert_eq!(
        graph["state"],
        set(&[
            "config",
            "keys",
            "ledger",
            "live",
            "store",
            "telegram",
            "telemetry"
        ])
    );
    // Telegram's language (the client) knows no handler; the bot's handlers are in `bot/`.
    assert_eq!(graph["telegram"], set(&["clock", "telemetry", "wallet"]));
    assert_eq!(graph["telemetry"], set(&[]));
    assert_eq!(graph["config"], set(&["wallet"]));
}
