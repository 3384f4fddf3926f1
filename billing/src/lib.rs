//! billing: the ingestion edge of the energy platform.
//!
//! A reading arrives over HTTP, is validated field by field, and is stored together with an
//! outbox row in one PostgreSQL transaction; the answer (202) follows the commit. The outbox
//! relay publishes the rows to Kafka in order, keyed by property, and marks them sent once the
//! broker has them. Reads serve a property's history, recommendations and alerts.
//!
//! - [`domain`]: validation of readings and batch formats (pure).
//! - [`store`]: PostgreSQL: schema, the reading + outbox transaction, read queries.
//! - [`relay`]: the outbox relay to Kafka.
//! - [`alerts`]: RED alerts from RabbitMQ to the page's WebSocket clients.
//! - [`http`]: the axum router, handlers, errors, auth, OpenAPI.
//! - [`server`], [`config`], [`metrics`], [`telemetry`]: wiring, configuration, observability.
//!
//! Run `cargo run -p billing -- --help` for the flags.

pub mod alerts;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod relay;
pub mod server;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use server::{ServeError, serve};

use std::sync::Once;

/// Installs ring as the process-wide rustls provider, once (the tree holds ring alone, but
/// rustls wants the choice made before the first TLS connection).
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only when a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
