//! The `server` program: see `server::cli` for its commands.

/// The static (musl) release's allocator: see `server/Cargo.toml`.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::cli::main().await
}
