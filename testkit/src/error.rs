//! Errors that say which service is missing and how to start it.

/// Result of the test-support calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a test could not get its share of a service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The variable that locates the service is not set.
    #[error(
        "{service} is not configured for tests: {var} is not set. Start the services with \
         `dev/services up` and `source /tmp/energy-platform/env`, or run every test with `dev/test`"
    )]
    NotConfigured {
        /// Which service.
        service: &'static str,
        /// The variable that was looked for.
        var: &'static str,
    },
    /// The service is configured but did not answer.
    #[error(
        "{service} at {address} did not answer: {reason}. Is it running? `dev/services status` \
         shows what runs; `dev/services up` starts it"
    )]
    Unreachable {
        /// Which service.
        service: &'static str,
        /// Where it was looked for.
        address: String,
        /// What the client said.
        reason: String,
    },
    /// The service answered but refused what the test asked for.
    #[error("{service} refused to {action}: {reason}")]
    Refused {
        /// Which service.
        service: &'static str,
        /// What the test asked for.
        action: String,
        /// What the service said.
        reason: String,
    },
}

impl Error {
    pub(crate) fn unreachable(
        service: &'static str,
        address: impl Into<String>,
        reason: impl ToString,
    ) -> Self {
        Self::Unreachable {
            service,
            address: address.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn refused(
        service: &'static str,
        action: impl Into<String>,
        reason: impl ToString,
    ) -> Self {
        Self::Refused {
            service,
            action: action.into(),
            reason: reason.to_string(),
        }
    }
}
