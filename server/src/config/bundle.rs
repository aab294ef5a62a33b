//! The build's file names under `/pkg/` (cargo-leptos' hash file), read once at the start: the
//! pages name them, and `mini_app/assets.rs` serves exactly them.

use std::path::{Path, PathBuf};

/// The current build's file names under `/pkg/`.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Where the files are.
    pub dir: PathBuf,
    pub js: String,
    pub wasm: String,
    pub css: String,
    /// Lazily loaded parts (`cargo leptos build --split`): the split loader, its manifest and
    /// the WebAssembly chunks it names (the operator console).
    pub chunks: Vec<String>,
    /// Whether the names carry a content hash (a build with `hash-files`).
    pub hashed: bool,
}

impl Bundle {
    /// The names in `hash_file` (`js: …`, `wasm: …`, `css: …`, as cargo-leptos writes it), or
    /// the plain names when there is none (a build without hashing, or no build: tests).
    pub fn load(pkg_dir: &Path, output_name: &str, hash_file: &Path) -> Self {
        let plain = Self {
            dir: pkg_dir.to_owned(),
            js: format!("{output_name}.js"),
            wasm: format!("{output_name}.wasm"),
            css: format!("{output_name}.css"),
            chunks: Vec::new(),
            hashed: false,
        };
        let Ok(text) = std::fs::read_to_string(hash_file) else {
            return plain;
        };
        let hash_of = |kind: &str| {
            text.lines().find_map(|line| {
                let (name, hash) = line.split_once(':')?;
                (name.trim() == kind && !hash.trim().is_empty()).then(|| hash.trim().to_owned())
            })
        };
        match (hash_of("js"), hash_of("wasm"), hash_of("css")) {
            (Some(js), Some(wasm), Some(css)) => Self {
                dir: pkg_dir.to_owned(),
                js: format!("{output_name}.{js}.js"),
                wasm: format!("{output_name}.{wasm}.wasm"),
                css: format!("{output_name}.{css}.css"),
                chunks: split_files(pkg_dir, hash_of("split"), hash_of("manifest")),
                hashed: true,
            },
            _ => {
                tracing::warn!(file = %hash_file.display(), "the hash file does not name js, wasm and css; serving plain names");
                plain
            }
        }
    }

    /// The files' addresses, for the pages.
    pub fn stylesheet(&self) -> String {
        format!("/pkg/{}", self.css)
    }

    pub fn script(&self) -> String {
        format!("/pkg/{}", self.js)
    }

    pub fn wasm(&self) -> String {
        format!("/pkg/{}", self.wasm)
    }

    /// Whether `name` is one of this build's files.
    pub fn is_current(&self, name: &str) -> bool {
        name == self.js
            || name == self.wasm
            || name == self.css
            || self.chunks.iter().any(|c| c == name)
    }
}

/// The split loader, its manifest, and every chunk the manifest names (`{ "split point":
/// ["chunk stem", …] }`, each chunk a `.wasm`); none without a split build.
fn split_files(pkg_dir: &Path, split: Option<String>, manifest: Option<String>) -> Vec<String> {
    let (Some(split), Some(manifest)) = (split, manifest) else {
        return Vec::new();
    };
    let manifest = format!("__wasm_split_manifest.{manifest}.json");
    let stems: std::collections::HashMap<String, Vec<String>> = match std::fs::read_to_string(
        pkg_dir.join(&manifest),
    )
    .map_err(|error| error.to_string())
    .and_then(|text| serde_json::from_str(&text).map_err(|error| error.to_string()))
    {
        Ok(stems) => stems,
        Err(error) => {
            tracing::warn!(%error, manifest, "cannot read the split manifest; lazy parts will 404");
            return Vec::new();
        }
    };
    let mut files = vec![format!("__wasm_split.{split}.js"), manifest];
    files.extend(
        stems
            .into_values()
            .flatten()
            .map(|stem| format!("{stem}.wasm")),
    );
    files.sort();
    files.dedup();
    files
}

/// `site/` beside this program, when it has the build's `pkg/` (the release's layout).
pub fn site_beside_the_binary() -> Option<std::path::PathBuf> {
    let site = std::env::current_exe().ok()?.parent()?.join("site");
    site.join("pkg").is_dir().then_some(site)
}

/// The build's file names: hashed when cargo-leptos wrote its hash file (beside this program, or
/// at `hash_file`), plain otherwise.
pub fn locate(
    leptos: &leptos::config::LeptosOptions,
    hash_file: Option<&std::path::Path>,
) -> Bundle {
    let path = hash_file.map_or_else(
        || std::path::PathBuf::from(leptos.hash_file.as_ref()),
        std::path::Path::to_owned,
    );
    let path = if path.is_absolute() {
        path
    } else {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(&path)))
            .unwrap_or(path)
    };
    let pkg = std::path::Path::new(leptos.site_root.as_ref()).join(leptos.site_pkg_dir.as_ref());
    let bundle = Bundle::load(&pkg, &leptos.output_name, &path);
    if pkg.exists() && !pkg.join(&bundle.wasm).exists() {
        if bundle.hashed {
            tracing::warn!(hash_file = %path.display(), site = %pkg.display(), "the hash file names files the site does not have: was the site built with this server?");
        } else {
            tracing::warn!(hash_file = %path.display(), site = %pkg.display(), "no hash file, and the site has no {}: copy the build's hash.txt beside the server (or set LEPTOS_HASH_FILE_NAME)", bundle.wasm);
        }
    }
    bundle
}
