//! Server-side apply that writes only when needed.
//!
//! The API server fills in defaults (`imagePullPolicy`, `protocol`, a Service's `clusterIP`),
//! so the live object is never equal to the desired one. Instead the desired object must be
//! *contained* in the live one ([`contains`]). Containment misses a field the operator set
//! before and no longer sets (the live object still has it), so the desired object also
//! carries the hash of itself in [`APPLIED_HASH_ANNOTATION`]: a changed spec changes the hash,
//! and the apply that follows lets server-side apply drop the fields no longer wanted.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::workloads::FIELD_MANAGER;

/// Annotation holding the hash of the object as the operator last applied it.
pub const APPLIED_HASH_ANNOTATION: &str = "energy.platform.dev/applied-hash";

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The live object already matched; nothing was written.
    Unchanged,
    /// The object did not exist and was created.
    Created,
    /// The object differed and was updated.
    Updated,
}

/// Server-side applies `desired` under [`FIELD_MANAGER`] unless the live object already
/// contains it; the name comes from the object.
pub async fn apply_if_changed<K>(api: &Api<K>, desired: K) -> Result<Applied, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let desired = with_applied_hash(desired);
    let live = api.get_opt(&name).await?;

    if let Some(live) = &live {
        let live = serde_json::to_value(live).unwrap_or_default();
        let wanted = serde_json::to_value(&desired).unwrap_or_default();
        if contains(&live, &wanted) {
            return Ok(Applied::Unchanged);
        }
    }

    // Forced: the operator owns these fields even if someone edited them by hand.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&desired)).await?;
    Ok(match live {
        Some(_) => Applied::Updated,
        None => Applied::Created,
    })
}

/// `object` with [`APPLIED_HASH_ANNOTATION`] set to the hash of its JSON.
pub fn with_applied_hash<K: Resource + Serialize>(mut object: K) -> K {
    let meta = object.meta_mut();
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(APPLIED_HASH_ANNOTATION);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
    // Struct fields serialise in declaration order and maps in key order, so equal objects
    // give equal text.
    let text = serde_json::to_string(&object).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    let hash: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    object
        .meta_mut()
        .annotations
        .get_or_insert_default()
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash);
    object
}

/// Whether every field set in `desired` has the same value in `live`. Empty values (`null`,
/// `[]`, `{}`, or objects of only those) in `desired` also match an absent field, since the
/// API server drops them.
/// Lists must have the same length, each element contained in its counterpart.
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            desired.iter().all(|(key, want)| match live.get(key) {
                Some(have) => contains(have, want),
                None => is_empty(want),
            })
        }
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len()
                && live
                    .iter()
                    .zip(desired)
                    .all(|(have, want)| contains(have, want))
        }
        (Value::Number(have), Value::Number(want)) => have.as_f64() == want.as_f64(),
        (have, want) => have == want || (have.is_null() && is_empty(want)),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.values().all(is_empty),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_added_by_the_server_do_not_count_as_a_difference() {
        let desired = json!({"spec": {"ports": [{"port": 8080}]}});
        let live = json!({"spec": {"ports": [{"port": 8080, "protocol": "TCP"}],
                                    "clusterIP": "10.0.0.7"}});

        assert!(contains(&live, &desired));
    }

    #[test]
    fn a_changed_value_is_a_difference() {
        let desired = json!({"spec": {"replicas": 2}});
        let live = json!({"spec": {"replicas": 1}});

        assert!(!contains(&live, &desired));
    }

    #[test]
    fn an_extra_or_missing_list_element_is_a_difference() {
        let desired = json!({"env": [{"name": "A"}]});
        let live = json!({"env": [{"name": "A"}, {"name": "B"}]});

        assert!(!contains(&live, &desired));
        assert!(!contains(&json!({"env": []}), &desired));
    }

    #[test]
    fn empty_desired_values_match_absent_fields() {
        let desired = json!({"metadata": {"labels": {}}, "spec": {"volumes": [], "x": null}});

        assert!(contains(&json!({"spec": {}}), &desired));
    }

    #[test]
    fn integers_and_floats_of_the_same_value_match() {
        assert!(contains(&json!({"a": 5}), &json!({"a": 5.0})));
    }

    #[test]
    fn the_applied_hash_follows_the_content() {
        let mut map = ConfigMap::default();
        map.metadata.name = Some("m".into());
        let first = with_applied_hash(map.clone());
        map.data = Some([("k".to_string(), "v".to_string())].into());
        let second = with_applied_hash(map);

        let hash = |m: &ConfigMap| {
            m.metadata.annotations.as_ref().expect("set")[APPLIED_HASH_ANNOTATION].clone()
        };
        assert_ne!(hash(&first), hash(&second));
        assert_eq!(hash(&with_applied_hash(first.clone())), hash(&first));
    }
}
