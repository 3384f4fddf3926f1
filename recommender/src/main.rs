//! The recommender binary: reads its configuration, starts the consumer and the probe server,
//! and stops both on SIGTERM or SIGINT.
//!
//! `recommender --help` lists every flag; each can also be set from the environment
//! (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `CARBON_URL`, `AMQP_URL`, `THRESHOLDS_FILE`, ...).

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use recommender::{Config, Metrics, Recommender, health, telemetry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format)?;
    recommender::install_crypto_provider();
    let thresholds = config.load_thresholds().context("cannot load thresholds")?;

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let metrics = Arc::new(Metrics::new());
    let recommender = Recommender::start(&config, thresholds, metrics)
        .await
        .context("cannot start the recommender")?;
    let listener = TcpListener::bind(config.metrics_address)
        .await
        .with_context(|| format!("cannot listen on {}", config.metrics_address))?;
    tracing::info!(address = %config.metrics_address, "probes listening");

    // Both tasks are vital: when either ends, the other is told to stop and awaited.
    let mut probes = tokio::spawn(health::serve(
        listener,
        recommender.probes(),
        shutdown.clone(),
    ));
    let mut consumer = tokio::spawn(recommender.run(shutdown.clone()));
    let (consumed, served) = tokio::select! {
        consumed = &mut consumer => {
            shutdown.cancel();
            (consumed, probes.await)
        }
        served = &mut probes => {
            shutdown.cancel();
            (consumer.await, served)
        }
    };
    served
        .context("probe server panicked")?
        .context("probe server failed")?;
    consumed
        .context("consumer panicked")?
        .context("consumer failed")?;
    Ok(())
}

/// Cancels `shutdown` on SIGTERM (how Kubernetes stops a pod) or SIGINT (Ctrl-C).
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};

    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!(error = %err, "cannot listen for signals; stopping");
            shutdown.cancel();
            return;
        }
    };
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "shutdown signal received");
    shutdown.cancel();
}
