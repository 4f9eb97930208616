//! Read model `rm_profiles`: people's profiles, their sealed fields opened with their data
//! keys. A key that no longer exists (the person was erased) opens nothing: the fields are
//! empty and the profile says `erased`, in the live fold and in every rebuild alike.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use collab_domain::personal::Sealed;
use collab_domain::profile::ProfileEvent;
use collab_domain::EventCodec;
use collab_domain::{RecordedEvent, StreamCategory, UserId};
use collab_store::keys;
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::read_model::{ProjectionError, ReadModel};

/// `rm_profiles`: display names, emails and avatars.
pub struct Profiles;

#[async_trait]
impl ReadModel for Profiles {
    fn name(&self) -> &'static str {
        "profiles"
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::User]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_profiles"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        match ProfileEvent::decode_recorded(event)? {
            ProfileEvent::ProfileUpdated(e) => {
                let name = open(conn, &e.user_id, "display_name", e.display_name.as_ref()).await?;
                let email = open(conn, &e.user_id, "email", e.email.as_ref()).await?;
                let erased = name.is_err() || email.is_err();
                sqlx::query(
                    "INSERT INTO rm_profiles (user_id, display_name, email, avatar_file_id, \
                     erased, updated_at, position) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (user_id) DO UPDATE SET display_name = $2, email = $3, \
                     avatar_file_id = $4, erased = $5, updated_at = $6, position = $7",
                )
                .bind(e.user_id.as_str())
                .bind(name.ok().flatten())
                .bind(email.ok().flatten())
                .bind(e.avatar_file_id.filter(|_| !erased))
                .bind(erased)
                .bind(event.metadata.recorded_at)
                .bind(event.position)
                .execute(&mut *conn)
                .await?;
            }
            ProfileEvent::PersonalDataErased(e) => {
                sqlx::query(
                    "INSERT INTO rm_profiles (user_id, erased, updated_at, position) \
                     VALUES ($1, true, $2, $3) ON CONFLICT (user_id) DO UPDATE \
                     SET display_name = NULL, email = NULL, avatar_file_id = NULL, \
                     erased = true, updated_at = $2, position = $3",
                )
                .bind(e.user_id.as_str())
                .bind(event.metadata.recorded_at)
                .bind(event.position)
                .execute(&mut *conn)
                .await?;
            }
            // The `notifications` read model's.
            ProfileEvent::NotificationPreferencesSet(_)
            | ProfileEvent::NotificationsRead(_)
            | ProfileEvent::AllNotificationsRead(_) => {}
        }
        Ok(())
    }
}

/// A sealed field opened: `Ok(None)` when there is none, `Err(())` when it cannot be
/// opened (its key is destroyed).
async fn open(
    conn: &mut PgConnection,
    owner: &UserId,
    field: &str,
    sealed: Option<&Sealed>,
) -> Result<Result<Option<String>, ()>, sqlx::Error> {
    let Some(sealed) = sealed else {
        return Ok(Ok(None));
    };
    Ok(match keys::key(&mut *conn, owner, sealed.key_id).await? {
        Some(key) => key.open(owner, field, sealed).map(Some).ok_or(()),
        None => Err(()),
    })
}

/// A profile as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ProfileView {
    pub user_id: String,
    /// The name shown for the person; null when none was given (or it was erased).
    pub display_name: Option<String>,
    /// Their email address (shown to themselves only).
    pub email: Option<String>,
    /// The file shown as their picture.
    pub avatar_file_id: Option<Uuid>,
    /// Their personal data was erased.
    pub erased: bool,
    pub updated_at: DateTime<Utc>,
}

/// `user`'s profile, if one was ever recorded.
pub async fn profile(
    executor: impl PgExecutor<'_>,
    user: &UserId,
) -> Result<Option<ProfileView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, display_name, email, avatar_file_id, erased, updated_at \
         FROM rm_profiles WHERE user_id = $1",
    )
    .bind(user.as_str())
    .fetch_optional(executor)
    .await
}
