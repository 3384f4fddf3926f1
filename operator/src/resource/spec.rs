//! `EnergyPlatformSpec`: what the user asks for. `///` comments become the CRD's descriptions.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::EnergyPlatformStatus;

/// Desired state of one energy platform: infrastructure it uses, workloads it runs, thresholds.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "energy.platform.dev",
    version = "v1alpha1",
    kind = "EnergyPlatform",
    plural = "energyplatforms",
    shortname = "eplat",
    namespaced,
    status = "EnergyPlatformStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Topic","type":"string","jsonPath":".spec.kafka.topic"}"#,
    printcolumn = r#"{"name":"Partitions","type":"integer","jsonPath":".status.topicPartitions"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EnergyPlatformSpec {
    /// The Kafka cluster and the consumption topic.
    pub kafka: KafkaSpec,
    /// The RabbitMQ broker and the alert topology.
    pub rabbitmq: RabbitMqSpec,
    /// The PostgreSQL database billing and the recommender share.
    pub database: DatabaseSpec,
    /// The carbon calculator function and how it is deployed.
    pub carbon_function: CarbonFunctionSpec,
    /// The billing (ingestion) workload.
    pub billing: WorkloadSpec,
    /// The recommender workload.
    pub recommender: WorkloadSpec,
    /// When usage counts as too high.
    pub thresholds: ThresholdsSpec,
    /// What happens to the Kafka topic and RabbitMQ queues when the resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The Kafka cluster and the topic readings travel on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.partitions >= oldSelf.partitions").message(
    "kafka.partitions may not decrease: Kafka cannot remove partitions from a topic"
))]
pub struct KafkaSpec {
    /// Comma-separated bootstrap servers, `host:port`.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,
    /// Name of the consumption topic.
    #[serde(default = "default_topic")]
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub topic: String,
    /// Number of partitions; may be raised, never lowered. Readings of one property always share
    /// a partition, so this bounds the recommender's parallelism.
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 10000))]
    pub partitions: i32,
    /// Replication factor of the topic (at most the number of brokers).
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 32))]
    pub replication_factor: i32,
    /// Topic configuration entries (for example `retention.ms`), kept in step with the topic.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub topic_config: BTreeMap<String, String>,
}

/// The RabbitMQ broker and the names of the alert topology.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RabbitMqSpec {
    /// Secret key holding the AMQP URI (`amqp://user:password@host:port/vhost`).
    pub uri_secret_ref: SecretKeyRef,
    /// Topic exchange RED alerts are published to.
    #[serde(default = "default_exchange")]
    #[schemars(length(min = 1, max = 255))]
    pub exchange: String,
    /// Durable queue bound to every RED alert, for consumers that must not miss one.
    #[serde(default = "default_alert_queue")]
    #[schemars(length(min = 1, max = 255))]
    pub alert_queue: String,
    /// Exchange that receives messages the alert queue rejects or expires.
    #[serde(default = "default_dead_letter_exchange")]
    #[schemars(length(min = 1, max = 255))]
    pub dead_letter_exchange: String,
}

/// The PostgreSQL database.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Secret key holding the connection URL (`postgres://user:password@host:port/db`).
    pub url_secret_ref: SecretKeyRef,
}

/// How the carbon function is run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CarbonDeployMode {
    /// Through the OpenFaaS gateway's provider API (`/system/functions`), as `faas-cli deploy`
    /// does; works with OpenFaaS Community Edition.
    #[default]
    Gateway,
    /// As the Deployment and Service faas-netes itself creates in the function namespace.
    Deployment,
    /// As an `openfaas.com/v1` Function object, for installs that run the function controller.
    FunctionResource,
}

/// The carbon calculator function.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.mode != 'Gateway' || has(self.gatewayUrl)").message(
    "carbonFunction.gatewayUrl is required when mode is Gateway"
))]
pub struct CarbonFunctionSpec {
    /// Container image of the function.
    #[schemars(length(min = 1))]
    pub image: String,
    /// How the function is deployed.
    #[serde(default)]
    pub mode: CarbonDeployMode,
    /// Base URL of the OpenFaaS gateway; the function is called at
    /// `<gatewayUrl>/function/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub gateway_url: Option<String>,
    /// Secret with the gateway's basic-auth `basic-auth-user` and `basic-auth-password` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_auth_secret_ref: Option<SecretRef>,
    /// Namespace the function runs in (OpenFaaS's function namespace).
    #[serde(default = "default_function_namespace")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Function name.
    #[serde(default = "default_function_name")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Grid region used when a reading names none.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 32))]
    pub default_region: String,
}

/// One of the platform's own workloads.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Container image.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Number of pods.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// CPU and memory for each pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// Requests and limits, as Kubernetes quantities (`250m`, `128Mi`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Requested quantities by resource name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Limits by resource name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// When a reading counts as too high. Usage is compared per hour of interval (kWh/h), so a
/// 15-minute and a one-hour reading are judged alike.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.clearRatio < self.relativeFactor").message(
    "thresholds.clearRatio must be below thresholds.relativeFactor, or an alert never clears"
))]
pub struct ThresholdsSpec {
    /// Absolute limit, kWh per hour of interval; a reading above it may raise a RED alert.
    // The API server compares a whole-number value with the integer part of `minimum`, so
    // `0` passes `minimum: 0.001`; the CEL rule closes that gap.
    #[schemars(range(min = 0.001, max = 1000000.0))]
    #[x_kube(validation = Rule::new("self >= 0.001").message(
        "thresholds.absoluteKwhPerHour must be at least 0.001"
    ))]
    pub absolute_kwh_per_hour: f64,
    /// Relative limit: usage above this multiple of the property's own baseline (same hour of
    /// the week over recent weeks) is too high, once enough history exists.
    #[serde(default = "default_relative_factor")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub relative_factor: f64,
    /// An alert clears once usage falls below this multiple of the baseline (hysteresis).
    #[serde(default = "default_clear_ratio")]
    #[schemars(range(min = 0.1, max = 100.0))]
    #[x_kube(validation = Rule::new("self >= 0.1").message(
        "thresholds.clearRatio must be at least 0.1"
    ))]
    pub clear_ratio: f64,
    /// Weeks of history the baseline looks back over.
    #[serde(default = "default_baseline_weeks")]
    #[schemars(range(min = 1, max = 52))]
    pub baseline_weeks: u32,
    /// Weeks of history needed before the relative rule applies.
    #[serde(default = "default_min_history_weeks")]
    #[schemars(range(min = 1, max = 52))]
    pub min_history_weeks: u32,
    /// Quiet time after an alert for the same property, seconds.
    #[serde(default = "default_cooldown_secs")]
    #[schemars(range(min = 0, max = 604800))]
    pub cooldown_secs: u32,
    /// IANA time zone the hour-of-week baseline is computed in.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
}

/// Fate of external resources (topic, queues) when the EnergyPlatform is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep the topic and queues, with their data.
    #[default]
    Retain,
    /// Delete the topic and queues.
    Delete,
}

/// A key of a Secret in the resource's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret in the resource's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

fn default_topic() -> String {
    energy_contracts::names::CONSUMPTION_TOPIC.to_string()
}
fn default_partitions() -> i32 {
    6
}
fn default_replication_factor() -> i32 {
    1
}
fn default_exchange() -> String {
    energy_contracts::names::ALERT_EXCHANGE.to_string()
}
fn default_alert_queue() -> String {
    "energy.alerts.red".to_string()
}
fn default_dead_letter_exchange() -> String {
    "energy.alerts.dlx".to_string()
}
fn default_function_namespace() -> String {
    "openfaas-fn".to_string()
}
fn default_function_name() -> String {
    "carbon-calculator".to_string()
}
fn default_region() -> String {
    "GB".to_string()
}
fn default_replicas() -> i32 {
    1
}
fn default_relative_factor() -> f64 {
    1.5
}
fn default_clear_ratio() -> f64 {
    1.1
}
fn default_baseline_weeks() -> u32 {
    4
}
fn default_min_history_weeks() -> u32 {
    2
}
fn default_cooldown_secs() -> u32 {
    3600
}
fn default_time_zone() -> String {
    "UTC".to_string()
}
