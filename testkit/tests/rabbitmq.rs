//! The dev RabbitMQ broker is real and usable from lapin: a durable topic exchange and queue
//! declared in a vhost of the test's own, persistent messages published with confirms and
//! consumed in order.

use std::time::Duration;

use anyhow::{Context, ensure};
use energy_contracts::PropertyId;
use energy_contracts::names::{ALERT_EXCHANGE, ALL_RED_ALERTS, red_alert_routing_key};
use energy_testkit::rabbitmq::TestVhost;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

const MESSAGES: usize = 40;
/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

#[tokio::test]
async fn confirmed_persistent_messages_reach_a_bound_durable_queue_in_order() -> anyhow::Result<()>
{
    let vhost = TestVhost::create("alerts").await?;
    let connection = vhost.connect().await?;
    let channel = connection.create_channel().await?;

    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            ALERT_EXCHANGE.into(),
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    let queue = "red-alerts";
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            queue.into(),
            ALERT_EXCHANGE.into(),
            ALL_RED_ALERTS.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    // A property id with a dot: the `#` binding must still match its routing key.
    let property = PropertyId::parse("block.7")?;
    for seq in 0..MESSAGES {
        let confirm = channel
            .basic_publish(
                ALERT_EXCHANGE.into(),
                red_alert_routing_key(&property).as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                seq.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(PERSISTENT),
            )
            .await?
            .await?;
        ensure!(
            confirm.is_ack(),
            "message {seq} was not confirmed: {confirm:?}"
        );
        ensure!(
            confirm.take_message().is_none(),
            "message {seq} was returned as unroutable"
        );
    }

    let consumer_channel = connection.create_channel().await?;
    let mut consumer = consumer_channel
        .basic_consume(
            queue.into(),
            "testkit".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for expected in 0..MESSAGES {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .context("timed out waiting for a delivery")?
            .context("consumer closed")??;
        let seq: usize = std::str::from_utf8(&delivery.data)?.parse()?;
        ensure!(seq == expected, "got {seq}, expected {expected}");
        ensure!(delivery.properties.delivery_mode() == &Some(PERSISTENT));
        delivery.ack(BasicAckOptions::default()).await?;
    }

    // The management API sees the durable queue in this vhost, drained.
    let info = vhost
        .api_get(&format!("queues/{}/{queue}", vhost.name))
        .await?;
    ensure!(info["durable"] == true, "queue not durable: {info}");
    Ok(())
}

#[tokio::test]
async fn a_vhost_of_its_own_keeps_tests_apart() -> anyhow::Result<()> {
    let a = TestVhost::create("apart").await?;
    let b = TestVhost::create("apart").await?;
    ensure!(a.name != b.name);

    let channel = a.connect().await?.create_channel().await?;
    channel
        .queue_declare(
            "only-in-a".into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    ensure!(
        a.api_get(&format!("queues/{}/only-in-a", a.name))
            .await
            .is_ok()
    );
    ensure!(
        b.api_get(&format!("queues/{}/only-in-a", b.name))
            .await
            .is_err()
    );
    Ok(())
}
