//! The EnergyPlatform controller: a `kube::runtime::Controller` over `EnergyPlatform` objects
//! that owns their Deployments, Services and ConfigMaps.
//!
//! Each reconcile runs in one `tracing` span named after the object and goes through kube's
//! `finalizer()`: the Apply arm ([`reconcile`]) converges, in order, the Kafka topic, the
//! RabbitMQ topology, the carbon function, and the billing and recommender workloads, then
//! writes the status (conditions per component plus `Ready`); the Cleanup arm ([`cleanup`])
//! removes the function and, under `deletionPolicy: Delete`, the topic and queues, giving up
//! after a bounded time so a namespace can always be deleted.
//!
//! Every Kubernetes write is a server-side apply under [`FIELD_MANAGER`], made only when the
//! live object differs from the desired one ([`apply`]), so a steady-state resync writes
//! nothing. The `operator run` command wraps [`run`] with leader election, metrics and health
//! endpoints ([`runner`]).

pub mod apply;
mod carbon;
mod cleanup;
pub mod leader;
pub mod metrics;
mod reconcile;
pub mod runner;
mod secrets;
pub mod status;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::EnergyPlatform;
use crate::provision::{KafkaProvisioner, RabbitError, TopicError};
use crate::workloads::{FIELD_MANAGER, MANAGED_BY_LABEL};
use metrics::Metrics;
pub use secrets::SecretError;

/// Finalizer the controller puts on every EnergyPlatform, so it can clean up before deletion.
pub const FINALIZER: &str = "energy.platform.dev/cleanup";

/// Longest wait between two attempts at a failing resource.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why a reconcile, or a step of it, failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("kubernetes api: {action}")]
    Kube {
        /// What was attempted, naming the object.
        action: String,
        /// What the client said.
        #[source]
        source: kube::Error,
    },
    /// A referenced Secret or key is missing or unreadable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The Kafka topic could not be brought to the spec.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The RabbitMQ topology could not be brought to the spec.
    #[error(transparent)]
    Rabbit(#[from] RabbitError),
    /// The OpenFaaS gateway refused or could not be reached.
    #[error("openfaas gateway {url}: {reason}")]
    Gateway {
        /// The URL called, without credentials.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A step took longer than it may.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The step.
        what: String,
        /// Its limit.
        after: Duration,
    },
    /// The blocking task that talks to Kafka died.
    #[error("kafka provisioning task ended abnormally")]
    KafkaTask(#[source] tokio::task::JoinError),
    /// The resource has no namespace (the CRD is namespaced, so only a hand-made object can).
    #[error("energyplatform {0} has no namespace")]
    NotNamespaced(String),
    /// Some components did not converge; their conditions say why.
    #[error("components not converged: {0}")]
    NotConverged(String),
    /// The HTTP client for the gateway could not be built.
    #[error("cannot build the http client")]
    HttpClient(#[source] reqwest::Error),
    /// Adding or removing the finalizer failed, or a finalizer arm failed.
    #[error("finalizer {FINALIZER}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// Result of controller operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short CamelCase name of the failure, used as condition reason, Event reason and
    /// metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "KubernetesApiError",
            Error::Secret(_) => "SecretNotFound",
            Error::Topic(TopicError::PartitionDecrease { .. }) => "PartitionDecrease",
            Error::Topic(TopicError::Admin { .. }) | Error::KafkaTask(_) => "KafkaError",
            Error::Rabbit(_) => "RabbitMqError",
            Error::Gateway { .. } => "GatewayError",
            Error::Timeout { .. } => "Timeout",
            Error::NotNamespaced(_) => "NotNamespaced",
            Error::NotConverged(_) => "NotConverged",
            Error::HttpClient(_) => "HttpClientError",
            Error::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.reason(),
                _ => "FinalizerError",
            },
        }
    }

    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }
}

/// Tunables of the controller.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Time between two reconciles of an unchanged resource (drift correction).
    pub resync: Duration,
    /// How long cleanup retries unreachable brokers before giving up.
    pub cleanup_timeout: Duration,
    /// Most resources reconciled at once.
    pub concurrency: u16,
    /// Limit of one call to the OpenFaaS gateway.
    pub gateway_timeout: Duration,
    /// Limit of one broker step (connect and declare, or one Kafka pass).
    pub broker_timeout: Duration,
    /// Identity of this replica in Events (for example the pod name).
    pub instance: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            namespace: None,
            resync: Duration::from_secs(300),
            cleanup_timeout: Duration::from_secs(60),
            concurrency: 4,
            gateway_timeout: Duration::from_secs(10),
            broker_timeout: Duration::from_secs(60),
            instance: None,
        }
    }
}

/// What every reconcile shares: clients, settings, metrics, and per-object backoff.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Tunables.
    pub settings: Settings,
    /// Reconcile counters and timings.
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    http: reqwest::Client,
    /// One admin client per bootstrap list, reused across reconciles; the lock is held only to
    /// look up or insert.
    kafka: Mutex<HashMap<String, Arc<KafkaProvisioner>>>,
    /// Consecutive failures per `namespace/name`, for error_policy's backoff; reset on success.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context for `client`.
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Result<Self> {
        // reqwest is built without a crypto provider of its own; ring is the tree's only one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.gateway_timeout)
            .build()
            .map_err(Error::HttpClient)?;
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance: settings.instance.clone(),
        };
        Ok(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            http,
            kafka: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    /// The Kafka admin client for `bootstrap`, created on first use.
    fn kafka(&self, bootstrap: &str) -> Result<Arc<KafkaProvisioner>> {
        let mut clients = self.kafka.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(bootstrap) {
            return Ok(client.clone());
        }
        let client = Arc::new(KafkaProvisioner::new(bootstrap)?);
        clients.insert(bootstrap.to_string(), client.clone());
        Ok(client)
    }

    /// Publishes an Event about `platform`; a failure to publish is logged, never fatal.
    async fn event(&self, platform: &EnergyPlatform, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            // The Events API caps notes at 1 kB.
            note: Some(truncate(note, 1000)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(error) = self
            .recorder
            .publish(&event, &platform.object_ref(&()))
            .await
        {
            warn!(%error, reason, "cannot publish event");
        }
    }

    fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures.entry(key.to_string()).or_default();
        *count = count.saturating_add(1);
        backoff_after(*count)
    }

    fn reset_backoff(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

/// Runs the controller until `shutdown` completes, then lets in-flight reconciles finish.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let (platforms, deployments, services, config_maps) = match &ctx.settings.namespace {
        Some(ns) => (
            Api::<EnergyPlatform>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
            Api::<ConfigMap>::namespaced(client, ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    // Only objects this operator labelled are watched, not every Deployment in the cluster.
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}"));
    let config = ControllerConfig::default().concurrency(ctx.settings.concurrency);
    info!(namespace = ?ctx.settings.namespace, "controller starting");
    Controller::new(platforms, watcher::Config::default())
        .owns(deployments, owned.clone())
        .owns(services, owned.clone())
        .owns(config_maps, owned)
        .with_config(config)
        .graceful_shutdown_on(shutdown)
        .run(reconcile_object, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(object = %object, "reconciled"),
                Err(error) => debug!(%error, "reconcile did not complete"),
            }
        })
        .await;
    info!("controller stopped");
}

/// One reconcile: the finalizer's Apply or Cleanup arm, in a span naming the object.
async fn reconcile_object(platform: Arc<EnergyPlatform>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = object_key(&platform);
    let span = info_span!("reconcile", object = %key, generation = platform.metadata.generation);
    let ns = platform
        .namespace()
        .ok_or_else(|| Error::NotNamespaced(platform.name_any()))?;
    let api = Api::<EnergyPlatform>::namespaced(ctx.client.clone(), &ns);

    let result = finalizer(&api, FINALIZER, platform, |event| async {
        match event {
            finalizer::Event::Apply(platform) => reconcile::apply(&platform, &ctx).await,
            finalizer::Event::Cleanup(platform) => cleanup::cleanup(&platform, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));

    ctx.metrics.reconciled(started.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&key);
    }
    result
}

/// Requeues a failed resource with exponential backoff (1 s doubling to 5 min).
fn error_policy(platform: Arc<EnergyPlatform>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = object_key(&platform);
    let backoff = ctx.backoff(&key);
    ctx.metrics.failed(error.reason());
    warn!(object = %key, %error, reason = error.reason(), ?backoff, "reconcile failed; retrying");
    Action::requeue(backoff)
}

/// Wait after the `failures`-th failure in a row: 1 s, doubling, at most [`MAX_BACKOFF`].
fn backoff_after(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(9);
    Duration::from_secs(1 << exponent).min(MAX_BACKOFF)
}

fn object_key(platform: &EnergyPlatform) -> String {
    format!(
        "{}/{}",
        platform.namespace().unwrap_or_default(),
        platform.name_any()
    )
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_event_notes_are_cut_at_a_character_boundary() {
        let note = "é".repeat(600);

        let cut = truncate(note, 1000);

        assert_eq!(cut.len(), 1000);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn backoff_doubles_from_a_second_up_to_five_minutes() {
        let waits: Vec<u64> = [1, 2, 3, 9, 10, 50]
            .map(|n| backoff_after(n).as_secs())
            .into();

        assert_eq!(waits, [1, 2, 4, 256, 300, 300]);
    }

    #[test]
    fn a_partition_decrease_is_reported_under_its_own_reason() {
        let error = Error::Topic(TopicError::PartitionDecrease {
            topic: "t".into(),
            actual: 4,
            requested: 2,
        });

        assert_eq!(error.reason(), "PartitionDecrease");
        assert!(error.to_string().contains("has 4 partitions"), "{error}");
    }
}
