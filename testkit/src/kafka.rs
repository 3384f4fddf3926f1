//! Kafka: tests share the dev broker and keep apart by topic and group names of their own.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;

use crate::{Error, Result, service_var, unique_name};

const SERVICE: &str = "Kafka";
const BOOTSTRAP_VAR: &str = "EP_KAFKA_BOOTSTRAP";
const TIMEOUT: Duration = Duration::from_secs(15);

/// The dev broker, checked to answer.
pub struct TestKafka {
    /// `host:port` list for `bootstrap.servers`.
    pub bootstrap: String,
    admin: AdminClient<DefaultClientContext>,
}

impl TestKafka {
    /// Finds the broker of `EP_KAFKA_BOOTSTRAP` and checks that it answers a metadata request.
    pub async fn connect() -> Result<Self> {
        let bootstrap = service_var(SERVICE, BOOTSTRAP_VAR)?;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .map_err(|e| Error::unreachable(SERVICE, &bootstrap, e))?;
        let kafka = Self { bootstrap, admin };
        kafka.check_answers().await?;
        Ok(kafka)
    }

    async fn check_answers(&self) -> Result<()> {
        let bootstrap = self.bootstrap.clone();
        let config = self.client_config();
        // Metadata calls block; keep them off the async worker threads.
        tokio::task::spawn_blocking(move || {
            let consumer: rdkafka::consumer::BaseConsumer = config
                .create()
                .map_err(|e| Error::unreachable(SERVICE, &bootstrap, e))?;
            consumer
                .fetch_metadata(None, TIMEOUT)
                .map(|_| ())
                .map_err(|e| Error::unreachable(SERVICE, &bootstrap, e))
        })
        .await
        .map_err(|e| Error::unreachable(SERVICE, &self.bootstrap, e))?
    }

    /// A client configuration pointing at the broker, to extend with producer or consumer
    /// settings.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// A topic name no other test uses.
    pub fn topic_name(&self, prefix: &str) -> String {
        unique_name(prefix)
    }

    /// Creates `name` with `partitions` partitions (replication factor 1: one broker) and waits
    /// until the broker reports every partition, so a test's first send does not race the
    /// controller.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = self
            .admin
            .create_topics([&topic], &options)
            .await
            .map_err(|e| Error::unreachable(SERVICE, &self.bootstrap, e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::refused(
                        SERVICE,
                        format!("create topic {topic}"),
                        code,
                    ));
                }
            }
        }
        self.wait_for_partitions(name, partitions).await
    }

    /// Polls the topic's metadata until it lists `partitions` partitions, each with a leader.
    pub async fn wait_for_partitions(&self, name: &str, partitions: i32) -> Result<()> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if self.partition_count(name).await? == partitions {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                let action = format!("show {partitions} partitions of {name} within {TIMEOUT:?}");
                return Err(Error::refused(SERVICE, action, "metadata never caught up"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Partitions of `name` that have a leader, as the broker's metadata reports them now.
    pub async fn partition_count(&self, name: &str) -> Result<i32> {
        let config = self.client_config();
        let bootstrap = self.bootstrap.clone();
        let topic = name.to_string();
        tokio::task::spawn_blocking(move || {
            let consumer: rdkafka::consumer::BaseConsumer = config
                .create()
                .map_err(|e| Error::unreachable(SERVICE, &bootstrap, e))?;
            let metadata = consumer
                .fetch_metadata(Some(&topic), TIMEOUT)
                .map_err(|e| Error::unreachable(SERVICE, &bootstrap, e))?;
            let count = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions())
                .filter(|p| p.leader() >= 0)
                .count();
            // A topic has at most 2^31 - 1 partitions; the count fits.
            Ok(i32::try_from(count).expect("partition count fits in i32"))
        })
        .await
        .map_err(|e| Error::unreachable(SERVICE, &self.bootstrap, e))?
    }

    /// The admin client, for tests that inspect topics.
    pub fn admin(&self) -> &AdminClient<DefaultClientContext> {
        &self.admin
    }
}
