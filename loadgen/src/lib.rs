//! Load generator of the energy platform (issue 7): drives a running platform with meter
//! readings and measures what it achieves beside what the machine itself can do.
//!
//! A run has three load phases against billing, each followed by a wait until the recommender
//! has caught up, so one phase's backlog does not colour the next one's figures:
//!
//! 1. steady: a paced rate (200 readings/s by default) with some RED readings, for end-to-end
//!    latency (request to stored recommendation) and alert latency (request to the message on
//!    `/ws/alerts`);
//! 2. single: one reading per request at the chosen concurrency, as fast as billing answers;
//! 3. batch: batch requests of the chosen size.
//!
//! Then the ceilings ([`ceiling`]): the same transactions from a bare sqlx pool, the same rows
//! as multi-row inserts, the same messages from a bare Kafka producer. Last, the no-loss check:
//! every accepted reading is stored once, published once and has one recommendation.
//!
//! With `--hold-pid` set to the recommender's process, the recommender is held stopped while the
//! single and batch phases load ([`hold`]): billing's ingest without the recommender on the same
//! cores, beside the full pipeline's figure of a run without it.
//!
//! Modules: [`config`] (flags), [`workload`] (which readings), [`driver`] (HTTP),
//! [`alerts`] (WebSocket), [`probe`] (the platform's stores), [`ceiling`], [`stats`],
//! [`hold`], [`report`] (table and JSON).

#![forbid(unsafe_code)]

pub mod alerts;
pub mod ceiling;
pub mod config;
pub mod driver;
pub mod hold;
pub mod probe;
pub mod report;
pub mod run;
pub mod stats;
pub mod workload;

pub use config::Config;
pub use report::{NoLossCheck, Report};
pub use run::run;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An HTTP request to billing failed before an answer.
    #[error("http: cannot {action}")]
    Http {
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// billing answered, but not with acceptance.
    #[error("billing refused: {0}")]
    Refused(String),
    /// A service the run needs is not there or not ready.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The alert WebSocket could not be opened.
    #[error("cannot open the alert socket {url}")]
    Socket {
        /// The socket's URL.
        url: String,
        /// The WebSocket client's error.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// PostgreSQL failed.
    #[error("postgresql: cannot {action}")]
    Database {
        /// What was being done.
        action: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Kafka failed.
    #[error("kafka: cannot {action}")]
    Kafka {
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The `--hold-pid` process could not be stopped or resumed.
    #[error("cannot hold the process given by --hold-pid")]
    Hold(#[from] hold::HoldError),
    /// The results could not be written.
    #[error("cannot write {path}")]
    Output {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Result of the load generator's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
