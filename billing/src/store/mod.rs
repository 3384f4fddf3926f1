//! PostgreSQL adapter: the shared schema (sqlx migrations in `migrations/` at the workspace
//! root), storing readings with their outbox rows (many per transaction, see [`GroupCommit`]),
//! and the read queries of the API.

mod group_commit;
pub mod queries;
mod readings;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

pub use group_commit::{GroupCommit, GroupSettings};
pub use queries::{AlertRow, ConsumptionRow, RecommendationRow, TimeRange};
pub use readings::{Ingested, StoreError, Submission, insert_many};

/// The migrations, embedded at compile time so a binary always carries its schema.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Channel on which a committed outbox row wakes the relay (`NOTIFY` is delivered on commit).
pub const OUTBOX_CHANNEL: &str = "outbox_new";

/// Brings the database up to the newest schema; safe to run on every start and from several
/// replicas at once (sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}
