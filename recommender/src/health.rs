//! The small HTTP server beside the consumer: `/healthz` (the process runs), `/readyz` (Kafka,
//! PostgreSQL and RabbitMQ answer) and `/metrics` (Prometheus text format).
//!
//! Each readiness check has its own timeout and they run side by side, so a dead dependency
//! makes `/readyz` answer 503 promptly, naming what failed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertPublisher;
use crate::kafka::RebalanceContext;
use crate::metrics::Metrics;
use crate::store::Store;

/// Longest each readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Content type of the Prometheus text format.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the probes look at.
#[derive(Clone)]
pub struct Probes {
    /// PostgreSQL.
    pub store: Store,
    /// RabbitMQ.
    pub alerts: Arc<AlertPublisher>,
    /// The Kafka consumer.
    pub kafka: Arc<StreamConsumer<RebalanceContext>>,
    /// The consumed topic, whose metadata the Kafka check asks for.
    pub topic: String,
    /// The metrics to serve.
    pub metrics: Arc<Metrics>,
}

/// The probe routes.
pub fn router(probes: Probes) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probes)
}

/// Serves the probes on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    probes: Probes,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(probes))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(probes): State<Probes>) -> Response {
    let (kafka, postgres, rabbitmq) = tokio::join!(
        check(kafka_answers(&probes)),
        check(async {
            probes
                .store
                .ping()
                .await
                .map_err(|e| crate::ErrorChain(&e).to_string())
        }),
        check(async {
            let result = probes.alerts.ensure_connected().await;
            result.map_err(|e| crate::ErrorChain(&e).to_string())
        }),
    );
    let ready = kafka.is_none() && postgres.is_none() && rabbitmq.is_none();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": ready,
        "kafka": kafka.unwrap_or_else(|| "ok".into()),
        "postgres": postgres.unwrap_or_else(|| "ok".into()),
        "rabbitmq": rabbitmq.unwrap_or_else(|| "ok".into()),
    });
    (status, axum::Json(body)).into_response()
}

/// `None` when the check passed within [`CHECK_TIMEOUT`], else why not.
async fn check(probe: impl Future<Output = Result<(), String>>) -> Option<String> {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
    }
}

async fn kafka_answers(probes: &Probes) -> Result<(), String> {
    let kafka = Arc::clone(&probes.kafka);
    let topic = probes.topic.clone();
    // Metadata requests block their thread.
    tokio::task::spawn_blocking(move || {
        kafka
            .fetch_metadata(Some(&topic), CHECK_TIMEOUT)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn metrics(State(probes): State<Probes>) -> Response {
    match probes.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
