//! The thresholds ConfigMap (`<name>-thresholds`, key `thresholds.json`) the recommender reads,
//! and the content hash put on the recommender's pod template: the recommender reads its
//! thresholds at start-up, so a changed hash is what makes Kubernetes roll its pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use sha2::{Digest, Sha256};

use super::owned_meta;
use crate::EnergyPlatform;
use crate::resource::ThresholdsSpec;

/// Key of the ConfigMap entry, and the file name the recommender is pointed at.
pub const THRESHOLDS_KEY: &str = "thresholds.json";

/// Pod-template annotation holding the hash of the thresholds.
pub const HASH_ANNOTATION: &str = "energy.platform.dev/thresholds-hash";

/// Name of the thresholds ConfigMap of a resource.
pub fn config_map_name(platform: &EnergyPlatform) -> String {
    format!("{}-thresholds", platform.name_any())
}

/// `spec.thresholds` as the recommender reads them: JSON with camelCase keys.
pub fn thresholds_json(thresholds: &ThresholdsSpec) -> String {
    // A struct of numbers and strings always serialises.
    serde_json::to_string_pretty(thresholds).expect("thresholds serialise to JSON")
}

/// Hex SHA-256 of the thresholds document.
pub fn thresholds_hash(thresholds: &ThresholdsSpec) -> String {
    let digest = Sha256::digest(thresholds_json(thresholds).as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The ConfigMap, owned by the resource.
pub fn config_map(platform: &EnergyPlatform) -> ConfigMap {
    ConfigMap {
        metadata: owned_meta(platform, &config_map_name(platform), "recommender"),
        data: Some(BTreeMap::from([(
            THRESHOLDS_KEY.to_string(),
            thresholds_json(&platform.spec.thresholds),
        )])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::fixtures;

    #[test]
    fn the_config_map_holds_the_thresholds_as_camel_case_json() {
        let platform = fixtures::platform();

        let map = config_map(&platform);

        assert_eq!(map.metadata.name.as_deref(), Some("local-thresholds"));
        let text = &map.data.expect("data")[THRESHOLDS_KEY];
        let json: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(json["absoluteKwhPerHour"], 5.0);
        assert_eq!(json["timeZone"], "Europe/London");
        assert_eq!(json["cooldownSecs"], 3600);
    }

    #[test]
    fn the_hash_changes_with_any_threshold_and_only_then() {
        let platform = fixtures::platform();
        let mut changed = platform.spec.thresholds.clone();
        changed.cooldown_secs += 1;

        let before = thresholds_hash(&platform.spec.thresholds);

        assert_eq!(before, thresholds_hash(&platform.spec.thresholds.clone()));
        assert_ne!(before, thresholds_hash(&changed));
        assert_eq!(before.len(), 64);
    }
}
