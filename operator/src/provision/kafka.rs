//! The Kafka side: the consumption topic and its `.dlq` topic, created through the admin API,
//! partitions raised to the asked number, topic configuration kept as the spec says.

use std::collections::BTreeMap;
use std::time::Duration;

use energy_contracts::names::dlq_topic;
use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::info;

use crate::resource::KafkaSpec;

/// How long one admin call may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the topic could not be brought to the asked state.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// Kafka cannot remove partitions; the spec asks for fewer than the topic has.
    #[error(
        "topic {topic} has {actual} partitions; {requested} were asked and Kafka cannot remove partitions"
    )]
    PartitionDecrease {
        /// Topic name.
        topic: String,
        /// Partitions it has.
        actual: i32,
        /// Partitions the spec asks for.
        requested: i32,
    },
    /// The admin client failed or Kafka refused.
    #[error("kafka admin {action} for topic {topic}: {reason}")]
    Admin {
        /// What was attempted.
        action: &'static str,
        /// Topic name.
        topic: String,
        /// What Kafka said.
        reason: String,
    },
}

/// What a provisioning pass did to a topic (used for Events and the idempotence check).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicOutcome {
    /// The topic was created.
    pub created: bool,
    /// Partitions were added, from this count.
    pub partitions_raised_from: Option<i32>,
    /// The topic configuration was corrected.
    pub config_corrected: bool,
    /// Partitions the topic has now.
    pub partitions: i32,
}

impl TopicOutcome {
    /// Whether anything was written.
    pub fn changed(&self) -> bool {
        self.created || self.partitions_raised_from.is_some() || self.config_corrected
    }
}

/// Talks to one Kafka cluster.
pub struct KafkaProvisioner {
    admin: AdminClient<DefaultClientContext>,
    bootstrap: String,
}

impl KafkaProvisioner {
    /// An admin client for `bootstrap`.
    pub fn new(bootstrap: &str) -> Result<Self, TopicError> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .map_err(|e| admin_error("connect", bootstrap, e))?;
        Ok(Self {
            admin,
            bootstrap: bootstrap.to_string(),
        })
    }

    /// Brings the consumption topic and its dead-letter topic to the spec.
    pub async fn ensure(&self, spec: &KafkaSpec) -> Result<TopicOutcome, TopicError> {
        let outcome = self.ensure_topic(&spec.topic, spec).await?;
        self.ensure_topic(&dlq_topic(&spec.topic), spec).await?;
        Ok(outcome)
    }

    /// Deletes both topics (for `deletionPolicy: Delete`); absent topics are fine.
    pub async fn delete(&self, spec: &KafkaSpec) -> Result<(), TopicError> {
        let dlq = dlq_topic(&spec.topic);
        let names = [spec.topic.as_str(), dlq.as_str()];
        let results = self
            .admin
            .delete_topics(&names, &options())
            .await
            .map_err(|e| admin_error("delete", &spec.topic, e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => return Err(admin_error("delete", &topic, code)),
            }
        }
        info!(topic = %spec.topic, "kafka topics deleted");
        Ok(())
    }

    async fn ensure_topic(&self, name: &str, spec: &KafkaSpec) -> Result<TopicOutcome, TopicError> {
        let mut outcome = TopicOutcome::default();
        let actual = self.partition_count(name).await?;
        match actual {
            None => {
                self.create(name, spec).await?;
                outcome.created = true;
            }
            Some(actual) if actual > spec.partitions => {
                return Err(TopicError::PartitionDecrease {
                    topic: name.to_string(),
                    actual,
                    requested: spec.partitions,
                });
            }
            Some(actual) if actual < spec.partitions => {
                self.raise_partitions(name, spec.partitions).await?;
                outcome.partitions_raised_from = Some(actual);
            }
            Some(_) => {}
        }
        if !outcome.created {
            outcome.config_corrected = self.correct_config(name, &spec.topic_config).await?;
        }
        outcome.partitions = spec.partitions;
        if outcome.changed() {
            info!(topic = name, ?outcome, "kafka topic provisioned");
        }
        Ok(outcome)
    }

    async fn create(&self, name: &str, spec: &KafkaSpec) -> Result<(), TopicError> {
        let mut topic = NewTopic::new(
            name,
            spec.partitions,
            TopicReplication::Fixed(spec.replication_factor),
        );
        for (key, value) in &spec.topic_config {
            topic = topic.set(key, value);
        }
        let results = self
            .admin
            .create_topics([&topic], &options())
            .await
            .map_err(|e| admin_error("create", name, e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(admin_error("create", &topic, code)),
            }
        }
        Ok(())
    }

    async fn raise_partitions(&self, name: &str, partitions: i32) -> Result<(), TopicError> {
        // The spec's schema keeps partitions at 1 or more, so the cast cannot wrap.
        let new = NewPartitions::new(name, partitions as usize);
        let results = self
            .admin
            .create_partitions([&new], &options())
            .await
            .map_err(|e| admin_error("raise partitions", name, e))?;
        for result in results {
            result.map_err(|(topic, code)| admin_error("raise partitions", &topic, code))?;
        }
        Ok(())
    }

    /// Sets the topic's dynamic configuration to exactly `desired` when it differs; true when
    /// something was written.
    async fn correct_config(
        &self,
        name: &str,
        desired: &BTreeMap<String, String>,
    ) -> Result<bool, TopicError> {
        let described = self
            .admin
            .describe_configs([&ResourceSpecifier::Topic(name)], &options())
            .await
            .map_err(|e| admin_error("describe config", name, e))?;
        let resource = described
            .into_iter()
            .next()
            .ok_or_else(|| admin_error("describe config", name, "no answer"))?
            .map_err(|code| admin_error("describe config", name, code))?;
        let current: BTreeMap<String, String> = resource
            .entries
            .iter()
            .filter(|e| matches!(e.source, ConfigSource::DynamicTopic))
            .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
            .collect();
        if &current == desired {
            return Ok(false);
        }

        // AlterConfigs replaces the topic's whole dynamic set, which is what an owner wants.
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(name));
        for (key, value) in desired {
            alter = alter.set(key, value);
        }
        let results = self
            .admin
            .alter_configs([&alter], &options())
            .await
            .map_err(|e| admin_error("alter config", name, e))?;
        for result in results {
            result.map_err(|(_, code)| admin_error("alter config", name, code))?;
        }
        Ok(true)
    }

    /// Partitions of `name`, or `None` when the topic does not exist.
    pub async fn partition_count(&self, name: &str) -> Result<Option<i32>, TopicError> {
        let client = self.admin.inner();
        let metadata = client
            .fetch_metadata(Some(name), ADMIN_TIMEOUT)
            .map_err(|e| admin_error("read metadata", &self.bootstrap, e))?;
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
            return Ok(None);
        };
        match topic.error() {
            None => Ok(Some(topic.partitions().len() as i32)),
            Some(code)
                if RDKafkaErrorCode::from(code) == RDKafkaErrorCode::UnknownTopicOrPartition =>
            {
                Ok(None)
            }
            Some(code) => Err(admin_error(
                "read metadata",
                name,
                RDKafkaErrorCode::from(code),
            )),
        }
    }
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT))
}

fn admin_error(action: &'static str, topic: &str, reason: impl ToString) -> TopicError {
    TopicError::Admin {
        action,
        topic: topic.to_string(),
        reason: reason.to_string(),
    }
}

/// Kafka errors that waiting may heal (broker restarting, leader moving).
pub fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotController
        )
    )
}
