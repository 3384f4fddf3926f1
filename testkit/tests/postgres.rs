//! The dev PostgreSQL server is real and usable from sqlx: billing's migrations run in a
//! database of the test's own, and a reading and its outbox row commit together.

use anyhow::ensure;
use chrono::{DateTime, Utc};
use energy_testkit::postgres::TestDatabase;
use sqlx::Row;
use uuid::Uuid;

async fn insert_reading(
    tx: &mut sqlx::PgConnection,
    event_id: Uuid,
    property: &str,
) -> sqlx::Result<()> {
    let start: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().expect("literal timestamp");
    sqlx::query(
        "INSERT INTO readings (event_id, property_id, kind, kwh, period_start, period_end, \
         utc_offset_secs, region) VALUES ($1, $2, 'electricity', 1.5, $3, $4, 3600, 'GB')",
    )
    .bind(event_id)
    .bind(property)
    .bind(start)
    .bind(start + chrono::Duration::hours(1))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[tokio::test]
async fn billing_migrations_run_and_a_reading_commits_with_its_outbox_row() -> anyhow::Result<()> {
    let db = TestDatabase::create("billing").await?;
    billing::store::migrate(&db.pool).await?;
    // A second run finds nothing to do: replicas run migrations on every start.
    billing::store::migrate(&db.pool).await?;

    let event_id = Uuid::now_v7();
    let mut tx = db.pool.begin().await?;
    insert_reading(&mut tx, event_id, "house-1").await?;
    sqlx::query("INSERT INTO outbox (event_id, topic, msg_key, payload) VALUES ($1, $2, $3, $4)")
        .bind(event_id)
        .bind("raw-consumption-events")
        .bind("house-1")
        .bind(b"{}".as_slice())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let row = sqlx::query(
        "SELECT r.property_id, o.msg_key FROM outbox o JOIN readings r USING (event_id) \
         WHERE o.sent_at IS NULL",
    )
    .fetch_one(&db.pool)
    .await?;
    ensure!(row.get::<String, _>("property_id") == "house-1");
    ensure!(row.get::<String, _>("msg_key") == "house-1");
    Ok(())
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_neither_reading_nor_outbox_row() -> anyhow::Result<()> {
    let db = TestDatabase::create("rollback").await?;
    billing::store::migrate(&db.pool).await?;

    let mut tx = db.pool.begin().await?;
    insert_reading(&mut tx, Uuid::now_v7(), "house-2").await?;
    tx.rollback().await?;

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM readings")
        .fetch_one(&db.pool)
        .await?;
    ensure!(count == 0, "{count} readings after rollback");
    Ok(())
}

#[tokio::test]
async fn the_schema_refuses_what_validation_should_have_caught() -> anyhow::Result<()> {
    let db = TestDatabase::create("checks").await?;
    billing::store::migrate(&db.pool).await?;

    let mut conn = db.pool.acquire().await?;
    let bad_property = insert_reading(&mut conn, Uuid::now_v7(), "has space").await;
    ensure!(
        bad_property.is_err(),
        "a property id with a space was stored"
    );

    let negative = sqlx::query(
        "INSERT INTO readings (event_id, property_id, kind, kwh, period_start, period_end, \
         utc_offset_secs, region) VALUES ($1, 'p', 'gas', -1, now(), now() + interval '1h', 0, 'GB')",
    )
    .bind(Uuid::now_v7())
    .execute(&mut *conn)
    .await;
    ensure!(negative.is_err(), "a negative reading was stored");
    Ok(())
}

#[tokio::test]
async fn each_test_database_starts_empty_and_apart() -> anyhow::Result<()> {
    let a = TestDatabase::create("apart").await?;
    let b = TestDatabase::create("apart").await?;
    ensure!(a.name != b.name && a.url != b.url);
    sqlx::query("CREATE TABLE only_in_a (x int)")
        .execute(&a.pool)
        .await?;
    let in_b: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_in_a')::text")
        .fetch_one(&b.pool)
        .await?;
    ensure!(in_b.is_none(), "table leaked into another test's database");
    Ok(())
}
