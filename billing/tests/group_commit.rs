//! Storing many readings per transaction, against the real PostgreSQL: concurrent single
//! readings share transactions and each still gets its own outcome; within one call the first
//! reading with an id or key is stored and the others are answered from it; outbox rows are
//! numbered in the order given; a group whose transaction fails answers every request with the
//! error and stores nothing.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use billing::domain::{NewReading, ReadingRules};
use billing::metrics::Metrics;
use billing::store::{self, GroupCommit, GroupSettings, Ingested, StoreError, Submission};
use chrono::{DateTime, TimeDelta, Utc};
use energy_testkit::postgres::TestDatabase;
use futures::future::join_all;
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

const TOPIC: &str = "raw-consumption-events";

async fn database(prefix: &str) -> anyhow::Result<TestDatabase> {
    let db = TestDatabase::create(prefix).await?;
    store::migrate(&db.pool).await?;
    Ok(db)
}

/// The `n`th hourly reading of `property`, validated as billing validates a request.
fn reading(property: &str, n: u32, kwh: f64) -> anyhow::Result<NewReading> {
    let base: DateTime<Utc> = "2026-11-02T00:00:00Z".parse()?;
    let start = base + TimeDelta::hours(i64::from(n));
    let rules = ReadingRules {
        regions: vec!["GB".into()],
        default_region: "GB".into(),
    };
    let body = json!({
        "propertyId": property,
        "kwh": kwh,
        "periodStart": start.to_rfc3339(),
        "periodEnd": (start + TimeDelta::hours(1)).to_rfc3339(),
    });
    Ok(rules.validate(&body, Utc::now())?)
}

fn submission(reading: NewReading, key: Option<&str>) -> Submission {
    Submission {
        reading,
        idempotency_key: key.map(str::to_string),
        traceparent: None,
    }
}

async fn count(pool: &PgPool, table: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT count(*) FROM {table}");
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await?)
}

/// The `_count` of the group-size histogram: how many transactions the writers ran.
fn groups_written(metrics: &Metrics) -> anyhow::Result<u64> {
    let text = metrics.encode();
    let line = text
        .lines()
        .find(|line| line.starts_with("billing_group_commit_readings_count"))
        .context("group size histogram in the metrics")?;
    Ok(line.rsplit(' ').next().unwrap_or_default().parse()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_single_readings_share_transactions_and_each_gets_its_own_outcome()
-> anyhow::Result<()> {
    let db = database("group-commit").await?;
    let metrics = Metrics::new();
    let settings = GroupSettings {
        writers: 1,
        max_readings: 64,
    };
    let writer = GroupCommit::start(db.pool.clone(), TOPIC.into(), settings, metrics.clone());

    let mut requests = Vec::new();
    for n in 0..200u32 {
        let item = submission(reading(&format!("house-{}", n % 10), n / 10, 1.5)?, None);
        let writer = writer.clone();
        requests.push(tokio::spawn(async move { writer.submit(item).await }));
    }
    let mut ids = HashSet::new();
    for request in join_all(requests).await {
        match request?? {
            Ingested::Created(id) => ensure!(ids.insert(id), "event id {id} given twice"),
            replayed => anyhow::bail!("a fresh reading was answered as {replayed:?}"),
        }
    }

    ensure!(ids.len() == 200);
    ensure!(count(&db.pool, "readings").await? == 200);
    ensure!(count(&db.pool, "outbox").await? == 200);
    let groups = groups_written(&metrics)?;
    ensure!(
        (4..200).contains(&groups),
        "200 concurrent readings, at most 64 per group, went into {groups} transactions"
    );
    Ok(())
}

#[tokio::test]
async fn the_first_reading_with_an_id_or_key_is_stored_and_the_rest_answered_from_it()
-> anyhow::Result<()> {
    let db = database("group-dups").await?;
    let id = Uuid::now_v7();
    let with_id = |kwh| -> anyhow::Result<NewReading> {
        let mut reading = reading("dup-house", 1, kwh)?;
        reading.event_id = Some(id);
        Ok(reading)
    };
    let items = [
        submission(with_id(2.0)?, None),
        submission(with_id(2.0)?, None),
        submission(with_id(9.0)?, None),
        submission(reading("dup-house", 2, 1.0)?, Some("key-1")),
        submission(reading("dup-house", 2, 1.0)?, Some("key-1")),
        submission(reading("dup-house", 2, 7.0)?, Some("key-1")),
    ];

    let outcomes = store::insert_many(&db.pool, TOPIC, &items).await?;

    ensure!(matches!(outcomes[0], Ok(Ingested::Created(first)) if first == id));
    ensure!(matches!(outcomes[1], Ok(Ingested::Replayed(same)) if same == id));
    ensure!(matches!(
        outcomes[2],
        Err(StoreError::Conflict { key: "eventId", existing }) if existing == id
    ));
    let Ok(Ingested::Created(keyed)) = outcomes[3] else {
        anyhow::bail!("the first keyed reading is stored: {:?}", outcomes[3]);
    };
    ensure!(matches!(outcomes[4], Ok(Ingested::Replayed(same)) if same == keyed));
    ensure!(matches!(
        outcomes[5],
        Err(StoreError::Conflict { key: "Idempotency-Key", existing }) if existing == keyed
    ));
    ensure!(count(&db.pool, "readings").await? == 2);
    ensure!(count(&db.pool, "outbox").await? == 2);
    Ok(())
}

#[tokio::test]
async fn outbox_rows_are_numbered_in_the_order_the_readings_were_given() -> anyhow::Result<()> {
    let db = database("group-order").await?;
    // Interleaved properties, and hours given out of order within each.
    let hours = [5u32, 1, 4, 0, 3, 2, 9, 7, 8, 6];
    let items = hours
        .iter()
        .enumerate()
        .map(|(i, hour)| {
            Ok(submission(
                reading(&format!("p-{}", i % 3), *hour, 1.0)?,
                None,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let outcomes = store::insert_many(&db.pool, TOPIC, &items).await?;
    let given: Vec<Uuid> = outcomes
        .into_iter()
        .map(|outcome| Ok(outcome?.event_id()))
        .collect::<anyhow::Result<_>>()?;

    let numbered: Vec<Uuid> = sqlx::query_scalar("SELECT event_id FROM outbox ORDER BY seq")
        .fetch_all(&db.pool)
        .await?;
    ensure!(
        numbered == given,
        "outbox order {numbered:?}, given {given:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_failed_group_transaction_answers_every_request_with_the_error() -> anyhow::Result<()> {
    let db = database("group-fail").await?;
    // A pool on a database that does not exist: every transaction fails at its first step.
    let missing = db.url.replace(&db.name, &format!("{}_missing", db.name));
    let broken = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&missing)?;
    let settings = GroupSettings {
        writers: 2,
        max_readings: 16,
    };
    let writer = GroupCommit::start(broken, TOPIC.into(), settings, Metrics::new());

    let mut requests = Vec::new();
    for n in 0..20 {
        let item = submission(reading("fail-house", n, 1.0)?, None);
        requests.push(writer.submit(item));
    }
    for outcome in join_all(requests).await {
        ensure!(
            matches!(outcome, Err(StoreError::Database(_))),
            "every request gets the database error: {outcome:?}"
        );
    }
    ensure!(count(&db.pool, "readings").await? == 0);
    Ok(())
}
