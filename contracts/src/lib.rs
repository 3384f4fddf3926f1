//! The message contracts of the energy platform, shared by every service that produces or
//! consumes them.
//!
//! - [`event`]: the `ConsumptionEvent` billing publishes to Kafka (`raw-consumption-events`,
//!   keyed by `propertyId`) and the recommender consumes.
//! - [`alert`]: the RED alert the recommender publishes to the `energy.alerts` topic exchange.
//! - [`carbon`]: the request and answer of the carbon calculator function.
//! - [`property`]: the validated property identifier that keys all of the above.
//! - [`names`]: topic, exchange, routing-key and header names.
//! - [`trace`]: the W3C trace context that follows a reading through every service.
//!
//! Field names on the wire are camelCase JSON, as DESIGN.md section 3 states them. Changing a
//! field here changes a contract: bump [`event::SCHEMA_VERSION`] and tell the readers.

pub mod alert;
pub mod carbon;
pub mod event;
pub mod names;
pub mod property;
pub mod trace;

pub use alert::RedAlert;
pub use carbon::{CarbonRequest, CarbonResponse, EmissionBasis, EmissionFactor, Rating};
pub use event::{ConsumptionEvent, EnergyKind};
pub use property::{PropertyId, PropertyIdError};
