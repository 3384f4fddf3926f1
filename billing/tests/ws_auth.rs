//! The alert WebSocket asks for the same token as the API when tokens are configured: no token
//! or a wrong one is refused before the upgrade, the right one (as `?token=`, since browsers
//! cannot set headers on a socket) opens it.

mod common;

use anyhow::ensure;
use common::{Billing, Stack};
use tokio_tungstenite::tungstenite::Error as WsError;

async fn upgrade_status(url: &str) -> anyhow::Result<u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((_, response)) => Ok(response.status().as_u16()),
        Err(WsError::Http(response)) => Ok(response.status().as_u16()),
        Err(other) => Err(other.into()),
    }
}

#[tokio::test]
async fn the_alert_socket_needs_the_api_token_when_tokens_are_on() -> anyhow::Result<()> {
    let stack = Stack::new("ws-auth").await?;
    let billing = Billing::start(stack.config(&["--api-tokens", "s3cret"])?).await?;
    let socket = billing
        .url("/ws/alerts?propertyId=home-1")
        .replace("http://", "ws://");

    ensure!(
        upgrade_status(&socket).await? == 401,
        "a socket without a token was opened"
    );
    let wrong = format!("{socket}&token=nope");
    ensure!(
        upgrade_status(&wrong).await? == 401,
        "a socket with a wrong token was opened"
    );
    let right = format!("{socket}&token=s3cret");
    ensure!(
        upgrade_status(&right).await? == 101,
        "the right token did not open the socket"
    );

    let bad_property = billing
        .url("/ws/alerts?propertyId=a%20b&token=s3cret")
        .replace("http://", "ws://");
    ensure!(
        upgrade_status(&bad_property).await? == 422,
        "a bad propertyId was accepted"
    );
    billing.stop().await
}
