//! Notifications: what kinds there are, and how each person wants to hear of them. The
//! notifications themselves are a read model (`notifications`) folded from the events
//! that cause them; what a person set and read are events of their own `user-` stream
//! (see [`crate::profile`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{EventId, UserId};

/// Why someone is told.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// Someone mentioned you (`<@you>`) in a comment on a document you can read.
    Mention,
    /// Someone replied in a thread you opened or replied to.
    Reply,
    /// A document was shared with you.
    Share,
    /// Someone else resolved a thread you opened.
    Resolved,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 4] = [
        NotificationKind::Mention,
        NotificationKind::Reply,
        NotificationKind::Share,
        NotificationKind::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Mention => "mention",
            NotificationKind::Reply => "reply",
            NotificationKind::Share => "share",
            NotificationKind::Resolved => "resolved",
        }
    }
}

/// Whether, and how soon, a kind of notification is emailed.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EmailMode {
    /// One email per notification, after a short delay (skipped if read in the app first).
    Immediate,
    /// Gathered into the person's digest.
    Digest,
    /// Never emailed.
    Off,
}

impl EmailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailMode::Immediate => "immediate",
            EmailMode::Digest => "digest",
            EmailMode::Off => "off",
        }
    }
}

/// How often a digest is sent.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DigestInterval {
    Hourly,
    Daily,
}

/// How a person wants to hear of one kind of notification.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct KindPreference {
    /// Shown in the app (and its live feed).
    pub in_app: bool,
    /// Emailed: `immediate`, `digest` or `off`.
    pub email: EmailMode,
}

/// A person's notification preferences, per kind, and their digest's interval.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct NotificationPreferences {
    /// Mentions in comments.
    pub mention: KindPreference,
    /// Replies in threads you took part in.
    pub reply: KindPreference,
    /// Documents shared with you.
    pub share: KindPreference,
    /// Your threads resolved by someone else.
    pub resolved: KindPreference,
    /// How often the digest is sent: `hourly` or `daily`.
    pub digest: DigestInterval,
}

impl Default for NotificationPreferences {
    /// Mentions and shares at once, replies in the daily digest, resolutions in the app only.
    fn default() -> Self {
        let kind = |email| KindPreference {
            in_app: true,
            email,
        };
        Self {
            mention: kind(EmailMode::Immediate),
            reply: kind(EmailMode::Digest),
            share: kind(EmailMode::Immediate),
            resolved: kind(EmailMode::Off),
            digest: DigestInterval::Daily,
        }
    }
}

impl NotificationPreferences {
    pub fn of(&self, kind: NotificationKind) -> KindPreference {
        match kind {
            NotificationKind::Mention => self.mention,
            NotificationKind::Reply => self.reply,
            NotificationKind::Share => self.share,
            NotificationKind::Resolved => self.resolved,
        }
    }
}

/// The id of the notification an event gives `recipient`: a name-based (v5) UUID of the
/// two, so a rebuild of the read model gives every notification its id again (and what
/// was marked read stays read).
pub fn notification_id(event: EventId, recipient: &UserId) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x3f0c_9a41_7d2e_4c61_8b57_1e0a_94d2_c7b3);
    let mut name = event.as_uuid().as_bytes().to_vec();
    name.extend_from_slice(recipient.as_str().as_bytes());
    Uuid::new_v5(&NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_per_recipient() {
        let event = EventId::from_uuid(Uuid::from_u128(7));
        let (alice, bob) = (
            UserId::parse("alice").unwrap(),
            UserId::parse("bob").unwrap(),
        );
        assert_eq!(
            notification_id(event, &alice),
            notification_id(event, &alice)
        );
        assert_ne!(notification_id(event, &alice), notification_id(event, &bob));
    }

    #[test]
    fn preferences_read_strictly() {
        let json = serde_json::to_value(NotificationPreferences::default()).unwrap();
        assert_eq!(json["reply"]["email"], "digest");
        assert_eq!(json["digest"], "daily");
        let mut typo = json.clone();
        typo["mention"]["in_ap"] = true.into();
        assert!(serde_json::from_value::<NotificationPreferences>(typo).is_err());
    }
}
