//! The transaction of a run: one partition's messages settled together, a single message being
//! a run of one. Its cost in round trips does not grow with the run's length:
//!
//! 1. lock: one `SELECT ... ORDER BY property_id FOR UPDATE` takes the `alert_state` rows of
//!    every property in the run. Two runs that share properties (two consumers briefly owning a
//!    partition during a rebalance, or a property in two partitions after the topic grew) take
//!    them in the same order, so one waits for the other instead of deadlocking. A property
//!    without a row gets an empty one first, which can lock out of order; PostgreSQL's deadlock
//!    detector then aborts one of the runs, and its messages are tried again.
//! 2. history ([`RunTx::histories`]): one statement reads every series the run touches.
//! 3. write ([`RunTx::save`]): one multi-row insert each for recommendations and alerts, and one
//!    update of the changed alert states.
//!
//! Already processed: recommendations go in with `ON CONFLICT DO NOTHING`. When fewer rows go in
//! than were judged, another consumer stored some first, and what was judged after them rests
//! on a state that was not theirs: [`RunTx::save`] says so and the caller rolls back.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use energy_contracts::{ConsumptionEvent, PropertyId, RedAlert};
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use super::{NewRecommendation, SeriesStates, Store, StoreError, query_error, rating_text};
use crate::domain::{AlertState, Reading};

/// The series' readings as billing stored them, for the given windows (`$1`..`$5`, numbered by
/// `n` from 1).
const HISTORY_FROM_READINGS: &str = "\
    SELECT s.n, r.event_id, r.period_start, r.period_end, r.kwh \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) \
         WITH ORDINALITY AS s (property_id, kind, meter_id, since, until, n) \
    JOIN readings AS r ON r.property_id = s.property_id AND r.kind = s.kind \
     AND r.meter_id IS NOT DISTINCT FROM s.meter_id \
     AND r.period_end > s.since AND r.period_start < s.until";

/// The intervals kept with earlier recommendations, for events billing did not store.
const HISTORY_FROM_RECOMMENDATIONS: &str = "\
    SELECT s.n, h.event_id, h.period_start, h.period_end, h.kwh \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) \
         WITH ORDINALITY AS s (property_id, kind, meter_id, since, until, n) \
    CROSS JOIN LATERAL ( \
      SELECT event_id, kwh, \
             (advice->'reading'->>'periodStart')::timestamptz AS period_start, \
             (advice->'reading'->>'periodEnd')::timestamptz AS period_end, \
             advice->'reading'->>'kind' AS kind, \
             advice->'reading'->>'meterId' AS meter_id \
      FROM recommendations WHERE property_id = s.property_id \
    ) AS h \
    WHERE h.kind = s.kind AND h.meter_id IS NOT DISTINCT FROM s.meter_id \
      AND h.period_end > s.since AND h.period_start < s.until";

/// What one message of a run is judged against: the readings of its series that end after
/// `since` and start before the event does, the event itself left out.
#[derive(Debug, Clone, Copy)]
pub struct HistoryWindow<'a> {
    /// The message's event.
    pub event: &'a ConsumptionEvent,
    /// Readings that ended by then no longer count.
    pub since: DateTime<Utc>,
}

/// A series of one property, as `(property, kind, meter)`.
type SeriesId<'a> = (&'a str, &'static str, Option<&'a str>);

fn series_of<'a>(event: &'a ConsumptionEvent) -> SeriesId<'a> {
    (
        event.property_id.as_str(),
        event.kind.as_str(),
        event.meter_id.as_deref(),
    )
}

/// One stored interval of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Interval {
    event_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    kwh: f64,
}

impl Interval {
    fn of(event: &ConsumptionEvent) -> Self {
        Self {
            event_id: event.event_id,
            start: event.period_start.to_utc(),
            end: event.period_end.to_utc(),
            kwh: event.kwh,
        }
    }

    fn counts_for(&self, window: &HistoryWindow<'_>) -> bool {
        self.end > window.since
            && self.start < window.event.period_start.to_utc()
            && self.event_id != window.event.event_id
    }
}

/// The distinct series of `windows`, each with the bounds that cover all its windows: from the
/// earliest `since` to the latest end of an event (so that each event's own reading is found
/// too, which tells whether billing stored it).
fn series_bounds<'a>(
    windows: &[HistoryWindow<'a>],
) -> BTreeMap<SeriesId<'a>, (DateTime<Utc>, DateTime<Utc>)> {
    let mut bounds = BTreeMap::new();
    for window in windows {
        let end = window.event.period_end.to_utc();
        bounds
            .entry(series_of(window.event))
            .and_modify(|(since, until): &mut (DateTime<Utc>, DateTime<Utc>)| {
                *since = (*since).min(window.since);
                *until = (*until).max(end);
            })
            .or_insert((window.since, end));
    }
    bounds
}

/// Each window's history, given the intervals found per series in `readings` and (for the
/// events billing did not store) in `recommended`. An event billing did not store reached Kafka
/// some other way; its history is what earlier recommendations kept plus the run's earlier
/// messages of the series, which a one-by-one pass would have stored by then.
fn assemble(
    windows: &[HistoryWindow<'_>],
    readings: &HashMap<SeriesId<'_>, Vec<Interval>>,
    recommended: &HashMap<SeriesId<'_>, Vec<Interval>>,
) -> Vec<Vec<Reading>> {
    let none = Vec::new();
    windows
        .iter()
        .enumerate()
        .map(|(index, window)| {
            let series = series_of(window.event);
            let stored = readings.get(&series).unwrap_or(&none);
            let chosen: Vec<Interval> = if in_readings(stored, window.event) {
                stored.clone()
            } else {
                let earlier = windows[..index]
                    .iter()
                    .filter(|other| series_of(other.event) == series)
                    .map(|other| Interval::of(other.event));
                let kept = recommended.get(&series).unwrap_or(&none);
                kept.iter().copied().chain(earlier).collect()
            };
            chosen
                .iter()
                .filter(|interval| interval.counts_for(window))
                // Intervals that break the reading rules were never advised on; they teach
                // nothing.
                .filter_map(|i| Reading::new(i.start, i.end, i.kwh).ok())
                .collect()
        })
        .collect()
}

fn in_readings(stored: &[Interval], event: &ConsumptionEvent) -> bool {
    stored
        .iter()
        .any(|interval| interval.event_id == event.event_id)
}

/// A run's transaction, holding the alert-state locks of all its properties. Dropping it without
/// [`RunTx::commit`] rolls everything back.
pub struct RunTx {
    tx: Transaction<'static, Postgres>,
    states: HashMap<String, SeriesStates>,
    changed: BTreeSet<String>,
}

impl Store {
    /// Opens a run's transaction and locks the alert state of every property in `properties`;
    /// a property seen for the first time gets a row with no series.
    pub async fn lock_run<'p>(
        &self,
        properties: impl IntoIterator<Item = &'p PropertyId>,
    ) -> Result<RunTx, StoreError> {
        let wanted: BTreeSet<&str> = properties.into_iter().map(PropertyId::as_str).collect();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("begin a transaction"))?;
        let mut states = lock_states(&mut tx, &wanted).await?;

        let missing: BTreeSet<&str> = wanted
            .iter()
            .copied()
            .filter(|property| !states.contains_key(*property))
            .collect();
        if !missing.is_empty() {
            create_states(&mut tx, &missing).await?;
            let created = lock_states(&mut tx, &missing).await?;
            if created.len() != missing.len() {
                return Err(query_error("lock new alert states")(
                    sqlx::Error::RowNotFound,
                ));
            }
            states.extend(created);
        }
        Ok(RunTx {
            tx,
            states,
            changed: BTreeSet::new(),
        })
    }
}

/// Locks the alert-state rows of `properties` in sorted order and reads them.
async fn lock_states(
    tx: &mut Transaction<'static, Postgres>,
    properties: &BTreeSet<&str>,
) -> Result<HashMap<String, SeriesStates>, StoreError> {
    let properties: Vec<&str> = properties.iter().copied().collect();
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT property_id, state FROM alert_state WHERE property_id = ANY($1) \
         ORDER BY property_id FOR UPDATE",
    )
    .bind(properties)
    .fetch_all(&mut **tx)
    .await
    .map_err(query_error("lock alert states"))?;
    Ok(rows
        .into_iter()
        .map(|(property, state)| {
            let states = read_states(&property, state);
            (property, states)
        })
        .collect())
}

/// A state written by an older layout is not worth blocking the property over: it starts again
/// from armed, which at worst raises one alert early.
fn read_states(property: &str, state: serde_json::Value) -> SeriesStates {
    serde_json::from_value(state).unwrap_or_else(|err| {
        tracing::warn!(property_id = property, error = %err, "alert state unreadable; reset");
        SeriesStates::default()
    })
}

/// Creates the alert-state rows of new properties, with no series. Another consumer may create
/// one first; the insert then waits for it and does nothing.
async fn create_states(
    tx: &mut Transaction<'static, Postgres>,
    properties: &BTreeSet<&str>,
) -> Result<(), StoreError> {
    let properties: Vec<&str> = properties.iter().copied().collect();
    sqlx::query(
        "INSERT INTO alert_state (property_id, state) \
         SELECT p, '{}'::jsonb FROM unnest($1::text[]) AS p ORDER BY p \
         ON CONFLICT (property_id) DO NOTHING",
    )
    .bind(properties)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(query_error("create alert states"))
}

impl RunTx {
    /// The history of every window, in order: one statement for all the series of the run, and
    /// a second one only when some event is not among billing's readings (see [`assemble`]).
    pub async fn histories(
        &mut self,
        windows: &[HistoryWindow<'_>],
    ) -> Result<Vec<Vec<Reading>>, StoreError> {
        let bounds = series_bounds(windows);
        let readings = self.intervals(HISTORY_FROM_READINGS, &bounds).await?;

        let none = Vec::new();
        let elsewhere: BTreeMap<_, _> = windows
            .iter()
            .filter(|w| !in_readings(readings.get(&series_of(w.event)).unwrap_or(&none), w.event))
            .map(|w| {
                let series = series_of(w.event);
                (series, bounds[&series])
            })
            .collect();
        let recommended = if elsewhere.is_empty() {
            HashMap::new()
        } else {
            self.intervals(HISTORY_FROM_RECOMMENDATIONS, &elsewhere)
                .await?
        };
        Ok(assemble(windows, &readings, &recommended))
    }

    /// Runs one of the history statements for `bounds` and groups the rows by series.
    async fn intervals<'a>(
        &mut self,
        sql: &'static str,
        bounds: &BTreeMap<SeriesId<'a>, (DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<HashMap<SeriesId<'a>, Vec<Interval>>, StoreError> {
        let series: Vec<SeriesId<'a>> = bounds.keys().copied().collect();
        let rows = sqlx::query(sql)
            .bind(series.iter().map(|s| s.0).collect::<Vec<_>>())
            .bind(series.iter().map(|s| s.1).collect::<Vec<_>>())
            .bind(series.iter().map(|s| s.2).collect::<Vec<_>>())
            .bind(bounds.values().map(|b| b.0).collect::<Vec<_>>())
            .bind(bounds.values().map(|b| b.1).collect::<Vec<_>>())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(query_error("load the run's history"))?;

        let mut grouped: HashMap<SeriesId<'a>, Vec<Interval>> = HashMap::new();
        for row in &rows {
            let read = || -> Result<(usize, Interval), sqlx::Error> {
                let n: i64 = row.try_get(0)?;
                let interval = Interval {
                    event_id: row.try_get(1)?,
                    start: row.try_get(2)?,
                    end: row.try_get(3)?,
                    kwh: row.try_get(4)?,
                };
                Ok((usize::try_from(n - 1).unwrap_or(usize::MAX), interval))
            };
            let (index, interval) = read().map_err(query_error("read the run's history"))?;
            let Some(&series) = series.get(index) else {
                continue;
            };
            grouped.entry(series).or_default().push(interval);
        }
        Ok(grouped)
    }

    /// The state of one series of a locked property, as this run left it; the default for a
    /// series never seen.
    pub fn alert_state(&self, property: &PropertyId, series: &str) -> AlertState {
        self.states
            .get(property.as_str())
            .and_then(|states| states.series.get(series))
            .cloned()
            .unwrap_or_default()
    }

    /// Sets the state of one series of a locked property; written by [`RunTx::save`].
    pub fn set_alert_state(&mut self, property: &PropertyId, series: &str, state: AlertState) {
        let states = self
            .states
            .entry(property.as_str().to_string())
            .or_default();
        states.series.insert(series.to_string(), state);
        self.changed.insert(property.as_str().to_string());
    }

    /// Writes the recommendations (in the order given), the alerts and the changed alert states.
    /// Returns false, with only part written, when some recommendation was stored already: the
    /// caller must then drop the transaction.
    pub async fn save(
        &mut self,
        recommendations: &[NewRecommendation<'_>],
        alerts: &[&RedAlert],
    ) -> Result<bool, StoreError> {
        let inserted = insert_recommendations(&mut self.tx, recommendations).await?;
        if inserted != recommendations.len() as u64 {
            return Ok(false);
        }
        if !alerts.is_empty() {
            insert_alerts(&mut self.tx, alerts).await?;
        }
        self.write_states().await?;
        Ok(true)
    }

    async fn write_states(&mut self) -> Result<(), StoreError> {
        if self.changed.is_empty() {
            return Ok(());
        }
        let mut properties = Vec::with_capacity(self.changed.len());
        let mut documents = Vec::with_capacity(self.changed.len());
        for property in &self.changed {
            let states = self.states.get(property).cloned().unwrap_or_default();
            let document = serde_json::to_value(states).map_err(|err| {
                query_error("encode an alert state")(sqlx::Error::Encode(err.into()))
            })?;
            properties.push(property.as_str());
            documents.push(document);
        }
        sqlx::query(
            "UPDATE alert_state AS a SET state = u.state, updated_at = now() \
             FROM unnest($1::text[], $2::jsonb[]) AS u (property_id, state) \
             WHERE a.property_id = u.property_id",
        )
        .bind(properties)
        .bind(documents)
        .execute(&mut *self.tx)
        .await
        .map(|_| ())
        .map_err(query_error("update alert states"))
    }

    /// Commits every write of the run.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx
            .commit()
            .await
            .map_err(query_error("commit a run's results"))
    }
}

/// Inserts the rows that are new, numbered in the order given; returns how many went in.
async fn insert_recommendations(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[NewRecommendation<'_>],
) -> Result<u64, StoreError> {
    let column = |f: fn(&NewRecommendation<'_>) -> f64| rows.iter().map(f).collect::<Vec<_>>();
    let factors: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| serde_json::to_value(&row.carbon.factor))
        .collect::<Result<_, _>>()
        .map_err(|err| query_error("encode an emission factor")(sqlx::Error::Encode(err.into())))?;
    sqlx::query(
        // `created_at` is when the row was written, not when its transaction began.
        "INSERT INTO recommendations (event_id, property_id, kwh, kg_co2e, grams_per_kwh, \
           rating, factor, advice, kafka_partition, kafka_offset, created_at) \
         SELECT r.event_id, r.property_id, r.kwh, r.kg_co2e, r.grams_per_kwh, r.rating, \
           r.factor, r.advice, r.kafka_partition, r.kafka_offset, clock_timestamp() \
         FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::float8[], $5::float8[], \
           $6::text[], $7::jsonb[], $8::jsonb[], $9::int4[], $10::int8[]) \
           WITH ORDINALITY AS r (event_id, property_id, kwh, kg_co2e, grams_per_kwh, rating, \
           factor, advice, kafka_partition, kafka_offset, n) \
         ORDER BY r.n \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(rows.iter().map(|r| r.event.event_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.event.property_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(column(|r| r.event.kwh))
    .bind(column(|r| r.carbon.kg_co2e))
    .bind(column(|r| r.carbon.grams_per_kwh))
    .bind(
        rows.iter()
            .map(|r| rating_text(r.carbon))
            .collect::<Vec<_>>(),
    )
    .bind(factors)
    .bind(rows.iter().map(|r| r.advice.clone()).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.position.partition)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.position.offset).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected())
    .map_err(query_error("insert recommendations"))
}

async fn insert_alerts(
    tx: &mut Transaction<'static, Postgres>,
    alerts: &[&RedAlert],
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO alerts (alert_id, event_id, property_id, kwh, threshold, reason, kg_co2e, \
           raised_at) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::float8[], $5::float8[], \
           $6::text[], $7::float8[], $8::timestamptz[]) \
         ON CONFLICT (alert_id) DO NOTHING",
    )
    .bind(alerts.iter().map(|a| a.alert_id).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.event_id).collect::<Vec<_>>())
    .bind(
        alerts
            .iter()
            .map(|a| a.property_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(alerts.iter().map(|a| a.kwh).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.threshold).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.reason.as_str()).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.kg_co2e).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.raised_at).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(query_error("insert alerts"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::fixtures::hourly_event;

    fn event(property: &str, hour: i64, kwh: f64) -> ConsumptionEvent {
        hourly_event(property, None, hour, kwh)
    }

    fn window(event: &ConsumptionEvent, hours_back: i64) -> HistoryWindow<'_> {
        HistoryWindow {
            event,
            since: event.period_start.to_utc() - TimeDelta::hours(hours_back),
        }
    }

    fn kwh(history: &[Reading]) -> Vec<f64> {
        history.iter().map(Reading::kwh).collect()
    }

    #[test]
    fn one_series_spans_all_its_windows() {
        let (first, second) = (event("a", 10, 1.0), event("a", 12, 1.0));
        let other = event("b", 0, 1.0);
        let windows = [window(&first, 5), window(&second, 2), window(&other, 1)];

        let bounds = series_bounds(&windows);

        assert_eq!(bounds.len(), 2);
        let (since, until) = bounds[&series_of(&first)];
        assert_eq!(since, first.period_start.to_utc() - TimeDelta::hours(5));
        assert_eq!(until, second.period_end.to_utc());
    }

    #[test]
    fn a_stored_reading_is_judged_against_earlier_readings_in_its_window_only() {
        let old = event("a", 0, 7.0);
        let recent = event("a", 8, 2.0);
        let current = event("a", 9, 3.0);
        let later = event("a", 10, 4.0);
        let readings = HashMap::from([(
            series_of(&current),
            [&old, &recent, &current, &later].map(Interval::of).to_vec(),
        )]);

        let histories = assemble(&[window(&current, 4)], &readings, &HashMap::new());

        assert_eq!(kwh(&histories[0]), [2.0]);
    }

    #[test]
    fn an_event_billing_did_not_store_sees_kept_intervals_and_the_runs_earlier_messages() {
        let kept = event("a", 0, 1.0);
        let first = event("a", 1, 2.0);
        let second = event("a", 2, 3.0);
        let elsewhere = event("b", 1, 9.0);
        let recommended = HashMap::from([(series_of(&kept), vec![Interval::of(&kept)])]);
        let windows = [
            window(&first, 24),
            window(&elsewhere, 24),
            window(&second, 24),
        ];

        let histories = assemble(&windows, &HashMap::new(), &recommended);

        assert_eq!(kwh(&histories[0]), [1.0]);
        assert!(histories[1].is_empty());
        assert_eq!(kwh(&histories[2]), [1.0, 2.0]);
    }
}
