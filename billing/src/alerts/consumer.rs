//! The RabbitMQ side of the alert relay.
//!
//! Each replica declares its own exclusive, server-named queue bound to every RED alert, so
//! every replica sees every alert. The queue lives as long as the connection: after a broker
//! restart the consumer reconnects with bounded backoff, declares a new queue, and replays from
//! PostgreSQL the alerts raised since it lost the old one (with a margin), so alerts published
//! while it was away still reach the page. The hub drops the repeats.

use std::time::Duration;

use chrono::{DateTime, Utc};
use energy_contracts::RedAlert;
use energy_contracts::names::ALL_RED_ALERTS;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::hub::AlertHub;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Replay reaches this far before the moment the connection was lost, for clock skew between
/// the recommender's `raisedAt` and this process.
const REPLAY_MARGIN: chrono::Duration = chrono::Duration::seconds(30);

/// Why one connection ended.
#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error("rabbitmq: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("rabbitmq closed the consumer")]
    Closed,
}

/// Consumes RED alerts into the hub until shutdown.
pub struct AlertConsumer {
    /// AMQP URI of the broker.
    pub amqp_url: String,
    /// The topic exchange alerts are published to.
    pub exchange: String,
    /// Where alerts are stored, for the replay after a reconnect.
    pub pool: PgPool,
    /// The fan-out to WebSocket clients.
    pub hub: AlertHub,
}

impl AlertConsumer {
    /// Runs until `shutdown` turns true, reconnecting whenever the connection is lost.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        let mut lost_at: Option<DateTime<Utc>> = None;
        loop {
            let outcome = tokio::select! {
                outcome = self.consume_once(lost_at) => outcome,
                _ = shutdown.changed() => return,
            };
            if let Err(e) = outcome {
                warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "alert relay lost RabbitMQ");
            }
            lost_at.get_or_insert_with(Utc::now);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: declare, bind, replay what was missed, consume until it fails.
    async fn consume_once(&self, lost_at: Option<DateTime<Utc>>) -> Result<(), ConsumeError> {
        let connection =
            Connection::connect(&self.amqp_url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let queue = channel
            .queue_declare("".into(), exclusive, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                queue.name().as_str().into(),
                self.exchange.as_str().into(),
                ALL_RED_ALERTS.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut deliveries = channel
            .basic_consume(
                queue.name().as_str().into(),
                "billing-alert-relay".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        info!(queue = %queue.name(), "alert relay consuming");

        if let Some(lost_at) = lost_at {
            self.replay_since(lost_at - REPLAY_MARGIN).await;
        }

        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery?;
            match serde_json::from_slice::<RedAlert>(&delivery.data) {
                Ok(alert) => {
                    let reached = self.hub.publish(alert);
                    debug!(subscribers = reached, "alert relayed");
                }
                Err(e) => warn!(error = %e, "message on the alert exchange is not a RedAlert"),
            }
            delivery.ack(BasicAckOptions::default()).await?;
        }
        Err(ConsumeError::Closed)
    }

    /// Pushes the alerts stored since `since` into the hub (which drops those already sent).
    async fn replay_since(&self, since: DateTime<Utc>) {
        let rows = sqlx::query(
            "SELECT alert_id, event_id, property_id, kwh, threshold, reason, kg_co2e, raised_at \
             FROM alerts WHERE raised_at >= $1 ORDER BY raised_at",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "cannot replay alerts missed during the outage");
                return;
            }
        };
        let mut replayed = 0;
        for row in rows {
            match alert_from_row(&row) {
                Ok(alert) => replayed += usize::from(self.hub.publish(alert) > 0),
                Err(e) => warn!(error = %e, "stored alert cannot be read"),
            }
        }
        info!(replayed, "alerts replayed after reconnect");
    }
}

fn alert_from_row(row: &sqlx::postgres::PgRow) -> Result<RedAlert, Box<dyn std::error::Error>> {
    Ok(RedAlert {
        alert_id: row.try_get("alert_id")?,
        event_id: row.try_get("event_id")?,
        property_id: energy_contracts::PropertyId::parse(row.try_get::<String, _>("property_id")?)?,
        kwh: row.try_get("kwh")?,
        threshold: row.try_get("threshold")?,
        reason: row.try_get("reason")?,
        kg_co2e: row.try_get("kg_co2e")?,
        raised_at: row.try_get("raised_at")?,
    })
}
