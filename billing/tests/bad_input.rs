//! Every kind of bad input is refused with the right status, error code and field, and every
//! refusal carries the JSON error body `{"error": {"code", "message"[, "field"]}}`: single
//! readings, authentication, routing, batches (JSON array, NDJSON, CSV) and the read
//! endpoints' parameters. Nothing refused is stored. Runs billing in-process against the real
//! PostgreSQL and Kafka.

mod common;

use anyhow::{Context, ensure};
use chrono::{TimeDelta, Utc};
use common::{Billing, Stack, client, reading};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The one bearer token the tests' billing accepts.
const TOKEN: &str = "test-token-1";
/// Largest body the tests' billing reads, bytes.
const BODY_LIMIT: usize = 16 * 1024;
/// Most readings in one batch for the tests' billing.
const MAX_BATCH: usize = 5;

async fn start(stack: &Stack) -> anyhow::Result<Billing> {
    let limit = BODY_LIMIT.to_string();
    let max_batch = MAX_BATCH.to_string();
    let config = stack.config(&[
        "--api-tokens",
        TOKEN,
        "--body-limit-bytes",
        &limit,
        "--max-batch-items",
        &max_batch,
    ])?;
    Billing::start(config).await
}

/// A valid reading of `flat-1` with `patch` applied: a `null` removes the field.
fn patched(patch: Value) -> Value {
    let mut body = reading("flat-1", 1);
    for (field, value) in patch.as_object().expect("patches are objects") {
        if value.is_null() {
            body.as_object_mut()
                .expect("a reading is an object")
                .remove(field);
        } else {
            body[field] = value.clone();
        }
    }
    body
}

/// Checks the error body of a refusal and returns it.
async fn error_of(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await?;
    ensure!(
        content_type.starts_with("application/json"),
        "{status} answered with content type {content_type:?}: {text:?}"
    );
    let body: Value = serde_json::from_str(&text).with_context(|| format!("{status}: {text}"))?;
    let error = &body["error"];
    ensure!(
        error["code"].is_string() && error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{status} without an error code and message: {body}"
    );
    ensure!(
        error["field"].is_null() || error["field"].is_string(),
        "field must be text when present: {body}"
    );
    Ok(body)
}

/// One bad single reading and what billing must answer.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    idempotency_key: Option<String>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

impl Case {
    fn json(name: &'static str, body: Value, code: &'static str, field: &'static str) -> Self {
        Self {
            name,
            body: serde_json::to_vec(&body).expect("a Value always serialises"),
            content_type: Some("application/json"),
            idempotency_key: None,
            status: 422,
            code,
            field: Some(field),
        }
    }

    fn raw(name: &'static str, body: &str, status: u16, code: &'static str) -> Self {
        Self {
            name,
            body: body.as_bytes().to_vec(),
            content_type: Some("application/json"),
            idempotency_key: None,
            status,
            code,
            field: None,
        }
    }
}

const MISSING: &str = "missing_field";
const INVALID: &str = "invalid_field";
const HOUR_1: &str = "2026-11-01T01:00:00Z";
const HOUR_2: &str = "2026-11-01T02:00:00Z";

/// `(name, code, field, patch)`: a valid reading with `patch` applied is refused with 422,
/// `code` and `field`.
#[rustfmt::skip] // A table reads best one case a line.
fn field_cases() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    let future = |hours| (Utc::now() + TimeDelta::hours(hours)).to_rfc3339();
    let (day_1, day_32) = ("2026-09-01T00:00:00Z", "2026-10-02T00:00:01Z");
    let span = |start: &str, end: &str| json!({"periodStart": start, "periodEnd": end});
    let start = |start: &str| json!({"periodStart": start});
    vec![
        ("missing propertyId", MISSING, "propertyId", json!({"propertyId": null})),
        ("missing kwh", MISSING, "kwh", json!({"kwh": null})),
        ("missing periodStart", MISSING, "periodStart", json!({"periodStart": null})),
        ("missing periodEnd", MISSING, "periodEnd", json!({"periodEnd": null})),
        ("kwh as a string", INVALID, "kwh", json!({"kwh": "1.5"})),
        ("kwh as a boolean", INVALID, "kwh", json!({"kwh": true})),
        ("propertyId as a number", INVALID, "propertyId", json!({"propertyId": 7})),
        ("negative kwh", INVALID, "kwh", json!({"kwh": -0.5})),
        ("huge kwh", INVALID, "kwh", json!({"kwh": 1e7})),
        ("end before start", INVALID, "periodEnd", span(HOUR_2, HOUR_1)),
        ("equal times", INVALID, "periodEnd", span(HOUR_1, HOUR_1)),
        ("no offset", INVALID, "periodStart", start("2026-11-01T01:00:00")),
        ("offset +25:00", INVALID, "periodStart", start("2026-11-01T01:00:00+25:00")),
        ("over 31 days", INVALID, "periodEnd", span(day_1, day_32)),
        ("in the future", INVALID, "periodEnd", span(&future(2), &future(3))),
        ("an unknown region", INVALID, "region", json!({"region": "XX"})),
        ("an unknown kind", INVALID, "kind", json!({"kind": "water"})),
        ("an unknown field", "unknown_field", "kWh", json!({"kWh": 1.0})),
        ("propertyId with a space", INVALID, "propertyId", json!({"propertyId": "flat 1"})),
        ("propertyId of 65 chars", INVALID, "propertyId", json!({"propertyId": "p".repeat(65)})),
        ("an empty propertyId", INVALID, "propertyId", json!({"propertyId": ""})),
        ("eventId not a UUID", INVALID, "eventId", json!({"eventId": "abc"})),
        ("meterId of 129 chars", INVALID, "meterId", json!({"meterId": "m".repeat(129)})),
    ]
}

fn single_reading_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = field_cases()
        .into_iter()
        .map(|(name, code, field, patch)| Case::json(name, patched(patch), code, field))
        .collect();

    cases.extend([
        Case::raw(
            "broken JSON",
            r#"{"propertyId": "flat-1", "kwh": "#,
            400,
            "malformed_json",
        ),
        Case::raw(
            "kwh of 1e400",
            &patched_text("1e400"),
            400,
            "malformed_json",
        ),
        Case::raw("an array instead of an object", "[1, 2]", 422, INVALID),
    ]);
    for (name, key) in [
        ("an Idempotency-Key with a space", "retry 1".to_string()),
        ("an Idempotency-Key of 256 characters", "k".repeat(256)),
    ] {
        let mut case = Case::json(
            name,
            reading("flat-1", 1),
            "invalid_header",
            "Idempotency-Key",
        );
        case.idempotency_key = Some(key);
        cases.push(case);
    }
    for (name, content_type) in [
        ("a text/plain body", Some("text/plain")),
        ("no content type", None),
    ] {
        let mut case = Case::json(name, reading("flat-1", 1), "unsupported_media_type", "");
        (case.content_type, case.status, case.field) = (content_type, 415, None);
        cases.push(case);
    }
    let padding = "x".repeat(BODY_LIMIT);
    let mut case = Case::json(
        "a body over the limit",
        patched(json!({"meterId": padding})),
        "",
        "",
    );
    (case.status, case.code, case.field) = (413, "payload_too_large", None);
    cases.push(case);
    cases
}

/// A valid reading as text whose kwh is written as `kwh` verbatim.
fn patched_text(kwh: &str) -> String {
    let mut body = reading("flat-1", 1);
    body["kwh"] = json!("KWH");
    body.to_string().replace("\"KWH\"", kwh)
}

#[tokio::test]
async fn every_bad_single_reading_is_refused_with_its_code_and_field() -> anyhow::Result<()> {
    let stack = Stack::new("bad-single").await?;
    let billing = start(&stack).await?;
    let client = client();

    let mut failures = Vec::new();
    for case in single_reading_cases() {
        let mut request = client
            .post(billing.url("/api/v1/consumption"))
            .bearer_auth(TOKEN)
            .body(case.body.clone());
        if let Some(content_type) = case.content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(key) = &case.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = match error_of(response).await {
            Ok(body) => body,
            Err(e) => {
                failures.push(format!("{}: {e:#}", case.name));
                continue;
            }
        };
        let error = &body["error"];
        let got = (status, error["code"].as_str(), error["field"].as_str());
        if got != (case.status, Some(case.code), case.field) {
            failures.push(format!(
                "{}: expected ({}, {}, {:?}), got {body} with {status}",
                case.name, case.status, case.code, case.field
            ));
        }
    }
    ensure!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM readings")
        .fetch_one(&stack.db.pool)
        .await?;
    ensure!(stored == 0, "{stored} refused readings were stored");
    billing.stop().await
}

#[tokio::test]
async fn a_number_out_of_range_names_the_problem_in_the_message() -> anyhow::Result<()> {
    let stack = Stack::new("bad-range").await?;
    let billing = start(&stack).await?;

    let response = client()
        .post(billing.url("/api/v1/consumption"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(patched_text("1e400"))
        .send()
        .await?;
    ensure!(response.status() == StatusCode::BAD_REQUEST);
    let body = error_of(response).await?;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    ensure!(message.contains("out of range"), "{body}");
    billing.stop().await
}

#[tokio::test]
async fn writes_without_the_right_bearer_token_are_refused_with_401() -> anyhow::Result<()> {
    let stack = Stack::new("bad-auth").await?;
    let billing = start(&stack).await?;
    let client = client();
    let one = billing.url("/api/v1/consumption");
    let batch = billing.url("/api/v1/consumption/batch");

    let single = reading("flat-1", 1);
    let many = json!([reading("flat-1", 1)]);
    let refused = [
        ("no Authorization header", &one, &single, None),
        (
            "a wrong token",
            &one,
            &single,
            Some(format!("Bearer {TOKEN}x")),
        ),
        (
            "a Basic credential",
            &one,
            &single,
            Some("Basic dXNlcjpwYXNz".to_string()),
        ),
        ("a batch without a token", &batch, &many, None),
    ];
    for (name, url, body, authorization) in refused {
        let mut request = client.post(url).json(body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await?;
        ensure!(
            response.status() == StatusCode::UNAUTHORIZED,
            "{name}: {}",
            response.status()
        );
        ensure!(
            response.headers().get("www-authenticate").is_some(),
            "{name}: no WWW-Authenticate header"
        );
        let body = error_of(response).await?;
        ensure!(body["error"]["code"] == "unauthorized", "{name}: {body}");
    }

    // The right token gets through, whatever the case of the scheme name; reads need none.
    for (n, scheme) in [(1, "Bearer"), (2, "bearer"), (3, "BEARER")] {
        let response = client
            .post(&one)
            .header("authorization", format!("{scheme} {TOKEN}"))
            .json(&reading("flat-1", n))
            .send()
            .await?;
        ensure!(
            response.status() == StatusCode::ACCEPTED,
            "{scheme}: {}",
            response.status()
        );
    }
    let reads = client
        .get(billing.url("/api/v1/properties/flat-1/consumption"))
        .send()
        .await?;
    ensure!(reads.status() == StatusCode::OK, "{}", reads.status());
    billing.stop().await
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json_404_and_405() -> anyhow::Result<()> {
    let stack = Stack::new("bad-route").await?;
    let billing = start(&stack).await?;
    let client = client();

    let cases = [
        (
            reqwest::Method::GET,
            "/api/v1/nothing-here",
            404,
            "not_found",
        ),
        (
            reqwest::Method::POST,
            "/api/v2/consumption",
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/consumption",
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/consumption/batch",
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/properties/flat-1/consumption",
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, status, code) in cases {
        let response = client
            .request(method.clone(), billing.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        ensure!(
            response.status().as_u16() == status,
            "{method} {path}: {}",
            response.status()
        );
        let body = error_of(response).await?;
        ensure!(body["error"]["code"] == code, "{method} {path}: {body}");
    }
    billing.stop().await
}

#[tokio::test]
async fn a_request_stuck_past_the_timeout_is_answered_503_in_json() -> anyhow::Result<()> {
    let stack = Stack::new("bad-timeout").await?;
    let config = stack.config(&["--request-timeout-ms", "500"])?;
    let billing = Billing::start(config).await?;

    // Hold the property's insert lock from another session: billing's insert waits on it.
    let mut holder = stack.db.pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind("stuck-1")
        .execute(&mut *holder)
        .await?;
    let response =
        common::post_reading(&client(), &billing.base_url, &reading("stuck-1", 1)).await?;
    let status = response.status();
    let body = error_of(response).await;
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind("stuck-1")
        .execute(&mut *holder)
        .await?;
    drop(holder);

    ensure!(status == StatusCode::SERVICE_UNAVAILABLE, "{status}");
    let body = body?;
    ensure!(body["error"]["code"] == "timeout", "{body}");

    // The abandoned request stored nothing; the next one for the property goes through.
    common::accept(&client(), &billing.base_url, &reading("stuck-1", 2)).await?;
    let stored: Vec<f64> = sqlx::query_scalar("SELECT kwh FROM readings WHERE property_id = $1")
        .bind("stuck-1")
        .fetch_all(&stack.db.pool)
        .await?;
    ensure!(stored == [2.25], "{stored:?}");
    billing.stop().await
}

/// Posts a batch body with `content_type` and returns the status and JSON answer.
async fn post_batch(
    billing: &Billing,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> anyhow::Result<(u16, Value)> {
    let response = client()
        .post(billing.url("/api/v1/consumption/batch"))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).with_context(|| format!("{status}: {text:?}"))?;
    Ok((status, body))
}

/// `(status, code, field)` of each batch item, in order.
fn item_outcomes(body: &Value) -> Vec<(String, Option<String>, Option<String>)> {
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    let text = |v: &Value| v.as_str().map(str::to_string);
                    (
                        text(&item["status"]).unwrap_or_default(),
                        text(&item["error"]["code"]),
                        text(&item["error"]["field"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn outcome(
    status: &str,
    code: Option<&str>,
    field: Option<&str>,
) -> (String, Option<String>, Option<String>) {
    (status.into(), code.map(Into::into), field.map(Into::into))
}

/// kWh of the property's stored readings, oldest interval first.
async fn stored_kwh(billing: &Billing, property: &str) -> anyhow::Result<Vec<f64>> {
    let page: Value = client()
        .get(billing.url(&format!("/api/v1/properties/{property}/consumption")))
        .send()
        .await?
        .json()
        .await?;
    Ok(page["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|item| item["kwh"].as_f64())
        .collect())
}

#[tokio::test]
async fn a_json_batch_stores_its_good_items_and_names_the_field_of_each_bad_one()
-> anyhow::Result<()> {
    let stack = Stack::new("bad-batch-json").await?;
    let billing = start(&stack).await?;

    let mut negative = reading("batch-a", 2);
    negative["kwh"] = json!(-1);
    let mut nameless = reading("batch-a", 3);
    nameless
        .as_object_mut()
        .context("object")?
        .remove("propertyId");
    let items = json!([
        reading("batch-a", 0),
        negative,
        reading("batch-a", 1),
        nameless,
        "text"
    ]);
    let (status, body) = post_batch(&billing, "application/json", items.to_string()).await?;

    ensure!(status == 200, "{status}: {body}");
    ensure!(body["accepted"] == 2 && body["rejected"] == 3, "{body}");
    ensure!(
        item_outcomes(&body)
            == [
                outcome("accepted", None, None),
                outcome("rejected", Some("invalid_field"), Some("kwh")),
                outcome("accepted", None, None),
                outcome("rejected", Some("missing_field"), Some("propertyId")),
                outcome("rejected", Some("invalid_field"), None),
            ],
        "{body}"
    );
    ensure!(stored_kwh(&billing, "batch-a").await? == [0.25, 1.25]);
    billing.stop().await
}

#[tokio::test]
async fn an_ndjson_batch_refuses_a_broken_line_alone() -> anyhow::Result<()> {
    let stack = Stack::new("bad-batch-nd").await?;
    let billing = start(&stack).await?;

    let body = format!(
        "{}\n{{\"propertyId\": \"batch-n\", \"kwh\n\n{}\n",
        reading("batch-n", 0),
        reading("batch-n", 1)
    );
    let (status, body) = post_batch(&billing, "application/x-ndjson", body).await?;

    ensure!(status == 200, "{status}: {body}");
    ensure!(
        item_outcomes(&body)
            == [
                outcome("accepted", None, None),
                outcome("rejected", Some("malformed_item"), None),
                outcome("accepted", None, None),
            ],
        "{body}"
    );
    let message = body["items"][1]["error"]["message"]
        .as_str()
        .unwrap_or_default();
    ensure!(message.contains("line 2"), "{body}");
    ensure!(stored_kwh(&billing, "batch-n").await? == [0.25, 1.25]);
    billing.stop().await
}

#[tokio::test]
async fn a_csv_batch_refuses_a_non_numeric_kwh_and_a_ragged_row_alone() -> anyhow::Result<()> {
    let stack = Stack::new("bad-batch-csv").await?;
    let billing = start(&stack).await?;

    let row = |n: u32, kwh: &str| {
        let r = reading("batch-c", n);
        format!(
            "batch-c,{kwh},{},{}",
            text(&r["periodStart"]),
            text(&r["periodEnd"])
        )
    };
    let csv = format!(
        "propertyId,kwh,periodStart,periodEnd\n{}\n{}\n{},extra\n{}\n",
        row(0, "0.25"),
        row(1, "lots"),
        row(2, "2.25"),
        row(3, "3.25"),
    );
    let (status, body) = post_batch(&billing, "text/csv", csv).await?;

    ensure!(status == 200, "{status}: {body}");
    ensure!(
        item_outcomes(&body)
            == [
                outcome("accepted", None, None),
                outcome("rejected", Some("invalid_field"), Some("kwh")),
                outcome("rejected", Some("malformed_item"), None),
                outcome("accepted", None, None),
            ],
        "{body}"
    );
    ensure!(stored_kwh(&billing, "batch-c").await? == [0.25, 3.25]);
    billing.stop().await
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

#[tokio::test]
async fn whole_batches_that_cannot_be_taken_are_refused_in_json() -> anyhow::Result<()> {
    let stack = Stack::new("bad-batch-whole").await?;
    let billing = start(&stack).await?;

    let too_many: Vec<Value> = (0..=MAX_BATCH as u32)
        .map(|n| reading("batch-w", n))
        .collect();
    let mut all_bad = reading("batch-w", 0);
    all_bad["kind"] = json!("water");
    let cases = [
        (
            "an unknown CSV column",
            "text/csv",
            "propertyId,watts\nbatch-w,3\n".to_string(),
            400,
            "malformed_batch",
        ),
        (
            "an object, not an array",
            "application/json",
            reading("batch-w", 0).to_string(),
            400,
            "malformed_batch",
        ),
        (
            "broken JSON",
            "application/json",
            "[{".to_string(),
            400,
            "malformed_batch",
        ),
        (
            "too many items",
            "application/json",
            json!(too_many).to_string(),
            413,
            "batch_too_large",
        ),
        (
            "an empty array",
            "application/json",
            "[]".to_string(),
            400,
            "empty_batch",
        ),
        (
            "empty NDJSON",
            "application/x-ndjson",
            "\n\n".to_string(),
            400,
            "empty_batch",
        ),
        (
            "a CSV header alone",
            "text/csv",
            "propertyId,kwh\n".to_string(),
            400,
            "empty_batch",
        ),
        (
            "an unknown format",
            "application/xml",
            "<readings/>".to_string(),
            415,
            "unsupported_media_type",
        ),
        (
            "every item bad",
            "application/json",
            json!([all_bad]).to_string(),
            422,
            "all_items_rejected",
        ),
    ];
    for (name, content_type, body, status, code) in cases {
        let (got, body) = post_batch(&billing, content_type, body).await?;
        ensure!(got == status, "{name}: {got}: {body}");
        ensure!(body["error"]["code"] == code, "{name}: {body}");
        ensure!(body["error"]["message"].is_string(), "{name}: {body}");
    }

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM readings")
        .fetch_one(&stack.db.pool)
        .await?;
    ensure!(stored == 0, "{stored} readings stored from refused batches");
    billing.stop().await
}

#[tokio::test]
async fn read_endpoints_refuse_bad_parameters_with_422_and_the_parameter() -> anyhow::Result<()> {
    let stack = Stack::new("bad-reads").await?;
    let billing = start(&stack).await?;
    let client = client();
    let long_id = "p".repeat(65);

    let cases = [
        ("flat-1", "from=yesterday", "from"),
        ("flat-1", "from=2026-11-01T00:00:00", "from"),
        ("flat-1", "to=2026-13-01T00:00:00Z", "to"),
        (
            "flat-1",
            "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            "to",
        ),
        ("flat-1", "limit=0", "limit"),
        ("flat-1", "limit=1001", "limit"),
        ("flat-1", "limit=ten", "limit"),
        ("flat-1", "page=2", "page"),
        ("flat%201", "", "propertyId"),
        (long_id.as_str(), "", "propertyId"),
    ];
    for resource in ["consumption", "recommendations", "alerts"] {
        for (property, query, field) in &cases {
            let url = billing.url(&format!("/api/v1/properties/{property}/{resource}?{query}"));
            let response = client.get(&url).send().await?;
            ensure!(
                response.status() == StatusCode::UNPROCESSABLE_ENTITY,
                "{url}: {}",
                response.status()
            );
            let body = error_of(response).await?;
            ensure!(
                body["error"]["code"] == "invalid_parameter",
                "{url}: {body}"
            );
            ensure!(body["error"]["field"] == *field, "{url}: {body}");
        }

        // A path that is not UTF-8 is refused by the router, in the same JSON shape.
        let url = billing.url(&format!("/api/v1/properties/%FF/{resource}"));
        let response = client.get(&url).send().await?;
        ensure!(
            response.status().is_client_error(),
            "{url}: {}",
            response.status()
        );
        error_of(response).await?;

        let url = billing.url(&format!(
            "/api/v1/properties/flat-1/{resource}?from={HOUR_1}&to={HOUR_2}&limit=5"
        ));
        let response = client.get(&url).send().await?;
        ensure!(
            response.status() == StatusCode::OK,
            "{url}: {}",
            response.status()
        );
    }
    billing.stop().await
}
