//! Database migrations, embedded in the binary. Files in `sql/` are append-only: a
//! released migration is never edited; a change is a new file.

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./sql");

/// Applies every pending migration.
pub async fn run(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    ensure_cluster_roles(pool).await?;
    MIGRATOR.run(pool).await
}

/// Roles are cluster-wide, so two databases of one cluster migrated at the same moment
/// (tests, several deployments) race on migration 0005's existence check and one fails
/// with a duplicate key. Creating the role here first, tolerating that race, leaves 0005
/// nothing to do.
async fn ensure_cluster_roles(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::query(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'collab_reader') THEN \
             CREATE ROLE collab_reader NOLOGIN; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
         END $$",
    )
    .execute(pool)
    .await
    .map_err(sqlx::migrate::MigrateError::Execute)?;
    Ok(())
}
