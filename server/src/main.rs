//! The `server` program: see `server::cli` for its commands.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    server::cli::main().await
}
