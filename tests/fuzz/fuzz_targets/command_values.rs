//! The values command bodies are made of, from arbitrary JSON and text: every parser
//! either refuses or gives a value that parses again to itself. Nothing may panic.
#![no_main]

use collab_domain::comment::{CommentBody, Emoji};
use collab_domain::file::{declared_type, FileName, Tag};
use collab_domain::{FolderPath, Title, UserId, VersionName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = serde_json::from_slice::<serde_json::Value>(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(title) = Title::parse("title", text) {
        assert_eq!(
            Title::parse("title", title.as_str()).ok().as_ref(),
            Some(&title)
        );
    }
    if let Ok(folder) = FolderPath::parse(text) {
        assert_eq!(
            FolderPath::parse(folder.as_str()).ok().as_ref(),
            Some(&folder)
        );
    }
    if let Ok(name) = FileName::sanitise(text) {
        assert_eq!(FileName::sanitise(name.as_str()).ok().as_ref(), Some(&name));
        assert!(!name.as_str().contains(['/', '\\', '"']));
    }
    if let Ok(tag) = Tag::parse(text) {
        assert_eq!(Tag::parse(tag.as_str()).ok().as_ref(), Some(&tag));
    }
    if let Ok(kind) = declared_type(text) {
        assert_eq!(declared_type(&kind).ok().as_ref(), Some(&kind));
    }
    let _ = UserId::parse(text);
    let _ = VersionName::parse("name", text);
    if let Ok(body) = CommentBody::parse(text) {
        let _ = body.mentions();
    }
    let _ = Emoji::parse(text);
    // The same values inside JSON, as the routes read them.
    let _ = serde_json::from_slice::<Vec<FileName>>(bytes);
    let _ = serde_json::from_slice::<(UserId, CommentBody)>(bytes);
});
