//! The readings of a run: many properties, each with back-to-back readings of a fixed interval
//! (30 minutes by default) ending before now, planned per lane.
//!
//! A lane is one sequential sender. Every property belongs to exactly one lane, so each
//! property's readings are sent in order, one after the other, while the lanes run
//! concurrently. RED readings go to properties of their own (one reading each), so the
//! recommender's cooldown never hides one of them.

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use energy_contracts::event::SCHEMA_VERSION;
use energy_contracts::{ConsumptionEvent, EnergyKind, PropertyId};
use serde_json::json;
use uuid::Uuid;

/// Region every generated reading names (the platform's default).
pub const REGION: &str = "GB";

/// One reading the generator will send.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Client-chosen event id, so the run can follow the reading through every store.
    pub event_id: Uuid,
    /// The property it belongs to.
    pub property_id: String,
    /// Energy of the interval, kWh.
    pub kwh: f64,
    /// Interval start.
    pub period_start: DateTime<Utc>,
    /// Interval end (exclusive).
    pub period_end: DateTime<Utc>,
    /// Whether the reading is above the RED limit.
    pub alert: bool,
}

impl Reading {
    /// The reading as billing's API takes it.
    pub fn to_request(&self) -> serde_json::Value {
        json!({
            "eventId": self.event_id,
            "propertyId": self.property_id,
            "kind": "electricity",
            "kwh": self.kwh,
            "periodStart": self.period_start.to_rfc3339(),
            "periodEnd": self.period_end.to_rfc3339(),
            "region": REGION,
        })
    }

    /// The Kafka event billing would publish for this reading, received at `received_at`.
    pub fn to_event(&self, received_at: DateTime<Utc>) -> ConsumptionEvent {
        ConsumptionEvent {
            schema_version: SCHEMA_VERSION,
            event_id: self.event_id,
            // Property ids come from `Workload`, which only makes valid ones.
            property_id: PropertyId::parse(self.property_id.as_str())
                .expect("generated property ids are valid"),
            meter_id: None,
            kind: EnergyKind::Electricity,
            kwh: self.kwh,
            period_start: self.period_start.fixed_offset(),
            period_end: self.period_end.fixed_offset(),
            region: REGION.to_string(),
            received_at,
        }
    }

    /// The same reading under a fresh event id (for the ceilings, which write elsewhere).
    pub fn with_new_id(&self) -> Reading {
        Reading {
            event_id: Uuid::new_v4(),
            ..self.clone()
        }
    }
}

/// A reading with its position in the phase (which also fixes its send time when paced).
#[derive(Debug, Clone)]
pub struct Planned {
    /// Position in the phase, from 0.
    pub seq: usize,
    /// The reading.
    pub reading: Reading,
}

/// The readings of one phase, split into lanes.
pub type Lanes = Vec<Vec<Planned>>;

/// Hands out each property's next reading, across all phases of a run.
#[derive(Debug)]
pub struct Workload {
    run_id: String,
    interval: Span,
    base: DateTime<Utc>,
    next_index: Vec<i64>,
    next_property: usize,
    alert_properties: usize,
}

impl Workload {
    /// A workload of `properties` properties with readings of `interval_mins` minutes; room is
    /// left for `max_readings` readings in all, ending before `now`.
    pub fn new(
        run_id: &str,
        properties: usize,
        interval_mins: i64,
        max_readings: usize,
        now: DateTime<Utc>,
    ) -> Self {
        let properties = properties.max(1);
        let interval = Span::minutes(interval_mins.max(1));
        let per_property = i32::try_from(max_readings.div_ceil(properties) + 1).unwrap_or(i32::MAX);
        // The last reading ends at least an hour before now, whatever the clock does meanwhile.
        let start = now - interval * per_property - Span::hours(1);
        let base = start
            .duration_trunc(Span::hours(1))
            .expect("an hour divides every timestamp of this era");
        Self {
            run_id: run_id.to_string(),
            interval,
            base,
            next_index: vec![0; properties],
            next_property: 0,
            alert_properties: 0,
        }
    }

    /// Plans `count` readings over `lanes` lanes, round-robin over the properties; when
    /// `alert_every` is set, every `alert_every`-th reading is a RED one of `alert_kwh`.
    pub fn plan(
        &mut self,
        count: usize,
        lanes: usize,
        alert_every: Option<usize>,
        alert_kwh: f64,
    ) -> Lanes {
        let lanes = lanes.max(1);
        let mut plan: Lanes = vec![Vec::new(); lanes];
        for seq in 0..count {
            let alert = alert_every.is_some_and(|every| every > 0 && seq % every == every - 1);
            let (lane, reading) = if alert {
                (seq % lanes, self.alert_reading(alert_kwh))
            } else {
                let property = self.next_property;
                self.next_property = (self.next_property + 1) % self.next_index.len();
                (property % lanes, self.ordinary_reading(property))
            };
            plan[lane].push(Planned { seq, reading });
        }
        plan
    }

    fn ordinary_reading(&mut self, property: usize) -> Reading {
        let index = self.next_index[property];
        self.next_index[property] += 1;
        let period_start = self.base + self.interval * i32::try_from(index).unwrap_or(i32::MAX);
        let hours = self.interval.num_seconds() as f64 / 3600.0;
        Reading {
            event_id: Uuid::new_v4(),
            property_id: format!("{}-p{property:05}", self.run_id),
            kwh: round_wh(household_kw(period_start, property) * hours),
            period_start,
            period_end: period_start + self.interval,
            alert: false,
        }
    }

    fn alert_reading(&mut self, kwh: f64) -> Reading {
        let n = self.alert_properties;
        self.alert_properties += 1;
        Reading {
            event_id: Uuid::new_v4(),
            property_id: format!("{}-a{n:05}", self.run_id),
            kwh,
            period_start: self.base,
            period_end: self.base + self.interval,
            alert: true,
        }
    }
}

/// A household's mean power over the interval starting at `start`, kW: a low night, a morning
/// bump and an evening peak, shifted a little per property. Always between 0.2 and 1.6 kW, well
/// under any RED limit of a few kWh per hour.
fn household_kw(start: DateTime<Utc>, property: usize) -> f64 {
    let hour = start.timestamp().rem_euclid(86_400) as f64 / 3600.0;
    let evening = (-((hour - 19.0) / 2.5).powi(2)).exp();
    let morning = 0.5 * (-((hour - 8.0) / 1.5).powi(2)).exp();
    let own = (property % 7) as f64 * 0.03;
    0.2 + own + 1.1 * evening.max(morning)
}

/// Rounds to watt-hours, as meters report.
fn round_wh(kwh: f64) -> f64 {
    (kwh * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn workload() -> Workload {
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:34:56Z").unwrap();
        Workload::new("lg-test", 10, 30, 1_000, now.with_timezone(&Utc))
    }

    #[test]
    fn every_property_lives_in_one_lane_with_back_to_back_readings() {
        let mut workload = workload();
        let lanes = workload.plan(200, 4, None, 0.0);
        let mut lane_of: HashMap<String, usize> = HashMap::new();
        let mut last_end: HashMap<String, DateTime<Utc>> = HashMap::new();
        for (lane, readings) in lanes.iter().enumerate() {
            for planned in readings {
                let r = &planned.reading;
                assert_eq!(*lane_of.entry(r.property_id.clone()).or_insert(lane), lane);
                if let Some(end) = last_end.insert(r.property_id.clone(), r.period_end) {
                    assert_eq!(end, r.period_start, "{} has a gap", r.property_id);
                }
                assert_eq!(r.period_end - r.period_start, Span::minutes(30));
            }
        }
        assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), 200);
    }

    #[test]
    fn readings_continue_across_phases_and_end_before_now() {
        let mut workload = workload();
        let first = workload.plan(10, 1, None, 0.0);
        let second = workload.plan(10, 1, None, 0.0);
        let a = &first[0][0].reading;
        let b = &second[0][0].reading;
        assert_eq!(a.property_id, b.property_id);
        assert_eq!(a.period_end, b.period_start);
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:34:56Z").unwrap();
        assert!(second[0].iter().all(|p| p.reading.period_end < now));
    }

    #[test]
    fn red_readings_each_get_a_property_of_their_own() {
        let mut workload = workload();
        let lanes = workload.plan(100, 3, Some(10), 6.0);
        let alerts: Vec<&Reading> = lanes
            .iter()
            .flatten()
            .map(|p| &p.reading)
            .filter(|r| r.alert)
            .collect();
        assert_eq!(alerts.len(), 10);
        let mut properties: Vec<&str> = alerts.iter().map(|r| r.property_id.as_str()).collect();
        properties.dedup();
        assert_eq!(properties.len(), 10);
        assert!(alerts.iter().all(|r| r.kwh == 6.0));
    }

    #[test]
    fn ordinary_readings_stay_under_the_red_limit() {
        let mut workload = workload();
        let lanes = workload.plan(500, 2, None, 0.0);
        // 5 kWh per hour is the dev platform's limit; 30-minute readings must stay below 2.5.
        assert!(lanes.iter().flatten().all(|p| p.reading.kwh < 2.5));
    }

    #[test]
    fn the_request_and_the_event_carry_the_same_reading() {
        let mut workload = workload();
        let reading = workload.plan(1, 1, None, 0.0)[0][0].reading.clone();
        let request = reading.to_request();
        let event = reading.to_event(Utc::now());
        assert_eq!(request["eventId"], event.event_id.to_string());
        assert_eq!(request["propertyId"], event.property_id.as_str());
        assert_eq!(request["kwh"], event.kwh);
    }
}
