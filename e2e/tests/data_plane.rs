//! The data plane end to end, as real processes against the real services: readings posted to
//! billing reach Kafka through the outbox, the recommender scores each with the carbon function
//! and stores exactly one recommendation, in the order each property's readings were accepted.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::ensure;
use common::Platform;
use futures::future::try_join_all;

const PROPERTIES: usize = 20;
const READINGS_PER_PROPERTY: i64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_properties_of_two_hundred_readings_are_recommended_once_each_in_order()
-> anyhow::Result<()> {
    let platform = Platform::start("e2e-order", 6).await?;

    // Properties in parallel; each property's readings one after another, as a meter sends them.
    let senders = (0..PROPERTIES).map(|p| {
        let platform = &platform;
        async move {
            let property = format!("house-{p}");
            let mut accepted = Vec::new();
            for index in 0..READINGS_PER_PROPERTY {
                accepted.push(platform.post_until_accepted(&property, index, 0.8).await?);
            }
            anyhow::Ok((property, accepted))
        }
    });
    let accepted: BTreeMap<String, Vec<String>> =
        try_join_all(senders).await?.into_iter().collect();
    let total = PROPERTIES as i64 * READINGS_PER_PROPERTY;

    platform
        .wait_count("SELECT count(*) FROM recommendations", total)
        .await?;
    platform
        .wait_count("SELECT count(*) FROM readings", total)
        .await?;
    platform
        .wait_count(
            "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL",
            total,
        )
        .await?;

    // Kafka holds each accepted reading exactly once.
    let on_topic = platform.topic_event_ids(total as usize).await?;
    let distinct: BTreeSet<&String> = on_topic.iter().collect();
    ensure!(
        distinct.len() == on_topic.len(),
        "a reading reached Kafka twice"
    );
    let all_accepted: BTreeSet<&String> = accepted.values().flatten().collect();
    ensure!(
        distinct == all_accepted,
        "Kafka's events differ from the accepted readings"
    );

    // The recommender processed every property's readings in the order billing accepted them.
    let processed = platform.recommendation_order().await?;
    for (property, order) in &accepted {
        ensure!(
            processed.get(property) == Some(order),
            "{property} was processed out of order"
        );
    }
    Ok(())
}
