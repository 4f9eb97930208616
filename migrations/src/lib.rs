//! Database migrations, embedded in the binary. Files in `sql/` are append-only: a
//! released migration is never edited; a change is a new file.

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./sql");

/// Applies every pending migration.
pub async fn run(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
