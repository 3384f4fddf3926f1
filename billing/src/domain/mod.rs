//! billing's domain: what makes a reading acceptable and how a batch body splits into readings.
//! Pure functions over JSON values and times; no HTTP, PostgreSQL or Kafka types.

pub mod batch;
pub mod reading;

pub use batch::{BatchError, BatchFormat, BatchItem};
pub use reading::{FieldError, NewReading, ReadingRules};
