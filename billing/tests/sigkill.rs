//! A billing process killed with SIGKILL in the middle of ingesting loses no accepted reading:
//! after a restart, every reading that was answered 202 reaches Kafka at least once, and per
//! property the first occurrences keep the order the readings were accepted in. Duplicates
//! may appear (rows published but not yet marked sent when the process died); consumers drop
//! them by event id. Runs the real billing binary against the real PostgreSQL and Kafka.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{BillingProcess, SETTLE_TIMEOUT, Stack, client, reading};
use tokio::time::Instant;
use uuid::Uuid;

const PROPERTIES: usize = 8;
/// Readings accepted across all properties before the kill.
const ACCEPTED_BEFORE_KILL: usize = 400;
/// Readings each property sends after the restart.
const READINGS_AFTER_RESTART: u32 = 5;

/// One property's readings sent until billing stops answering.
struct Sender {
    property: String,
    accepted: Vec<Uuid>,
    /// Number of the next reading to send.
    next: u32,
    /// Why it stopped: a transport error is expected, an answer other than 202 is not.
    refused: Option<String>,
}

async fn send_until_gone(property: String, base_url: String, counter: Arc<AtomicUsize>) -> Sender {
    let client = client();
    let mut sender = Sender {
        property,
        accepted: Vec::new(),
        next: 0,
        refused: None,
    };
    loop {
        let body = reading(&sender.property, sender.next);
        let Ok(response) = common::post_reading(&client, &base_url, &body).await else {
            // The process is gone; the reading may or may not have been committed.
            sender.next += 1;
            return sender;
        };
        let status = response.status();
        let answer = response.json().await.map_err(anyhow::Error::from);
        match answer.and_then(|body| common::event_id_of(&body)) {
            Ok(id) if status == 202 => sender.accepted.push(id),
            // A body cut off by the kill counts as no answer.
            Err(_) if status == 202 => {}
            other => {
                sender.refused = Some(format!("{status}: {other:?}"));
                return sender;
            }
        }
        sender.next += 1;
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reading_accepted_before_a_sigkill_reaches_kafka_in_order_after_a_restart()
-> anyhow::Result<()> {
    let stack = Stack::new("sigkill").await?;
    let first = BillingProcess::start(&stack).await?;

    // Every property sends one reading after another until the process dies.
    let counter = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..PROPERTIES)
        .map(|i| {
            let property = format!("killed-{i}");
            tokio::spawn(send_until_gone(
                property,
                first.base_url.clone(),
                counter.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while counter.load(Ordering::Relaxed) < ACCEPTED_BEFORE_KILL {
        ensure!(
            Instant::now() < deadline,
            "billing accepted too few readings before the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().await?;

    let mut accepted: HashMap<String, Vec<Uuid>> = HashMap::new();
    let mut next_of = HashMap::new();
    for sender in futures::future::join_all(senders).await {
        let sender = sender?;
        ensure!(
            sender.refused.is_none(),
            "{}: {:?}",
            sender.property,
            sender.refused
        );
        next_of.insert(sender.property.clone(), sender.next);
        accepted.insert(sender.property, sender.accepted);
    }

    // A new process takes over the outbox; the same properties carry on.
    let second = BillingProcess::start(&stack).await?;
    let client = client();
    for (property, ids) in &mut accepted {
        for n in 0..READINGS_AFTER_RESTART {
            let body = reading(property, next_of[property] + n);
            ids.push(common::accept(&client, &second.base_url, &body).await?);
        }
    }

    let total: usize = accepted.values().map(Vec::len).sum();
    common::wait_for_outbox_sent(&stack.db.pool, total).await?;
    let messages = stack.published().await?;

    // Every accepted reading is there; per property, first occurrences keep the order.
    let wanted: HashSet<Uuid> = accepted.values().flatten().copied().collect();
    let published = common::first_occurrences_by_key(&messages);
    for (property, ids) in &accepted {
        let got: Vec<Uuid> = published
            .get(property)
            .map(|all| {
                all.iter()
                    .copied()
                    .filter(|id| wanted.contains(id))
                    .collect()
            })
            .unwrap_or_default();
        ensure!(
            &got == ids,
            "{property}: published {got:?}, accepted {ids:?}"
        );
    }

    // Anything else on the topic is a reading that was stored (committed but unanswered).
    let stored: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM readings")
        .fetch_all(&stack.db.pool)
        .await?;
    let stored: HashSet<Uuid> = stored.into_iter().collect();
    let strangers: Vec<Uuid> = messages
        .iter()
        .map(|m| m.event.event_id)
        .filter(|id| !stored.contains(id))
        .collect();
    ensure!(
        strangers.is_empty(),
        "published but never stored: {strangers:?}"
    );
    let unpublished = stored.len() - common::counts_by_event(&messages).len();
    ensure!(
        unpublished == 0,
        "{unpublished} stored readings never published"
    );

    second.kill().await.context("stop the second billing")
}
