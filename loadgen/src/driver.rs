//! The HTTP side: sends planned readings to billing, one per request or in batches, lane by lane.
//!
//! Each lane is one task that sends its readings in order and waits for each answer before the
//! next request, so a property's readings reach billing in order. A phase ends when every lane
//! is done or its time limit has passed; requests are never retried, so every accepted reading
//! was accepted exactly once by this run.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use reqwest::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::stats::{Recorder, Summary};
use crate::workload::{Lanes, Planned};
use crate::{Error, Result};

/// Longest wait for one answer from billing.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A reading billing accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The reading's event id.
    pub event_id: Uuid,
    /// Wall-clock time the request left.
    pub sent_at: DateTime<Utc>,
    /// Whether it is a RED reading.
    pub alert: bool,
}

/// What one phase achieved.
#[derive(Debug, Default)]
pub struct PhaseOutcome {
    /// Readings planned.
    pub planned: usize,
    /// Readings billing accepted.
    pub accepted: Vec<Sent>,
    /// Readings refused or lost to errors.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Request round trips.
    pub request_latency: Summary,
}

impl PhaseOutcome {
    /// Accepted readings per second over the phase.
    pub fn rate(&self) -> f64 {
        per_second(self.accepted.len(), self.elapsed)
    }
}

/// Readings per second, zero for an empty interval.
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// How readings go out.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// One reading per request, as fast as the lanes go.
    Single,
    /// One reading per request, reading `seq` not before `seq / rate` seconds into the phase.
    Paced {
        /// Readings per second across all lanes.
        rate: f64,
    },
    /// Batches of this many readings per request.
    Batch(usize),
}

/// The HTTP client of a run.
#[derive(Clone)]
pub struct Driver {
    http: reqwest::Client,
    base_url: String,
}

/// What a lane reports back.
#[derive(Default)]
struct LaneOutcome {
    accepted: Vec<Sent>,
    failed: usize,
    first_error: Option<String>,
    latency: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    event_id: Uuid,
}

#[derive(Deserialize)]
struct BatchAnswer {
    items: Vec<BatchItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchItem {
    index: usize,
    status: String,
    event_id: Option<Uuid>,
}

impl Driver {
    /// A client for billing at `base_url` keeping up to `connections` connections open.
    pub fn new(base_url: &str, connections: usize) -> Result<Self> {
        // The workspace's reqwest carries no TLS provider of its own; ring is the one in the tree.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .timeout(REQUEST_TIMEOUT)
            // Loopback only: a proxy from the environment must not sit in the path.
            .no_proxy()
            .build()
            .map_err(|e| Error::Http {
                action: "build the HTTP client".into(),
                source: e,
            })?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }

    /// Checks that billing answers `/readyz`.
    pub async fn ready(&self) -> Result<()> {
        let url = format!("{}/readyz", self.base_url);
        let response = self.http.get(&url).send().await.map_err(|e| Error::Http {
            action: format!("reach billing at {url}"),
            source: e,
        })?;
        if !response.status().is_success() {
            return Err(Error::NotReady(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        Ok(())
    }

    /// billing's version as its OpenAPI document states it.
    pub async fn billing_version(&self) -> Option<String> {
        let url = format!("{}/api/openapi.json", self.base_url);
        let doc: serde_json::Value = self.http.get(url).send().await.ok()?.json().await.ok()?;
        doc["info"]["version"].as_str().map(str::to_string)
    }

    /// Sends every lane's readings in `mode`, stopping new requests after `limit`.
    pub async fn run_phase(
        &self,
        lanes: Lanes,
        mode: Mode,
        limit: Duration,
        bar: &ProgressBar,
    ) -> PhaseOutcome {
        let planned = lanes.iter().map(Vec::len).sum();
        let start = Instant::now();
        let deadline = start + limit;
        let mut tasks = Vec::with_capacity(lanes.len());
        for lane in lanes {
            let driver = self.clone();
            let bar = bar.clone();
            tasks.push(tokio::spawn(async move {
                driver.run_lane(lane, mode, start, deadline, &bar).await
            }));
        }

        let mut outcome = PhaseOutcome {
            planned,
            ..PhaseOutcome::default()
        };
        let mut recorder = Recorder::new();
        for task in futures::future::join_all(tasks).await {
            // A lane task only ends by returning; a panic in it is a bug worth stopping for.
            let lane = task.expect("a lane task does not panic");
            outcome.accepted.extend(lane.accepted);
            outcome.failed += lane.failed;
            if outcome.first_error.is_none() {
                outcome.first_error = lane.first_error;
            }
            lane.latency.iter().for_each(|&m| recorder.record_micros(m));
        }
        outcome.elapsed = start.elapsed();
        outcome.request_latency = recorder.summary();
        outcome
    }

    async fn run_lane(
        &self,
        lane: Vec<Planned>,
        mode: Mode,
        start: Instant,
        deadline: Instant,
        bar: &ProgressBar,
    ) -> LaneOutcome {
        let mut outcome = LaneOutcome::default();
        let chunk = match mode {
            Mode::Batch(size) => size.max(1),
            Mode::Single | Mode::Paced { .. } => 1,
        };
        for group in lane.chunks(chunk) {
            if let Mode::Paced { rate } = mode {
                let due = start + Duration::from_secs_f64(group[0].seq as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            if Instant::now() >= deadline {
                break;
            }
            let sent_at = Utc::now();
            let began = Instant::now();
            let result = match mode {
                Mode::Batch(_) => self.post_batch(group).await,
                Mode::Single | Mode::Paced { .. } => self.post_one(&group[0]).await,
            };
            outcome
                .latency
                .push(i64::try_from(began.elapsed().as_micros()).unwrap_or(i64::MAX));
            match result {
                Ok(accepted) => {
                    let failed = group.len() - accepted.len();
                    if failed > 0 && outcome.first_error.is_none() {
                        outcome.first_error = Some(format!("{failed} batch items refused"));
                    }
                    outcome.failed += failed;
                    bar.inc(group.len() as u64);
                    let alert = |id: Uuid| {
                        group
                            .iter()
                            .any(|p| p.reading.event_id == id && p.reading.alert)
                    };
                    outcome
                        .accepted
                        .extend(accepted.into_iter().map(|event_id| Sent {
                            event_id,
                            sent_at,
                            alert: alert(event_id),
                        }));
                }
                Err(e) => {
                    outcome.failed += group.len();
                    outcome.first_error.get_or_insert_with(|| e.to_string());
                    bar.inc(group.len() as u64);
                }
            }
        }
        outcome
    }

    /// Posts one reading; its event id when billing answers 202 with the same id.
    async fn post_one(&self, planned: &Planned) -> Result<Vec<Uuid>> {
        let url = format!("{}/api/v1/consumption", self.base_url);
        let response = self
            .http
            .post(&url)
            .json(&planned.reading.to_request())
            .send()
            .await;
        let response = response.map_err(|e| Error::Http {
            action: format!("post to {url}"),
            source: e,
        })?;
        let status = response.status();
        if status != StatusCode::ACCEPTED {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Refused(format!("{url} answered {status}: {body}")));
        }
        let accepted: Accepted = response.json().await.map_err(|e| Error::Http {
            action: format!("read the answer of {url}"),
            source: e,
        })?;
        if accepted.event_id != planned.reading.event_id {
            return Err(Error::Refused(format!(
                "billing answered event {} for reading {}",
                accepted.event_id, planned.reading.event_id
            )));
        }
        Ok(vec![accepted.event_id])
    }

    /// Posts readings as one JSON array; the event ids of the accepted items.
    async fn post_batch(&self, group: &[Planned]) -> Result<Vec<Uuid>> {
        let url = format!("{}/api/v1/consumption/batch", self.base_url);
        let body: Vec<serde_json::Value> = group.iter().map(|p| p.reading.to_request()).collect();
        let response = self.http.post(&url).json(&body).send().await;
        let response = response.map_err(|e| Error::Http {
            action: format!("post to {url}"),
            source: e,
        })?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Refused(format!("{url} answered {status}: {body}")));
        }
        let answer: BatchAnswer = response.json().await.map_err(|e| Error::Http {
            action: format!("read the answer of {url}"),
            source: e,
        })?;
        let mut accepted = Vec::with_capacity(group.len());
        for item in answer.items {
            let expected = group.get(item.index).map(|p| p.reading.event_id);
            if item.status == "accepted" && item.event_id.is_some() && item.event_id == expected {
                accepted.extend(item.event_id);
            }
        }
        Ok(accepted)
    }
}
