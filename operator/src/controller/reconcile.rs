//! The Apply arm: converge every component in order, record a condition for each, write the
//! status when it changed, and publish Events for what changed or failed.
//!
//! A failing component does not stop the others (a partition decrease should not keep the
//! recommender's thresholds from updating); the reconcile then ends in an error so
//! error_policy retries it with backoff.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::info;

use super::apply::{Applied, apply_if_changed};
use super::secrets::{BasicAuth, SecretReader};
use super::status::{
    self, BILLING, CARBON_FUNCTION, ComponentReport, KAFKA_TOPIC, RABBIT_MQ, RECOMMENDER,
};
use super::{Context, Error, Result, carbon};
use crate::EnergyPlatform;
use crate::provision::{RabbitProvisioner, TopicError, TopicOutcome};
use crate::resource::{EnergyPlatformStatus, KafkaSpec, RabbitMqSpec};
use crate::workloads::{platform as workloads, thresholds};

/// Secrets a reconcile needs, each read once.
struct Secrets {
    amqp_uri: Result<String>,
    database_url: Result<()>,
    gateway_auth: Result<Option<BasicAuth>>,
}

impl Secrets {
    async fn read(ctx: &Context, namespace: &str, platform: &EnergyPlatform) -> Self {
        let reader = SecretReader::new(ctx.client.clone(), namespace);
        let spec = &platform.spec;
        let gateway_auth = match &spec.carbon_function.gateway_auth_secret_ref {
            Some(reference) => reader.basic_auth(reference).await.map(Some),
            None => Ok(None),
        };
        Self {
            amqp_uri: reader
                .value(&spec.rabbitmq.uri_secret_ref)
                .await
                .map_err(Error::from),
            // Only checked: the workloads read it through a secretKeyRef.
            database_url: reader
                .value(&spec.database.url_secret_ref)
                .await
                .map(drop)
                .map_err(Error::from),
            gateway_auth: gateway_auth.map_err(Error::from),
        }
    }
}

/// Converges `platform` and writes its status.
pub(super) async fn apply(platform: &EnergyPlatform, ctx: &Context) -> Result<Action> {
    let namespace = platform
        .namespace()
        .ok_or_else(|| Error::NotNamespaced(platform.name_any()))?;
    let secrets = Secrets::read(ctx, &namespace, platform).await;
    let mut reports = Vec::with_capacity(status::COMPONENTS.len());
    let mut changes = Vec::new();

    // Kafka first: billing and the recommender are no use without their topic.
    let (report, partitions) = match ensure_topic(ctx, &platform.spec.kafka).await {
        Ok(outcome) => (
            topic_report(&platform.spec.kafka, &outcome, &mut changes),
            Some(outcome.partitions),
        ),
        Err(error @ Error::Topic(TopicError::PartitionDecrease { actual, .. })) => {
            (failed(KAFKA_TOPIC, &error), Some(actual))
        }
        Err(error) => (failed(KAFKA_TOPIC, &error), None),
    };
    reports.push(report);

    reports.push(
        match ensure_rabbit(ctx, &secrets, &platform.spec.rabbitmq).await {
            Ok(()) => ComponentReport::ok(RABBIT_MQ, "TopologyDeclared", rabbit_message(platform)),
            Err(error) => failed(RABBIT_MQ, &error),
        },
    );

    reports.push(ensure_function(platform, ctx, &secrets, &mut changes).await);

    let report = ensure_workload(
        ctx,
        &namespace,
        BILLING,
        &workloads::billing_deployment(platform),
        &workloads::billing_service(platform),
        None,
        &[&secrets.database_url],
        &mut changes,
    )
    .await;
    reports.push(report);

    let config_map = thresholds::config_map(platform);
    let amqp_uri = secrets.amqp_uri.as_ref().map(drop).map_err(clone_error);
    let report = ensure_workload(
        ctx,
        &namespace,
        RECOMMENDER,
        &workloads::recommender_deployment(platform),
        &workloads::recommender_service(platform),
        Some(&config_map),
        &[&secrets.database_url, &amqp_uri],
        &mut changes,
    )
    .await;
    reports.push(report);

    finish(platform, ctx, &namespace, reports, partitions, changes).await
}

/// Writes the status, publishes Events, and decides when to come back.
async fn finish(
    platform: &EnergyPlatform,
    ctx: &Context,
    namespace: &str,
    reports: Vec<ComponentReport>,
    partitions: Option<i32>,
    changes: Vec<String>,
) -> Result<Action> {
    let now = status::now_rfc3339();
    let previous = platform.status.as_ref();
    let next = status::next_status(
        previous,
        platform.metadata.generation,
        &reports,
        partitions,
        &now,
    );
    let api = Api::<EnergyPlatform>::namespaced(ctx.client.clone(), namespace);
    let written = status::write_status(&api, platform, &next)
        .await
        .map_err(|e| Error::kube(format!("write status of {}", platform.name_any()), e))?;

    ctx.metrics.wrote(changes.len() as u64 + u64::from(written));
    for change in &changes {
        info!(change = %change, "converged");
        ctx.event(platform, EventType::Normal, "Applied", change.clone())
            .await;
    }
    publish_transitions(platform, ctx, previous, &next).await;
    if written {
        info!(ready = is_ready(&next), "status updated");
    }

    let failing: Vec<&str> = reports.iter().filter(|r| !r.ok).map(|r| r.type_).collect();
    if failing.is_empty() {
        Ok(Action::requeue(ctx.settings.resync))
    } else {
        Err(Error::NotConverged(failing.join(", ")))
    }
}

/// A Normal Event when a condition becomes True, a Warning for every False one (the Recorder
/// folds repeats into one Event series).
async fn publish_transitions(
    platform: &EnergyPlatform,
    ctx: &Context,
    previous: Option<&EnergyPlatformStatus>,
    next: &EnergyPlatformStatus,
) {
    for condition in &next.conditions {
        let before = previous
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition.type_))
            .map(|c| c.status.as_str());
        let note = format!("{}: {}", condition.type_, condition.message);
        if condition.status == "False" {
            ctx.event(platform, EventType::Warning, &condition.reason, note)
                .await;
        } else if before != Some("True") {
            ctx.event(platform, EventType::Normal, &condition.reason, note)
                .await;
        }
    }
}

fn is_ready(status: &EnergyPlatformStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == status::READY && c.status == "True")
}

/// Runs the Kafka pass on a blocking thread: the provisioner's metadata read
/// (`fetch_metadata`) blocks its thread for up to its timeout.
async fn ensure_topic(ctx: &Context, spec: &KafkaSpec) -> Result<TopicOutcome> {
    let kafka = ctx.kafka(&spec.bootstrap_servers)?;
    let spec = spec.clone();
    let handle = tokio::runtime::Handle::current();
    let pass = tokio::task::spawn_blocking(move || handle.block_on(kafka.ensure(&spec)));
    let outcome = with_timeout("kafka topic", ctx.settings.broker_timeout, pass)
        .await?
        .map_err(Error::KafkaTask)??;
    Ok(outcome)
}

fn topic_report(
    spec: &KafkaSpec,
    outcome: &TopicOutcome,
    changes: &mut Vec<String>,
) -> ComponentReport {
    if outcome.created {
        changes.push(format!(
            "created kafka topic {} with {} partitions",
            spec.topic, outcome.partitions
        ));
    }
    if let Some(from) = outcome.partitions_raised_from {
        changes.push(format!(
            "raised kafka topic {} from {from} to {} partitions",
            spec.topic, outcome.partitions
        ));
    }
    if outcome.config_corrected {
        changes.push(format!(
            "corrected the configuration of kafka topic {}",
            spec.topic
        ));
    }
    let message = format!("topic {} has {} partitions", spec.topic, outcome.partitions);
    ComponentReport::ok(KAFKA_TOPIC, "TopicReady", message)
}

async fn ensure_rabbit(ctx: &Context, secrets: &Secrets, spec: &RabbitMqSpec) -> Result<()> {
    let uri = secrets.amqp_uri.as_ref().map_err(clone_error)?;
    let pass = async {
        let rabbit = RabbitProvisioner::connect(uri).await?;
        rabbit.ensure(spec).await?;
        Ok::<_, Error>(())
    };
    with_timeout("rabbitmq topology", ctx.settings.broker_timeout, pass).await?
}

fn rabbit_message(platform: &EnergyPlatform) -> String {
    let spec = &platform.spec.rabbitmq;
    format!(
        "exchange {} with queue {}, dead-letter exchange {}",
        spec.exchange, spec.alert_queue, spec.dead_letter_exchange
    )
}

async fn ensure_function(
    platform: &EnergyPlatform,
    ctx: &Context,
    secrets: &Secrets,
    changes: &mut Vec<String>,
) -> ComponentReport {
    let spec = &platform.spec.carbon_function;
    let result = async {
        let auth = secrets.gateway_auth.as_ref().map_err(clone_error)?;
        carbon::ensure(platform, ctx, auth.as_ref()).await
    }
    .await;
    match result {
        Ok(done) => {
            changes.extend(done);
            let message = format!(
                "function {}/{} runs {} ({:?} mode)",
                spec.namespace, spec.name, spec.image, spec.mode
            );
            ComponentReport::ok(CARBON_FUNCTION, "FunctionDeployed", message)
        }
        Err(error) => failed(CARBON_FUNCTION, &error),
    }
}

/// Applies a workload's objects, then reports it failed if a Secret it needs is missing: the
/// objects are still worth applying, their pods start once the Secret appears.
#[allow(clippy::too_many_arguments)]
async fn ensure_workload(
    ctx: &Context,
    namespace: &str,
    condition: &'static str,
    deployment: &Deployment,
    service: &Service,
    config_map: Option<&ConfigMap>,
    needed_secrets: &[&Result<()>],
    changes: &mut Vec<String>,
) -> ComponentReport {
    let result = async {
        if let Some(config_map) = config_map {
            let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace);
            let applied = apply_if_changed(&api, config_map.clone()).await;
            record(changes, "configmap", &config_map.name_any(), applied)?;
        }
        let api = Api::<Deployment>::namespaced(ctx.client.clone(), namespace);
        let applied = apply_if_changed(&api, deployment.clone()).await;
        record(changes, "deployment", &deployment.name_any(), applied)?;
        let api = Api::<Service>::namespaced(ctx.client.clone(), namespace);
        let applied = apply_if_changed(&api, service.clone()).await;
        record(changes, "service", &service.name_any(), applied)?;
        for secret in needed_secrets {
            secret.as_ref().map_err(clone_error)?;
        }
        Ok::<_, Error>(())
    }
    .await;
    match result {
        Ok(()) => {
            let message = format!("deployment and service {} applied", deployment.name_any());
            ComponentReport::ok(condition, "Applied", message)
        }
        Err(error) => failed(condition, &error),
    }
}

fn record(
    changes: &mut Vec<String>,
    kind: &str,
    name: &str,
    applied: Result<Applied, kube::Error>,
) -> Result<()> {
    match applied.map_err(|e| Error::kube(format!("apply {kind} {name}"), e))? {
        Applied::Unchanged => {}
        Applied::Created => changes.push(format!("created {kind} {name}")),
        Applied::Updated => changes.push(format!("updated {kind} {name}")),
    }
    Ok(())
}

fn failed(condition: &'static str, error: &Error) -> ComponentReport {
    ComponentReport::failed(condition, error.reason(), error.to_string())
}

/// Secret errors are read once and reported under several components.
fn clone_error(error: &Error) -> Error {
    match error {
        Error::Secret(secret) => Error::Secret(secret.clone()),
        other => Error::NotConverged(other.to_string()),
    }
}

async fn with_timeout<T>(
    what: &str,
    limit: Duration,
    future: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| Error::Timeout {
            what: what.to_string(),
            after: limit,
        })
}
