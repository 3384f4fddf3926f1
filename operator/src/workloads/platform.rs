//! The billing and recommender Deployments and Services, configured through the same
//! environment variables their binaries read (`billing/src/config.rs`,
//! `recommender/src/config.rs`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::function::carbon_url;
use super::thresholds::{self, HASH_ANNOTATION, THRESHOLDS_KEY};
use super::{env, labels, owned_meta, secret_env, selector_labels};
use crate::EnergyPlatform;
use crate::resource::{Resources, WorkloadSpec};

/// Component name of billing.
pub const BILLING: &str = "billing";

/// Component name of the recommender.
pub const RECOMMENDER: &str = "recommender";

/// Port billing serves its API and health endpoints on.
pub const BILLING_PORT: i32 = 8080;

/// Port the recommender serves `/healthz`, `/readyz` and `/metrics` on.
pub const RECOMMENDER_PORT: i32 = 9090;

/// Folder the thresholds ConfigMap is mounted at in the recommender's container.
const THRESHOLDS_DIR: &str = "/etc/recommender";

/// Name of a component's Deployment and Service: `<resource>-<component>`.
pub fn workload_name(platform: &EnergyPlatform, component: &str) -> String {
    format!("{}-{component}", platform.name_any())
}

/// The billing Deployment.
pub fn billing_deployment(platform: &EnergyPlatform) -> Deployment {
    let spec = &platform.spec;
    let env = vec![
        secret_env("DATABASE_URL", &spec.database.url_secret_ref),
        env("KAFKA_BOOTSTRAP_SERVERS", &spec.kafka.bootstrap_servers),
        env("KAFKA_TOPIC", &spec.kafka.topic),
        env("DEFAULT_REGION", &spec.carbon_function.default_region),
        env("BIND_ADDRESS", format!("0.0.0.0:{BILLING_PORT}")),
        env("LOG_FORMAT", "json"),
    ];
    let container = container(BILLING, &spec.billing, env, BILLING_PORT);
    deployment(platform, BILLING, &spec.billing, container, None, vec![])
}

/// The recommender Deployment, with the thresholds ConfigMap mounted and its hash on the pod
/// template.
pub fn recommender_deployment(platform: &EnergyPlatform) -> Deployment {
    let spec = &platform.spec;
    let env = vec![
        env("KAFKA_BOOTSTRAP", &spec.kafka.bootstrap_servers),
        env("KAFKA_TOPIC", &spec.kafka.topic),
        secret_env("DATABASE_URL", &spec.database.url_secret_ref),
        secret_env("AMQP_URL", &spec.rabbitmq.uri_secret_ref),
        env("ALERT_EXCHANGE", &spec.rabbitmq.exchange),
        env("CARBON_URL", carbon_url(&spec.carbon_function)),
        env(
            "THRESHOLDS_FILE",
            format!("{THRESHOLDS_DIR}/{THRESHOLDS_KEY}"),
        ),
        env("METRICS_ADDRESS", format!("0.0.0.0:{RECOMMENDER_PORT}")),
        env("LOG_FORMAT", "json"),
    ];
    let mut container = container(RECOMMENDER, &spec.recommender, env, RECOMMENDER_PORT);
    container.volume_mounts = Some(vec![VolumeMount {
        name: "thresholds".into(),
        mount_path: THRESHOLDS_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }]);
    let volume = Volume {
        name: "thresholds".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: thresholds::config_map_name(platform),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    let hash = thresholds::thresholds_hash(&spec.thresholds);
    let annotations = BTreeMap::from([(HASH_ANNOTATION.to_string(), hash)]);
    deployment(
        platform,
        RECOMMENDER,
        &spec.recommender,
        container,
        Some(annotations),
        vec![volume],
    )
}

/// The billing Service: its HTTP API inside the cluster.
pub fn billing_service(platform: &EnergyPlatform) -> Service {
    service(platform, BILLING, "http", BILLING_PORT)
}

/// The recommender Service: its metrics and health endpoints, for scraping.
pub fn recommender_service(platform: &EnergyPlatform) -> Service {
    service(platform, RECOMMENDER, "metrics", RECOMMENDER_PORT)
}

fn container(name: &str, workload: &WorkloadSpec, env: Vec<EnvVar>, port: i32) -> Container {
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    Container {
        name: name.into(),
        image: Some(workload.image.clone()),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some(if name == BILLING { "http" } else { "metrics" }.into()),
            container_port: port,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe("/readyz")),
        liveness_probe: Some(probe("/healthz")),
        resources: workload.resources.as_ref().map(resource_requirements),
        ..Container::default()
    }
}

fn deployment(
    platform: &EnergyPlatform,
    component: &str,
    workload: &WorkloadSpec,
    container: Container,
    pod_annotations: Option<BTreeMap<String, String>>,
    volumes: Vec<Volume>,
) -> Deployment {
    let name = workload_name(platform, component);
    Deployment {
        metadata: owned_meta(platform, &name, component),
        spec: Some(DeploymentSpec {
            replicas: Some(workload.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(platform, component)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(platform, component)),
                    annotations: pod_annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn service(platform: &EnergyPlatform, component: &str, port_name: &str, port: i32) -> Service {
    let name = workload_name(platform, component);
    Service {
        metadata: owned_meta(platform, &name, component),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(platform, component)),
            ports: Some(vec![ServicePort {
                name: Some(port_name.into()),
                port,
                target_port: Some(IntOrString::String(port_name.into())),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn resource_requirements(resources: &Resources) -> ResourceRequirements {
    let quantities = |map: &BTreeMap<String, String>| {
        (!map.is_empty()).then(|| {
            map.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect()
        })
    };
    ResourceRequirements {
        requests: quantities(&resources.requests),
        limits: quantities(&resources.limits),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::fixtures;

    fn env_of(deployment: &Deployment) -> Vec<EnvVar> {
        let pod = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref());
        pod.expect("a pod spec").containers[0]
            .env
            .clone()
            .expect("env")
    }

    fn value_of<'a>(env: &'a [EnvVar], name: &str) -> Option<&'a str> {
        env.iter()
            .find(|v| v.name == name)
            .and_then(|v| v.value.as_deref())
    }

    #[test]
    fn billing_gets_kafka_and_region_as_values_and_the_database_as_a_secret_ref() {
        let platform = fixtures::platform();

        let env = env_of(&billing_deployment(&platform));

        assert_eq!(
            value_of(&env, "KAFKA_BOOTSTRAP_SERVERS"),
            Some("127.0.0.1:29092")
        );
        assert_eq!(
            value_of(&env, "KAFKA_TOPIC"),
            Some("raw-consumption-events")
        );
        assert_eq!(value_of(&env, "DEFAULT_REGION"), Some("GB"));
        let database = env
            .iter()
            .find(|v| v.name == "DATABASE_URL")
            .expect("DATABASE_URL");
        assert_eq!(database.value, None, "the URL must not be copied");
        assert!(database.value_from.is_some());
    }

    #[test]
    fn the_recommender_reads_thresholds_from_the_mounted_config_map() {
        let platform = fixtures::platform();

        let deployment = recommender_deployment(&platform);

        let env = env_of(&deployment);
        assert_eq!(
            value_of(&env, "THRESHOLDS_FILE"),
            Some("/etc/recommender/thresholds.json")
        );
        assert_eq!(
            value_of(&env, "CARBON_URL"),
            Some("http://127.0.0.1:18081/function/carbon-calculator")
        );
        let pod = deployment.spec.expect("spec").template.spec.expect("pod");
        let volume = &pod.volumes.expect("volumes")[0];
        assert_eq!(
            volume.config_map.as_ref().map(|c| c.name.as_str()),
            Some("local-thresholds")
        );
    }

    #[test]
    fn a_threshold_change_changes_the_recommender_pod_template() {
        let platform = fixtures::platform();
        let mut changed = platform.clone();
        changed.spec.thresholds.absolute_kwh_per_hour = 7.5;

        let annotation = |p: &EnergyPlatform| {
            let template = recommender_deployment(p).spec.expect("spec").template;
            template
                .metadata
                .and_then(|m| m.annotations)
                .expect("annotations")[HASH_ANNOTATION]
                .clone()
        };

        assert_ne!(annotation(&platform), annotation(&changed));
    }

    #[test]
    fn the_selector_is_a_subset_of_the_pod_labels() {
        let platform = fixtures::platform();

        let spec = billing_deployment(&platform).spec.expect("spec");

        let pod_labels = spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .expect("labels");
        for (key, value) in spec.selector.match_labels.expect("match labels") {
            assert_eq!(pod_labels.get(&key), Some(&value));
        }
    }

    #[test]
    fn replicas_and_resources_come_from_the_spec() {
        let mut platform = fixtures::platform();
        platform.spec.billing.replicas = 3;
        platform.spec.billing.resources = Some(Resources {
            requests: BTreeMap::from([("cpu".into(), "250m".into())]),
            limits: BTreeMap::new(),
        });

        let spec = billing_deployment(&platform).spec.expect("spec");

        assert_eq!(spec.replicas, Some(3));
        let container = &spec.template.spec.expect("pod").containers[0];
        let resources = container.resources.as_ref().expect("resources");
        assert_eq!(
            resources.requests.as_ref().expect("requests")["cpu"].0,
            "250m"
        );
        assert_eq!(resources.limits, None);
    }

    #[test]
    fn services_select_the_pods_of_their_component() {
        let platform = fixtures::platform();

        let service = recommender_service(&platform);

        let spec = service.spec.expect("spec");
        assert_eq!(
            spec.selector.expect("selector")["app.kubernetes.io/name"],
            RECOMMENDER
        );
        assert_eq!(spec.ports.expect("ports")[0].port, RECOMMENDER_PORT);
    }
}
