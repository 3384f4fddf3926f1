//! Crashes lose nothing: billing or the recommender killed with SIGKILL in the middle of the
//! stream and started again, and still every accepted reading gets exactly one recommendation,
//! in the order its property's readings were accepted. Clients retry with the same
//! Idempotency-Key, as a meter gateway would.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::ensure;
use common::{DEADLINE, Platform};
use e2e_tests::wait_healthy;
use futures::future::try_join_all;

const PROPERTIES: usize = 5;
const READINGS_PER_PROPERTY: i64 = 120;
const TOTAL: i64 = PROPERTIES as i64 * READINGS_PER_PROPERTY;

/// Sends every property's readings (retrying through outages) and returns them in order.
async fn send_all(platform: &Platform) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let senders = (0..PROPERTIES).map(|p| async move {
        let property = format!("flat-{p}");
        let mut accepted = Vec::new();
        for index in 0..READINGS_PER_PROPERTY {
            accepted.push(platform.post_until_accepted(&property, index, 0.5).await?);
        }
        anyhow::Ok((property, accepted))
    });
    Ok(try_join_all(senders).await?.into_iter().collect())
}

async fn check_once_each_in_order(
    platform: &Platform,
    accepted: &BTreeMap<String, Vec<String>>,
) -> anyhow::Result<()> {
    platform
        .wait_count("SELECT count(*) FROM recommendations", TOTAL)
        .await?;
    platform
        .wait_count("SELECT count(*) FROM readings", TOTAL)
        .await?;
    let processed = platform.recommendation_order().await?;
    for (property, order) in accepted {
        ensure!(
            processed.get(property) == Some(order),
            "{property} lost its order"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn billing_killed_while_accepting_readings_loses_none_and_duplicates_none()
-> anyhow::Result<()> {
    let platform = Platform::start("e2e-kill-billing", 3).await?;
    let (accepted, crash) = tokio::join!(send_all(&platform), async {
        platform
            .wait_count_at_least("SELECT count(*) FROM readings", TOTAL / 4)
            .await?;
        platform.billing.kill().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        platform.billing.restart().await?;
        wait_healthy(
            &format!("{}/readyz", platform.billing_url),
            DEADLINE,
            &platform.billing.log,
        )
        .await
    });
    crash?;
    let accepted = accepted?;
    check_once_each_in_order(&platform, &accepted).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_recommender_killed_mid_stream_loses_none_and_duplicates_none() -> anyhow::Result<()> {
    let platform = Platform::start("e2e-kill-recommender", 3).await?;
    let (accepted, crash) = tokio::join!(send_all(&platform), async {
        platform
            .wait_count_at_least("SELECT count(*) FROM recommendations", TOTAL / 4)
            .await?;
        platform.recommender.kill().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        platform.recommender.restart().await?;
        wait_healthy(
            &platform.recommender_health,
            DEADLINE,
            &platform.recommender.log,
        )
        .await
    });
    crash?;
    let accepted = accepted?;
    ensure!(
        platform
            .recommender
            .log_text()
            .matches("recommender")
            .count()
            > 0,
        "the recommender logged nothing"
    );
    check_once_each_in_order(&platform, &accepted).await
}
