//! PostgreSQL schema of billing, managed by sqlx migrations under `billing/migrations/`.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The migrations, embedded at compile time so a binary always carries its schema.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Brings the database up to the newest schema; safe to run on every start and from several
/// replicas at once (sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}
