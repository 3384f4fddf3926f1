//! The property identifier: 1 to 64 characters of `A-Za-z0-9._-`.
//!
//! It is the Kafka message key, part of the RabbitMQ routing key and a path segment of the read
//! API, so the character set is kept to what is safe in all three without escaping.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest accepted property identifier, in characters.
pub const PROPERTY_ID_MAX_LEN: usize = 64;

/// Why a string is not a property identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyIdError {
    /// The identifier was empty.
    #[error("propertyId must not be empty")]
    Empty,
    /// The identifier was longer than [`PROPERTY_ID_MAX_LEN`].
    #[error("propertyId is {0} characters long; at most 64 are allowed")]
    TooLong(usize),
    /// The identifier held a character outside `A-Za-z0-9._-`.
    #[error("propertyId may only contain A-Z, a-z, 0-9, '.', '_' and '-'; found {0:?}")]
    BadCharacter(char),
}

/// A validated property identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PropertyId(String);

impl PropertyId {
    /// Checks `value` and wraps it.
    pub fn parse(value: impl Into<String>) -> Result<Self, PropertyIdError> {
        let value = value.into();
        if value.is_empty() {
            return Err(PropertyIdError::Empty);
        }
        let len = value.chars().count();
        if len > PROPERTY_ID_MAX_LEN {
            return Err(PropertyIdError::TooLong(len));
        }
        if let Some(bad) = value.chars().find(|c| !is_allowed(*c)) {
            return Err(PropertyIdError::BadCharacter(bad));
        }
        Ok(Self(value))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl TryFrom<String> for PropertyId {
    type Error = PropertyIdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<PropertyId> for String {
    fn from(id: PropertyId) -> Self {
        id.0
    }
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PropertyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_dots_underscores_and_dashes() {
        let id = PropertyId::parse("flat-12_b.3").expect("valid id");
        assert_eq!(id.as_str(), "flat-12_b.3");
    }

    #[test]
    fn accepts_exactly_sixty_four_characters() {
        assert!(PropertyId::parse("a".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_sixty_five_characters() {
        assert_eq!(
            PropertyId::parse("a".repeat(65)),
            Err(PropertyIdError::TooLong(65))
        );
    }

    #[test]
    fn rejects_empty_and_names_the_problem() {
        assert_eq!(PropertyId::parse(""), Err(PropertyIdError::Empty));
    }

    #[test]
    fn rejects_slashes_spaces_and_non_ascii() {
        for (input, bad) in [("a/b", '/'), ("a b", ' '), ("café", 'é'), ("a*", '*')] {
            assert_eq!(
                PropertyId::parse(input),
                Err(PropertyIdError::BadCharacter(bad))
            );
        }
    }

    #[test]
    fn deserialising_checks_the_rules() {
        let err = serde_json::from_str::<PropertyId>("\"no spaces\"").expect_err("must fail");
        assert!(err.to_string().contains("may only contain"), "{err}");
    }
}
