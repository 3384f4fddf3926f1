//! The carbon function over HTTP: the real router, driven in-process with `oneshot`, and the
//! real server on a loopback socket for start-up and shutdown.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use carbon_calculator::{HttpSettings, router, server};
use energy_contracts::CarbonResponse;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const LIMIT_BYTES: usize = 4_096;

fn settings() -> HttpSettings {
    HttpSettings {
        default_region: "GB",
        body_limit_bytes: LIMIT_BYTES,
        request_timeout: Duration::from_secs(5),
    }
}

fn app() -> Router {
    router(settings())
}

fn post(content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::post("/");
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    request
        .body(body.into())
        .expect("test requests are well-formed")
}

fn post_json(body: &Value) -> Request<Body> {
    post(Some("application/json"), body.to_string())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .body(Body::empty())
        .expect("test requests are well-formed")
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(app: Router, request: Request<Body>) -> Answer {
    let response = app
        .oneshot(request)
        .await
        .expect("the router's error type is Infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body is in memory")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
        panic!(
            "{status}: body is not JSON ({err}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer {
        status,
        headers,
        body,
    }
}

/// Checks the platform's error shape and returns the error object.
fn error_of(answer: &Answer, status: StatusCode, code: &str) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    let error = answer.body["error"].clone();
    assert_eq!(error["code"], code, "{}", answer.body);
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        answer.body
    );
    assert!(
        error.as_object().is_some_and(|o| o.contains_key("field")),
        "{}",
        answer.body
    );
    error
}

#[tokio::test]
async fn ten_kwh_in_gb_during_2025_answers_1_77_kg_with_the_desnz_factor() {
    let request = json!({
        "kwh": 10,
        "kind": "electricity",
        "region": "GB",
        "at": "2025-05-01T12:00:00+01:00"
    });
    let answer = send(app(), post_json(&request)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let parsed: CarbonResponse =
        serde_json::from_value(answer.body.clone()).expect("the answer follows the contract");
    assert!((parsed.kg_co2e - 1.77).abs() < 1e-9);
    assert_eq!(answer.body["rating"], "B");
    assert_eq!(answer.body["factor"]["region"], "GB");
    assert_eq!(answer.body["factor"]["year"], 2025);
    assert_eq!(answer.body["factor"]["basis"], "location-based");
    assert!(
        answer.body["factor"]["source"]
            .as_str()
            .is_some_and(|s| s.contains("DESNZ"))
    );
}

#[tokio::test]
async fn a_request_without_a_region_uses_the_configured_default() {
    let answer = send(app(), post_json(&json!({"kwh": 1}))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["factor"]["region"], "GB");
}

#[tokio::test]
async fn hourly_intensities_across_the_autumn_clock_change_answer_the_supplied_basis() {
    let request = json!({
        "kwh": 2,
        "region": "GB",
        "at": "2025-10-26T00:30:00+01:00",
        "until": "2025-10-26T01:30:00+00:00",
        "intensities": [
            {"hourStart": "2025-10-26T00:00:00+01:00", "gramsPerKwh": 100},
            {"hourStart": "2025-10-26T01:00:00+01:00", "gramsPerKwh": 200},
            {"hourStart": "2025-10-26T01:00:00+00:00", "gramsPerKwh": 300}
        ]
    });
    let answer = send(app(), post_json(&request)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!((answer.body["gramsPerKwh"].as_f64().expect("number") - 200.0).abs() < 1e-9);
    assert!((answer.body["kgCo2e"].as_f64().expect("number") - 0.4).abs() < 1e-12);
    assert_eq!(answer.body["factor"]["basis"], "supplied");
}

#[tokio::test]
async fn an_unknown_region_answers_422_listing_the_known_regions() {
    let answer = send(app(), post_json(&json!({"kwh": 1, "region": "NARNIA"}))).await;
    let error = error_of(&answer, StatusCode::UNPROCESSABLE_ENTITY, "unknown_region");
    assert_eq!(error["field"], "region");
    let message = error["message"].as_str().expect("string");
    for region in [
        "GB", "US", "US-CAMX", "US-MROE", "EU", "DE", "PL", "FR", "SE",
    ] {
        assert!(message.contains(region), "{region} missing from {message}");
    }
}

#[tokio::test]
async fn gas_where_no_gas_factor_is_sourced_answers_422() {
    let answer = send(
        app(),
        post_json(&json!({"kwh": 1, "kind": "gas", "region": "FR"})),
    )
    .await;
    let error = error_of(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_gas_region",
    );
    assert_eq!(error["field"], "region");
}

#[tokio::test]
async fn negative_energy_answers_422_naming_kwh() {
    let answer = send(app(), post_json(&json!({"kwh": -3}))).await;
    let error = error_of(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_kwh");
    assert_eq!(error["field"], "kwh");
}

#[tokio::test]
async fn an_invalid_intensity_is_named_by_its_position() {
    let request = json!({
        "kwh": 1,
        "at": "2025-01-01T00:00:00Z",
        "until": "2025-01-01T01:00:00Z",
        "intensities": [{"hourStart": "2025-01-01T00:00:00Z", "gramsPerKwh": -1}]
    });
    let answer = send(app(), post_json(&request)).await;
    let error = error_of(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_intensity",
    );
    assert_eq!(error["field"], "intensities[0].gramsPerKwh");
}

#[tokio::test]
async fn malformed_json_answers_400_with_the_serde_message() {
    let answer = send(app(), post(Some("application/json"), r#"{"kwh": 1,"#)).await;
    let error = error_of(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    let message = error["message"].as_str().expect("string");
    assert!(message.contains("EOF while parsing"), "{message}");
}

#[tokio::test]
async fn a_wrongly_typed_value_answers_400_naming_its_path() {
    let request = json!({
        "kwh": 1,
        "intensities": [{"hourStart": "2025-01-01T00:00:00Z", "gramsPerKwh": "low"}]
    });
    let answer = send(app(), post_json(&request)).await;
    let error = error_of(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    assert_eq!(error["field"], "intensities[0].gramsPerKwh");
    assert!(
        error["message"]
            .as_str()
            .expect("string")
            .contains("invalid type")
    );
}

#[tokio::test]
async fn a_number_beyond_f64_answers_400_not_500() {
    let answer = send(app(), post(Some("application/json"), r#"{"kwh": 1e999}"#)).await;
    let error = error_of(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    assert_eq!(error["field"], "kwh");
}

#[tokio::test]
async fn a_missing_kwh_answers_400() {
    let answer = send(app(), post_json(&json!({"region": "GB"}))).await;
    let error = error_of(&answer, StatusCode::BAD_REQUEST, "invalid_json");
    assert!(
        error["message"]
            .as_str()
            .expect("string")
            .contains("missing field `kwh`")
    );
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_answers_415() {
    for content_type in [Some("text/plain"), None] {
        let answer = send(app(), post(content_type, r#"{"kwh": 1}"#)).await;
        error_of(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
}

#[tokio::test]
async fn a_body_declared_larger_than_the_limit_answers_413_before_it_is_read() {
    let body = vec![b' '; LIMIT_BYTES + 1];
    let mut request = post(Some("application/json"), body);
    request
        .headers_mut()
        .insert(header::CONTENT_LENGTH, (LIMIT_BYTES + 1).into());
    let answer = send(app(), request).await;
    let error = error_of(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(
        error["message"]
            .as_str()
            .expect("string")
            .contains("4096 bytes")
    );
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn a_body_without_length_that_outgrows_the_limit_answers_413() {
    // No Content-Length header: the limit layer lets it in and cuts it off while it is read.
    let padding = " ".repeat(LIMIT_BYTES);
    let answer = send(
        app(),
        post(Some("application/json"), format!("{{\"kwh\": 1{padding}}}")),
    )
    .await;
    error_of(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn a_body_that_never_finishes_answers_408_when_the_timeout_passes() {
    let settings = HttpSettings {
        request_timeout: Duration::from_millis(100),
        ..settings()
    };
    let stalled = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let answer = send(
        router(settings),
        post(Some("application/json"), Body::from_stream(stalled)),
    )
    .await;
    error_of(&answer, StatusCode::REQUEST_TIMEOUT, "request_timeout");
}

#[tokio::test]
async fn health_answers_200() {
    let answer = send(app(), get("/_/health")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["status"], "ok");
}

#[tokio::test]
async fn factors_lists_every_row_with_its_source_licence_and_published_unit() {
    let answer = send(app(), get("/factors")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["defaultRegion"], "GB");

    let rows = answer.body["factors"]
        .as_array()
        .expect("a list of factors");
    assert_eq!(rows.len(), carbon_calculator::factors::all().len());
    for row in rows {
        for key in ["source", "licence", "publishedUnit", "gases", "basis"] {
            assert!(
                row[key].as_str().is_some_and(|v| !v.is_empty()),
                "{key} in {row}"
            );
        }
    }
    let camx = rows
        .iter()
        .find(|row| row["region"] == "US-CAMX")
        .expect("CAMX is listed");
    assert_eq!(camx["publishedValue"], 497.443);
    assert_eq!(camx["publishedUnit"], "lbCO2/MWh");
    assert_eq!(answer.body["ratingBands"][6], json!({"rating": "G"}));
}

#[tokio::test]
async fn an_unknown_path_answers_404_json() {
    let answer = send(app(), get("/function/carbon-calculator")).await;
    error_of(&answer, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_get_on_the_calculation_answers_405_json_with_allow() {
    let answer = send(app(), get("/")).await;
    error_of(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert!(
        answer.headers[header::ALLOW]
            .to_str()
            .expect("ascii")
            .contains("POST")
    );
}

/// Collects the fields recorded on spans named `request`.
#[derive(Clone, Default)]
struct RequestSpanFields(Arc<Mutex<Vec<(String, String)>>>);

impl Visit for RequestSpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.push(field, format!("{value:?}"));
    }
}

impl RequestSpanFields {
    fn push(&self, field: &Field, value: String) {
        let mut fields = self
            .0
            .lock()
            .expect("no test thread panics while holding the lock");
        fields.push((field.name().to_owned(), value));
    }

    fn get(&self, name: &str) -> Option<String> {
        let fields = self
            .0
            .lock()
            .expect("no test thread panics while holding the lock");
        fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
    }
}

impl<S: tracing::Subscriber> Layer<S> for RequestSpanFields {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "request" {
            attrs.record(&mut self.clone());
        }
    }

    fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
        values.record(&mut self.clone());
    }
}

#[tokio::test]
async fn the_request_span_carries_the_callers_traceparent_and_the_region() {
    let fields = RequestSpanFields::default();
    let subscriber = tracing_subscriber::registry().with(fields.clone());
    // The test runtime is single-threaded, so the whole request runs under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = post_json(&json!({"kwh": 1, "region": "us-camx"}));
    request
        .headers_mut()
        .insert("traceparent", traceparent.parse().expect("ascii header"));
    let answer = send(app(), request).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(fields.get("traceparent").as_deref(), Some(traceparent));
    assert_eq!(fields.get("region").as_deref(), Some("US-CAMX"));
    assert_eq!(fields.get("path").as_deref(), Some("/"));
}

async fn raw_http(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address)
        .await
        .expect("the server is listening");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("loopback write");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("loopback read");
    answer
}

#[tokio::test]
async fn the_server_answers_on_a_socket_and_stops_when_told() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let address = listener.local_addr().expect("bound socket has an address");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stop_rx.await;
    };
    let server = tokio::spawn(server::serve(
        listener,
        app(),
        shutdown,
        Duration::from_secs(5),
    ));

    let body = r#"{"kwh": 10, "region": "SE"}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_http(address, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""rating":"A""#), "{answer}");

    stop_tx
        .send(())
        .expect("the server is still waiting for the signal");
    let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
    let served = stopped
        .expect("stops promptly")
        .expect("server task did not panic");
    assert!(served.is_ok(), "{served:?}");
}

#[tokio::test]
async fn shutdown_stops_waiting_for_a_stuck_request_after_the_grace_period() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let address = listener.local_addr().expect("bound socket has an address");
    let slow = HttpSettings {
        request_timeout: Duration::from_secs(60),
        ..settings()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stop_rx.await;
    };
    let grace = Duration::from_millis(200);
    let server = tokio::spawn(server::serve(listener, router(slow), shutdown, grace));

    // Headers promise a body that never comes, so the request stays in flight.
    let mut stuck = TcpStream::connect(address)
        .await
        .expect("the server is listening");
    let head = "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                Content-Length: 100\r\n\r\n{";
    stuck
        .write_all(head.as_bytes())
        .await
        .expect("loopback write");
    tokio::time::sleep(Duration::from_millis(100)).await;

    stop_tx
        .send(())
        .expect("the server is still waiting for the signal");
    let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
    let served = stopped
        .expect("exits within the grace period")
        .expect("no panic");
    assert!(served.is_ok(), "{served:?}");
}
