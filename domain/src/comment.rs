//! Comment threads: a conversation anchored to a passage of a document's text. Each thread
//! is one stream (`thread-<uuid>`) in its document's workspace. The anchor is a pair of
//! Yjs relative positions (yrs `StickyIndex`, in the Yjs `RelativePosition` encoding), so
//! the passage it marks follows the text as people edit; the server resolves it against
//! the live content when the thread is read.

use std::collections::{BTreeMap, BTreeSet};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_with::base64::Base64;
use serde_with::{serde_as, IfIsHumanReadable};
use uuid::Uuid;

use crate::aggregate::EventSourced;
use crate::catalogue::event_enum;
use crate::document::Acting;
use crate::envelope::StreamCategory;
use crate::ids::{DocumentId, UserId, WorkspaceId};
use crate::role::DocumentRole;
use crate::values::InvalidValue;

/// A comment's text: a Markdown subset (clients render it), 1–10,000 characters, no
/// control characters but line breaks and tabs; people are mentioned as `<@user-id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommentBody(String);

impl CommentBody {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.trim().is_empty() {
            return Err(InvalidValue::new("body", "must not be empty"));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                "body",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
        {
            return Err(InvalidValue::new(
                "body",
                "must not contain control characters other than line breaks and tabs",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The people mentioned (`<@user-id>`), each once, in the order first mentioned.
    pub fn mentions(&self) -> Vec<UserId> {
        let mut found = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("<@") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find('>') else { break };
            if let Ok(user) = UserId::parse(&rest[..end]) {
                if !found.contains(&user) {
                    found.push(user);
                }
                rest = &rest[end + 1..];
            }
        }
        found
    }

    /// The people mentioned who are also in `reachable` (those who can read the document).
    pub fn reachable_mentions(&self, reachable: &[UserId]) -> Vec<UserId> {
        let mut mentions = self.mentions();
        mentions.retain(|user| reachable.contains(user));
        mentions
    }
}

/// One emoji (as Unicode, with its variation or skin-tone modifiers): a reaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match emojis::get(raw) {
            Some(_) => Ok(Self(raw.to_owned())),
            None => Err(InvalidValue::new("emoji", "must be one emoji")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated string: decoded through its `parse`, a plain string in JSON Schema.
macro_rules! string_value {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                String::json_schema(generator)
            }
        }
    };
}

string_value!(CommentBody);
string_value!(Emoji);

/// Where a thread is anchored: two Yjs relative positions in a root of the document.
#[serde_as]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(inline)]
pub struct Anchor {
    /// The root type (a `Y.Text`) the passage is in.
    pub root: String,
    /// The passage's start (Yjs `RelativePosition`, encoding v1).
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub start: Vec<u8>,
    /// The passage's end.
    #[serde_as(as = "IfIsHumanReadable<Base64>")]
    #[schemars(with = "crate::catalogue::Base64Bytes")]
    pub end: Vec<u8>,
}

impl Anchor {
    /// Encoded relative positions are a few dozen bytes; more is not an anchor.
    pub const MAX_POSITION_BYTES: usize = 512;
    pub const MAX_ROOT_BYTES: usize = 255;
}

#[derive(Debug, Clone, PartialEq)]
pub enum ThreadCommand {
    Open {
        by: Acting,
        document_id: DocumentId,
        workspace_id: WorkspaceId,
        anchor: Anchor,
        quote: String,
        comment_id: Uuid,
        body: CommentBody,
        /// Of the people the body mentions, those who can read the document (the caller
        /// checks): only they are recorded as mentioned, and told.
        reachable: Vec<UserId>,
    },
    Reply {
        by: Acting,
        comment_id: Uuid,
        body: CommentBody,
        reachable: Vec<UserId>,
    },
    Edit {
        by: Acting,
        comment_id: Uuid,
        body: CommentBody,
        reachable: Vec<UserId>,
    },
    Delete {
        by: Acting,
        comment_id: Uuid,
    },
    Resolve {
        by: Acting,
    },
    Reopen {
        by: Acting,
    },
    React {
        by: Acting,
        comment_id: Uuid,
        emoji: Emoji,
    },
    Unreact {
        by: Acting,
        comment_id: Uuid,
        emoji: Emoji,
    },
}

/// A thread was opened on a passage, with its first comment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThreadOpened {
    /// The document the thread is on.
    pub document_id: DocumentId,
    /// The document's workspace.
    pub workspace_id: WorkspaceId,
    /// Who opened it (the first comment's author).
    pub author: UserId,
    /// The passage.
    pub anchor: Anchor,
    /// The passage's text when the thread was opened (at most 1,000 characters): shown
    /// when all of it has since been deleted.
    pub quote: String,
    /// The first comment.
    pub comment_id: Uuid,
    /// The text (Markdown; mentions as `<@user-id>`).
    pub body: CommentBody,
    /// The people the comment mentions who could read the document (they are told; the
    /// text may name others, who are not).
    pub mentions: Vec<UserId>,
}

/// A reply was added to a thread.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommentAdded {
    /// The document the thread is on.
    pub document_id: DocumentId,
    /// The comment.
    pub comment_id: Uuid,
    /// The comment's author.
    pub author: UserId,
    /// The text (Markdown; mentions as `<@user-id>`).
    pub body: CommentBody,
    /// The people the comment mentions who could read the document (they are told; the
    /// text may name others, who are not).
    pub mentions: Vec<UserId>,
}

/// A comment's author changed its text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommentEdited {
    /// The document the thread is on.
    pub document_id: DocumentId,
    /// The comment.
    pub comment_id: Uuid,
    /// The text (Markdown; mentions as `<@user-id>`).
    pub body: CommentBody,
    /// The people the new text mentions who could read the document.
    pub mentions: Vec<UserId>,
}

/// A comment was deleted (by its author or the document's owner): read models drop its
/// text; the history keeps this tombstone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommentDeleted {
    /// The document the thread is on.
    pub document_id: DocumentId,
    /// The comment.
    pub comment_id: Uuid,
    /// Who did it.
    pub by: UserId,
}

/// A thread was marked resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThreadResolved {
    /// The document the thread is on.
    pub document_id: DocumentId,
    /// Who did it.
    pub by: UserId,
}

/// A resolved thread was opened again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThreadReopened {
    /// The document the thread is on.
    pub document_id: DocumentId,
    /// Who did it.
    pub by: UserId,
}

/// Someone reacted to a comment with an emoji.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReactionAdded {
    /// The document the thread is on.
    pub document_id: DocumentId,
    /// The comment.
    pub comment_id: Uuid,
    /// Who reacted.
    pub user: UserId,
    /// The emoji.
    pub emoji: Emoji,
}

/// Someone took their reaction back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReactionRemoved {
    /// The document the thread is on.
    pub document_id: DocumentId,
    /// The comment.
    pub comment_id: Uuid,
    /// Who reacted.
    pub user: UserId,
    /// The emoji.
    pub emoji: Emoji,
}

event_enum!(
    /// Events of a comment thread's stream.
    ThreadEvent in Thread {
        ThreadOpened = 1,
        CommentAdded = 1,
        CommentEdited = 1,
        CommentDeleted = 1,
        ThreadResolved = 1,
        ThreadReopened = 1,
        ReactionAdded = 1,
        ReactionRemoved = 1,
    }
);

impl ThreadEvent {
    /// The document every event of a thread is about.
    pub fn document_id(&self) -> DocumentId {
        match self {
            ThreadEvent::ThreadOpened(e) => e.document_id,
            ThreadEvent::CommentAdded(e) => e.document_id,
            ThreadEvent::CommentEdited(e) => e.document_id,
            ThreadEvent::CommentDeleted(e) => e.document_id,
            ThreadEvent::ThreadResolved(e) => e.document_id,
            ThreadEvent::ThreadReopened(e) => e.document_id,
            ThreadEvent::ReactionAdded(e) => e.document_id,
            ThreadEvent::ReactionRemoved(e) => e.document_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThreadError {
    #[error("no such thread")]
    NotFound,
    #[error("no such comment in this thread")]
    CommentNotFound,
    #[error("the thread already exists")]
    AlreadyExists,
    #[error("the comment id is taken")]
    CommentExists,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("a thread holds at most {} comments", CommentThread::MAX_COMMENTS)]
    TooManyComments,
    #[error(
        "a comment holds at most {} different reactions",
        CommentThread::MAX_EMOJIS
    )]
    TooManyReactions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CommentState {
    author: UserId,
    deleted: bool,
    reactions: BTreeSet<(Emoji, UserId)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommentThread {
    document_id: Option<DocumentId>,
    workspace_id: Option<WorkspaceId>,
    resolved: bool,
    comments: BTreeMap<Uuid, CommentState>,
}

const CANNOT_COMMENT: &str = "commenting needs the commenter role or above";

impl CommentThread {
    pub const MAX_COMMENTS: usize = 1_000;
    pub const MAX_EMOJIS: usize = 50;
    pub const MAX_QUOTE_CHARS: usize = 1_000;

    /// The document the thread is on, once it exists.
    pub fn document_id(&self) -> Option<DocumentId> {
        self.document_id
    }

    fn live_comment(&self, id: &Uuid) -> Result<&CommentState, ThreadError> {
        self.comments
            .get(id)
            .filter(|c| !c.deleted)
            .ok_or(ThreadError::CommentNotFound)
    }

    fn decide(&self, command: ThreadCommand) -> Result<Vec<ThreadEvent>, ThreadError> {
        let by = match &command {
            ThreadCommand::Open { by, .. }
            | ThreadCommand::Reply { by, .. }
            | ThreadCommand::Edit { by, .. }
            | ThreadCommand::Delete { by, .. }
            | ThreadCommand::Resolve { by }
            | ThreadCommand::Reopen { by }
            | ThreadCommand::React { by, .. }
            | ThreadCommand::Unreact { by, .. } => by.clone(),
        };
        if by.role < DocumentRole::Commenter {
            return Err(ThreadError::Forbidden(CANNOT_COMMENT));
        }
        if let ThreadCommand::Open {
            document_id,
            workspace_id,
            anchor,
            quote,
            comment_id,
            body,
            reachable,
            ..
        } = command
        {
            if self.document_id.is_some() {
                return Err(ThreadError::AlreadyExists);
            }
            let quote = quote.chars().take(Self::MAX_QUOTE_CHARS).collect();
            return Ok(vec![ThreadEvent::ThreadOpened(ThreadOpened {
                document_id,
                workspace_id,
                author: by.user,
                anchor,
                quote,
                comment_id,
                mentions: body.reachable_mentions(&reachable),
                body,
            })]);
        }
        let document_id = self.document_id.ok_or(ThreadError::NotFound)?;
        Ok(match command {
            ThreadCommand::Open { .. } => unreachable!("handled above"),
            ThreadCommand::Reply {
                comment_id,
                body,
                reachable,
                ..
            } => {
                if self.comments.contains_key(&comment_id) {
                    return Err(ThreadError::CommentExists);
                }
                if self.comments.len() >= Self::MAX_COMMENTS {
                    return Err(ThreadError::TooManyComments);
                }
                vec![ThreadEvent::CommentAdded(CommentAdded {
                    document_id,
                    comment_id,
                    author: by.user,
                    mentions: body.reachable_mentions(&reachable),
                    body,
                })]
            }
            ThreadCommand::Edit {
                comment_id,
                body,
                reachable,
                ..
            } => {
                if self.live_comment(&comment_id)?.author != by.user {
                    return Err(ThreadError::Forbidden("only its author edits a comment"));
                }
                vec![ThreadEvent::CommentEdited(CommentEdited {
                    document_id,
                    comment_id,
                    mentions: body.reachable_mentions(&reachable),
                    body,
                })]
            }
            ThreadCommand::Delete { comment_id, .. } => {
                let comment = self.live_comment(&comment_id)?;
                if comment.author != by.user && by.role != DocumentRole::Owner {
                    return Err(ThreadError::Forbidden(
                        "only its author or the document's owner deletes a comment",
                    ));
                }
                vec![ThreadEvent::CommentDeleted(CommentDeleted {
                    document_id,
                    comment_id,
                    by: by.user,
                })]
            }
            ThreadCommand::Resolve { .. } if self.resolved => vec![],
            ThreadCommand::Resolve { .. } => vec![ThreadEvent::ThreadResolved(ThreadResolved {
                document_id,
                by: by.user,
            })],
            ThreadCommand::Reopen { .. } if !self.resolved => vec![],
            ThreadCommand::Reopen { .. } => vec![ThreadEvent::ThreadReopened(ThreadReopened {
                document_id,
                by: by.user,
            })],
            ThreadCommand::React {
                comment_id, emoji, ..
            } => {
                let comment = self.live_comment(&comment_id)?;
                let key = (emoji, by.user);
                if comment.reactions.contains(&key) {
                    return Ok(vec![]);
                }
                let emojis: BTreeSet<&Emoji> = comment.reactions.iter().map(|(e, _)| e).collect();
                if !emojis.contains(&key.0) && emojis.len() >= Self::MAX_EMOJIS {
                    return Err(ThreadError::TooManyReactions);
                }
                vec![ThreadEvent::ReactionAdded(ReactionAdded {
                    document_id,
                    comment_id,
                    emoji: key.0,
                    user: key.1,
                })]
            }
            ThreadCommand::Unreact {
                comment_id, emoji, ..
            } => {
                let comment = self.live_comment(&comment_id)?;
                let key = (emoji, by.user);
                if !comment.reactions.contains(&key) {
                    return Ok(vec![]);
                }
                vec![ThreadEvent::ReactionRemoved(ReactionRemoved {
                    document_id,
                    comment_id,
                    emoji: key.0,
                    user: key.1,
                })]
            }
        })
    }
}

impl Aggregate for CommentThread {
    const TYPE: &'static str = "comment_thread";
    type Command = ThreadCommand;
    type Event = ThreadEvent;
    type Error = ThreadError;
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
            ThreadEvent::ThreadOpened(e) => {
                self.document_id = Some(e.document_id);
                self.workspace_id = Some(e.workspace_id);
                self.comments.insert(
                    e.comment_id,
                    CommentState {
                        author: e.author,
                        deleted: false,
                        reactions: BTreeSet::new(),
                    },
                );
            }
            ThreadEvent::CommentAdded(e) => {
                self.comments.insert(
                    e.comment_id,
                    CommentState {
                        author: e.author,
                        deleted: false,
                        reactions: BTreeSet::new(),
                    },
                );
            }
            ThreadEvent::CommentEdited(_) => {}
            ThreadEvent::CommentDeleted(e) => {
                if let Some(c) = self.comments.get_mut(&e.comment_id) {
                    c.deleted = true;
                    c.reactions.clear();
                }
            }
            ThreadEvent::ThreadResolved(_) => self.resolved = true,
            ThreadEvent::ThreadReopened(_) => self.resolved = false,
            ThreadEvent::ReactionAdded(e) => {
                if let Some(c) = self.comments.get_mut(&e.comment_id) {
                    c.reactions.insert((e.emoji, e.user));
                }
            }
            ThreadEvent::ReactionRemoved(e) => {
                if let Some(c) = self.comments.get_mut(&e.comment_id) {
                    c.reactions.remove(&(e.emoji, e.user));
                }
            }
        }
    }
}

impl EventSourced for CommentThread {
    const CATEGORY: StreamCategory = StreamCategory::Thread;
    const SNAPSHOT_VERSION: i32 = 1;

    fn workspace_id(&self) -> Option<WorkspaceId> {
        self.workspace_id
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<CommentThread>;

    const DOC: Uuid = Uuid::from_u128(7);
    const FIRST: Uuid = Uuid::from_u128(1);

    fn as_role(user: &str, role: DocumentRole) -> Acting {
        Acting {
            user: UserId::parse(user).unwrap(),
            role,
        }
    }

    fn body(text: &str) -> CommentBody {
        CommentBody::parse(text).unwrap()
    }

    fn opened() -> ThreadEvent {
        ThreadEvent::ThreadOpened(ThreadOpened {
            document_id: DocumentId::from_uuid(DOC),
            workspace_id: WorkspaceId::from_uuid(Uuid::from_u128(9)),
            author: UserId::parse("ann").unwrap(),
            anchor: Anchor {
                root: "content".into(),
                start: vec![1],
                end: vec![2],
            },
            quote: "passage".into(),
            comment_id: FIRST,
            body: body("Look <@bob>"),
            mentions: vec![UserId::parse("bob").unwrap()],
        })
    }

    #[test]
    fn bodies_are_checked_and_mentions_found_once() {
        assert!(CommentBody::parse("  \n").is_err());
        assert!(CommentBody::parse(&"x".repeat(10_001)).is_err());
        assert!(CommentBody::parse("bell\u{7}").is_err());
        assert!(CommentBody::parse("two\nlines\tand a tab").is_ok());
        let mentions = body("<@bob> and <@cy>, again <@bob>; <@> and <@not closed").mentions();
        assert_eq!(
            mentions,
            vec![UserId::parse("bob").unwrap(), UserId::parse("cy").unwrap()]
        );
        assert!(Emoji::parse("👍").is_ok());
        assert!(Emoji::parse("👍🏽").is_ok());
        assert!(Emoji::parse("a").is_err());
        assert!(Emoji::parse("👍👍").is_err());
    }

    #[test]
    fn viewers_read_and_commenters_write() {
        Given::with(())
            .given(vec![opened()])
            .when(ThreadCommand::Reply {
                by: as_role("vic", DocumentRole::Viewer),
                comment_id: Uuid::from_u128(2),
                body: body("hi"),
                reachable: vec![],
            })
            .then_expect_error(ThreadError::Forbidden(CANNOT_COMMENT));
        // Only the mentioned people who can read the document are recorded as mentioned.
        Given::with(())
            .given(vec![opened()])
            .when(ThreadCommand::Reply {
                by: as_role("cy", DocumentRole::Commenter),
                comment_id: Uuid::from_u128(2),
                body: body("<@ann> <@mallory> <@bob>"),
                reachable: vec![UserId::parse("bob").unwrap(), UserId::parse("ann").unwrap()],
            })
            .then_expect_events(vec![ThreadEvent::CommentAdded(CommentAdded {
                document_id: DocumentId::from_uuid(DOC),
                comment_id: Uuid::from_u128(2),
                author: UserId::parse("cy").unwrap(),
                body: body("<@ann> <@mallory> <@bob>"),
                mentions: vec![UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap()],
            })]);
        Given::with(())
            .given(vec![opened()])
            .when(ThreadCommand::Resolve {
                by: as_role("cy", DocumentRole::Commenter),
            })
            .then_expect_events(vec![ThreadEvent::ThreadResolved(ThreadResolved {
                document_id: DocumentId::from_uuid(DOC),
                by: UserId::parse("cy").unwrap(),
            })]);
    }

    #[test]
    fn authors_edit_and_owners_delete() {
        let edit = |who: &str, role| ThreadCommand::Edit {
            by: as_role(who, role),
            comment_id: FIRST,
            body: body("better"),
            reachable: vec![],
        };
        Given::with(())
            .given(vec![opened()])
            .when(edit("own", DocumentRole::Owner))
            .then_expect_error(ThreadError::Forbidden("only its author edits a comment"));
        Given::with(())
            .given(vec![opened()])
            .when(ThreadCommand::Delete {
                by: as_role("own", DocumentRole::Owner),
                comment_id: FIRST,
            })
            .then_expect_events(vec![ThreadEvent::CommentDeleted(CommentDeleted {
                document_id: DocumentId::from_uuid(DOC),
                comment_id: FIRST,
                by: UserId::parse("own").unwrap(),
            })]);
        Given::with(())
            .given(vec![opened()])
            .when(ThreadCommand::Delete {
                by: as_role("ed", DocumentRole::Editor),
                comment_id: FIRST,
            })
            .then_expect_error(ThreadError::Forbidden(
                "only its author or the document's owner deletes a comment",
            ));
        let deleted = ThreadEvent::CommentDeleted(CommentDeleted {
            document_id: DocumentId::from_uuid(DOC),
            comment_id: FIRST,
            by: UserId::parse("ann").unwrap(),
        });
        Given::with(())
            .given(vec![opened(), deleted])
            .when(edit("ann", DocumentRole::Commenter))
            .then_expect_error(ThreadError::CommentNotFound);
    }

    #[test]
    fn reactions_count_once_per_person_and_emoji() {
        let thumbs = Emoji::parse("👍").unwrap();
        let added = ThreadEvent::ReactionAdded(ReactionAdded {
            document_id: DocumentId::from_uuid(DOC),
            comment_id: FIRST,
            user: UserId::parse("cy").unwrap(),
            emoji: thumbs.clone(),
        });
        let react = || ThreadCommand::React {
            by: as_role("cy", DocumentRole::Commenter),
            comment_id: FIRST,
            emoji: thumbs.clone(),
        };
        Given::with(())
            .given(vec![opened()])
            .when(react())
            .then_expect_events(vec![added.clone()]);
        Given::with(())
            .given(vec![opened(), added.clone()])
            .when(react())
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![opened()])
            .when(ThreadCommand::Unreact {
                by: as_role("cy", DocumentRole::Commenter),
                comment_id: FIRST,
                emoji: thumbs.clone(),
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given_no_previous_events()
            .when(react())
            .then_expect_error(ThreadError::NotFound);
    }
}
