//! The controller against the real dev services: kube-apiserver and etcd (no kubelet, so
//! Deployments are checked as objects), Kafka and RabbitMQ. Each test has its own namespace,
//! topic names and vhost, and runs the controller in-process on a task.
//!
//! Run with `dev/test` or, with the services up, `source /tmp/energy-platform/env` and
//! `cargo test -p operator --test controller`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};
use operator::controller::FINALIZER;
use operator::workloads::thresholds::HASH_ANNOTATION;
use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use serde_json::json;
use support::{CONVERGE, RunningController, World, condition, eventually};

fn deployment_env(deployment: &Deployment) -> BTreeMap<String, serde_json::Value> {
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref());
    let container = &pod.expect("a pod spec").containers[0];
    container
        .env
        .iter()
        .flatten()
        .map(|var| (var.name.clone(), serde_json::to_value(var).expect("json")))
        .collect()
}

fn pod_annotation(deployment: &Deployment, key: &str) -> Option<String> {
    let template = &deployment.spec.as_ref()?.template;
    template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
        .cloned()
}

async fn topic_config(world: &World, topic: &str, key: &str) -> Option<String> {
    let described = world
        .kafka
        .admin()
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe configs");
    let resource = described.into_iter().next()?.ok()?;
    resource
        .entries
        .into_iter()
        .find(|e| e.name == key)
        .and_then(|e| e.value)
}

async fn resource_versions(world: &World, name: &str) -> Vec<(String, Option<String>)> {
    let mut versions = Vec::new();
    let platform = world.platforms().get(name).await.expect("platform");
    versions.push(("platform".into(), platform.resource_version()));
    for deployment in [format!("{name}-billing"), format!("{name}-recommender")] {
        let live = world
            .api::<Deployment>()
            .get(&deployment)
            .await
            .expect("deployment");
        versions.push((deployment, live.resource_version()));
    }
    for service in [format!("{name}-billing"), format!("{name}-recommender")] {
        let live = world.api::<Service>().get(&service).await.expect("service");
        versions.push((service, live.resource_version()));
    }
    let map = world
        .api::<ConfigMap>()
        .get(&format!("{name}-thresholds"))
        .await
        .expect("map");
    versions.push(("configmap".into(), map.resource_version()));
    let function = world
        .api::<Deployment>()
        .get("carbon-calculator")
        .await
        .expect("function");
    versions.push(("function".into(), function.resource_version()));
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_platform_gets_its_topic_topology_workloads_and_a_ready_status() {
    let world = World::create("op-apply").await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});

    world.create_platform(&world.platform("plat")).await;
    let platform = world.wait_ready("plat").await;

    // Kafka: the topic and its dead-letter topic, with the asked partitions and config.
    assert_eq!(
        world
            .kafka
            .partition_count(&world.topic)
            .await
            .expect("count"),
        3
    );
    let dlq = format!("{}.dlq", world.topic);
    assert_eq!(world.kafka.partition_count(&dlq).await.expect("count"), 3);
    assert_eq!(
        topic_config(&world, &world.topic, "retention.ms")
            .await
            .as_deref(),
        Some("86400000")
    );

    // RabbitMQ: exchanges, queues and the binding, seen through the management API.
    let vhost = &world.vhost.name;
    let exchange = world
        .vhost
        .api_get(&format!("exchanges/{vhost}/energy.alerts"))
        .await;
    assert_eq!(exchange.expect("exchange")["type"], "topic");
    let queue = world
        .vhost
        .api_get(&format!("queues/{vhost}/energy.alerts.red"))
        .await;
    let queue = queue.expect("alert queue");
    assert_eq!(queue["durable"], true);
    assert_eq!(
        queue["arguments"]["x-dead-letter-exchange"],
        "energy.alerts.dlx"
    );
    let dlx = world
        .vhost
        .api_get(&format!("exchanges/{vhost}/energy.alerts.dlx"))
        .await;
    assert_eq!(dlx.expect("dead-letter exchange")["type"], "fanout");
    let bindings = world
        .vhost
        .api_get(&format!("queues/{vhost}/energy.alerts.red/bindings"))
        .await
        .expect("bindings");
    let bound = bindings.as_array().expect("a list");
    assert!(
        bound.iter().any(|b| b["source"] == "energy.alerts"),
        "{bindings}"
    );

    // Workloads: owned by the resource, configured by value or by secret reference.
    let uid = platform.uid().expect("a stored resource has a uid");
    let billing = world
        .api::<Deployment>()
        .get("plat-billing")
        .await
        .expect("billing");
    let recommender = world
        .api::<Deployment>()
        .get("plat-recommender")
        .await
        .expect("rec");
    for owned in [&billing.metadata, &recommender.metadata] {
        let owner = &owned.owner_references.as_ref().expect("owner references")[0];
        assert_eq!(
            (owner.uid.as_str(), owner.controller),
            (uid.as_str(), Some(true))
        );
    }
    let env = deployment_env(&billing);
    assert_eq!(env["KAFKA_TOPIC"]["value"], world.topic.as_str());
    assert_eq!(
        env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"],
        "postgres"
    );
    assert!(
        env["DATABASE_URL"].get("value").is_none(),
        "the secret was copied"
    );
    let env = deployment_env(&recommender);
    assert_eq!(env["AMQP_URL"]["valueFrom"]["secretKeyRef"]["key"], "uri");
    assert_eq!(recommender.spec.as_ref().and_then(|s| s.replicas), Some(2));
    for service in ["plat-billing", "plat-recommender"] {
        let live = world.api::<Service>().get(service).await.expect("service");
        assert!(
            live.owner_references().iter().any(|o| o.uid == uid),
            "{service}"
        );
    }
    let map = world
        .api::<ConfigMap>()
        .get("plat-thresholds")
        .await
        .expect("configmap");
    let thresholds: serde_json::Value =
        serde_json::from_str(&map.data.expect("data")["thresholds.json"]).expect("json");
    assert_eq!(thresholds["absoluteKwhPerHour"], 5.0);
    assert_eq!(thresholds["timeZone"], "Europe/London");

    // Status: every condition True for this generation, partitions reported.
    let status = platform.status.as_ref().expect("status");
    assert_eq!(status.observed_generation, platform.metadata.generation);
    assert_eq!(status.topic_partitions, Some(3));
    for type_ in [
        "Ready",
        "KafkaTopic",
        "RabbitMq",
        "CarbonFunction",
        "Billing",
        "Recommender",
    ] {
        let found = condition(&platform, type_).unwrap_or_else(|| panic!("{type_} missing"));
        assert_eq!(found.status, "True", "{type_}: {}", found.message);
    }
    assert_eq!(platform.finalizers(), [FINALIZER.to_string()]);
    world
        .wait_event(
            "plat",
            "a Normal Applied event about the topic",
            |(t, r, n)| t == "Normal" && r == "Applied" && n.contains("topic"),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_change_rewrites_the_config_map_and_rolls_the_recommender() {
    let world = World::create("op-thresh").await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});
    world.create_platform(&world.platform("plat")).await;
    world.wait_ready("plat").await;
    let before = world
        .api::<Deployment>()
        .get("plat-recommender")
        .await
        .expect("rec");
    let hash_before = pod_annotation(&before, HASH_ANNOTATION).expect("a thresholds hash");

    world
        .patch_spec("plat", json!({"thresholds": {"absoluteKwhPerHour": 9.5}}))
        .await;
    world.wait_ready("plat").await;

    let map = world
        .api::<ConfigMap>()
        .get("plat-thresholds")
        .await
        .expect("configmap");
    let thresholds: serde_json::Value =
        serde_json::from_str(&map.data.expect("data")["thresholds.json"]).expect("json");
    assert_eq!(thresholds["absoluteKwhPerHour"], 9.5);
    let after = world
        .api::<Deployment>()
        .get("plat-recommender")
        .await
        .expect("rec");
    let hash_after = pod_annotation(&after, HASH_ANNOTATION).expect("a thresholds hash");
    assert_ne!(
        hash_before, hash_after,
        "the pod template must change to roll the pods"
    );
    let billing = world
        .api::<Deployment>()
        .get("plat-billing")
        .await
        .expect("billing");
    assert_eq!(pod_annotation(&billing, HASH_ANNOTATION), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_of_an_unchanged_platform_writes_nothing() {
    let world = World::create("op-steady").await;
    let controller = RunningController::start(world.client(), &world.ns.name, |s| {
        s.resync = Duration::from_secs(1);
    });
    world.create_platform(&world.platform("plat")).await;
    world.wait_ready("plat").await;
    // Let the reconciles triggered by the controller's own writes settle first.
    controller.wait_reconciles(3).await;
    let before = resource_versions(&world, "plat").await;
    let writes = controller.ctx.metrics.writes();

    controller.wait_reconciles(3).await;

    assert_eq!(resource_versions(&world, "plat").await, before);
    assert_eq!(
        controller.ctx.metrics.writes(),
        writes,
        "a resync applied something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raised_partitions_reach_kafka_and_the_status() {
    let world = World::create("op-raise").await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});
    world.create_platform(&world.platform("plat")).await;
    world.wait_ready("plat").await;

    world
        .patch_spec("plat", json!({"kafka": {"partitions": 5}}))
        .await;
    let platform = world.wait_ready("plat").await;

    assert_eq!(
        world
            .kafka
            .partition_count(&world.topic)
            .await
            .expect("count"),
        5
    );
    assert_eq!(platform.status.and_then(|s| s.topic_partitions), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_with_more_partitions_than_asked_fails_its_condition_with_the_reason() {
    let world = World::create("op-decr").await;
    world
        .kafka
        .create_topic(&world.topic, 4)
        .await
        .expect("topic");
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});

    world.create_platform(&world.platform("plat")).await;

    let api = world.platforms();
    let platform = eventually("the KafkaTopic condition to fail", CONVERGE, || async {
        let platform = api.get("plat").await.ok()?;
        let kafka = condition(&platform, "KafkaTopic")?;
        (kafka.status == "False").then_some(platform)
    })
    .await;
    let kafka = condition(&platform, "KafkaTopic").expect("KafkaTopic");
    assert_eq!(kafka.reason, "PartitionDecrease");
    assert!(
        kafka.message.contains("has 4 partitions"),
        "{}",
        kafka.message
    );
    assert!(kafka.message.contains("3 were asked"), "{}", kafka.message);
    assert_eq!(
        condition(&platform, "Ready").expect("Ready").status,
        "False"
    );
    assert_eq!(
        condition(&platform, "Billing").expect("Billing").status,
        "True"
    );
    assert_eq!(
        platform.status.as_ref().and_then(|s| s.topic_partitions),
        Some(4)
    );
    assert_eq!(
        world
            .kafka
            .partition_count(&world.topic)
            .await
            .expect("count"),
        4
    );
    world
        .wait_event("plat", "a PartitionDecrease warning", |(t, r, _)| {
            t == "Warning" && r == "PartitionDecrease"
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_by_hand_comes_back_on_resync() {
    let world = World::create("op-drift").await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |s| {
        s.resync = Duration::from_secs(2);
    });
    world.create_platform(&world.platform("plat")).await;
    world.wait_ready("plat").await;

    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    world
        .kafka
        .admin()
        .delete_topics(&[world.topic.as_str()], &options)
        .await
        .expect("topic deleted");

    eventually("the topic to be recreated", CONVERGE, || async {
        let count = world.kafka.partition_count(&world.topic).await.ok()?;
        (count == 3).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_with_policy_delete_removes_topics_queues_and_the_function() {
    let world = World::create("op-del").await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});
    world.create_platform(&world.platform("plat")).await;
    world.wait_ready("plat").await;

    world
        .platforms()
        .delete("plat", &DeleteParams::default())
        .await
        .expect("delete accepted");
    world.wait_deleted("plat").await;

    assert_eq!(
        world
            .kafka
            .partition_count(&world.topic)
            .await
            .expect("count"),
        0
    );
    let dlq = format!("{}.dlq", world.topic);
    assert_eq!(world.kafka.partition_count(&dlq).await.expect("count"), 0);
    let vhost = &world.vhost.name;
    for path in [
        format!("queues/{vhost}/energy.alerts.red"),
        format!("queues/{vhost}/energy.alerts.red.dead"),
        format!("exchanges/{vhost}/energy.alerts"),
    ] {
        assert!(
            world.vhost.api_get(&path).await.is_err(),
            "{path} still exists"
        );
    }
    let function = world.api::<Deployment>().get_opt("carbon-calculator").await;
    assert!(
        function.expect("read").is_none(),
        "the function outlived its resource"
    );
    let events = world.events("plat").await;
    assert!(
        events.iter().any(|(_, r, _)| r == "CleanedUp"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_with_policy_retain_keeps_topics_and_queues() {
    let world = World::create("op-retain").await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});
    let mut platform = world.platform("plat");
    platform.spec.deletion_policy = operator::resource::DeletionPolicy::Retain;
    world.create_platform(&platform).await;
    world.wait_ready("plat").await;

    world
        .platforms()
        .delete("plat", &DeleteParams::default())
        .await
        .expect("delete accepted");
    world.wait_deleted("plat").await;

    assert_eq!(
        world
            .kafka
            .partition_count(&world.topic)
            .await
            .expect("count"),
        3
    );
    let vhost = &world.vhost.name;
    let queue = world
        .vhost
        .api_get(&format!("queues/{vhost}/energy.alerts.red"))
        .await;
    assert_eq!(queue.expect("the queue is kept")["durable"], true);
    let exchange = world
        .vhost
        .api_get(&format!("exchanges/{vhost}/energy.alerts"))
        .await;
    assert!(exchange.is_ok(), "the exchange is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_gives_up_on_unreachable_brokers_and_says_what_it_left_behind() {
    let world = World::create("op-unreach").await;
    // Nothing listens on port 1: both brokers are unreachable.
    world
        .secret("rabbitmq", "uri", "amqp://guest:guest@127.0.0.1:1/%2f")
        .await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |s| {
        s.cleanup_timeout = Duration::from_secs(3);
        s.broker_timeout = Duration::from_secs(3);
    });
    let mut platform = world.platform("plat");
    platform.spec.kafka.bootstrap_servers = "127.0.0.1:1".into();
    world.create_platform(&platform).await;
    let api = world.platforms();
    eventually("the finalizer and a failed status", CONVERGE, || async {
        let platform = api.get("plat").await.ok()?;
        let ready = condition(&platform, "Ready")?;
        (ready.status == "False" && !platform.finalizers().is_empty()).then_some(())
    })
    .await;

    api.delete("plat", &DeleteParams::default())
        .await
        .expect("delete accepted");
    world.wait_deleted("plat").await;

    let events = world.events("plat").await;
    let (_, _, note) = events
        .iter()
        .find(|(t, r, _)| t == "Warning" && r == "CleanupIncomplete")
        .unwrap_or_else(|| panic!("no CleanupIncomplete warning in {events:?}"));
    assert!(
        note.contains(&format!("kafka topics {}", world.topic)),
        "{note}"
    );
    assert!(note.contains("rabbitmq exchanges energy.alerts"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_reconcile_converges_after_a_restart() {
    let world = World::create("op-crash").await;
    let first = RunningController::start(world.client(), &world.ns.name, |_| {});
    world.create_platform(&world.platform("plat")).await;
    // Kill it once it has started working on the resource: the finalizer is its first write.
    let api = world.platforms();
    eventually("the first reconcile to start", CONVERGE, || async {
        let platform = api.get("plat").await.ok()?;
        (!platform.finalizers().is_empty()).then_some(())
    })
    .await;
    first.abort();

    let _second = RunningController::start(world.client(), &world.ns.name, |_| {});
    let platform = world.wait_ready("plat").await;

    assert_eq!(platform.finalizers(), [FINALIZER.to_string()]);
    assert_eq!(
        world
            .kafka
            .partition_count(&world.topic)
            .await
            .expect("count"),
        3
    );
    let deployments = world
        .api::<Deployment>()
        .list(&Default::default())
        .await
        .expect("list");
    let mut names: Vec<String> = deployments.items.iter().map(|d| d.name_any()).collect();
    names.sort();
    assert_eq!(
        names,
        ["carbon-calculator", "plat-billing", "plat-recommender"]
    );
    let vhost = &world.vhost.name;
    assert!(
        world
            .vhost
            .api_get(&format!("queues/{vhost}/energy.alerts.red"))
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_mode_function_is_shaped_like_faas_netes_and_follows_the_resource() {
    let world = World::create("op-fn-dep").await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});
    world.create_platform(&world.platform("plat")).await;
    world.wait_ready("plat").await;

    let deployments = world.api::<Deployment>();
    let function = deployments
        .get("carbon-calculator")
        .await
        .expect("function deployment");
    assert_eq!(function.labels()["faas_function"], "carbon-calculator");
    let pod = function
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod");
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("carbon-calculator:1.0"));
    assert_eq!(
        container.ports.as_ref().expect("ports")[0].container_port,
        8080
    );
    let probe = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref());
    assert_eq!(probe.and_then(|h| h.path.as_deref()), Some("/_/health"));
    assert_eq!(deployment_env(&function)["DEFAULT_REGION"]["value"], "GB");
    let service = world
        .api::<Service>()
        .get("carbon-calculator")
        .await
        .expect("service");
    let spec = service.spec.expect("service spec");
    assert_eq!(
        spec.selector.expect("selector")["faas_function"],
        "carbon-calculator"
    );
    assert_eq!(spec.ports.expect("ports")[0].port, 8080);

    world
        .patch_spec(
            "plat",
            json!({"carbonFunction": {"image": "carbon-calculator:1.1", "defaultRegion": "DE"}}),
        )
        .await;
    world.wait_ready("plat").await;
    let function = deployments
        .get("carbon-calculator")
        .await
        .expect("function deployment");
    let pod = function
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("pod");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("carbon-calculator:1.1")
    );
    assert_eq!(deployment_env(&function)["DEFAULT_REGION"]["value"], "DE");

    world
        .platforms()
        .delete("plat", &DeleteParams::default())
        .await
        .expect("delete");
    world.wait_deleted("plat").await;
    assert!(
        deployments
            .get_opt("carbon-calculator")
            .await
            .expect("read")
            .is_none()
    );
    let services = world.api::<Service>();
    assert!(
        services
            .get_opt("carbon-calculator")
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_resource_mode_writes_an_openfaas_function_object() {
    let world = World::create("op-fn-crd").await;
    support::install_crd(&world.client(), support::openfaas_function_crd()).await;
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});
    let mut platform = world.platform("plat");
    platform.spec.carbon_function.mode = operator::resource::CarbonDeployMode::FunctionResource;
    world.create_platform(&platform).await;
    world.wait_ready("plat").await;

    let functions: Api<kube::api::DynamicObject> = Api::namespaced_with(
        world.client(),
        &world.ns.name,
        &operator::workloads::function::function_api_resource(),
    );
    let function = functions
        .get("carbon-calculator")
        .await
        .expect("function object");
    assert_eq!(function.data["spec"]["image"], "carbon-calculator:1.0");
    assert_eq!(function.data["spec"]["environment"]["DEFAULT_REGION"], "GB");
    let deployments = world.api::<Deployment>();
    assert!(
        deployments
            .get_opt("carbon-calculator")
            .await
            .expect("read")
            .is_none()
    );

    world
        .patch_spec(
            "plat",
            json!({"carbonFunction": {"image": "carbon-calculator:2.0"}}),
        )
        .await;
    world.wait_ready("plat").await;
    let function = functions
        .get("carbon-calculator")
        .await
        .expect("function object");
    assert_eq!(function.data["spec"]["image"], "carbon-calculator:2.0");

    world
        .platforms()
        .delete("plat", &DeleteParams::default())
        .await
        .expect("delete");
    world.wait_deleted("plat").await;
    assert!(
        functions
            .get_opt("carbon-calculator")
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_mode_deploys_through_the_openfaas_provider_api() {
    let world = World::create("op-fn-gw").await;
    let provider = support::faas_provider::FaasProvider::start(&world.ns.name).await;
    let auth: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gateway-auth"},
        "stringData": {"basic-auth-user": provider.user, "basic-auth-password": provider.password},
    }))
    .expect("a secret");
    world
        .api::<k8s_openapi::api::core::v1::Secret>()
        .create(&Default::default(), &auth)
        .await
        .expect("credentials stored");
    let _controller = RunningController::start(world.client(), &world.ns.name, |_| {});
    let mut platform = world.platform("plat");
    let function = &mut platform.spec.carbon_function;
    function.mode = operator::resource::CarbonDeployMode::Gateway;
    function.gateway_url = Some(provider.url.clone());
    function.gateway_auth_secret_ref = Some(operator::resource::SecretRef {
        name: "gateway-auth".into(),
    });
    world.create_platform(&platform).await;
    world.wait_ready("plat").await;

    // The provider reports the function and wrote faas-netes's objects for it.
    let http = reqwest::Client::new();
    let path = format!(
        "/system/function/carbon-calculator?namespace={}",
        world.ns.name
    );
    let status: serde_json::Value = provider
        .get(&http, &path)
        .await
        .expect("an answer")
        .json()
        .await
        .expect("a FunctionStatus");
    assert_eq!(status["image"], "carbon-calculator:1.0");
    assert_eq!(status["envVars"]["DEFAULT_REGION"], "GB");
    let deployments = world.api::<Deployment>();
    let written = deployments
        .get("carbon-calculator")
        .await
        .expect("provider's deployment");
    assert_eq!(written.labels()["faas_function"], "carbon-calculator");
    let refused = http
        .get(format!("{}{path}", provider.url))
        .basic_auth(&provider.user, Some("wrong"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);

    world
        .patch_spec(
            "plat",
            json!({"carbonFunction": {"image": "carbon-calculator:1.2"}}),
        )
        .await;
    world.wait_ready("plat").await;
    let written = deployments
        .get("carbon-calculator")
        .await
        .expect("provider's deployment");
    let pod = written.spec.and_then(|s| s.template.spec).expect("pod");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("carbon-calculator:1.2")
    );

    world
        .platforms()
        .delete("plat", &DeleteParams::default())
        .await
        .expect("delete");
    world.wait_deleted("plat").await;
    assert!(
        deployments
            .get_opt("carbon-calculator")
            .await
            .expect("read")
            .is_none()
    );
    let gone = provider.get(&http, &path).await.expect("an answer");
    assert_eq!(gone.status(), reqwest::StatusCode::NOT_FOUND);
}
