//! Listens on billing's `/ws/alerts` socket (all properties) and notes when each RED alert
//! arrived, keyed by the event id of the reading that raised it.
//!
//! The listening task owns the socket and writes into a map behind a mutex that the run reads
//! when it computes alert latencies. Dropping the [`AlertListener`] aborts the task, which
//! closes the socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::{Error, Result};

/// Arrival times of alerts, by the event id of the reading that raised them.
type Arrivals = Arc<Mutex<HashMap<Uuid, DateTime<Utc>>>>;

/// A connected alert socket and the task reading it.
pub struct AlertListener {
    arrivals: Arrivals,
    task: JoinHandle<()>,
}

impl AlertListener {
    /// Connects to `<billing_url>/ws/alerts` and starts reading.
    pub async fn connect(billing_url: &str) -> Result<Self> {
        let url = format!(
            "{}/ws/alerts",
            billing_url.trim_end_matches('/').replacen("http", "ws", 1)
        );
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| Error::Socket {
                url: url.clone(),
                source: Box::new(e),
            })?;
        let arrivals: Arrivals = Arc::default();
        let sink = Arc::clone(&arrivals);
        let task = tokio::spawn(async move {
            let (_, mut read) = socket.split();
            // Ends when billing closes the socket or the listener is dropped (abort).
            while let Some(Ok(message)) = read.next().await {
                let received_at = Utc::now();
                let Message::Text(text) = message else {
                    continue;
                };
                if let Some(event_id) = event_id_of(&text) {
                    let mut arrivals = sink.lock().expect("the arrivals lock is never poisoned");
                    arrivals.entry(event_id).or_insert(received_at);
                }
            }
        });
        Ok(Self { arrivals, task })
    }

    /// When the alert of each reading arrived, so far.
    pub fn arrivals(&self) -> HashMap<Uuid, DateTime<Utc>> {
        self.arrivals
            .lock()
            .expect("the arrivals lock is never poisoned")
            .clone()
    }
}

impl Drop for AlertListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `eventId` of an alert message, if it is one.
fn event_id_of(text: &str) -> Option<Uuid> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    value["eventId"].as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_message_yields_its_event_id() {
        let id = Uuid::new_v4();
        let text = format!(
            r#"{{"alertId":"{}","eventId":"{id}","kwh":6.0}}"#,
            Uuid::new_v4()
        );
        assert_eq!(event_id_of(&text), Some(id));
    }

    #[test]
    fn other_messages_are_ignored() {
        assert_eq!(event_id_of("not json"), None);
        assert_eq!(event_id_of(r#"{"eventId":"nope"}"#), None);
    }
}
