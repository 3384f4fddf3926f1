//! The status the controller writes: one condition per component plus `Ready`, computed from
//! what a reconcile found ([`next_status`], pure), and written through the status subresource
//! only when it differs from the stored one ([`write_status`]).
//!
//! A condition's `lastTransitionTime` moves only when its `status` changes, so a resync that
//! finds everything as before produces an identical status and no write.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde_json::json;

use crate::EnergyPlatform;
use crate::resource::{Condition, EnergyPlatformStatus};
use crate::workloads::FIELD_MANAGER;

/// Condition type of the Kafka topic.
pub const KAFKA_TOPIC: &str = "KafkaTopic";
/// Condition type of the RabbitMQ topology.
pub const RABBIT_MQ: &str = "RabbitMq";
/// Condition type of the carbon function.
pub const CARBON_FUNCTION: &str = "CarbonFunction";
/// Condition type of the billing workload.
pub const BILLING: &str = "Billing";
/// Condition type of the recommender workload.
pub const RECOMMENDER: &str = "Recommender";
/// Condition type that is `True` when every component is.
pub const READY: &str = "Ready";

/// Component conditions, in the order the reconcile converges them.
pub const COMPONENTS: [&str; 5] = [
    KAFKA_TOPIC,
    RABBIT_MQ,
    CARBON_FUNCTION,
    BILLING,
    RECOMMENDER,
];

/// What one reconcile found for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentReport {
    /// Condition type, one of [`COMPONENTS`].
    pub type_: &'static str,
    /// Whether the component is as the spec asks.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
}

impl ComponentReport {
    /// A component that converged.
    pub fn ok(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            ok: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A component that did not.
    pub fn failed(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            ok: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// The status after a reconcile: `previous` updated with `reports` for `generation`, `now`
/// (RFC 3339) as the transition time of conditions whose status changed.
pub fn next_status(
    previous: Option<&EnergyPlatformStatus>,
    generation: Option<i64>,
    reports: &[ComponentReport],
    topic_partitions: Option<i32>,
    now: &str,
) -> EnergyPlatformStatus {
    let failing: Vec<&str> = reports.iter().filter(|r| !r.ok).map(|r| r.type_).collect();
    let ready = if failing.is_empty() {
        ComponentReport::ok(READY, "Reconciled", "every component is as the spec asks")
    } else {
        let message = format!("not converged: {}", failing.join(", "));
        ComponentReport::failed(READY, "ComponentsNotReady", message)
    };

    let conditions = std::iter::once(&ready)
        .chain(reports)
        .map(|report| {
            let before =
                previous.and_then(|s| s.conditions.iter().find(|c| c.type_ == report.type_));
            condition(report, before, generation, now)
        })
        .collect();
    EnergyPlatformStatus {
        observed_generation: generation,
        conditions,
        topic_partitions: topic_partitions.or(previous.and_then(|s| s.topic_partitions)),
    }
}

fn condition(
    report: &ComponentReport,
    before: Option<&Condition>,
    generation: Option<i64>,
    now: &str,
) -> Condition {
    let status = if report.ok { "True" } else { "False" };
    let last_transition_time = match before {
        Some(before) if before.status == status => before.last_transition_time.clone(),
        _ => now.to_string(),
    };
    Condition {
        type_: report.type_.to_string(),
        status: status.to_string(),
        reason: report.reason.clone(),
        message: report.message.clone(),
        last_transition_time,
        observed_generation: generation,
    }
}

/// The current time as Kubernetes writes condition times (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Writes `status` through the status subresource (server-side apply) unless the resource
/// already has exactly this status; true when it wrote.
pub async fn write_status(
    api: &Api<EnergyPlatform>,
    platform: &EnergyPlatform,
    status: &EnergyPlatformStatus,
) -> Result<bool, kube::Error> {
    if platform.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": EnergyPlatform::api_version(&()),
        "kind": EnergyPlatform::kind(&()),
        "status": status,
    });
    let name = platform.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&name, &params, &Patch::Apply(&patch))
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ok() -> Vec<ComponentReport> {
        COMPONENTS
            .iter()
            .map(|c| ComponentReport::ok(c, "Converged", "fine"))
            .collect()
    }

    #[test]
    fn ready_is_true_only_when_every_component_is() {
        let mut reports = all_ok();

        let status = next_status(None, Some(1), &reports, Some(6), "2026-01-01T00:00:00Z");
        assert_eq!(status.conditions[0].type_, READY);
        assert_eq!(status.conditions[0].status, "True");

        reports[0] = ComponentReport::failed(KAFKA_TOPIC, "PartitionDecrease", "has 8");
        let status = next_status(None, Some(1), &reports, Some(8), "2026-01-01T00:00:00Z");
        assert_eq!(status.conditions[0].status, "False");
        assert!(status.conditions[0].message.contains(KAFKA_TOPIC));
        assert_eq!(status.conditions.len(), 6);
    }

    #[test]
    fn the_transition_time_stays_while_the_status_stays() {
        let reports = all_ok();
        let first = next_status(None, Some(1), &reports, Some(6), "2026-01-01T00:00:00Z");

        let again = next_status(
            Some(&first),
            Some(1),
            &reports,
            Some(6),
            "2026-01-02T00:00:00Z",
        );

        assert_eq!(again, first, "an unchanged world gives an identical status");
    }

    #[test]
    fn the_transition_time_moves_when_the_status_flips() {
        let mut reports = all_ok();
        let first = next_status(None, Some(1), &reports, Some(6), "2026-01-01T00:00:00Z");
        reports[1] = ComponentReport::failed(RABBIT_MQ, "RabbitMqError", "refused");

        let next = next_status(
            Some(&first),
            Some(1),
            &reports,
            Some(6),
            "2026-01-02T00:00:00Z",
        );

        let rabbit = next
            .conditions
            .iter()
            .find(|c| c.type_ == RABBIT_MQ)
            .expect("rabbit");
        assert_eq!(rabbit.last_transition_time, "2026-01-02T00:00:00Z");
        let kafka = next
            .conditions
            .iter()
            .find(|c| c.type_ == KAFKA_TOPIC)
            .expect("kafka");
        assert_eq!(kafka.last_transition_time, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn conditions_and_status_carry_the_generation_they_describe() {
        let status = next_status(None, Some(7), &all_ok(), None, "2026-01-01T00:00:00Z");

        assert_eq!(status.observed_generation, Some(7));
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(7))
        );
    }

    #[test]
    fn an_unknown_partition_count_keeps_the_last_known_one() {
        let first = next_status(None, Some(1), &all_ok(), Some(6), "2026-01-01T00:00:00Z");

        let next = next_status(
            Some(&first),
            Some(1),
            &all_ok(),
            None,
            "2026-01-01T00:00:00Z",
        );

        assert_eq!(next.topic_partitions, Some(6));
    }

    #[test]
    fn times_are_whole_seconds_in_utc() {
        let now = now_rfc3339();

        assert_eq!(now.len(), "2026-01-01T00:00:00Z".len());
        assert!(now.ends_with('Z'));
    }
}
