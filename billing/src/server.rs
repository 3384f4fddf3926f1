//! Wiring: connects PostgreSQL and Kafka, runs migrations, starts the outbox relay and serves
//! the API until shutdown.
//!
//! Shutdown: the caller's signal stops accepting connections and lets in-flight requests finish
//! (bounded by the grace period); the relay stops after its current pass. Rows it did not mark
//! sent stay in the outbox for the next start. The relay is vital: if it fails, serving stops
//! and the error is returned, so an orchestrator restarts the process.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::alerts::{AlertConsumer, AlertHub};
use crate::config::Config;
use crate::domain::ReadingRules;
use crate::http::{self, AppState, HttpLimits};
use crate::metrics::Metrics;
use crate::relay::{self, RelayError, RelaySettings};
use crate::store::{self, GroupCommit, GroupSettings};

/// Why billing stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database URL could not be used.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The outbox relay failed.
    #[error("outbox relay: {0}")]
    Relay(#[from] RelayError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
    /// The relay task panicked or was cancelled.
    #[error("outbox relay task ended unexpectedly: {0}")]
    RelayTask(#[from] tokio::task::JoinError),
}

/// Runs billing on `listener` until `shutdown` completes.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    crate::install_crypto_provider();
    // Planned on every execution: the outbox starts empty and grows, and a generic plan cached
    // while it was small would keep scanning all of it for the relay's updates.
    let options = PgConnectOptions::from_str(&config.database_url)?
        .options([("plan_cache_mode", "force_custom_plan")]);
    let pool = PgPoolOptions::new()
        .max_connections(config.database_pool_size)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options);
    migrate_when_reachable(&pool).await;

    let producer = relay::producer(&config.kafka_bootstrap_servers)?;
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = watch::channel(false);

    let relay_settings = RelaySettings {
        bootstrap: config.kafka_bootstrap_servers.clone(),
        batch_size: config.relay_batch_size,
        sweep_interval: Duration::from_millis(config.relay_sweep_ms),
    };
    let mut relay_task = tokio::spawn(relay::run(
        pool.clone(),
        producer.clone(),
        relay_settings,
        metrics.clone(),
        stop_rx.clone(),
    ));

    // RED alerts from RabbitMQ to the page: its own task, reconnecting by itself.
    let hub = AlertHub::new();
    match &config.amqp_url {
        Some(amqp_url) => {
            let consumer = AlertConsumer {
                amqp_url: amqp_url.clone(),
                exchange: config.alert_exchange.clone(),
                pool: pool.clone(),
                hub: hub.clone(),
            };
            tokio::spawn(consumer.run(stop_rx.clone()));
        }
        None => warn!("no AMQP_URL: RED alerts are not relayed to the page"),
    }

    let group_settings = GroupSettings {
        writers: usize::from(config.group_commit_writers),
        max_readings: usize::from(config.group_commit_max_readings),
    };
    let writer = GroupCommit::start(
        pool.clone(),
        config.kafka_topic.clone(),
        group_settings,
        metrics.clone(),
    );
    let state = AppState {
        pool: pool.clone(),
        writer,
        producer,
        rules: Arc::new(ReadingRules {
            regions: config.regions.clone(),
            default_region: config.default_region.clone(),
        }),
        topic: config.kafka_topic.clone(),
        tokens: Arc::new(config.tokens()),
        max_batch_items: config.max_batch_items,
        metrics,
        hub,
    };
    let limits = HttpLimits {
        body_limit_bytes: config.body_limit_bytes,
        request_timeout: config.request_timeout(),
    };
    let app = http::router_with_page(state, limits, config.web_root.as_deref());
    info!(address = %listener.local_addr()?, "billing listening");

    // Stop signal for the HTTP server: the caller's shutdown, or the relay failing.
    let mut http_stop = stop_rx.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = http_stop.changed().await;
    });
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let mut server_task = tokio::spawn(async move { server.await });

    tokio::pin!(shutdown);
    let relay_outcome = tokio::select! {
        _ = &mut shutdown => None,
        outcome = &mut relay_task => Some(outcome),
    };
    let _ = stop_tx.send(true);
    if tokio::time::timeout(grace, &mut server_task).await.is_err() {
        warn!("in-flight requests did not finish within the grace period");
        server_task.abort();
    }
    match relay_outcome {
        Some(outcome) => outcome??,
        None => relay_task.await??,
    }
    pool.close().await;
    info!("billing stopped");
    Ok(())
}

/// Runs the migrations, waiting for PostgreSQL if it is not there yet.
async fn migrate_when_reachable(pool: &PgPool) {
    let mut delay = Duration::from_millis(200);
    loop {
        match store::migrate(pool).await {
            Ok(()) => return,
            Err(e) => {
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "migrations failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
