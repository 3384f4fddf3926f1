//! The Helm chart, rendered by the real `helm template` with real values and checked object by
//! object: least-privilege RBAC (no cluster-admin, no wildcard, Secrets read by name only),
//! non-root pods with a read-only root file system and probes, the CRD it ships equal to the one
//! generated from the Rust types, and every rendered object accepted by the real API server
//! (server-side dry run).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail, ensure};
use energy_testkit::kube::TestNamespace;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery, Scope};
use kube::{Api, CustomResourceExt};
use operator::EnergyPlatform;
use serde_json::Value;

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/energy-platform-operator")
}

/// Renders the chart into JSON objects.
fn render(namespace: &str, extra: &[&str]) -> anyhow::Result<Vec<Value>> {
    let helm = std::env::var("EP_HELM")
        .context("EP_HELM is not set: start the services with dev/services up (or run dev/test)")?;
    let mut command = Command::new(helm);
    command.args([
        "template",
        "energy",
        "--namespace",
        namespace,
        "--include-crds",
    ]);
    command.arg(chart());
    for value in extra {
        command.args(["--set", value]);
    }
    let output = command.output().context("run helm template")?;
    if !output.status.success() {
        bail!(
            "helm template failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)?;
    let mut objects = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

#[test]
fn rbac_grants_no_wildcards_no_cluster_admin_and_reads_secrets_by_name_only() -> anyhow::Result<()>
{
    let objects = render("energy", &[])?;
    for role in of_kind(&objects, "ClusterRole")
        .into_iter()
        .chain(of_kind(&objects, "Role"))
    {
        for rule in role["rules"].as_array().context("rules")? {
            for field in ["verbs", "resources", "apiGroups"] {
                let values = rule[field].as_array().context("a list")?;
                ensure!(
                    !values.iter().any(|v| v == "*"),
                    "wildcard in {field}: {rule}"
                );
            }
            let resources = rule["resources"].as_array().context("resources")?;
            if resources.iter().any(|r| r == "secrets") {
                ensure!(
                    rule["verbs"] == serde_json::json!(["get"]),
                    "secrets: {rule}"
                );
            }
        }
    }
    for binding in of_kind(&objects, "ClusterRoleBinding") {
        ensure!(
            binding["roleRef"]["name"] != "cluster-admin",
            "binds cluster-admin"
        );
    }
    // The Lease is the only thing written in the operator's own namespace.
    let role = of_kind(&objects, "Role");
    ensure!(role.len() == 1 && role[0]["metadata"]["namespace"] == "energy");
    Ok(())
}

#[test]
fn the_operator_pod_runs_as_non_root_on_a_read_only_file_system_with_probes() -> anyhow::Result<()>
{
    let objects = render("energy", &["replicaCount=2"])?;
    let deployment = of_kind(&objects, "Deployment");
    ensure!(deployment.len() == 1, "one Deployment");
    let spec = &deployment[0]["spec"]["template"]["spec"];
    ensure!(spec["securityContext"]["runAsNonRoot"] == true);
    let container = &spec["containers"][0];
    ensure!(container["securityContext"]["readOnlyRootFilesystem"] == true);
    ensure!(container["securityContext"]["allowPrivilegeEscalation"] == false);
    ensure!(container["securityContext"]["capabilities"]["drop"] == serde_json::json!(["ALL"]));
    ensure!(container["livenessProbe"]["httpGet"]["path"] == "/healthz");
    ensure!(container["readinessProbe"]["httpGet"]["path"] == "/readyz");
    ensure!(container["args"] == serde_json::json!(["run"]));
    ensure!(deployment[0]["spec"]["replicas"] == 2);
    Ok(())
}

#[test]
fn the_chart_ships_the_crd_generated_from_the_rust_types() -> anyhow::Result<()> {
    let objects = render("energy", &[])?;
    let crds = of_kind(&objects, "CustomResourceDefinition");
    ensure!(crds.len() == 1, "one CRD in the chart");
    let generated = serde_json::to_value(EnergyPlatform::crd())?;
    ensure!(
        *crds[0] == generated,
        "charts/.../crds differs from the generated CRD"
    );
    Ok(())
}

#[test]
fn values_outside_the_schema_are_refused_by_helm() -> anyhow::Result<()> {
    for bad in [
        "replicaCount=0",
        "logFormat=xml",
        "image.pullPolicy=Sometimes",
    ] {
        ensure!(render("energy", &[bad]).is_err(), "helm accepted {bad}");
    }
    Ok(())
}

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_api_server() -> anyhow::Result<()> {
    let ns = TestNamespace::create("chart").await?;
    let objects = render(&ns.name, &["example.enabled=true"])?;
    let discovery = Discovery::new(ns.client.clone()).run().await?;
    // The CRD first (for real, so the example resource's kind exists), then the rest dry-run.
    let mut ordered: Vec<&Value> = of_kind(&objects, "CustomResourceDefinition");
    ordered.extend(
        objects
            .iter()
            .filter(|o| o["kind"] != "CustomResourceDefinition"),
    );
    for object in ordered {
        let crd = object["kind"] == "CustomResourceDefinition";
        let params = if crd {
            PatchParams::apply("chart-test").force()
        } else {
            PatchParams::apply("chart-test").force().dry_run()
        };
        let api_version = object["apiVersion"].as_str().context("apiVersion")?;
        let kind = object["kind"].as_str().context("kind")?;
        let name = object["metadata"]["name"].as_str().context("name")?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let (resource, capabilities) = match discovery.resolve_gvk(&gvk) {
            Some(found) => found,
            // The example's kind appears only after the CRD above; describe it from the type.
            None if kind == "EnergyPlatform" => (
                ApiResource::erase::<EnergyPlatform>(&()),
                kube::discovery::ApiCapabilities {
                    scope: Scope::Namespaced,
                    subresources: vec![],
                    operations: vec![],
                },
            ),
            None => bail!("the API server does not know {api_version} {kind}"),
        };
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(ns.client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(ns.client.clone(), &ns.name, &resource),
        };
        if kind == "EnergyPlatform" {
            wait_for_kind(&ns).await?;
        }
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .with_context(|| format!("the API server refused {kind} {name}"))?;
    }
    Ok(())
}

/// Waits until the EnergyPlatform kind is served (the CRD was just applied).
async fn wait_for_kind(ns: &TestNamespace) -> anyhow::Result<()> {
    let api: Api<EnergyPlatform> = Api::namespaced(ns.client.clone(), &ns.name);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while api.list(&Default::default()).await.is_err() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "EnergyPlatform not served within 30s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}
