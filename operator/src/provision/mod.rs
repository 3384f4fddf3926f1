//! External provisioning: what an EnergyPlatform needs outside Kubernetes — the Kafka topic
//! (and its dead-letter topic) and the RabbitMQ alert topology. Each step converges: run it
//! again and it changes nothing; run it after a hand-made change and it puts things back,
//! except where that would lose data (fewer partitions, a queue with other arguments), which
//! is reported as an error instead.
//!
//! The reconciler calls these with credentials read from the referenced Secrets; the
//! `operator provision` command calls them from a resource file, without a cluster.

pub mod kafka;
pub mod rabbitmq;

pub use kafka::{KafkaProvisioner, TopicError, TopicOutcome};
pub use rabbitmq::{RabbitError, RabbitProvisioner};
