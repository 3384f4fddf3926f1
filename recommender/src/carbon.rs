//! The carbon function client: `POST` a [`CarbonRequest`] with a timeout, retried with the
//! [`RetryPolicy`] when the failure is transient.
//!
//! The caller's W3C `traceparent` (from the Kafka header) is forwarded as-is, so the function's
//! request span joins the reading's trace. The value is passed through, never parsed or rewritten.

use std::time::Duration;

use backon::Retryable;
use energy_contracts::names::HEADER_TRACEPARENT;
use energy_contracts::{CarbonRequest, CarbonResponse, ConsumptionEvent};
use reqwest::header::HeaderValue;
use reqwest::{StatusCode, Url};

use crate::ErrorChain;
use crate::retry::RetryPolicy;

/// Longest error body kept in an error message; the function's JSON errors are short.
const MAX_ERROR_BODY_BYTES: usize = 512;

/// Why the carbon function gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum CarbonError {
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the carbon function client")]
    Client(#[source] reqwest::Error),
    /// No answer: refused connection, reset, or the timeout ran out.
    #[error("carbon function at {url} did not answer")]
    Unreachable {
        /// Where it was called.
        url: Url,
        /// What the client saw.
        #[source]
        source: reqwest::Error,
    },
    /// The function answered with an error status.
    #[error("carbon function answered {status}: {body}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The start of the answer's body.
        body: String,
    },
    /// The function answered 2xx with a body that is not a `CarbonResponse`.
    #[error("carbon function's answer is not a CarbonResponse")]
    Decode(#[source] reqwest::Error),
}

impl CarbonError {
    /// Whether waiting may help. Only a refusal of the reading itself is final; see
    /// [`refuses_the_reading`].
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => !refuses_the_reading(*status),
            Self::Client(_) | Self::Unreachable { .. } | Self::Decode(_) => true,
        }
    }
}

/// Statuses with which the function refuses the reading's content (bad JSON, an unknown
/// region): asking again gets the same answer. Every other failure, 404 and 415 included, points
/// at the deployment (a function not deployed yet, a wrong URL) and is waited out, because
/// dead-lettering every reading during a roll-out would lose them.
pub fn refuses_the_reading(status: StatusCode) -> bool {
    status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY
}

/// The request for one reading: its energy over `[periodStart, periodEnd)` in its region.
pub fn request_for(event: &ConsumptionEvent) -> CarbonRequest {
    CarbonRequest {
        kwh: event.kwh,
        kind: event.kind,
        region: Some(event.region.clone()),
        at: Some(event.period_start),
        until: Some(event.period_end),
        intensities: Vec::new(),
    }
}

/// A client of one carbon function URL.
#[derive(Debug, Clone)]
pub struct CarbonClient {
    http: reqwest::Client,
    url: Url,
    policy: RetryPolicy,
    attempts: usize,
}

impl CarbonClient {
    /// A client that gives each call `timeout` and makes at most `attempts` calls per score.
    pub fn new(
        url: Url,
        timeout: Duration,
        policy: RetryPolicy,
        attempts: usize,
    ) -> Result<Self, CarbonError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(CarbonError::Client)?;
        Ok(Self {
            http,
            url,
            policy,
            attempts,
        })
    }

    /// Scores one reading, retrying transient failures with the bounded policy.
    pub async fn score(
        &self,
        request: &CarbonRequest,
        traceparent: Option<&str>,
    ) -> Result<CarbonResponse, CarbonError> {
        (|| self.score_once(request, traceparent))
            .retry(self.policy.bounded(self.attempts))
            .when(CarbonError::is_transient)
            .notify(|err, delay| {
                tracing::warn!(
                    error = %ErrorChain(err),
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "carbon function call failed; retrying"
                );
            })
            .await
    }

    /// One call, no retry.
    pub async fn score_once(
        &self,
        request: &CarbonRequest,
        traceparent: Option<&str>,
    ) -> Result<CarbonResponse, CarbonError> {
        let mut call = self.http.post(self.url.clone()).json(request);
        // A value that is not a legal header cannot be a traceparent; the call goes without it.
        if let Some(value) = traceparent.and_then(|tp| HeaderValue::from_str(tp).ok()) {
            call = call.header(HEADER_TRACEPARENT, value);
        }

        let response = call
            .send()
            .await
            .map_err(|source| CarbonError::Unreachable {
                url: self.url.clone(),
                source,
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CarbonError::Status {
                status,
                body: truncate(&body, MAX_ERROR_BODY_BYTES).to_string(),
            });
        }
        response.json().await.map_err(CarbonError::Decode)
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_timeouts_rate_limits_and_missing_functions_are_retried() {
        for status in [500, 502, 503, 504, 408, 429, 404, 415] {
            let err = CarbonError::Status {
                status: StatusCode::from_u16(status).expect("valid status"),
                body: "{}".into(),
            };
            assert!(err.is_transient(), "{status}");
        }
    }

    #[test]
    fn a_refused_reading_is_not_retried() {
        for status in [400, 422] {
            let err = CarbonError::Status {
                status: StatusCode::from_u16(status).expect("valid status"),
                body: "{}".into(),
            };
            assert!(!err.is_transient(), "{status}");
        }
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("short", 64), "short");
    }
}
