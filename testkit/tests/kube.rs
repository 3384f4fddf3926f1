//! The dev kube-apiserver (with etcd) is real and usable from kube-rs: the operator's own CRD is
//! server-side applied, an EnergyPlatform is created in a namespace of the test's own and read
//! back with the schema's defaults, and the CRD's validation refuses bad objects.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use energy_testkit::kube::TestNamespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, CustomResourceExt, ResourceExt};
use operator::EnergyPlatform;
use serde_json::json;

const FIELD_MANAGER: &str = "energy-testkit";

/// Applies the CRD and waits until the API server serves it.
async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = EnergyPlatform::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("apply CRD")?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let current = crds.get(&name).await?;
        let established = current
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("CRD {name} not established within 30s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn platform(name: &str, partitions: i32, clear_ratio: f64) -> serde_json::Value {
    json!({
        "apiVersion": "energy.platform.dev/v1alpha1",
        "kind": "EnergyPlatform",
        "metadata": { "name": name },
        "spec": {
            "kafka": { "bootstrapServers": "127.0.0.1:9092", "partitions": partitions },
            "rabbitmq": { "uriSecretRef": { "name": "rabbitmq", "key": "uri" } },
            "database": { "urlSecretRef": { "name": "postgres", "key": "url" } },
            "carbonFunction": {
                "image": "carbon-calculator:dev",
                "gatewayUrl": "http://gateway.openfaas:8080"
            },
            "billing": { "image": "billing:dev" },
            "recommender": { "image": "recommender:dev" },
            "thresholds": { "absoluteKwhPerHour": 5.0, "clearRatio": clear_ratio }
        }
    })
}

#[tokio::test]
async fn an_energy_platform_round_trips_with_the_schema_defaults() -> anyhow::Result<()> {
    let ns = TestNamespace::create("crd").await?;
    install_crd(&ns.client).await?;
    let api: Api<EnergyPlatform> = Api::namespaced(ns.client.clone(), &ns.name);

    let applied = api
        .patch(
            "home",
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(platform("home", 3, 1.1)),
        )
        .await
        .context("apply EnergyPlatform")?;
    ensure!(applied.metadata.generation == Some(1));

    let read = api.get("home").await?;
    ensure!(read.spec.kafka.partitions == 3);
    // Defaults the API server filled in from the generated schema.
    ensure!(
        read.spec.kafka.topic == "raw-consumption-events",
        "topic {}",
        read.spec.kafka.topic
    );
    ensure!(read.spec.rabbitmq.exchange == "energy.alerts");
    ensure!(read.spec.carbon_function.namespace == "openfaas-fn");
    ensure!(read.spec.thresholds.cooldown_secs == 3600);
    ensure!(read.spec.billing.replicas == 1);
    Ok(())
}

#[tokio::test]
async fn the_api_server_refuses_fewer_partitions_with_the_rules_message() -> anyhow::Result<()> {
    let ns = TestNamespace::create("cel").await?;
    install_crd(&ns.client).await?;
    let api: Api<EnergyPlatform> = Api::namespaced(ns.client.clone(), &ns.name);
    let params = PatchParams::apply(FIELD_MANAGER);

    api.patch("shrink", &params, &Patch::Apply(platform("shrink", 6, 1.1)))
        .await?;
    let err = api
        .patch("shrink", &params, &Patch::Apply(platform("shrink", 2, 1.1)))
        .await
        .expect_err("decreasing partitions must be refused");
    ensure!(
        err.to_string().contains("may not decrease"),
        "unexpected error: {err}"
    );
    Ok(())
}

#[tokio::test]
async fn the_api_server_refuses_a_clear_ratio_above_the_trigger() -> anyhow::Result<()> {
    let ns = TestNamespace::create("cel").await?;
    install_crd(&ns.client).await?;
    let api: Api<EnergyPlatform> = Api::namespaced(ns.client.clone(), &ns.name);

    let object: EnergyPlatform = serde_json::from_value(platform("flappy", 3, 2.0))?;
    let err = api
        .create(&PostParams::default(), &object)
        .await
        .expect_err("clearRatio 2.0 above relativeFactor 1.5 must be refused");
    ensure!(
        err.to_string().contains("clearRatio must be below"),
        "unexpected error: {err}"
    );
    Ok(())
}
