// The migrations are embedded by `sqlx::migrate!`; a change to them must rebuild the server.
// `server --version` names the commit: `NDN_COMMIT` (set by scripts/release), else git's HEAD.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    println!("cargo:rerun-if-env-changed=NDN_COMMIT");
    let commit = std::env::var("NDN_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .or_else(|| {
            if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
                println!("cargo:rerun-if-changed={git_dir}/HEAD");
                println!("cargo:rerun-if-changed={git_dir}/logs/HEAD");
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=NDN_COMMIT={commit}");
}

fn git(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
