//! RED alerts to people: a RabbitMQ consumer on this replica's own exclusive queue feeds the
//! [`hub::AlertHub`], which fans each alert out to the WebSocket clients watching its property.
//!
//! - [`consumer`]: binds an exclusive, server-named queue to `energy.alerts` (every replica
//!   sees every alert), reconnects by itself after a broker restart and, after each reconnect,
//!   replays the alerts stored in PostgreSQL while it was away, so none is missed.
//! - [`hub`]: subscriptions per property; a slow or dead socket is dropped, never waited for;
//!   repeats of one `alertId` (at-least-once delivery) are sent once.

pub mod consumer;
pub mod hub;

pub use consumer::AlertConsumer;
pub use hub::{AlertHub, Subscription};
