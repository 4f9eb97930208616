//! A person's profile: display name, email and avatar, which are personal data. Each
//! person's profile is one stream (`user-<uuid>`, the uuid derived from their user id),
//! filed under the platform rather than a workspace. Names and emails travel sealed with
//! the person's data key (see [`crate::personal`]); erasure destroys the key.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::EventSourced;
use crate::catalogue::event_enum;
use crate::envelope::StreamCategory;
use crate::ids::{UserId, WorkspaceId};
use crate::notification::NotificationPreferences;
use crate::personal::Sealed;

/// The stream id of `user`'s profile: a name-based (v5) UUID of the user id, so the same
/// person always has the same stream.
pub fn profile_id(user: &UserId) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6c0d_0d57_4a53_4b0e_9b8e_2f6a_7c1d_5e01);
    Uuid::new_v5(&NAMESPACE, user.as_str().as_bytes())
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProfileCommand {
    /// The person sets their profile (every field as given).
    Update {
        user_id: UserId,
        display_name: Option<Sealed>,
        email: Option<Sealed>,
        avatar_file_id: Option<Uuid>,
    },
    /// The first sign-in fills the profile from the identity provider's claims: only
    /// when there is no profile yet and the person was never erased.
    FillFromSignIn {
        user_id: UserId,
        display_name: Option<Sealed>,
        email: Option<Sealed>,
    },
    /// Erase the person's personal data (their keys are destroyed beside this).
    Erase { user_id: UserId },
    /// The person sets how they hear of notifications.
    SetNotificationPreferences {
        user_id: UserId,
        preferences: NotificationPreferences,
    },
    /// The person read these notifications.
    MarkNotificationsRead { user_id: UserId, ids: Vec<Uuid> },
    /// The person read every notification up to a log position.
    MarkAllNotificationsRead { user_id: UserId, up_to: i64 },
}

/// A person's profile was set: by themselves, or from their first sign-in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProfileUpdated {
    /// Whose profile.
    pub user_id: UserId,
    /// The name shown for them, sealed with their data key; absent: none.
    pub display_name: Option<Sealed>,
    /// Their email address, sealed with their data key; absent: none.
    pub email: Option<Sealed>,
    /// The file shown as their picture; absent: none.
    pub avatar_file_id: Option<Uuid>,
    /// Filled from the identity provider's claims at the first sign-in (not typed in).
    pub from_sign_in: bool,
}

/// A person's personal data was erased: their data keys are destroyed, so every sealed
/// field of their earlier events stays unreadable for good.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PersonalDataErased {
    /// Whose data.
    pub user_id: UserId,
}

/// A person set how they hear of each kind of notification (in the app; by email at once,
/// in a digest, or not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotificationPreferencesSet {
    /// Whose preferences.
    pub user_id: UserId,
    /// Per kind (`mention`, `reply`, `share`, `resolved`): `in_app` and `email`; and `digest`.
    pub preferences: NotificationPreferences,
}

/// A person read some of their notifications.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotificationsRead {
    /// Whose notifications.
    pub user_id: UserId,
    /// The notifications read.
    pub ids: Vec<Uuid>,
}

/// A person read all their notifications (those caused up to a log position).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AllNotificationsRead {
    /// Whose notifications.
    pub user_id: UserId,
    /// Every notification caused at or before this log position is read.
    pub up_to: i64,
}

event_enum!(
    /// Events of a person's profile stream.
    ProfileEvent in User {
        ProfileUpdated = 1,
        PersonalDataErased = 1,
        NotificationPreferencesSet = 1,
        NotificationsRead = 1,
        AllNotificationsRead = 1,
    }
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("a profile belongs to one person")]
    WrongPerson,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    user_id: Option<UserId>,
    /// Personal data was recorded since the last erasure (or ever).
    holds_data: bool,
    /// Ever set (a first sign-in fills only a profile never set nor erased).
    ever_set: bool,
    /// Notification preferences, once set.
    preferences: Option<NotificationPreferences>,
    /// Every notification up to this position was marked read at once.
    all_read_up_to: i64,
}

impl Profile {
    fn decide(&self, command: ProfileCommand) -> Result<Vec<ProfileEvent>, ProfileError> {
        let user = match &command {
            ProfileCommand::Update { user_id, .. }
            | ProfileCommand::FillFromSignIn { user_id, .. }
            | ProfileCommand::Erase { user_id }
            | ProfileCommand::SetNotificationPreferences { user_id, .. }
            | ProfileCommand::MarkNotificationsRead { user_id, .. }
            | ProfileCommand::MarkAllNotificationsRead { user_id, .. } => user_id,
        };
        if self.user_id.as_ref().is_some_and(|u| u != user) {
            return Err(ProfileError::WrongPerson);
        }
        Ok(match command {
            ProfileCommand::Update {
                user_id,
                display_name,
                email,
                avatar_file_id,
            } => vec![ProfileEvent::ProfileUpdated(ProfileUpdated {
                user_id,
                display_name,
                email,
                avatar_file_id,
                from_sign_in: false,
            })],
            ProfileCommand::FillFromSignIn {
                user_id,
                display_name,
                email,
            } => {
                if self.ever_set || (display_name.is_none() && email.is_none()) {
                    vec![]
                } else {
                    vec![ProfileEvent::ProfileUpdated(ProfileUpdated {
                        user_id,
                        display_name,
                        email,
                        avatar_file_id: None,
                        from_sign_in: true,
                    })]
                }
            }
            ProfileCommand::Erase { user_id } => {
                if self.holds_data {
                    vec![ProfileEvent::PersonalDataErased(PersonalDataErased {
                        user_id,
                    })]
                } else {
                    vec![]
                }
            }
            ProfileCommand::SetNotificationPreferences {
                user_id,
                preferences,
            } => {
                if self.preferences.unwrap_or_default() == preferences {
                    vec![]
                } else {
                    vec![ProfileEvent::NotificationPreferencesSet(
                        NotificationPreferencesSet {
                            user_id,
                            preferences,
                        },
                    )]
                }
            }
            ProfileCommand::MarkNotificationsRead { user_id, ids } => {
                if ids.is_empty() {
                    vec![]
                } else {
                    vec![ProfileEvent::NotificationsRead(NotificationsRead {
                        user_id,
                        ids,
                    })]
                }
            }
            ProfileCommand::MarkAllNotificationsRead { user_id, up_to } => {
                if up_to <= self.all_read_up_to {
                    vec![]
                } else {
                    vec![ProfileEvent::AllNotificationsRead(AllNotificationsRead {
                        user_id,
                        up_to,
                    })]
                }
            }
        })
    }
}

impl Aggregate for Profile {
    const TYPE: &'static str = "profile";
    type Command = ProfileCommand;
    type Event = ProfileEvent;
    type Error = ProfileError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ProfileEvent::ProfileUpdated(e) => {
                self.user_id = Some(e.user_id);
                self.holds_data = true;
                self.ever_set = true;
            }
            ProfileEvent::PersonalDataErased(e) => {
                self.user_id = Some(e.user_id);
                self.holds_data = false;
                self.ever_set = true;
            }
            ProfileEvent::NotificationPreferencesSet(e) => {
                self.user_id = Some(e.user_id);
                self.preferences = Some(e.preferences);
            }
            ProfileEvent::NotificationsRead(e) => self.user_id = Some(e.user_id),
            ProfileEvent::AllNotificationsRead(e) => {
                self.user_id = Some(e.user_id);
                self.all_read_up_to = self.all_read_up_to.max(e.up_to);
            }
        }
    }
}

impl EventSourced for Profile {
    const CATEGORY: StreamCategory = StreamCategory::User;
    const SNAPSHOT_VERSION: i32 = 1;

    /// Profiles belong to no workspace: their streams are filed under the platform.
    fn workspace_id(&self) -> Option<WorkspaceId> {
        Some(WorkspaceId::PLATFORM)
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::catalogue::EventCodec;

    type Given = TestFramework<Profile>;

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    fn sealed(tag: u8) -> Option<Sealed> {
        Some(Sealed {
            key_id: Uuid::nil(),
            nonce: [tag; 24],
            ciphertext: vec![tag; 20],
        })
    }

    fn updated(from_sign_in: bool) -> ProfileEvent {
        ProfileEvent::ProfileUpdated(ProfileUpdated {
            user_id: alice(),
            display_name: sealed(1),
            email: sealed(2),
            avatar_file_id: None,
            from_sign_in,
        })
    }

    fn fill() -> ProfileCommand {
        ProfileCommand::FillFromSignIn {
            user_id: alice(),
            display_name: sealed(1),
            email: sealed(2),
        }
    }

    #[test]
    fn the_first_sign_in_fills_a_profile_never_set() {
        Given::with(())
            .given_no_previous_events()
            .when(fill())
            .then_expect_events(vec![updated(true)]);
        Given::with(())
            .given(vec![updated(false)])
            .when(fill())
            .then_expect_events(vec![]);
        // An erased person's profile is not refilled behind their back.
        Given::with(())
            .given(vec![
                updated(true),
                ProfileEvent::PersonalDataErased(PersonalDataErased { user_id: alice() }),
            ])
            .when(fill())
            .then_expect_events(vec![]);
    }

    #[test]
    fn erasure_is_recorded_once_per_data_held() {
        let erased = ProfileEvent::PersonalDataErased(PersonalDataErased { user_id: alice() });
        let erase = || ProfileCommand::Erase { user_id: alice() };
        Given::with(())
            .given(vec![updated(false)])
            .when(erase())
            .then_expect_events(vec![erased.clone()]);
        Given::with(())
            .given(vec![updated(false), erased.clone()])
            .when(erase())
            .then_expect_events(vec![]);
        Given::with(())
            .given_no_previous_events()
            .when(erase())
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![updated(false)])
            .when(ProfileCommand::Erase {
                user_id: UserId::parse("bob").unwrap(),
            })
            .then_expect_error(ProfileError::WrongPerson);
    }

    #[test]
    fn events_round_trip_through_the_codec() {
        let event = updated(true);
        let decoded = ProfileEvent::decode(event.event_type(), 1, &event.encode()).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(profile_id(&alice()), profile_id(&alice()));
        assert_ne!(
            profile_id(&alice()),
            profile_id(&UserId::parse("bob").unwrap())
        );
    }
}
