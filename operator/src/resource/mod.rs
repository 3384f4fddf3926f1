//! The `EnergyPlatform` custom resource: one running platform in one namespace.
//!
//! The spec says where the shared infrastructure is (Kafka, RabbitMQ, PostgreSQL, the OpenFaaS
//! gateway), how the carbon function is deployed, which images and replicas billing and the
//! recommender run, and the alert thresholds. Credentials are never in the spec: it names Secrets.
//! The API server enforces the schema (ranges, patterns, required fields) and the CEL rules that
//! span fields, so a bad resource is refused with a message that says what is wrong.

mod spec;
mod status;

use kube::CustomResourceExt;

pub use spec::*;
pub use status::*;

/// API group of the resource.
pub const GROUP: &str = "energy.platform.dev";

/// Renders the CRD as YAML, the form committed in `crds/`.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&EnergyPlatform::crd())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed CRD, compared byte for byte with what the types generate.
    const COMMITTED_CRD: &str =
        include_str!("../../../crds/energyplatforms.energy.platform.dev.yaml");

    #[test]
    fn committed_crd_matches_the_rust_types() {
        let generated = crd_yaml().expect("the CRD serialises to YAML");
        assert!(
            generated == COMMITTED_CRD,
            "crds/ is out of date with the Rust types; regenerate it with\n  cargo run -p \
             operator --bin crdgen > crds/energyplatforms.energy.platform.dev.yaml"
        );
    }

    #[test]
    fn crd_is_namespaced_with_a_short_name_no_built_in_resource_has() {
        let crd = EnergyPlatform::crd();
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["eplat".to_string()]));
        assert_eq!(crd.spec.group, GROUP);
    }

    #[test]
    fn crd_carries_the_cel_rules_and_printer_columns() {
        let yaml = crd_yaml().expect("the CRD serialises to YAML");
        assert!(yaml.contains("self.partitions >= oldSelf.partitions"));
        assert!(yaml.contains("self.clearRatio < self.relativeFactor"));
        for column in ["Ready", "Topic", "Partitions", "Age"] {
            assert!(
                yaml.contains(&format!("name: {column}")),
                "missing column {column}"
            );
        }
    }
}
