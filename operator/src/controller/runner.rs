//! `operator run`: the controller as a long-running process.
//!
//! - `/healthz`, `/readyz` and `/metrics` on a small axum server ([`RunArgs::http_address`]),
//!   started only once the API server has answered, so a listening server is a ready one.
//! - Leader election through a Lease ([`super::leader`]): a standby replica waits; a leader
//!   that loses the lease stops reconciling and the process exits with an error, so its pod
//!   restarts as a standby.
//! - SIGTERM or Ctrl-C: the controller stops taking work, in-flight reconciles get
//!   [`RunArgs::shutdown_grace_secs`] to finish, the lease is released, the server stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use clap::{Args, ValueEnum};
use kube::Client;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::leader::{LeaderElection, LeaseSettings, LostLease};
use super::metrics::Metrics;
use super::{Context, Settings};

/// Flags of `operator run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Namespace to watch; every namespace when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Seconds between two reconciles of an unchanged resource (drift correction).
    #[arg(long, env = "RESYNC_SECS", default_value_t = 300)]
    pub resync_secs: u64,
    /// Seconds cleanup keeps retrying unreachable brokers before giving up.
    #[arg(long, env = "CLEANUP_TIMEOUT_SECS", default_value_t = 60)]
    pub cleanup_timeout_secs: u64,
    /// Most resources reconciled at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// Limit of one call to the OpenFaaS gateway, milliseconds.
    #[arg(long, env = "GATEWAY_TIMEOUT_MS", default_value_t = 10_000)]
    pub gateway_timeout_ms: u64,
    /// Limit of one Kafka or RabbitMQ step, seconds.
    #[arg(long, env = "BROKER_TIMEOUT_SECS", default_value_t = 60)]
    pub broker_timeout_secs: u64,
    /// Address of the `/healthz`, `/readyz` and `/metrics` server.
    #[arg(long, env = "HTTP_ADDRESS", default_value = "0.0.0.0:8080")]
    pub http_address: SocketAddr,
    /// Elect a leader through a Lease (turn off only when a single replica runs).
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "energyplatform-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease and in Events; the host name when unset.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a lease stays valid without renewal.
    #[arg(long, env = "LEASE_DURATION_SECS", default_value_t = 15)]
    pub lease_duration_secs: u64,
    /// Seconds between two renewals of the lease.
    #[arg(long, env = "LEASE_RENEW_SECS", default_value_t = 5)]
    pub lease_renew_secs: u64,
    /// Seconds in-flight reconciles get to finish after SIGTERM.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
}

impl RunArgs {
    fn identity(&self) -> String {
        self.identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("operator-{}", std::process::id()))
    }

    /// The controller settings these flags describe.
    pub fn settings(&self) -> Settings {
        Settings {
            namespace: self.namespace.clone(),
            resync: Duration::from_secs(self.resync_secs),
            cleanup_timeout: Duration::from_secs(self.cleanup_timeout_secs),
            concurrency: self.concurrency,
            gateway_timeout: Duration::from_millis(self.gateway_timeout_ms),
            broker_timeout: Duration::from_secs(self.broker_timeout_secs),
            instance: Some(self.identity()),
        }
    }

    fn lease(&self) -> LeaseSettings {
        LeaseSettings {
            namespace: self.lease_namespace.clone(),
            name: self.lease_name.clone(),
            identity: self.identity(),
            lease_duration: Duration::from_secs(self.lease_duration_secs),
            renew_interval: Duration::from_secs(self.lease_renew_secs),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with span fields (the reconcile's `object`).
    Json,
}

/// Installs the global `tracing` subscriber; `RUST_LOG` overrides the default filter.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rdkafka=warn,kube_runtime=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

/// Why `operator run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No Kubernetes client could be configured, or the API server did not answer.
    #[error("cannot reach the kubernetes api server")]
    Connect(#[source] kube::Error),
    /// The health and metrics address could not be bound.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The controller context could not be built.
    #[error("cannot start the controller")]
    Context(#[source] super::Error),
    /// Another replica took over; this one stopped reconciling.
    #[error("lost leadership")]
    LostLeadership(#[source] LostLease),
    /// The controller stopped by itself, which it only does when its watches end.
    #[error("the controller stopped unexpectedly")]
    ControllerStopped,
}

/// What the HTTP handlers share.
struct Health {
    metrics: Arc<Metrics>,
}

/// Runs the operator until SIGTERM or Ctrl-C, or until it loses leadership.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Connect)?;
    client
        .apiserver_version()
        .await
        .map_err(RunError::Connect)?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health {
        metrics: metrics.clone(),
    });

    // The server runs until `stop_server` is sent; only this function sends.
    let (stop_server, server_stopped) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(args.http_address)
        .await
        .map_err(|source| RunError::Listen {
            address: args.http_address,
            source,
        })?;
    info!(address = %args.http_address, "health and metrics server listening");
    let server = tokio::spawn(serve(listener, health, server_stopped));

    let outcome = lead(client, &args, metrics).await;
    let _ = stop_server.send(true);
    if let Err(error) = server.await {
        warn!(%error, "health server task failed");
    }
    outcome
}

/// Waits for leadership, then runs the controller until a signal or the lease is lost.
async fn lead(client: Client, args: &RunArgs, metrics: Arc<Metrics>) -> Result<(), RunError> {
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let election = args
        .leader_election
        .then(|| LeaderElection::new(client.clone(), args.lease()));
    if let Some(election) = &election {
        tokio::select! {
            () = election.acquire() => {}
            () = &mut signal => return Ok(()),
        }
    }

    let ctx = Context::new(client, args.settings(), metrics).map_err(RunError::Context)?;
    // The controller drains and stops once `stop_controller` is sent; only this function sends.
    let (stop_controller, stop) = watch::channel(false);
    let mut controller = tokio::spawn(super::run(Arc::new(ctx), stopped(stop)));
    let keep = async {
        match &election {
            Some(election) => election.keep().await,
            None => std::future::pending().await,
        }
    };

    let (outcome, controller_running) = tokio::select! {
        () = &mut signal => (Ok(()), true),
        lost = keep => (Err(RunError::LostLeadership(lost)), true),
        _ = &mut controller => (Err(RunError::ControllerStopped), false),
    };
    if controller_running {
        let _ = stop_controller.send(true);
        let grace = Duration::from_secs(args.shutdown_grace_secs);
        if tokio::time::timeout(grace, controller).await.is_err() {
            warn!(
                ?grace,
                "reconciles still running at the end of the grace period"
            );
        }
    }
    if let (Some(election), Ok(())) = (&election, &outcome)
        && let Err(error) = election.release().await
    {
        warn!(%error, "cannot release the lease; it expires by itself");
    }
    if let Err(error) = &outcome {
        error!(%error, "operator stopping");
    }
    outcome
}

/// Completes once `true` is sent on `stop` (or its sender is dropped).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Completes on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    info!("shutdown requested");
}

async fn serve(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    stop: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .route("/metrics", get(metrics))
        .with_state(health);
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped(stop))
        .await
    {
        error!(%error, "health server failed");
    }
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn defaults_resync_every_five_minutes_with_leader_election() {
        let cli = Cli::try_parse_from(["run"]).expect("defaults parse");

        let settings = cli.run.settings();

        assert_eq!(settings.resync, Duration::from_secs(300));
        assert_eq!(settings.cleanup_timeout, Duration::from_secs(60));
        assert!(cli.run.leader_election);
        assert_eq!(settings.namespace, None);
    }

    #[test]
    fn leader_election_can_be_switched_off_for_a_single_replica() {
        let cli = Cli::try_parse_from(["run", "--leader-election", "false"]).expect("parses");

        assert!(!cli.run.leader_election);
    }
}
