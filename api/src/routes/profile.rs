//! `/v1/me/profile` and `/v1/me/personal-data`: a person's own profile (personal data,
//! sealed with their data key in the events) and its erasure.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use collab_domain::personal::{DataKey, Sealed};
use collab_domain::profile::{profile_id, Profile, ProfileCommand};
use collab_domain::{InvalidValue, UserId};
use collab_projections::profiles as read_model;
use collab_store::keys;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::run;
use crate::error::ApiError;
use crate::extract::{ApiJson, Principal, RequestMeta};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_profile, put_profile))
        .routes(routes!(erase_personal_data))
}

/// A display name: 1–100 characters once trimmed, no control characters.
pub fn display_name(raw: &str) -> Result<String, InvalidValue> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(InvalidValue::new(
            "display_name",
            "must be 1 to 100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(InvalidValue::new(
            "display_name",
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// An email address (RFC 5322 addr-spec, at most 254 characters).
pub fn email(raw: &str) -> Result<String, InvalidValue> {
    let email = raw.trim();
    if email.len() > 254 || !email_address::EmailAddress::is_valid(email) {
        return Err(InvalidValue::new("email", "must be an email address"));
    }
    Ok(email.to_owned())
}

/// What a person sets as their profile (every field; absent or null clears it).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    /// 1–100 characters.
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    /// An image you uploaded, shown as your picture (to those who can read that file:
    /// `GET /v1/files/{id}/thumbnail`).
    #[serde(default)]
    avatar_file_id: Option<Uuid>,
}

/// A person's own profile.
#[derive(Serialize, ToSchema)]
struct ProfilePage {
    #[schema(value_type = UserId)]
    user_id: String,
    /// The name shown for you (members lists, comment authors); null: none.
    display_name: Option<String>,
    email: Option<String>,
    avatar_file_id: Option<Uuid>,
    /// Your personal data was erased (set a profile again to have one).
    erased: bool,
    /// When it last changed; null: never set.
    updated_at: Option<DateTime<Utc>>,
    /// The log position of the change, when this answers one (send it back as
    /// `X-Collab-Min-Position` to read it back).
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<i64>,
}

impl ProfilePage {
    fn of(user: &UserId, view: Option<read_model::ProfileView>) -> Self {
        match view {
            Some(v) => Self {
                user_id: v.user_id,
                display_name: v.display_name,
                email: v.email,
                avatar_file_id: v.avatar_file_id,
                erased: v.erased,
                updated_at: Some(v.updated_at),
                position: None,
            },
            None => Self {
                user_id: user.to_string(),
                display_name: None,
                email: None,
                avatar_file_id: None,
                erased: false,
                updated_at: None,
                position: None,
            },
        }
    }
}

/// Profiles are people's own: a service account has none.
fn person(principal: &Principal) -> Result<&UserId, ApiError> {
    principal.person("profile")
}

/// Your profile.
#[utoipa::path(
    get,
    path = "/v1/me/profile",
    tag = "profile",
    responses((status = 200, description = "Your profile (empty fields when never set)", body = ProfilePage), crate::openapi::Refusals)
)]
async fn get_profile(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
) -> Result<Json<ProfilePage>, ApiError> {
    let user = person(&principal)?;
    state.reach(meta.min_position).await?;
    let mut reader = state.reader(&principal).await?;
    let view = read_model::profile(&mut *reader, user).await?;
    Ok(Json(ProfilePage::of(user, view)))
}

/// Sets your profile. The name and email are stored sealed with your own data key.
#[utoipa::path(
    put,
    path = "/v1/me/profile",
    tag = "profile",
    request_body = ProfileBody,
    responses((status = 200, description = "Your profile as set", body = ProfilePage), crate::openapi::Refusals, crate::openapi::CommandRefusals)
)]
async fn put_profile(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
    ApiJson(body): ApiJson<ProfileBody>,
) -> Result<Json<ProfilePage>, ApiError> {
    let user = person(&principal)?.clone();
    let name = body.display_name.as_deref().map(display_name).transpose()?;
    let email = body.email.as_deref().map(email).transpose()?;
    if let Some(file) = body.avatar_file_id {
        let file = state
            .aggregates
            .load::<collab_domain::file::File>(file)
            .await?
            .aggregate;
        let yours = file.state() == collab_domain::file::FileState::Uploaded
            && file.uploaded_by() == Some(&user)
            && file.content_type().is_some_and(|t| t.starts_with("image/"));
        if !yours {
            return Err(ApiError::InvalidField(InvalidValue::new(
                "avatar_file_id",
                "is not an image you uploaded",
            )));
        }
    }
    let key = keys::key_for(&state.pool, &user).await?;
    let command = ProfileCommand::Update {
        display_name: seal(&key, &user, "display_name", name.as_deref())?,
        email: seal(&key, &user, "email", email.as_deref())?,
        avatar_file_id: body.avatar_file_id,
        user_id: user.clone(),
    };
    let committed =
        run::<Profile>(&state, &principal, &meta, profile_id(&user), command, None).await?;
    Ok(Json(ProfilePage {
        user_id: user.to_string(),
        display_name: name,
        email,
        avatar_file_id: body.avatar_file_id,
        erased: false,
        updated_at: Some(Utc::now()),
        position: Some(committed.position),
    }))
}

/// `plain` sealed with `key` under a fresh random nonce.
fn seal(
    key: &DataKey,
    owner: &UserId,
    field: &str,
    plain: Option<&str>,
) -> Result<Option<Sealed>, ApiError> {
    let Some(plain) = plain else {
        return Ok(None);
    };
    let mut nonce = [0u8; DataKey::NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    Ok(Some(key.seal(owner, field, nonce, plain)))
}

/// What an erasure did.
#[derive(Serialize, ToSchema)]
struct Erased {
    #[schema(value_type = UserId)]
    user_id: String,
    /// Data keys destroyed (0: there was nothing sealed to erase).
    keys_destroyed: u64,
    /// The position of the `PersonalDataErased` event (absent: nothing was recorded since
    /// the last erasure).
    position: Option<i64>,
}

/// Erases your personal data: your data keys are destroyed, so the name and email in
/// every event you caused to be recorded can never be read again, and your profile is
/// emptied. What you typed into shared documents stays: it is the document.
#[utoipa::path(
    delete,
    path = "/v1/me/personal-data",
    tag = "profile",
    responses((status = 200, description = "Erased", body = Erased), crate::openapi::Refusals, crate::openapi::CommandRefusals)
)]
async fn erase_personal_data(
    State(state): State<AppState>,
    principal: Principal,
    meta: RequestMeta,
) -> Result<Json<Erased>, ApiError> {
    let user = person(&principal)?.clone();
    let (keys_destroyed, position) = erase(
        &state.aggregates,
        &state.pool,
        &user,
        &principal.command_meta(&meta),
    )
    .await?;
    Ok(Json(Erased {
        user_id: user.to_string(),
        keys_destroyed,
        position,
    }))
}

/// Records the erasure, then destroys the keys (a failure in between is mended by
/// erasing again: the keys go then). Shared by the route and `collab users erase`.
pub async fn erase(
    aggregates: &collab_commands::AggregateStore,
    pool: &sqlx::PgPool,
    user: &UserId,
    meta: &collab_commands::CommandMeta,
) -> Result<(u64, Option<i64>), ApiError> {
    let committed = aggregates
        .execute::<Profile>(
            profile_id(user),
            ProfileCommand::Erase {
                user_id: user.clone(),
            },
            meta,
            None,
        )
        .await?;
    let destroyed = keys::destroy(pool, user).await?;
    let position = (committed.events > 0).then_some(committed.position);
    Ok((destroyed, position))
}

/// People whose first sign-in this process has already seen (bounded: emptied when
/// full, which costs a few aggregate loads, not a second fill).
#[derive(Default)]
pub struct SignIns(Mutex<HashSet<UserId>>);

impl SignIns {
    const MAX: usize = 100_000;

    /// Fills `user`'s profile from their token's `name` and `email` claims, the first
    /// time this process sees them, when they never had one (the aggregate decides).
    /// Claims that are not a valid name or address are left out; failures are logged,
    /// never the request's.
    pub async fn first(
        &self,
        state: &AppState,
        user: &UserId,
        name: Option<&str>,
        email_claim: Option<&str>,
    ) {
        if name.is_none() && email_claim.is_none() {
            return;
        }
        {
            let mut seen = self.0.lock().expect("not poisoned");
            if seen.contains(user) {
                return;
            }
            if seen.len() >= Self::MAX {
                seen.clear();
            }
            seen.insert(user.clone());
        }
        let name = name.and_then(|n| display_name(n).ok());
        let email_claim = email_claim.and_then(|e| email(e).ok());
        if name.is_none() && email_claim.is_none() {
            return;
        }
        let result = async {
            let key = keys::key_for(&state.pool, user).await?;
            let command = ProfileCommand::FillFromSignIn {
                display_name: seal(&key, user, "display_name", name.as_deref())?,
                email: seal(&key, user, "email", email_claim.as_deref())?,
                user_id: user.clone(),
            };
            let meta = collab_commands::CommandMeta {
                actor: collab_domain::Actor::User(user.clone()),
                correlation_id: Uuid::now_v7(),
                causation_id: None,
            };
            state
                .aggregates
                .execute::<Profile>(profile_id(user), command, &meta, None)
                .await?;
            Ok::<_, ApiError>(())
        }
        .await;
        if let Err(e) = result {
            self.0.lock().expect("not poisoned").remove(user);
            tracing::warn!(user.id = %user, error = %e, "could not fill the profile at sign-in");
        }
    }
}
