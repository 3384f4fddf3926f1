//! `RedAlert`: usage too high for a property, published to the `energy.alerts` topic exchange
//! with routing key `alert.red.<propertyId>`.
//!
//! Delivery is at-least-once (a crash between the broker's confirm and the Kafka commit sends it
//! again), so the alert id is derived from the reading and the rule that fired: a repeat carries
//! the same id and receivers drop it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::PropertyId;

/// Namespace of the name-based (v5) alert ids.
const ALERT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2d4e_8a3b_4c5d_9e0f_1a2b_3c4d_5e6f);

/// A RED alert as it travels through RabbitMQ to the web page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedAlert {
    /// Stable id: the same reading and rule always give the same id.
    pub alert_id: Uuid,
    /// The reading that raised the alert.
    pub event_id: Uuid,
    /// The property whose usage is too high.
    pub property_id: PropertyId,
    /// Energy of the reading, kWh.
    pub kwh: f64,
    /// The limit the reading crossed, kWh.
    pub threshold: f64,
    /// Which rule fired and why, for people.
    pub reason: String,
    /// Emissions of the reading, kgCO2e.
    pub kg_co2e: f64,
    /// When the recommender raised it.
    pub raised_at: DateTime<Utc>,
}

impl RedAlert {
    /// The alert id for a reading and the name of the rule that fired.
    pub fn derive_id(event_id: Uuid, rule: &str) -> Uuid {
        let mut name = event_id.as_bytes().to_vec();
        name.extend_from_slice(rule.as_bytes());
        Uuid::new_v5(&ALERT_ID_NAMESPACE, &name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_reading_and_rule_give_the_same_id() {
        let event = Uuid::now_v7();
        assert_eq!(
            RedAlert::derive_id(event, "absolute"),
            RedAlert::derive_id(event, "absolute")
        );
    }

    #[test]
    fn another_rule_or_reading_gives_another_id() {
        let event = Uuid::now_v7();
        assert_ne!(
            RedAlert::derive_id(event, "absolute"),
            RedAlert::derive_id(event, "baseline")
        );
        assert_ne!(
            RedAlert::derive_id(event, "absolute"),
            RedAlert::derive_id(Uuid::now_v7(), "absolute")
        );
    }

    #[test]
    fn serialises_the_documented_field_names() {
        let alert = RedAlert {
            alert_id: Uuid::nil(),
            event_id: Uuid::nil(),
            property_id: PropertyId::parse("p1").expect("valid id"),
            kwh: 9.5,
            threshold: 5.0,
            reason: "absolute".into(),
            kg_co2e: 1.9,
            raised_at: Utc::now(),
        };
        let json = serde_json::to_value(&alert).expect("json");
        for field in [
            "alertId",
            "eventId",
            "propertyId",
            "kwh",
            "threshold",
            "reason",
            "kgCo2e",
        ] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert!(json.get("raisedAt").is_some());
    }
}
