//! The resource's validation on the real API server, leader election through a real Lease,
//! and the `operator run` process (health, metrics, SIGTERM).
//!
//! Run with `dev/test` or, with the services up, `source /tmp/energy-platform/env` and
//! `cargo test -p operator --test api`.

mod support;

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use operator::EnergyPlatform;
use operator::controller::leader::{LeaderElection, LeaseSettings, LostLease};
use serde_json::{Value, json};
use support::{CONVERGE, World, eventually};

/// Sets `value` at the `/`-separated `path` under `spec`, or removes the field for `None`.
fn with_field(mut object: Value, path: &str, value: Option<Value>) -> Value {
    let mut parts: Vec<&str> = path.split('/').collect();
    let last = parts.pop().expect("a non-empty path");
    let mut target = &mut object["spec"];
    for part in parts {
        target = &mut target[part];
    }
    let fields = target.as_object_mut().expect("an object");
    match value {
        Some(value) => fields.insert(last.to_string(), value),
        None => fields.remove(last),
    };
    object
}

async fn create_raw(world: &World, object: &Value) -> Result<(), String> {
    let resource = ApiResource::erase::<EnergyPlatform>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(world.client(), &world.ns.name, &resource);
    let object: DynamicObject = serde_json::from_value(object.clone()).expect("an object");
    api.create(&PostParams::default(), &object)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resources_are_rejected_with_messages_that_name_the_problem() {
    let world = World::create("op-invalid").await;
    let valid = serde_json::to_value(world.platform("valid")).expect("json");
    let cases: Vec<(&str, Option<Value>, &str)> = vec![
        (
            "carbonFunction/mode",
            Some(json!("Gateway")),
            "carbonFunction.gatewayUrl is required when mode is Gateway",
        ),
        (
            "thresholds/clearRatio",
            Some(json!(2.0)),
            "thresholds.clearRatio must be below thresholds.relativeFactor",
        ),
        ("kafka/partitions", Some(json!(0)), "spec.kafka.partitions"),
        ("kafka/topic", Some(json!("bad topic!")), "spec.kafka.topic"),
        (
            "deletionPolicy",
            Some(json!("Maybe")),
            "spec.deletionPolicy",
        ),
        (
            "carbonFunction/name",
            Some(json!("Carbon_Calc")),
            "spec.carbonFunction.name",
        ),
        (
            "carbonFunction/gatewayUrl",
            Some(json!("ftp://gw")),
            "spec.carbonFunction.gatewayUrl",
        ),
        ("billing/replicas", Some(json!(-1)), "spec.billing.replicas"),
        ("billing/image", None, "spec.billing.image: Required value"),
        // Regression: a whole-number 0 passed `minimum: 0.001` before the CEL rule.
        (
            "thresholds/absoluteKwhPerHour",
            Some(json!(0)),
            "thresholds.absoluteKwhPerHour must be at least 0.001",
        ),
        (
            "thresholds/clearRatio",
            Some(json!(0)),
            "thresholds.clearRatio must be at least 0.1",
        ),
        (
            "rabbitmq/uriSecretRef",
            None,
            "spec.rabbitmq.uriSecretRef: Required value",
        ),
    ];

    create_raw(&world, &valid)
        .await
        .expect("the unchanged resource is valid");
    for (index, (path, value, expected)) in cases.into_iter().enumerate() {
        let mut object = with_field(valid.clone(), path, value.clone());
        object["metadata"]["name"] = json!(format!("invalid-{index}"));

        let error = create_raw(&world, &object)
            .await
            .expect_err(&format!("{path} = {value:?} must be rejected"));

        assert!(error.contains(expected), "{path} = {value:?}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_fewer_partitions_is_rejected_by_the_api_server() {
    let world = World::create("op-fewer").await;
    world.create_platform(&world.platform("plat")).await;

    let patch = Patch::Merge(json!({"spec": {"kafka": {"partitions": 2}}}));
    let error = world
        .platforms()
        .patch("plat", &PatchParams::default(), &patch)
        .await
        .expect_err("3 to 2 partitions must be rejected");

    assert!(
        error
            .to_string()
            .contains("kafka.partitions may not decrease"),
        "{error}"
    );
    let patch = Patch::Merge(json!({"spec": {"kafka": {"partitions": 4}}}));
    world
        .platforms()
        .patch("plat", &PatchParams::default(), &patch)
        .await
        .expect("raising is allowed");
}

fn candidate(client: Client, namespace: &str, identity: &str) -> LeaderElection {
    LeaderElection::new(
        client,
        LeaseSettings {
            namespace: namespace.to_string(),
            name: "operator-leader".into(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(30),
            renew_interval: Duration::from_millis(300),
        },
    )
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    let lease = leases.get("operator-leader").await.ok()?;
    lease.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_waits_for_the_lease_and_the_first_steps_down_when_it_is_taken() {
    let world = World::create("op-lease").await;
    let leases: Api<Lease> = world.api();
    let first = candidate(world.client(), &world.ns.name, "replica-a");
    first.acquire().await;
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    let ns = world.ns.name.clone();
    let client = world.client();
    let waiting = tokio::spawn(async move { candidate(client, &ns, "replica-b").acquire().await });
    // While the first renews, the lease stays its own and the second keeps waiting.
    let renewals = tokio::spawn(async move {
        let lost = first.keep().await;
        (first, lost)
    });
    let renewed_at = |lease: Lease| lease.spec.and_then(|s| s.renew_time).map(|t| t.0);
    let start = renewed_at(leases.get("operator-leader").await.expect("lease"));
    eventually("a renewal by the leader", CONVERGE, || async {
        let now = renewed_at(leases.get("operator-leader").await.ok()?);
        (now > start).then_some(())
    })
    .await;
    assert!(
        !waiting.is_finished(),
        "the second replica took a live lease"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    // The first stops renewing and gives the lease up; the second takes it.
    renewals.abort();
    let release = candidate(world.client(), &world.ns.name, "replica-a");
    release.release().await.expect("released");
    tokio::time::timeout(CONVERGE, waiting)
        .await
        .expect("the second replica acquires within the deadline")
        .expect("no panic");
    let lease = leases.get("operator-leader").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(spec.lease_transitions, Some(1));

    // A replica that still thinks it leads finds out on its next renewal.
    let stale = candidate(world.client(), &world.ns.name, "replica-a");
    let lost = tokio::time::timeout(CONVERGE, stale.keep())
        .await
        .expect("steps down");
    assert!(
        matches!(&lost, LostLease::TakenOver { holder, .. } if holder == "replica-b"),
        "{lost}"
    );
}

/// A port nothing listens on now (the OS picked it; the listener is closed again).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_run_serves_health_and_metrics_leads_and_stops_on_sigterm() {
    let world = World::create("op-run").await;
    let port = free_port();
    let kubeconfig = std::env::var("EP_KUBECONFIG").expect("EP_KUBECONFIG is set");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_operator"))
        .args(["--log-format", "json", "run", "--namespace", &world.ns.name])
        .args([
            "--lease-namespace",
            &world.ns.name,
            "--lease-name",
            "operator-leader",
        ])
        .args(["--identity", "run-test"])
        .args(["--http-address", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the operator binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    eventually("/readyz to answer 200", CONVERGE, || async {
        let response = http.get(format!("{base}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());
    let leases: Api<Lease> = world.api();
    eventually("the lease to be taken", CONVERGE, || async {
        (holder(&leases).await.as_deref() == Some("run-test")).then_some(())
    })
    .await;
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("energyplatform_reconciles_total"), "{text}");
    assert!(
        text.contains("energyplatform_reconcile_duration_seconds"),
        "{text}"
    );

    let pid = child.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(kill.expect("kill runs").success());
    let status = tokio::time::timeout(CONVERGE, child.wait())
        .await
        .expect("exits within the deadline")
        .expect("exit status");

    assert!(status.success(), "{status}");
    assert_eq!(
        holder(&leases).await,
        None,
        "the lease is released on shutdown"
    );
}
