//! Splitting a batch body into items: a JSON array, NDJSON (one object per line) or CSV with a
//! header row. A broken item becomes an item error; the others still go through.

use serde_json::{Map, Number, Value};

use super::reading::{FIELDS, FieldError};

/// The formats `POST /api/v1/consumption/batch` takes, chosen by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// `application/json`: an array of reading objects.
    JsonArray,
    /// `application/x-ndjson`: one reading object per line.
    Ndjson,
    /// `text/csv`: a header row naming reading fields, then one reading per row.
    Csv,
}

/// Why a whole batch body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is not what its format promises (not an array, no CSV header...).
    #[error("{0}")]
    Malformed(String),
    /// More items than one request may carry.
    #[error("the batch has {count} items; at most {max} are accepted per request")]
    TooLarge {
        /// Items found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The body holds no items.
    #[error("the batch holds no readings")]
    Empty,
}

/// One item of a batch: the reading as a JSON value, or why it could not even be read.
pub type BatchItem = Result<Value, FieldError>;

/// Splits `body` into at most `max_items` items.
pub fn split(
    format: BatchFormat,
    body: &[u8],
    max_items: usize,
) -> Result<Vec<BatchItem>, BatchError> {
    let items = match format {
        BatchFormat::JsonArray => json_array(body)?,
        BatchFormat::Ndjson => ndjson(body),
        BatchFormat::Csv => csv_rows(body)?,
    };
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    if items.len() > max_items {
        return Err(BatchError::TooLarge {
            count: items.len(),
            max: max_items,
        });
    }
    Ok(items)
}

fn json_array(body: &[u8]) -> Result<Vec<BatchItem>, BatchError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => Ok(items.into_iter().map(Ok).collect()),
        Ok(_) => Err(BatchError::Malformed(
            "an application/json batch must be an array of readings".into(),
        )),
        Err(e) => Err(BatchError::Malformed(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

fn ndjson(body: &[u8]) -> Vec<BatchItem> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(index, line)| {
            serde_json::from_slice(line).map_err(|e| FieldError {
                code: "malformed_item",
                field: String::new(),
                message: format!("line {} is not valid JSON: {e}", index + 1),
            })
        })
        .collect()
}

fn csv_rows(body: &[u8]) -> Result<Vec<BatchItem>, BatchError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| BatchError::Malformed(format!("the CSV header row cannot be read: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if let Some(unknown) = header.iter().find(|h| !FIELDS.contains(&h.as_str())) {
        return Err(BatchError::Malformed(format!(
            "unknown CSV column {unknown:?}; columns may be {}",
            FIELDS.join(", ")
        )));
    }
    Ok(reader.records().map(|row| csv_row(&header, row)).collect())
}

fn csv_row(header: &[String], row: csv::Result<csv::StringRecord>) -> BatchItem {
    let row = row.map_err(|e| FieldError {
        code: "malformed_item",
        field: String::new(),
        message: format!("CSV row cannot be read: {e}"),
    })?;
    let mut object = Map::new();
    for (column, cell) in header.iter().zip(row.iter()) {
        if cell.is_empty() {
            continue;
        }
        // kwh is the one numeric column; a cell that is not a number stays text so the
        // validation names the field and the value.
        let value = match (
            column.as_str(),
            cell.parse::<f64>().ok().and_then(Number::from_f64),
        ) {
            ("kwh", Some(number)) => Value::Number(number),
            _ => Value::String(cell.to_string()),
        };
        object.insert(column.clone(), value);
    }
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_array_gives_one_item_per_element() {
        let items = split(BatchFormat::JsonArray, br#"[{"a":1},{"b":2}]"#, 10).expect("valid");
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn a_json_object_instead_of_an_array_is_refused() {
        let err = split(BatchFormat::JsonArray, br#"{"a":1}"#, 10).expect_err("not an array");
        assert!(err.to_string().contains("array"));
    }

    #[test]
    fn a_broken_ndjson_line_fails_alone() {
        let body = b"{\"a\":1}\n{broken\n\n{\"c\":3}\n";
        let items = split(BatchFormat::Ndjson, body, 10).expect("split");
        assert_eq!(items.len(), 3);
        assert!(items[0].is_ok() && items[2].is_ok());
        assert!(
            items[1]
                .as_ref()
                .expect_err("broken")
                .message
                .contains("line 2")
        );
    }

    #[test]
    fn csv_rows_become_objects_with_numeric_kwh() {
        let body = b"propertyId,kwh,periodStart,periodEnd\np1,1.5,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z\n";
        let items = split(BatchFormat::Csv, body, 10).expect("split");
        let item = items[0].as_ref().expect("row");
        assert_eq!(item["kwh"], serde_json::json!(1.5));
        assert_eq!(item["propertyId"], "p1");
    }

    #[test]
    fn a_non_numeric_csv_kwh_stays_text_for_validation_to_name() {
        let body = b"propertyId,kwh\np1,lots\n";
        let items = split(BatchFormat::Csv, body, 10).expect("split");
        assert_eq!(items[0].as_ref().expect("row")["kwh"], "lots");
    }

    #[test]
    fn an_unknown_csv_column_refuses_the_batch() {
        let err = split(BatchFormat::Csv, b"propertyId,watts\np1,3\n", 10).expect_err("bad header");
        assert!(err.to_string().contains("watts"));
    }

    #[test]
    fn a_csv_row_with_too_many_cells_fails_alone() {
        let items = split(BatchFormat::Csv, b"propertyId,kwh\np1,1\np2,2,3\n", 10).expect("split");
        assert!(items[0].is_ok());
        assert_eq!(
            items[1].as_ref().expect_err("ragged").code,
            "malformed_item"
        );
    }

    #[test]
    fn too_many_items_refuse_the_batch() {
        let err = split(BatchFormat::JsonArray, b"[1,2,3]", 2).expect_err("too large");
        assert_eq!(err, BatchError::TooLarge { count: 3, max: 2 });
    }

    #[test]
    fn an_empty_batch_is_refused() {
        assert_eq!(
            split(BatchFormat::JsonArray, b"[]", 2),
            Err(BatchError::Empty)
        );
        assert_eq!(
            split(BatchFormat::Ndjson, b"\n\n", 2),
            Err(BatchError::Empty)
        );
    }
}
