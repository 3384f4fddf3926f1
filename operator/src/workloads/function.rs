//! The carbon calculator function, in the three forms `spec.carbonFunction.mode` chooses:
//!
//! - `Gateway`: a [`FunctionDeployment`], the JSON body of the OpenFaaS provider API
//!   (`POST`/`PUT /system/functions`), field for field as faas-provider's
//!   `types.FunctionDeployment`; [`FunctionStatus`] is what `GET /system/function/<name>`
//!   answers.
//! - `Deployment`: the Deployment and Service faas-netes itself creates for a function, in the
//!   function namespace: named after the function, labelled `faas_function=<name>`, port 8080,
//!   ready when `GET /_/health` answers.
//! - `FunctionResource`: an `openfaas.com/v1` `Function` object for a function controller.
//!
//! The function gets the same environment in every form, so switching forms changes nothing
//! about how it computes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};
use serde::{Deserialize, Serialize};

use super::{FIELD_MANAGER, INSTANCE_LABEL, MANAGED_BY_LABEL, OWNER_ANNOTATION, env};
use super::{owner_key, owner_reference};
use crate::EnergyPlatform;
use crate::resource::CarbonFunctionSpec;

/// The label faas-netes selects function Deployments by, and routes to their Service with.
pub const FAAS_FUNCTION_LABEL: &str = "faas_function";

/// The port an OpenFaaS function container listens on.
pub const FUNCTION_PORT: i32 = 8080;

/// The path OpenFaaS probes a function's readiness on.
pub const HEALTH_PATH: &str = "/_/health";

/// The body of `POST`/`PUT /system/functions`, as faas-provider's `types.FunctionDeployment`
/// spells it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDeployment {
    /// Function name.
    pub service: String,
    /// Container image.
    pub image: String,
    /// Function namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Environment variables of the function container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_vars: BTreeMap<String, String>,
    /// Labels of the function (faas-netes puts them on the Deployment and its pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations of the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The part of faas-provider's `types.FunctionStatus` (the answer to
/// `GET /system/function/<name>`) the operator compares with what it wants.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    /// Function name.
    pub name: String,
    /// Container image.
    #[serde(default)]
    pub image: String,
    /// Function namespace.
    #[serde(default)]
    pub namespace: String,
    /// Environment variables the provider reports.
    #[serde(default)]
    pub env_vars: Option<BTreeMap<String, String>>,
    /// Labels the provider reports (it may add its own).
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations the provider reports (it may add its own).
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl FunctionStatus {
    /// Whether the deployed function already is what `desired` asks for; labels and
    /// annotations the provider adds of its own are allowed.
    pub fn satisfies(&self, desired: &FunctionDeployment) -> bool {
        let contains = |have: &Option<BTreeMap<String, String>>,
                        want: &BTreeMap<String, String>| {
            want.iter()
                .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
        };
        self.image == desired.image
            && self.env_vars.clone().unwrap_or_default() == desired.env_vars
            && contains(&self.labels, &desired.labels.clone().unwrap_or_default())
            && contains(
                &self.annotations,
                &desired.annotations.clone().unwrap_or_default(),
            )
    }
}

/// The body of `DELETE /system/functions`, as faas-provider's `types.DeleteFunctionRequest`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteFunctionRequest {
    /// Function name.
    pub function_name: String,
    /// Function namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The URL the recommender calls the function on: through the gateway when there is one,
/// otherwise straight to the function's Service.
pub fn carbon_url(spec: &CarbonFunctionSpec) -> String {
    match &spec.gateway_url {
        Some(gateway) => format!("{}/function/{}", gateway.trim_end_matches('/'), spec.name),
        None => format!(
            "http://{}.{}.svc:{FUNCTION_PORT}/",
            spec.name, spec.namespace
        ),
    }
}

/// Environment of the function container.
pub fn function_env(spec: &CarbonFunctionSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("DEFAULT_REGION".to_string(), spec.default_region.clone()),
        ("LOG_FORMAT".to_string(), "json".to_string()),
    ])
}

/// Labels the operator gives the function, so it can be told apart from others.
pub fn function_labels(platform: &EnergyPlatform) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), FIELD_MANAGER.to_string()),
        (INSTANCE_LABEL.to_string(), platform.name_any()),
    ])
}

/// Annotations the operator gives the function: which resource it belongs to.
pub fn function_annotations(platform: &EnergyPlatform) -> BTreeMap<String, String> {
    BTreeMap::from([(OWNER_ANNOTATION.to_string(), owner_key(platform))])
}

/// The provider API request for `Gateway` mode.
pub fn function_deployment_request(platform: &EnergyPlatform) -> FunctionDeployment {
    let spec = &platform.spec.carbon_function;
    FunctionDeployment {
        service: spec.name.clone(),
        image: spec.image.clone(),
        namespace: spec.namespace.clone(),
        env_vars: function_env(spec),
        labels: Some(function_labels(platform)),
        annotations: Some(function_annotations(platform)),
    }
}

/// Metadata of the function's objects in the function namespace. They carry an owner reference
/// only when that namespace is the resource's own: owner references cannot cross namespaces,
/// so elsewhere the controller deletes them itself.
fn function_meta(platform: &EnergyPlatform) -> ObjectMeta {
    let spec = &platform.spec.carbon_function;
    let mut labels = function_labels(platform);
    labels.insert(FAAS_FUNCTION_LABEL.into(), spec.name.clone());
    let same_namespace = platform.namespace().as_deref() == Some(spec.namespace.as_str());
    ObjectMeta {
        name: Some(spec.name.clone()),
        namespace: Some(spec.namespace.clone()),
        labels: Some(labels),
        annotations: Some(function_annotations(platform)),
        owner_references: owner_reference(platform)
            .filter(|_| same_namespace)
            .map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

/// The Deployment faas-netes would create for the function (`Deployment` mode).
pub fn function_deployment(platform: &EnergyPlatform) -> Deployment {
    let spec = &platform.spec.carbon_function;
    let selector = BTreeMap::from([(FAAS_FUNCTION_LABEL.to_string(), spec.name.clone())]);
    let env = function_env(spec)
        .into_iter()
        .map(|(name, value)| env(&name, value))
        .collect();
    let meta = function_meta(platform);
    let container = Container {
        name: spec.name.clone(),
        image: Some(spec.image.clone()),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: FUNCTION_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(HEALTH_PATH.into()),
                port: IntOrString::Int(FUNCTION_PORT),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        ..Container::default()
    };
    Deployment {
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: meta.labels.clone(),
                    annotations: meta.annotations.clone(),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        metadata: meta,
        ..Deployment::default()
    }
}

/// The Service faas-netes would create for the function: the gateway routes
/// `/function/<name>` to it on port 8080.
pub fn function_service(platform: &EnergyPlatform) -> Service {
    let spec = &platform.spec.carbon_function;
    Service {
        metadata: function_meta(platform),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(
                FAAS_FUNCTION_LABEL.to_string(),
                spec.name.clone(),
            )])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: FUNCTION_PORT,
                target_port: Some(IntOrString::Int(FUNCTION_PORT)),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The `openfaas.com/v1` `Function` resource type.
pub fn function_api_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("openfaas.com", "v1", "Function");
    ApiResource::from_gvk_with_plural(&gvk, "functions")
}

/// The `Function` object (`FunctionResource` mode).
pub fn function_object(platform: &EnergyPlatform) -> DynamicObject {
    let spec = &platform.spec.carbon_function;
    let mut object = DynamicObject::new(&spec.name, &function_api_resource());
    *object.meta_mut() = function_meta(platform);
    object.data = serde_json::json!({
        "spec": {
            "name": spec.name,
            "image": spec.image,
            "environment": function_env(spec),
            "labels": function_labels(platform),
            "annotations": function_annotations(platform),
        }
    });
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::fixtures;

    #[test]
    fn the_gateway_request_uses_faas_provider_field_names() {
        let platform = fixtures::platform();

        let json = serde_json::to_value(function_deployment_request(&platform)).expect("json");

        assert_eq!(json["service"], "carbon-calculator");
        assert_eq!(json["image"], "carbon-calculator:dev");
        assert_eq!(json["namespace"], "openfaas-fn");
        assert_eq!(json["envVars"]["DEFAULT_REGION"], "GB");
        assert_eq!(json["annotations"][OWNER_ANNOTATION], "energy/local");
    }

    #[test]
    fn a_status_with_provider_labels_added_still_satisfies_the_request() {
        let platform = fixtures::platform();
        let desired = function_deployment_request(&platform);
        let mut labels = desired.labels.clone().expect("labels");
        labels.insert(FAAS_FUNCTION_LABEL.into(), "carbon-calculator".into());
        let status = FunctionStatus {
            name: desired.service.clone(),
            image: desired.image.clone(),
            namespace: desired.namespace.clone(),
            env_vars: Some(desired.env_vars.clone()),
            labels: Some(labels),
            annotations: desired.annotations.clone(),
        };

        assert!(status.satisfies(&desired));
        let older = FunctionStatus {
            image: "carbon-calculator:old".into(),
            ..status
        };
        assert!(!older.satisfies(&desired));
    }

    #[test]
    fn the_deployment_has_the_shape_faas_netes_gives_a_function() {
        let platform = fixtures::platform();

        let deployment = function_deployment(&platform);

        assert_eq!(
            deployment.metadata.name.as_deref(),
            Some("carbon-calculator")
        );
        assert_eq!(
            deployment.metadata.namespace.as_deref(),
            Some("openfaas-fn")
        );
        let labels = deployment.metadata.labels.clone().expect("labels");
        assert_eq!(labels[FAAS_FUNCTION_LABEL], "carbon-calculator");
        let spec = deployment.spec.expect("spec");
        let container = &spec.template.spec.expect("pod").containers[0];
        assert_eq!(
            container.ports.as_ref().expect("ports")[0].container_port,
            8080
        );
        let probe = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref());
        assert_eq!(probe.and_then(|h| h.path.as_deref()), Some(HEALTH_PATH));
    }

    #[test]
    fn function_objects_in_another_namespace_carry_no_owner_reference() {
        let mut platform = fixtures::platform();

        assert_eq!(function_service(&platform).metadata.owner_references, None);

        platform.spec.carbon_function.namespace = "energy".into();
        let owners = function_service(&platform).metadata.owner_references;
        assert_eq!(owners.map(|o| o.len()), Some(1));
    }

    #[test]
    fn the_function_object_carries_image_and_environment() {
        let platform = fixtures::platform();

        let object = function_object(&platform);

        let json = serde_json::to_value(&object).expect("json");
        assert_eq!(json["apiVersion"], "openfaas.com/v1");
        assert_eq!(json["kind"], "Function");
        assert_eq!(json["spec"]["image"], "carbon-calculator:dev");
        assert_eq!(json["spec"]["environment"]["DEFAULT_REGION"], "GB");
    }

    #[test]
    fn without_a_gateway_the_recommender_calls_the_function_service() {
        let mut spec = fixtures::platform().spec.carbon_function;
        spec.gateway_url = None;

        assert_eq!(
            carbon_url(&spec),
            "http://carbon-calculator.openfaas-fn.svc:8080/"
        );
    }
}
