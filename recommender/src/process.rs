//! What happens to one Kafka message, following the steps of [`crate::domain`]:
//!
//! 1. decode it; a value that is not a usable `ConsumptionEvent` is dead-lettered;
//! 2. if its recommendation is stored already (a redelivery), only make sure its alert went out;
//! 3. ask the carbon function for the reading's emissions;
//! 4. in one transaction under the property's lock: load the series' history and alert state,
//!    judge the reading ([`assess`]), draw its advice ([`advise`]), store the recommendation,
//!    any alert (unpublished) and the new state. A backlog goes through this step as a run of
//!    messages in one transaction ([`Processor::process_run`]), a single message as a run of
//!    one;
//! 5. publish the reading's unpublished alerts (when it raised one, or was stored before) and
//!    stamp them once RabbitMQ confirms.
//!
//! Every step is idempotent, so after a transient failure the whole sequence is simply run again
//! ([`ProcessError`] is always worth a retry). Failures that would repeat forever (an undecodable
//! value, a reading the carbon function or PostgreSQL refuses) dead-letter the message instead,
//! because a partition that waits for them would never move again.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use energy_contracts::names::HEADER_TRACEPARENT;
use energy_contracts::{CarbonResponse, ConsumptionEvent, RedAlert};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message, OwnedMessage};
use serde_json::json;
use tracing::Span;
use uuid::Uuid;

use crate::ErrorChain;
use crate::alerts::{AlertPublisher, PublishError};
use crate::carbon::{self, CarbonClient, CarbonError};
use crate::dead_letter::{DeadLetters, PoisonReason};
use crate::domain::{
    Advice, AdviceInput, AlertState, Assessment, Baseline, Decision, Reading, Thresholds, advise,
    assess,
};
use crate::metrics::{Cause, Metrics, Outcome};
use crate::store::{
    HistoryWindow, KafkaPosition, NewRecommendation, Store, StoreError, series_key,
};

/// A failed attempt at a message, worth retrying after a wait.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The carbon function did not answer.
    #[error("carbon function unavailable")]
    Carbon(#[from] CarbonError),
    /// PostgreSQL failed.
    #[error("PostgreSQL unavailable")]
    Store(#[from] StoreError),
    /// RabbitMQ did not confirm an alert.
    #[error("RabbitMQ unavailable")]
    Alert(#[from] PublishError),
    /// Kafka did not take a dead letter.
    #[error("cannot write to the dead-letter topic")]
    DeadLetter(#[source] KafkaError),
}

impl ProcessError {
    /// The dependency that failed, for metrics.
    pub fn cause(&self) -> Cause {
        match self {
            Self::Carbon(_) => Cause::Carbon,
            Self::Store(_) => Cause::Postgres,
            Self::Alert(_) => Cause::RabbitMq,
            Self::DeadLetter(_) => Cause::Kafka,
        }
    }
}

/// The `traceparent` header of a message, when it has a UTF-8 one.
pub fn traceparent(message: &OwnedMessage) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == HEADER_TRACEPARENT)
        .and_then(|header| header.value)
        .and_then(|value| std::str::from_utf8(value).ok())
        .map(str::to_string)
}

/// The event in a Kafka value, with its reading; or why it cannot be processed.
pub fn decode(payload: Option<&[u8]>) -> Result<(ConsumptionEvent, Reading), PoisonReason> {
    let payload =
        payload.ok_or_else(|| PoisonReason::Undecodable("message has no value".into()))?;
    let event = ConsumptionEvent::from_json(payload)
        .map_err(|err| PoisonReason::Undecodable(err.to_string()))?;
    let reading =
        Reading::try_from(&event).map_err(|err| PoisonReason::Undecodable(err.to_string()))?;
    Ok((event, reading))
}

/// What is stored in `recommendations.advice`: the reading's interval, kind and meter (which the
/// table has no columns for), the advice, and how the alert rules judged the reading.
pub fn advice_document(
    event: &ConsumptionEvent,
    reading: &Reading,
    advice: &Advice,
    assessment: &Assessment,
) -> serde_json::Value {
    let judged = match &assessment.decision {
        Decision::Raise(raise) => json!({
            "decision": "raise",
            "rule": raise.rule.name(),
            "reason": raise.reason,
            "thresholdKwhPerHour": raise.threshold_kwh_per_hour,
        }),
        Decision::Quiet(quiet) => json!({ "decision": "quiet", "reason": quiet.to_string() }),
    };
    let suspicion = match advice {
        Advice::Suspicious(why) => Some(why.to_string()),
        Advice::Recommendations(_) => None,
    };
    json!({
        "reading": {
            "kind": event.kind,
            "meterId": event.meter_id,
            "periodStart": event.period_start,
            "periodEnd": event.period_end,
            "kwhPerHour": reading.kwh_per_hour(),
        },
        "advice": advice,
        "suspicion": suspicion,
        "assessment": {
            "judged": judged,
            "typicalKwhPerHour": assessment.typical.kwh_per_hour(),
            "outlier": assessment.outlier.map(|outlier| outlier.to_string()),
        },
    })
}

/// Why a run of messages was not settled together; its messages are then taken one by one.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A message needs the dead-letter topic, which only the one-by-one path writes to.
    #[error("a message of the run cannot be processed: {0}")]
    Poison(PoisonReason),
    /// Another consumer stored some of the run's messages first (during a rebalance).
    #[error("another consumer stored some of the run's messages first")]
    Overtaken,
    /// A step failed.
    #[error(transparent)]
    Failed(#[from] ProcessError),
}

/// What step 4 found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// Stored now, with no alert.
    Quiet,
    /// Stored now, with an alert to publish.
    Alerting,
    /// Stored before (by another consumer, or an attempt whose publish failed): its alert, if
    /// any, may still be unpublished.
    Before,
}

/// A decoded message with its carbon score: what step 4 needs.
#[derive(Debug, Clone, Copy)]
struct Scored<'a> {
    event: &'a ConsumptionEvent,
    reading: &'a Reading,
    position: KafkaPosition,
    carbon: &'a CarbonResponse,
}

/// What step 4 decided about one reading, before it is written.
#[derive(Debug)]
struct Judged {
    /// The `recommendations.advice` document.
    document: serde_json::Value,
    /// The alert to raise, if any.
    alert: Option<RedAlert>,
}

fn position_of(message: &OwnedMessage) -> KafkaPosition {
    KafkaPosition {
        partition: message.partition(),
        offset: message.offset(),
    }
}

/// Runs the steps for one message; built by [`crate::service`] from the adapters.
#[derive(Debug)]
pub struct Processor {
    pub(crate) store: Store,
    pub(crate) carbon: CarbonClient,
    pub(crate) alerts: std::sync::Arc<AlertPublisher>,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) thresholds: Thresholds,
    pub(crate) metrics: std::sync::Arc<Metrics>,
}

impl Processor {
    /// One attempt at `message`, recording the event's keys on the current span.
    pub async fn process(&self, message: &OwnedMessage) -> Result<Outcome, ProcessError> {
        let (event, reading) = match decode(message.payload()) {
            Ok(decoded) => decoded,
            Err(reason) => return self.dead_letter(message, reason).await,
        };
        let span = Span::current();
        span.record("property_id", event.property_id.as_str());
        span.record("event_id", tracing::field::display(event.event_id));

        if self.store.is_processed(event.event_id).await? {
            self.publish_pending(Some(event.event_id)).await?;
            tracing::debug!("already processed; nothing new stored");
            return Ok(Outcome::Duplicate);
        }

        let request = carbon::request_for(&event);
        let carbon = match self
            .carbon
            .score(&request, traceparent(message).as_deref())
            .await
        {
            Ok(carbon) => carbon,
            Err(err) if !err.is_transient() => {
                let reason = PoisonReason::Unscorable(ErrorChain(&err).to_string());
                return self.dead_letter(message, reason).await;
            }
            Err(err) => return Err(err.into()),
        };

        let item = Scored {
            event: &event,
            reading: &reading,
            position: position_of(message),
            carbon: &carbon,
        };
        let recorded = match self.record_run(std::slice::from_ref(&item)).await {
            Ok(Some(recorded)) => recorded.first().copied().unwrap_or(Recorded::Before),
            // Another consumer stored it while the carbon function answered.
            Ok(None) => Recorded::Before,
            Err(err) if !err.is_transient() => {
                let reason = PoisonReason::Unstorable(ErrorChain(&err).to_string());
                return self.dead_letter(message, reason).await;
            }
            Err(err) => return Err(err.into()),
        };

        // A reading stored without an alert has nothing to publish: skip the query.
        if recorded != Recorded::Quiet {
            self.publish_pending(Some(event.event_id)).await?;
        }
        Ok(Outcome::Stored)
    }

    /// The earliest end of a reading that still belongs to `reading`'s baseline.
    fn history_since(&self, reading: &Reading) -> DateTime<Utc> {
        reading
            .start()
            .checked_sub_signed(self.thresholds.baseline_window())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Judges one reading against its history and its series' alert state: the advice document
    /// to store, the alert to raise (if any) and the series' next state.
    fn judge(
        &self,
        item: &Scored<'_>,
        history: &[Reading],
        state: &AlertState,
    ) -> (Judged, AlertState) {
        let Scored {
            event,
            reading,
            carbon,
            ..
        } = *item;
        let thresholds = &self.thresholds;
        let baseline = Baseline::build(history, event.kind, reading.start(), thresholds);
        let assessment = assess(reading, &baseline, thresholds, state);
        let advice = advise(&AdviceInput {
            kind: event.kind,
            reading,
            carbon,
            // No grid-intensity feed reaches the recommender yet, so no cleaner hour is known.
            cleaner_hour: None,
            baseline: &baseline,
        });
        let alert = match &assessment.decision {
            Decision::Raise(raise) => Some(raise.red_alert(event, carbon, Utc::now())),
            Decision::Quiet(_) => None,
        };
        let document = advice_document(event, reading, &advice, &assessment);
        (Judged { document, alert }, assessment.state)
    }

    /// Step 4 for the messages of a run (one or more), in order, in one transaction: each is
    /// judged as it would be on its own, against the alert state the ones before it left.
    /// `None` when another consumer stored one of them first; nothing is written then.
    async fn record_run(&self, items: &[Scored<'_>]) -> Result<Option<Vec<Recorded>>, StoreError> {
        if items.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let mut tx = self
            .store
            .lock_run(items.iter().map(|item| &item.event.property_id))
            .await?;
        let windows: Vec<HistoryWindow<'_>> = items
            .iter()
            .map(|item| HistoryWindow {
                event: item.event,
                since: self.history_since(item.reading),
            })
            .collect();
        let histories = tx.histories(&windows).await?;

        let mut judged = Vec::with_capacity(items.len());
        for (item, history) in items.iter().zip(&histories) {
            let property = &item.event.property_id;
            let series = series_key(item.event.kind, item.event.meter_id.as_deref());
            let (verdict, state) = self.judge(item, history, &tx.alert_state(property, &series));
            tx.set_alert_state(property, &series, state);
            tracing::debug!(
                event_id = %item.event.event_id,
                alert = verdict.alert.is_some(),
                history = history.len(),
                "judged"
            );
            judged.push(verdict);
        }

        let rows: Vec<NewRecommendation<'_>> = items
            .iter()
            .zip(&judged)
            .map(|(item, verdict)| NewRecommendation {
                event: item.event,
                position: item.position,
                carbon: item.carbon,
                advice: &verdict.document,
            })
            .collect();
        let alerts: Vec<&RedAlert> = judged.iter().filter_map(|v| v.alert.as_ref()).collect();
        if !tx.save(&rows, &alerts).await? {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(
            judged
                .iter()
                .map(|verdict| match verdict.alert {
                    Some(_) => Recorded::Alerting,
                    None => Recorded::Quiet,
                })
                .collect(),
        ))
    }

    /// One attempt at a run of one partition's messages, in order, with one transaction for all
    /// their results: the lookup of what is processed already is one query, the carbon calls
    /// run side by side, and the store's round trips do not grow with the run (see
    /// [`crate::store::RunTx`]). Each message is judged exactly as [`Processor::process`]
    /// judges it, seeing what the messages before it in the run decided.
    ///
    /// Any failure (a message to dead-letter, a dependency down, a deadlock, another consumer
    /// first) rolls the whole run back and returns the error; the caller then takes the
    /// messages one at a time with [`Processor::process`], which knows how to dead-letter and
    /// retry each. Steps that ran before the failure are idempotent, as for a single message.
    pub async fn process_run(&self, messages: &[OwnedMessage]) -> Result<Vec<Outcome>, RunError> {
        let mut decoded = Vec::with_capacity(messages.len());
        for message in messages {
            decoded.push(decode(message.payload()).map_err(RunError::Poison)?);
        }
        let ids: Vec<Uuid> = decoded.iter().map(|(event, _)| event.event_id).collect();
        let before = self
            .store
            .processed_among(&ids)
            .await
            .map_err(ProcessError::from)?;

        // The first copy of each event not stored yet. A later copy (a relay that sent an event
        // twice) is a duplicate of the first.
        let mut fresh = HashSet::with_capacity(ids.len());
        let todo: Vec<usize> = (0..messages.len())
            .filter(|&i| !before.contains(&ids[i]) && fresh.insert(ids[i]))
            .collect();
        let scores = todo.iter().map(|&i| {
            let request = carbon::request_for(&decoded[i].0);
            let traceparent = traceparent(&messages[i]);
            async move { self.carbon.score(&request, traceparent.as_deref()).await }
        });
        let mut carbons = Vec::with_capacity(todo.len());
        for score in futures::future::join_all(scores).await {
            carbons.push(score.map_err(ProcessError::from)?);
        }

        let items: Vec<Scored<'_>> = todo
            .iter()
            .zip(&carbons)
            .map(|(&i, carbon)| Scored {
                event: &decoded[i].0,
                reading: &decoded[i].1,
                position: position_of(&messages[i]),
                carbon,
            })
            .collect();
        let stored = self
            .record_run(&items)
            .await
            .map_err(ProcessError::from)?
            .ok_or(RunError::Overtaken)?;
        let mut recorded = vec![Recorded::Before; messages.len()];
        for (&i, outcome) in todo.iter().zip(stored) {
            recorded[i] = outcome;
        }

        let mut outcomes = Vec::with_capacity(messages.len());
        for (i, recorded) in recorded.into_iter().enumerate() {
            if recorded != Recorded::Quiet {
                self.publish_pending(Some(ids[i])).await?;
            }
            outcomes.push(match recorded {
                Recorded::Before => Outcome::Duplicate,
                Recorded::Quiet | Recorded::Alerting => Outcome::Stored,
            });
        }
        Ok(outcomes)
    }

    /// Step 5, also run at start-up for every reading (`event_id` `None`): publishes stored
    /// alerts RabbitMQ has not confirmed yet, each stamped once confirmed.
    pub async fn publish_pending(&self, event_id: Option<Uuid>) -> Result<usize, ProcessError> {
        let pending = self.store.pending_alerts(event_id).await?;
        for alert in &pending {
            self.alerts.publish(alert).await?;
            self.store.mark_published(alert.alert_id).await?;
            self.metrics.alert_published();
            tracing::info!(
                alert_id = %alert.alert_id,
                alert_property_id = %alert.property_id,
                "RED alert published"
            );
        }
        Ok(pending.len())
    }

    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: PoisonReason,
    ) -> Result<Outcome, ProcessError> {
        self.dead_letters
            .send(message, &reason)
            .await
            .map_err(ProcessError::DeadLetter)?;
        tracing::warn!(
            reason = %reason,
            dlq = self.dead_letters.topic(),
            "message dead-lettered"
        );
        Ok(Outcome::DeadLettered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::hourly_event;

    fn event(kwh: f64) -> ConsumptionEvent {
        hourly_event("house-1", Some("m-1"), 10, kwh)
    }

    #[test]
    fn a_missing_value_is_undecodable() {
        let err = decode(None).expect_err("no value");

        assert_eq!(err.kind(), "undecodable");
    }

    #[test]
    fn garbage_is_undecodable_with_the_parsers_reason() {
        let err = decode(Some(b"{not json")).expect_err("garbage");

        assert!(
            err.header_value()
                .starts_with("undecodable: value is not a ConsumptionEvent"),
            "{err}"
        );
    }

    #[test]
    fn a_good_event_decodes_with_its_reading() {
        let event = event(2.5);

        let (decoded, reading) = decode(Some(&event.to_json())).expect("valid event");

        assert_eq!(decoded, event);
        assert_eq!(reading.kwh_per_hour(), 2.5);
    }

    #[test]
    fn the_advice_document_keeps_the_interval_kind_and_meter() {
        let event = event(2.0);
        let reading = Reading::try_from(&event).expect("valid reading");
        let thresholds = Thresholds::new(5.0, chrono_tz::UTC);
        let baseline = Baseline::build(&[], event.kind, reading.start(), &thresholds);
        let assessment = assess(&reading, &baseline, &thresholds, &AlertState::default());
        let advice = Advice::Recommendations(Vec::new());

        let document = advice_document(&event, &reading, &advice, &assessment);

        assert_eq!(document["reading"]["kind"], "electricity");
        assert_eq!(document["reading"]["meterId"], "m-1");
        assert_eq!(document["reading"]["periodStart"], "2026-01-05T10:00:00Z");
        assert_eq!(document["assessment"]["judged"]["decision"], "quiet");
    }
}
