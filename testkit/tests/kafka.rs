//! The dev Kafka broker is real and usable from rdkafka: a topic made through the admin API,
//! keyed messages from an idempotent `acks=all` producer with many sends in flight, read back
//! by a manually committing consumer group in order per key.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, ensure};
use energy_testkit::kafka::TestKafka;
use futures::StreamExt;
use futures::future::try_join_all;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 4;
const KEYS: usize = 12;
const PER_KEY: usize = 25;

#[tokio::test]
async fn keyed_messages_keep_their_order_per_key_through_a_real_broker() -> anyhow::Result<()> {
    let kafka = TestKafka::connect().await?;
    let topic = kafka.topic_name("order");
    kafka.create_topic(&topic, PARTITIONS).await?;

    // Interleave the keys and keep every send in flight at once, as the outbox relay will.
    let producer: FutureProducer = kafka
        .client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .context("create producer")?;
    let mut sends = Vec::new();
    for seq in 0..PER_KEY {
        for key in 0..KEYS {
            let key = format!("property-{key}");
            let payload = seq.to_string();
            let producer = producer.clone();
            let topic = topic.clone();
            sends.push(async move {
                let record = FutureRecord::to(&topic).key(&key).payload(&payload);
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map_err(|(e, _)| e)
            });
        }
    }
    let delivered = try_join_all(sends).await.context("deliver")?;
    ensure!(delivered.len() == KEYS * PER_KEY);

    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", kafka.topic_name("group"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("create consumer")?;
    consumer.subscribe(&[&topic]).context("subscribe")?;

    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut stream = consumer.stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.values().map(Vec::len).sum::<usize>() < KEYS * PER_KEY {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .context("timed out waiting for messages")?
            .context("stream ended")??;
        let key = String::from_utf8(message.key().context("key")?.to_vec())?;
        let seq: usize = std::str::from_utf8(message.payload().context("payload")?)?.parse()?;
        let partition = *partition_of
            .entry(key.clone())
            .or_insert(message.partition());
        ensure!(
            partition == message.partition(),
            "key {key} moved between partitions"
        );
        seen.entry(key).or_default().push(seq);
        consumer.commit_message(&message, CommitMode::Sync)?;
    }
    drop(stream);

    for (key, seqs) in &seen {
        let expected: Vec<usize> = (0..PER_KEY).collect();
        ensure!(
            seqs == &expected,
            "key {key} arrived out of order or incomplete: {seqs:?}"
        );
    }
    ensure!(seen.len() == KEYS, "saw {} keys", seen.len());

    // Manual commits landed: the group's committed offsets add up to every message.
    let committed = consumer.committed(Duration::from_secs(10))?;
    let total: i64 = committed
        .elements()
        .iter()
        .filter_map(|e| e.offset().to_raw())
        .sum();
    ensure!(
        total == (KEYS * PER_KEY) as i64,
        "committed offsets add up to {total}"
    );
    Ok(())
}

#[tokio::test]
async fn the_admin_api_creates_topics_with_the_asked_partition_count() -> anyhow::Result<()> {
    let kafka = TestKafka::connect().await?;
    let topic = kafka.topic_name("admin");
    kafka.create_topic(&topic, 7).await?;

    let partitions = kafka.partition_count(&topic).await?;
    ensure!(partitions == 7, "topic has {partitions} partitions");
    Ok(())
}
