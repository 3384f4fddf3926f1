//! Serving: bind, answer requests, and shut down on SIGTERM or SIGINT within a bound.
//!
//! Shutdown protocol: the signal stops the listener from accepting; requests in flight finish
//! (each is already bounded by the request timeout); if any are still running when the grace
//! period ends, the process stops waiting and returns.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::http;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("could not listen on {address}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("could not listen for shutdown signals")]
    Signal(#[source] std::io::Error),
    /// The accept loop failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// Binds the configured address and serves until SIGTERM or SIGINT.
pub async fn run(config: &Config) -> Result<(), ServeError> {
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| ServeError::Bind {
            address: config.bind,
            source,
        })?;
    tracing::info!(
        address = %config.bind,
        default_region = config.default_region,
        "carbon calculator listening"
    );

    serve(
        listener,
        http::router(config.http_settings()),
        shutdown,
        config.shutdown_grace(),
    )
    .await?;
    tracing::info!("carbon calculator stopped");
    Ok(())
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish
/// for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<(), ServeError> {
    // The shutdown future sends once the signal has come; the grace timer waits for it. If the
    // server ends first the sender is dropped, and the timer never starts.
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down; finishing requests in flight"
        );
        let _ = stopping_tx.send(());
    });
    let grace_over = async move {
        match stopping_rx.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };

    tokio::select! {
        served = server.into_future() => served.map_err(ServeError::Serve),
        () = grace_over => {
            tracing::warn!("grace period over with requests still in flight; exiting anyway");
            Ok(())
        }
    }
}

/// A future that completes on SIGTERM (how Kubernetes stops a pod) or SIGINT (Ctrl-C).
/// The handlers are installed now, so a signal that comes before the future is polled counts.
#[cfg(unix)]
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown signal received");
    })
}

/// A future that completes on Ctrl-C, where Unix signals do not exist.
#[cfg(not(unix))]
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    Ok(async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot wait for Ctrl-C; shutting down now");
        }
    })
}
