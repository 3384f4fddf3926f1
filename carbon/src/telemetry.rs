//! Log set-up: `RUST_LOG` filters (info by default); text for terminals, JSON for deployments.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` holds a directive the filter does not understand.
    #[error("RUST_LOG is not a valid filter")]
    Filter(#[source] tracing_subscriber::filter::FromEnvError),
    /// A global subscriber was already installed.
    #[error("could not install the log subscriber")]
    Install(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Installs the process-wide subscriber.
pub fn init(format: LogFormat) -> Result<(), TelemetryError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(TelemetryError::Filter)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);

    let installed = match format {
        LogFormat::Text => builder.try_init(),
        // Span fields (traceparent, region) go on every line logged inside a request.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(TelemetryError::Install)
}
