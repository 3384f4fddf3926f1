//! The billing binary: parses the configuration, sets up logging and serves until SIGTERM or
//! Ctrl-C. Everything else lives in the library.

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = billing::Config::parse();
    billing::telemetry::init(config.log_format);
    let listener = TcpListener::bind(config.bind_address)
        .await
        .with_context(|| format!("bind {}", config.bind_address))?;
    billing::serve(config, listener, shutdown_signal())
        .await
        .context("billing failed")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received");
}
