//! The recommender: consumes consumption events, scores them for carbon, stores savings advice
//! and raises RED alerts when a property's usage is too high.
//!
//! [`domain`] holds the rules themselves, free of any broker, database or HTTP type, so they can
//! be tested on plain values. The Kafka, carbon-function, PostgreSQL and RabbitMQ adapters are
//! built on top of it.

pub mod domain;
