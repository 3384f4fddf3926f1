//! Validation of one submitted reading, field by field, into a [`NewReading`].
//!
//! Input arrives as a JSON object (a single request, a batch item, an NDJSON line or a CSV row
//! turned into an object), so every rule is checked here once and every rejection names the
//! field and says what was expected. No I/O.

use chrono::{DateTime, Duration, FixedOffset, Utc};
use energy_contracts::{EnergyKind, PropertyId};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Largest energy one reading may report, kWh. A reading is interval energy of one meter;
/// a month of a large commercial site stays far below this, so anything above is a unit error
/// (Wh sent as kWh) or a cumulative register value sent by mistake.
pub const MAX_KWH_PER_READING: f64 = 1_000_000.0;

/// Longest accepted interval: a monthly bill covers at most 31 days.
pub const MAX_INTERVAL: Duration = Duration::days(31);

/// How far in the future an interval may end, for meter clocks that run ahead.
pub const MAX_CLOCK_SKEW: Duration = Duration::hours(1);

/// Longest meter id, in characters.
pub const MAX_METER_ID_LEN: usize = 128;

/// Fields a reading may carry; anything else is refused so that a typo (`kWh`) is not ignored.
pub const FIELDS: [&str; 8] = [
    "eventId",
    "propertyId",
    "meterId",
    "kind",
    "kwh",
    "periodStart",
    "periodEnd",
    "region",
];

/// A reading that passed every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReading {
    /// Client-chosen event id, when given (a retry with it is stored once).
    pub event_id: Option<Uuid>,
    /// Property the reading belongs to.
    pub property_id: PropertyId,
    /// Meter, when named.
    pub meter_id: Option<String>,
    /// Electricity or gas.
    pub kind: EnergyKind,
    /// Interval energy, kWh.
    pub kwh: f64,
    /// Start of the interval, with the sender's offset.
    pub period_start: DateTime<FixedOffset>,
    /// End of the interval (exclusive).
    pub period_end: DateTime<FixedOffset>,
    /// Grid region; the platform default when the sender named none.
    pub region: String,
}

/// Why a reading was refused: which field, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Machine-readable code (`missing_field`, `invalid_field`, `unknown_field`).
    pub code: &'static str,
    /// The JSON field at fault.
    pub field: String,
    /// What was expected, for people.
    pub message: String,
}

impl FieldError {
    fn missing(field: &str) -> Self {
        Self {
            code: "missing_field",
            field: field.into(),
            message: format!("{field} is required"),
        }
    }

    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_field",
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The rules that depend on the deployment: known regions and the default one.
#[derive(Debug, Clone)]
pub struct ReadingRules {
    /// Region codes the carbon function has factors for.
    pub regions: Vec<String>,
    /// Region used when a reading names none.
    pub default_region: String,
}

impl ReadingRules {
    /// Checks a JSON value against every rule. `now` bounds how far in the future it may end.
    pub fn validate(&self, value: &Value, now: DateTime<Utc>) -> Result<NewReading, FieldError> {
        let object = value.as_object().ok_or_else(|| {
            FieldError::invalid(
                "",
                "a reading must be a JSON object with propertyId, kwh, \
                                     periodStart and periodEnd",
            )
        })?;
        reject_unknown_fields(object)?;

        let event_id = optional_str(object, "eventId")?
            .map(|s| {
                Uuid::parse_str(s).map_err(|_| FieldError::invalid("eventId", "must be a UUID"))
            })
            .transpose()?;
        let property_id = PropertyId::parse(required_str(object, "propertyId")?)
            .map_err(|e| FieldError::invalid("propertyId", e.to_string()))?;
        let meter_id = optional_str(object, "meterId")?.map(meter_id).transpose()?;
        let kind = optional_str(object, "kind")?
            .map(kind)
            .transpose()?
            .unwrap_or_default();
        let kwh = kwh(object.get("kwh"))?;

        let period_start = timestamp(object, "periodStart")?;
        let period_end = timestamp(object, "periodEnd")?;
        check_interval(period_start, period_end, now)?;

        let region = match optional_str(object, "region")? {
            Some(region) => self.known_region(region)?,
            None => self.default_region.clone(),
        };
        Ok(NewReading {
            event_id,
            property_id,
            meter_id,
            kind,
            kwh,
            period_start,
            period_end,
            region,
        })
    }

    fn known_region(&self, region: &str) -> Result<String, FieldError> {
        if self.regions.iter().any(|known| known == region) {
            return Ok(region.to_string());
        }
        Err(FieldError::invalid(
            "region",
            format!(
                "unknown region {region:?}; known regions: {}",
                self.regions.join(", ")
            ),
        ))
    }
}

fn reject_unknown_fields(object: &Map<String, Value>) -> Result<(), FieldError> {
    match object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        Some(key) => Err(FieldError {
            code: "unknown_field",
            field: key.clone(),
            message: format!("unknown field {key:?}; a reading has {}", FIELDS.join(", ")),
        }),
        None => Ok(()),
    }
}

fn required_str<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    optional_str(object, field)?.ok_or_else(|| FieldError::missing(field))
}

/// A string field that may be absent or null; any other type is an error.
fn optional_str<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(FieldError::invalid(
            field,
            format!("must be a string, not {}", type_name(other)),
        )),
    }
}

fn kwh(value: Option<&Value>) -> Result<f64, FieldError> {
    let kwh = match value {
        None | Some(Value::Null) => return Err(FieldError::missing("kwh")),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(other) => {
            let message = format!("must be a number of kWh, not {}", type_name(other));
            return Err(FieldError::invalid("kwh", message));
        }
    };
    if !kwh.is_finite() {
        return Err(FieldError::invalid("kwh", "must be a finite number"));
    }
    if kwh < 0.0 {
        return Err(FieldError::invalid(
            "kwh",
            "must not be negative; export (net-metering) readings are not accepted",
        ));
    }
    if kwh > MAX_KWH_PER_READING {
        return Err(FieldError::invalid(
            "kwh",
            format!(
                "{kwh} kWh is above the {MAX_KWH_PER_READING} kWh a single interval reading may \
                 report; is it in Wh, or a cumulative meter total?"
            ),
        ));
    }
    Ok(kwh)
}

fn kind(value: &str) -> Result<EnergyKind, FieldError> {
    match value {
        "electricity" => Ok(EnergyKind::Electricity),
        "gas" => Ok(EnergyKind::Gas),
        other => Err(FieldError::invalid(
            "kind",
            format!("unknown kind {other:?}; expected \"electricity\" or \"gas\""),
        )),
    }
}

fn meter_id(value: &str) -> Result<String, FieldError> {
    let len = value.chars().count();
    if len == 0 || len > MAX_METER_ID_LEN || value.chars().any(char::is_control) {
        return Err(FieldError::invalid(
            "meterId",
            format!("must be 1 to {MAX_METER_ID_LEN} printable characters"),
        ));
    }
    Ok(value.to_string())
}

fn timestamp(
    object: &Map<String, Value>,
    field: &str,
) -> Result<DateTime<FixedOffset>, FieldError> {
    let text = required_str(object, field)?;
    DateTime::parse_from_rfc3339(text).map_err(|e| {
        FieldError::invalid(
            field,
            format!(
                "{text:?} is not an RFC 3339 time with a UTC offset ({e}); for example \
                 2026-03-29T01:30:00+01:00 or 2026-03-29T00:30:00Z"
            ),
        )
    })
}

fn check_interval(
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
    now: DateTime<Utc>,
) -> Result<(), FieldError> {
    if end <= start {
        return Err(FieldError::invalid(
            "periodEnd",
            "must be after periodStart",
        ));
    }
    if end - start > MAX_INTERVAL {
        return Err(FieldError::invalid(
            "periodEnd",
            "the interval is longer than 31 days; send one reading per billing period or less",
        ));
    }
    if end.with_timezone(&Utc) > now + MAX_CLOCK_SKEW {
        return Err(FieldError::invalid("periodEnd", "lies in the future"));
    }
    Ok(())
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> ReadingRules {
        ReadingRules {
            regions: vec!["GB".into(), "DE".into()],
            default_region: "GB".into(),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-03T12:00:00Z".parse().expect("literal time")
    }

    fn valid() -> Value {
        json!({
            "propertyId": "flat-1",
            "kwh": 1.5,
            "periodStart": "2026-12-01T00:00:00+01:00",
            "periodEnd": "2026-12-01T01:00:00+01:00"
        })
    }

    fn error_for(patch: Value) -> FieldError {
        let mut reading = valid();
        for (key, value) in patch.as_object().expect("patch is an object") {
            if value.is_null() {
                reading.as_object_mut().expect("object").remove(key);
            } else {
                reading[key] = value.clone();
            }
        }
        rules()
            .validate(&reading, now())
            .expect_err("reading must be refused")
    }

    #[test]
    fn a_minimal_reading_gets_the_default_kind_and_region() {
        let reading = rules().validate(&valid(), now()).expect("valid reading");
        assert_eq!(reading.kind, EnergyKind::Electricity);
        assert_eq!(reading.region, "GB");
        assert_eq!(reading.period_start.offset().local_minus_utc(), 3600);
    }

    #[test]
    fn missing_fields_are_named() {
        for field in ["propertyId", "kwh", "periodStart", "periodEnd"] {
            let err = error_for(json!({ field: null }));
            assert_eq!((err.code, err.field.as_str()), ("missing_field", field));
        }
    }

    #[test]
    fn wrong_types_say_what_was_expected() {
        let err = error_for(json!({ "kwh": "1.5" }));
        assert_eq!(err.field, "kwh");
        assert!(err.message.contains("not a string"), "{}", err.message);
        let err = error_for(json!({ "propertyId": 7 }));
        assert!(err.message.contains("must be a string"), "{}", err.message);
    }

    #[test]
    fn negative_and_huge_energy_are_refused() {
        assert!(
            error_for(json!({ "kwh": -0.1 }))
                .message
                .contains("negative")
        );
        assert!(
            error_for(json!({ "kwh": 2e6 }))
                .message
                .contains("cumulative")
        );
    }

    #[test]
    fn zero_energy_is_accepted() {
        let mut reading = valid();
        reading["kwh"] = json!(0);
        assert!(rules().validate(&reading, now()).is_ok());
    }

    #[test]
    fn times_without_an_offset_or_with_a_bad_one_are_refused() {
        for bad in [
            "2026-12-01T00:00:00",
            "2026-12-01T00:00:00+25:00",
            "yesterday",
        ] {
            let err = error_for(json!({ "periodStart": bad }));
            assert_eq!(err.field, "periodStart");
            assert!(err.message.contains("RFC 3339"), "{}", err.message);
        }
    }

    #[test]
    fn an_interval_that_ends_before_it_starts_is_refused() {
        let err = error_for(json!({ "periodEnd": "2026-11-30T23:00:00Z" }));
        assert_eq!(
            (err.field.as_str(), err.message.as_str()),
            ("periodEnd", "must be after periodStart")
        );
    }

    #[test]
    fn offsets_are_compared_as_instants() {
        // 01:00+01:00 is 00:00Z: an empty interval, although the wall clock moved.
        let err = error_for(json!({ "periodEnd": "2026-11-30T23:00:00Z" }));
        assert_eq!(err.field, "periodEnd");
        let mut reading = valid();
        reading["periodEnd"] = json!("2026-12-01T00:30:00Z");
        assert!(rules().validate(&reading, now()).is_ok());
    }

    #[test]
    fn long_and_future_intervals_are_refused() {
        assert!(
            error_for(json!({ "periodEnd": "2027-01-15T00:00:00Z" }))
                .message
                .contains("31")
        );
        let err = error_for(json!({
            "periodStart": "2026-12-03T12:00:00Z", "periodEnd": "2026-12-03T14:00:00Z"
        }));
        assert!(err.message.contains("future"));
    }

    #[test]
    fn unknown_regions_list_the_known_ones() {
        let err = error_for(json!({ "region": "XX" }));
        assert_eq!(err.field, "region");
        assert!(err.message.contains("GB, DE"), "{}", err.message);
    }

    #[test]
    fn unknown_kinds_and_fields_are_refused() {
        assert_eq!(error_for(json!({ "kind": "water" })).field, "kind");
        let err = error_for(json!({ "kWh": 1 }));
        assert_eq!((err.code, err.field.as_str()), ("unknown_field", "kWh"));
    }

    #[test]
    fn a_client_event_id_must_be_a_uuid() {
        assert_eq!(error_for(json!({ "eventId": "abc" })).field, "eventId");
        let mut reading = valid();
        let id = Uuid::now_v7();
        reading["eventId"] = json!(id.to_string());
        assert_eq!(
            rules().validate(&reading, now()).expect("valid").event_id,
            Some(id)
        );
    }

    #[test]
    fn a_non_object_is_refused() {
        assert!(rules().validate(&json!([1, 2]), now()).is_err());
    }
}
