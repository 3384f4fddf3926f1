//! The Kubernetes objects an `EnergyPlatform` asks for, built as plain values.
//!
//! Nothing here talks to the API server: each function turns a resource into the object the
//! controller server-side applies, so the shape of every Deployment, Service, ConfigMap and
//! function request is unit-tested without a cluster.
//!
//! - [`platform`]: the billing and recommender Deployments and Services.
//! - [`thresholds`]: the thresholds ConfigMap and the hash that rolls the recommender.
//! - [`function`]: the carbon function in its three forms (provider API request, faas-netes
//!   shaped Deployment and Service, `openfaas.com/v1` Function object).
//!
//! Secrets never appear in these objects: containers get `secretKeyRef`s to the Secrets the
//! resource names.

pub mod function;
pub mod platform;
pub mod thresholds;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::EnergyPlatform;
use crate::resource::SecretKeyRef;

/// The one field manager every write of the operator is made under.
pub const FIELD_MANAGER: &str = "energyplatform-operator";

/// Label that marks objects this operator manages (the owned-object watches select on it).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Label naming the EnergyPlatform an object belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Label naming the component (`billing`, `recommender`, `carbon-function`).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/name";

/// Annotation naming the owning resource as `namespace/name`, on objects that cannot carry an
/// owner reference because they live in another namespace (the function namespace).
pub const OWNER_ANNOTATION: &str = "energy.platform.dev/owner";

/// Labels every object of one component carries.
pub fn labels(platform: &EnergyPlatform, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(platform, component);
    labels.insert(MANAGED_BY_LABEL.into(), FIELD_MANAGER.into());
    labels.insert("app.kubernetes.io/part-of".into(), "energy-platform".into());
    labels
}

/// The subset of [`labels`] a Deployment selects its pods by; it never changes, because a
/// Deployment's selector is immutable.
pub fn selector_labels(platform: &EnergyPlatform, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (COMPONENT_LABEL.to_string(), component.to_string()),
        (INSTANCE_LABEL.to_string(), platform.name_any()),
    ])
}

/// Metadata of an object in the resource's own namespace, owned by the resource so that
/// deleting it deletes the object (Kubernetes garbage collection) and changes to the object
/// wake the controller.
pub fn owned_meta(platform: &EnergyPlatform, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: platform.namespace(),
        labels: Some(labels(platform, component)),
        owner_references: owner_reference(platform).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

/// The controller owner reference to the resource; `None` for a resource never stored (no uid).
pub fn owner_reference(platform: &EnergyPlatform) -> Option<OwnerReference> {
    platform.controller_owner_ref(&())
}

/// `namespace/name` of the resource, the value of [`OWNER_ANNOTATION`].
pub fn owner_key(platform: &EnergyPlatform) -> String {
    format!(
        "{}/{}",
        platform.namespace().unwrap_or_default(),
        platform.name_any()
    )
}

/// A plain environment variable.
pub(crate) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An environment variable read from a Secret key by the kubelet, so the value never passes
/// through the operator or the Deployment object.
pub(crate) fn secret_env(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! A stored-looking resource for the builders' tests.

    use crate::EnergyPlatform;

    /// `dev/platform.yaml` as if read back from the API server (namespace, uid, generation).
    pub fn platform() -> EnergyPlatform {
        let yaml = include_str!("../../../dev/platform.yaml");
        let mut platform: EnergyPlatform =
            serde_norway::from_str(yaml).expect("dev/platform.yaml is an EnergyPlatform");
        platform.metadata.namespace = Some("energy".into());
        platform.metadata.uid = Some("0b9e6c1e-6a43-4a1f-9d53-1c2f1e2d3c4b".into());
        platform.metadata.generation = Some(3);
        platform
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_objects_point_at_the_resource_as_their_controller() {
        let platform = fixtures::platform();

        let meta = owned_meta(&platform, "local-billing", "billing");

        let owners = meta.owner_references.expect("an owner reference");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "EnergyPlatform");
        assert_eq!(owners[0].name, "local");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("energy"));
    }

    #[test]
    fn managed_objects_carry_the_label_the_watches_select_on() {
        let platform = fixtures::platform();

        let labels = labels(&platform, "billing");

        assert_eq!(labels[MANAGED_BY_LABEL], FIELD_MANAGER);
        assert_eq!(labels[INSTANCE_LABEL], "local");
    }

    #[test]
    fn secret_variables_reference_the_secret_instead_of_holding_its_value() {
        let secret = SecretKeyRef {
            name: "postgres".into(),
            key: "url".into(),
        };

        let var = secret_env("DATABASE_URL", &secret);

        assert_eq!(var.value, None);
        let selector = var
            .value_from
            .and_then(|v| v.secret_key_ref)
            .expect("a secret ref");
        assert_eq!(
            (selector.name.as_str(), selector.key.as_str()),
            ("postgres", "url")
        );
    }
}
