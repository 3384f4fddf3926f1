//! Shared set-up of the operator's integration tests: the CRDs installed on the dev API server,
//! a namespace, a RabbitMQ vhost and Kafka topic names per test, the Secrets a resource
//! references, a resource builder, the controller running in-process on a task, and waits
//! with deadlines.

#![allow(dead_code)] // Each test binary uses its own part of the support code.

pub mod faas_provider;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use energy_testkit::kafka::TestKafka;
use energy_testkit::kube::TestNamespace;
use energy_testkit::rabbitmq::TestVhost;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use operator::EnergyPlatform;
use operator::controller::metrics::Metrics;
use operator::controller::{Context, Settings};
use operator::resource::Condition;
use serde_json::json;
use tokio::task::JoinHandle;

/// Longest a test waits for the controller to get somewhere.
pub const CONVERGE: Duration = Duration::from_secs(90);

/// Field manager of the tests' own writes (not the operator's).
const TEST_MANAGER: &str = "energy-operator-tests";

/// One test's corner of every service.
pub struct World {
    /// Client and namespace.
    pub ns: TestNamespace,
    /// The RabbitMQ vhost the resource's AMQP Secret points at.
    pub vhost: TestVhost,
    /// The Kafka broker.
    pub kafka: TestKafka,
    /// The consumption topic of this test's resource.
    pub topic: String,
}

impl World {
    /// A namespace with the `rabbitmq` and `postgres` Secrets, a vhost, a topic name, and the
    /// EnergyPlatform CRD installed.
    pub async fn create(prefix: &str) -> World {
        let ns = TestNamespace::create(prefix)
            .await
            .expect("a test namespace");
        install_crd(&ns.client, EnergyPlatform::crd()).await;
        let vhost = TestVhost::create(prefix).await.expect("a test vhost");
        let kafka = TestKafka::connect().await.expect("the dev kafka broker");
        let topic = kafka.topic_name(prefix);
        let world = World {
            ns,
            vhost,
            kafka,
            topic,
        };
        world
            .secret("rabbitmq", "uri", &world.vhost.amqp_url.clone())
            .await;
        world
            .secret("postgres", "url", "postgres://energy:secret@db:5432/energy")
            .await;
        world
    }

    /// The client.
    pub fn client(&self) -> Client {
        self.ns.client.clone()
    }

    /// EnergyPlatforms of the namespace.
    pub fn platforms(&self) -> Api<EnergyPlatform> {
        Api::namespaced(self.client(), &self.ns.name)
    }

    /// Any namespaced kind of the namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client(), &self.ns.name)
    }

    /// Creates or replaces a Secret with one key.
    pub async fn secret(&self, name: &str, key: &str, value: &str) {
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name},
            "stringData": {key: value},
        }))
        .expect("a valid Secret");
        self.api::<Secret>()
            .patch(
                name,
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("the secret is stored");
    }

    /// A resource for this world: `Deployment` mode with the function in the test namespace,
    /// 3 partitions, `deletionPolicy: Delete`.
    pub fn platform(&self, name: &str) -> EnergyPlatform {
        let value = json!({
            "apiVersion": "energy.platform.dev/v1alpha1",
            "kind": "EnergyPlatform",
            "metadata": {"name": name, "namespace": self.ns.name},
            "spec": {
                "kafka": {
                    "bootstrapServers": self.kafka.bootstrap,
                    "topic": self.topic,
                    "partitions": 3,
                    "replicationFactor": 1,
                    "topicConfig": {"retention.ms": "86400000"}
                },
                "rabbitmq": {
                    "uriSecretRef": {"name": "rabbitmq", "key": "uri"},
                    "exchange": "energy.alerts",
                    "alertQueue": "energy.alerts.red",
                    "deadLetterExchange": "energy.alerts.dlx"
                },
                "database": {"urlSecretRef": {"name": "postgres", "key": "url"}},
                "carbonFunction": {
                    "image": "carbon-calculator:1.0",
                    "mode": "Deployment",
                    "namespace": self.ns.name,
                    "defaultRegion": "GB"
                },
                "billing": {"image": "billing:1.0"},
                "recommender": {"image": "recommender:1.0", "replicas": 2},
                "thresholds": {
                    "absoluteKwhPerHour": 5.0,
                    "relativeFactor": 1.5,
                    "clearRatio": 1.1,
                    "timeZone": "Europe/London"
                },
                "deletionPolicy": "Delete"
            }
        });
        serde_json::from_value(value).expect("a valid EnergyPlatform")
    }

    /// Creates `platform`.
    pub async fn create_platform(&self, platform: &EnergyPlatform) -> EnergyPlatform {
        self.platforms()
            .create(&PostParams::default(), platform)
            .await
            .expect("the resource is accepted")
    }

    /// Changes the spec of `name` with a merge patch.
    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) -> EnergyPlatform {
        self.platforms()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .expect("the change is accepted")
    }

    /// Waits until the resource is Ready for its current generation.
    pub async fn wait_ready(&self, name: &str) -> EnergyPlatform {
        let api = self.platforms();
        eventually(&format!("{name} to be Ready"), CONVERGE, || async {
            let platform = api.get(name).await.ok()?;
            let status = platform.status.as_ref()?;
            let ready = condition(&platform, "Ready")?.status == "True";
            (ready && status.observed_generation == platform.metadata.generation)
                .then_some(platform)
        })
        .await
    }

    /// Waits until `name` is gone from the API server.
    pub async fn wait_deleted(&self, name: &str) {
        let api = self.platforms();
        eventually(&format!("{name} to be deleted"), CONVERGE, || async {
            matches!(api.get_opt(name).await, Ok(None)).then_some(())
        })
        .await
    }

    /// Waits for an Event about `name` that `wanted` accepts: the operator publishes its Events
    /// after the status write they follow, so a test that has seen the status polls for them.
    pub async fn wait_event(
        &self,
        name: &str,
        what: &str,
        wanted: impl Fn(&(String, String, String)) -> bool,
    ) -> (String, String, String) {
        eventually(what, CONVERGE, || async {
            self.events(name)
                .await
                .into_iter()
                .find(|event| wanted(event))
        })
        .await
    }

    /// Events about the resource `name`, as `(type, reason, note)`.
    pub async fn events(&self, name: &str) -> Vec<(String, String, String)> {
        let api = self.api::<k8s_openapi::api::events::v1::Event>();
        let events = api.list(&Default::default()).await.expect("events list");
        events
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// The condition `type_` of a resource.
pub fn condition(platform: &EnergyPlatform, type_: &str) -> Option<Condition> {
    platform
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Server-side applies a CRD (idempotent across tests) and waits until it is Established.
pub async fn install_crd(client: &Client, crd: CustomResourceDefinition) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let name = crd.name_any();
    api.patch(
        &name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("the CRD is accepted");
    eventually(
        &format!("CRD {name} to be established"),
        CONVERGE,
        || async {
            let crd = api.get(&name).await.ok()?;
            let conditions = crd.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        },
    )
    .await;
}

/// The controller running in-process on a task, watching one namespace.
pub struct RunningController {
    /// Its context, to read metrics from.
    pub ctx: Arc<Context>,
    task: JoinHandle<()>,
}

impl RunningController {
    /// Starts a controller for `namespace` with a short resync and cleanup bound, adjusted by
    /// `tweak`.
    pub fn start(client: Client, namespace: &str, tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings {
            namespace: Some(namespace.to_string()),
            resync: Duration::from_secs(300),
            cleanup_timeout: Duration::from_secs(20),
            broker_timeout: Duration::from_secs(30),
            instance: Some("test".into()),
            ..Settings::default()
        };
        tweak(&mut settings);
        let metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(Context::new(client, settings, metrics).expect("a context"));
        let task = tokio::spawn(operator::controller::run(
            ctx.clone(),
            std::future::pending(),
        ));
        Self { ctx, task }
    }

    /// Kills the controller wherever it is, as a crash would.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Waits until the controller has finished `count` more reconciles.
    pub async fn wait_reconciles(&self, count: u64) {
        let target = self.ctx.metrics.reconciles() + count;
        eventually(&format!("{count} more reconciles"), CONVERGE, || async {
            (self.ctx.metrics.reconciles() >= target).then_some(())
        })
        .await;
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `probe` until it gives a value; panics naming `what` once `deadline` has passed.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "gave up after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The `openfaas.com/v1` `Function` CRD, as far as the operator writes it (OpenFaaS's own
/// chart installs the full one alongside its function controller).
pub fn openfaas_function_crd() -> CustomResourceDefinition {
    let string_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "functions.openfaas.com"},
        "spec": {
            "group": "openfaas.com",
            "scope": "Namespaced",
            "names": {"kind": "Function", "plural": "functions", "singular": "function"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "required": ["name", "image"],
                        "properties": {
                            "name": {"type": "string"},
                            "image": {"type": "string"},
                            "environment": string_map,
                            "labels": string_map,
                            "annotations": string_map
                        }
                    }}
                }}
            }]
        }
    }))
    .expect("a valid CRD")
}
