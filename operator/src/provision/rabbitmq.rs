//! The RabbitMQ side: the `energy.alerts` topic exchange, a durable queue bound to every RED
//! alert, and a dead-letter exchange with its queue, so a message the alert queue rejects or
//! expires is kept, not dropped.

use energy_contracts::names::ALL_RED_ALERTS;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use tracing::info;

use crate::resource::RabbitMqSpec;

/// Why the alert topology could not be brought to the asked state.
#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    /// The broker could not be reached.
    #[error("rabbitmq at {address}: {reason}")]
    Connect {
        /// The broker, without credentials.
        address: String,
        /// What the client said.
        reason: String,
    },
    /// The broker refused a declaration, for example a queue that exists with other arguments.
    #[error("rabbitmq refused to {action}: {reason}")]
    Refused {
        /// What was attempted.
        action: String,
        /// What the broker said.
        reason: String,
    },
}

/// Name of the queue that keeps dead-lettered alerts.
pub fn dead_letter_queue(spec: &RabbitMqSpec) -> String {
    format!("{}.dead", spec.alert_queue)
}

/// Talks to one RabbitMQ broker.
pub struct RabbitProvisioner {
    connection: Connection,
}

impl RabbitProvisioner {
    /// Connects with an AMQP URI (from the referenced Secret).
    pub async fn connect(uri: &str) -> Result<Self, RabbitError> {
        let connection = Connection::connect(uri, ConnectionProperties::default())
            .await
            .map_err(|e| RabbitError::Connect {
                address: redact(uri),
                reason: e.to_string(),
            })?;
        Ok(Self { connection })
    }

    /// Declares the exchanges, queues and bindings; declaring what exists changes nothing.
    pub async fn ensure(&self, spec: &RabbitMqSpec) -> Result<(), RabbitError> {
        let channel = self.channel().await?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        declare_exchange(&channel, &spec.exchange, ExchangeKind::Topic, durable).await?;
        declare_exchange(
            &channel,
            &spec.dead_letter_exchange,
            ExchangeKind::Fanout,
            durable,
        )
        .await?;

        let dead = dead_letter_queue(spec);
        declare_queue(&channel, &dead, FieldTable::default()).await?;
        bind(&channel, &dead, &spec.dead_letter_exchange, "").await?;

        let mut arguments = FieldTable::default();
        arguments.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(spec.dead_letter_exchange.as_str().into()),
        );
        declare_queue(&channel, &spec.alert_queue, arguments).await?;
        bind(&channel, &spec.alert_queue, &spec.exchange, ALL_RED_ALERTS).await?;
        info!(exchange = %spec.exchange, queue = %spec.alert_queue, "rabbitmq topology in place");
        Ok(())
    }

    /// Deletes the queues and exchanges (for `deletionPolicy: Delete`).
    pub async fn delete(&self, spec: &RabbitMqSpec) -> Result<(), RabbitError> {
        let channel = self.channel().await?;
        for queue in [spec.alert_queue.clone(), dead_letter_queue(spec)] {
            channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .map_err(|e| refused(format!("delete queue {queue}"), e))?;
        }
        for exchange in [&spec.exchange, &spec.dead_letter_exchange] {
            channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .map_err(|e| refused(format!("delete exchange {exchange}"), e))?;
        }
        info!(exchange = %spec.exchange, "rabbitmq topology deleted");
        Ok(())
    }

    async fn channel(&self) -> Result<Channel, RabbitError> {
        self.connection
            .create_channel()
            .await
            .map_err(|e| refused("open a channel", e))
    }
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
) -> Result<(), RabbitError> {
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
        .map_err(|e| refused(format!("declare exchange {name}"), e))
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    arguments: FieldTable,
) -> Result<(), RabbitError> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), arguments)
        .await
        .map(|_| ())
        .map_err(|e| {
            refused(
                format!("declare queue {name} (does it exist with other arguments?)"),
                e,
            )
        })
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), RabbitError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| refused(format!("bind {queue} to {exchange}"), e))
}

fn refused(action: impl Into<String>, reason: impl ToString) -> RabbitError {
    RabbitError::Refused {
        action: action.into(),
        reason: reason.to_string(),
    }
}

/// The URI without its password.
fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &uri[..scheme], &uri[at + 1..])
        }
        _ => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_from_addresses() {
        assert_eq!(redact("amqp://u:secret@h:5672/v"), "amqp://***@h:5672/v");
        assert_eq!(redact("amqp://h:5672"), "amqp://h:5672");
    }
}
