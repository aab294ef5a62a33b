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

/// `server health`: GET /healthz of the running server; Ok only for a 200.
pub async fn health(url: Option<String>) -> anyhow::Result<()> {
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let addr = crate::config::site_addr_from_env()?;
            format!("http://{}", crate::config::loopback(addr))
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let answer = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .with_context(|| format!("no answer from {base}/healthz"))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{base}/healthz answered {status}: {body}");
    }
    println!("healthy: {base}/healthz answered {status}");
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
