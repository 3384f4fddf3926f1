//! `GET /ws/alerts?propertyId=...`: RED alerts pushed to the page as they happen. Without
//! `propertyId` the socket gets every property's alerts (an operator's view). When API tokens
//! are configured the socket needs one too, as `?token=` (browsers cannot set headers on a
//! WebSocket) or as a bearer header.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use energy_contracts::PropertyId;

use super::AppState;
use super::error::ApiError;
use crate::alerts::hub::{Filter, Subscription};

/// How often an idle socket is pinged, so dead peers are noticed.
const PING_EVERY: Duration = Duration::from_secs(20);
/// A socket that cannot take one message in this time is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Upgrades to a WebSocket that carries the alerts of one property (or all).
pub async fn alerts_socket(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    authorise(&state, &params, &headers)?;
    let filter = match params.get("propertyId") {
        Some(id) => Filter::Property(PropertyId::parse(id.as_str()).map_err(|e| {
            let mut error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_parameter",
                e.to_string(),
            );
            error.field = Some("propertyId".into());
            error
        })?),
        None => Filter::All,
    };
    let subscription = state.hub.subscribe(filter);
    Ok(upgrade.on_upgrade(move |socket| forward(socket, subscription)))
}

fn authorise(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if state.tokens.is_empty() {
        return Ok(());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let presented = params.get("token").map(String::as_str).or(bearer);
    match presented {
        Some(token) if super::auth::is_known(&state.tokens, token) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this socket needs ?token=<API token> or an Authorization: Bearer header",
        )),
    }
}

/// Sends each alert as JSON text until the client leaves, stops answering, or is too slow.
async fn forward(mut socket: WebSocket, mut subscription: Subscription) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            alert = subscription.alerts.recv() => {
                // None: the hub dropped this subscriber for being too slow.
                let Some(alert) = alert else { break };
                let Ok(text) = serde_json::to_string(&*alert) else { continue };
                if !send(&mut socket, Message::Text(Utf8Bytes::from(text))).await {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    break;
                }
            }
        }
    }
}

async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}
