//! Logging set-up: readable lines in a terminal, one JSON object per line in deployments, the
//! level chosen by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Default filter when `RUST_LOG` is unset: info, with the per-frame and per-query logs of lapin
/// and sqlx kept to warnings.
const DEFAULT_FILTER: &str = "info,lapin=warn,sqlx=warn";

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the log subscriber: {0}")]
pub struct TelemetryError(String);

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        // Span fields (property_id, event_id, partition, offset, traceparent) ride on each line.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|err| TelemetryError(err.to_string()))
}
