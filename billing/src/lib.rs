//! billing: the ingestion edge of the energy platform.
//!
//! - [`store`]: the PostgreSQL schema (readings and the transactional outbox) and its
//!   migrations, embedded in the binary.
//!
//! The HTTP API, the outbox relay to Kafka and the alert WebSocket build on this schema.

pub mod store;
