//! RabbitMQ: RED alerts published to the `energy.alerts` topic exchange with publisher confirms.
//!
//! One connection and one confirm-mode channel, opened on first use and again after any failure,
//! so a broker restart heals by itself: the failed publish is reported, the caller retries with
//! backoff, and the next attempt reconnects. lapin's own recovery is not used; reopening on error
//! keeps one path for a first connection and a lost one.
//!
//! The link sits behind a tokio mutex held for a whole publish (send and confirm), so alerts go
//! out one at a time, and a reconnect never races a publish on the old channel. The partitions'
//! workers share the publisher; each waits for its own confirm, so one partition's alerts keep
//! that partition's order.

use std::time::Duration;

use energy_contracts::RedAlert;
use energy_contracts::names::red_alert_routing_key;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;

/// AMQP delivery mode of a message the broker writes to disk.
const PERSISTENT: u8 = 2;

/// Content type of the alert body.
const JSON: &str = "application/json";

/// AMQP `type` property of a RED alert.
const MESSAGE_TYPE: &str = "alert.red";

/// Why an alert was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// No connection or channel could be opened, or the exchange declared.
    #[error("cannot open a RabbitMQ channel on exchange {exchange}")]
    Open {
        /// The exchange.
        exchange: String,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The publish or its confirm failed on the wire.
    #[error("RabbitMQ failed to take alert {alert_id}")]
    Publish {
        /// The alert.
        alert_id: uuid::Uuid,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker did not confirm in time.
    #[error("RabbitMQ did not confirm alert {alert_id} within {timeout:?}")]
    ConfirmTimeout {
        /// The alert.
        alert_id: uuid::Uuid,
        /// How long was waited.
        timeout: Duration,
    },
    /// The broker refused to take responsibility for the message.
    #[error("RabbitMQ nacked alert {alert_id}")]
    Nacked {
        /// The alert.
        alert_id: uuid::Uuid,
    },
}

/// An open connection and its confirm-mode channel.
struct Link {
    connection: Connection,
    channel: Channel,
}

impl Link {
    fn is_usable(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }
}

/// Publishes RED alerts and waits for the broker's confirm.
pub struct AlertPublisher {
    amqp_url: String,
    exchange: String,
    confirm_timeout: Duration,
    /// The current link; `None` until first use and after a failure. Locked for a whole publish.
    link: Mutex<Option<Link>>,
}

impl std::fmt::Debug for AlertPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the password; it is left out.
        f.debug_struct("AlertPublisher")
            .field("exchange", &self.exchange)
            .field("confirm_timeout", &self.confirm_timeout)
            .finish_non_exhaustive()
    }
}

impl AlertPublisher {
    /// A publisher that connects on first use.
    pub fn new(amqp_url: String, exchange: String, confirm_timeout: Duration) -> Self {
        Self {
            amqp_url,
            exchange,
            confirm_timeout,
            link: Mutex::new(None),
        }
    }

    /// Opens the link now if there is none: for readiness, and to declare the exchange early.
    pub async fn ensure_connected(&self) -> Result<(), PublishError> {
        let mut slot = self.link.lock().await;
        self.usable_link(&mut slot).await.map(|_| ())
    }

    /// Publishes `alert` persistently with routing key `alert.red.<propertyId>` and returns once
    /// the broker confirmed it.
    pub async fn publish(&self, alert: &RedAlert) -> Result<(), PublishError> {
        let mut slot = self.link.lock().await;
        let result = self.publish_on(&mut slot, alert).await;
        if result.is_err() {
            // Whatever broke, the next attempt starts from a fresh connection.
            *slot = None;
        }
        result
    }

    async fn publish_on(
        &self,
        slot: &mut Option<Link>,
        alert: &RedAlert,
    ) -> Result<(), PublishError> {
        let channel = self.usable_link(slot).await?;
        let alert_id = alert.alert_id;
        let wire = |source| PublishError::Publish { alert_id, source };

        // Serialising plain fields of known types cannot fail.
        let body = serde_json::to_vec(alert).expect("a RedAlert always serialises");
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type(JSON.into())
            .with_message_id(alert_id.to_string().into())
            .with_type(MESSAGE_TYPE.into());
        let routing_key = red_alert_routing_key(&alert.property_id);
        let confirm = channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .map_err(wire)?;

        let confirmation = tokio::time::timeout(self.confirm_timeout, confirm)
            .await
            .map_err(|_| PublishError::ConfirmTimeout {
                alert_id,
                timeout: self.confirm_timeout,
            })?
            .map_err(wire)?;
        if !confirmation.is_ack() {
            return Err(PublishError::Nacked { alert_id });
        }
        Ok(())
    }

    /// The channel of a usable link, opening one when the slot is empty or broken.
    async fn usable_link<'a>(
        &self,
        slot: &'a mut Option<Link>,
    ) -> Result<&'a Channel, PublishError> {
        let link = match slot.take().filter(Link::is_usable) {
            Some(link) => link,
            None => {
                let link = self.open().await?;
                tracing::info!(exchange = %self.exchange, "connected to RabbitMQ");
                link
            }
        };
        Ok(&slot.insert(link).channel)
    }

    async fn open(&self) -> Result<Link, PublishError> {
        let open_error = |source| PublishError::Open {
            exchange: self.exchange.clone(),
            source,
        };
        let connection = Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .map_err(open_error)?;
        let channel = connection.create_channel().await.map_err(open_error)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(open_error)?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(open_error)?;
        Ok(Link {
            connection,
            channel,
        })
    }
}
