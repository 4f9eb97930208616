//! People's data keys: what personal data in events is sealed with (see
//! `collab_domain::personal`). The key table is the only place a key lives; it is not a
//! read model (nothing in the log can bring a key back), readers never see it, and erasure
//! deletes a person's keys for good.

use collab_domain::personal::DataKey;
use collab_domain::UserId;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

/// `user`'s live data key, made on first use (one live key per person: a second writer
/// racing to make it gets the one that won).
pub async fn key_for(pool: &PgPool, user: &UserId) -> Result<DataKey, sqlx::Error> {
    // A racing writer's key, committed after this statement's snapshot was taken, is seen
    // by the second try.
    match make_or_read_key(pool, user).await {
        Err(sqlx::Error::RowNotFound) => make_or_read_key(pool, user).await,
        other => other,
    }
}

async fn make_or_read_key(pool: &PgPool, user: &UserId) -> Result<DataKey, sqlx::Error> {
    let mut bytes = [0u8; DataKey::LEN];
    getrandom::fill(&mut bytes)
        .map_err(|e| sqlx::Error::Protocol(format!("no randomness: {e}")))?;
    let row = sqlx::query(
        "WITH made AS (INSERT INTO user_keys (key_id, user_id, key) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO NOTHING RETURNING key_id, key) \
         SELECT key_id, key FROM made UNION ALL \
         SELECT key_id, key FROM user_keys WHERE user_id = $2 LIMIT 1",
    )
    .bind(Uuid::now_v7())
    .bind(user.as_str())
    .bind(bytes.as_slice())
    .fetch_one(pool)
    .await?;
    let (id, key): (Uuid, Vec<u8>) = (row.try_get(0)?, row.try_get(1)?);
    DataKey::from_slice(id, &key)
        .ok_or_else(|| sqlx::Error::Protocol(format!("data key {id} is not 32 bytes")))
}

/// The key `key_id` of `user`, if it still exists.
pub async fn key<'c>(
    db: impl PgExecutor<'c>,
    user: &UserId,
    key_id: Uuid,
) -> Result<Option<DataKey>, sqlx::Error> {
    let key: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT key FROM user_keys WHERE key_id = $1 AND user_id = $2")
            .bind(key_id)
            .bind(user.as_str())
            .fetch_optional(db)
            .await?;
    Ok(key.and_then(|k| DataKey::from_slice(key_id, &k)))
}

/// Destroys every key of `user` (how many there were), then vacuums the table so the
/// deleted rows' bytes do not linger in its pages.
pub async fn destroy(pool: &PgPool, user: &UserId) -> Result<u64, sqlx::Error> {
    let destroyed = sqlx::query("DELETE FROM user_keys WHERE user_id = $1")
        .bind(user.as_str())
        .execute(pool)
        .await?
        .rows_affected();
    sqlx::query("VACUUM user_keys").execute(pool).await?;
    Ok(destroyed)
}
