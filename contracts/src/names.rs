//! Names that producers and consumers must agree on: topics, exchanges, routing keys, headers.

use crate::PropertyId;

/// Default Kafka topic of consumption events (configurable through the EnergyPlatform).
pub const CONSUMPTION_TOPIC: &str = "raw-consumption-events";

/// Suffix of the dead-letter topic next to a consumption topic.
pub const DLQ_SUFFIX: &str = ".dlq";

/// Kafka consumer group of the recommender.
pub const RECOMMENDER_GROUP: &str = "recommender";

/// RabbitMQ topic exchange that carries RED alerts.
pub const ALERT_EXCHANGE: &str = "energy.alerts";

/// Kafka header: the MIME type of the value.
pub const HEADER_CONTENT_TYPE: &str = "content-type";
/// Kafka header: the kind of event in the value.
pub const HEADER_EVENT_TYPE: &str = "event-type";
/// Kafka header: W3C trace context.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// Kafka header on dead-lettered messages: why the message could not be processed.
pub const HEADER_DLQ_REASON: &str = "dlq-reason";

/// `event-type` header value of a [`crate::ConsumptionEvent`].
pub const EVENT_TYPE_CONSUMPTION: &str = "consumption.recorded";

/// The dead-letter topic that belongs to `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// Routing key of a RED alert for one property: `alert.red.<propertyId>`.
pub fn red_alert_routing_key(property: &PropertyId) -> String {
    format!("alert.red.{property}")
}

/// Binding key that matches the RED alerts of every property. `#`, not `*`: a property id may
/// hold dots, which make more than one routing-key word.
pub const ALL_RED_ALERTS: &str = "alert.red.#";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_topic_sits_beside_its_topic() {
        assert_eq!(dlq_topic(CONSUMPTION_TOPIC), "raw-consumption-events.dlq");
    }

    #[test]
    fn routing_key_carries_the_property() {
        let id = PropertyId::parse("house-7").expect("valid id");
        assert_eq!(red_alert_routing_key(&id), "alert.red.house-7");
    }
}
