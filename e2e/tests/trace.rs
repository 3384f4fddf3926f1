//! One reading can be followed through every service: the trace id of the `traceparent` it was
//! sent with is on its Kafka message and in the recommender's and the carbon function's logs.

mod common;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::Platform;
use futures::StreamExt;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readings_trace_id_reaches_kafka_and_every_services_logs() -> anyhow::Result<()> {
    let platform = Platform::start("e2e-trace", 1).await?;
    let traceparent = format!("00-{CALLER_TRACE}-00f067aa0ba902b7-01");
    platform
        .post("traced-home", 0, 1.2, Some(&traceparent))
        .await?
        .context("accepted")?;
    platform
        .wait_count("SELECT count(*) FROM recommendations", 1)
        .await?;

    let consumer: StreamConsumer = platform
        .kafka
        .client_config()
        .set("group.id", energy_testkit::unique_name("trace-reader"))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[&platform.topic])?;
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.stream().next())
        .await
        .context("no message on the topic")?
        .context("stream ended")??;
    let headers = message.headers().context("the message has headers")?;
    let on_kafka = headers
        .iter()
        .find(|h| h.key == "traceparent")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .context("no traceparent header")?;
    ensure!(
        energy_contracts::trace::trace_id(&on_kafka).as_deref() == Some(CALLER_TRACE),
        "the Kafka header {on_kafka} lost the caller's trace"
    );

    for (service, log) in [
        ("recommender", &platform.recommender),
        ("carbon", &platform.carbon),
    ] {
        ensure!(
            log.log_text().contains(CALLER_TRACE),
            "{service}'s log does not mention trace {CALLER_TRACE}: {}",
            log.log.display()
        );
    }
    Ok(())
}
