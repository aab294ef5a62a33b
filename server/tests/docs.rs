//! The docs stay true to the code: every environment variable the server reads is in
//! `docs/configuration.md`, no relative link in the docs is broken, and the README stays a front
//! door (at most 200 lines).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rust_files(folder: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

/// `NAME` in `"NAME"` right after `opening` (e.g. `env::var(`), wherever it is.
fn names_after(text: &str, opening: &str, into: &mut BTreeSet<String>) {
    for (at, _) in text.match_indices(opening) {
        let rest = text[at + opening.len()..].trim_start();
        if let Some(rest) = rest.strip_prefix('"')
            && let Some(end) = rest.find('"')
        {
            into.insert(rest[..end].to_owned());
        }
    }
}

/// An environment variable's name: upper case, digits and underscores.
fn is_variable_name(text: &str) -> bool {
    text.len() > 2
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// What the server reads from its environment: the names read through the configuration's
/// `Vars` (every upper-case string in `config/`, its tests aside), the ones read directly
/// (`env::var`, `var_os`, `option_env!`), and those libraries read for it.
fn variables_read() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("server/src"), &mut files);
    rust_files(&root().join("app/src"), &mut files);
    let mut names = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // A module's tests name variables to test them, not because the server reads them.
        let text = text.split("#[cfg(test)]").next().unwrap();
        for opening in ["env::var(", "env::var_os(", "option_env!("] {
            names_after(text, opening, &mut names);
        }
        let in_config = file.components().any(|part| part.as_os_str() == "config")
            && !file.ends_with("tests.rs");
        if in_config {
            for literal in text.split('"').skip(1).step_by(2) {
                if is_variable_name(literal) {
                    names.insert(literal.to_owned());
                }
            }
        }
    }
    // Read by libraries: tracing's filter, and Leptos' environment.
    names.extend(["RUST_LOG", "LEPTOS_ENV"].map(String::from));
    // Compile time only, set by cargo.
    names.retain(|name| !name.starts_with("CARGO_"));
    names
}

#[test]
fn every_variable_the_code_reads_is_documented() {
    let names = variables_read();
    // The extraction itself works: these are certainly read.
    for known in [
        "TELEGRAM_BOT_TOKEN",
        "DATABASE_URL",
        "PUBLIC_URL",
        "LOG_FORMAT",
        "EVENTS_RETENTION_DAYS",
        "LEPTOS_OUTPUT_NAME",
    ] {
        assert!(
            names.contains(known),
            "{known} not found in the code: {names:?}"
        );
    }
    let documented = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !documented.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "read by the code but not in docs/configuration.md: {missing:?}"
    );
}

/// The docs a person reads: the README, the changelog and everything in `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("CHANGELOG.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "md") {
            files.push(path);
        }
    }
    files
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The targets of `[text](target)` links outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut found = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            if let Some(end) = rest.find(')') {
                found.push(rest[..end].to_owned());
            }
        }
    }
    found
}

#[test]
fn no_relative_link_in_the_docs_is_broken() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for target in links(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            checked += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !linked.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
            } else if !fragment.is_empty() {
                let headings = anchors(&std::fs::read_to_string(&linked).unwrap());
                if !headings.contains(fragment) {
                    broken.push(format!("{}: {target} (no such heading)", file.display()));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser right?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_a_front_door() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines <= 200, "README.md has {lines} lines");
    // It starts with the two commands, and links every reference page.
    let two = readme.find("## Two commands").expect("the two commands");
    assert!(two < readme.find("## Going live").expect("going live"));
    for page in [
        "deploy",
        "operate",
        "configuration",
        "api",
        "events",
        "sandbox",
        "benchmarks",
        "code-map",
    ] {
        assert!(
            readme.contains(&format!("](docs/{page}.md)")),
            "README.md does not link docs/{page}.md"
        );
    }
}

#[test]
fn the_anchor_rule_is_githubs() {
    assert_eq!(
        anchor(" TLS in front: Caddy or nginx"),
        "tls-in-front-caddy-or-nginx"
    );
    assert_eq!(anchor(" Upgrades and rollbacks"), "upgrades-and-rollbacks");
    assert_eq!(
        anchor(" Service API (`/v1`, for the operator's other services)"),
        "service-api-v1-for-the-operators-other-services"
    );
}
