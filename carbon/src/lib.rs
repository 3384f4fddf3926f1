//! The carbon calculator function (being written).
