//! `server serve` (the default): the server until a signal stops it.

use anyhow::Context;

use crate::config::{Config, LogFormat, Mode};

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.http.site_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.site_addr))?;
    let (mode, logs) = (config.mode, config.logs);
    let mut running = crate::start(config, listener).await?;
    let url = format!("http://{}/", crate::config::loopback(running.addr));
    match (mode, logs) {
        // With JSON logs, stdout carries nothing but JSON: the address is a log line too.
        (_, LogFormat::Json) => tracing::info!(url, sandbox = mode == Mode::Sandbox, "running"),
        (Mode::Sandbox, LogFormat::Text) => {
            println!("NDN sandbox is running (NDN_SANDBOX=1): open {url}sandbox")
        }
        (Mode::Production, LogFormat::Text) => println!("NDN is running on {url}"),
    }
    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down: finishing in-flight requests");
            running.stop().await;
        }
        () = running.wait() => anyhow::bail!("the HTTP server stopped unexpectedly"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
