//! The recommender (being written).
