//! The recommender's domain logic: when a property's usage is too high, and what its people can
//! do to use less energy or cleaner energy. Pure computation over values the adapters hand in:
//! no Kafka, PostgreSQL, RabbitMQ or HTTP types appear here, and nothing reads a clock.
//!
//! - [`thresholds`]: the operator's alert settings, read from the ConfigMap and validated.
//! - [`reading`]: one interval of energy, rated in kWh per hour of its interval.
//! - [`baseline`]: a series' usual usage by hour of the week in local time, its usual range
//!   (for the outlier flag) and its night-time minimum, learnt from past readings.
//! - [`detector`]: whether a reading raises a RED alert, with hysteresis and a cooldown.
//! - [`advice`]: savings recommendations in kWh and kgCO2e.
//!
//! Per consumption event, an adapter would:
//!
//! 1. turn the event into a [`Reading`] (`Reading::try_from(&event)`);
//! 2. load the series' readings from [`Thresholds::baseline_window`] before the reading's start,
//!    and build a [`Baseline`] with the reading's start as `before`;
//! 3. call [`assess`] with the stored [`AlertState`] (or the default for a new series), and on
//!    [`Decision::Raise`] build the message with [`Raise::red_alert`];
//! 4. call [`advise`] with the carbon function's answer for the reading;
//! 5. store the recommendations and the new state in one transaction, keyed by `eventId`.

pub mod advice;
pub mod baseline;
pub mod detector;
pub mod reading;
pub mod thresholds;

pub use advice::{Advice, AdviceInput, Recommendation, RecommendationKind, Suspicion, advise};
pub use baseline::{Baseline, NightProfile, Outlier, Typical, UsualRange};
pub use detector::{AlertPhase, AlertState, Assessment, Decision, Quiet, Raise, Rule, assess};
pub use reading::{Reading, ReadingError};
pub use thresholds::{BaselineFallback, Thresholds, ThresholdsError};
