//! The EnergyPlatform operator.
//!
//! - [`resource`]: the `EnergyPlatform` custom resource (spec, status, validation), from which
//!   the CRD YAML in `crds/` is generated (`cargo run -p operator --bin crdgen`).
//! - [`provision`]: the Kafka topic and RabbitMQ topology a resource asks for, converged
//!   through the brokers' own APIs.
//!
//! The reconciler that turns a resource into the Kafka topic, the RabbitMQ topology, the carbon
//! function and the billing and recommender workloads builds on these types.

pub mod provision;
pub mod resource;

pub use resource::{EnergyPlatform, EnergyPlatformSpec, EnergyPlatformStatus};
