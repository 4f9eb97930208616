//! Files: what people upload to a workspace (straight to object storage, never through
//! the server), checked by their content once they arrive, with thumbnails and the
//! documents they are attached to. Each file is one stream (`file-<uuid>`) in its
//! workspace; the bytes live in the blob store under a key made of ids only.

use std::collections::{BTreeMap, BTreeSet};

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::EventSourced;
use crate::catalogue::event_enum;
use crate::envelope::StreamCategory;
use crate::ids::{DocumentId, UserId, WorkspaceId};
use crate::values::InvalidValue;

/// A file's name as shown and offered on download: the last part of what the client sent
/// (no folders), without control characters or characters that are unsafe in a
/// `Content-Disposition` header, not starting with a dot, 1–200 characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(inline)]
pub struct FileName(#[schemars(with = "String")] String);

impl FileName {
    pub const MAX_CHARS: usize = 200;

    /// Cleans a client's file name; fails only when nothing usable is left.
    pub fn sanitise(raw: &str) -> Result<Self, InvalidValue> {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = last
            .chars()
            .map(|c| {
                if c.is_control() || matches!(c, '"' | '<' | '>' | ':' | '|' | '?' | '*' | ';') {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        // No leading dots or spaces, however they alternate (" . ..x" is "x").
        let cleaned = cleaned.trim_start_matches(|c: char| c == '.' || c.is_whitespace());
        let cleaned: String = cleaned.chars().take(Self::MAX_CHARS).collect();
        let cleaned = cleaned.trim_end().to_owned();
        if cleaned.chars().all(|c| c == '_' || c.is_whitespace()) {
            return Err(InvalidValue::new("filename", "must name a file"));
        }
        Ok(Self(cleaned))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FileName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let name = Self::sanitise(&value)?;
        if name.0 != value {
            return Err(InvalidValue::new("filename", "is not a clean file name"));
        }
        Ok(name)
    }
}

impl From<FileName> for String {
    fn from(value: FileName) -> Self {
        value.0
    }
}

/// The types a workspace accepts: images, PDF, office documents, plain text, zip, video.
pub const ALLOWED_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/tiff",
    "image/avif",
    "image/heif",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
    "text/plain",
    "text/csv",
    "text/markdown",
    "application/zip",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "video/x-matroska",
    "video/mpeg",
    "video/x-m4v",
];

/// Types that have no signature in their first bytes: accepted when the bytes are text.
const TEXT_TYPES: &[&str] = &["text/plain", "text/csv", "text/markdown"];

/// Types that are zip archives inside: a sniffer that reads only the first bytes may see
/// just the zip.
const ZIP_BASED: &[&str] = &[
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
];

/// Old office formats share one container (OLE): its sniffed type may name any of them.
const OLE_BASED: &[&str] = &[
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
];

/// A declared content type: lower-case `type/subtype` on the allowlist (parameters such
/// as `; charset=` are dropped).
pub fn declared_type(raw: &str) -> Result<String, InvalidValue> {
    let essence = raw.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    let essence = match essence.as_str() {
        "image/jpg" => "image/jpeg".to_owned(),
        "application/x-zip-compressed" => "application/zip".to_owned(),
        _ => essence,
    };
    if ALLOWED_TYPES.contains(&essence.as_str()) {
        Ok(essence)
    } else {
        Err(InvalidValue::new(
            "content_type",
            format!(
                "'{}' is not accepted (images, PDF, office documents, plain text, zip and video are)",
                raw.chars().take(100).collect::<String>()
            ),
        ))
    }
}

/// What the server saw of an uploaded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrived {
    /// Its size, or None when nothing was uploaded.
    pub size: Option<u64>,
    /// The type its first bytes show (None: no known signature).
    pub sniffed: Option<String>,
    /// Its first bytes are text (UTF-8, no NUL).
    pub text: bool,
}

/// Whether what arrived is what was declared: the accepted type, or the reason not.
pub fn judge(
    declared: &str,
    declared_size: u64,
    max_bytes: u64,
    arrived: &Arrived,
) -> Result<String, String> {
    let Some(size) = arrived.size else {
        return Err("nothing was uploaded".into());
    };
    if size > max_bytes {
        return Err(format!(
            "the file is {size} bytes; at most {max_bytes} are accepted"
        ));
    }
    if size != declared_size {
        return Err(format!(
            "{size} bytes arrived but {declared_size} were declared"
        ));
    }
    match arrived.sniffed.as_deref() {
        Some(sniffed) => {
            let agrees = sniffed == declared
                || (sniffed == "application/zip" && ZIP_BASED.contains(&declared))
                || (OLE_BASED.contains(&sniffed) && OLE_BASED.contains(&declared))
                || (sniffed == "application/x-ole-storage" && OLE_BASED.contains(&declared));
            if agrees {
                Ok(declared.to_owned())
            } else {
                Err(format!("the content is {sniffed}, not {declared}"))
            }
        }
        None if TEXT_TYPES.contains(&declared) && arrived.text => Ok(declared.to_owned()),
        None if TEXT_TYPES.contains(&declared) => {
            Err(format!("the content is not text, so not {declared}"))
        }
        None => Err(format!("the content is not recognisable as {declared}")),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FileCommand {
    /// An upload begins: the object will arrive at `key`.
    Start {
        by: UserId,
        workspace_id: WorkspaceId,
        filename: FileName,
        declared_type: String,
        size: u64,
        document_id: Option<DocumentId>,
        key: String,
        upload_id: Option<String>,
        max_bytes: u64,
    },
    /// The uploader says it is complete; the server looked at what arrived.
    Complete {
        by: UserId,
        arrived: Arrived,
        max_bytes: u64,
    },
    /// Never completed in time.
    Abandon,
    /// `manager`: the caller manages the workspace (anyone else deletes only their own).
    Delete {
        by: UserId,
        manager: bool,
    },
    RecordThumbnail {
        max_px: u32,
        width: u32,
        height: u32,
        key: String,
        content_type: String,
    },
    RecordThumbnailFailure {
        reason: String,
    },
    Attach {
        by: UserId,
        document_id: DocumentId,
    },
    Detach {
        by: UserId,
        document_id: DocumentId,
    },
    /// Replaces the file's tags.
    SetTags {
        by: UserId,
        tags: Vec<Tag>,
    },
    /// The caller checked that the collection exists in the file's workspace.
    AddToCollection {
        by: UserId,
        collection_id: Uuid,
    },
    RemoveFromCollection {
        by: UserId,
        collection_id: Uuid,
    },
}

/// A tag on a file: trimmed, lower-case, 1–50 characters, no control characters or
/// commas.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag(String);

impl Tag {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let tag = raw.trim().to_lowercase();
        if tag.is_empty() || tag.chars().count() > Self::MAX_CHARS {
            return Err(InvalidValue::new(
                "tags",
                "each tag must have 1 to 50 characters",
            ));
        }
        if tag.chars().any(|c| c.is_control() || c == ',') {
            return Err(InvalidValue::new(
                "tags",
                "tags must not contain control characters or commas",
            ));
        }
        Ok(Self(tag))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An upload was started: the client sends the bytes straight to object storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileUploadStarted {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// Who uploads it.
    pub by: UserId,
    /// Its name (sanitised).
    pub filename: FileName,
    /// The type the uploader declared.
    pub declared_type: String,
    /// The size the uploader declared, in bytes.
    pub size: u64,
    /// The document it is attached to from the start, if any.
    pub document_id: Option<DocumentId>,
    /// Where the object goes in the blob store (ids only).
    pub key: String,
    /// The object store's multipart upload id (None: one presigned PUT).
    pub upload_id: Option<String>,
}

/// The upload arrived and its content is what was declared: the file is usable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileUploaded {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// The type its content shows.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The upload arrived but was refused; its object was deleted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileRejected {
    /// The workspace the file belonged to.
    pub workspace_id: WorkspaceId,
    /// Why, for the uploader.
    pub reason: String,
}

/// An upload was never completed and was cleaned up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileUploadAbandoned {
    /// The workspace the file belonged to.
    pub workspace_id: WorkspaceId,
}

/// A file was deleted; its object and thumbnails are removed from storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileDeleted {
    /// The workspace the file belonged to.
    pub workspace_id: WorkspaceId,
    /// Who deleted it.
    pub by: UserId,
}

/// A thumbnail of an image was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThumbnailCreated {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// The bound it was made for: 256 (small) or 1024 (large) pixels on the longer side.
    pub max_px: u32,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
    /// Where it is in the blob store.
    pub key: String,
    /// Its type (`image/jpeg`, or `image/png` for images with transparency).
    pub content_type: String,
}

/// No thumbnail can be made of a file (a corrupt or too large image).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThumbnailFailed {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// Why.
    pub reason: String,
}

/// A file was attached to a document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileAttached {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// The document.
    pub document_id: DocumentId,
    /// Who attached it.
    pub by: UserId,
}

/// A file was detached from a document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileDetached {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// The document.
    pub document_id: DocumentId,
    /// Who detached it.
    pub by: UserId,
}

/// A file's tags were set (all of them, replacing the previous ones).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileTagsSet {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// The tags, sorted (lower-case).
    pub tags: Vec<String>,
    /// Who set them.
    pub by: UserId,
}

/// A file was added to an asset collection of its workspace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileAddedToCollection {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// The collection.
    pub collection_id: Uuid,
    /// Who added it.
    pub by: UserId,
}

/// A file was taken out of an asset collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileRemovedFromCollection {
    /// The workspace the file belongs to.
    pub workspace_id: WorkspaceId,
    /// The collection.
    pub collection_id: Uuid,
    /// Who removed it.
    pub by: UserId,
}

event_enum!(
    /// Events of a file's stream.
    FileEvent in File {
        FileUploadStarted = 1,
        FileUploaded = 1,
        FileRejected = 1,
        FileUploadAbandoned = 1,
        FileDeleted = 1,
        ThumbnailCreated = 1,
        ThumbnailFailed = 1,
        FileAttached = 1,
        FileDetached = 1,
        FileTagsSet = 1,
        FileAddedToCollection = 1,
        FileRemovedFromCollection = 1,
    }
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("no such file")]
    NotFound,
    #[error("the file id is taken")]
    AlreadyExists,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the upload is already {0}")]
    NotPending(&'static str),
    #[error("the file is {0}, not uploaded")]
    NotUploaded(&'static str),
    #[error("a file is attached to at most {} documents", File::MAX_ATTACHMENTS)]
    TooManyAttachments,
    #[error("a file has at most {} tags", File::MAX_TAGS)]
    TooManyTags,
}

/// Where a file is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileState {
    #[default]
    None,
    Pending,
    Uploaded,
    Rejected,
    Abandoned,
    Deleted,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::None => "absent",
            FileState::Pending => "pending",
            FileState::Uploaded => "uploaded",
            FileState::Rejected => "rejected",
            FileState::Abandoned => "abandoned",
            FileState::Deleted => "deleted",
        }
    }
}

/// A thumbnail as the file knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    pub key: String,
    pub content_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct File {
    workspace_id: Option<WorkspaceId>,
    state: FileState,
    uploaded_by: Option<UserId>,
    filename: Option<FileName>,
    declared_type: String,
    content_type: Option<String>,
    declared_size: u64,
    key: String,
    upload_id: Option<String>,
    attachments: BTreeSet<DocumentId>,
    thumbnails: BTreeMap<u32, Thumbnail>,
    thumbnail_failed: bool,
    tags: BTreeSet<String>,
    collections: BTreeSet<Uuid>,
}

impl File {
    pub const MAX_ATTACHMENTS: usize = 1_000;
    pub const MAX_TAGS: usize = 50;

    /// Its tags.
    pub fn tags(&self) -> &BTreeSet<String> {
        &self.tags
    }

    /// The asset collections it is in.
    pub fn collections(&self) -> &BTreeSet<Uuid> {
        &self.collections
    }

    pub fn state(&self) -> FileState {
        self.state
    }

    pub fn uploaded_by(&self) -> Option<&UserId> {
        self.uploaded_by.as_ref()
    }

    pub fn filename(&self) -> Option<&FileName> {
        self.filename.as_ref()
    }

    pub fn declared_type(&self) -> &str {
        &self.declared_type
    }

    /// The type its content showed (once uploaded).
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    pub fn declared_size(&self) -> u64 {
        self.declared_size
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn upload_id(&self) -> Option<&str> {
        self.upload_id.as_deref()
    }

    /// The documents it is attached to.
    pub fn attachments(&self) -> &BTreeSet<DocumentId> {
        &self.attachments
    }

    /// Its thumbnails by their bound in pixels.
    pub fn thumbnails(&self) -> &BTreeMap<u32, Thumbnail> {
        &self.thumbnails
    }

    pub(crate) fn decide(&self, command: FileCommand) -> Result<Vec<FileEvent>, FileError> {
        if let FileCommand::Start {
            by,
            workspace_id,
            filename,
            declared_type,
            size,
            document_id,
            key,
            upload_id,
            ..
        } = command
        {
            if self.state != FileState::None {
                return Err(FileError::AlreadyExists);
            }
            return Ok(vec![FileEvent::FileUploadStarted(FileUploadStarted {
                workspace_id,
                by,
                filename,
                declared_type,
                size,
                document_id,
                key,
                upload_id,
            })]);
        }
        let workspace_id = self.workspace_id.ok_or(FileError::NotFound)?;
        Ok(match command {
            FileCommand::Start { .. } => unreachable!("handled above"),
            FileCommand::Complete {
                by,
                arrived,
                max_bytes,
            } => {
                if self.state != FileState::Pending {
                    return Err(FileError::NotPending(self.state.as_str()));
                }
                if self.uploaded_by.as_ref() != Some(&by) {
                    return Err(FileError::Forbidden(
                        "only its uploader completes an upload",
                    ));
                }
                match judge(&self.declared_type, self.declared_size, max_bytes, &arrived) {
                    Ok(content_type) => vec![FileEvent::FileUploaded(FileUploaded {
                        workspace_id,
                        content_type,
                        size: arrived.size.unwrap_or_default(),
                    })],
                    Err(reason) => vec![FileEvent::FileRejected(FileRejected {
                        workspace_id,
                        reason,
                    })],
                }
            }
            FileCommand::Abandon if self.state == FileState::Pending => {
                vec![FileEvent::FileUploadAbandoned(FileUploadAbandoned {
                    workspace_id,
                })]
            }
            FileCommand::Abandon => vec![],
            FileCommand::Delete { by, manager } => {
                if self.state == FileState::Deleted {
                    return Err(FileError::NotFound);
                }
                if !manager && self.uploaded_by.as_ref() != Some(&by) {
                    return Err(FileError::Forbidden(
                        "only its uploader or the workspace's owners and admins delete a file",
                    ));
                }
                vec![FileEvent::FileDeleted(FileDeleted { workspace_id, by })]
            }
            FileCommand::RecordThumbnail {
                max_px,
                width,
                height,
                key,
                content_type,
            } => {
                // Redelivered work records nothing twice.
                if self.state != FileState::Uploaded || self.thumbnails.contains_key(&max_px) {
                    return Ok(vec![]);
                }
                vec![FileEvent::ThumbnailCreated(ThumbnailCreated {
                    workspace_id,
                    max_px,
                    width,
                    height,
                    key,
                    content_type,
                })]
            }
            FileCommand::RecordThumbnailFailure { reason } => {
                if self.state != FileState::Uploaded || self.thumbnail_failed {
                    return Ok(vec![]);
                }
                vec![FileEvent::ThumbnailFailed(ThumbnailFailed {
                    workspace_id,
                    reason,
                })]
            }
            FileCommand::Attach { by, document_id } => {
                self.usable()?;
                if self.attachments.contains(&document_id) {
                    return Ok(vec![]);
                }
                if self.attachments.len() >= Self::MAX_ATTACHMENTS {
                    return Err(FileError::TooManyAttachments);
                }
                vec![FileEvent::FileAttached(FileAttached {
                    workspace_id,
                    document_id,
                    by,
                })]
            }
            FileCommand::Detach { by, document_id } => {
                self.usable()?;
                if !self.attachments.contains(&document_id) {
                    return Ok(vec![]);
                }
                vec![FileEvent::FileDetached(FileDetached {
                    workspace_id,
                    document_id,
                    by,
                })]
            }
            FileCommand::SetTags { by, tags } => {
                self.usable()?;
                let tags: BTreeSet<String> = tags.into_iter().map(|t| t.0).collect();
                if tags.len() > Self::MAX_TAGS {
                    return Err(FileError::TooManyTags);
                }
                if tags == self.tags {
                    return Ok(vec![]);
                }
                vec![FileEvent::FileTagsSet(FileTagsSet {
                    workspace_id,
                    tags: tags.into_iter().collect(),
                    by,
                })]
            }
            FileCommand::AddToCollection { by, collection_id } => {
                self.usable()?;
                if self.collections.contains(&collection_id) {
                    return Ok(vec![]);
                }
                vec![FileEvent::FileAddedToCollection(FileAddedToCollection {
                    workspace_id,
                    collection_id,
                    by,
                })]
            }
            FileCommand::RemoveFromCollection { by, collection_id } => {
                self.usable()?;
                if !self.collections.contains(&collection_id) {
                    return Ok(vec![]);
                }
                vec![FileEvent::FileRemovedFromCollection(
                    FileRemovedFromCollection {
                        workspace_id,
                        collection_id,
                        by,
                    },
                )]
            }
        })
    }

    fn usable(&self) -> Result<(), FileError> {
        match self.state {
            FileState::Uploaded => Ok(()),
            FileState::Deleted | FileState::None => Err(FileError::NotFound),
            other => Err(FileError::NotUploaded(other.as_str())),
        }
    }
}

impl Aggregate for File {
    const TYPE: &'static str = "file";
    type Command = FileCommand;
    type Event = FileEvent;
    type Error = FileError;
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
            FileEvent::FileUploadStarted(e) => {
                self.workspace_id = Some(e.workspace_id);
                self.state = FileState::Pending;
                self.uploaded_by = Some(e.by);
                self.filename = Some(e.filename);
                self.declared_type = e.declared_type;
                self.declared_size = e.size;
                self.key = e.key;
                self.upload_id = e.upload_id;
                if let Some(document) = e.document_id {
                    self.attachments.insert(document);
                }
            }
            FileEvent::FileUploaded(e) => {
                self.state = FileState::Uploaded;
                self.content_type = Some(e.content_type);
            }
            FileEvent::FileRejected(_) => self.state = FileState::Rejected,
            FileEvent::FileUploadAbandoned(_) => self.state = FileState::Abandoned,
            FileEvent::FileDeleted(_) => self.state = FileState::Deleted,
            FileEvent::ThumbnailCreated(e) => {
                self.thumbnails.insert(
                    e.max_px,
                    Thumbnail {
                        key: e.key,
                        content_type: e.content_type,
                    },
                );
            }
            FileEvent::ThumbnailFailed(_) => self.thumbnail_failed = true,
            FileEvent::FileAttached(e) => {
                self.attachments.insert(e.document_id);
            }
            FileEvent::FileDetached(e) => {
                self.attachments.remove(&e.document_id);
            }
            FileEvent::FileTagsSet(e) => self.tags = e.tags.into_iter().collect(),
            FileEvent::FileAddedToCollection(e) => {
                self.collections.insert(e.collection_id);
            }
            FileEvent::FileRemovedFromCollection(e) => {
                self.collections.remove(&e.collection_id);
            }
        }
    }
}

impl EventSourced for File {
    const CATEGORY: StreamCategory = StreamCategory::File;
    const SNAPSHOT_VERSION: i32 = 1;

    fn workspace_id(&self) -> Option<WorkspaceId> {
        self.workspace_id
    }
}

/// Where a file's object lives: ids only, never anything a user typed.
pub fn object_key(workspace: WorkspaceId, file: Uuid) -> String {
    format!("files/{workspace}/{file}/original")
}

/// Where a file's thumbnail for `max_px` lives.
pub fn thumbnail_key(workspace: WorkspaceId, file: Uuid, max_px: u32) -> String {
    format!("files/{workspace}/{file}/thumbnail-{max_px}")
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;

    type Given = TestFramework<File>;

    fn ann() -> UserId {
        UserId::parse("ann").unwrap()
    }

    fn ws() -> WorkspaceId {
        WorkspaceId::from_uuid(Uuid::from_u128(9))
    }

    fn started(size: u64) -> FileEvent {
        FileEvent::FileUploadStarted(FileUploadStarted {
            workspace_id: ws(),
            by: ann(),
            filename: FileName::sanitise("logo.png").unwrap(),
            declared_type: "image/png".into(),
            size,
            document_id: None,
            key: "files/k/original".into(),
            upload_id: None,
        })
    }

    fn arrived(size: u64, sniffed: Option<&str>) -> Arrived {
        Arrived {
            size: Some(size),
            sniffed: sniffed.map(str::to_owned),
            text: false,
        }
    }

    #[test]
    fn names_are_cleaned_of_folders_and_unsafe_characters() {
        let clean = |raw: &str| FileName::sanitise(raw).map(|n| n.as_str().to_owned());
        assert_eq!(clean("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(clean("C:\\Users\\x\\report.pdf").unwrap(), "report.pdf");
        assert_eq!(clean("a\"b\r\n;c.txt").unwrap(), "a_b___c.txt");
        assert_eq!(clean(".hidden").unwrap(), "hidden");
        assert_eq!(clean("Ünïcødé 写真.jpg").unwrap(), "Ünïcødé 写真.jpg");
        assert!(clean("..").is_err());
        assert!(clean("dir/").is_err());
        assert_eq!(clean(&"x".repeat(500)).unwrap().chars().count(), 200);
        // Found by fuzzing: dots and spaces alternating at the start.
        assert_eq!(clean(" . ..[").unwrap(), "[");
        for raw in [
            " . ..[",
            "a  ",
            &format!("{} b", "x".repeat(199)),
            "..\\..\\x y ",
        ] {
            let once = clean(raw).unwrap();
            assert_eq!(
                clean(&once).unwrap(),
                once,
                "sanitising is idempotent: {raw:?}"
            );
        }
    }

    #[test]
    fn declared_types_are_normalised_and_checked_against_the_allowlist() {
        assert_eq!(declared_type("Image/JPG").unwrap(), "image/jpeg");
        assert_eq!(
            declared_type("text/plain; charset=utf-8").unwrap(),
            "text/plain"
        );
        assert!(declared_type("application/x-msdownload").is_err());
        assert!(declared_type("image/svg+xml").is_err());
        assert!(declared_type("text/html").is_err());
    }

    #[test]
    fn what_arrived_is_judged_by_size_and_content() {
        let max = 1_000;
        assert_eq!(
            judge("image/png", 10, max, &arrived(10, Some("image/png"))).unwrap(),
            "image/png"
        );
        let exe = judge(
            "image/png",
            10,
            max,
            &arrived(10, Some("application/x-executable")),
        );
        assert_eq!(
            exe.unwrap_err(),
            "the content is application/x-executable, not image/png"
        );
        assert!(judge("image/png", 10, max, &arrived(9, Some("image/png")))
            .unwrap_err()
            .contains("9 bytes arrived"));
        assert!(
            judge("image/png", 2_000, max, &arrived(2_000, Some("image/png")))
                .unwrap_err()
                .contains("at most 1000")
        );
        let nothing = Arrived {
            size: None,
            sniffed: None,
            text: false,
        };
        assert_eq!(
            judge("image/png", 10, max, &nothing).unwrap_err(),
            "nothing was uploaded"
        );
        let docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        assert!(judge(docx, 10, max, &arrived(10, Some("application/zip"))).is_ok());
        let text = Arrived {
            size: Some(10),
            sniffed: None,
            text: true,
        };
        assert!(judge("text/csv", 10, max, &text).is_ok());
        let binary = Arrived {
            size: Some(10),
            sniffed: None,
            text: false,
        };
        assert!(judge("text/plain", 10, max, &binary).is_err());
        assert!(judge("application/pdf", 10, max, &binary).is_err());
    }

    #[test]
    fn completing_records_uploaded_or_rejected_once_and_only_for_the_uploader() {
        Given::with(())
            .given(vec![started(10)])
            .when(FileCommand::Complete {
                by: ann(),
                arrived: arrived(10, Some("image/png")),
                max_bytes: 100,
            })
            .then_expect_events(vec![FileEvent::FileUploaded(FileUploaded {
                workspace_id: ws(),
                content_type: "image/png".into(),
                size: 10,
            })]);
        Given::with(())
            .given(vec![started(10)])
            .when(FileCommand::Complete {
                by: ann(),
                arrived: arrived(10, Some("application/x-executable")),
                max_bytes: 100,
            })
            .then_expect_events(vec![FileEvent::FileRejected(FileRejected {
                workspace_id: ws(),
                reason: "the content is application/x-executable, not image/png".into(),
            })]);
        Given::with(())
            .given(vec![started(10)])
            .when(FileCommand::Complete {
                by: UserId::parse("bob").unwrap(),
                arrived: arrived(10, Some("image/png")),
                max_bytes: 100,
            })
            .then_expect_error(FileError::Forbidden(
                "only its uploader completes an upload",
            ));
        Given::with(())
            .given(vec![
                started(10),
                FileEvent::FileRejected(FileRejected {
                    workspace_id: ws(),
                    reason: "x".into(),
                }),
            ])
            .when(FileCommand::Complete {
                by: ann(),
                arrived: arrived(10, Some("image/png")),
                max_bytes: 100,
            })
            .then_expect_error(FileError::NotPending("rejected"));
    }

    #[test]
    fn tags_are_normalised_and_set_as_a_whole() {
        assert_eq!(Tag::parse("  Logo ").unwrap().as_str(), "logo");
        assert!(Tag::parse("").is_err());
        assert!(Tag::parse("a,b").is_err());
        assert!(Tag::parse(&"x".repeat(51)).is_err());
        let uploaded = FileEvent::FileUploaded(FileUploaded {
            workspace_id: ws(),
            content_type: "image/png".into(),
            size: 10,
        });
        let tags = |raw: &[&str]| {
            raw.iter()
                .map(|t| Tag::parse(t).unwrap())
                .collect::<Vec<_>>()
        };
        let set = FileEvent::FileTagsSet(FileTagsSet {
            workspace_id: ws(),
            tags: vec!["brand".into(), "logo".into()],
            by: ann(),
        });
        Given::with(())
            .given(vec![started(10), uploaded.clone()])
            .when(FileCommand::SetTags {
                by: ann(),
                tags: tags(&["Logo", "brand", "logo"]),
            })
            .then_expect_events(vec![set.clone()]);
        Given::with(())
            .given(vec![started(10), uploaded, set])
            .when(FileCommand::SetTags {
                by: ann(),
                tags: tags(&["brand", "logo"]),
            })
            .then_expect_events(vec![]);
        Given::with(())
            .given(vec![started(10)])
            .when(FileCommand::SetTags {
                by: ann(),
                tags: tags(&["x"]),
            })
            .then_expect_error(FileError::NotUploaded("pending"));
    }

    #[test]
    fn thumbnails_are_recorded_once_per_size() {
        let uploaded = FileEvent::FileUploaded(FileUploaded {
            workspace_id: ws(),
            content_type: "image/png".into(),
            size: 10,
        });
        let made = FileEvent::ThumbnailCreated(ThumbnailCreated {
            workspace_id: ws(),
            max_px: 256,
            width: 256,
            height: 128,
            key: thumbnail_key(ws(), Uuid::nil(), 256),
            content_type: "image/png".into(),
        });
        let command = FileCommand::RecordThumbnail {
            max_px: 256,
            width: 256,
            height: 128,
            key: thumbnail_key(ws(), Uuid::nil(), 256),
            content_type: "image/png".into(),
        };
        Given::with(())
            .given(vec![started(10), uploaded.clone()])
            .when(command.clone())
            .then_expect_events(vec![made.clone()]);
        Given::with(())
            .given(vec![started(10), uploaded, made])
            .when(command)
            .then_expect_events(vec![]);
    }

    #[test]
    fn only_uploaded_files_are_attached_and_deleting_is_for_the_uploader_or_a_manager() {
        let doc = DocumentId::from_uuid(Uuid::from_u128(3));
        Given::with(())
            .given(vec![started(10)])
            .when(FileCommand::Attach {
                by: ann(),
                document_id: doc,
            })
            .then_expect_error(FileError::NotUploaded("pending"));
        Given::with(())
            .given(vec![started(10)])
            .when(FileCommand::Delete {
                by: UserId::parse("bob").unwrap(),
                manager: false,
            })
            .then_expect_error(FileError::Forbidden(
                "only its uploader or the workspace's owners and admins delete a file",
            ));
        Given::with(())
            .given(vec![started(10)])
            .when(FileCommand::Delete {
                by: UserId::parse("bob").unwrap(),
                manager: true,
            })
            .then_expect_events(vec![FileEvent::FileDeleted(FileDeleted {
                workspace_id: ws(),
                by: UserId::parse("bob").unwrap(),
            })]);
    }
}
