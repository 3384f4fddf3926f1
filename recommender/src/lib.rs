//! The recommender (being written).
pub mod domain;
