//! The dead-letter topic: messages that can never be processed go to `<topic>.dlq` with why, so
//! the partition moves on and someone can look at them later.
//!
//! The dead letter keeps the original key, value and headers, and adds the reason
//! (`dlq-reason`) and where the message came from (`dlq-original-topic`, `-partition`,
//! `-offset`). It is written with an idempotent, `acks=all` producer and awaited: the original
//! offset is committed only once the dead letter is safely stored.

use std::fmt;
use std::time::Duration;

use energy_contracts::names::{HEADER_DLQ_REASON, dlq_topic};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::carbon::truncate;

/// Header naming the topic the dead letter was read from.
pub const HEADER_ORIGINAL_TOPIC: &str = "dlq-original-topic";
/// Header naming the partition the dead letter was read from.
pub const HEADER_ORIGINAL_PARTITION: &str = "dlq-original-partition";
/// Header naming the offset the dead letter was read from.
pub const HEADER_ORIGINAL_OFFSET: &str = "dlq-original-offset";

/// Longest reason kept in the header; parser messages can quote a lot of the input.
pub const MAX_REASON_BYTES: usize = 1_024;

/// Why a message can never be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoisonReason {
    /// The value is not a `ConsumptionEvent` this reader can use.
    Undecodable(String),
    /// The carbon function refuses the reading's content (an unknown region, say).
    Unscorable(String),
    /// PostgreSQL refuses the reading's results (a data exception or constraint violation).
    Unstorable(String),
}

impl PoisonReason {
    /// A short word for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Undecodable(_) => "undecodable",
            Self::Unscorable(_) => "unscorable",
            Self::Unstorable(_) => "unstorable",
        }
    }

    /// The `dlq-reason` header value: the kind, then the detail, within [`MAX_REASON_BYTES`].
    pub fn header_value(&self) -> String {
        truncate(&self.to_string(), MAX_REASON_BYTES).to_string()
    }
}

impl fmt::Display for PoisonReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = match self {
            Self::Undecodable(detail) | Self::Unscorable(detail) | Self::Unstorable(detail) => {
                detail
            }
        };
        write!(f, "{}: {detail}", self.kind())
    }
}

/// Where a message was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// The headers of a dead letter: the original ones (minus `dlq-*` headers of an earlier trip
/// through a DLQ, which would now be stale), then the reason and the origin.
pub fn dead_letter_headers(
    original: &[(String, Option<Vec<u8>>)],
    reason: &PoisonReason,
    origin: Origin<'_>,
) -> Vec<(String, Option<Vec<u8>>)> {
    let mut headers: Vec<(String, Option<Vec<u8>>)> = original
        .iter()
        .filter(|(key, _)| !key.starts_with("dlq-"))
        .cloned()
        .collect();
    let added = [
        (HEADER_DLQ_REASON, reason.header_value()),
        (HEADER_ORIGINAL_TOPIC, origin.topic.to_string()),
        (HEADER_ORIGINAL_PARTITION, origin.partition.to_string()),
        (HEADER_ORIGINAL_OFFSET, origin.offset.to_string()),
    ];
    headers.extend(
        added
            .into_iter()
            .map(|(key, value)| (key.to_string(), Some(value.into_bytes()))),
    );
    headers
}

/// The headers of a Kafka message as plain pairs.
pub fn header_pairs(message: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes dead letters to the DLQ topic of one consumption topic.
#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer,
    topic: String,
    send_timeout: Duration,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// A producer on `bootstrap` for the DLQ beside `source_topic`.
    pub fn new(
        bootstrap: &str,
        source_topic: &str,
        send_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()?;
        Ok(Self {
            producer,
            topic: dlq_topic(source_topic),
            send_timeout,
        })
    }

    /// The DLQ topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The producer, whose client also answers readiness metadata requests.
    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Writes `message` to the DLQ with `reason` and waits until the broker stored it.
    pub async fn send(
        &self,
        message: &OwnedMessage,
        reason: &PoisonReason,
    ) -> Result<(), KafkaError> {
        let origin = Origin {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        };
        let pairs = dead_letter_headers(&header_pairs(message), reason, origin);
        let headers = pairs
            .iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: value.as_deref(),
                })
            });

        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer
            .send(record, self.send_timeout)
            .await
            .map(|_| ())
            .map_err(|(err, _)| err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin<'static> {
        Origin {
            topic: "raw-consumption-events",
            partition: 2,
            offset: 41,
        }
    }

    fn value_of<'a>(headers: &'a [(String, Option<Vec<u8>>)], key: &str) -> Option<&'a [u8]> {
        headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    #[test]
    fn the_reason_starts_with_its_kind() {
        let reason = PoisonReason::Undecodable("value is not a ConsumptionEvent".into());

        assert_eq!(
            reason.header_value(),
            "undecodable: value is not a ConsumptionEvent"
        );
    }

    #[test]
    fn a_long_reason_is_cut_to_the_header_limit() {
        let reason = PoisonReason::Unscorable("é".repeat(2 * MAX_REASON_BYTES));

        let value = reason.header_value();

        assert!(value.len() <= MAX_REASON_BYTES, "{}", value.len());
        assert!(value.starts_with("unscorable: é"));
    }

    #[test]
    fn dead_letter_headers_keep_the_originals_and_add_reason_and_origin() {
        let original = vec![
            ("traceparent".to_string(), Some(b"00-abc-def-01".to_vec())),
            (
                "content-type".to_string(),
                Some(b"application/json".to_vec()),
            ),
        ];
        let reason = PoisonReason::Undecodable("bad".into());

        let headers = dead_letter_headers(&original, &reason, origin());

        assert_eq!(
            value_of(&headers, "traceparent"),
            Some(&b"00-abc-def-01"[..])
        );
        assert_eq!(
            value_of(&headers, "dlq-reason"),
            Some(&b"undecodable: bad"[..])
        );
        assert_eq!(
            value_of(&headers, HEADER_ORIGINAL_TOPIC),
            Some(&b"raw-consumption-events"[..])
        );
        assert_eq!(
            value_of(&headers, HEADER_ORIGINAL_PARTITION),
            Some(&b"2"[..])
        );
        assert_eq!(value_of(&headers, HEADER_ORIGINAL_OFFSET), Some(&b"41"[..]));
    }

    #[test]
    fn stale_dead_letter_headers_are_replaced_not_repeated() {
        let original = vec![("dlq-reason".to_string(), Some(b"old".to_vec()))];
        let reason = PoisonReason::Unstorable("new".into());

        let headers = dead_letter_headers(&original, &reason, origin());

        let reasons: Vec<_> = headers.iter().filter(|(k, _)| k == "dlq-reason").collect();
        assert_eq!(reasons.len(), 1);
        assert_eq!(
            value_of(&headers, "dlq-reason"),
            Some(&b"unstorable: new"[..])
        );
    }
}
