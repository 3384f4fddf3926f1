//! The EnergyPlatform operator.
//!
//! - [`resource`]: the `EnergyPlatform` custom resource (spec, status, validation), from which
//!   the CRD YAML in `crds/` is generated (`cargo run -p operator --bin crdgen`).
//! - [`provision`]: the Kafka topic and RabbitMQ topology a resource asks for, converged
//!   through the brokers' own APIs.
//! - [`workloads`]: the Kubernetes objects a resource asks for (billing and recommender
//!   Deployments and Services, the thresholds ConfigMap, the carbon function), built as values.
//! - [`controller`]: the reconciler that converges all of it, keeps the status, cleans up on
//!   deletion, and the `operator run` process around it (leader election, metrics, health).

pub mod controller;
pub mod provision;
pub mod resource;
pub mod workloads;

pub use resource::{EnergyPlatform, EnergyPlatformSpec, EnergyPlatformStatus};
